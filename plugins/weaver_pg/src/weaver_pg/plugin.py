"""Snapshots, glossary, statistics and queries in PostgreSQL, shared by every gateway
process.

Enabled by ``WEAVER_METADATA_PG_MODE=true``; the server is ``POSTGRES_DSN``. The plugin
owns the snapshot, glossary and statistics hooks, and the query records and async
results (so that processes on several hosts share the query history, cancel each other's
queries, see each other's results, and fail the queries of a process that died); the
datasource registry and the schema graph stay with whichever store owns them (the
embedded one by default), and ``delete_metadata`` removes what this plugin holds of a
datasource.

Queries are written by several processes at once. Each statement that another process
may race is safe by itself: a cancel mark is one conditional ``UPDATE``, a sweep fails
and deletes only rows it could lock (``FOR UPDATE SKIP LOCKED``: two sweepers never
wait for each other, and never both act on one row), and storing a result chunk holds
the tenant's advisory lock for its transaction, so two writers cannot both see room
that only one of them may take.

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
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import asyncpg

from weaver import codec, hookimpl
from weaver.errors import (
    Conflict,
    GatewayLost,
    NotFound,
    PayloadTooLarge,
    Unavailable,
    problem_body,
)
from weaver.opened import Opened
from weaver.settings import Settings
from weaver.types import (
    Datasource,
    DatasourceStatistics,
    GlossaryTerm,
    HealthCheck,
    Page,
    QueryRecord,
    QuerySweep,
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


_QUERY_COLUMNS = "record, status, owner, lease_until, cancel_requested, result_expires_at"
_UNFINISHED = "status IN ('queued', 'running')"
# The class of the advisory locks that serialise the writers of one tenant's results
# (the second key is the tenant's hash; a collision only makes two tenants take turns).
_RESULTS_LOCK = 0x77726573  # "wres"


def _query(row: Any) -> QueryRecord:
    # The columns are the authority for what others than the owner change.
    return replace(
        codec.loads(QueryRecord, row["record"]),
        status=row["status"],
        owner=row["owner"],
        lease_until=row["lease_until"],
        cancel_requested=row["cancel_requested"],
        result_expires_at=row["result_expires_at"],
    )


def _lost(document: str, now: datetime) -> str:
    """The document of a query whose process is gone, as a sweep leaves it."""
    record = codec.loads(QueryRecord, document)
    failed = replace(
        record,
        status="failed",
        finished_at=now,
        error=problem_body(GatewayLost()),
        owner=None,
        lease_until=None,
    )
    return codec.dumps(failed)


def _rowcount(status: str) -> int:
    """The row count of a command status such as ``DELETE 3``."""
    return int(status.rpartition(" ")[2])


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

    # --- query records and results -----------------------------------------------------

    @hookimpl
    async def save_query(self, record: QueryRecord, create: bool) -> None:
        values = (
            record.tenant_id,
            record.query_id,
            record.subject,
            record.status,
            record.submitted_at,
            record.owner,
            record.lease_until,
            record.result_expires_at,
            codec.dumps(record),
        )
        async with self.store.connection() as connection:
            if create:
                try:
                    await connection.execute(
                        f"INSERT INTO {SCHEMA}.queries (tenant_id, query_id, subject, status,"
                        " submitted_at, owner, lease_until, result_expires_at, record,"
                        " cancel_requested) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
                        *values,
                        record.cancel_requested,
                    )
                except asyncpg.UniqueViolationError:
                    raise Conflict(f"query {record.query_id!r} already exists") from None
                return
            # cancel_requested is left as it is: another process may have set it.
            status: str = await connection.execute(
                f"UPDATE {SCHEMA}.queries SET subject = $3, status = $4, submitted_at = $5,"
                " owner = $6, lease_until = $7, result_expires_at = $8, record = $9"
                " WHERE tenant_id = $1 AND query_id = $2",
                *values,
            )
        if status == "UPDATE 0":
            raise NotFound(f"query {record.query_id!r} not found")

    @hookimpl
    async def get_query(self, tenant_id: str, query_id: str) -> QueryRecord | None:
        async with self.store.connection() as connection:
            row = await connection.fetchrow(
                f"SELECT {_QUERY_COLUMNS} FROM {SCHEMA}.queries"
                " WHERE tenant_id = $1 AND query_id = $2",
                tenant_id,
                query_id,
            )
        return _query(row) if row is not None else None

    @hookimpl
    async def list_queries(
        self, tenant_id: str, subject: str | None, status: str | None, page: Page
    ) -> list[QueryRecord]:
        # Conditions are left out rather than written "$n IS NULL OR ...", so that every
        # combination has a plan that walks one of the newest-first indexes.
        values: list[Any] = [tenant_id]
        where = ["tenant_id = $1"]
        for column, value in (("subject", subject), ("status", status)):
            if value is not None:
                values.append(value)
                where.append(f"{column} = ${len(values)}")
        if page.after is not None:
            # An unknown cursor compares as NULL, so it yields an empty page.
            values.append(page.after)
            where.append(
                f"(submitted_at, query_id) < (SELECT submitted_at, query_id FROM {SCHEMA}.queries"
                f" WHERE tenant_id = $1 AND query_id = ${len(values)})"
            )
        values.append(page.limit)
        async with self.store.connection() as connection:
            rows = await connection.fetch(
                f"SELECT {_QUERY_COLUMNS} FROM {SCHEMA}.queries WHERE {' AND '.join(where)}"
                f" ORDER BY submitted_at DESC, query_id DESC LIMIT ${len(values)}",
                *values,
            )
        return [_query(row) for row in rows]

    @hookimpl
    async def request_query_cancel(self, tenant_id: str, query_id: str) -> bool:
        async with self.store.connection() as connection:
            status: str = await connection.execute(
                f"UPDATE {SCHEMA}.queries SET cancel_requested = true"
                f" WHERE tenant_id = $1 AND query_id = $2 AND {_UNFINISHED}",
                tenant_id,
                query_id,
            )
        return status != "UPDATE 0"

    @hookimpl
    async def poll_queries(self, owner: str, lease_until: datetime | None) -> list[str]:
        async with self.store.connection() as connection:
            if lease_until is None:
                rows = await connection.fetch(
                    f"SELECT query_id FROM {SCHEMA}.queries"
                    f" WHERE owner = $1 AND {_UNFINISHED} AND cancel_requested",
                    owner,
                )
            else:
                # One round trip: the renewal reports the marks of the rows it renewed.
                rows = await connection.fetch(
                    f"WITH renewed AS (UPDATE {SCHEMA}.queries SET lease_until = $2"
                    f" WHERE owner = $1 AND {_UNFINISHED} RETURNING query_id, cancel_requested)"
                    " SELECT query_id FROM renewed WHERE cancel_requested",
                    owner,
                    lease_until,
                )
        return [row["query_id"] for row in rows]

    @hookimpl
    async def sweep_queries(self, now: datetime, history_before: datetime) -> QuerySweep:
        async with self.store.connection() as connection, connection.transaction():
            # Rows another sweeper (or the owner, writing the query's end) holds are left
            # to it; the rest are this sweeper's alone until it commits.
            lapsed = await connection.fetch(
                f"SELECT tenant_id, query_id, record FROM {SCHEMA}.queries"
                f" WHERE {_UNFINISHED} AND lease_until < $1 FOR UPDATE SKIP LOCKED",
                now,
            )
            # The document changes too, in Python: the codec writes it, never SQL.
            await connection.executemany(
                f"UPDATE {SCHEMA}.queries SET status = 'failed', owner = NULL,"
                " lease_until = NULL, record = $3 WHERE tenant_id = $1 AND query_id = $2",
                [(row["tenant_id"], row["query_id"], _lost(row["record"], now)) for row in lapsed],
            )
            await connection.execute(
                f"DELETE FROM {SCHEMA}.query_results WHERE (tenant_id, query_id, chunk) IN"
                f" (SELECT r.tenant_id, r.query_id, r.chunk FROM {SCHEMA}.query_results AS r"
                f" JOIN {SCHEMA}.queries AS q USING (tenant_id, query_id)"
                " WHERE q.result_expires_at < $1 OR q.submitted_at < $2"
                " FOR UPDATE OF r SKIP LOCKED)",
                now,
                history_before,
            )
            deleted: str = await connection.execute(
                f"DELETE FROM {SCHEMA}.queries WHERE (tenant_id, query_id) IN"
                f" (SELECT tenant_id, query_id FROM {SCHEMA}.queries WHERE submitted_at < $1"
                " FOR UPDATE SKIP LOCKED)",
                history_before,
            )
            stored: int = await connection.fetchval(
                f"SELECT coalesce(sum(bytes), 0) FROM {SCHEMA}.query_results"
            )
        return QuerySweep(len(lapsed), _rowcount(deleted), stored)

    @hookimpl
    async def save_result_chunk(
        self, tenant_id: str, query_id: str, index: int, rows: bytes, max_tenant_bytes: int
    ) -> None:
        evicted_at = datetime.now(UTC)
        async with self.store.connection() as connection, connection.transaction():
            await connection.execute(
                "SELECT pg_advisory_xact_lock($1, hashtext($2))", _RESULTS_LOCK, tenant_id
            )
            # clock_timestamp(), not now(): the order chunks were stored in, across
            # transactions that began in another order than they took the lock.
            await connection.execute(
                f"INSERT INTO {SCHEMA}.query_results (tenant_id, query_id, chunk, stored_at, data)"
                " VALUES ($1, $2, $3, clock_timestamp(), $4)"
                " ON CONFLICT (tenant_id, query_id, chunk)"
                " DO UPDATE SET stored_at = excluded.stored_at, data = excluded.data",
                tenant_id,
                query_id,
                index,
                rows,
            )
            total: int = await connection.fetchval(
                f"SELECT coalesce(sum(bytes), 0) FROM {SCHEMA}.query_results WHERE tenant_id = $1",
                tenant_id,
            )
            if total <= max_tenant_bytes:
                return
            others = await connection.fetch(
                f"SELECT query_id, sum(bytes) AS bytes FROM {SCHEMA}.query_results"
                " WHERE tenant_id = $1 AND query_id <> $2 GROUP BY query_id"
                " ORDER BY min(stored_at), query_id",
                tenant_id,
                query_id,
            )
            evicted: list[str] = []
            for other in others:
                if total <= max_tenant_bytes:
                    break
                evicted.append(other["query_id"])
                total -= other["bytes"]
            if total > max_tenant_bytes:
                # Raised inside the transaction: nothing is evicted, the chunk not kept.
                raise PayloadTooLarge(
                    f"the result is larger than the {max_tenant_bytes} bytes a tenant may"
                    " keep; ask for fewer rows"
                )
            await connection.execute(
                f"DELETE FROM {SCHEMA}.query_results"
                " WHERE tenant_id = $1 AND query_id = any($2::text[])",
                tenant_id,
                evicted,
            )
            # Evicted results answer 410 from now on.
            await connection.execute(
                f"UPDATE {SCHEMA}.queries SET result_expires_at = $3"
                " WHERE tenant_id = $1 AND query_id = any($2::text[])",
                tenant_id,
                evicted,
                evicted_at,
            )

    @hookimpl
    async def load_result_chunks(
        self, tenant_id: str, query_id: str, first: int, last: int
    ) -> list[bytes]:
        async with self.store.connection() as connection:
            rows = await connection.fetch(
                f"SELECT data FROM {SCHEMA}.query_results WHERE tenant_id = $1"
                " AND query_id = $2 AND chunk BETWEEN $3 AND $4 ORDER BY chunk",
                tenant_id,
                query_id,
                first,
                last,
            )
        return [row["data"] for row in rows]

    @hookimpl
    async def delete_results(self, tenant_id: str, query_id: str) -> None:
        async with self.store.connection() as connection:
            await connection.execute(
                f"DELETE FROM {SCHEMA}.query_results WHERE tenant_id = $1 AND query_id = $2",
                tenant_id,
                query_id,
            )
