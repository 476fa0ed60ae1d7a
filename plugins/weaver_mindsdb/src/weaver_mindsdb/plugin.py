"""Weaver's hooks for MindsDB (entry point ``mindsdb``, enabled by ``WEAVER_EXTERNAL_MODE``).

This plugin owns the query-engine hooks, taking them over from the embedded SQLite
engine: datasources become MindsDB databases, ``/api/query`` runs on MindsDB (joins
across datasources included), and sync reads the sources' catalogs through MindsDB.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime

import aiohttp

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
from weaver_mindsdb.client import MindsDBClient
from weaver_mindsdb.engines import check_connection
from weaver_mindsdb.reconcile import Reconciliation, reconcile, reconcile_until_done
from weaver_mindsdb.service import DIALECT, MindsDB

log = logging.getLogger(__name__)

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
    reconciler: asyncio.Task[None] | None = None
    reconciliation: Reconciliation | None = field(default=None)


class MindsDBPlugin:
    """The hooks, one instance per app, with its own HTTP session to MindsDB."""

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
        connected = self._connected.open(
            Connected(session=session, ping_session=ping_session, engine=MindsDB(context, client))
        )

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
            name="weaver-mindsdb-reconcile",
        )

    @hookimpl
    async def weaver_shutdown(self) -> None:
        connected = self._connected.take()
        if connected is None:
            return
        if connected.reconciler is not None:
            connected.reconciler.cancel()
            await asyncio.gather(connected.reconciler, return_exceptions=True)
        connected.engine.close()
        await connected.session.close()
        await connected.ping_session.close()

    @hookimpl
    async def check_health(self) -> HealthCheck:
        connected = self.connected
        check = await connected.engine.health()
        result = connected.reconciliation
        extra = dict(check.extra)
        # Counts only: health answers without a token, and internal names stay inside.
        extra["reconciled"] = result is not None
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
