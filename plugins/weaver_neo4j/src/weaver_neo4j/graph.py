"""The schema graph in Cypher: its model, reading it, searching it.

Model::

    (:DataSource {tenant_id, name, sync_id, synced_at, counts})
      -[:HAS_SCHEMA]->(:Schema {tenant_id, datasource, name, position, sync_id})
      -[:HAS_TABLE]->(:Table {tenant_id, datasource, schema, name, position, row_count, sync_id})
      -[:HAS_COLUMN]->(:Column {tenant_id, datasource, schema, table, name, data_type,
                                nullable, ordinal, primary_key, sync_id})
    (:Column)-[:REFERENCES]->(:Column)            a foreign key, within one datasource
    (:GlossaryTerm {tenant_id, id, term, columns})-[:DESCRIBES]->(:Column)
    (:GraphVersion {sync_id, ...})                a version being written or purged

Every node carries ``tenant_id`` and every query starts from the tenant's DataSource
node (found through the ``(tenant_id, name)`` constraint), so nothing of another tenant
is ever reached. ``position`` keeps the order the introspection gave schemas and tables.

Each sync writes a new *version* of the graph (nodes stamped with a fresh ``sync_id``)
beside the current one and then switches the DataSource to it (`weaver_neo4j.versions`):
only the current version's schemas hang from the DataSource, and ``ds.sync_id`` names
it. A DataSource without ``sync_id`` was never synced (glossary links may lock one
into existence before its first sync).

Neo4j isolates transactions only as far as *read committed*: a query that is walking
the graph when another transaction's commit lands may see part of it (seen here: a load
missing tables while syncs ran). So the DataSource records how many schemas, tables,
columns and foreign keys its version has (``counts``), a load checks every node's stamp
and the counts, and other reads check that the versions they started from are still
current, whole, when they end. A read that saw two versions raises `GraphChanged` and
is made again.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any, TypeVar

from neo4j import AsyncManagedTransaction

from weaver.types import Column, ColumnRef, SchemaGraph, SearchHit, SearchKind, Table

# Rows per UNWIND: large enough that a sync of thousands of columns is a handful of
# round trips, small enough to keep each statement's parameters a few hundred kB.
BATCH_ROWS = 5000

T = TypeVar("T")
Row = dict[str, Any]
ColumnKey = tuple[str, str, str]

# A version's schemas hang from no DataSource until the switch to it.
CREATE_SCHEMAS = """
UNWIND $rows AS row
CREATE (s:Schema {
    tenant_id: $tenant_id, datasource: $datasource, name: row.name,
    position: row.position, sync_id: $sync_id
})
RETURN row.name AS name, elementId(s) AS id
"""

# Tables and their columns in one statement. Parents are found, and foreign-key ends
# later, by the element ids the previous statement returned: a lookup by name would go
# through the name indexes, which hold every tenant's `public`. One result row per
# table, since the driver's cost is per record more than per value.
CREATE_TABLES = """
UNWIND $rows AS row
MATCH (s:Schema {tenant_id: $tenant_id}) WHERE elementId(s) = row.schema_id
CREATE (s)-[:HAS_TABLE]->(t:Table {
    tenant_id: $tenant_id, datasource: $datasource, schema: row.schema, name: row.name,
    position: row.position, row_count: row.row_count, sync_id: $sync_id
})
WITH t, row
UNWIND row.columns AS col
CREATE (t)-[:HAS_COLUMN]->(c:Column {
    tenant_id: $tenant_id, datasource: $datasource, schema: row.schema, table: row.name,
    name: col.name, data_type: col.data_type, nullable: col.nullable,
    ordinal: col.ordinal, primary_key: col.primary_key, sync_id: $sync_id
})
WITH row.position AS position, collect([col.name, elementId(c)]) AS columns
RETURN position, columns
"""

CREATE_REFERENCES = """
UNWIND $rows AS row
MATCH (source:Column {tenant_id: $tenant_id}) WHERE elementId(source) = row.source
MATCH (target:Column {tenant_id: $tenant_id}) WHERE elementId(target) = row.target
CREATE (source)-[:REFERENCES]->(target)
"""

# One row per table (or per schema without tables) with its columns as lists, in no
# particular order; `assemble` sorts and folds them back into a SchemaGraph.
READ_GRAPH = """
MATCH (ds:DataSource {tenant_id: $tenant_id, name: $datasource})
OPTIONAL MATCH (ds)-[:HAS_SCHEMA]->(s:Schema)
OPTIONAL MATCH (s)-[:HAS_TABLE]->(t:Table)
RETURN ds.sync_id AS sync_id, ds.counts AS counts,
       s {.name, .position, .sync_id} AS schema,
       t {.name, .position, .row_count, .sync_id} AS table,
       [(t)-[:HAS_COLUMN]->(c:Column) |
           [c.name, c.data_type, c.nullable, c.ordinal, c.primary_key, c.sync_id,
            head([(c)-[:REFERENCES]->(target:Column) | [target.schema, target.table, target.name]])]
       ] AS columns
