"""The schema graph in Cypher: replacing, reading, searching and deleting one datasource's.

Model::

    (:DataSource {tenant_id, name, sync_id, synced_at})
      -[:HAS_SCHEMA]->(:Schema {tenant_id, datasource, name, position, sync_id})
      -[:HAS_TABLE]->(:Table {tenant_id, datasource, schema, name, position, row_count, sync_id})
      -[:HAS_COLUMN]->(:Column {tenant_id, datasource, schema, table, name, data_type,
                                nullable, ordinal, primary_key, sync_id})
    (:Column)-[:REFERENCES]->(:Column)            a foreign key, within one datasource

Every node carries ``tenant_id`` and every query starts from the tenant's DataSource
node (found through the ``(tenant_id, name)`` constraint), so nothing of another tenant
is ever reached. ``position`` keeps the order the introspection gave schemas and tables.

Neo4j isolates transactions only as far as *read committed*: one query may see another
transaction's commit land halfway through its reading. So each replacement stamps every
node it writes, and its DataSource, with a fresh ``sync_id``, and a reader that finds two
different stamps reads again (`GraphChanged`).
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

LOCK_DATASOURCE = """
MERGE (ds:DataSource {tenant_id: $tenant_id, name: $datasource})
SET ds.sync_id = $sync_id, ds.synced_at = datetime()
"""
# Writing the DataSource node first takes its write lock for the whole transaction, so
# two syncs of one datasource run one after the other instead of interleaving.

DELETE_CHILDREN = """
MATCH (:DataSource {tenant_id: $tenant_id, name: $datasource})-[:HAS_SCHEMA]->(s:Schema)
OPTIONAL MATCH (s)-[:HAS_TABLE]->(t:Table)
OPTIONAL MATCH (t)-[:HAS_COLUMN]->(c:Column)
DETACH DELETE c, t, s
"""

DELETE_DATASOURCE = """
MATCH (ds:DataSource {tenant_id: $tenant_id, name: $datasource})
DELETE ds
"""

CREATE_SCHEMAS = """
MATCH (ds:DataSource {tenant_id: $tenant_id, name: $datasource})
UNWIND $rows AS row
CREATE (ds)-[:HAS_SCHEMA]->(:Schema {
    tenant_id: $tenant_id, datasource: $datasource, name: row.name,
    position: row.position, sync_id: $sync_id
})
"""

# Tables and their columns in one statement; the element ids it returns let the second
# pass find foreign-key ends without an index lookup per edge.
CREATE_TABLES = """
MATCH (ds:DataSource {tenant_id: $tenant_id, name: $datasource})
UNWIND $rows AS row
MATCH (ds)-[:HAS_SCHEMA]->(s:Schema {name: row.schema})
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
RETURN row.schema AS schema, row.name AS table, col.name AS column, elementId(c) AS id
"""

CREATE_REFERENCES = """
UNWIND $rows AS row
MATCH (source:Column {tenant_id: $tenant_id}) WHERE elementId(source) = row.source
MATCH (target:Column {tenant_id: $tenant_id}) WHERE elementId(target) = row.target
CREATE (source)-[:REFERENCES]->(target)
"""

# One row per column (or per table without columns, or schema without tables), in
# table then column order; `load` folds them back into a SchemaGraph.
READ_GRAPH = """
MATCH (ds:DataSource {tenant_id: $tenant_id, name: $datasource})
OPTIONAL MATCH (ds)-[:HAS_SCHEMA]->(s:Schema)
OPTIONAL MATCH (s)-[:HAS_TABLE]->(t:Table)
OPTIONAL MATCH (t)-[:HAS_COLUMN]->(c:Column)
OPTIONAL MATCH (c)-[:REFERENCES]->(target:Column)
WITH ds, s, t, c, head(collect(target)) AS target
RETURN ds.sync_id AS sync_id,
       s {.name, .position, .sync_id} AS schema,
       t {.name, .schema, .position, .row_count, .sync_id} AS table,
       c {.name, .data_type, .nullable, .ordinal, .primary_key, .sync_id} AS column,
       target {.schema, .table, .name} AS target
ORDER BY t.position, c.ordinal
"""

# Keyset paging: Cypher compares lists element by element, as ORDER BY sorts the keys.
SEARCH = {
    "table": """
MATCH (:DataSource {tenant_id: $tenant_id})-[:HAS_SCHEMA]->(:Schema)-[:HAS_TABLE]->(t:Table)
WHERE toLower(t.name) CONTAINS toLower($text)
  AND [t.datasource, t.schema, t.name] > $after
RETURN t.datasource AS datasource, t.schema AS schema, t.name AS table,
       null AS column, null AS data_type
ORDER BY datasource, schema, table
LIMIT $limit
""",
    "column": """
MATCH (:DataSource {tenant_id: $tenant_id})-[:HAS_SCHEMA]->(:Schema)-[:HAS_TABLE]->(:Table)
      -[:HAS_COLUMN]->(c:Column)
