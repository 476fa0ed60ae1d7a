"""`/api/v1/metadata`: sync, browse, search, snapshots and statistics."""

from __future__ import annotations

from dataclasses import asdict
from datetime import datetime
from typing import Any, Literal

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from weaver import codec
from weaver.api.datasources import datasource_of
from weaver.api.models import Answer
from weaver.api.paging import ItemList, ListQuery, page_in_memory, page_of
from weaver.errors import BadRequest
from weaver.keys import HOST, principal_of
from weaver.responses import json_response
from weaver.routing import RouteTable
from weaver.types import (
    Column,
    DatasourceStatistics,
    GlossaryLink,
    SnapshotSummary,
    Table,
    parse_search_key,
)
from weaver.workflows import catalog

routes = RouteTable()
PREFIX = "/api/v1/metadata"
DS = PREFIX + "/datasources/{name}"


class SyncResult(Answer):
    snapshot_id: str
    schemas: int
    tables: int
    columns: int
    foreign_keys: int
    elapsed_ms: float


class SchemaOut(Answer):
    name: str
    table_count: int


class TableSummaryOut(Answer):
    name: str
    column_count: int
    row_count: int | None = None


class ColumnRefOut(Answer):
    schema_name: str = Field(alias="schema")
    table: str
    column: str


class ColumnGlossaryOut(Answer):
    id: str
    term: str


class ColumnOut(Answer):
    name: str
    data_type: str
    nullable: bool
    ordinal: int
    primary_key: bool
    references: ColumnRefOut | None
    glossary: list[ColumnGlossaryOut]


class ReferrerOut(Answer):
    schema_name: str = Field(alias="schema")
    table: str
    column: str
    referenced_column: str


class TableOut(Answer):
    name: str
    schema_name: str = Field(alias="schema")
    datasource: str
    columns: list[ColumnOut]
    referenced_by: list[ReferrerOut]


class SearchQuery(ListQuery):
    model_config = ConfigDict(extra="forbid")

    q: str = Field(min_length=1, max_length=200)
    kind: Literal["table", "column"] = "table"


class SearchHitOut(Answer):
    kind: Literal["table", "column"]
    datasource: str
    schema_name: str = Field(alias="schema")
    table: str
    column: str | None = None
    data_type: str | None = None


class SnapshotSummaryOut(Answer):
    id: str
    created_at: datetime
    tables: int
    columns: int


class DiffQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    against: str = Field(min_length=1, max_length=200)


class ColumnChangeOut(Answer):
    column: str
    before: str
    after: str


class TableChangeOut(Answer):
    table: str
    added_columns: list[str]
    removed_columns: list[str]
    changed_columns: list[ColumnChangeOut]


class SnapshotDiffOut(Answer):
    added_tables: list[str]
    removed_tables: list[str]
    changed_tables: list[TableChangeOut]


class ColumnStatisticsOut(Answer):
    name: str
    null_count: int
    distinct_count: int
    min: Any = None
    max: Any = None


class TableStatisticsOut(Answer):
    schema_name: str = Field(alias="schema")
    table: str
    row_count: int
    columns: list[ColumnStatisticsOut]


class StatisticsOut(Answer):
    tables: list[TableStatisticsOut]
    computed_at: datetime


@routes.route(
    "POST",
    DS + "/sync",
    summary="Introspect and record a snapshot",
    tag="metadata",
    role="editor",
    response=SyncResult,
    errors=(404, 502, 504),
)
async def sync(request: web.Request) -> web.StreamResponse:
    host, datasource = await datasource_of(request)
    outcome = await catalog.sync(host, datasource)
    graph = outcome.snapshot.graph
    return json_response(
        {
            "snapshot_id": outcome.snapshot.id,
            "schemas": len(graph.schemas),
            "tables": len(graph.tables),
            "columns": graph.column_count,
            "foreign_keys": graph.foreign_key_count,
            "elapsed_ms": outcome.elapsed_ms,
        }
    )


@routes.route(
    "GET",
    DS + "/schemas",
    summary="Schemas of a datasource",
    tag="metadata",
    role="viewer",
    query=ListQuery,
    response=ItemList[SchemaOut],
    errors=(404,),
)
async def list_schemas(request: web.Request, query: ListQuery) -> web.StreamResponse:
    host, datasource = await datasource_of(request)
    graph = await catalog.require_graph(host, datasource)
    counts = {schema: 0 for schema in graph.schemas}
    for table in graph.tables:
        counts[table.schema] = counts.get(table.schema, 0) + 1
    rows = sorted(counts.items())
    return json_response(
        page_in_memory(rows, query, lambda r: r[0], lambda r: {"name": r[0], "table_count": r[1]})
    )


