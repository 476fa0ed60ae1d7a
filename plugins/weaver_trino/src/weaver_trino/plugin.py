"""Weaver's hooks for Trino (entry point ``trino``, enabled by ``WEAVER_TRINO_MODE``).

This plugin owns the query-engine hooks, taking them over from the embedded SQLite
engine: datasources become Trino catalogs, ``/api/query`` runs on the Trino cluster (its
workers do the work, joins across datasources included), and sync reads the catalogs
through Trino. Only one plugin may own the query path: enabled beside the MindsDB
plugin, both are taken out (the core's conflict rule).
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from dataclasses import dataclass
from datetime import UTC, datetime

import aiohttp
from yarl import URL

from weaver import hookimpl
from weaver.context import WeaverContext
from weaver.opened import Opened
from weaver.settings import Settings
from weaver.types import (
    ConnectionSpec,
    Datasource,
    DatasourceStatistics,
    HealthCheck,
    PreparedQuery,
    RowStream,
    SchemaGraph,
    SqlDialect,
)
from weaver_trino.client import TrinoClient
from weaver_trino.connections import check_connection
from weaver_trino.reconcile import Reconciliation, reconcile, reconcile_until_done
from weaver_trino.service import DIALECT, Trino

log = logging.getLogger(__name__)

# Connections kept open to the coordinator: a query makes 6-24 requests, so each must
# find a warm connection (no TCP or TLS handshake per request).
POOL_SIZE = 64


@dataclass
class Connected:
    """What start-up opens: the HTTP session, the engine on it, the reconciler."""

    session: aiohttp.ClientSession
    engine: Trino
    reconciler: asyncio.Task[None] | None = None
    reconciliation: Reconciliation | None = None


def tls_context(settings: Settings) -> ssl.SSLContext | None:
    """The context for an https coordinator: the system's CAs, or ``TRINO_CA_BUNDLE``'s."""
    if URL(settings.trino_url).scheme != "https":
        return None
    cafile = str(settings.trino_ca_bundle) if settings.trino_ca_bundle else None
    return ssl.create_default_context(cafile=cafile)


class TrinoPlugin:
    """The hooks, one instance per app, with its own HTTP session to the coordinator."""

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
        connected = self._connected.open(Connected(session, Trino(context, client)))

        def done(result: Reconciliation) -> None:
            connected.reconciliation = result

        started_at = datetime.now(UTC)
        connected.reconciler = asyncio.create_task(
            reconcile_until_done(
                lambda: reconcile(
                    connected.engine, context.registry, context, started_at=started_at
                ),
                done,
            ),
            name="weaver-trino-reconcile",
        )

    @hookimpl
    async def weaver_shutdown(self) -> None:
        connected = self._connected.take()
        if connected is None:
            return
        if connected.reconciler is not None:
            connected.reconciler.cancel()
            await asyncio.gather(connected.reconciler, return_exceptions=True)
        await connected.session.close()

    @hookimpl
    async def check_health(self) -> HealthCheck:
        connected = self.connected
        check = await connected.engine.health()
        result = connected.reconciliation
        # Counts only: health answers without a token, and internal names stay inside.
        extra = {**check.extra, "reconciled": result is not None}
        if result is not None:
            extra.update(
                recreated=len(result.recreated),
                failed=len(result.failed),
                strays=len(result.strays),
            )
        return HealthCheck(check.status, check.detail, check.latency_ms, extra)

    # --- query engine ---------------------------------------------------------------------

    @hookimpl
    def sql_dialect(self) -> SqlDialect:
        return DIALECT

    @hookimpl
    def validate_connection(
        self, engine: str, connection: dict[str, object]
    ) -> ConnectionSpec | None:
        return check_connection(engine, connection)

    @hookimpl
    async def register_datasource(
        self, datasource: Datasource, connection: dict[str, object], replace: bool
    ) -> None:
        await self.engine.register(datasource, connection, replace=replace)

    @hookimpl
    async def unregister_datasource(self, datasource: Datasource) -> None:
        await self.engine.unregister(datasource)

    @hookimpl
    async def execute_query(self, query: PreparedQuery) -> RowStream:
        return await self.engine.execute(query)

    @hookimpl
    async def cancel_query(self, query: PreparedQuery) -> bool:
        return await self.engine.cancel(query)

    @hookimpl
    async def introspect_datasource(self, datasource: Datasource) -> SchemaGraph:
        return await self.engine.introspect(datasource)

    @hookimpl
    async def compute_statistics(
        self, datasource: Datasource, graph: SchemaGraph
    ) -> DatasourceStatistics:
        return await self.engine.statistics(datasource, graph)
