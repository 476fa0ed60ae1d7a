"""Running tenant SQL: check, resolve, render once, execute, answer."""

from __future__ import annotations

import functools
import secrets
import time
from collections.abc import Iterable

from weaver import sql
from weaver.errors import InvalidQuery, Unprocessable, field_error
from weaver.host import Host
from weaver.naming import INTERNAL_NAME_PATTERN, replace_internal_names
from weaver.types import Datasource, PreparedQuery, Principal, QueryResult, ResultColumn
from weaver.values import jsonable_row
from weaver.workflows.datasources import require_datasource

DEFAULT_ROW_LIMIT = 1000


def new_query_id() -> str:
    """Opaque and URL-safe; unguessable, since it names a tenant's query in URLs."""
    return secrets.token_urlsafe(12)


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
) -> PreparedQuery:
    """The engine's statement for tenant SQL ``text``: one checked read, on datasources
    of the principal's tenant only, rendered once in the engine's dialect."""
    settings = host.context.settings
    if limit > settings.query_max_rows:
        raise _too_large("limit", f"at most {settings.query_max_rows} rows")
    timeout = timeout_seconds or settings.query_timeout_seconds
    if timeout > settings.query_timeout_seconds:
        raise _too_large("timeout_seconds", f"at most {settings.query_timeout_seconds:g} seconds")
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
    """Run a prepared query: at most ``query.limit`` rows, values JSON-native, column
    names free of internal names."""
    started = time.perf_counter()
    result = await host.execute_query(principal, query)
    if result is None:
        raise InvalidQuery("the query engine cannot run this statement")
    rows = result.rows
    truncated = len(rows) > query.limit
    if truncated:
        rows = rows[: query.limit]
    return QueryResult(
        query_id=query.query_id,
        columns=public_columns(result.columns, query.datasources.values()),
        rows=[jsonable_row(row) for row in rows],
        truncated=truncated,
        elapsed_ms=round((time.perf_counter() - started) * 1000, 3),
    )


# A dashboard's queries answer the same columns again and again.
@functools.lru_cache(maxsize=1024)
def _public_columns(
    columns: tuple[ResultColumn, ...], public_by_internal: tuple[tuple[str, str], ...]
) -> tuple[ResultColumn, ...]:
    names = dict(public_by_internal)
    return tuple(
        ResultColumn(replace_internal_names(column.name, names), column.type)
        if INTERNAL_NAME_PATTERN.search(column.name)
        else column
        for column in columns
    )


def public_columns(
    columns: Iterable[ResultColumn], datasources: Iterable[Datasource]
) -> list[ResultColumn]:
    """Result columns as the tenant would name them: an engine may name a computed
    column after its expression, internal datasource names included."""
    names = tuple(sorted((d.internal_name.lower(), d.name) for d in datasources))
    return list(_public_columns(tuple(columns), names))
