"""`/api/v1/metadata`: sync, browse, search, snapshots and statistics."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime
from typing import Any, Literal

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from weaver import codec
from weaver.api.datasources import datasource_or_404
from weaver.api.paging import ItemList, ListQuery, page_in_memory, page_of
from weaver.errors import NotFound
from weaver.host import Host
from weaver.keys import HOST, principal_of
from weaver.responses import json_response
from weaver.routing import RouteTable
from weaver.types import (
    Column,
    Datasource,
    DatasourceStatistics,
    SchemaGraph,
    Snapshot,
    SnapshotSummary,
    Table,
)

routes = RouteTable()
PREFIX = "/api/v1/metadata"
DS = PREFIX + "/datasources/{name}"


class SyncResult(BaseModel):
    snapshot_id: str
    schemas: int
    tables: int
    columns: int
    foreign_keys: int
    elapsed_ms: float


class SchemaOut(BaseModel):
    name: str
    table_count: int


class TableSummaryOut(BaseModel):
    name: str
    column_count: int
    row_count: int | None = None


class ColumnRefOut(BaseModel):
    schema_name: str = Field(alias="schema")
    table: str
    column: str


class ColumnOut(BaseModel):
    name: str
    data_type: str
    nullable: bool
    ordinal: int
    primary_key: bool
    references: ColumnRefOut | None


class ReferrerOut(BaseModel):
    schema_name: str = Field(alias="schema")
    table: str
    column: str
    referenced_column: str


class TableOut(BaseModel):
    name: str
    schema_name: str = Field(alias="schema")
    datasource: str
    columns: list[ColumnOut]
    referenced_by: list[ReferrerOut]


class SearchQuery(ListQuery):
    model_config = ConfigDict(extra="forbid")

    q: str = Field(min_length=1, max_length=200)
    kind: Literal["table", "column"] = "table"


class SearchHitOut(BaseModel):
    kind: Literal["table", "column"]
    datasource: str
    schema_name: str = Field(alias="schema")
    table: str
    column: str | None = None
    data_type: str | None = None


class SnapshotSummaryOut(BaseModel):
    id: str
    created_at: datetime
    tables: int
    columns: int


class DiffQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    against: str = Field(min_length=1, max_length=200)


class ColumnChangeOut(BaseModel):
    column: str
    before: str
    after: str


class TableChangeOut(BaseModel):
    table: str
    added_columns: list[str]
    removed_columns: list[str]
    changed_columns: list[ColumnChangeOut]


class SnapshotDiffOut(BaseModel):
    added_tables: list[str]
    removed_tables: list[str]
    changed_tables: list[TableChangeOut]


class ColumnStatisticsOut(BaseModel):
    name: str
    null_count: int
    distinct_count: int
    min: Any = None
    max: Any = None


class TableStatisticsOut(BaseModel):
    schema_name: str = Field(alias="schema")
    table: str
    row_count: int
    columns: list[ColumnStatisticsOut]


class StatisticsOut(BaseModel):
    tables: list[TableStatisticsOut]
    computed_at: datetime


async def _datasource(request: web.Request) -> tuple[Host, Datasource]:
    host = request.app[HOST]
    principal = principal_of(request)
    return host, await datasource_or_404(host, principal.tenant_id, request.match_info["name"])


async def _graph(host: Host, datasource: Datasource) -> SchemaGraph:
    graph = await host.load_metadata(datasource)
    if graph is None:
        raise NotFound(f"datasource '{datasource.name}' has not been synced yet")
    return graph


def _table_key(table: Table) -> str:
    return f"{table.schema}.{table.name}"


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
    host, datasource = await _datasource(request)
    started = time.perf_counter()
    graph = await host.introspect_datasource(datasource)
    await host.store_metadata(datasource, graph)
    snapshot = Snapshot(
        id=uuid.uuid4().hex,
        tenant_id=datasource.tenant_id,
        datasource=datasource.name,
        created_at=datetime.now(UTC),
        graph=graph,
    )
    await host.save_snapshot(snapshot)
    return json_response(
        {
            "snapshot_id": snapshot.id,
            "schemas": len(graph.schemas),
            "tables": len(graph.tables),
            "columns": graph.column_count,
            "foreign_keys": graph.foreign_key_count,
            "elapsed_ms": round((time.perf_counter() - started) * 1000, 3),
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
    host, datasource = await _datasource(request)
    graph = await _graph(host, datasource)
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
    host, datasource = await _datasource(request)
    graph = await _graph(host, datasource)
    schema = request.match_info["schema"]
    if schema not in graph.schemas and not any(t.schema == schema for t in graph.tables):
        raise NotFound(f"schema '{schema}' not found")
    tables = sorted((t for t in graph.tables if t.schema == schema), key=lambda t: t.name)

    def render(table: Table) -> dict[str, Any]:
        body: dict[str, Any] = {"name": table.name, "column_count": len(table.columns)}
        if table.row_count is not None:
            body["row_count"] = table.row_count
        return body

    return json_response(page_in_memory(tables, query, lambda t: t.name, render))


def _render_column(column: Column) -> dict[str, Any]:
    return codec.to_jsonable(column)  # type: ignore[no-any-return]


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
    host, datasource = await _datasource(request)
    graph = await _graph(host, datasource)
    schema, name = request.match_info["schema"], request.match_info["table"]
    table = next((t for t in graph.tables if t.schema == schema and t.name == name), None)
    if table is None:
        raise NotFound(f"table '{schema}.{name}' not found")
    referenced_by = [
        {
            "schema": other.schema,
            "table": other.name,
            "column": column.name,
            "referenced_column": column.references.column,
        }
        for other in graph.tables
        for column in other.columns
        if column.references is not None
        and column.references.schema == schema
        and column.references.table == name
    ]
    return json_response(
        {
            "name": table.name,
            "schema": table.schema,
            "datasource": datasource.name,
            "columns": [_render_column(c) for c in sorted(table.columns, key=lambda c: c.ordinal)],
            "referenced_by": referenced_by,
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
    hits = await host.search_metadata(principal.tenant_id, query.q, query.kind, query.page())
    return json_response(page_of(hits, query, lambda hit: hit.key, codec.to_jsonable))


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
    host, datasource = await _datasource(request)
    rows = await host.list_snapshots(datasource, query.page())
    return json_response(page_of(rows, query, lambda s: s.id, codec.to_jsonable))


async def _snapshot(host: Host, datasource: Datasource, snapshot_id: str) -> Snapshot:
    snapshot = await host.get_snapshot(datasource, snapshot_id)
    if snapshot is None:
        raise NotFound(f"snapshot '{snapshot_id}' not found")
    return snapshot


@routes.route(
    "GET",
    DS + "/snapshots/{snapshot_id}",
    summary="A snapshot's schema graph",
    tag="metadata",
    role="viewer",
    errors=(404,),
)
async def get_snapshot(request: web.Request) -> web.StreamResponse:
    host, datasource = await _datasource(request)
    snapshot = await _snapshot(host, datasource, request.match_info["snapshot_id"])
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


def diff_graphs(before: SchemaGraph, after: SchemaGraph) -> dict[str, Any]:
    """What changed from `before` to `after`, tables named `schema.table`."""
    old = {_table_key(t): t for t in before.tables}
    new = {_table_key(t): t for t in after.tables}
    changed = []
    for key in sorted(old.keys() & new.keys()):
        old_columns = {c.name: c for c in old[key].columns}
        new_columns = {c.name: c for c in new[key].columns}
        retyped = [
            {
                "column": name,
                "before": _describe(old_columns[name]),
                "after": _describe(new_columns[name]),
            }
            for name in sorted(old_columns.keys() & new_columns.keys())
            if _describe(old_columns[name]) != _describe(new_columns[name])
        ]
        added = sorted(new_columns.keys() - old_columns.keys())
        removed = sorted(old_columns.keys() - new_columns.keys())
        if added or removed or retyped:
            changed.append(
                {
                    "table": key,
                    "added_columns": added,
                    "removed_columns": removed,
                    "changed_columns": retyped,
                }
            )
    return {
        "added_tables": sorted(new.keys() - old.keys()),
        "removed_tables": sorted(old.keys() - new.keys()),
        "changed_tables": changed,
    }


def _describe(column: Column) -> str:
    return column.data_type + ("" if column.nullable else " NOT NULL")


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
    host, datasource = await _datasource(request)
    current = await _snapshot(host, datasource, request.match_info["snapshot_id"])
    base = await _snapshot(host, datasource, query.against)
    return json_response(diff_graphs(base.graph, current.graph))


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
    host, datasource = await _datasource(request)
    # Statistics describe the datasource as it is, not as it was last synced.
    graph = await host.introspect_datasource(datasource)
    statistics = await host.compute_statistics(datasource, graph)
    await host.save_statistics(datasource, statistics)
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
    host, datasource = await _datasource(request)
    statistics = await host.load_statistics(datasource)
    if statistics is None:
        raise NotFound(f"statistics of '{datasource.name}' have not been computed yet")
    return json_response(codec.to_jsonable(statistics, DatasourceStatistics))
