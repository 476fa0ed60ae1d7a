"""Weaver's hooks for Trino (entry point ``trino``, enabled by ``WEAVER_TRINO_MODE``).

This plugin owns the query-engine hooks, taking them over from the embedded SQLite
engine: datasources become Trino catalogs, ``/api/query`` runs on the Trino cluster (its
workers do the work, joins across datasources included), and sync reads the catalogs
through Trino. Only one plugin may own the query path: enabled beside the MindsDB
plugin, both are taken out (the core's conflict rule).
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass

import aiohttp
from yarl import URL

from weaver import hookimpl
from weaver.context import WeaverContext
from weaver.external.engine import ExternalEngineHooks
from weaver.external.reconcile import Reconciler
from weaver.opened import Opened
from weaver.settings import Settings
from weaver.types import ConnectionSpec, HealthCheck, SqlDialect
from weaver_trino.client import TrinoClient
from weaver_trino.connections import check_connection
from weaver_trino.service import DIALECT, Trino

# Connections kept open to the coordinator: a query makes 6-24 requests, so each must
# find a warm connection (no TCP or TLS handshake per request).
POOL_SIZE = 64


@dataclass
class Connected:
    """What start-up opens: the HTTP session, the engine on it, the reconciler."""

    session: aiohttp.ClientSession
    engine: Trino
    reconciler: Reconciler


def tls_context(settings: Settings) -> ssl.SSLContext | None:
    """The context for an https coordinator: the system's CAs, or ``TRINO_CA_BUNDLE``'s."""
    if URL(settings.trino_url).scheme != "https":
        return None
    cafile = str(settings.trino_ca_bundle) if settings.trino_ca_bundle else None
    return ssl.create_default_context(cafile=cafile)


class TrinoPlugin(ExternalEngineHooks):
    """The hooks, one instance per app, with its own HTTP session to the coordinator;
    those that only hand a call to the engine come from `ExternalEngineHooks`."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._connected = Opened[Connected]("the Trino plugin's session")

    @property
    def connected(self) -> Connected:
        return self._connected.get()

    @property
    def engine(self) -> Trino:
        return self.connected.engine

    # --- lifecycle ------------------------------------------------------------------------

    @hookimpl
    async def weaver_startup(self, context: WeaverContext) -> None:
        settings = self.settings
        if settings.trino_password and URL(settings.trino_url).scheme != "https":
            # Trino itself refuses basic auth over http; sending it there would also put
            # the password on the wire in clear.
            raise ValueError("TRINO_PASSWORD is set but TRINO_URL is not https")
        # No request is sent here: Trino may come up after the gateway, and the first use
        # (or the health check) finds it then.
        session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=POOL_SIZE, ssl=tls_context(settings) or True),
            # Every call carries its own deadline (asyncio.timeout); this bounds connecting.
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=settings.query_timeout_seconds),
        )
        client = TrinoClient(
            settings.trino_url, session, user=settings.trino_user, password=settings.trino_password
        )
        engine = Trino(context, client)
        self._connected.open(Connected(session, engine, Reconciler(engine, context, "trino")))

    @hookimpl
    async def weaver_shutdown(self) -> None:
        connected = self._connected.take()
        if connected is None:
            return
        await connected.reconciler.stop()
        await connected.session.close()

    @hookimpl
    async def check_health(self) -> HealthCheck:
        return self.connected.reconciler.health(await self.engine.health())

    # --- query engine ---------------------------------------------------------------------

    @hookimpl
    def sql_dialect(self) -> SqlDialect:
        return DIALECT

    @hookimpl
    def validate_connection(
        self, engine: str, connection: dict[str, object]
    ) -> ConnectionSpec | None:
        return check_connection(engine, connection)