"""

# The tenant's DataSource nodes come from the constraint's index (a prefix seek needs
# the second key to exist). Keyset paging: Cypher compares lists element by element,
# as ORDER BY sorts the keys.
SEARCH = {
    "table": """
MATCH (ds:DataSource) WHERE ds.tenant_id = $tenant_id AND ds.name IS NOT NULL
MATCH (ds)-[:HAS_SCHEMA]->(:Schema)-[:HAS_TABLE]->(t:Table)
WHERE toLower(t.name) CONTAINS toLower($text)
  AND [t.datasource, t.schema, t.name] > $after
RETURN t.datasource AS datasource, t.schema AS schema, t.name AS table,
       null AS column, null AS data_type
ORDER BY datasource, schema, table
LIMIT $limit
""",
    "column": """
MATCH (ds:DataSource) WHERE ds.tenant_id = $tenant_id AND ds.name IS NOT NULL
MATCH (ds)-[:HAS_SCHEMA]->(:Schema)-[:HAS_TABLE]->(:Table)-[:HAS_COLUMN]->(c:Column)
WHERE toLower(c.name) CONTAINS toLower($text)
  AND [c.datasource, c.schema, c.table, c.name] > $after
RETURN c.datasource AS datasource, c.schema AS schema, c.table AS table,
       c.name AS column, c.data_type AS data_type
ORDER BY datasource, schema, table, column
LIMIT $limit
""",
}


# The version each of the tenant's synced datasources (or the one named) points at,
# with what is needed to tell whether its schemas were read whole: their stamps, and
# how many it should have.
_VERSION_FIELDS = """
RETURN ds.name AS name, ds.sync_id AS sync_id, ds.counts[0] AS schema_count,
       [(ds)-[:HAS_SCHEMA]->(s:Schema) | s.sync_id] AS schema_stamps
"""
TENANT_VERSIONS = (
    """
MATCH (ds:DataSource) WHERE ds.tenant_id = $tenant_id AND ds.name IS NOT NULL
  AND ds.sync_id IS NOT NULL"""
    + _VERSION_FIELDS
)
DATASOURCE_VERSION = (
    """
