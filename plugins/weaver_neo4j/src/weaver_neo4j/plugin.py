"""The schema graph in Neo4j: this plugin owns ``store_metadata``, ``load_metadata``,
``search_metadata`` and the glossary links (``store_glossary_links`` and the two after
it); the datasource registry, snapshots, glossary terms and statistics stay with
whichever store owns them.

Enabled by ``WEAVER_METADATA_EXTERNAL_MODE=true``; the server is ``NEO4J_URI`` with
``NEO4J_USER``/``NEO4J_PASSWORD``. One async driver (its own connection pool) per
app, made by `Neo4jPlugin` at start-up.

Neo4j being down never stops the gateway: start-up only tries to create the constraints
and indexes, and every call first makes sure they exist, so a server that comes up later
is used — with its schema — from the first request that reaches it. Calls fail fast (a
short connect timeout, little retrying) with `Unavailable`, whose detail names the
failure but never the password. A server that is up but refuses the work for a while
(out of transaction memory, a deadlock) is retried by the driver's managed transactions
and, if it keeps refusing, reported as busy, with the reason and Neo4j's code.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import TypeVar

from neo4j import AsyncDriver, AsyncGraphDatabase, NotificationDisabledClassification
from neo4j.exceptions import (
    AuthError,
    Neo4jError,
    ServiceUnavailable,
    SessionExpired,
    TransientError,
)

from weaver import hookimpl
from weaver.errors import Unavailable
from weaver.opened import Opened
from weaver.settings import Settings
from weaver.types import (
    Datasource,
    GlossaryLink,
    GlossaryTerm,
    HealthCheck,
    JoinPath,
    JoinPathRequest,
    Page,
    SchemaGraph,
    SearchHit,
    SearchKind,
    parse_search_key,
)
from weaver_neo4j import versions
from weaver_neo4j.glossary import link_term, read_links, unlink_term
from weaver_neo4j.graph import GraphChanged, Row, read_graph, search_graph
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


def neo4j_driver(settings: Settings) -> AsyncDriver:
    return AsyncGraphDatabase.driver(
        settings.neo4j_uri,
        auth=(settings.neo4j_user, settings.neo4j_password),
        connection_timeout=CONNECT_TIMEOUT_SECONDS,
        connection_acquisition_timeout=2 * CONNECT_TIMEOUT_SECONDS,
        max_transaction_retry_time=RETRY_SECONDS,
        telemetry_disabled=True,
        # "Constraint already exists" and the like on every start are not news; nor is
        # a label, relationship type or property key no node has yet (`row_count` when
        # no synced table had a row count, `DESCRIBES` before the first glossary link),
        # which the planner would otherwise warn about on every read.
        notifications_min_severity="WARNING",
        notifications_disabled_classifications=[NotificationDisabledClassification.UNRECOGNIZED],
    )


# What Neo4j's codes for "up, but not now" mean, in the words an operator looks for.
BUSY_REASONS = {
    "Neo.TransientError.General.MemoryPoolOutOfMemoryError": "transaction memory limit",
    "Neo.TransientError.General.TransactionMemoryLimit": "transaction memory limit",
    "Neo.TransientError.Transaction.DeadlockDetected": "deadlock",
    "Neo.TransientError.Transaction.LockAcquisitionTimeout": "lock wait timeout",
    "Neo.TransientError.Transaction.MaximumTransactionLimitReached": "too many transactions",
    "Neo.TransientError.General.DatabaseUnavailable": "database not available yet",
}


def busy(error: Neo4jError) -> Unavailable:
    """The problem for a server that answered but refused the work after the driver's
    retries: what it is, with Neo4j's code (never its message, which may quote data)."""
    code = error.code or type(error).__name__
    reason = BUSY_REASONS.get(code, "a transient error")
    return Unavailable(
        f"the metadata graph's Neo4j is busy: {reason} ({code}); it is up and the work was"
        f" retried for {RETRY_SECONDS:g} s; try again later"
    )


@asynccontextmanager
async def reaching_neo4j() -> AsyncIterator[None]:
    """Turn "cannot talk to Neo4j" and "Neo4j refuses for now" into `Unavailable`; the
    detail reaches the caller, so it names the failure, never the server's address or
    the credentials."""
    try:
        yield
    except AuthError as error:
        raise Unavailable(
            "the metadata graph's Neo4j refused the configured credentials"
            " (NEO4J_USER/NEO4J_PASSWORD)"
        ) from error
    except Neo4jError as error:
        # Reached it is: a transient error (and any the server marks retryable) was
        # already retried by the driver's managed transaction for RETRY_SECONDS.
        if isinstance(error, TransientError) or error.is_retryable():
            raise busy(error) from error
        raise
    except (ServiceUnavailable, SessionExpired, OSError, TimeoutError) as error:
        raise Unavailable(
            f"the metadata graph's Neo4j cannot be reached ({type(error).__name__})"
        ) from error


class Neo4jCatalog:
    def __init__(self, settings: Settings) -> None:
        self.driver = neo4j_driver(settings)
        self.schema_ready = False
        self._schema_lock = asyncio.Lock()
        # How long a version may go untouched before another sync takes it for
        # abandoned (`weaver_neo4j.versions`).
        self.lease_seconds = versions.LEASE_SECONDS

    async def ready(self) -> AsyncDriver:
        """The driver, once the constraints and indexes exist."""
        if not self.schema_ready:
            async with self._schema_lock:
                if not self.schema_ready:
                    async with reaching_neo4j():
                        await ensure_schema(self.driver)
                    self.schema_ready = True
        return self.driver

    async def run(
        self, access: versions.Access, work: Callable[..., Awaitable[T]], *args: object
    ) -> T:
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
        """Write ``graph`` beside the current version, switch to it, purge the old one
        (`weaver_neo4j.versions`); versions that operations stopped half-way through
        are purged first."""
        await versions.sweep(self.run, self.lease_seconds)
        try:
            dangling = await versions.replace_graph(self.run, _scope(datasource), graph)
        except versions.LeaseLost:
            raise Unavailable(
                f"writing the schema graph paused for longer than {self.lease_seconds:g} s"
                " and was abandoned; sync again"
            ) from None
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
        await versions.delete_graph(self.run, _scope(datasource))

    async def store_links(self, term: GlossaryTerm) -> None:
        await self.run("write", link_term, term)

    async def delete_links(self, tenant_id: str, term_id: str) -> None:
        await self.run("write", unlink_term, tenant_id, term_id)

    async def load_links(self, datasource: Datasource) -> list[GlossaryLink]:
        return await self.run("read", read_links, _scope(datasource))

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
    async def find_join_paths(self, request: JoinPathRequest) -> list[JoinPath]:
        return await self.catalog.run("read", find_paths, request)

    @hookimpl
    async def delete_metadata(self, datasource: Datasource) -> None:
        await self.catalog.delete(datasource)

    @hookimpl
    async def store_glossary_links(self, term: GlossaryTerm) -> None:
        await self.catalog.store_links(term)

    @hookimpl
    async def delete_glossary_links(self, tenant_id: str, term_id: str) -> None:
        await self.catalog.delete_links(tenant_id, term_id)

    @hookimpl
    async def load_glossary_links(self, datasource: Datasource) -> list[GlossaryLink]:
        return await self.catalog.load_links(datasource)
