"""Graph versions against a real Neo4j: a 50,000-column datasource synced again within
the dev server's transaction memory, readers that see one whole version while re-syncs
run, syncs stopped half-way and cleaned up by the next, a transient error retried and
then reported as what it is, and reads that log no warning."""

from __future__ import annotations

import asyncio
import logging
import os
import time
import uuid
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import pytest
from neo4j import AsyncDriver, AsyncManagedTransaction
from weaver_neo4j.graph import current_versions, still_current
from weaver_neo4j.paths import FOREIGN_KEYS_TOUCHING, find_paths
from weaver_neo4j.plugin import PLUGIN_NAME, Neo4jCatalog, Neo4jPlugin

from weaver.errors import Unavailable
from weaver.host import Host
from weaver.testing.store import make_datasource, make_term, wide_graph
from weaver.types import (
    Column,
    ColumnRef,
    Datasource,
    GlossaryLink,
    GlossaryTerm,
    JoinHop,
    JoinPath,
    JoinPathRequest,
    Page,
    SchemaGraph,
    SearchHit,
    Table,
    TableName,
)

pytestmark = [
    pytest.mark.live,
    pytest.mark.skipif(
        os.environ.get("WEAVER_RUN_E2E") != "1", reason="live suite: set WEAVER_RUN_E2E=1"
    ),
]


def catalog_of(host: Host) -> Neo4jCatalog:
    plugin = host.pm.get_plugin(PLUGIN_NAME)
    assert isinstance(plugin, Neo4jPlugin)
    return plugin.catalog


async def scalar(neo4j: AsyncDriver, query: str, **parameters: Any) -> Any:
    records, _, _ = await neo4j.execute_query(query, parameters)
    return records[0][0]


async def nodes_of(neo4j: AsyncDriver, tenant: str) -> int:
    return int(await scalar(neo4j, "MATCH (n {tenant_id: $t}) RETURN count(n)", t=tenant))


def node_count(graph: SchemaGraph) -> int:
    """One version of ``graph``: the DataSource, schemas, tables and columns."""
    return 1 + len(graph.schemas) + len(graph.tables) + graph.column_count


async def test_a_fifty_thousand_column_datasource_is_synced_again(
    host: Host, tenant: str, neo4j: AsyncDriver
) -> None:
    """Replacing this graph in one transaction needed more than the 537 MiB of
    transaction memory the dev server's 768 MB heap allows, on every re-sync."""
    limit = await scalar(
        neo4j,
        "SHOW SETTINGS YIELD name, value WHERE name = 'dbms.memory.transaction.total.max'"
        " RETURN value",
    )
    assert limit != "0B", "the server must cap transaction memory for this test to mean much"
    datasource = make_datasource(tenant, "lake")
    graph = wide_graph(tables=500, columns=100)
    assert graph.column_count == 50_000
    await host.store_metadata(datasource, graph)
    changed = wide_graph(tables=500, columns=100)
    changed.tables[0].columns[5].data_type = "varchar(64)"
    await host.store_metadata(datasource, changed)
    assert await host.load_metadata(datasource) == changed
    # One version is left, and nothing of the writing.
    assert await nodes_of(neo4j, tenant) == node_count(changed)


def search_hits(datasource: Datasource, graph: SchemaGraph, text: str) -> list[SearchHit]:
    """What a table search for ``text`` answers when ``graph`` is current."""
    return sorted(
        (
            SearchHit("table", datasource.name, table.schema, table.name)
            for table in graph.tables
            if text in table.name
        ),
        key=lambda hit: (hit.schema, hit.table),
    )


def term_links(term: GlossaryTerm, graph: SchemaGraph) -> list[GlossaryLink]:
    """What `load_glossary_links` answers for ``term`` alone when ``graph`` is current."""
    present = {(t.schema, t.name, c.name) for t in graph.tables for c in t.columns}
    return sorted(
        (
            GlossaryLink(term.id, term.term, schema, table, column)
            for _, schema, table, column in term.column_keys()
            if (schema, table, column) in present
        ),
        key=lambda link: (link.schema, link.table, link.column),
    )


