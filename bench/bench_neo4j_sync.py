"""Writing a large schema graph to Neo4j: Weaver's sync against the driver's bulk idiom.

A synthetic graph (500 tables by 100 columns, a foreign key per table; no database needs
introspecting, since the graph write is what is measured) is written through the Neo4j
plugin's ``store_metadata`` on a real host, twice per round: the first sync of a new
datasource, then a re-sync of the same one (a new version written beside the current
one, the switch, the old version purged). The baseline, in the same rounds, is the
official driver writing the same nodes and relationships the way Neo4j's documentation
teaches bulk writes: uniqueness constraints first, then ``UNWIND $rows AS row MERGE …
SET … +=`` in batches of the plugin's size, relationships in a second pass; its labels
are its own (``Baseline*``), with their own constraints, so neither side's indexes slow
the other. Rounds alternate which side goes first.

Goal: a re-sync takes at most 1.5 times the first sync, on the dev server's heap
(768 MB, so about 537 MiB of transaction memory), which a single-transaction
replacement used to exceed every time.

    scripts/services.sh up neo4j
    eval "$(scripts/services.sh env)"
    python bench/bench_neo4j_sync.py [--tables 500] [--columns 100] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from neo4j import AsyncDriver, AsyncGraphDatabase
from weaver_neo4j.graph import BATCH_ROWS, batches

from weaver.host import Host
from weaver.testing.harness import make_settings, running_host
from weaver.testing.store import make_datasource, wide_graph
from weaver.types import SchemaGraph

GOAL = 1.5

CONSTRAINTS = [
    "CREATE CONSTRAINT baseline_ds IF NOT EXISTS FOR (n:BaselineDataSource)"
    " REQUIRE (n.tenant_id, n.name) IS UNIQUE",
    "CREATE CONSTRAINT baseline_schema IF NOT EXISTS FOR (n:BaselineSchema)"
    " REQUIRE (n.tenant_id, n.datasource, n.name) IS UNIQUE",
    "CREATE CONSTRAINT baseline_table IF NOT EXISTS FOR (n:BaselineTable)"
    " REQUIRE (n.tenant_id, n.datasource, n.schema, n.name) IS UNIQUE",
    "CREATE CONSTRAINT baseline_column IF NOT EXISTS FOR (n:BaselineColumn)"
    " REQUIRE (n.tenant_id, n.datasource, n.schema, n.table, n.name) IS UNIQUE",
]
DROP = ["baseline_ds", "baseline_schema", "baseline_table", "baseline_column"]

BASELINE_NODES = {
    "datasource": """
MERGE (ds:BaselineDataSource {tenant_id: $tenant_id, name: $datasource})
SET ds += {synced_at: datetime()}
""",
    "schemas": """
UNWIND $rows AS row
MERGE (s:BaselineSchema {tenant_id: $tenant_id, datasource: $datasource, name: row.name})
SET s += row.properties
""",
    "tables": """
UNWIND $rows AS row
MERGE (t:BaselineTable {tenant_id: $tenant_id, datasource: $datasource,
                        schema: row.schema, name: row.name})
SET t += row.properties
""",
    "columns": """
UNWIND $rows AS row
MERGE (c:BaselineColumn {tenant_id: $tenant_id, datasource: $datasource,
                         schema: row.schema, table: row.table, name: row.name})
SET c += row.properties
""",
}
BASELINE_RELATIONSHIPS = {
    "schemas": """
MATCH (ds:BaselineDataSource {tenant_id: $tenant_id, name: $datasource})
UNWIND $rows AS row
MATCH (s:BaselineSchema {tenant_id: $tenant_id, datasource: $datasource, name: row.name})
MERGE (ds)-[:HAS_SCHEMA]->(s)
""",
    "tables": """
UNWIND $rows AS row
MATCH (s:BaselineSchema {tenant_id: $tenant_id, datasource: $datasource, name: row.schema})
MATCH (t:BaselineTable {tenant_id: $tenant_id, datasource: $datasource,
                        schema: row.schema, name: row.name})
