"""What text-to-SQL agents need beside queries: sample rows, join paths, schema context.

The work is `weaver.workflows.agents` and `weaver.workflows.context`, which the MCP tools
call too.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from weaver.api.metadata import DS, PREFIX
from weaver.api.models import Answer
from weaver.api.query import ResultColumnOut
from weaver.keys import HOST, QUERIES, principal_of
from weaver.responses import json_response
from weaver.routing import RouteTable
from weaver.types import TableName
from weaver.workflows import agents, context

routes = RouteTable()


class SampleQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    limit: int = Field(agents.SAMPLE_DEFAULT_ROWS, ge=1, le=agents.SAMPLE_MAX_ROWS)


class SampleOut(Answer):
    columns: list[ResultColumnOut]
    rows: list[list[Any]]


class JoinPathsQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    start: str = Field(alias="from", min_length=5, max_length=600)
    end: str = Field(alias="to", min_length=5, max_length=600)
    max_hops: int = Field(agents.DEFAULT_MAX_HOPS, ge=1, le=6)


class HopOut(Answer):
    from_column: str = Field(alias="from")
    to_column: str = Field(alias="to")


class JoinPathOut(Answer):
    hops: list[HopOut]
    sql: str


class JoinPathsOut(Answer):
    items: list[JoinPathOut]
    next_cursor: None


class ContextQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    q: str = Field(min_length=1, max_length=1000)
    max_tables: int = Field(context.DEFAULT_MAX_TABLES, ge=1, le=context.MAX_TABLES)
    max_chars: int = Field(context.DEFAULT_MAX_CHARS, ge=200, le=1_000_000)


class ContextColumnOut(Answer):
    name: str
    data_type: str
    nullable: bool
    primary_key: bool
    references: str | None
    glossary: list[str]


class ContextTermOut(Answer):
    term: str
    definition: str


class ContextTableOut(Answer):
    table: str
    score: int
    matched: list[str]
    columns: list[ContextColumnOut]
    glossary: list[ContextTermOut]
    row_count: int | None = None
    datasource_description: str | None = None
    columns_omitted: int | None = None


class ContextJoinOut(JoinPathOut):
    from_table: str = Field(alias="from")
    to_table: str = Field(alias="to")


class ContextOut(Answer):
    tables: list[ContextTableOut]
    join_paths: list[ContextJoinOut]
    truncated: bool


@routes.route(
    "GET",
    DS + "/schemas/{schema}/tables/{table}/sample",
    summary="A few rows of a table, through the query path",
    tag="agents",
    role="viewer",
    query=SampleQuery,
    response=SampleOut,
    errors=(400, 404, 422, 429, 502, 503, 504),
    headers={"X-Query-Id": "the query's id"},
)
async def sample(request: web.Request, query: SampleQuery) -> web.StreamResponse:
    name = TableName(
        request.match_info["name"], request.match_info["schema"], request.match_info["table"]
    )
    result = await agents.sample(
        request.app[HOST],
        request.app[QUERIES],
        principal_of(request),
        name,
        limit=query.limit,
        via="api",
    )
    return json_response(
        {
            "columns": [{"name": c.name, "type": c.type} for c in result.columns],
            "rows": result.rows,
        },
        headers={"X-Query-Id": result.query_id},
    )


@routes.route(
    "GET",
    PREFIX + "/join-paths",
    summary="The shortest foreign-key paths between two tables",
    tag="agents",
    role="viewer",
    query=JoinPathsQuery,
    response=JoinPathsOut,
    errors=(404, 422),
)
async def join_paths(request: web.Request, query: JoinPathsQuery) -> web.StreamResponse:
    answers = await agents.join_paths(
        request.app[HOST],
        principal_of(request).tenant_id,
        agents.parse_table_name(query.start, "from"),
        agents.parse_table_name(query.end, "to"),
        max_hops=query.max_hops,
    )
    return json_response(
        {"items": [agents.render_join(answer) for answer in answers], "next_cursor": None}
    )


@routes.route(
    "GET",
    PREFIX + "/context",
    summary="The tables, keys, glossary terms and joins a question needs, size-bounded",
    tag="agents",
    role="viewer",
    query=ContextQuery,
    response=ContextOut,
    errors=(422,),
)
async def get_context(request: web.Request, query: ContextQuery) -> web.StreamResponse:
    body = await context.context(
        request.app[HOST],
        principal_of(request).tenant_id,
        query.q,
        max_tables=query.max_tables,
        max_chars=query.max_chars,
    )
    # The bytes as measured against max_chars: not serialised again.
    return web.Response(body=body, content_type="application/json")
