"""One statement's rows, from the engine to a sink, with the row limit, the timeout and
the stop at the source applied once for every engine and every destination."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from weaver.errors import EngineTimeout, InvalidQuery
from weaver.host import Host
from weaver.naming import INTERNAL_NAME_PATTERN, replace_internal_names
from weaver.types import PreparedQuery, Principal, ResultColumn, RowStream

log = logging.getLogger(__name__)

Rows = Sequence[Sequence[Any]]
ColumnsSink = Callable[[Sequence[ResultColumn]], Awaitable[None]]
RowsSink = Callable[[Rows], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class Pumped:
    columns: tuple[ResultColumn, ...]
    row_count: int
    truncated: bool
    elapsed_ms: float


async def pump(
    host: Host,
    principal: Principal,
    query: PreparedQuery,
    *,
    on_columns: ColumnsSink,
    on_rows: RowsSink,
) -> Pumped:
    """Run ``query`` and hand its columns, then its rows batch by batch, to the sinks.

    At most ``query.limit`` rows go on; one more tells that the result was truncated,
    and the engine stops reading there. Every wait on the engine is bounded by
    ``query.timeout_seconds`` (a slow client's time does not count). Whatever ends the
    run early — a timeout, this task being cancelled (a DELETE, a client gone) — asks the
    engine to stop the statement at the source before the stream is closed.
    """
    started = time.perf_counter()
    seconds = query.timeout_seconds
    stream: RowStream | None = await _engine_wait(host, query, host.execute_query(principal, query))
    if stream is None:
        raise InvalidQuery("the query engine cannot run this statement")
    try:
        columns = public_columns(stream.columns, query)
        await on_columns(columns)
        count, truncated = 0, False
        batches = aiter(stream)
        while not truncated:
            try:
                batch = await _engine_wait(host, query, anext(batches), seconds)
            except StopAsyncIteration:
                break
            room = query.limit - count
            if len(batch) > room:
                batch, truncated = batch[:room], True
            if batch:
                await on_rows(batch)
                count += len(batch)
    finally:
        # Truncated, or a sink failed (a client gone mid-write): closing the stream ends
        # the statement. Shielded: closing must finish even when the task was cancelled.
        await asyncio.shield(stream.aclose())
    return Pumped(columns, count, truncated, round((time.perf_counter() - started) * 1000, 3))


async def _engine_wait(
    host: Host, query: PreparedQuery, waiting: Awaitable[Any], seconds: float | None = None
) -> Any:
    try:
        async with asyncio.timeout(seconds if seconds is not None else query.timeout_seconds):
            return await waiting
    except TimeoutError:
        await stop_at_source(host, query)
        raise EngineTimeout(
            f"the query engine did not answer within {query.timeout_seconds:g}s"
        ) from None
    except asyncio.CancelledError:
        await stop_at_source(host, query)
        raise


async def stop_at_source(host: Host, query: PreparedQuery) -> None:
    """Ask the engine to stop the statement; a failure to do so is the engine's to log,
    never the reason a cancel or a timeout goes unanswered."""
    try:
        await asyncio.shield(host.cancel_query(query))
    except Exception as error:  # the statement may be gone, the engine down
        log.warning("could not stop query %s at the source: %s", query.query_id, error)


def public_columns(
    columns: Sequence[ResultColumn], query: PreparedQuery
) -> tuple[ResultColumn, ...]:
    """Result columns as the tenant would name them: an engine may name a computed column
    after its expression, internal datasource names included."""
    if not any(INTERNAL_NAME_PATTERN.search(column.name) for column in columns):
        return tuple(columns)
    names = {d.internal_name.lower(): d.name for d in query.datasources.values()}
    return tuple(
        ResultColumn(replace_internal_names(column.name, names), column.type) for column in columns
    )
