"""`POST /api/query`: read-only SQL across the tenant's datasources."""

from __future__ import annotations

import time
from typing import Any

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from weaver.api.models import Answer
from weaver.errors import Problem
from weaver.keys import HOST, METRICS, principal_of
from weaver.responses import json_response
from weaver.routing import RouteTable
from weaver.workflows import query as workflow

routes = RouteTable()


class QueryRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    sql: str = Field(min_length=1, max_length=100_000)
    limit: int = Field(workflow.DEFAULT_ROW_LIMIT, ge=1)
    timeout_seconds: float | None = Field(None, gt=0)


class ResultColumnOut(Answer):
    name: str
    type: str


class QueryResponse(Answer):
    columns: list[ResultColumnOut]
    rows: list[list[Any]]
    row_count: int
    truncated: bool
    elapsed_ms: float


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
    host, principal = request.app[HOST], principal_of(request)
    prepared = await workflow.prepare(
        host, principal, body.sql, limit=body.limit, timeout_seconds=body.timeout_seconds
    )
    started = time.perf_counter()
    outcome = "error"
    try:
        result = await workflow.execute(host, principal, prepared)
        outcome = "ok"
    except Problem as problem:
        outcome = problem.type_slug
        raise
    finally:
        request.app[METRICS].observe_query(
            host.query_plugin or "none", outcome, time.perf_counter() - started
        )
    return json_response(
        {
            "columns": [{"name": c.name, "type": c.type} for c in result.columns],
            "rows": result.rows,
            "row_count": len(result.rows),
            "truncated": result.truncated,
            "elapsed_ms": result.elapsed_ms,
        }
    )
