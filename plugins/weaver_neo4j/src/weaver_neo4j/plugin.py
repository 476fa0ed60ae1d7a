"""The schema graph in Neo4j: this plugin owns ``store_metadata``, ``load_metadata`` and
``search_metadata``; the datasource registry, snapshots, glossary and statistics stay
with whichever store owns them.

Enabled by ``WEAVER_METADATA_EXTERNAL_MODE=true``; the server is ``NEO4J_URI`` with
``NEO4J_USER``/``NEO4J_PASSWORD``. One async driver (its own connection pool) per
app, made by `Neo4jPlugin` at start-up.

Neo4j being down never stops the gateway: start-up only tries to create the constraints
and indexes, and every call first makes sure they exist, so a server that comes up later
is used — with its schema — from the first request that reaches it. Calls fail fast (a
short connect timeout, little retrying) with `Unavailable`, whose detail names the
failure but never the password.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from typing import Literal, TypeVar

from neo4j import AsyncDriver, AsyncGraphDatabase
from neo4j.exceptions import AuthError, ServiceUnavailable, SessionExpired, TransientError

from weaver import hookimpl
from weaver.errors import Unavailable
from weaver.opened import Opened
from weaver.settings import Settings
from weaver.types import (
    Datasource,
    HealthCheck,
    JoinHop,
    JoinPath,
    Page,
    SchemaGraph,
    SearchHit,
    SearchKind,
    TableName,
    parse_search_key,
)
from weaver_neo4j.graph import (
    GraphChanged,
    Row,
    delete_graph,
    read_graph,
    replace_graph,
    search_graph,
)
from weaver_neo4j.paths import find_paths
from weaver_neo4j.schema import ensure_schema

PLUGIN_NAME = "neo4j"
log = logging.getLogger(__name__)

# A reachable server answers a TCP connect in milliseconds; waiting longer only delays
# the 503 of a request that cannot be served.
CONNECT_TIMEOUT_SECONDS = 2.0
# Managed transactions retry transient failures (a deadlock, a lost connection) until
# this much time has passed; the driver's default of 30 s would hold a request that long.
RETRY_SECONDS = 2.0
# Runs of a transaction before giving up when every one ran into another's change; a
# collision is rare (a few in a thousand loads while syncs run back to back).
ATTEMPTS = 3

T = TypeVar("T")
Access = Literal["read", "write"]


def neo4j_driver(settings: Settings) -> AsyncDriver:
    return AsyncGraphDatabase.driver(
        settings.neo4j_uri,
        auth=(settings.neo4j_user, settings.neo4j_password),
        connection_timeout=CONNECT_TIMEOUT_SECONDS,
        connection_acquisition_timeout=2 * CONNECT_TIMEOUT_SECONDS,
        max_transaction_retry_time=RETRY_SECONDS,
        telemetry_disabled=True,
        # "Constraint already exists" and the like on every start are not news.
        notifications_min_severity="WARNING",
    )


@asynccontextmanager
async def reaching_neo4j() -> AsyncIterator[None]:
    """Turn "cannot talk to Neo4j" into `Unavailable`; the detail reaches the caller, so
    it names the failure, never the server's address or the credentials."""
    try:
        yield
    except AuthError as error:
        raise Unavailable(
            "the metadata graph's Neo4j refused the configured credentials"
            " (NEO4J_USER/NEO4J_PASSWORD)"
        ) from error
    except (ServiceUnavailable, SessionExpired, TransientError, OSError, TimeoutError) as error:
        raise Unavailable(
            f"the metadata graph's Neo4j cannot be reached ({type(error).__name__})"
        ) from error


