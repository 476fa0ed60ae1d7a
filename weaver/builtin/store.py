"""The embedded metadata store: one SQLite file that every gateway process shares.

Several processes (``--workers``, or separate ``weaver serve`` commands) open the same
``<data_dir>/weaver.db``, so correctness comes from SQLite rather than from this process:
uniqueness is a constraint, every write is one ``BEGIN IMMEDIATE`` transaction that waits
(``busy_timeout``) for other writers, and WAL lets readers go on while one writes.

Graphs, snapshots and statistics are JSON documents (`weaver.codec`); the tables and
columns of the current graph are also rows of ``catalog_objects``, written in the same
transaction, so search is an indexed range scan and never sees half a sync.

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
import json
import sqlite3
import threading
from collections.abc import Callable, Hashable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar, cast

import orjson

from weaver import codec, hookimpl
from weaver.context import WeaverContext
from weaver.errors import Conflict, NotFound, Unavailable
from weaver.types import (
    Datasource,
    DatasourceStatistics,
    GlossaryTerm,
    HealthCheck,
    Page,
    SchemaGraph,
    SearchHit,
    SearchKind,
    Snapshot,
    SnapshotSummary,
    parse_search_key,
)

STATE_KEY = "embedded_store"
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
)

# Joins a glossary term's searchable texts; a control character no term or synonym holds,
# so a match never spans two of them.
_SEARCH_SEPARATOR = "\x1f"


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
            with _transaction(connection):
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
        with in_use, _transaction(connection):
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
def _transaction(connection: sqlite3.Connection) -> Iterator[None]:
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


def _store(context: WeaverContext) -> SQLiteStore:
    store: SQLiteStore = context.state[STATE_KEY]
    return store


def _iso(moment: datetime) -> str:
    # Fixed width in UTC, so that text order is time order (snapshots are listed by it).
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).isoformat(timespec="microseconds")


# --- lifecycle ---------------------------------------------------------------------------


@hookimpl(trylast=True)
async def weaver_startup(context: WeaverContext) -> None:
    path = context.settings.data_dir / DB_FILE
    context.state[STATE_KEY] = await asyncio.to_thread(SQLiteStore, path)


@hookimpl(trylast=True)
async def weaver_shutdown(context: WeaverContext) -> None:
    store: SQLiteStore | None = context.state.pop(STATE_KEY, None)
    if store is not None:
        # In a thread: closing may wait for a statement a cancelled request left running.
        await asyncio.to_thread(store.close)


@hookimpl(trylast=True)
async def check_health(context: WeaverContext) -> HealthCheck:
    await _store(context).read(lambda db: db.execute("SELECT 1").fetchone())
    return HealthCheck("up")


# --- datasource registry -----------------------------------------------------------------

_DATASOURCE_COLUMNS = (
    "tenant_id, name, engine, internal_name, connection, sealed_secrets, secret_keys,"
    " description, created_at, updated_at"
)


def _datasource_values(datasource: Datasource) -> Row:
    return (
        datasource.tenant_id,
        datasource.name,
        datasource.engine,
        datasource.internal_name,
        json.dumps(datasource.connection),
        datasource.sealed_secrets,
        json.dumps(datasource.secret_keys),
        datasource.description,
        _iso(datasource.created_at),
        _iso(datasource.updated_at),
    )


def _datasource(row: Row) -> Datasource:
    return Datasource(
        tenant_id=row[0],
        name=row[1],
        engine=row[2],
        internal_name=row[3],
        connection=orjson.loads(row[4]),
        sealed_secrets=row[5],
        secret_keys=orjson.loads(row[6]),
        description=row[7],
        created_at=datetime.fromisoformat(row[8]),
        updated_at=datetime.fromisoformat(row[9]),
    )


@hookimpl(trylast=True)
async def save_datasource(context: WeaverContext, datasource: Datasource, create: bool) -> None:
    values = _datasource_values(datasource)

    def insert(db: sqlite3.Connection) -> None:
        try:
            db.execute(
                f"INSERT INTO datasources ({_DATASOURCE_COLUMNS}) VALUES ({'?, ' * 9}?)", values
            )
        except sqlite3.IntegrityError:
            raise Conflict(f"datasource {datasource.name!r} already exists") from None

    def replace(db: sqlite3.Connection) -> None:
        updated = db.execute(
            "UPDATE datasources SET engine = ?, internal_name = ?, connection = ?,"
            " sealed_secrets = ?, secret_keys = ?, description = ?, created_at = ?,"
            " updated_at = ? WHERE tenant_id = ? AND name = ?",
            (*values[2:], *values[:2]),
        )
        if updated.rowcount == 0:
            raise NotFound(f"datasource {datasource.name!r} not found")

    await _store(context).write(insert if create else replace)


@hookimpl(trylast=True)
async def get_datasource(context: WeaverContext, tenant_id: str, name: str) -> Datasource | None:
    def read(db: sqlite3.Connection) -> Datasource | None:
        row = db.execute(
            f"SELECT {_DATASOURCE_COLUMNS} FROM datasources WHERE tenant_id = ? AND name = ?",
            (tenant_id, name),
        ).fetchone()
        return _datasource(row) if row is not None else None

    return await _store(context).remembered(("datasource", tenant_id, name), read)


@hookimpl(trylast=True)
async def list_datasources(context: WeaverContext, tenant_id: str, page: Page) -> list[Datasource]:
    # Names are never empty, so '' precedes them all when there is no cursor.
    rows = await _store(context).lookup(
        lambda db: db.execute(
            f"SELECT {_DATASOURCE_COLUMNS} FROM datasources"
            " WHERE tenant_id = ? AND name > ? ORDER BY name LIMIT ?",
            (tenant_id, page.after or "", page.limit),
        ).fetchall()
    )
    return [_datasource(row) for row in rows]


@hookimpl(trylast=True)
async def all_datasources(context: WeaverContext) -> list[Datasource]:
    rows = await _store(context).read(
        lambda db: db.execute(
            f"SELECT {_DATASOURCE_COLUMNS} FROM datasources ORDER BY tenant_id, name"
        ).fetchall()
    )
    return [_datasource(row) for row in rows]


@hookimpl(trylast=True)
async def delete_datasource(context: WeaverContext, tenant_id: str, name: str) -> bool:
    def delete(db: sqlite3.Connection) -> bool:
        return (
            db.execute(
                "DELETE FROM datasources WHERE tenant_id = ? AND name = ?", (tenant_id, name)
            ).rowcount
            > 0
        )

    return await _store(context).write(delete)


# --- schema graph and search -------------------------------------------------------------


def _catalog_rows(tenant_id: str, datasource: str, graph: SchemaGraph) -> Iterator[Row]:
    for table in graph.tables:
        yield (
            tenant_id,
            "table",
            datasource,
            table.schema,
            table.name,
            "",
            None,
            table.name.lower(),
        )
        for column in table.columns:
            yield (
                tenant_id,
                "column",
                datasource,
                table.schema,
                table.name,
                column.name,
                column.data_type,
                column.name.lower(),
            )


@hookimpl(trylast=True)
async def store_metadata(
    context: WeaverContext, datasource: Datasource, graph: SchemaGraph
) -> None:
    key = (datasource.tenant_id, datasource.name)
    document = codec.dumps(graph)
    rows = list(_catalog_rows(*key, graph))

    def replace(db: sqlite3.Connection) -> None:
        db.execute(
            "INSERT INTO graphs (tenant_id, datasource, document) VALUES (?, ?, ?)"
            " ON CONFLICT (tenant_id, datasource) DO UPDATE SET document = excluded.document",
            (*key, document),
        )
        db.execute("DELETE FROM catalog_objects WHERE tenant_id = ? AND datasource = ?", key)
        # OR IGNORE: an engine listing a column twice must not fail the whole sync.
        db.executemany(
            "INSERT OR IGNORE INTO catalog_objects VALUES (?, ?, ?, ?, ?, ?, ?, ?)", rows
        )

    await _store(context).write(replace)


@hookimpl(trylast=True)
async def load_metadata(context: WeaverContext, datasource: Datasource) -> SchemaGraph | None:
    row = await _store(context).read(
        lambda db: db.execute(
            "SELECT document FROM graphs WHERE tenant_id = ? AND datasource = ?",
            (datasource.tenant_id, datasource.name),
        ).fetchone()
    )
    return codec.loads(SchemaGraph, row[0]) if row is not None else None


@hookimpl(trylast=True)
async def search_metadata(
    context: WeaverContext, tenant_id: str, text: str, kind: SearchKind, page: Page
) -> list[SearchHit]:
    cursor = parse_search_key(kind, page.after)
    rows = await _store(context).read(
        lambda db: db.execute(
            "SELECT datasource, schema_name, table_name, column_name, data_type"
            " FROM catalog_objects WHERE tenant_id = ? AND kind = ? AND instr(name_lower, ?) > 0"
            " AND (datasource, schema_name, table_name, column_name) > (?, ?, ?, ?)"
            " ORDER BY datasource, schema_name, table_name, column_name LIMIT ?",
            (tenant_id, kind, text.lower(), *cursor, page.limit),
        ).fetchall()
    )
    if kind == "table":
        return [SearchHit("table", row[0], row[1], row[2]) for row in rows]
    return [SearchHit("column", row[0], row[1], row[2], row[3], row[4]) for row in rows]


@hookimpl(trylast=True)
async def delete_metadata(context: WeaverContext, datasource: Datasource) -> None:
    key = (datasource.tenant_id, datasource.name)

    def delete(db: sqlite3.Connection) -> None:
        for table in ("graphs", "catalog_objects", "snapshots", "statistics"):
            db.execute(f"DELETE FROM {table} WHERE tenant_id = ? AND datasource = ?", key)

    await _store(context).write(delete)


# --- snapshots ---------------------------------------------------------------------------


@hookimpl(trylast=True)
async def save_snapshot(context: WeaverContext, snapshot: Snapshot) -> None:
    values = (
        snapshot.tenant_id,
        snapshot.datasource,
        snapshot.id,
        _iso(snapshot.created_at),
        len(snapshot.graph.tables),
        snapshot.graph.column_count,
        codec.dumps(snapshot.graph),
    )

    def insert(db: sqlite3.Connection) -> None:
        try:
            db.execute("INSERT INTO snapshots VALUES (?, ?, ?, ?, ?, ?, ?)", values)
        except sqlite3.IntegrityError:
            raise Conflict(f"snapshot {snapshot.id!r} already exists") from None

    await _store(context).write(insert)


@hookimpl(trylast=True)
async def list_snapshots(
    context: WeaverContext, datasource: Datasource, page: Page
) -> list[SnapshotSummary]:
    key = (datasource.tenant_id, datasource.name)
    select = (
        "SELECT id, created_at, tables, columns FROM snapshots"
        " WHERE tenant_id = ? AND datasource = ?"
    )
    values: tuple[str, ...] = key
    if page.after is None:
        query = select
    else:
        # An unknown cursor compares as NULL, so it yields an empty page.
        query = (
            select + " AND (created_at, id) < (SELECT created_at, id FROM snapshots"
            " WHERE tenant_id = ? AND datasource = ? AND id = ?)"
        )
        values = (*key, *key, page.after)
    rows = await _store(context).lookup(
        lambda db: db.execute(
            query + " ORDER BY created_at DESC, id DESC LIMIT ?", (*values, page.limit)
        ).fetchall()
    )
    return [SnapshotSummary(row[0], datetime.fromisoformat(row[1]), row[2], row[3]) for row in rows]


@hookimpl(trylast=True)
async def get_snapshot(
    context: WeaverContext, datasource: Datasource, snapshot_id: str
) -> Snapshot | None:
    row = await _store(context).read(
        lambda db: db.execute(
            "SELECT created_at, document FROM snapshots"
            " WHERE tenant_id = ? AND datasource = ? AND id = ?",
            (datasource.tenant_id, datasource.name, snapshot_id),
        ).fetchone()
    )
    if row is None:
        return None
    return Snapshot(
        id=snapshot_id,
        tenant_id=datasource.tenant_id,
        datasource=datasource.name,
        created_at=datetime.fromisoformat(row[0]),
        graph=codec.loads(SchemaGraph, row[1]),
    )


# --- glossary ----------------------------------------------------------------------------

_TERM_COLUMNS = "tenant_id, id, term, definition, synonyms, columns, created_at, updated_at"


def _term(row: Row) -> GlossaryTerm:
    return GlossaryTerm(
        tenant_id=row[0],
        id=row[1],
        term=row[2],
        definition=row[3],
        synonyms=json.loads(row[4]),
        columns=json.loads(row[5]),
        created_at=datetime.fromisoformat(row[6]),
        updated_at=datetime.fromisoformat(row[7]),
    )


@hookimpl(trylast=True)
async def save_glossary_term(context: WeaverContext, term: GlossaryTerm, create: bool) -> None:
    fields = {
        "term": term.term,
        "term_lower": term.term.lower(),
        "definition": term.definition,
        "synonyms": json.dumps(term.synonyms),
        "columns": json.dumps(term.columns),
        "search_text": _SEARCH_SEPARATOR.join([term.term, *term.synonyms, term.definition]).lower(),
        "created_at": _iso(term.created_at),
        "updated_at": _iso(term.updated_at),
    }
    duplicate = Conflict(f"glossary term {term.term!r} already exists")

    def insert(db: sqlite3.Connection) -> None:
        names = ["tenant_id", "id", *fields]
        try:
            db.execute(
                f"INSERT INTO glossary_terms ({', '.join(names)})"
                f" VALUES ({', '.join('?' * len(names))})",
                (term.tenant_id, term.id, *fields.values()),
            )
        except sqlite3.IntegrityError:
            raise duplicate from None

    def replace(db: sqlite3.Connection) -> None:
        try:
            updated = db.execute(
                f"UPDATE glossary_terms SET {', '.join(f'{name} = ?' for name in fields)}"
                " WHERE tenant_id = ? AND id = ?",
                (*fields.values(), term.tenant_id, term.id),
            )
        except sqlite3.IntegrityError:
            raise duplicate from None
        if updated.rowcount == 0:
            raise NotFound(f"glossary term {term.id!r} not found")

    await _store(context).write(insert if create else replace)


@hookimpl(trylast=True)
async def get_glossary_term(
    context: WeaverContext, tenant_id: str, term_id: str
) -> GlossaryTerm | None:
    row = await _store(context).lookup(
        lambda db: db.execute(
            f"SELECT {_TERM_COLUMNS} FROM glossary_terms WHERE tenant_id = ? AND id = ?",
            (tenant_id, term_id),
        ).fetchone()
    )
    return _term(row) if row is not None else None


@hookimpl(trylast=True)
async def list_glossary_terms(
    context: WeaverContext, tenant_id: str, text: str | None, page: Page
) -> list[GlossaryTerm]:
    # The empty string is contained in every text and precedes every lower-cased term.
    rows = await _store(context).read(
        lambda db: db.execute(
            f"SELECT {_TERM_COLUMNS} FROM glossary_terms"
            " WHERE tenant_id = ? AND term_lower > ? AND instr(search_text, ?) > 0"
            " ORDER BY term_lower LIMIT ?",
            (tenant_id, page.after or "", (text or "").lower(), page.limit),
        ).fetchall()
    )
    return [_term(row) for row in rows]


@hookimpl(trylast=True)
async def delete_glossary_term(context: WeaverContext, tenant_id: str, term_id: str) -> bool:
    def delete(db: sqlite3.Connection) -> bool:
        return (
            db.execute(
                "DELETE FROM glossary_terms WHERE tenant_id = ? AND id = ?", (tenant_id, term_id)
            ).rowcount
            > 0
        )

    return await _store(context).write(delete)


# --- statistics --------------------------------------------------------------------------


@hookimpl(trylast=True)
async def save_statistics(
    context: WeaverContext, datasource: Datasource, statistics: DatasourceStatistics
) -> None:
    values = (datasource.tenant_id, datasource.name, codec.dumps(statistics))
    await _store(context).write(
        lambda db: db.execute(
            "INSERT INTO statistics (tenant_id, datasource, document) VALUES (?, ?, ?)"
            " ON CONFLICT (tenant_id, datasource) DO UPDATE SET document = excluded.document",
            values,
        )
    )


@hookimpl(trylast=True)
async def load_statistics(
    context: WeaverContext, datasource: Datasource
) -> DatasourceStatistics | None:
    row = await _store(context).read(
        lambda db: db.execute(
            "SELECT document FROM statistics WHERE tenant_id = ? AND datasource = ?",
            (datasource.tenant_id, datasource.name),
        ).fetchone()
    )
    return codec.loads(DatasourceStatistics, row[0]) if row is not None else None
