"""The embedded store's file: its schema (migrations), its connections, and the three
ways of running work on them.

Where the work runs. Writes may wait on another process's lock, and document reads or
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
    # Glossary links as part of the schema graph: one row per (term, column path), kept
    # whether or not the column is in the current graph, so that a sync bringing the
    # column links it. Read joined with catalog_objects.
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

    def _write_in_thread(self, work: Callable[[sqlite3.Connection], T]) -> T:
        connection, in_use = self._thread_connection()
        with in_use, transaction(connection):
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
        """``work`` inside one ``BEGIN IMMEDIATE`` transaction, in a worker thread."""
        return await asyncio.to_thread(self._write_in_thread, work)

    def close(self) -> None:
        """Close every connection, each once no work runs on it."""
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
