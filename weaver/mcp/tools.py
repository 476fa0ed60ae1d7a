"""The MCP tools: each one the REST API's workflow, for the caller the request's token
names, its answer a typed (structured) result.

A tool never does the work itself: it calls what the matching ``/api`` handler calls
(`weaver.workflows`, the host's facade, the query service), so checks, limits, tenancy
and history are the API's. A problem becomes an MCP error result whose text is the
problem's title and detail (``Not Found: datasource 'x' not found``); anything else is
logged and answered with the SDK's generic error, never a traceback.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from dataclasses import asdict
from typing import Annotated, Any, Literal, ParamSpec, TypeVar

import orjson
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.types import ToolAnnotations
from pydantic import BaseModel, Field

from weaver import __version__, codec
from weaver.errors import Forbidden, Problem
from weaver.host import Host
from weaver.queries.service import QueryService
from weaver.types import Page, Principal, QueryResult, TableName
from weaver.workflows import agents, catalog
from weaver.workflows import context as context_workflow

# The ASGI scope key under which the HTTP handler leaves the verified caller.
PRINCIPAL_SCOPE_KEY = "weaver.principal"
LIST_LIMIT = 100
QUERY_DEFAULT_ROWS = 100
QUERY_MAX_ROWS = 1000

P = ParamSpec("P")
T = TypeVar("T")

INSTRUCTIONS = (
    "Weaver is a read-only data gateway. Tables are named datasource.schema.table. Start "
    "with `context` for a question (or `search_catalog`), check names with "
    "`describe_table`, join with the SQL `join_paths` gives, look at `sample_rows`, then "
    "`run_query` one SELECT (tables as datasource.table or datasource.schema.table)."
)


class DatasourceItem(BaseModel):
    name: str
    engine: str
    description: str | None


class DatasourceList(BaseModel):
    items: list[DatasourceItem]


class SearchItem(BaseModel):
    kind: Literal["table", "column"]
    datasource: str
    schema_name: str = Field(alias="schema")
    table: str
    column: str | None = None
    data_type: str | None = None


class SearchList(BaseModel):
    items: list[SearchItem]


class ColumnRefItem(BaseModel):
    schema_name: str = Field(alias="schema")
    table: str
    column: str


class ColumnItem(BaseModel):
    name: str
    data_type: str
    nullable: bool
    ordinal: int
    primary_key: bool
    references: ColumnRefItem | None


class ReferrerItem(BaseModel):
    schema_name: str = Field(alias="schema")
    table: str
    column: str
    referenced_column: str


class TableDescription(BaseModel):
    name: str
    schema_name: str = Field(alias="schema")
    datasource: str
    row_count: int | None
    columns: list[ColumnItem]
    referenced_by: list[ReferrerItem]


class HopItem(BaseModel):
    from_column: str = Field(alias="from")
    to_column: str = Field(alias="to")


class JoinPathItem(BaseModel):
    hops: list[HopItem]
    sql: str


class JoinPathList(BaseModel):
    items: list[JoinPathItem]


class ContextColumn(BaseModel):
    name: str
    data_type: str
    nullable: bool
    primary_key: bool
    references: str | None
    glossary: list[str]


class ContextTerm(BaseModel):
    term: str
    definition: str


class ContextTable(BaseModel):
    table: str
    score: int
    matched: list[str]
    columns: list[ContextColumn]
    glossary: list[ContextTerm]
    row_count: int | None = None
    datasource_description: str | None = None
    columns_omitted: int | None = None


class ContextJoin(JoinPathItem):
    from_table: str = Field(alias="from")
    to_table: str = Field(alias="to")


class ContextDocument(BaseModel):
    tables: list[ContextTable]
    join_paths: list[ContextJoin]
    truncated: bool


class ResultColumnItem(BaseModel):
    name: str
    type: str


class Rows(BaseModel):
    query_id: str
    columns: list[ResultColumnItem]
    rows: list[list[Any]]
    row_count: int
    truncated: bool


class GlossaryItem(BaseModel):
    id: str
    term: str
    definition: str
    synonyms: list[str]
    columns: list[str]


class GlossaryList(BaseModel):
    items: list[GlossaryItem]


def principal_of(ctx: Context) -> Principal:
    """The caller the HTTP handler verified; every tool reads records as this tenant."""
    request = ctx.request_context.request
    principal = request.scope.get(PRINCIPAL_SCOPE_KEY) if request is not None else None
    if not isinstance(principal, Principal):
        raise ToolError("Unauthorized: this server is reached through Weaver's /mcp only")
    if not principal.can("viewer"):
        raise ToolError(f"{Forbidden.title}: this tool needs the 'viewer' role")
    return principal


def answering_problems(tool: Callable[P, Awaitable[T]]) -> Callable[P, Awaitable[T]]:
    """A problem raised by the workflow becomes the tool's error: its title and detail."""

    @functools.wraps(tool)
    async def guarded(*args: P.args, **kwargs: P.kwargs) -> T:
        try:
            return await tool(*args, **kwargs)
        except Problem as problem:
            raise ToolError(f"{problem.title}: {problem.detail}") from None

    return guarded