@routes.route(
    "GET",
    DS + "/schemas/{schema}/tables",
    summary="Tables of a schema",
    tag="metadata",
    role="viewer",
    query=ListQuery,
    response=ItemList[TableSummaryOut],
    errors=(404,),
)
async def list_tables(request: web.Request, query: ListQuery) -> web.StreamResponse:
    host, datasource = await datasource_of(request)
    graph = await catalog.require_graph(host, datasource)
    tables = catalog.require_schema(graph, request.match_info["schema"])

    def render(table: Table) -> dict[str, Any]:
        body: dict[str, Any] = {"name": table.name, "column_count": len(table.columns)}
        if table.row_count is not None:
            body["row_count"] = table.row_count
        return body

    return json_response(page_in_memory(tables, query, lambda t: t.name, render))


def _render_column(column: Column, glossary: list[GlossaryLink]) -> dict[str, Any]:
    body: dict[str, Any] = codec.to_jsonable(column)
    body["glossary"] = [{"id": link.term_id, "term": link.term} for link in glossary]
    return body


@routes.route(
    "GET",
    DS + "/schemas/{schema}/tables/{table}",
    summary="One table",
    tag="metadata",
    role="viewer",
    response=TableOut,
    errors=(404,),
)
async def get_table(request: web.Request) -> web.StreamResponse:
    host, datasource = await datasource_of(request)
    described = await catalog.describe_table(
        host, datasource, request.match_info["schema"], request.match_info["table"]
    )
    table = described.table
    return json_response(
        {
            "name": table.name,
            "schema": table.schema,
            "datasource": datasource.name,
            "columns": [
                _render_column(column, described.glossary.get(column.name, []))
                for column in sorted(table.columns, key=lambda c: c.ordinal)
            ],
            "referenced_by": [asdict(r) for r in described.referrers],
        }
    )


@routes.route(
    "GET",
    PREFIX + "/search",
    summary="Find tables or columns by name",
    tag="metadata",
    role="viewer",
    query=SearchQuery,
    response=ItemList[SearchHitOut],
)
async def search(request: web.Request, query: SearchQuery) -> web.StreamResponse:
    host, principal = request.app[HOST], principal_of(request)
    page = query.page()
    try:
        parse_search_key(query.kind, page.after)
    except ValueError as error:
        raise BadRequest(str(error)) from None
    hits = await host.search_metadata(principal.tenant_id, query.q, query.kind, page)
    return json_response(page_of(hits, query, lambda hit: hit.key, catalog.render_hit))


@routes.route(
    "GET",
    DS + "/snapshots",
    summary="Snapshots, newest first",
    tag="metadata",
    role="viewer",
    query=ListQuery,
    response=ItemList[SnapshotSummaryOut],
    errors=(404,),
)
async def list_snapshots(request: web.Request, query: ListQuery) -> web.StreamResponse:
    host, datasource = await datasource_of(request)
    rows = await host.list_snapshots(datasource, query.page())
    return json_response(page_of(rows, query, lambda s: s.id, codec.to_jsonable))


@routes.route(
    "GET",
    DS + "/snapshots/{snapshot_id}",
    summary="A snapshot's schema graph",
    tag="metadata",
    role="viewer",
    errors=(404,),
)
async def get_snapshot(request: web.Request) -> web.StreamResponse:
    host, datasource = await datasource_of(request)
    snapshot = await catalog.require_snapshot(host, datasource, request.match_info["snapshot_id"])
    summary = SnapshotSummary(
        snapshot.id, snapshot.created_at, len(snapshot.graph.tables), snapshot.graph.column_count
    )
    return json_response(
        {
            **codec.to_jsonable(summary),
            "datasource": datasource.name,
            **codec.to_jsonable(snapshot.graph),
        }
    )


@routes.route(
    "GET",
    DS + "/snapshots/{snapshot_id}/diff",
    summary="What changed between two snapshots",
    tag="metadata",
    role="viewer",
    query=DiffQuery,
    response=SnapshotDiffOut,
    errors=(404,),
)
async def diff_snapshots(request: web.Request, query: DiffQuery) -> web.StreamResponse:
    host, datasource = await datasource_of(request)
    current = await catalog.require_snapshot(host, datasource, request.match_info["snapshot_id"])
    base = await catalog.require_snapshot(host, datasource, query.against)
    return json_response(catalog.diff_graphs(base.graph, current.graph))


@routes.route(
    "POST",
    DS + "/stats/refresh",
    summary="Compute statistics",
    tag="metadata",
    role="editor",
    response=StatisticsOut,
    errors=(404, 502, 504),
)
async def refresh_statistics(request: web.Request) -> web.StreamResponse:
    host, datasource = await datasource_of(request)
    statistics = await catalog.refresh_statistics(host, datasource)
    return json_response(codec.to_jsonable(statistics, DatasourceStatistics))


@routes.route(
    "GET",
    DS + "/stats",
    summary="Latest statistics",
    tag="metadata",
    role="viewer",
    response=StatisticsOut,
    errors=(404,),
)
async def get_statistics(request: web.Request) -> web.StreamResponse:
    host, datasource = await datasource_of(request)
    statistics = await catalog.require_statistics(host, datasource)
    return json_response(codec.to_jsonable(statistics, DatasourceStatistics))
