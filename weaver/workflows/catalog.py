"""The metadata catalog: sync, statistics, and reading graphs and snapshots."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from weaver.errors import NotFound, found
from weaver.host import Host
from weaver.types import (
    Column,
    Datasource,
    DatasourceStatistics,
    GlossaryLink,
    SchemaGraph,
    SearchHit,
    Snapshot,
    Table,
)
from weaver.workflows import repairs


@dataclass(frozen=True, slots=True)
class SyncOutcome:
    snapshot: Snapshot
    elapsed_ms: float


async def sync(host: Host, datasource: Datasource) -> SyncOutcome:
    """Introspect the datasource, record a snapshot, replace its schema graph.

    The snapshot comes first: if the graph store then fails, the snapshot says the sync
    happened and a repair stores its graph once the store is back (the caller gets the
    store's 503 meanwhile); if the snapshot store fails, nothing changed.
    """
    started = time.perf_counter()
    graph = await host.introspect_datasource(datasource)
    snapshot = Snapshot(
        id=uuid.uuid4().hex,
        tenant_id=datasource.tenant_id,
        datasource_name=datasource.name,
        created_at=datetime.now(UTC),
        graph=graph,
    )
    await host.save_snapshot(snapshot)
    repair = repairs.intent(
        "store_graph", datasource.tenant_id, datasource.name, snapshot_id=snapshot.id
    )
    await host.save_repair(repair)
    await host.store_metadata(datasource, graph)
    await host.delete_repair(repair.kind, repair.key)
    return SyncOutcome(snapshot, round((time.perf_counter() - started) * 1000, 3))


async def refresh_statistics(host: Host, datasource: Datasource) -> DatasourceStatistics:
    """Compute and keep statistics of the datasource as it is now (introspected again,
    not as it was last synced)."""
    graph = await host.introspect_datasource(datasource)
    statistics = await host.compute_statistics(datasource, graph)
    await host.save_statistics(datasource, statistics)
    return statistics


async def require_graph(host: Host, datasource: Datasource) -> SchemaGraph:
    return found(
        await host.load_metadata(datasource),
        f"datasource '{datasource.name}' has not been synced yet",
    )


async def require_snapshot(host: Host, datasource: Datasource, snapshot_id: str) -> Snapshot:
    return found(
        await host.get_snapshot(datasource, snapshot_id), f"snapshot '{snapshot_id}' not found"
    )


async def require_statistics(host: Host, datasource: Datasource) -> DatasourceStatistics:
    return found(
        await host.load_statistics(datasource),
        f"statistics of '{datasource.name}' have not been computed yet",
    )


def require_schema(graph: SchemaGraph, schema: str) -> list[Table]:
    """The schema's tables by name; a schema with no tables exists if the graph names it."""
    if schema not in graph.schemas and not any(t.schema == schema for t in graph.tables):
        raise NotFound(f"schema '{schema}' not found")
    return sorted((t for t in graph.tables if t.schema == schema), key=lambda t: t.name)


def require_table(graph: SchemaGraph, schema: str, name: str) -> Table:
    table = next((t for t in graph.tables if t.schema == schema and t.name == name), None)
    if table is None:
        raise NotFound(f"table '{schema}.{name}' not found")
    return table


@dataclass(frozen=True, slots=True)
class Referrer:
    """A column of another table whose foreign key points at a column of this one."""

    schema: str
    table: str
    column: str
    referenced_column: str


def referrers(graph: SchemaGraph, table: Table) -> list[Referrer]:
    return [
        Referrer(other.schema, other.name, column.name, column.references.column)
        for other in graph.tables
        for column in other.columns
        if column.references is not None
        and column.references.schema == table.schema
        and column.references.table == table.name
    ]


@dataclass(frozen=True, slots=True)
class TableDescription:
    """One table of the current graph, who references it, and each column's glossary
    links (by column name, terms in order)."""

    table: Table
    referrers: list[Referrer]
    glossary: dict[str, list[GlossaryLink]]


async def describe_table(
    host: Host, datasource: Datasource, schema: str, name: str
) -> TableDescription:
    graph = await require_graph(host, datasource)
    table = require_table(graph, schema, name)
    glossary: dict[str, list[GlossaryLink]] = {}
    for link in await host.load_glossary_links(datasource):
        if link.schema == table.schema and link.table == table.name:
            glossary.setdefault(link.column, []).append(link)
    return TableDescription(table, referrers(graph, table), glossary)


def render_hit(hit: SearchHit) -> dict[str, Any]:
    """A search hit as the API and the MCP tools answer it."""
    return {
        "kind": hit.kind,
        "datasource": hit.datasource_name,
        "schema": hit.schema,
        "table": hit.table,
        "column": hit.column,
        "data_type": hit.data_type,
    }


def diff_graphs(before: SchemaGraph, after: SchemaGraph) -> dict[str, Any]:
    """What changed from ``before`` to ``after``, tables named ``schema.table``."""
    old = {f"{t.schema}.{t.name}": t for t in before.tables}
    new = {f"{t.schema}.{t.name}": t for t in after.tables}
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
