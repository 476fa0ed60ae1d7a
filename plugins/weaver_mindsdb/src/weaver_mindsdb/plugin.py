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
from weaver.types import (
    ConnectionSpec,
    Datasource,
    DatasourceStatistics,
    HealthCheck,
    PreparedQuery,
    Principal,
    QueryResult,
    SchemaGraph,
)
from weaver_mindsdb.client import MindsDBClient
from weaver_mindsdb.engines import check_connection
from weaver_mindsdb.reconcile import Reconciliation, reconcile, reconcile_until_done
from weaver_mindsdb.service import DIALECT, MindsDB

log = logging.getLogger(__name__)

STATE_KEY = "mindsdb"
# Connections kept open to MindsDB; its HTTP server answers each request in a thread.
POOL_SIZE = 32


@dataclass
class PluginState:
    session: aiohttp.ClientSession
    engine: MindsDB
    reconciler: asyncio.Task[None] | None = None
    reconciliation: Reconciliation | None = field(default=None)


def _state(context: WeaverContext) -> PluginState:
    state: PluginState = context.state[STATE_KEY]
    return state


def _engine(context: WeaverContext) -> MindsDB:
    return _state(context).engine


# --- lifecycle ----------------------------------------------------------------------------


@hookimpl
async def weaver_startup(context: WeaverContext) -> None:
    settings = context.settings
    # No request is sent here: MindsDB may come up after the gateway, and the first use
    # (or the health check) finds it then.
    session = aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=POOL_SIZE),
        # Every call carries its own deadline (asyncio.timeout); this bounds connecting.
        timeout=aiohttp.ClientTimeout(total=None, sock_connect=settings.mindsdb_timeout),
    )
    client = MindsDBClient(
        settings.mindsdb_url,
        session,
        user=settings.mindsdb_user,
        password=settings.mindsdb_password,
    )
    state = PluginState(session=session, engine=MindsDB(context, client))
    context.state[STATE_KEY] = state
    host = context.host
    if host is None:
        log.warning("no host on the context: MindsDB is not reconciled with the registry")
        return

    def done(result: Reconciliation) -> None:
        state.reconciliation = result

    started_at = datetime.now(UTC)
    state.reconciler = asyncio.create_task(
        reconcile_until_done(
            lambda: reconcile(state.engine, host, context, started_at=started_at), done
        ),
        name="weaver-mindsdb-reconcile",
    )


@hookimpl
async def weaver_shutdown(context: WeaverContext) -> None:
    state: PluginState | None = context.state.pop(STATE_KEY, None)
    if state is None:
        return
    if state.reconciler is not None:
        state.reconciler.cancel()
        await asyncio.gather(state.reconciler, return_exceptions=True)
    await state.session.close()


@hookimpl
async def check_health(context: WeaverContext) -> HealthCheck:
    state = _state(context)
    check = await state.engine.health()
    result = state.reconciliation
    extra = dict(check.extra)
    # Counts only: health answers without a token, and internal names stay inside.
    extra["reconciled"] = result is not None
    if result is not None:
        extra.update(
            recreated=len(result.recreated), failed=len(result.failed), strays=len(result.strays)
        )
    return HealthCheck(check.status, check.detail, check.latency_ms, extra)


# --- query engine -------------------------------------------------------------------------


@hookimpl
def sql_dialect(context: WeaverContext) -> str:
    return DIALECT


@hookimpl
def validate_connection(
    context: WeaverContext, engine: str, connection: dict[str, object]
) -> ConnectionSpec | None:
    return check_connection(engine, connection)


@hookimpl
async def register_datasource(
    context: WeaverContext, datasource: Datasource, connection: dict[str, object], replace: bool
) -> None:
    await _engine(context).register(datasource, connection, replace=replace)


@hookimpl
async def unregister_datasource(context: WeaverContext, datasource: Datasource) -> None:
    await _engine(context).unregister(datasource)


@hookimpl
async def execute_query(
    context: WeaverContext, principal: Principal, query: PreparedQuery
) -> QueryResult:
    return await _engine(context).execute(query)


@hookimpl
async def introspect_datasource(context: WeaverContext, datasource: Datasource) -> SchemaGraph:
    return await _engine(context).introspect(datasource)


@hookimpl
async def compute_statistics(
    context: WeaverContext, datasource: Datasource, graph: SchemaGraph
) -> DatasourceStatistics:
    return await _engine(context).statistics(datasource, graph)
