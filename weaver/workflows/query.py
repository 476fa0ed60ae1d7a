"""Running tenant SQL: check, resolve, render once, execute, answer."""

from __future__ import annotations

import base64
import random
from collections.abc import Sequence
from typing import Any

from weaver import sql
from weaver.errors import Unprocessable, field_error
from weaver.host import Host
from weaver.queries.pump import Rows, pump
from weaver.types import PreparedQuery, Principal, QueryResult, ResultColumn
from weaver.values import jsonable_row
from weaver.workflows.datasources import require_datasource

DEFAULT_ROW_LIMIT = 1000


def new_query_id() -> str:
    """Opaque and URL-safe: 96 random bits, base64url. Knowing an id gives nothing (a
    query answers only its tenant, and a viewer only its own), so the bits come from
    `random` (seeded from the OS in each process) rather than from the OS on every query,
    which cost 4% of the event loop's time under load."""
    return base64.urlsafe_b64encode(random.getrandbits(96).to_bytes(12, "big")).decode()


def _too_large(field: str, message: str) -> Unprocessable:
    return Unprocessable(
        f"{field} is too large: {message}",
        errors=[field_error(["body", field], message, "less_than_equal")],
    )


async def prepare(
    host: Host,
    principal: Principal,
    text: str,
    *,
    limit: int = DEFAULT_ROW_LIMIT,
    timeout_seconds: float | None = None,
    max_rows: int | None = None,
    max_timeout_seconds: float | None = None,
) -> PreparedQuery:
    """The engine's statement for tenant SQL ``text``: one checked read, on datasources
    of the principal's tenant only, rendered once in the engine's dialect. ``limit`` may
    reach ``max_rows`` (``WEAVER_QUERY_MAX_ROWS`` unless a streamed format allows more),
    ``timeout_seconds`` ``max_timeout_seconds`` (``MINDSDB_TIMEOUT`` unless async)."""
    settings = host.context.settings
    most_rows = max_rows or settings.query_max_rows
    if limit > most_rows:
        raise _too_large("limit", f"at most {most_rows} rows")
    longest = max_timeout_seconds or settings.query_timeout_seconds
    timeout = timeout_seconds or settings.query_timeout_seconds
    if timeout > longest:
        raise _too_large("timeout_seconds", f"at most {longest:g} seconds")
    return await render(host, principal, text, limit=limit, timeout_seconds=timeout)


async def render(
    host: Host, principal: Principal, text: str, *, limit: int, timeout_seconds: float
) -> PreparedQuery:
    """`prepare` without the bounds on ``limit`` and ``timeout_seconds`` the caller has
    already applied (or, in a conformance test, means to exceed)."""
    dialect = host.sql_dialect()
    checked = sql.check(text, dialect.name)
    datasources = {
        name: await require_datasource(host, principal.tenant_id, name)
        for name in checked.datasources
    }
    internal = tuple(sorted((name, d.internal_name) for name, d in datasources.items()))
    # One row more than asked for tells whether there were more.
    rendered = sql.render(text, dialect, internal, limit + 1)
    return PreparedQuery(new_query_id(), rendered, datasources, limit, timeout_seconds)


async def execute(host: Host, principal: Principal, query: PreparedQuery) -> QueryResult:
    """Run a prepared query and keep its whole answer in memory (at most
    ``query.limit`` rows, values JSON-native): for callers that want rows, not a stream."""
    rows: list[list[Any]] = []

    async def keep(batch: Rows) -> None:
        rows.extend(jsonable_row(list(row)) for row in batch)

    pumped = await pump(host, principal, query, on_columns=_ignore, on_rows=keep)
    return QueryResult(
        query.query_id, list(pumped.columns), rows, pumped.truncated, pumped.elapsed_ms
    )


async def _ignore(columns: Sequence[ResultColumn]) -> None:
    return None
