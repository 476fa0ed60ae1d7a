"""Operations across backends complete, or leave what the tenant can see and finish by
themselves: here with a graph store that is switched off and on (the live suites do the
same with the real servers behind a relay)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from importlib.metadata import EntryPoint
from typing import Any

import pytest

from tests.conftest import SHOP_SCHEMA, ClientFactory, assert_problem
from tests.plugins.switchable_graph import SwitchableGraph
from weaver.app import create_app
from weaver.keys import HOST
from weaver.settings import Settings
from weaver.types import Page
from weaver.workflows import repairs

GRAPH = EntryPoint("graph", "tests.plugins.switchable_graph:SwitchableGraph", "weaver")


@pytest.fixture
async def graphed(aiohttp_client: ClientFactory, settings: Settings, sqlite_file: Any) -> Any:
    sqlite_file("shop.db", SHOP_SCHEMA)
    app = create_app(settings, environ={"WEAVER_GRAPH_MODE": "1"}, discovered=[GRAPH])
    return await aiohttp_client(app)


def graph_store(client: Any) -> SwitchableGraph:
    plugin = client.app[HOST].pm.get_plugin("graph")
    assert isinstance(plugin, SwitchableGraph)
    return plugin


async def create_shop(client: Any, auth: Any) -> None:
    response = await client.post(
        "/api/datasources",
        json={"name": "shop", "engine": "sqlite", "connection": {"path": "shop.db"}},
        headers=auth(),
    )
    assert response.status == 201, await response.text()


async def test_a_removal_while_a_store_is_down_is_accepted_and_finished_later(
    graphed: Any, auth: Any
) -> None:
    await create_shop(graphed, auth)
    assert (
        await graphed.post("/api/v1/metadata/datasources/shop/sync", headers=auth())
    ).status == 200
    store = graph_store(graphed)
    host = graphed.app[HOST]
    store.up = False

    assert (await graphed.delete("/api/datasources/shop", headers=auth())).status == 204
    # Gone for the tenant at once, though a backend still holds some of it.
    assert (await graphed.get("/api/datasources/shop", headers=auth())).status == 404
    listed = await (await graphed.get("/api/datasources", headers=auth())).json()
    assert listed["items"] == []
    assert ("tenant-a", "shop") in store.graphs
    (pending,) = await host.list_repairs(None, None)
    assert pending.kind == "remove_datasource" and pending.attempts == 1
    # The name stays taken until the removal finished: the engine may still hold it.
    again = await graphed.post(
        "/api/datasources",
        json={"name": "shop", "engine": "sqlite", "connection": {"path": "shop.db"}},
        headers=auth(),
    )
    assert_problem(await again.json(), 409)

    store.up = True
    # Any process finishes it (the background loop does it too, every few seconds).
    await repairs.finish(host, pending)
    assert ("tenant-a", "shop") not in store.graphs
    assert await host.list_repairs(None, None) == []
    await create_shop(graphed, auth)


async def test_a_sync_whose_graph_store_is_down_keeps_its_snapshot_and_stores_it_later(
    graphed: Any, auth: Any
) -> None:
    await create_shop(graphed, auth)
    store = graph_store(graphed)
    host = graphed.app[HOST]
    store.up = False
    response = await graphed.post("/api/v1/metadata/datasources/shop/sync", headers=auth())
    assert_problem(await response.json(), 503)
    # The sync is recorded (a snapshot the tenant can see); the graph is not there yet.
    snapshots = await (
        await graphed.get("/api/v1/metadata/datasources/shop/snapshots", headers=auth())
    ).json()
    assert len(snapshots["items"]) == 1
    (pending,) = await host.list_repairs(None, None)
    assert pending.kind == "store_graph"

    store.up = True
    assert await repairs.run_due(host) == 1
    tables = await graphed.get(
        "/api/v1/metadata/datasources/shop/schemas/main/tables", headers=auth()
    )
    assert {t["name"] for t in (await tables.json())["items"]} == {"customers", "orders"}


async def test_a_repair_of_an_old_sync_does_not_undo_a_newer_one(graphed: Any, auth: Any) -> None:
    await create_shop(graphed, auth)
    store, host = graph_store(graphed), graphed.app[HOST]
    store.up = False
    await graphed.post("/api/v1/metadata/datasources/shop/sync", headers=auth())
    (stale,) = await host.list_repairs(None, None)
    store.up = True
    newer = await graphed.post("/api/v1/metadata/datasources/shop/sync", headers=auth())
    assert newer.status == 200
    datasource = await host.get_datasource("tenant-a", "shop")
    assert datasource is not None
    latest = (await host.list_snapshots(datasource, Page(1)))[0]
    store.graphs[("tenant-a", "shop")] = (await host.get_snapshot(datasource, latest.id)).graph
    marker = store.graphs[("tenant-a", "shop")]
    assert await repairs.finish(host, stale)
    # The stale snapshot was not stored over the newer graph.
    assert store.graphs[("tenant-a", "shop")] is marker


async def test_glossary_links_the_graph_store_could_not_take_are_finished_later(
    graphed: Any, auth: Any
) -> None:
    await create_shop(graphed, auth)
    assert (
        await graphed.post("/api/v1/metadata/datasources/shop/sync", headers=auth())
    ).status == 200
    store, host = graph_store(graphed), graphed.app[HOST]
    store.up = False
    created = await graphed.post(
        "/api/v1/metadata/glossary",
        json={"term": "Customer", "definition": "who buys", "columns": ["shop.main.customers.id"]},
        headers=auth(),
    )
    # The term is the truth, and its store took it: the tenant has it at once.
    assert created.status == 201, await created.text()
    term_id = (await created.json())["id"]
    assert (await graphed.get(f"/api/v1/metadata/glossary/{term_id}", headers=auth())).status == 200
    assert store.terms == {}
    (pending,) = await host.list_repairs(None, None)
    assert (pending.kind, pending.key) == ("relink_glossary_term", f"tenant-a/{term_id}")

    store.up = True
    assert await repairs.run_due(host, due_before=datetime.now(UTC) + timedelta(minutes=5)) == 1
    datasource = await host.get_datasource("tenant-a", "shop")
    assert datasource is not None
    assert [
        (link.term, link.table, link.column) for link in await host.load_glossary_links(datasource)
    ] == [("Customer", "customers", "id")]

    store.up = False
    deleted = await graphed.delete(f"/api/v1/metadata/glossary/{term_id}", headers=auth())
    assert deleted.status == 204
    assert ("tenant-a", term_id) in store.terms
    assert [r.kind for r in await host.list_repairs(None, None)] == ["relink_glossary_term"]
    store.up = True
    assert await repairs.run_due(host, due_before=datetime.now(UTC) + timedelta(minutes=5)) == 1
    assert store.terms == {}
    assert await host.list_repairs(None, None) == []


async def test_a_glossary_change_with_every_store_up_leaves_no_repair(
    graphed: Any, auth: Any
) -> None:
    await create_shop(graphed, auth)
    store, host = graph_store(graphed), graphed.app[HOST]
    created = await graphed.post(
        "/api/v1/metadata/glossary",
        json={"term": "Order", "definition": "a sale", "columns": ["shop.main.orders.id"]},
        headers=auth(),
    )
    assert created.status == 201
    term_id = (await created.json())["id"]
    assert store.terms[("tenant-a", term_id)].columns == ("shop.main.orders.id",)
    duplicate = await graphed.post(
        "/api/v1/metadata/glossary",
        json={"term": "Order", "definition": "again", "columns": ["shop.main.orders.id"]},
        headers=auth(),
    )
    assert_problem(await duplicate.json(), 409)
    assert list(store.terms) == [("tenant-a", term_id)]
    assert await host.list_repairs(None, None) == []