WHERE toLower(c.name) CONTAINS toLower($text)
  AND [c.datasource, c.schema, c.table, c.name] > $after
RETURN c.datasource AS datasource, c.schema AS schema, c.table AS table,
       c.name AS column, c.data_type AS data_type
ORDER BY datasource, schema, table, column
LIMIT $limit
""",
}


class GraphChanged(Exception):
    """A read saw parts of two syncs; reading again sees one."""


def batches(items: Sequence[T], size: int = BATCH_ROWS) -> Iterator[Sequence[T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def schema_rows(graph: SchemaGraph) -> list[Row]:
    """The graph's schemas in order, once each, with any a table names but the list
    lacks appended, so that no table is left without its schema node."""
    names = dict.fromkeys([*graph.schemas, *(table.schema for table in graph.tables)])
    return [{"name": name, "position": position} for position, name in enumerate(names)]


def table_batches(graph: SchemaGraph, size: int = BATCH_ROWS) -> Iterator[list[Row]]:
    """Table rows with their columns, cut so that a batch holds about ``size`` columns
    (a wider table is a batch of its own)."""
    batch: list[Row] = []
    columns = 0
    for position, table in enumerate(graph.tables):
        if batch and columns + len(table.columns) > size:
            yield batch
            batch, columns = [], 0
        batch.append(
            {
                "schema": table.schema,
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
    """Edges between created columns by element id, and how many foreign keys name a
    column that is not in the graph (those have no node to point at)."""
    rows: list[Row] = []
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
                rows.append({"source": source, "target": target})
    return rows, dangling


async def replace_graph(
    tx: AsyncManagedTransaction, scope: Row, graph: SchemaGraph, sync_id: str
) -> int:
    """Swap the datasource's graph for ``graph`` inside ``tx``; returns the number of
    dangling foreign keys that were left out."""
    stamped = {**scope, "sync_id": sync_id}
    await (await tx.run(LOCK_DATASOURCE, stamped)).consume()
    await (await tx.run(DELETE_CHILDREN, scope)).consume()
    await (await tx.run(CREATE_SCHEMAS, stamped, rows=schema_rows(graph))).consume()
    ids: dict[ColumnKey, str] = {}
    for rows in table_batches(graph):
        result = await tx.run(CREATE_TABLES, stamped, rows=rows)
        async for record in result:
            # An engine listing a column twice: its foreign key starts at the first.
            ids.setdefault((record["schema"], record["table"], record["column"]), record["id"])
    references, dangling = reference_rows(graph, ids)
    for edges in batches(references):
        await (await tx.run(CREATE_REFERENCES, scope, rows=list(edges))).consume()
    return dangling


async def delete_graph(tx: AsyncManagedTransaction, scope: Row) -> None:
    await (await tx.run(DELETE_CHILDREN, scope)).consume()
    await (await tx.run(DELETE_DATASOURCE, scope)).consume()


async def read_graph(tx: AsyncManagedTransaction, scope: Row) -> SchemaGraph | None:
    result = await tx.run(READ_GRAPH, scope)
    return assemble([record.data() async for record in result])


def assemble(rows: list[Row]) -> SchemaGraph | None:
    """Fold `READ_GRAPH` rows (ordered by table position, then ordinal) into a graph;
    ``None`` when there are none (no DataSource node: never synced)."""
    if not rows:
        return None
    sync_id = rows[0]["sync_id"]
    schemas: dict[str, int] = {}
    tables: dict[int, Table] = {}
    for row in rows:
        stamps = {node["sync_id"] for node in (row["schema"], row["table"], row["column"]) if node}
        if stamps - {sync_id} or row["sync_id"] != sync_id:
            raise GraphChanged
        if row["schema"] is not None:
            schemas[row["schema"]["name"]] = row["schema"]["position"]
        table_node = row["table"]
        if table_node is None:
            continue
        table = tables.get(table_node["position"])
        if table is None:
            table = Table(
                table_node["schema"], table_node["name"], [], row_count=table_node["row_count"]
            )
            tables[table_node["position"]] = table
        column, target = row["column"], row["target"]
        if column is not None:
            table.columns.append(
                Column(
                    column["name"],
                    column["data_type"],
                    column["nullable"],
                    column["ordinal"],
                    primary_key=column["primary_key"],
                    references=(
                        ColumnRef(target["schema"], target["table"], target["name"])
                        if target is not None
                        else None
                    ),
                )
            )
    return SchemaGraph(
        schemas=sorted(schemas, key=schemas.__getitem__),
        tables=[tables[position] for position in sorted(tables)],
    )


async def search_graph(
    tx: AsyncManagedTransaction,
    tenant_id: str,
    text: str,
    kind: SearchKind,
    cursor: tuple[str, str, str, str],
    limit: int,
) -> list[SearchHit]:
    """Hits after ``cursor`` (datasource, schema, table, column; the column is ignored
    for tables)."""
    after = list(cursor if kind == "column" else cursor[:3])
    result = await tx.run(SEARCH[kind], tenant_id=tenant_id, text=text, after=after, limit=limit)
    return [
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