async def test_readers_during_re_syncs_see_one_whole_version(host: Host, tenant: str) -> None:
    """Loads, searches and glossary links, read over and over while two graphs of several
    batches each replace one another; every answer must be one graph's, whole."""
    datasource = make_datasource(tenant, "shop")
    graphs = [wide_graph(tables=60, columns=120), wide_graph(tables=25, columns=240)]
    assert all(graph.column_count > 5000 for graph in graphs)  # more than one batch
    term = replace(
        make_term(tenant, "Attribute"),
        columns=(
            "shop.core.table_0000.attr_0_3",
            "shop.core.table_0000.attr_0_200",  # only in the wider graph
            "shop.mart.table_0040.attr_40_3",  # only in the longer graph
        ),
    )
    await host.store_glossary_links(term)
    await host.store_metadata(datasource, graphs[0])
    expected = {
        "load": list(graphs),
        "search": [search_hits(datasource, graph, "table_00") for graph in graphs],
        "links": [term_links(term, graph) for graph in graphs],
    }
    assert expected["search"][0] != expected["search"][1]
    assert expected["links"][0] != expected["links"][1]
    seen: dict[str, list[Any]] = {"load": [], "search": [], "links": []}
    writing = True

    async def write() -> None:
        nonlocal writing
        try:
            for n in range(1, 7):
                await host.store_metadata(datasource, graphs[n % 2])
        finally:
            writing = False

    async def read(kind: str) -> None:
        while writing:
            if kind == "load":
                seen[kind].append(await host.load_metadata(datasource))
            elif kind == "search":
                page = Page(limit=1000)
                seen[kind].append(await host.search_metadata(tenant, "table_00", "table", page))
            else:
                seen[kind].append(await host.load_glossary_links(datasource))

    await asyncio.gather(write(), read("load"), read("search"), read("links"), read("links"))
    for kind, answers in seen.items():
        assert answers, f"no {kind} ran while the graph was replaced"
        for answer in answers:
            assert answer in expected[kind], kind
        # Reads went on across switches: each kind saw both graphs.
        assert {expected[kind].index(answer) for answer in answers} == {0, 1}, kind


async def test_a_read_that_a_switch_overtakes_is_made_again(
    host: Host, tenant: str, neo4j: AsyncDriver
) -> None:
    """What makes searches and link reads whole, shown deterministically: a read that
    started on one version and ends after a switch to another is made again."""
    datasource = make_datasource(tenant, "shop")
    await host.store_metadata(datasource, wide_graph(tables=3, columns=3))
    attempts = 0

    async def read(tx: AsyncManagedTransaction) -> dict[str, str]:
        nonlocal attempts
        attempts += 1
        before = await current_versions(tx, tenant)
        if attempts == 1:
            await host.store_metadata(datasource, wide_graph(tables=4, columns=3))
        await still_current(tx, tenant, before, None)
        return before

    seen = await catalog_of(host).run("read", read)
    assert attempts == 2
    current = await scalar(
        neo4j, "MATCH (ds:DataSource {tenant_id: $t}) RETURN ds.sync_id", t=tenant
    )
    assert seen == {"shop": current}


def linked_tables(references: dict[str, tuple[str, str]]) -> SchemaGraph:
    """Tables ``orders``, ``customers`` and ``regions`` of schema ``core``, each with an
    ``id``; ``references`` maps a table to the (column, table) its foreign key names."""
    tables = []
    for name in ("orders", "customers", "regions"):
        columns = [Column("id", "integer", False, 1, primary_key=True)]
        if name in references:
            column, target = references[name]
            columns.append(
                Column(column, "integer", True, 2, references=ColumnRef("core", target, "id"))
            )
        tables.append(Table("core", name, columns))
    return SchemaGraph(schemas=["core"], tables=tables)