def _rows(result: QueryResult) -> Rows:
    return Rows(
        query_id=result.query_id,
        columns=[ResultColumnItem(name=c.name, type=c.type) for c in result.columns],
        rows=result.rows,
        row_count=len(result.rows),
        truncated=result.truncated,
    )


Name = Annotated[str, Field(min_length=1, max_length=200)]
READ_ONLY = ToolAnnotations(read_only_hint=True, destructive_hint=False, open_world_hint=False)


def build_server(host: Host, queries: QueryService) -> MCPServer:
    """The MCP server of one gateway app, its tools bound to that app's host and queries."""
    server: MCPServer = MCPServer(
        "weaver", version=__version__, instructions=INSTRUCTIONS, log_level="WARNING"
    )

    def tool(description: str) -> Callable[[Callable[P, Awaitable[T]]], Callable[P, Awaitable[T]]]:
        def register(function: Callable[P, Awaitable[T]]) -> Callable[P, Awaitable[T]]:
            guarded = answering_problems(function)
            server.add_tool(guarded, description=description, annotations=READ_ONLY)
            return guarded

        return register

    @tool("The caller's datasources: their names, engines and descriptions.")
    async def list_datasources(ctx: Context) -> DatasourceList:
        principal = principal_of(ctx)
        found = await host.list_datasources(principal.tenant_id, Page(LIST_LIMIT))
        return DatasourceList(
            items=[
                DatasourceItem(name=d.name, engine=d.engine, description=d.description)
                for d in found
            ]
        )

    @tool("Tables or columns of the synced catalog whose name contains `query` (any case).")
    async def search_catalog(
        ctx: Context,
        query: Annotated[str, Field(min_length=1, max_length=200)],
        kind: Literal["table", "column"] = "table",
        limit: Annotated[int, Field(ge=1, le=LIST_LIMIT)] = 50,
    ) -> SearchList:
        principal = principal_of(ctx)
        hits = await host.search_metadata(principal.tenant_id, query, kind, Page(limit))
        return SearchList.model_validate({"items": [catalog.render_hit(h) for h in hits]})

    @tool("A table's columns, types, primary key and foreign keys (both ways).")
    async def describe_table(
        ctx: Context, datasource: Name, schema: Name, table: Name
    ) -> TableDescription:
        principal = principal_of(ctx)
        found = await agents.require_catalog_table(
            host, principal.tenant_id, TableName(datasource, schema, table)
        )
        columns = sorted(found.table.columns, key=lambda c: c.ordinal)
        return TableDescription(
            name=found.table.name,
            schema=found.table.schema,
            datasource=found.datasource.name,
            row_count=found.table.row_count,
            columns=[ColumnItem.model_validate(codec.to_jsonable(c)) for c in columns],
            referenced_by=[
                ReferrerItem.model_validate(asdict(r))
                for r in catalog.referrers(found.graph, found.table)
            ],
        )

    @tool(
        "The shortest foreign-key paths between two tables (datasource.schema.table), each "
        "with a FROM clause that joins them."
    )
    async def join_paths(
        ctx: Context,
        from_table: Annotated[str, Field(min_length=5, max_length=600)],
        to_table: Annotated[str, Field(min_length=5, max_length=600)],
        max_hops: Annotated[int, Field(ge=1, le=6)] = agents.DEFAULT_MAX_HOPS,
    ) -> JoinPathList:
        principal = principal_of(ctx)
        answers = await agents.join_paths(
            host,
            principal.tenant_id,
            agents.parse_table_name(from_table, "from_table"),
            agents.parse_table_name(to_table, "to_table"),
            max_hops=max_hops,
        )
        return JoinPathList.model_validate({"items": [agents.render_join(a) for a in answers]})

    @tool(
        "The tables a question most likely needs, ranked, with columns, keys, glossary "
        "terms and the joins among them, at most `max_chars` characters."
    )
    async def context(
        ctx: Context,
        question: Annotated[str, Field(min_length=1, max_length=1000)],
        max_tables: Annotated[
            int, Field(ge=1, le=context_workflow.MAX_TABLES)
        ] = context_workflow.DEFAULT_MAX_TABLES,
        max_chars: Annotated[int, Field(ge=200, le=1_000_000)] = context_workflow.DEFAULT_MAX_CHARS,
    ) -> ContextDocument:
        principal = principal_of(ctx)
        document = await context_workflow.context(
            host, principal.tenant_id, question, max_tables=max_tables, max_chars=max_chars
        )
        return ContextDocument.model_validate(orjson.loads(document))

    @tool("Up to `limit` rows of a table, run read-only like any query (and kept in history).")
    async def sample_rows(
        ctx: Context,
        datasource: Name,
        schema: Name,
        table: Name,
        limit: Annotated[int, Field(ge=1, le=agents.SAMPLE_MAX_ROWS)] = agents.SAMPLE_DEFAULT_ROWS,
    ) -> Rows:
        principal = principal_of(ctx)
        result = await agents.sample(
            host,
            queries,
            principal,
            TableName(datasource, schema, table),
            limit=limit,
            via="mcp",
        )
        return _rows(result)

    @tool(
        "Run one read-only SELECT (tables as datasource.table or datasource.schema.table); "
        "at most `limit` rows. Writes are refused."
    )
    async def run_query(
        ctx: Context,
        sql: Annotated[str, Field(min_length=1, max_length=100_000)],
        limit: Annotated[int, Field(ge=1, le=QUERY_MAX_ROWS)] = QUERY_DEFAULT_ROWS,
        timeout_seconds: Annotated[float | None, Field(gt=0)] = None,
    ) -> Rows:
        principal = principal_of(ctx)
        result = await agents.collect(
            queries, principal, sql, limit=limit, timeout_seconds=timeout_seconds, via="mcp"
        )
        return _rows(result)

    @tool("Business terms: definitions, synonyms and the columns they name.")
    async def glossary(
        ctx: Context,
        query: Annotated[str | None, Field(max_length=200)] = None,
        limit: Annotated[int, Field(ge=1, le=LIST_LIMIT)] = 50,
    ) -> GlossaryList:
        principal = principal_of(ctx)
        terms = await host.list_glossary_terms(principal.tenant_id, query or None, Page(limit))
        return GlossaryList(
            items=[
                GlossaryItem(
                    id=t.id,
                    term=t.term,
                    definition=t.definition,
                    synonyms=list(t.synonyms),
                    columns=list(t.columns),
                )
                for t in terms
            ]
        )

    return server
