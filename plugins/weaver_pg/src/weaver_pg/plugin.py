"""Snapshots, glossary and statistics in PostgreSQL, shared by every gateway process.

Enabled by ``WEAVER_METADATA_PG_MODE=true``; the server is ``POSTGRES_DSN``. The plugin
owns the snapshot, glossary and statistics hooks; the datasource registry and the schema
graph stay with whichever store owns them (the embedded one by default), and
``delete_metadata`` removes what this plugin holds of a datasource.

Postgres being down must neither stop the gateway from starting nor stall it: the pool
is opened (and the schema migrated) on first use, retried on every later call until it
works, every wait is bounded, and a failure to reach the server is raised as
``Unavailable``. ``check_health`` reports it meanwhile.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import asyncpg

from weaver import codec, hookimpl
from weaver.errors import Conflict, NotFound, Unavailable
from weaver.opened import Opened
from weaver.settings import Settings
from weaver.types import (
    Datasource,
    DatasourceStatistics,
    GlossaryTerm,
    HealthCheck,
    Page,
    SchemaGraph,
    Snapshot,
    SnapshotSummary,
)
from weaver_pg.schema import SCHEMA, migrate

log = logging.getLogger(__name__)

PLUGIN_NAME = "pg"
POOL_SIZE = 10
# Each bound is well inside a client's patience; the health check has its own, shorter,
# timeout from the core.
CONNECT_TIMEOUT_SECONDS = 3.0
ACQUIRE_TIMEOUT_SECONDS = 5.0
COMMAND_TIMEOUT_SECONDS = 10.0
CLOSE_TIMEOUT_SECONDS = 5.0

# What losing the server in the middle of a call looks like, as opposed to the server
# refusing a statement.
CONNECTION_ERRORS = (
    OSError,
    TimeoutError,
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.CannotConnectNowError,
    asyncpg.TooManyConnectionsError,
)


class PgStore:
    """A pool opened on first use and migrated before anything else runs on it."""

    def __init__(self, dsn: str) -> None:
        self.dsn = dsn
        self._pool: Any = None
        self._opening = asyncio.Lock()

    async def _open(self) -> Any:
        async with self._opening:
            if self._pool is None:
                pool = await asyncpg.create_pool(
                    self.dsn,
                    min_size=1,
                    max_size=POOL_SIZE,
                    timeout=CONNECT_TIMEOUT_SECONDS,
                    command_timeout=COMMAND_TIMEOUT_SECONDS,
                )
                try:
                    async with pool.acquire(timeout=ACQUIRE_TIMEOUT_SECONDS) as connection:
                        await migrate(connection)
                except BaseException:
                    pool.terminate()
                    raise
                self._pool = pool
        return self._pool

    @asynccontextmanager
    async def connection(self) -> AsyncIterator[Any]:
        """A pooled connection, or ``Unavailable`` when the server cannot be used."""
        try:
            # Any failure to open counts: a wrong password or a missing database is fixed
            # outside the gateway, which then recovers by itself.
            pool = self._pool if self._pool is not None else await self._open()
        except Exception as error:
            raise _unavailable(error) from error
        try:
            async with pool.acquire(timeout=ACQUIRE_TIMEOUT_SECONDS) as connection:
                yield connection
        except CONNECTION_ERRORS as error:
            raise _unavailable(error) from error

    async def close(self) -> None:
        if self._pool is None:
            return
        pool, self._pool = self._pool, None
        try:
            async with asyncio.timeout(CLOSE_TIMEOUT_SECONDS):
                await pool.close()
        except TimeoutError:
            pool.terminate()


def _describe(error: BaseException) -> str:
    # asyncpg's messages name the host and user at most, never the password.
    return f"{type(error).__name__}: {error}" if str(error) else type(error).__name__


def _unavailable(error: Exception) -> Unavailable:
    log.warning("PostgreSQL metadata store unavailable: %s", _describe(error))
    # The detail reaches tenants, so it stays generic; the health check reports the cause.
    return Unavailable("the PostgreSQL metadata store is unavailable")


_TERM_COLUMNS = "tenant_id, id, term, definition, synonyms, columns, created_at, updated_at"
# Terms are listed, paged and kept unique by this key (see the schema's unique index).
_TERM_KEY = 'lower(term) COLLATE "C"'


def _term(row: Any) -> GlossaryTerm:
    return GlossaryTerm(
        tenant_id=row["tenant_id"],
        id=row["id"],
        term=row["term"],
        definition=row["definition"],
        synonyms=tuple(row["synonyms"]),
        columns=tuple(row["columns"]),
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )


class PgPlugin:
    """The hooks, one instance per app, with its own pool."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._store = Opened[PgStore]("the PostgreSQL metadata store")

    @property
    def store(self) -> PgStore:
        return self._store.get()

    @hookimpl
    async def weaver_startup(self) -> None:
        if not self.settings.postgres_dsn:
            raise RuntimeError("POSTGRES_DSN is not set")
        store = self._store.open(PgStore(self.settings.postgres_dsn))
        # Not fatal (and already logged): every later call tries again, and check_health
        # reports the store down until one succeeds.
        with contextlib.suppress(Unavailable):
            async with store.connection():
                pass

    @hookimpl
    async def weaver_shutdown(self) -> None:
        store = self._store.take()
        if store is not None:
            await store.close()

    @hookimpl
    async def check_health(self) -> HealthCheck:
        try:
            async with self.store.connection() as connection:
                await connection.fetchval("SELECT 1")
        except Unavailable as error:
            return HealthCheck("down", _describe(error.__cause__ or error))
        return HealthCheck("up")

    @hookimpl
    async def delete_metadata(self, datasource: Datasource) -> None:
        async with self.store.connection() as connection, connection.transaction():
            for table in ("snapshots", "statistics"):
                await connection.execute(
                    f"DELETE FROM {SCHEMA}.{table} WHERE tenant_id = $1 AND datasource = $2",
                    datasource.tenant_id,
                    datasource.name,
                )

    @hookimpl
    async def save_snapshot(self, snapshot: Snapshot) -> None:
        async with self.store.connection() as connection:
            try:
                await connection.execute(
                    f"INSERT INTO {SCHEMA}.snapshots"
                    " (tenant_id, datasource, id, created_at, tables, columns, graph)"
                    " VALUES ($1, $2, $3, $4, $5, $6, $7::jsonb)",
                    snapshot.tenant_id,
                    snapshot.datasource_name,
                    snapshot.id,
                    snapshot.created_at,
                    len(snapshot.graph.tables),
                    snapshot.graph.column_count,
                    codec.dumps(snapshot.graph),
                )
            except asyncpg.UniqueViolationError:
                raise Conflict(f"snapshot {snapshot.id!r} already exists") from None

    @hookimpl
    async def list_snapshots(self, datasource: Datasource, page: Page) -> list[SnapshotSummary]:
        # An unknown cursor compares as NULL, so it yields an empty page.
        async with self.store.connection() as connection:
            rows = await connection.fetch(
                f"SELECT id, created_at, tables, columns FROM {SCHEMA}.snapshots"
                " WHERE tenant_id = $1 AND datasource = $2"
                f" AND ($3::text IS NULL OR (created_at, id) < (SELECT created_at, id"
                f" FROM {SCHEMA}.snapshots WHERE tenant_id = $1 AND datasource = $2 AND id = $3))"
                " ORDER BY created_at DESC, id DESC LIMIT $4",
                datasource.tenant_id,
                datasource.name,
                page.after,
                page.limit,
            )
        return [SnapshotSummary(r["id"], r["created_at"], r["tables"], r["columns"]) for r in rows]

    @hookimpl
    async def get_snapshot(self, datasource: Datasource, snapshot_id: str) -> Snapshot | None:
        async with self.store.connection() as connection:
            row = await connection.fetchrow(
                f"SELECT created_at, graph FROM {SCHEMA}.snapshots"
                " WHERE tenant_id = $1 AND datasource = $2 AND id = $3",
                datasource.tenant_id,
                datasource.name,
                snapshot_id,
            )
        if row is None:
            return None
        return Snapshot(
            id=snapshot_id,
            tenant_id=datasource.tenant_id,
            datasource_name=datasource.name,
            created_at=row["created_at"],
            graph=codec.loads(SchemaGraph, row["graph"]),
        )

    @hookimpl
    async def save_glossary_term(self, term: GlossaryTerm, create: bool) -> None:
        values = (
            term.tenant_id,
            term.id,
            term.term,
            term.definition,
            list(term.synonyms),
            list(term.columns),
            term.created_at,
            term.updated_at,
        )
        if create:
            statement = (
                f"INSERT INTO {SCHEMA}.glossary_terms ({_TERM_COLUMNS})"
                " VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
            )
        else:
            statement = (
                f"UPDATE {SCHEMA}.glossary_terms SET term = $3, definition = $4, synonyms = $5,"
                " columns = $6, created_at = $7, updated_at = $8 WHERE tenant_id = $1 AND id = $2"
            )
        async with self.store.connection() as connection:
            try:
                status: str = await connection.execute(statement, *values)
            except asyncpg.UniqueViolationError:
                raise Conflict(f"glossary term {term.term!r} already exists") from None
        if status == "UPDATE 0":
            raise NotFound(f"glossary term {term.id!r} not found")

    @hookimpl
    async def get_glossary_term(self, tenant_id: str, term_id: str) -> GlossaryTerm | None:
        async with self.store.connection() as connection:
            row = await connection.fetchrow(
                f"SELECT {_TERM_COLUMNS} FROM {SCHEMA}.glossary_terms"
                " WHERE tenant_id = $1 AND id = $2",
                tenant_id,
                term_id,
            )
        return _term(row) if row is not None else None

    @hookimpl
    async def list_glossary_terms(
        self, tenant_id: str, text: str | None, page: Page
    ) -> list[GlossaryTerm]:
        # Terms are never empty, so '' precedes them all when there is no cursor.
        async with self.store.connection() as connection:
            rows = await connection.fetch(
                f"SELECT {_TERM_COLUMNS} FROM {SCHEMA}.glossary_terms"
                f" WHERE tenant_id = $1 AND {_TERM_KEY} > $2"
                " AND ($3::text IS NULL OR strpos(lower(term), lower($3)) > 0"
                " OR strpos(lower(definition), lower($3)) > 0"
                " OR EXISTS (SELECT 1 FROM unnest(synonyms) AS synonym"
                " WHERE strpos(lower(synonym), lower($3)) > 0))"
                f" ORDER BY {_TERM_KEY} LIMIT $4",
                tenant_id,
                page.after or "",
                text,
                page.limit,
            )
        return [_term(row) for row in rows]

    @hookimpl
    async def delete_glossary_term(self, tenant_id: str, term_id: str) -> bool:
        async with self.store.connection() as connection:
            status: str = await connection.execute(
                f"DELETE FROM {SCHEMA}.glossary_terms WHERE tenant_id = $1 AND id = $2",
                tenant_id,
                term_id,
            )
        return status != "DELETE 0"

    @hookimpl
    async def save_statistics(
        self, datasource: Datasource, statistics: DatasourceStatistics
    ) -> None:
        async with self.store.connection() as connection:
            await connection.execute(
                f"INSERT INTO {SCHEMA}.statistics (tenant_id, datasource, computed_at, statistics)"
                " VALUES ($1, $2, $3, $4::jsonb) ON CONFLICT (tenant_id, datasource)"
                " DO UPDATE SET computed_at = excluded.computed_at,"
                " statistics = excluded.statistics",
                datasource.tenant_id,
                datasource.name,
                statistics.computed_at,
                codec.dumps(statistics),
            )

    @hookimpl
    async def load_statistics(self, datasource: Datasource) -> DatasourceStatistics | None:
        async with self.store.connection() as connection:
            document = await connection.fetchval(
                f"SELECT statistics FROM {SCHEMA}.statistics"
                " WHERE tenant_id = $1 AND datasource = $2",
                datasource.tenant_id,
                datasource.name,
            )
        return codec.loads(DatasourceStatistics, document) if document is not None else None
