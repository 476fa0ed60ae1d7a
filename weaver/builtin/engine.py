"""The embedded query engine: SQLite files under ``WEAVER_SQLITE_ROOT``.

A datasource is ``engine: "sqlite"`` with ``connection: {"path": "<file>"}``, the path
relative to the root and never leaving it (symlinks are resolved before the check, and
again at every open, so a link swapped in later cannot escape). Nothing is created in
the engine when a datasource is registered: the file must already be a database.

A query runs on an in-memory connection that has the files it names ATTACHed read-only
under their internal names, on one of the engine's own threads, so the event loop never
waits and the default executor (which aiohttp uses for DNS) is never starved. Behind the
checks of `weaver.sql`, every connection is read-only three times over: the ``mode=ro``
URI, ``PRAGMA query_only`` and an authorizer that allows only reading. Opening and
attaching cost far more than a small query, so idle connections are kept and reused for
a query that attaches exactly the same files under the same names (never across
tenants); and the SQL the core hands over is rewritten and rendered once per text.

Choices worth knowing:

* ``ds.main.table`` is the only three-part name (a SQLite file has one schema, ``main``);
  another schema is refused with 400.
* Introspection lists views as tables (their columns, no keys); the schema is ``main``.
* Every blocking step — a query, an introspection, the statistics of one table — is
  bounded: a query by its ``timeout_seconds``, the others by ``MINDSDB_TIMEOUT``, the
  gateway's single bound on work sent to an engine.
"""

from __future__ import annotations

import asyncio
import functools
import math
import os
import sqlite3
import stat
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar
from urllib.parse import quote

from weaver import hookimpl
from weaver.context import WeaverContext
from weaver.errors import EngineFailed, EngineTimeout, InvalidQuery, Unprocessable
from weaver.sql import RenderCache, internal_to_public, to_internal_names, with_limit
from weaver.types import (
    Column,
    ColumnRef,
    ColumnStatistics,
    ConnectionSpec,
    Datasource,
    DatasourceStatistics,
    HealthCheck,
    PreparedQuery,
    Principal,
    QueryResult,
    ResultColumn,
    SchemaGraph,
    Table,
    TableStatistics,
)

PLUGIN = "embedded_engine"
ENGINE = "sqlite"
DIALECT = "sqlite"
SCHEMA = "main"

# Queries are CPU-bound in SQLite (which releases the GIL while it steps); a few threads
# keep a slow query from holding up the others without oversubscribing two cores.
WORKER_THREADS = 4
# How many virtual-machine steps SQLite runs between two looks at the deadline (about a
# millisecond of work): each look takes the GIL, so not much more often than that.
PROGRESS_STEPS = 100_000
# How long a reader waits for a writer's lock before SQLite answers "database is locked";
# SQLite cannot interrupt this wait, so it stays short.
BUSY_TIMEOUT_SECONDS = 1.0
# A query on an already attached connection first runs on the event loop for at most this
# long: most dashboard queries finish well within it, and handing work to a thread costs
# more than running them. Anything slower is stopped and run again on a worker thread.
INLINE_BUDGET_SECONDS = 0.002
# Idle query connections kept with their files attached, by exactly the set they have.
IDLE_CONNECTIONS = 32
# Rendered statements kept for reuse (see `weaver.sql.RenderCache`).
RENDERED_QUERIES = 1024
# The largest string or blob a tenant query may build (SQLite's default is 1 GB, which a
# `randomblob()` per worker thread would turn into gigabytes of memory).
MAX_VALUE_BYTES = 64 * 1024 * 1024
# SQLite's default limit on result columns is 2000; statistics use four per column.
STATISTICS_COLUMNS_PER_QUERY = 400

T = TypeVar("T")

_READ_ACTIONS = frozenset(
    {sqlite3.SQLITE_SELECT, sqlite3.SQLITE_READ, sqlite3.SQLITE_FUNCTION, sqlite3.SQLITE_RECURSIVE}
)
# Functions some SQLite builds carry that reach the file system or load code.
_DENIED_FUNCTIONS = frozenset({"load_extension", "readfile", "writefile", "edit", "fts3_tokenizer"})


