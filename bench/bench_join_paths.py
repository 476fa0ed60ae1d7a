"""Join-path latency on a 500-table schema: the embedded store and Neo4j, against the
search alone over an in-memory index of the same foreign keys (the baseline).

The schema is made up, the same every run: 500 tables, each after the first with one to
three foreign keys to tables before it (about 1000 keys), in one datasource. The same
pairs of tables (seeded) are asked with ``max_hops`` 4 and 6, through
``Host.find_join_paths`` — what ``GET /api/v1/metadata/join-paths`` calls — on a host
with the embedded store and on one with the Neo4j plugin (``NEO4J_URI``,
``NEO4J_USER``, ``NEO4J_PASSWORD``, as ``scripts/services.sh env`` exports them), in
alternating rounds. Reports p50 and p99 per store and the ratio to the baseline.

    python bench/bench_join_paths.py [--pairs 200] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path

from common import percentile

from weaver.host import Host
from weaver.joins import PathSearch
from weaver.testing.harness import make_settings, running_host
from weaver.testing.store import make_datasource
from weaver.types import (
    Column,
    ColumnRef,
    JoinHop,
    JoinPath,
    JoinPathRequest,
    SchemaGraph,
    Table,
    TableName,
)

TABLES = 500
SEED = 20240501
DATASOURCE = "wide"
SCHEMA = "public"
LIMIT = 10


def wide_graph() -> SchemaGraph:
    chooser = random.Random(SEED)
    tables = []
    for index in range(TABLES):
        columns = [Column("id", "integer", False, 1, primary_key=True)]
        if index:
            targets = chooser.sample(range(index), min(index, chooser.randint(1, 3)))
            for ordinal, target in enumerate(sorted(targets), start=2):
                columns.append(
                    Column(
                        f"t{target:03d}_id",
                        "integer",
                        True,
                        ordinal,
                        references=ColumnRef(SCHEMA, f"t{target:03d}", "id"),
                    )
                )
        tables.append(Table(SCHEMA, f"t{index:03d}", columns))
    return SchemaGraph([SCHEMA], tables)


def name(table: str) -> TableName:
    return TableName(DATASOURCE, SCHEMA, table)


def in_memory(graph: SchemaGraph) -> Callable[[TableName, TableName, int], list[JoinPath]]:
    """The baseline: the same search, its foreign keys from a dict."""
    touching: dict[TableName, list[JoinHop]] = {}
    for table in graph.tables:
        for column in table.columns:
            if column.references is not None:
                key = JoinHop(name(table.name), column.name, name(column.references.table), "id")
                touching.setdefault(key.from_table, []).append(key)
                touching.setdefault(key.to_table, []).append(key)

    def find(start: TableName, end: TableName, max_hops: int) -> list[JoinPath]:
        search = PathSearch(start, end, max_hops)
        while frontier := search.frontier():
            search.expand(key for table in frontier for key in touching.get(table, ()))
        return search.paths(LIMIT)

    return find


async def timed(call: Callable[[], Awaitable[object]]) -> float:
    started = time.perf_counter()
    await call()
    return (time.perf_counter() - started) * 1000


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=3)
    arguments = parser.parse_args()
    graph = wide_graph()
    chooser = random.Random(SEED + 1)
    pairs = [
        (name(f"t{a:03d}"), name(f"t{b:03d}"))
        for a, b in (chooser.sample(range(TABLES), 2) for _ in range(arguments.pairs))
    ]
    baseline = in_memory(graph)
    neo4j = {
        "WEAVER_METADATA_EXTERNAL_MODE": "true",
        "NEO4J_URI": os.environ.get("NEO4J_URI", "bolt://127.0.0.1:7687"),
        "NEO4J_USER": os.environ.get("NEO4J_USER", "neo4j"),
        "NEO4J_PASSWORD": os.environ.get("NEO4J_PASSWORD", "weaver_dev_password"),
    }
    tenant = f"bench{uuid.uuid4().hex[:10]}"
    with tempfile.TemporaryDirectory() as scratch:
        async with (
            running_host(make_settings(Path(scratch) / "embedded")) as embedded,
            running_host(make_settings(Path(scratch) / "neo4j", **neo4j)) as graph_host,
        ):
            hosts: dict[str, Host] = {"embedded": embedded, "neo4j": graph_host}
            assert graph_host.owner_of("find_join_paths") == "neo4j"
            for host in hosts.values():
                datasource = make_datasource(tenant, DATASOURCE)
                await host.save_datasource(datasource, create=True)
                await host.store_metadata(datasource, graph)
            try:
                await measure(arguments.rounds, pairs, baseline, hosts, tenant)
            finally:
                await graph_host.delete_metadata(make_datasource(tenant, DATASOURCE))


async def measure(
    rounds: int,
    pairs: list[tuple[TableName, TableName]],
    baseline: Callable[[TableName, TableName, int], list[JoinPath]],
    hosts: dict[str, Host],
    tenant: str,
) -> None:
    for max_hops in (4, 6):
        samples: dict[str, list[float]] = {"in-memory": [], **{k: [] for k in hosts}}
        found: dict[str, int] = {}
        for _ in range(rounds):
            for start, end in pairs:
                expected = baseline(start, end, max_hops)

                async def in_memory_call(
                    start: TableName = start, end: TableName = end, hops: int = max_hops
                ) -> None:
                    baseline(start, end, hops)

                samples["in-memory"].append(await timed(in_memory_call))
                for label, host in hosts.items():

                    async def call(
                        host: Host = host,
                        label: str = label,
                        start: TableName = start,
                        end: TableName = end,
                        hops: int = max_hops,
                        expected: list[JoinPath] = expected,
                    ) -> None:
                        answer = await host.find_join_paths(
                            JoinPathRequest(tenant, start, end, hops, limit=LIMIT)
                        )
                        assert answer == expected, (label, start, end)

                    samples[label].append(await timed(call))
                hops = str(len(expected[0].hops)) if expected else "none"
                found[hops] = found.get(hops, 0) + 1
        print(f"max_hops={max_hops}: {len(pairs)} pairs x {rounds} rounds; hops found {found}")
        base = statistics.median(samples["in-memory"])
        for label, values in samples.items():
            p50, p99 = percentile(values, 0.5), percentile(values, 0.99)
            print(
                f"  {label:10s} p50 {p50:8.3f} ms  p99 {p99:8.3f} ms"
                f"  ({p50 / base:6.1f}x the in-memory p50)"
            )


if __name__ == "__main__":
    asyncio.run(main())
