"""Running a tenant's rendered statement: on the engine's threads only, row batches
pulled one at a time, stoppable at any moment.

Nothing of a tenant statement ever runs on the event loop: one SQLite expression
(``printf('%.*c', 500000000, 'x')``) is a single VM step that no progress handler can
interrupt, and on the loop it would stall every request of the process. A statement
runs on an engine thread; each batch is one more ``fetchmany`` there, asked for only
when the previous one has been sent, so the cursor is the only buffer and a slow client
slows the fetch.
"""

from __future__ import annotations

import functools
import os
import sqlite3
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from typing import Any

from weaver.builtin.engine.connections import AttachmentKey, Pool, QueryConnection, attach
from weaver.builtin.engine.paths import PathRefused, resolve
from weaver.builtin.engine.runs import Run, Workers
from weaver.errors import EngineFailed, EngineTimeout, InvalidQuery, Problem, QueryFailed
from weaver.types import Datasource, ResultColumn

# Rows per fetch: big enough that the thread hand-off is noise (about 40 µs against a few
# milliseconds of fetching), small enough that a batch is a few hundred kilobytes. The
# first fetch is smaller, so that the first bytes of an export leave sooner; it still
# holds enough rows to read the columns' types from.
BATCH_ROWS = 5000
FIRST_BATCH_ROWS = 1000

_VALUE_TYPES: dict[type, str] = {int: "integer", float: "real", str: "text", bytes: "blob"}

# SQLite's messages for statements the caller got wrong (not the engine's failures).
_CALLER_ERRORS = (
    "no such table",
    "no such column",
    "ambiguous column name",
    "no such function",
    "wrong number of arguments",
    "misuse of",
    "syntax error",
    "no such collation",
    "has no column named",
    "too many terms",
    "unrecognized token",
)


def column_types(width: int, rows: Sequence[Sequence[Any]]) -> list[str]:
    """SQLite's storage class of each column's first non-null value ("null" if none):
    SQLite reports no types for result columns, and values may differ from declarations."""
    types = ["null"] * width
    for index in range(width):
        for row in rows:
            if row[index] is not None:
                types[index] = _VALUE_TYPES.get(type(row[index]), "text")
                break
    return types


def attachment_key(root: str, datasources: Iterable[Datasource]) -> AttachmentKey:
    """What a query attaches: each datasource's file, checked under the root again now
    (the tree may have changed since registration), with its device and inode now."""
    entries = []
    for datasource in datasources:
        alias = datasource.internal_name
        try:
            file, status = resolve(root, datasource.connection.get("path"))
            if status is None:
                status = os.stat(file)
        except PathRefused as error:
            raise EngineFailed(f"datasource {datasource.name!r}: path {error}") from None
        except OSError:
            raise EngineFailed(f"the file of datasource {alias!r} cannot be opened") from None
        entries.append((alias, file, status.st_dev, status.st_ino))
    return tuple(sorted(entries))


def problem_of(error: sqlite3.Error, attached: QueryConnection, run: Run) -> Problem:
    """What a SQLite error during a tenant statement means for the caller."""
    message = str(error)
    if attached.authorizer.refused:
        return InvalidQuery("only reads may be run: the engine refused this statement")
    if any(phrase in message for phrase in _CALLER_ERRORS):
        return QueryFailed(message)
    if run.expired():
        return EngineTimeout("the query did not finish in time")
    return EngineFailed(message)


class SqliteRows:
    """One running statement: its connection and cursor, owned by this stream until
    `aclose`, and the `Run` that can interrupt it."""

    def __init__(
        self,
        workers: Workers,
        pool: Pool,
        attached: QueryConnection,
        cursor: sqlite3.Cursor,
        run: Run,
        first: list[tuple[Any, ...]],
        step_seconds: float,
        *,
        on_close: Callable[[], object],
    ) -> None:
        self._workers = workers
        self._pool = pool
        self._attached = attached
        self._cursor = cursor
        self._run = run
        self._first: list[tuple[Any, ...]] | None = first
        self._step_seconds = step_seconds
        self._on_close = on_close
        self._done = len(first) < FIRST_BATCH_ROWS
        # A result that fitted in the first batch was ended by `start` already.
        self._released = self._done
        self._closed = False
        names = tuple(description[0] for description in cursor.description or ())
        self._columns = _columns(names, tuple(column_types(len(names), first)))

    @property
    def columns(self) -> Sequence[ResultColumn]:
        return self._columns

    async def __aiter__(self) -> AsyncIterator[Sequence[Sequence[Any]]]:
        if self._first is not None:
            first, self._first = self._first, None
            if first:
                yield first
        while not self._done and not self._closed:
            batch = await self._workers.step(self._run, self._step_seconds, self._fetch)
            self._done = len(batch) < BATCH_ROWS
            if batch:
                yield batch

    def _fetch(self) -> list[tuple[Any, ...]]:
        try:
            return self._cursor.fetchmany(BATCH_ROWS)
        except sqlite3.Error as error:
            raise problem_of(error, self._attached, self._run) from None

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        # Closing the cursor ends the statement; only an interrupted one spoils nothing
        # worth keeping, but is not worth trusting either.
        reusable = not self._run.cancelled
        self._run.release()
        try:
            if not self._released:
                await self._workers.step(Run(self._step_seconds), self._step_seconds, self._release)
        finally:
            self._on_close()
        if reusable:
            self._pool.give(self._attached)
        else:
            # Interrupted mid-statement: a fresh connection next time costs little.
            self._attached.connection.close()

    def _release(self) -> None:
        # Ends the read transaction, so an idle connection holds no lock.
        self._cursor.close()


def start(
    run: Run, pool: Pool, key: AttachmentKey, sql: str
) -> tuple[QueryConnection, sqlite3.Cursor, list[tuple[Any, ...]]]:
    """Execute ``sql`` on a query connection for ``key`` and read the first batch (on an
    engine thread; ``run`` can interrupt it)."""
    attached = pool.take(key) or attach(key)
    attached.authorizer.refused = False
    # Every batch of this statement runs under ``run``, until the stream is closed.
    run.hold(attached.connection)
    try:
        cursor = attached.connection.execute(sql)
        first = cursor.fetchmany(FIRST_BATCH_ROWS)
        if len(first) < FIRST_BATCH_ROWS:
            # The whole result: end the statement here, saving the stream a trip to a
            # thread to do it (most dashboard queries end within one batch).
            cursor.close()
    except sqlite3.Error as error:
        run.release()
        attached.connection.close()
        raise problem_of(error, attached, run) from None
    except BaseException:
        run.release()
        attached.connection.close()
        raise
    return attached, cursor, first


# A dashboard's queries answer the same columns again and again; the (frozen) column
# records are made once.
@functools.lru_cache(maxsize=1024)
def _columns(names: tuple[str, ...], kinds: tuple[str, ...]) -> tuple[ResultColumn, ...]:
    return tuple(ResultColumn(name, kind) for name, kind in zip(names, kinds, strict=True))