# --- paths ------------------------------------------------------------------------------


class _PathRefused(ValueError):
    pass


def _inside_root(root: str, path: object) -> str:
    """The file ``path`` names under the (resolved) ``root``, every symlink resolved."""
    return _resolve(root, path)[0]


def _resolve(root: str, path: object) -> tuple[str, os.stat_result | None]:
    """`_inside_root`, and the file's status when finding the path took it anyway."""
    if not isinstance(path, str) or not path.strip():
        raise _PathRefused("must be a non-empty string")
    if "\x00" in path:
        raise _PathRefused("must not contain NUL characters")
    if os.path.isabs(path):
        raise _PathRefused("must be relative to WEAVER_SQLITE_ROOT")
    joined = os.path.join(root, path)
    # Checked on every query, so the common case is cheap: a regular file (not a link)
    # directly in the resolved root is already its own real path. One lstat instead of
    # resolving every component of the root again.
    if os.sep not in path and path not in (os.curdir, os.pardir):
        try:
            status = os.lstat(joined)
        except OSError:
            pass
        else:
            if stat.S_ISREG(status.st_mode):
                return joined, status
    resolved = os.path.realpath(joined)
    if not resolved.startswith(root + os.sep):
        raise _PathRefused("must stay inside WEAVER_SQLITE_ROOT")
    return resolved, None


def _read_only_uri(file: str) -> str:
    return f"file:{quote(file)}?mode=ro"


def _database_file(
    context: WeaverContext, datasource: Datasource, connection: Mapping[str, object] | None = None
) -> str:
    """The datasource's file (named by ``connection``, or by the stored one), checked
    again now: the tree may have changed since the connection was validated."""
    if datasource.engine != ENGINE:
        raise EngineFailed(f"datasource {datasource.name!r} is not a SQLite datasource")
    path = (datasource.connection if connection is None else connection).get("path")
    try:
        return _inside_root(_state(context).root, path)
    except _PathRefused as error:
        raise EngineFailed(f"datasource {datasource.name!r}: path {error}") from None


# --- bounded work on the engine's threads -----------------------------------------------


# Which files a query connection has attached, under which aliases: (alias, path, device,
# inode) sorted. The inode makes a file replaced by a rename a different key, so a pooled
# connection never keeps reading the old file.
_AttachmentKey = tuple[tuple[str, str, int, int], ...]


@dataclass
class _QueryConnection:
    key: _AttachmentKey
    connection: sqlite3.Connection
    authorizer: _ReadOnlyAuthorizer


class _Pool:
    """Idle query connections, reused only for a query that attaches exactly the same
    files under the same internal names — so never across tenants — and closed when one
    of their datasources is unregistered."""

    def __init__(self, size: int) -> None:
        self._size = size
        self._lock = threading.Lock()
        self._idle: list[_QueryConnection] = []

    def take(self, key: _AttachmentKey) -> _QueryConnection | None:
        with self._lock:
            for index in range(len(self._idle) - 1, -1, -1):
                if self._idle[index].key == key:
                    return self._idle.pop(index)
        return None

    def give(self, query_connection: _QueryConnection) -> None:
        evicted = None
        with self._lock:
            self._idle.append(query_connection)
            if len(self._idle) > self._size:
                evicted = self._idle.pop(0)
        if evicted is not None:
            evicted.connection.close()

    def discard(self, alias: str) -> None:
        with self._lock:
            dropped = [c for c in self._idle if any(entry[0] == alias for entry in c.key)]
            self._idle = [c for c in self._idle if c not in dropped]
        for old in dropped:
            old.connection.close()

    def close(self) -> None:
        with self._lock:
            dropped, self._idle = self._idle, []
        for old in dropped:
            old.connection.close()

    def __len__(self) -> int:
        return len(self._idle)


def _render(query: PreparedQuery) -> str:
    # One copy of the tenant's tree, made by the rewrite; the rest works on that copy.
    statement = to_internal_names(query.statement, query.datasources, schema_as_catalog=False)
    return with_limit(statement, query.limit + 1, copy=False).sql(dialect=DIALECT, copy=False)