MERGE (s)-[:HAS_TABLE]->(t)
""",
    "columns": """
UNWIND $rows AS row
MATCH (t:BaselineTable {tenant_id: $tenant_id, datasource: $datasource,
                        schema: row.schema, name: row.table})
MATCH (c:BaselineColumn {tenant_id: $tenant_id, datasource: $datasource,
                         schema: row.schema, table: row.table, name: row.name})
MERGE (t)-[:HAS_COLUMN]->(c)
""",
    "references": """
UNWIND $rows AS row
MATCH (c:BaselineColumn {tenant_id: $tenant_id, datasource: $datasource,
                         schema: row.schema, table: row.table, name: row.name})
MATCH (r:BaselineColumn {tenant_id: $tenant_id, datasource: $datasource,
                         schema: row.ref_schema, table: row.ref_table, name: row.ref_name})
MERGE (c)-[:REFERENCES]->(r)
""",
}
# Bottom up, label by label through each constraint's index (a prefix seek needs the
# other keys to exist).
BASELINE_PURGE = [
    f"""
MATCH (n:{label}) WHERE n.tenant_id = $tenant_id AND n.name IS NOT NULL {extra}
WITH n LIMIT 10000
DETACH DELETE n
RETURN count(*) AS deleted
"""
    for label, extra in [
        ("BaselineColumn", "AND n.datasource IS NOT NULL"),
        ("BaselineTable", "AND n.datasource IS NOT NULL"),
        ("BaselineSchema", "AND n.datasource IS NOT NULL"),
        ("BaselineDataSource", ""),
    ]
]


def baseline_rows(graph: SchemaGraph) -> dict[str, list[dict[str, Any]]]:
    columns = [
        {
            "schema": table.schema,
            "table": table.name,
            "name": column.name,
            "properties": {
                "data_type": column.data_type,
                "nullable": column.nullable,
                "ordinal": column.ordinal,
                "primary_key": column.primary_key,
            },
        }
        for table in graph.tables
        for column in table.columns
    ]
    references = [
        {
            "schema": table.schema,
            "table": table.name,
            "name": column.name,
            "ref_schema": column.references.schema,
            "ref_table": column.references.table,
            "ref_name": column.references.column,
        }
        for table in graph.tables
        for column in table.columns
        if column.references is not None
    ]
    return {
        "schemas": [
            {"name": name, "properties": {"position": position}}
            for position, name in enumerate(graph.schemas)
        ],
        "tables": [
            {
                "schema": table.schema,
                "name": table.name,
                "properties": {"position": position, "row_count": table.row_count},
            }
            for position, table in enumerate(graph.tables)
        ],
        "columns": columns,
        "references": references,
    }


async def baseline_write(driver: AsyncDriver, tenant_id: str, graph: SchemaGraph) -> None:
    scope = {"tenant_id": tenant_id, "datasource": "big"}
    rows = baseline_rows(graph)
    await driver.execute_query(BASELINE_NODES["datasource"], scope)
    for part in ("schemas", "tables", "columns"):
        for batch in batches(rows[part], BATCH_ROWS):
            await driver.execute_query(BASELINE_NODES[part], scope, rows=list(batch))
    for part in ("schemas", "tables", "columns", "references"):
        for batch in batches(rows[part], BATCH_ROWS):
            await driver.execute_query(BASELINE_RELATIONSHIPS[part], scope, rows=list(batch))


async def baseline_purge(driver: AsyncDriver, tenant_id: str) -> None:
    for statement in BASELINE_PURGE:
        while True:
            records, _, _ = await driver.execute_query(statement, tenant_id=tenant_id)
            if records[0]["deleted"] == 0:
                break


async def seconds(work: Callable[[], Awaitable[None]]) -> float:
    started = time.perf_counter()
    await work()
    return time.perf_counter() - started


async def weaver_round(host: Host, graph: SchemaGraph) -> dict[str, float]:
    datasource = make_datasource(f"tbench{uuid.uuid4().hex[:10]}", "big")
    first = await seconds(lambda: host.store_metadata(datasource, graph))
    again = await seconds(lambda: host.store_metadata(datasource, graph))
    loaded = await host.load_metadata(datasource)
    assert loaded == graph, "the re-synced graph does not read back as written"
    cleanup = await seconds(lambda: host.delete_metadata(datasource))
    return {"weaver first sync": first, "weaver re-sync": again, "weaver delete": cleanup}


async def baseline_round(driver: AsyncDriver, graph: SchemaGraph) -> dict[str, float]:
    tenant_id = f"tbase{uuid.uuid4().hex[:10]}"
    first = await seconds(lambda: baseline_write(driver, tenant_id, graph))
    # The same MERGEs again: every node and relationship is found, in place (no second
    # version, so readers would see the write half-done).
    again = await seconds(lambda: baseline_write(driver, tenant_id, graph))
    cleanup = await seconds(lambda: baseline_purge(driver, tenant_id))
    return {"baseline first write": first, "baseline re-write": again, "baseline delete": cleanup}


async def transaction_memory(driver: AsyncDriver) -> str:
    records, _, _ = await driver.execute_query(
        "SHOW SETTINGS YIELD name, value WHERE name = 'dbms.memory.transaction.total.max'"
        " RETURN value"
    )
    return str(records[0]["value"])


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tables", type=int, default=500)
    parser.add_argument("--columns", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    uri = os.environ.get("NEO4J_URI", "bolt://127.0.0.1:7687")
    user = os.environ.get("NEO4J_USER", "neo4j")
    password = os.environ.get("NEO4J_PASSWORD", "weaver_dev_password")
    graph = wide_graph(args.tables, args.columns)
    settings = make_settings(
        Path(tempfile.mkdtemp(prefix="bench-neo4j-")),
        WEAVER_METADATA_EXTERNAL_MODE="true",
        NEO4J_URI=uri,
        NEO4J_USER=user,
        NEO4J_PASSWORD=password,
    )
    driver = AsyncGraphDatabase.driver(uri, auth=(user, password))
    try:
        for statement in CONSTRAINTS:
            await driver.execute_query(statement)
        print(
            f"{graph.column_count} columns in {len(graph.tables)} tables,"
            f" {graph.foreign_key_count} foreign keys; Neo4j transaction memory limit"
            f" {await transaction_memory(driver)}; {args.rounds} rounds, alternating"
        )
        samples: dict[str, list[float]] = {}
        async with running_host(settings) as host:
            for round_number in range(args.rounds):
                sides = [weaver_round(host, graph), baseline_round(driver, graph)]
                for side in sides if round_number % 2 == 0 else reversed(sides):
                    for label, value in (await side).items():
                        samples.setdefault(label, []).append(value)
                print(
                    f"round {round_number + 1}: "
                    + ", ".join(f"{label} {values[-1]:.2f} s" for label, values in samples.items())
                )
        median = {label: statistics.median(values) for label, values in samples.items()}
        print()
        for label, value in median.items():
            print(f"{label:<22} {value:8.2f} s (median)")

        def paired(numerator: str, denominator: str) -> float:
            # Each round's own ratio, then their median: a round slowed by other work on
            # the machine slows both sides of its ratio alike.
            return statistics.median(
                a / b for a, b in zip(samples[numerator], samples[denominator], strict=True)
            )

        ratio = paired("weaver re-sync", "weaver first sync")
        verdict = "within" if ratio <= GOAL else "OVER"
        print("\nratios, median of the rounds' own")
        print(
            f"  weaver re-sync / weaver first sync        {ratio:5.2f}"
            f"  {verdict} the {GOAL:g}x goal"
        )
        print(
            "  weaver first sync / driver first write    "
            f"{paired('weaver first sync', 'baseline first write'):5.2f}"
        )
        print(
            "  weaver re-sync / driver re-write (MERGE)  "
            f"{paired('weaver re-sync', 'baseline re-write'):5.2f}"
        )
    finally:
        for name in DROP:
            await driver.execute_query(f"DROP CONSTRAINT {name} IF EXISTS")
        await driver.close()


if __name__ == "__main__":
    asyncio.run(main())
