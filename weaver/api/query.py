"""`POST /api/query`: read-only SQL across the tenant's datasources."""

from __future__ import annotations

import base64
import functools
import time
from datetime import date, datetime, timedelta
from datetime import time as time_of_day
from decimal import Decimal
from typing import Any
from uuid import UUID

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field
from sqlglot import exp

from weaver import sql
from weaver.api.datasources import datasource_or_404
from weaver.errors import InvalidQuery, Problem, Unprocessable
from weaver.keys import HOST, METRICS, SETTINGS, principal_of
from weaver.responses import json_response
from weaver.routing import RouteTable
from weaver.types import PreparedQuery

routes = RouteTable()

DEFAULT_ROW_LIMIT = 1000


class QueryRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    sql: str = Field(min_length=1, max_length=100_000)
    limit: int = Field(DEFAULT_ROW_LIMIT, ge=1)
    timeout_seconds: float | None = Field(None, gt=0)


class ResultColumnOut(BaseModel):
    name: str
    type: str


class QueryResponse(BaseModel):
    columns: list[ResultColumnOut]
    rows: list[list[Any]]
    row_count: int
    truncated: bool
    elapsed_ms: float


# Statements longer than this are checked every time: the cache's memory must not depend
# on what tenants choose to send.
CACHED_STATEMENT_CHARS = 4096


def checked_statement(text: str, dialect: str | None) -> tuple[exp.Expression, tuple[str, ...]]:
    """The parsed, checked statement and the datasources it names.

    Short statements are cached, because dashboards send the same SQL again and again and
    parsing costs more than running a small query. The tree is shared: engines rewrite a
    copy of it.
    """
    if len(text) > CACHED_STATEMENT_CHARS:
        return _check(text, dialect)
    return _cached_check(text, dialect)


def _check(text: str, dialect: str | None) -> tuple[exp.Expression, tuple[str, ...]]:
    statement = sql.parse_read_only(text, dialect)
    return statement, tuple(sorted(sql.referenced_datasources(statement)))


_cached_check = functools.lru_cache(maxsize=1024)(_check)


# Values orjson writes exactly as `jsonable` would return them; floats are not among them,
# since NaN and the infinities need a string.
_NATIVE_TYPES = frozenset({int, str, bool, type(None)})


def jsonable_row(row: list[Any]) -> list[Any]:
    """``row`` ready for the JSON writer: most rows hold only native values, and are
    checked for that in one pass instead of converting every value."""
    if _NATIVE_TYPES.issuperset(map(type, row)):
        return row
    return [jsonable(v) for v in row]


def jsonable(value: Any) -> Any:
    """Engine values as JSON-native ones; exact types travel as strings."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        # NaN and infinities are not JSON.
        return (
            value if value == value and value not in (float("inf"), float("-inf")) else str(value)
        )
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime | date | time_of_day):
        return value.isoformat()
    if isinstance(value, timedelta):
        return str(value.total_seconds())
    if isinstance(value, bytes | bytearray | memoryview):
        return base64.b64encode(bytes(value)).decode()
    if isinstance(value, UUID):
        return str(value)
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    return str(value)


@routes.route(
    "POST",
    "/api/query",
    summary="Run read-only SQL",
    tag="query",
    role="viewer",
    body=QueryRequest,
    response=QueryResponse,
    errors=(400, 404, 422, 502, 504),
)
async def run_query(request: web.Request, body: QueryRequest) -> web.StreamResponse:
    host, settings, principal = request.app[HOST], request.app[SETTINGS], principal_of(request)
    if body.limit > settings.query_max_rows:
        raise _field_error("limit", f"at most {settings.query_max_rows} rows")
    timeout = body.timeout_seconds or settings.mindsdb_timeout
    if timeout > settings.mindsdb_timeout:
        raise _field_error("timeout_seconds", f"at most {settings.mindsdb_timeout:g} seconds")

    statement, names = checked_statement(body.sql, host.sql_dialect())
    datasources = {name: await datasource_or_404(host, principal.tenant_id, name) for name in names}
    query = PreparedQuery(statement, datasources, body.limit, timeout)
    engine = host.query_engine or "none"
    started = time.perf_counter()
    outcome = "error"
    try:
        result = await host.execute_query(principal, query)
        if result is None:
            raise InvalidQuery("the query engine cannot run this statement")
        outcome = "ok"
    except Problem as problem:
        outcome = problem.type_slug
        raise
    finally:
        request.app[METRICS].observe_query(engine, outcome, time.perf_counter() - started)
    elapsed_ms = round((time.perf_counter() - started) * 1000, 3)
    rows = [jsonable_row(row) for row in result.rows]
    return json_response(
        {
            "columns": [{"name": c.name, "type": c.type} for c in result.columns],
            "rows": rows,
            "row_count": len(rows),
            "truncated": result.truncated,
            "elapsed_ms": elapsed_ms,
        }
    )


def _field_error(field: str, message: str) -> Unprocessable:
    return Unprocessable(
        f"{field} is too large: {message}",
        errors=[{"loc": ["body", field], "msg": message, "type": "less_than_equal"}],
    )