class Neo4jCatalog:
    def __init__(self, settings: Settings) -> None:
        self.driver = neo4j_driver(settings)
        self.schema_ready = False
        self._schema_lock = asyncio.Lock()

    async def ready(self) -> AsyncDriver:
        """The driver, once the constraints and indexes exist."""
        if not self.schema_ready:
            async with self._schema_lock:
                if not self.schema_ready:
                    async with reaching_neo4j():
                        await ensure_schema(self.driver)
                    self.schema_ready = True
        return self.driver

    async def run(self, access: Access, work: Callable[..., Awaitable[T]], *args: object) -> T:
        """``work(tx, *args)`` in a managed transaction, made again when it ran into
        another transaction's change (`GraphChanged`)."""
        driver = await self.ready()
        for _attempt in range(ATTEMPTS):
            try:
                async with reaching_neo4j(), driver.session() as session:
                    if access == "write":
                        return await session.execute_write(work, *args)
                    return await session.execute_read(work, *args)
            except GraphChanged:
                continue
        raise Unavailable("the schema graph kept changing while it was used; try again")

    async def store(self, datasource: Datasource, graph: SchemaGraph) -> None:
        sync_id = uuid.uuid4().hex
        dangling = await self.run("write", replace_graph, _scope(datasource), graph, sync_id)
        if dangling:
            log.warning(
                "%d foreign keys of datasource %r (tenant %r) name columns outside its"
                " graph; they are not stored",
                dangling,
                datasource.name,
                datasource.tenant_id,
            )

    async def load(self, datasource: Datasource) -> SchemaGraph | None:
        return await self.run("read", read_graph, _scope(datasource))

    async def search(
        self, tenant_id: str, text: str, kind: SearchKind, page: Page
    ) -> list[SearchHit]:
        cursor = parse_search_key(kind, page.after)
        return await self.run("read", search_graph, tenant_id, text, kind, cursor, page.limit)

    async def delete(self, datasource: Datasource) -> None:
        await self.run("write", delete_graph, _scope(datasource))

    async def health(self) -> HealthCheck:
        started = time.perf_counter()
        try:
            async with reaching_neo4j(), self.driver.session() as session:
                await (await session.run("RETURN 1")).consume()
        except Unavailable as error:
            return HealthCheck("down", error.detail)
        return HealthCheck("up", latency_ms=round((time.perf_counter() - started) * 1000, 2))


def _scope(datasource: Datasource) -> Row:
    return {"tenant_id": datasource.tenant_id, "datasource": datasource.name}


class Neo4jPlugin:
    """The hooks, one instance per app; its catalog (and driver) is made at start-up."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        # Empty when start-up failed (a malformed NEO4J_URI); the plugin is reported down.
        self._catalog = Opened[Neo4jCatalog]("the metadata graph's Neo4j driver")

    @property
    def catalog(self) -> Neo4jCatalog:
        return self._catalog.get()

    @hookimpl
    async def weaver_startup(self) -> None:
        catalog = self._catalog.open(Neo4jCatalog(self.settings))
        try:
            await catalog.ready()
        except Unavailable as error:
            log.warning("%s; constraints and indexes will be created on first use", error.detail)

    @hookimpl
    async def weaver_shutdown(self) -> None:
        catalog = self._catalog.take()
        if catalog is not None:
            await catalog.driver.close()

    @hookimpl
    async def check_health(self) -> HealthCheck:
        return await self.catalog.health()

    @hookimpl
    async def store_metadata(self, datasource: Datasource, graph: SchemaGraph) -> None:
        await self.catalog.store(datasource, graph)

    @hookimpl
    async def load_metadata(self, datasource: Datasource) -> SchemaGraph | None:
        return await self.catalog.load(datasource)

    @hookimpl
    async def search_metadata(
        self, tenant_id: str, text: str, kind: SearchKind, page: Page
    ) -> list[SearchHit]:
        return await self.catalog.search(tenant_id, text, kind, page)

    @hookimpl
    async def find_join_paths(
        self,
        tenant_id: str,
        start: TableName,
        end: TableName,
        max_hops: int,
        bridges: Sequence[JoinHop],
        limit: int,
    ) -> list[JoinPath]:
        return await self.catalog.run(
            "read", find_paths, tenant_id, start, end, max_hops, bridges, limit
        )

    @hookimpl
    async def delete_metadata(self, datasource: Datasource) -> None:
        await self.catalog.delete(datasource)
