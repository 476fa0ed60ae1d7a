"""The Neo4j plugin against a real Neo4j: the store contract (registry, snapshots and the
rest stay with the embedded store), and what only the graph has — edges, a few thousand
columns, replacement while others read or delete, the schema it creates, credentials
refused, and a server that comes up after the gateway."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from neo4j import AsyncDriver
from weaver_neo4j.plugin import PLUGIN_NAME, Neo4jCatalog, Neo4jPlugin
from weaver_neo4j.schema import DATASOURCE_CONSTRAINT, ensure_schema

from weaver.errors import Unavailable
from weaver.host import Host
from weaver.settings import Settings
from weaver.testing.harness import running_host
from weaver.testing.relay import Relay
from weaver.testing.store import (
    StoreContract,
    make_datasource,
    shop_graph,
    warehouse_graph,
    wide_graph,
)
from weaver.types import Column, Datasource, Page, SchemaGraph, Table

pytestmark = [
    pytest.mark.live,
    pytest.mark.skipif(
        os.environ.get("WEAVER_RUN_E2E") != "1", reason="live suite: set WEAVER_RUN_E2E=1"
    ),
]


class TestNeo4jStore(StoreContract):
    plugin = PLUGIN_NAME
    # The schema graph, its search, its glossary links and join paths; the registry and
    # the rest (glossary terms included) stay embedded.
    plugin_hooks = (
        "store_metadata",
        "load_metadata",
        "search_metadata",
        "store_glossary_links",
        "delete_glossary_links",
        "load_glossary_links",
        "find_join_paths",
    )

    @pytest.fixture
    async def host(
        self,
        neo4j_settings: Callable[..., Settings],
        tenant_a: str,
        tenant_b: str,
        forget_tenants: Callable[[list[str]], None],
    ) -> AsyncIterator[Host]:
        forget_tenants([tenant_a, tenant_b])
        async with running_host(neo4j_settings()) as host:
            assert host.owner_of("store_metadata") == PLUGIN_NAME
            assert host.owner_of("load_metadata") == PLUGIN_NAME
            assert host.owner_of("search_metadata") == PLUGIN_NAME
            assert host.owner_of("find_join_paths") == PLUGIN_NAME
            assert host.owner_of("save_datasource") == "embedded_store"
            yield host


def catalog_of(host: Host) -> Neo4jCatalog:
    plugin = host.pm.get_plugin(PLUGIN_NAME)
    assert isinstance(plugin, Neo4jPlugin)
    return plugin.catalog


async def count(neo4j: AsyncDriver, query: str, **parameters: Any) -> int:
    records, _, _ = await neo4j.execute_query(query, parameters)
    return int(records[0][0])


async def test_two_thousand_columns_round_trip_and_are_replaced(
    host: Host, tenant: str, neo4j: AsyncDriver
) -> None:
    datasource = make_datasource(tenant, "lake")
    graph = wide_graph(tables=100, columns=20)
    assert graph.column_count == 2000
    await host.store_metadata(datasource, graph)
    assert await host.load_metadata(datasource) == graph

    scope = {"tenant": tenant}
    assert (
        await count(neo4j, "MATCH (c:Column {tenant_id: $tenant}) RETURN count(c)", **scope) == 2000
    )
    assert (
        await count(
            neo4j,
            "MATCH (:Column {tenant_id: $tenant})-[r:REFERENCES]->(:Column {tenant_id: $tenant})"
            " RETURN count(r)",
            **scope,
        )
        == graph.foreign_key_count
        == 99
    )
    hits = await host.search_metadata(tenant, "PARENT", "column", Page(limit=1000))
    assert [(hit.schema, hit.table, hit.data_type) for hit in hits] == sorted(
        (table.schema, table.name, "bigint") for table in graph.tables[1:]
    )

    smaller = wide_graph(tables=10, columns=5)
    await host.store_metadata(datasource, smaller)
    assert await host.load_metadata(datasource) == smaller
    # Nothing of the first sync is left behind.
    nodes = await count(neo4j, "MATCH (n {tenant_id: $tenant}) RETURN count(n)", **scope)
    assert nodes == 1 + len(smaller.schemas) + len(smaller.tables) + smaller.column_count


async def test_readers_see_the_old_graph_or_the_new_never_a_mix(host: Host, tenant: str) -> None:
    """Neo4j reads are only read-committed: without the plugin's checks, about one load
    in a few hundred here came back with tables missing."""
    datasource = make_datasource(tenant, "shop")
    graphs = [wide_graph(tables=60, columns=12), wide_graph(tables=25, columns=6)]
    await host.store_metadata(datasource, graphs[0])
    seen: list[SchemaGraph | None] = []
    writing = True

    async def write() -> None:
        nonlocal writing
        for n in range(1, 13):
            await host.store_metadata(datasource, graphs[n % 2])
        writing = False

    async def read() -> None:
        while writing:
            seen.append(await host.load_metadata(datasource))

    await asyncio.gather(write(), *(read() for _ in range(4)))
    assert len(seen) > 0
    for graph in seen:
        assert graph in graphs


async def test_deleting_while_a_sync_runs_leaves_one_or_the_other(
    host: Host, tenant: str, neo4j: AsyncDriver
) -> None:
    datasource = make_datasource(tenant, "shop")
    graph = wide_graph(tables=20, columns=10)
    nodes = 1 + len(graph.schemas) + len(graph.tables) + graph.column_count
    query = "MATCH (n {tenant_id: $tenant}) RETURN count(n)"
    for _ in range(8):
        await asyncio.gather(
            host.store_metadata(datasource, graph), host.delete_metadata(datasource)
        )
        loaded = await host.load_metadata(datasource)
        assert loaded in (None, graph)
        assert await count(neo4j, query, tenant=tenant) == (0 if loaded is None else nodes)
    await host.delete_metadata(datasource)
    assert await count(neo4j, query, tenant=tenant) == 0


async def test_the_same_datasource_name_in_two_tenants(
    host: Host, forget_tenants: Callable[[list[str]], None]
) -> None:
    tenants = [f"tq{uuid.uuid4().hex[:12]}" for _ in range(2)]
    forget_tenants(tenants)
    mine, theirs = (make_datasource(t, "sales") for t in tenants)
    await asyncio.gather(
        host.store_metadata(mine, shop_graph()), host.store_metadata(theirs, warehouse_graph())
    )
    assert await host.load_metadata(mine) == shop_graph()
    assert await host.load_metadata(theirs) == warehouse_graph()
    await host.delete_metadata(mine)
    assert await host.load_metadata(mine) is None
    assert await host.load_metadata(theirs) == warehouse_graph()


async def test_an_empty_sync_is_an_empty_graph_not_a_missing_one(host: Host, tenant: str) -> None:
    datasource = make_datasource(tenant, "blank")
    assert await host.load_metadata(datasource) is None
    await host.store_metadata(datasource, SchemaGraph([], []))
    assert await host.load_metadata(datasource) == SchemaGraph([], [])


async def test_search_pages_through_names_that_sort_apart_from_their_keys(
    host: Host, tenant: str
) -> None:
    """`a.b` sorts before `a_b` as a string but the keys compare part by part."""
    datasource = make_datasource(tenant, "shop")
    tables = ["a", "a_b", "a.b", "A", "ab"]
    graph = SchemaGraph(["s"], [Table("s", name, [Column("x", "int", True, 1)]) for name in tables])
    await host.store_metadata(datasource, graph)
    collected: list[str] = []
    page = Page(limit=2)
    while hits := await host.search_metadata(tenant, "a", "table", page):
        collected += [hit.table for hit in hits]
        last = hits[-1]
        page = Page(limit=2, after=f"{last.datasource_name}.{last.schema}.{last.table}")
    assert collected == sorted(tables)


async def test_schema_setup_is_idempotent_and_replaces_a_tenant_blind_constraint(
    neo4j_settings: Callable[..., Settings], neo4j: AsyncDriver
) -> None:
    async def constraint_properties() -> list[list[str]]:
        records, _, _ = await neo4j.execute_query(
            "SHOW CONSTRAINTS YIELD name, properties WHERE name = $name RETURN properties",
            name=DATASOURCE_CONSTRAINT,
        )
        return [record["properties"] for record in records]

    async def index_names() -> list[str]:
        records, _, _ = await neo4j.execute_query("SHOW INDEXES YIELD name RETURN name")
        return sorted(record["name"] for record in records)

    for _ in range(2):
        async with running_host(neo4j_settings()) as host:
            assert PLUGIN_NAME not in host.startup_errors
            assert catalog_of(host).schema_ready
    indexes = await index_names()
    assert await constraint_properties() == [["tenant_id", "name"]]
    for name in ["schema_name_idx", "table_name_idx", "column_name_idx", DATASOURCE_CONSTRAINT]:
        assert indexes.count(name) == 1

    # The deployment document's manual step left one of that name on `name` alone. That
    # one cannot be made again on a server where two tenants own the same name, so the
    # stand-in is on a property no node has: any other key than (tenant_id, name) must go.
    await neo4j.execute_query(f"DROP CONSTRAINT {DATASOURCE_CONSTRAINT}")
    await neo4j.execute_query(
        f"CREATE CONSTRAINT {DATASOURCE_CONSTRAINT}"
        " FOR (ds:DataSource) REQUIRE ds.legacy_name IS UNIQUE"
    )
    assert await constraint_properties() == [["legacy_name"]]
    await ensure_schema(neo4j)
    assert await constraint_properties() == [["tenant_id", "name"]]
    assert await index_names() == indexes


async def test_refused_credentials_are_unavailable_without_the_password(
    neo4j_settings: Callable[..., Settings],
) -> None:
    # Another user than the real one: failed logins would lock that one out for a while.
    settings = neo4j_settings(NEO4J_USER="weaver_nobody", NEO4J_PASSWORD="wrong-password-0815")
    async with running_host(settings) as host:
        assert PLUGIN_NAME not in host.startup_errors
        check = (await host.check_health())[PLUGIN_NAME]
        assert check.status == "down"
        assert "credentials" in str(check.detail)
        with pytest.raises(Unavailable) as raised:
            await host.store_metadata(make_datasource("tx", "shop"), shop_graph())
        assert "wrong-password-0815" not in raised.value.detail
        assert "credentials" in raised.value.detail


async def test_a_neo4j_that_comes_up_later_is_used_and_set_up(
    neo4j_settings: Callable[..., Settings], neo4j_uri: str, tenant: str
) -> None:
    name, port = neo4j_uri.rsplit("/", 1)[-1].rsplit(":", 1)
    relay = Relay(name, int(port))
    settings = neo4j_settings(uri=f"bolt://127.0.0.1:{relay.port}")
    async with running_host(settings) as host:
        catalog: Neo4jCatalog = catalog_of(host)
        assert PLUGIN_NAME not in host.startup_errors
        assert not catalog.schema_ready
        assert (await host.check_health())[PLUGIN_NAME].status == "down"

        await relay.start()
        try:
            assert (await host.check_health())[PLUGIN_NAME].status == "up"
            datasource: Datasource = make_datasource(tenant, "late")
            await host.store_metadata(datasource, shop_graph())
            assert catalog.schema_ready
            assert await host.load_metadata(datasource) == shop_graph()
        finally:
            await relay.cut()
