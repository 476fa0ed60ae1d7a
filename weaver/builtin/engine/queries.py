"""Running a tenant's rendered statement on a query connection."""

from __future__ import annotations

import functools
import os
import sqlite3
import time
from collections.abc import Iterable
from typing import Any

from weaver.builtin.engine.connections import (
    BUSY_TIMEOUT_SECONDS,
    AttachmentKey,
    Pool,
    QueryConnection,
    attach,
)
from weaver.builtin.engine.paths import PathRefused, resolve
from weaver.builtin.engine.runs import PROGRESS_STEPS, Run
from weaver.errors import EngineFailed, InvalidQuery
from weaver.types import Datasource, EngineResult, ResultColumn

# A query on an already attached connection first runs on the event loop for at most this
# long: most dashboard queries finish well within it, and handing work to a thread costs
# more than running them. Anything slower is stopped and run again on a worker thread.
INLINE_BUDGET_SECONDS = 0.002

_VALUE_TYPES: dict[type, str] = {int: "integer", float: "real", str: "text", bytes: "blob"}


def column_types(width: int, rows: list[tuple[Any, ...]]) -> list[str]:
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


def _fetch(attached: QueryConnection, sql: str, most: int) -> EngineResult:
    """Up to ``most`` rows and the columns; the caller has made the connection stoppable."""
    attached.authorizer.refused = False
    try:
        cursor = attached.connection.execute(sql)
        try:
            rows = cursor.fetchmany(most)
            names = [description[0] for description in cursor.description or ()]
        finally:
            # Ends the read transaction, so an idle connection holds no lock.
            cursor.close()
    except sqlite3.DatabaseError:
        if attached.authorizer.refused:
            raise InvalidQuery("only reads may be run: the engine refused this statement") from None
        raise
    columns = _columns(tuple(names), tuple(column_types(len(names), rows)))
    return EngineResult(list(columns), [list(row) for row in rows])


def run_on_worker(run: Run, pool: Pool, key: AttachmentKey, sql: str, most: int) -> EngineResult:
    attached = pool.take(key) or attach(key)
    try:
        # Idle connections do not wait for locks (they serve the loop); a worker may.
        attached.set_busy_timeout(int(BUSY_TIMEOUT_SECONDS * 1000))
        with run.interruptible(attached.connection):
            result = _fetch(attached, sql, most)
        attached.set_busy_timeout(0)
    except BaseException:
        attached.connection.close()
        raise
    pool.give(attached)
    return result


# Stopped by the budget, or a lock held elsewhere: neither is an answer, both are retried.
_RETRY_IN_WORKER = frozenset({sqlite3.SQLITE_INTERRUPT, sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED})


def run_inline(pool: Pool, key: AttachmentKey, sql: str, most: int) -> EngineResult | None:
    """The query run on the calling (event loop) thread within `INLINE_BUDGET_SECONDS`,
    or ``None`` when it needs a worker: no idle connection for its files (attaching costs
    more than the hand-off), a lock to wait for, or more time than the budget."""
    attached = pool.take(key)
    if attached is None:
        return None
    connection = attached.connection
    # Only the deadline stops an inline run (nothing else can reach it while it holds the
    # loop), so it needs no `Run`.
    deadline = time.monotonic() + INLINE_BUDGET_SECONDS
    connection.set_progress_handler(lambda: time.monotonic() >= deadline, PROGRESS_STEPS)
    try:
        # Idle connections wait for no lock (see `run_on_worker`): a lock fails at once
        # here and the query is retried in a worker, so the loop never waits on another
        # process.
        result = _fetch(attached, sql, most)
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
    return result


# A dashboard's queries answer the same columns again and again; the (frozen) column
# records are made once.
@functools.lru_cache(maxsize=1024)
def _columns(names: tuple[str, ...], kinds: tuple[str, ...]) -> tuple[ResultColumn, ...]:
    return tuple(ResultColumn(name, kind) for name, kind in zip(names, kinds, strict=True))