async def test_a_join_path_search_that_a_switch_overtakes_is_made_again(
    host: Host, tenant: str
) -> None:
    """A search reads one level of foreign keys per round trip. Here a re-sync switches
    the graph between its first and second level: the first saw orders join customers
    only, the second would see the new graph, where customers join nothing — no path at
    all, an answer neither graph gives. The search is made again on the new graph."""
    datasource = make_datasource(tenant, "shop")
    old = linked_tables(
        {"orders": ("customer_id", "customers"), "customers": ("region_id", "regions")}
    )
    new = linked_tables({"orders": ("region_id", "regions")})
    await host.store_metadata(datasource, old)
    start, end = TableName("shop", "core", "orders"), TableName("shop", "core", "regions")
    attempts = 0

    class SwitchingBeforeTheSecondLevel:
        def __init__(self, tx: AsyncManagedTransaction) -> None:
            self.tx, self.levels = tx, 0

        async def run(self, query: str, **parameters: Any) -> Any:
            if query == FOREIGN_KEYS_TOUCHING:
                self.levels += 1
                if attempts == 1 and self.levels == 2:
                    await host.store_metadata(datasource, new)
            return await self.tx.run(query, **parameters)

    async def search(tx: AsyncManagedTransaction) -> list[JoinPath]:
        nonlocal attempts
        attempts += 1
        switching: Any = SwitchingBeforeTheSecondLevel(tx)
        return await find_paths(switching, JoinPathRequest(tenant, start, end, 4))

    found = await catalog_of(host).run("read", search)
    assert attempts == 2
    assert found == [JoinPath((JoinHop(start, "region_id", end, "id"),))]
    assert found == await host.find_join_paths(JoinPathRequest(tenant, start, end, 4))