MATCH (ds:DataSource {tenant_id: $tenant_id, name: $datasource})
WHERE ds.sync_id IS NOT NULL"""
    + _VERSION_FIELDS
)


class GraphChanged(Exception):
    """Another transaction changed the datasource's graph while this one ran (a read saw
    parts of two versions, or a switch found its DataSource deleted once it held the
    lock); running the transaction again sees one state."""


def batches(items: Sequence[T], size: int = BATCH_ROWS) -> Iterator[Sequence[T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def schema_rows(graph: SchemaGraph) -> list[Row]:
    """The graph's schemas in order, once each, with any a table names but the list
    lacks appended, so that no table is left without its schema node."""
    names = dict.fromkeys([*graph.schemas, *(table.schema for table in graph.tables)])
    return [{"name": name, "position": position} for position, name in enumerate(names)]


def table_batches(
    graph: SchemaGraph, schema_ids: dict[str, str], size: int = BATCH_ROWS
) -> Iterator[list[Row]]:
    """Table rows with their columns and their schema's element id, cut so that a batch
    holds about ``size`` columns (a wider table is a batch of its own)."""
    batch: list[Row] = []
    columns = 0
    for position, table in enumerate(graph.tables):
        if batch and columns + len(table.columns) > size:
            yield batch
            batch, columns = [], 0
        batch.append(
            {
                "schema": table.schema,
                "schema_id": schema_ids[table.schema],
                "name": table.name,
                "position": position,
                "row_count": table.row_count,
                "columns": [
                    {
                        "name": column.name,
                        "data_type": column.data_type,
                        "nullable": column.nullable,
                        "ordinal": column.ordinal,
                        "primary_key": column.primary_key,
                    }
                    for column in table.columns
                ],
            }
        )
        columns += len(table.columns)
    if batch:
        yield batch


def reference_rows(graph: SchemaGraph, ids: dict[ColumnKey, str]) -> tuple[list[Row], int]:
    """Edges between created columns by element id, at most one from each column node,
    and how many foreign keys name a column that is not in the graph (those have no node
    to point at)."""
    edges: dict[str, str] = {}
    dangling = 0
    for table in graph.tables:
        for column in table.columns:
            ref = column.references
            if ref is None:
                continue
            source = ids.get((table.schema, table.name, column.name))
            target = ids.get((ref.schema, ref.table, ref.column))
            if source is None or target is None:
                dangling += 1
            else:
                edges.setdefault(source, target)
    return [{"source": source, "target": target} for source, target in edges.items()], dangling


async def current_versions(
    tx: AsyncManagedTransaction, tenant_id: str, datasource: str | None = None
) -> dict[str, str]:
    """The current version (``sync_id``) of each synced datasource of the tenant, or of
    ``datasource`` only. Raises `GraphChanged` when one was caught mid-switch."""
    if datasource is None:
        result = await tx.run(TENANT_VERSIONS, tenant_id=tenant_id)
    else:
        result = await tx.run(DATASOURCE_VERSION, tenant_id=tenant_id, datasource=datasource)
    versions = {}
    async for record in result:
        stamps = record["schema_stamps"]
        if len(stamps) != record["schema_count"] or set(stamps) - {record["sync_id"]}:
            raise GraphChanged
        versions[record["name"]] = record["sync_id"]
    return versions


async def still_current(
    tx: AsyncManagedTransaction, tenant_id: str, before: dict[str, str], datasource: str | None
) -> None:
    """Raise `GraphChanged` unless the versions are those of ``before``. A version never
    becomes current twice and is purged only once replaced, so a read made between two
    equal answers saw those versions alone, whole."""
    if await current_versions(tx, tenant_id, datasource) != before:
        raise GraphChanged


async def read_graph(tx: AsyncManagedTransaction, scope: Row) -> SchemaGraph | None:
    result = await tx.run(READ_GRAPH, scope)
    return assemble([record.data() async for record in result])


def assemble(rows: list[Row]) -> SchemaGraph | None:
    """Fold `READ_GRAPH` rows into a graph; ``None`` when there are none or the
    DataSource has no version (never synced). Raises `GraphChanged` unless the rows are
    exactly one version."""
    if not rows or rows[0]["sync_id"] is None:
        return None
    sync_id, counts = rows[0]["sync_id"], rows[0]["counts"]
    schemas: dict[str, int] = {}
    tables: list[tuple[int, Table]] = []
    for row in rows:
        if row["counts"] != counts:
            raise GraphChanged
        schema, table = row["schema"], row["table"]
        stamps = {row["sync_id"], *(node["sync_id"] for node in (schema, table) if node)}
        stamps.update(column[5] for column in row["columns"])
        if stamps != {sync_id}:
            raise GraphChanged
        if schema is None:
            continue
        schemas[schema["name"]] = schema["position"]
        if table is None:
            continue
        columns = [
            Column(
                name,
                data_type,
                nullable,
                ordinal,
                primary_key=primary_key,
                references=ColumnRef(*target) if target is not None else None,
            )
            for name, data_type, nullable, ordinal, primary_key, _, target in sorted(
                row["columns"], key=lambda column: column[3]
            )
        ]
        tables.append(
            (table["position"], Table(schema["name"], table["name"], columns, table["row_count"]))
        )
    graph = SchemaGraph(
        schemas=sorted(schemas, key=schemas.__getitem__),
        tables=[table for _, table in sorted(tables, key=lambda positioned: positioned[0])],
    )
    if counts != [len(schemas), len(tables), graph.column_count, graph.foreign_key_count]:
        raise GraphChanged
    return graph


async def search_graph(
    tx: AsyncManagedTransaction,
    tenant_id: str,
    text: str,
    kind: SearchKind,
    cursor: tuple[str, str, str, str],
    limit: int,
) -> list[SearchHit]:
    """Hits after ``cursor`` (datasource, schema, table, column; the column is ignored
    for tables), all of the versions current from the start of the search to its end."""
    after = list(cursor if kind == "column" else cursor[:3])
    before = await current_versions(tx, tenant_id)
    result = await tx.run(SEARCH[kind], tenant_id=tenant_id, text=text, after=after, limit=limit)
    hits = [
        SearchHit(
            kind,
            record["datasource"],
            record["schema"],
            record["table"],
            record["column"],
            record["data_type"],
        )
        async for record in result
    ]
    await still_current(tx, tenant_id, before, None)
    return hits
