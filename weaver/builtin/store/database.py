"""The embedded store's file: its schema (migrations), its connections, and the three
ways of running work on them.

Where the work runs. Writes may wait on another process's lock, so they go to the
store's one writer thread, in groups (see `SQLiteStore.write`); document reads or
searches may take milliseconds, so they go to worker threads (``asyncio.to_thread``, one
connection per thread). Point lookups and short pages of small indexed rows (a
datasource, the datasource list, a glossary term, snapshot summaries) run on the loop
thread: in WAL mode a reader never waits for a writer, fetching one datasource row takes
about 7 µs of SQLite work against about 90 µs for the thread hand-off (measured here), and
turning rows into records is Python work that holds the GIL wherever it runs — the
difference decides ``GET /api/datasources`` throughput. That connection has no busy
timeout, so in the rare moments a reader must wait (WAL recovery, the last connection's
checkpoint) it fails at once and the read is retried in a thread instead of stalling the
loop.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import Callable, Hashable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar, cast

from weaver.errors import Unavailable

DB_FILE = "weaver.db"
BUSY_TIMEOUT_MS = 5000
# Records `SQLiteStore.remembered` keeps at most between two changes to the file.
REMEMBERED_RECORDS = 10_000

T = TypeVar("T")
Row = tuple[Any, ...]

# Migration N (1-based) brings `PRAGMA user_version` from N-1 to N. Append, never edit.
MIGRATIONS: tuple[tuple[str, ...], ...] = (
    (
        """CREATE TABLE datasources (
            tenant_id TEXT NOT NULL,
            name TEXT NOT NULL,
            engine TEXT NOT NULL,
            internal_name TEXT NOT NULL,
            connection TEXT NOT NULL,
            sealed_secrets TEXT NOT NULL,
            secret_keys TEXT NOT NULL,
            description TEXT,
            created_at TEXT NOT NULL,
            updated_at TEXT NOT NULL,
            PRIMARY KEY (tenant_id, name)
        ) WITHOUT ROWID""",
        """CREATE TABLE graphs (
            tenant_id TEXT NOT NULL,
            datasource TEXT NOT NULL,
            document TEXT NOT NULL,
            PRIMARY KEY (tenant_id, datasource)
        ) WITHOUT ROWID""",
        # column_name is '' on table rows so that one key orders tables and columns alike.
        """CREATE TABLE catalog_objects (
            tenant_id TEXT NOT NULL,
            kind TEXT NOT NULL CHECK (kind IN ('table', 'column')),
            datasource TEXT NOT NULL,
            schema_name TEXT NOT NULL,
            table_name TEXT NOT NULL,
            column_name TEXT NOT NULL,
            data_type TEXT,
            name_lower TEXT NOT NULL,
            PRIMARY KEY (tenant_id, kind, datasource, schema_name, table_name, column_name)
        ) WITHOUT ROWID""",
        """CREATE INDEX catalog_objects_by_datasource
            ON catalog_objects (tenant_id, datasource)""",
        """CREATE TABLE snapshots (
            tenant_id TEXT NOT NULL,
            datasource TEXT NOT NULL,
            id TEXT NOT NULL,
            created_at TEXT NOT NULL,
            tables INTEGER NOT NULL,
            columns INTEGER NOT NULL,
            document TEXT NOT NULL,
            PRIMARY KEY (tenant_id, datasource, id)
        ) WITHOUT ROWID""",
        """CREATE INDEX snapshots_newest_first
            ON snapshots (tenant_id, datasource, created_at DESC, id DESC)""",
        # term_lower is Python's (Unicode) lower-casing; SQLite's lower() knows only ASCII.
        """CREATE TABLE glossary_terms (
            tenant_id TEXT NOT NULL,
            id TEXT NOT NULL,
            term TEXT NOT NULL,
            term_lower TEXT NOT NULL,
            definition TEXT NOT NULL,
            synonyms TEXT NOT NULL,
            columns TEXT NOT NULL,
            search_text TEXT NOT NULL,
            created_at TEXT NOT NULL,
            updated_at TEXT NOT NULL,
            PRIMARY KEY (tenant_id, id)
        ) WITHOUT ROWID""",
        """CREATE UNIQUE INDEX glossary_terms_unique_term
            ON glossary_terms (tenant_id, term_lower)""",
        """CREATE TABLE statistics (
            tenant_id TEXT NOT NULL,
            datasource TEXT NOT NULL,
            document TEXT NOT NULL,
            PRIMARY KEY (tenant_id, datasource)
        ) WITHOUT ROWID""",
    ),
    # Queries as resources. The record is a JSON document; the columns beside it are
    # what is searched or changed by others than the owner (cancel_requested, the lease).
    (
        """CREATE TABLE queries (
            tenant_id TEXT NOT NULL,
            query_id TEXT NOT NULL,
            subject TEXT NOT NULL,
            status TEXT NOT NULL,
            submitted_at TEXT NOT NULL,
            owner TEXT,
            lease_until TEXT,
            cancel_requested INTEGER NOT NULL DEFAULT 0,
            result_expires_at TEXT,
            document TEXT NOT NULL,
            PRIMARY KEY (tenant_id, query_id)
        ) WITHOUT ROWID""",
        """CREATE INDEX queries_newest_first
            ON queries (tenant_id, submitted_at DESC, query_id DESC)""",
        "CREATE INDEX queries_by_owner ON queries (owner) WHERE owner IS NOT NULL",
        """CREATE INDEX queries_unfinished ON queries (lease_until)
            WHERE status IN ('queued', 'running')""",
        "CREATE INDEX queries_by_age ON queries (submitted_at)",
        """CREATE TABLE query_results (
            tenant_id TEXT NOT NULL,
            query_id TEXT NOT NULL,
            chunk INTEGER NOT NULL,
            stored_at TEXT NOT NULL,
            bytes INTEGER NOT NULL,
            data BLOB NOT NULL,
            PRIMARY KEY (tenant_id, query_id, chunk)
        ) WITHOUT ROWID""",
        "CREATE INDEX query_results_by_tenant ON query_results (tenant_id, stored_at)",
    ),
    # Operations across backends not finished everywhere yet.
    (
        """CREATE TABLE repairs (
            kind TEXT NOT NULL,
            key TEXT NOT NULL,
            created_at TEXT NOT NULL,
            next_attempt_at TEXT,
            document TEXT NOT NULL,
            PRIMARY KEY (kind, key)
        ) WITHOUT ROWID""",
        "CREATE INDEX repairs_due ON repairs (next_attempt_at)",
    ),
    # Foreign keys of the current graphs as rows, so that a join-path search reads the
    # keys touching a few tables by index instead of decoding whole graphs. Filled from
    # the graphs already stored (those naming a column the graph lacks join nothing, and
    # are left out); written with them from then on.
    (
        """CREATE TABLE foreign_keys (
            tenant_id TEXT NOT NULL,
            datasource TEXT NOT NULL,
            schema_name TEXT NOT NULL,
            table_name TEXT NOT NULL,
            column_name TEXT NOT NULL,
            ref_schema TEXT NOT NULL,
            ref_table TEXT NOT NULL,
            ref_column TEXT NOT NULL,
            PRIMARY KEY (tenant_id, datasource, schema_name, table_name, column_name)
        ) WITHOUT ROWID""",
        """CREATE INDEX foreign_keys_by_target
            ON foreign_keys (tenant_id, datasource, ref_schema, ref_table)""",
        """INSERT OR IGNORE INTO foreign_keys
            SELECT g.tenant_id, g.datasource,
                   json_extract(t.value, '$.schema'), json_extract(t.value, '$.name'),
                   json_extract(c.value, '$.name'),
                   json_extract(c.value, '$.references.schema'),
                   json_extract(c.value, '$.references.table'),
                   json_extract(c.value, '$.references.column')
            FROM graphs AS g, json_each(g.document, '$.tables') AS t,
                 json_each(t.value, '$.columns') AS c
            WHERE json_type(c.value, '$.references') = 'object' AND EXISTS (
                SELECT 1 FROM json_each(g.document, '$.tables') AS rt,
                              json_each(rt.value, '$.columns') AS rc
                WHERE json_extract(rt.value, '$.schema')
                        = json_extract(c.value, '$.references.schema')
                  AND json_extract(rt.value, '$.name')
                        = json_extract(c.value, '$.references.table')
                  AND json_extract(rc.value, '$.name')
                        = json_extract(c.value, '$.references.column')
            )""",
    ),
    # Glossary links as part of the schema graph: one row per (term, column path), kept
    # whether or not the column is in the current graph, so that a sync bringing the
    # column links it. Read joined with catalog_objects. Filled from the paths the terms
    # already name (``ds.schema.table.column``; any other shape names no column).
    (
        """CREATE TABLE glossary_links (
            tenant_id TEXT NOT NULL,
            term_id TEXT NOT NULL,
            datasource TEXT NOT NULL,
            schema_name TEXT NOT NULL,
            table_name TEXT NOT NULL,
            column_name TEXT NOT NULL,
            term TEXT NOT NULL,
            term_lower TEXT NOT NULL,
            PRIMARY KEY (tenant_id, term_id, datasource, schema_name, table_name, column_name)
        ) WITHOUT ROWID""",
        """CREATE INDEX glossary_links_by_column
            ON glossary_links (tenant_id, datasource, schema_name, table_name, column_name)""",
        """INSERT OR IGNORE INTO glossary_links
            WITH paths AS (
                SELECT g.tenant_id, g.id, g.term, g.term_lower, p.value AS rest0
                FROM glossary_terms AS g, json_each(g.columns) AS p
            ), one AS (
                SELECT *, substr(rest0, 1, instr(rest0, '.') - 1) AS datasource,
                       substr(rest0, instr(rest0, '.') + 1) AS rest1
                FROM paths WHERE instr(rest0, '.') > 1
            ), two AS (
                SELECT *, substr(rest1, 1, instr(rest1, '.') - 1) AS schema_name,
                       substr(rest1, instr(rest1, '.') + 1) AS rest2
                FROM one WHERE instr(rest1, '.') > 1
            ), three AS (
                SELECT *, substr(rest2, 1, instr(rest2, '.') - 1) AS table_name,
                       substr(rest2, instr(rest2, '.') + 1) AS column_name
                FROM two WHERE instr(rest2, '.') > 1
            )
            SELECT tenant_id, id, datasource, schema_name, table_name, column_name,
                   term, term_lower
            FROM three WHERE column_name != '' AND instr(column_name, '.') = 0""",
    ),
)


class SQLiteStore:
    """Connections to the store file and the three ways of running work on them."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._local = threading.local()
        # Every connection with the lock held while it runs work, so that closing waits
        # for a statement still running in a worker thread (one a cancelled request left
        # behind): closing a connection under a running statement crashes the process.
        self._opened: list[tuple[sqlite3.Connection, threading.Lock]] = []
        self._opened_lock = threading.Lock()
        self._closed = False
        # Records read on the loop, kept while the file's data_version stands (see
        # `remembered`).
        self._remembered: dict[Hashable, Any] = {}
        self._remembered_version: int | None = None
        # One thread writes, a group of pieces of work per transaction (see `write`).
        self._writer = ThreadPoolExecutor(1, thread_name_prefix="weaver-store-writer")
        self._pending_writes: list[tuple[Callable[[sqlite3.Connection], Any], Any]] = []
        self._writer_task: asyncio.Task[None] | None = None
        try:
            self._migrate()
            self._loop_reader, _ = self._connect(busy_timeout_ms=0)
        except BaseException:
            self.close()
            raise

    def _connect(
        self, *, busy_timeout_ms: int = BUSY_TIMEOUT_MS
    ) -> tuple[sqlite3.Connection, threading.Lock]:
        # isolation_level=None: transactions are begun explicitly, never implicitly.
        connection = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        connection.execute(f"PRAGMA busy_timeout = {busy_timeout_ms}")
        connection.execute("PRAGMA synchronous = NORMAL")
        opened = (connection, threading.Lock())
        with self._opened_lock:
            if self._closed:
                connection.close()
                raise Unavailable("the embedded store is closed")
            self._opened.append(opened)
        return opened

    def _migrate(self) -> None:
        connection, in_use = self._local.opened = self._connect()
        with in_use:
            # Several processes may create the file at once; switching to WAL takes a lock
            # the busy timeout covers, and is a no-op once the file is in WAL mode.
            connection.execute("PRAGMA journal_mode = WAL")
            with transaction(connection):
                version = connection.execute("PRAGMA user_version").fetchone()[0]
                if version > len(MIGRATIONS):
                    raise RuntimeError(
                        f"{self.path} has schema version {version}; this weaver knows only "
                        f"{len(MIGRATIONS)}"
                    )
                for statements in MIGRATIONS[version:]:
                    for statement in statements:
                        connection.execute(statement)
                connection.execute(f"PRAGMA user_version = {len(MIGRATIONS)}")

    def _thread_connection(self) -> tuple[sqlite3.Connection, threading.Lock]:
        opened: tuple[sqlite3.Connection, threading.Lock] | None = getattr(
            self._local, "opened", None
        )
        if opened is None:
            opened = self._local.opened = self._connect()
        return opened

    def _in_thread(self, work: Callable[[sqlite3.Connection], T]) -> T:
        connection, in_use = self._thread_connection()
        with in_use:
            return work(connection)

    async def lookup(self, work: Callable[[sqlite3.Connection], T]) -> T:
        """A small indexed read, on the loop thread (see the module docstring)."""
        try:
            return work(self._loop_reader)
        except sqlite3.OperationalError as error:
            if error.sqlite_errorcode & 0xFF not in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED):
                raise
        return await self.read(work)

    async def remembered(self, key: Hashable, work: Callable[[sqlite3.Connection], T]) -> T:
        """`lookup`, remembered until any connection, in this process or another, commits
        to the file: SQLite's ``data_version`` changes then, and everything remembered is
        dropped. A dashboard names the same datasources on every query; checking the
        version costs a third of reading and decoding the record. What is returned is
        shared by every caller until then, so it must not be changed."""
        try:
            version = self._loop_reader.execute("PRAGMA data_version").fetchone()[0]
        except sqlite3.OperationalError:
            return await self.lookup(work)
        if version != self._remembered_version:
            self._remembered.clear()
            self._remembered_version = version
        if key in self._remembered:
            return cast(T, self._remembered[key])
        value = await self.lookup(work)
        # Kept only if no newer version was seen meanwhile (the lookup may have waited in
        # a thread), and never more than a bounded number of records.
        if self._remembered_version == version and len(self._remembered) < REMEMBERED_RECORDS:
            self._remembered[key] = value
        return value

    async def read(self, work: Callable[[sqlite3.Connection], T]) -> T:
        return await asyncio.to_thread(self._in_thread, work)

    async def write(self, work: Callable[[sqlite3.Connection], T]) -> T:
        """``work`` inside a ``BEGIN IMMEDIATE`` transaction, on the store's writer thread.

        Writes are committed in groups: whatever was asked while the writer was busy runs
        in its next transaction, each piece of work under a savepoint of its own, so a
        failing one (a duplicate name) undoes only itself and is raised to its caller
        alone. A gateway records every query it runs, twice; with one transaction each,
        concurrent writers of one process would queue on SQLite's lock, whose busy
        handler sleeps (1, 2, 5, 10 ms …) between tries — with groups, one process
        holds the lock once per group and never waits on itself.
        """
        loop = asyncio.get_running_loop()
        done: asyncio.Future[T] = loop.create_future()
        self._pending_writes.append((work, done))
        if self._writer_task is None or self._writer_task.done():
            self._writer_task = loop.create_task(self._drain_writes())
        return await done

    async def _drain_writes(self) -> None:
        loop = asyncio.get_running_loop()
        while self._pending_writes:
            group, self._pending_writes = self._pending_writes, []
            try:
                outcomes = await loop.run_in_executor(self._writer, self._write_group, group)
            except BaseException as error:  # the transaction itself failed: all of it did
                outcomes = [(False, error)] * len(group)
            for (_, done), (ok, value) in zip(group, outcomes, strict=True):
                if done.done():
                    continue  # the caller gave up waiting; its work ran anyway
                if ok:
                    done.set_result(value)
                else:
                    done.set_exception(value)

    def _write_group(
        self, group: list[tuple[Callable[[sqlite3.Connection], Any], Any]]
    ) -> list[tuple[bool, Any]]:
        connection, in_use = self._thread_connection()
        outcomes: list[tuple[bool, Any]] = []
        with in_use, transaction(connection):
            for work, _ in group:
                connection.execute("SAVEPOINT work")
                try:
                    outcomes.append((True, work(connection)))
                except Exception as error:
                    connection.execute("ROLLBACK TO work")
                    outcomes.append((False, error))
                finally:
                    connection.execute("RELEASE work")
        return outcomes

    def close(self) -> None:
        """Close every connection, each once no work runs on it."""
        self._writer.shutdown(wait=True)
        with self._opened_lock:
            self._closed = True
            opened, self._opened = self._opened, []
        for connection, in_use in opened:
            with in_use:
                connection.close()


@contextmanager
def transaction(connection: sqlite3.Connection) -> Iterator[None]:
    """``BEGIN IMMEDIATE`` … ``COMMIT``, rolled back on any error.

    IMMEDIATE takes the write lock up front (waiting out other writers under the busy
    timeout) instead of upgrading a read, which WAL refuses without waiting once another
    process has committed in between.
    """
    connection.execute("BEGIN IMMEDIATE")
    try:
        yield
        connection.execute("COMMIT")
    except BaseException:
        connection.execute("ROLLBACK")
        raise


def iso(moment: datetime) -> str:
    # Fixed width in UTC, so that text order is time order (snapshots are listed by it).
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).isoformat(timespec="microseconds")