async def until(condition: Callable[[], Any], seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while not await condition():
        assert time.monotonic() < deadline, "the condition never held"
        await asyncio.sleep(0.05)


async def versions_of(neo4j: AsyncDriver, tenant: str) -> list[dict[str, Any]]:
    records, _, _ = await neo4j.execute_query(
        "MATCH (v:GraphVersion {tenant_id: $t}) RETURN v.sync_id AS sync_id, v.state AS state",
        t=tenant,
    )
    return [record.data() for record in records]


@pytest.mark.parametrize("stopped_while", ["writing", "retired"])
async def test_a_sync_stopped_half_way_is_cleaned_up_by_a_later_one(
    host: Host, tenant: str, neo4j: AsyncDriver, stopped_while: str
) -> None:
    """A gateway that dies mid-sync (here: the sync's task cancelled between two of its
    transactions, which no process then continues) leaves either a partial new version
    (``writing``) or the old version half-purged (``retired``). Readers go on seeing one
    whole graph; once the lease lapses, the next sync anywhere removes the leftovers."""
    datasource = make_datasource(tenant, "lake")
    # The old graph takes three purge batches and the new one three write batches, so
    # there is a moment between two of either.
    old, new = wide_graph(tables=210, columns=100), wide_graph(tables=110, columns=100)
    await host.store_metadata(datasource, old)
    sync = asyncio.create_task(host.store_metadata(datasource, new))

    async def caught() -> bool:
        versions = await versions_of(neo4j, tenant)
        if not any(version["state"] == stopped_while for version in versions):
            return False
        columns = await scalar(neo4j, "MATCH (c:Column {tenant_id: $t}) RETURN count(c)", t=tenant)
        if stopped_while == "writing":  # some of the new version is written, not all
            return bool(old.column_count < columns < old.column_count + new.column_count)
        # some of the old version is purged, not all
        return bool(new.column_count < columns < old.column_count + new.column_count)

    await until(caught)
    sync.cancel()
    with pytest.raises(asyncio.CancelledError):
        await sync
    [left] = await versions_of(neo4j, tenant)
    current = old if stopped_while == "writing" else new
    assert await host.load_metadata(datasource) == current
    assert await nodes_of(neo4j, tenant) > node_count(current) + 1

    # Within its lease the leftover belongs to the stopped sync: a sync leaves it alone.
    other = make_datasource(tenant, "other")
    await host.store_metadata(other, wide_graph(tables=2, columns=2))
    assert await versions_of(neo4j, tenant) == [left]

    catalog_of(host).lease_seconds = 0.5
    await asyncio.sleep(1)
    await host.store_metadata(other, wide_graph(tables=2, columns=2))
    assert await versions_of(neo4j, tenant) == []
    assert await nodes_of(neo4j, tenant) == node_count(current) + node_count(
        wide_graph(tables=2, columns=2)
    )
    assert await host.load_metadata(datasource) == current


async def test_a_transient_error_is_retried_then_reported_as_what_it_is(
    host: Host, neo4j: AsyncDriver, tenant: str
) -> None:
    """A real deadlock, made again on every attempt: an older transaction of the test's
    holds node ``y`` and waits for the node ``x`` the plugin's transaction locked; the
    plugin's then asks for ``y``. Neo4j aborts the younger one, the plugin's, with
    ``Neo.TransientError.Transaction.DeadlockDetected``: the driver retries it, and
    when it keeps happening the caller is told Neo4j is up but refusing, not that it
    cannot be reached."""
    catalog = catalog_of(host)
    await neo4j.execute_query(
        "CREATE (:DeadlockProbe {tenant_id: $t, key: 'y'})"
        " WITH 1 AS one UNWIND range(1, 20) AS n"
        " CREATE (:DeadlockProbe {tenant_id: $t, key: 'x' + n})",
        t=tenant,
    )
    session = neo4j.session()
    older = await session.begin_transaction()
    lock = "MATCH (n:DeadlockProbe {tenant_id: $t, key: $key}) SET n.held = true"
    await (await older.run(lock, t=tenant, key="y")).consume()
    attempts = 0
    waits: list[asyncio.Task[None]] = []

    async def older_wants(key: str) -> None:
        await (await older.run(lock, t=tenant, key=key)).consume()

    async def work(tx: AsyncManagedTransaction) -> None:
        nonlocal attempts
        attempts += 1
        key = f"x{attempts}"
        await (await tx.run(lock, t=tenant, key=key)).consume()
        # The older transaction waits for this one's node before this one asks for y.
        if waits:
            await waits[-1]
        waits.append(asyncio.create_task(older_wants(key)))
        await asyncio.sleep(0.3)
        await (await tx.run(lock, t=tenant, key="y")).consume()

    try:
        with pytest.raises(Unavailable) as raised:
            await catalog.run("write", work)
    finally:
        await asyncio.gather(*waits, return_exceptions=True)
        await older.rollback()
        await session.close()
    assert attempts >= 2, "the driver did not retry the transient error"
    detail = raised.value.detail
    assert raised.value.status == 503
    assert "Neo4j is busy: deadlock (Neo.TransientError.Transaction.DeadlockDetected)" in detail
    assert "is up" in detail and "cannot be reached" not in detail
    assert host.context.settings.neo4j_password not in detail


async def test_a_normal_read_logs_no_warning(
    host: Host, tenant: str, neo4j: AsyncDriver, caplog: pytest.LogCaptureFixture
) -> None:
    datasource = make_datasource(tenant, "plain")
    graph = wide_graph(tables=3, columns=4)
    for table in graph.tables:
        table.row_count = None
    term = replace(make_term(tenant, "Key"), columns=("plain.core.table_0000.id",))
    caplog.set_level(logging.INFO, logger="neo4j")
    await host.store_metadata(datasource, graph)
    await host.store_glossary_links(term)
    caplog.clear()
    assert await host.load_metadata(datasource) == graph
    assert await host.search_metadata(tenant, "table", "table", Page(10))
    assert await host.load_glossary_links(datasource)
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == []

    # Whether a property key exists depends on what the server ever stored, so the
    # filter is shown on a key no node can have: the plugin's driver stays quiet where
    # a driver without the filter warns.
    unknown = f"MATCH (t:Table {{tenant_id: $t}}) RETURN t.never_{uuid.uuid4().hex} LIMIT 1"
    caplog.clear()
    await catalog_of(host).driver.execute_query(unknown, t=tenant)
    assert [r for r in caplog.records if r.levelno >= logging.WARNING] == []
    await neo4j.execute_query(unknown, t=tenant)
    assert any("does not exist" in r.getMessage() for r in caplog.records)