@dataclass
class _EngineState:
    root: str  # WEAVER_SQLITE_ROOT, resolved
    executor: ThreadPoolExecutor = field(
        default_factory=lambda: ThreadPoolExecutor(WORKER_THREADS, thread_name_prefix=PLUGIN)
    )
    running: set[_Run] = field(default_factory=set)
    pool: _Pool = field(default_factory=lambda: _Pool(IDLE_CONNECTIONS))
    rendered: RenderCache = field(default_factory=lambda: RenderCache(RENDERED_QUERIES, _render))


def _state(context: WeaverContext) -> _EngineState:
    # Created on first use; threads start with the first piece of work, so a gateway
    # whose queries go to another engine never starts them.
    state = context.state.get(PLUGIN)
    if state is None:
        state = context.state[PLUGIN] = _EngineState(str(context.settings.sqlite_root_path))
    assert isinstance(state, _EngineState)
    return state


class _Run:
    """One piece of blocking work and the means to stop it from the event loop.

    Two ways stop SQLite: ``interrupt()`` from the loop at the deadline, and a progress
    handler that checks the deadline itself, which also covers a deadline that passes
    before the worker has opened its connection.
    """

    def __init__(self, timeout: float) -> None:
        self.deadline = time.monotonic() + timeout
        self.cancelled = False
        self._lock = threading.Lock()
        self._connection: sqlite3.Connection | None = None

    def expired(self) -> bool:
        return self.cancelled or time.monotonic() >= self.deadline

    def cancel(self) -> None:
        self.cancelled = True
        with self._lock:
            if self._connection is not None:
                self._connection.interrupt()

    @contextmanager
    def interruptible(self, connection: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
        """``connection``, stoppable by this run while the block runs."""
        connection.set_progress_handler(self.expired, PROGRESS_STEPS)
        with self._lock:
            self._connection = connection
        try:
            yield connection
        finally:
            with self._lock:
                self._connection = None

    @contextmanager
    def connect(self, uri: str) -> Iterator[sqlite3.Connection]:
        """A fresh connection to ``uri`` that this run can stop, closed afterwards."""
        connection = _open(uri)
        try:
            with self.interruptible(connection):
                yield connection
        finally:
            connection.close()


def _open(uri: str) -> sqlite3.Connection:
    """A connection that may not write, whatever the URI says."""
    connection = sqlite3.connect(
        uri,
        uri=True,
        timeout=BUSY_TIMEOUT_SECONDS,
        isolation_level=None,
        # A pooled connection serves whichever engine thread takes it, one at a time.
        check_same_thread=False,
    )
    connection.execute("PRAGMA query_only = ON")
    return connection


async def _bounded(
    context: WeaverContext,
    seconds: float,
    what: str,
    work: Callable[[_Run], T],
    datasources: Iterable[Datasource],
) -> T:
    """Run ``work`` on an engine thread for at most ``seconds``.

    SQLite errors become `EngineFailed`; no `EngineFailed` leaves here naming a datasource
    by its internal name.
    """
    state = _state(context)
    run = _Run(seconds)
    future = asyncio.get_running_loop().run_in_executor(state.executor, work, run)
    state.running.add(run)
    future.add_done_callback(lambda _: state.running.discard(run))
    try:
        async with asyncio.timeout(seconds):
            # Shielded so that a timeout or a cancelled request interrupts the statement
            # (below) rather than abandoning it.
            return await asyncio.shield(future)
    except TimeoutError:
        raise EngineTimeout(f"{what} did not finish within {seconds:g}s") from None
    except EngineFailed as failure:
        failure.detail = internal_to_public(failure.detail, datasources)
        raise
    except sqlite3.Error as error:
        if run.expired():
            raise EngineTimeout(f"{what} did not finish within {seconds:g}s") from None
        raise EngineFailed(internal_to_public(str(error), datasources)) from None
    finally:
        if not future.done():
            run.cancel()


# --- hooks: connections and datasources -------------------------------------------------


@hookimpl(trylast=True)
def sql_dialect(context: WeaverContext) -> str:
    return DIALECT


@hookimpl(trylast=True)
def validate_connection(
    context: WeaverContext, engine: str, connection: dict[str, object]
) -> ConnectionSpec | None:
    if engine != ENGINE:
        return None
    errors = [
        {"loc": ["connection", key], "msg": "unknown parameter; a SQLite datasource takes path"}
        for key in sorted(set(connection) - {"path"})
    ]
    if "path" not in connection:
        errors.append({"loc": ["connection", "path"], "msg": "required"})
    else:
        try:
            _inside_root(_state(context).root, connection["path"])
        except _PathRefused as error:
            errors.append({"loc": ["connection", "path"], "msg": str(error)})
    if errors:
        raise Unprocessable("invalid SQLite connection", errors=errors)
    return ConnectionSpec(public={"path": connection["path"]}, secret={}, targets=())


def _check_database(run: _Run, file: str, shown: str) -> None:
    if not os.path.isfile(file):
        raise EngineFailed(f"{shown!r} does not exist under WEAVER_SQLITE_ROOT")
    try:
        with run.connect(_read_only_uri(file)) as connection:
            connection.execute("SELECT count(*) FROM sqlite_master").fetchone()
    except sqlite3.Error:
        # SQLite's message would name the absolute path on this host.
        raise EngineFailed(f"{shown!r} is not a readable SQLite database") from None


@hookimpl(trylast=True)
async def register_datasource(
    context: WeaverContext, datasource: Datasource, connection: dict[str, object], replace: bool
) -> None:
    # Nothing is created: proving the file is a database is the whole registration.
    file = _database_file(context, datasource, connection)
    await _bounded(
        context,
        context.settings.mindsdb_timeout,
        "opening the database",
        lambda run: _check_database(run, file, str(connection["path"])),
        [datasource],
    )
    if replace:
        # Idle connections still have the previous file attached.
        _state(context).pool.discard(datasource.internal_name)


@hookimpl(trylast=True)
def unregister_datasource(context: WeaverContext, datasource: Datasource) -> None:
    # Nothing was created; only idle connections may still have the file open.
    _state(context).pool.discard(datasource.internal_name)


@hookimpl(trylast=True)
def check_health(context: WeaverContext) -> HealthCheck:
    state = _state(context)
    extra = {"running_queries": len(state.running), "idle_connections": len(state.pool)}
    if not os.path.exists(state.root):
        return HealthCheck("up", "WEAVER_SQLITE_ROOT does not exist yet", extra=extra)
    if not os.path.isdir(state.root) or not os.access(state.root, os.R_OK | os.X_OK):
        return HealthCheck("down", "WEAVER_SQLITE_ROOT is not a readable directory", extra=extra)
    return HealthCheck("up", extra=extra)


@hookimpl(trylast=True)
def weaver_shutdown(context: WeaverContext) -> None:
    state = context.state.pop(PLUGIN, None)
    if isinstance(state, _EngineState):
        for run in list(state.running):
            run.cancel()
        state.executor.shutdown(wait=False, cancel_futures=True)
        state.pool.close()


# --- hooks: queries ---------------------------------------------------------------------


def _quote(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


class _ReadOnlyAuthorizer:
    """SQLite's authorizer for tenant statements: reading only, and remembering a refusal
    so that it is reported as a refused statement rather than an engine failure."""

    def __init__(self) -> None:
        self.refused = False
        # Set only around the engine's own `PRAGMA busy_timeout`, never for tenant SQL.
        self.setting_busy_timeout = False

    def __call__(
        self, action: int, arg1: str | None, arg2: str | None, db: str | None, via: str | None
    ) -> int:
        if self.setting_busy_timeout and action == sqlite3.SQLITE_PRAGMA:
            return sqlite3.SQLITE_OK if arg1 == "busy_timeout" else sqlite3.SQLITE_DENY
        allowed = action in _READ_ACTIONS and not (
            action == sqlite3.SQLITE_FUNCTION and (arg2 or "").lower() in _DENIED_FUNCTIONS
        )
        self.refused = self.refused or not allowed
        return sqlite3.SQLITE_OK if allowed else sqlite3.SQLITE_DENY


_VALUE_TYPES: dict[type, str] = {int: "integer", float: "real", str: "text", bytes: "blob"}


def _column_types(width: int, rows: list[tuple[Any, ...]]) -> list[str]:
    """SQLite's storage class of each column's first non-null value ("null" if none):
    SQLite reports no types for result columns, and values may differ from declarations."""
    types = ["null"] * width
    for index in range(width):
        for row in rows:
            if row[index] is not None:
                types[index] = _VALUE_TYPES.get(type(row[index]), "text")
                break
    return types


def _attachment_key(context: WeaverContext, datasources: Iterable[Datasource]) -> _AttachmentKey:
    """What a query attaches: each datasource's file, checked under the root again now
    (the tree may have changed since registration), with its device and inode now."""
    root = _state(context).root
    entries = []
    for datasource in datasources:
        alias = datasource.internal_name
        try:
            file, status = _resolve(root, datasource.connection.get("path"))
            if status is None:
                status = os.stat(file)
        except _PathRefused as error:
            raise EngineFailed(f"datasource {datasource.name!r}: path {error}") from None
        except OSError:
            raise EngineFailed(f"the file of datasource {alias!r} cannot be opened") from None
        entries.append((alias, file, status.st_dev, status.st_ino))
    return tuple(sorted(entries))


def _attach(key: _AttachmentKey) -> _QueryConnection:
    """A new query connection: an empty in-memory database with the files attached."""
    connection = _open("file::memory:?mode=ro")
    try:
        most = connection.getlimit(sqlite3.SQLITE_LIMIT_ATTACHED)
        if len(key) > most:
            raise InvalidQuery(f"at most {most} datasources may be used in one query")
        for alias, file, _, _ in key:
            try:
                connection.execute(f"ATTACH DATABASE ? AS {_quote(alias)}", (_read_only_uri(file),))
            except sqlite3.Error:
                raise EngineFailed(f"the file of datasource {alias!r} cannot be opened") from None
        connection.setlimit(sqlite3.SQLITE_LIMIT_LENGTH, MAX_VALUE_BYTES)
        authorizer = _ReadOnlyAuthorizer()
        # Set once: setting an authorizer expires the connection's prepared statements.
        connection.set_authorizer(authorizer)
    except BaseException:
        connection.close()
        raise
    return _QueryConnection(key, connection, authorizer)


def _run_query(run: _Run, pool: _Pool, key: _AttachmentKey, sql: str, limit: int) -> QueryResult:
    attached = pool.take(key) or _attach(key)
    try:
        # Idle connections do not wait for locks (they serve the loop); a worker may.
        _busy_timeout(attached, int(BUSY_TIMEOUT_SECONDS * 1000))
        with run.interruptible(attached.connection):
            rows, names = _fetch(attached, sql, limit)
        _busy_timeout(attached, 0)
    except BaseException:
        attached.connection.close()
        raise
    pool.give(attached)
    return _result(rows, names, limit)


def _fetch(
    attached: _QueryConnection, sql: str, limit: int
) -> tuple[list[tuple[Any, ...]], list[str]]:
    """Up to ``limit + 1`` rows and the column names; the caller has made the connection
    stoppable."""
    attached.authorizer.refused = False
    try:
        cursor = attached.connection.execute(sql)
        try:
            rows = cursor.fetchmany(limit + 1)
            names = [description[0] for description in cursor.description or ()]
        finally:
            # Ends the read transaction, so an idle connection holds no lock.
            cursor.close()
    except sqlite3.DatabaseError:
        if attached.authorizer.refused:
            raise InvalidQuery("only reads may be run: the engine refused this statement") from None
        raise
    return rows, names


# Stopped by the budget, or a lock held elsewhere: neither is an answer, both are retried.
_RETRY_IN_WORKER = frozenset({sqlite3.SQLITE_INTERRUPT, sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED})


def _run_inline(pool: _Pool, key: _AttachmentKey, sql: str, limit: int) -> QueryResult | None:
    """The query run on the calling (event loop) thread within `INLINE_BUDGET_SECONDS`,
    or ``None`` when it needs a worker: no idle connection for its files (attaching costs
    more than the hand-off), a lock to wait for, or more time than the budget."""
    attached = pool.take(key)
    if attached is None:
        return None
    connection = attached.connection
    # Only the deadline stops an inline run (nothing else can reach it while it holds the
    # loop), so it needs no `_Run`.
    deadline = time.monotonic() + INLINE_BUDGET_SECONDS
    connection.set_progress_handler(lambda: time.monotonic() >= deadline, PROGRESS_STEPS)
    try:
        # Idle connections wait for no lock (see `_run_query`): a lock fails at once here
        # and the query is retried in a worker, so the loop never waits on another process.
        rows, names = _fetch(attached, sql, limit)
    except sqlite3.OperationalError as error:
        if error.sqlite_errorcode in _RETRY_IN_WORKER:
            pool.give(attached)
            return None
        connection.close()
        raise
    except BaseException:
        connection.close()
        raise
    pool.give(attached)
    return _result(rows, names, limit)


def _busy_timeout(attached: _QueryConnection, milliseconds: int) -> None:
    attached.authorizer.setting_busy_timeout = True
    try:
        attached.connection.execute(f"PRAGMA busy_timeout = {milliseconds}")
    finally:
        attached.authorizer.setting_busy_timeout = False


def _result(rows: list[tuple[Any, ...]], names: list[str], limit: int) -> QueryResult:
    truncated = len(rows) > limit
    if truncated:
        rows = rows[:limit]
    columns = _columns(tuple(names), tuple(_column_types(len(names), rows)))
    return QueryResult(list(columns), [list(row) for row in rows], truncated)


# A dashboard's queries answer the same columns again and again; the (frozen) column
# records are made once.
@functools.lru_cache(maxsize=RENDERED_QUERIES)
def _columns(names: tuple[str, ...], kinds: tuple[str, ...]) -> tuple[ResultColumn, ...]:
    return tuple(ResultColumn(name, kind) for name, kind in zip(names, kinds, strict=True))


@hookimpl(trylast=True)
async def execute_query(
    context: WeaverContext, principal: Principal, query: PreparedQuery
) -> QueryResult | None:
    if any(d.engine != ENGINE for d in query.datasources.values()):
        return None
    datasources = query.datasources.values()
    key = _attachment_key(context, datasources)
    state = _state(context)
    sql = state.rendered.sql(query)
    try:
        quick = _run_inline(state.pool, key, sql, query.limit)
    except sqlite3.Error as error:
        raise EngineFailed(internal_to_public(str(error), datasources)) from None
    if quick is not None:
        return quick
    return await _bounded(
        context,
        query.timeout_seconds,
        "the query",
        lambda run: _run_query(run, state.pool, key, sql, query.limit),
        datasources,
    )


# --- hooks: introspection and statistics ------------------------------------------------

_TABLES_SQL = (
    "SELECT name, type FROM sqlite_master WHERE type IN ('table', 'view') "
    "AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' ORDER BY name"
)
_COLUMNS_SQL = 'SELECT cid, name, type, "notnull", pk FROM pragma_table_info(?) ORDER BY cid'
_FOREIGN_KEYS_SQL = 'SELECT "table", "from", "to", seq FROM pragma_foreign_key_list(?)'


@dataclass
class _TableInfo:
    name: str
    columns: list[Column]
    primary_key: list[str]


def _table_info(connection: sqlite3.Connection, table: str) -> _TableInfo:
    rows = connection.execute(_COLUMNS_SQL, (table,)).fetchall()
    keyed = sorted((pk, name) for _, name, _, _, pk in rows if pk > 0)
    primary_key = [name for _, name in keyed]
    columns = []
    for cid, name, declared, not_null, pk in rows:
        # Only INTEGER PRIMARY KEY (the rowid) refuses NULL without NOT NULL in SQLite.
        rowid = primary_key == [name] and declared.upper() == "INTEGER"
        columns.append(
            Column(
                name=name,
                data_type=declared or "ANY",
                nullable=not (not_null or rowid),
                ordinal=cid + 1,
                primary_key=pk > 0,
            )
        )
    return _TableInfo(table, columns, primary_key)


def _introspect(run: _Run, file: str) -> SchemaGraph:
    with run.connect(_read_only_uri(file)) as connection:
        tables: dict[str, _TableInfo] = {}
        for name, kind in connection.execute(_TABLES_SQL).fetchall():
            try:
                tables[name.lower()] = _table_info(connection, name)
            except sqlite3.OperationalError:
                # A view over a table that was dropped cannot be described (nor read):
                # it is left out rather than failing the whole datasource.
                if kind != "view":
                    raise
        for info in tables.values():
            by_name = {column.name.lower(): column for column in info.columns}
            for target, source, target_column, seq in connection.execute(
                _FOREIGN_KEYS_SQL, (info.name,)
            ):
                referenced = tables.get(target.lower())
                if target_column is None and referenced and seq < len(referenced.primary_key):
                    # `REFERENCES t` without a column means t's primary key.
                    target_column = referenced.primary_key[seq]
                if target_column is not None:
                    by_name[source.lower()].references = ColumnRef(
                        SCHEMA, referenced.name if referenced else target, target_column
                    )
    return SchemaGraph(
        schemas=[SCHEMA],
        tables=[Table(SCHEMA, info.name, info.columns) for info in tables.values()],
    )


@hookimpl(trylast=True)
async def introspect_datasource(context: WeaverContext, datasource: Datasource) -> SchemaGraph:
    file = _database_file(context, datasource)
    return await _bounded(
        context,
        context.settings.mindsdb_timeout,
        "reading the schema",
        lambda run: _introspect(run, file),
        [datasource],
    )


def _blob_affinity(data_type: str) -> bool:
    # SQLite's affinity rules: a BLOB in the declared type, or no declared type.
    return "BLOB" in data_type.upper() or data_type.upper() in ("", "ANY")


def _jsonable(value: Any) -> Any:
    """A min/max fit for JSON: bytes (a blob in a text column) and infinities dropped."""
    if isinstance(value, bytes) or (isinstance(value, float) and not math.isfinite(value)):
        return None
    return value


def _table_statistics(connection: sqlite3.Connection, table: Table) -> TableStatistics:
    source = f"{_quote(SCHEMA)}.{_quote(table.name)}"
    (row_count,) = connection.execute(f"SELECT count(*) FROM {source}").fetchone()
    statistics = []
    for start in range(0, len(table.columns), STATISTICS_COLUMNS_PER_QUERY):
        chunk = table.columns[start : start + STATISTICS_COLUMNS_PER_QUERY]
        selected = []
        for column in chunk:
            name = _quote(column.name)
            extremes = (
                "NULL, NULL" if _blob_affinity(column.data_type) else f"min({name}), max({name})"
            )
            selected.append(f"count({name}), count(DISTINCT {name}), {extremes}")
        values = connection.execute(f"SELECT {', '.join(selected)} FROM {source}").fetchone()
        for index, column in enumerate(chunk):
            non_null, distinct, low, high = values[index * 4 : index * 4 + 4]
            statistics.append(
                ColumnStatistics(
                    name=column.name,
                    null_count=row_count - non_null,
                    distinct_count=distinct,
                    min=_jsonable(low),
                    max=_jsonable(high),
                )
            )
    return TableStatistics(SCHEMA, table.name, row_count, statistics)


@hookimpl(trylast=True)
async def compute_statistics(
    context: WeaverContext, datasource: Datasource, graph: SchemaGraph
) -> DatasourceStatistics:
    file = _database_file(context, datasource)
    tables = []
    for table in graph.tables:
        if table.schema != SCHEMA:
            continue

        def one(run: _Run, table: Table = table) -> TableStatistics:
            with run.connect(_read_only_uri(file)) as connection:
                return _table_statistics(connection, table)

        tables.append(
            await _bounded(
                context,
                context.settings.mindsdb_timeout,
                f"statistics of table {table.name!r}",
                one,
                [datasource],
            )
        )
    return DatasourceStatistics(tables=tables, computed_at=datetime.now(UTC))
