"""Weaver's hooks for MindsDB (entry point ``mindsdb``, enabled by ``WEAVER_EXTERNAL_MODE``).

This plugin owns the query-engine hooks, taking them over from the embedded SQLite
engine: datasources become MindsDB databases, ``/api/query`` runs on MindsDB (joins
across datasources included), and sync reads the sources' catalogs through MindsDB.
"""

from __future__ import annotations

from dataclasses import dataclass

import aiohttp

from weaver import hookimpl
from weaver.context import WeaverContext
from weaver.external.engine import ExternalEngineHooks
from weaver.external.reconcile import Reconciler
from weaver.opened import Opened
from weaver.settings import Settings
from weaver.types import ConnectionSpec, HealthCheck, SqlDialect
from weaver_mindsdb.client import MindsDBClient
from weaver_mindsdb.engines import check_connection
from weaver_mindsdb.service import DIALECT, MindsDB

# Requests to MindsDB at once. Its HTTP server holds one worker thread per request for
# the whole answer (10 by default, queueing the rest unseen); scripts/services.sh starts
# it with as many as this (``api.http.a2wsgi.workers``), and so should any deployment.
POOL_SIZE = 32


@dataclass
class Connected:
    """What start-up opens: the HTTP session, the engine on it, the reconciler."""

    session: aiohttp.ClientSession
    # For the health check's ping, which must not wait behind a pool of long answers.
    ping_session: aiohttp.ClientSession
    engine: MindsDB
    reconciler: Reconciler


class MindsDBPlugin(ExternalEngineHooks):
    """The hooks, one instance per app, with its own HTTP session to MindsDB; those that
    only hand a call to the engine come from `ExternalEngineHooks`."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._connected = Opened[Connected]("the MindsDB plugin's session")

    @property
    def connected(self) -> Connected:
        return self._connected.get()

    @property
    def engine(self) -> MindsDB:
        return self.connected.engine

    # --- lifecycle ------------------------------------------------------------------------

    @hookimpl
    async def weaver_startup(self, context: WeaverContext) -> None:
        settings = self.settings
        # No request is sent here: MindsDB may come up after the gateway, and the first
        # use (or the health check) finds it then.
        session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=POOL_SIZE),
            # Every call carries its own deadline (asyncio.timeout); this bounds connecting.
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=settings.query_timeout_seconds),
        )
        ping_session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=1),
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=settings.health_check_timeout),
        )
        client = MindsDBClient(
            settings.mindsdb_url,
            session,
            user=settings.mindsdb_user,
            password=settings.mindsdb_password,
            ping_session=ping_session,
        )
        engine = MindsDB(context, client)
        self._connected.open(
            Connected(session, ping_session, engine, Reconciler(engine, context, "mindsdb"))
        )

    @hookimpl
    async def weaver_shutdown(self) -> None:
        connected = self._connected.take()
        if connected is None:
            return
        await connected.reconciler.stop()
        connected.engine.close()
        await connected.session.close()
        await connected.ping_session.close()

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
