"""Join paths over the schema graph in Neo4j: the core's breadth-first search
(`weaver.joins.PathSearch`), each level's foreign keys read with one Cypher pattern.

Why not one ``ALL SHORTEST`` pattern: Neo4j 5 matches paths with *different
relationships* only (``REPEATABLE ELEMENTS`` came with Cypher 25, in 2025.06), and a join
path through a table's key that two foreign keys point at — ``orders → customers.id ←
addresses``, the most common shape there is — walks that key's ``HAS_COLUMN`` edge in
and out again, so such a pattern never matches it (seen on 5.26: ``ALL SHORTEST`` over
``(:Table)-[:HAS_COLUMN]->(:Column)-[:REFERENCES]-(:Column)<-[:HAS_COLUMN]-(:Table)``
joins ``orders`` to ``customers`` but finds nothing from ``orders`` to ``addresses``).
Reading level by level costs one round trip per hop, at most six, all in one read
transaction; Neo4j's read-committed isolation lets a switch to a new graph version land
between two levels, so the search checks that the versions it started on are still
current when it ends, and is made again otherwise (`weaver_neo4j.graph.still_current`).
"""

from __future__ import annotations

from collections.abc import Sequence

from neo4j import AsyncManagedTransaction

from weaver.joins import PathSearch
from weaver.types import JoinHop, JoinPath, JoinPathRequest, TableName
from weaver_neo4j.graph import current_versions, still_current

# The foreign keys with either end in one of the given tables, grouped by datasource.
# Each datasource's tables are walked once from its DataSource node (found through the
# tenant's (tenant_id, name) constraint index, so nothing of another tenant is reached)
# and kept when their [schema, name] is asked for: one scan of the datasource per level,
# not one per asked table. An edge between two asked tables is returned once.
FOREIGN_KEYS_TOUCHING = """
UNWIND $groups AS group
MATCH (:DataSource {tenant_id: $tenant_id, name: group.datasource})
      -[:HAS_SCHEMA]->(s:Schema)-[:HAS_TABLE]->(t:Table)
WHERE [s.name, t.name] IN group.tables
MATCH (t)-[:HAS_COLUMN]->(:Column)-[r:REFERENCES]-(:Column)
WITH DISTINCT r
WITH startNode(r) AS source, endNode(r) AS target
RETURN source.datasource AS datasource, source.schema AS schema, source.table AS table,
       source.name AS column, target.schema AS ref_schema, target.table AS ref_table,
       target.name AS ref_column
"""


def _groups(tables: Sequence[TableName]) -> list[dict[str, object]]:
    by_datasource: dict[str, list[list[str]]] = {}
    for table in tables:
        by_datasource.setdefault(table.datasource, []).append([table.schema, table.table])
    return [{"datasource": name, "tables": keys} for name, keys in sorted(by_datasource.items())]


async def find_paths(tx: AsyncManagedTransaction, request: JoinPathRequest) -> list[JoinPath]:
    tenant_id = request.tenant_id
    search = PathSearch.asked(request)
    before = await current_versions(tx, tenant_id)
    while frontier := search.frontier():
        result = await tx.run(FOREIGN_KEYS_TOUCHING, tenant_id=tenant_id, groups=_groups(frontier))
        search.expand(
            [
                JoinHop(
                    TableName(record["datasource"], record["schema"], record["table"]),
                    record["column"],
                    TableName(record["datasource"], record["ref_schema"], record["ref_table"]),
                    record["ref_column"],
                )
                async for record in result
            ]
        )
    await still_current(tx, tenant_id, before, None)
    return search.paths(request.limit)
