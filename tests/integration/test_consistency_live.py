"""Operations across the real backends with each one stopped in turn and restarted:
removal and sync either complete, or leave what the tenant can see and finish by
themselves once the backend is back.

MindsDB, Neo4j and the PostgreSQL metadata store are reached through TCP relays
(`weaver.testing.relay.Relay`): cutting a relay is the backend gone for this gateway
(refused connections, open ones dropped), without stopping servers other suites share.
Runs only with ``WEAVER_RUN_E2E=1``, and then never skips.
"""

from __future__ import annotations

import asyncio
import os
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

pytest.importorskip("weaver_mindsdb", reason="the first-party plugins are not installed")

from weaver_mindsdb.testing import LiveEnv, live, live_env_from_environment

from weaver.app import create_app
from weaver.auth import mint_token
from weaver.host import Host
from weaver.keys import HOST
from weaver.naming import internal_name
from weaver.testing.relay import Relay
from weaver.types import Datasource, Page
from weaver.workflows import repairs

pytestmark = live

Client = TestClient[Any, Any]


@pytest.fixture
async def relays() -> AsyncIterator[dict[str, Relay]]:
    for name in ("MINDSDB_URL", "NEO4J_URI", "POSTGRES_DSN"):
        if not os.environ.get(name):
            pytest.fail(f"WEAVER_RUN_E2E=1 needs {name}")
    made = {
        "mindsdb": Relay.to(os.environ["MINDSDB_URL"], 47334),
        "neo4j": Relay.to(os.environ["NEO4J_URI"], 7687),
        "pg": Relay.to(os.environ["POSTGRES_DSN"], 5432),
    }
    for relay in made.values():
        await relay.start()
    yield made
    for relay in made.values():
        await relay.cut()


@pytest.fixture
def live_env() -> LiveEnv:
    return live_env_from_environment()


@pytest.fixture
async def api(
    aiohttp_client: Callable[..., Awaitable[Client]],
    tmp_path: Path,
    live_env: LiveEnv,
    relays: dict[str, Relay],
) -> Client:
    settings = live_env.settings(
        tmp_path / "data",
        MINDSDB_URL=relays["mindsdb"].through(os.environ["MINDSDB_URL"]),
        NEO4J_URI=relays["neo4j"].through(os.environ["NEO4J_URI"]),
        NEO4J_USER=os.environ.get("NEO4J_USER", "neo4j"),
        NEO4J_PASSWORD=os.environ.get("NEO4J_PASSWORD", ""),
        POSTGRES_DSN=relays["pg"].through(os.environ["POSTGRES_DSN"]),
        WEAVER_METADATA_EXTERNAL_MODE="true",
        WEAVER_METADATA_PG_MODE="true",
        WEAVER_PLUGINS_STRICT="true",
    )
    return await aiohttp_client(create_app(settings))


@pytest.fixture
def tenant() -> str:
    return f"repair-{secrets.token_hex(4)}"


@pytest.fixture
def headers(api: Client, tenant: str) -> dict[str, str]:
    settings = api.app[HOST].context.settings
    token = mint_token(settings, tenant_id=tenant, subject="alice", roles=["editor"])
    return {"Authorization": f"Bearer {token}"}


async def _created(
    api: Client, headers: dict[str, str], live_env: LiveEnv, tenant: str
) -> tuple[str, Datasource]:
    """A synced datasource of the tenant on a sample database: its name and record."""
    name = f"sales_{secrets.token_hex(3)}"
    response = await api.post(
        "/api/datasources",
        json={"name": name, "engine": "postgres", "connection": live_env.connection()},
        headers=headers,
    )
    assert response.status == 201, await response.text()
    synced = await api.post(f"/api/v1/metadata/datasources/{name}/sync", headers=headers)
    assert synced.status == 200, await synced.text()
    record = await api.app[HOST].get_datasource(tenant, name)
    assert record is not None
    return name, record


async def _finished(host: Host, tenant: str, name: str) -> None:
    """Every repair of the datasource done, as the background loop does it (without
    waiting out the pauses between attempts)."""
    for _ in range(30):
        await repairs.run_due(host, due_before=datetime.now(UTC) + timedelta(days=1))
        if not await repairs.pending(host, tenant, name):
            return
        await asyncio.sleep(0.5)
    raise AssertionError(f"repairs of {tenant}/{name} never finished")


def _plugin(host: Host, name: str) -> Any:
    return host.pm.get_plugin(name)


@pytest.mark.parametrize("down", ["mindsdb", "neo4j", "pg"])
async def test_a_removal_with_a_backend_down_is_finished_when_it_is_back(
    api: Client,
    headers: dict[str, str],
    live_env: LiveEnv,
    relays: dict[str, Relay],
    tenant: str,
    down: str,
) -> None:
    host: Host = api.app[HOST]
    name, record = await _created(api, headers, live_env, tenant)

    await relays[down].cut()
    assert (await api.delete(f"/api/datasources/{name}", headers=headers)).status == 204
    # The tenant sees it gone at once, whatever is still left in the backends.
    assert (await api.get(f"/api/datasources/{name}", headers=headers)).status == 404
    listed = await (await api.get("/api/datasources", headers=headers)).json()
    assert name not in {item["name"] for item in listed["items"]}
    assert [r.kind for r in await repairs.pending(host, tenant, name)] == ["remove_datasource"]

    await relays[down].start()
    await _finished(host, tenant, name)
    assert internal_name(tenant, name) not in await live_env.mindsdb_databases()
    assert await _plugin(host, "neo4j").catalog.load(record) is None
    assert await _pg_snapshots(host, record) == []


async def _pg_snapshots(host: Host, datasource: Datasource) -> list[Any]:
    plugin = _plugin(host, "pg")
    return list(await plugin.list_snapshots(datasource, Page(10)))


async def test_a_sync_with_the_graph_store_down_is_recorded_and_finished_later(
    api: Client,
    headers: dict[str, str],
    live_env: LiveEnv,
    relays: dict[str, Relay],
    tenant: str,
) -> None:
    host: Host = api.app[HOST]
    name, record = await _created(api, headers, live_env, tenant)
    before = await _pg_snapshots(host, record)

    await relays["neo4j"].cut()
    response = await api.post(f"/api/v1/metadata/datasources/{name}/sync", headers=headers)
    assert response.status == 503, await response.text()
    # The snapshot records the sync; the graph follows once Neo4j is back.
    after = await _pg_snapshots(host, record)
    assert len(after) == len(before) + 1
    assert [r.kind for r in await repairs.pending(host, tenant, name)] == ["store_graph"]

    await relays["neo4j"].start()
    await _finished(host, tenant, name)
    graph = await host.load_metadata(record)
    snapshot = await host.get_snapshot(record, after[0].id)
    assert graph is not None and snapshot is not None
    assert {t.name for t in graph.tables} == {t.name for t in snapshot.graph.tables}
    await api.delete(f"/api/datasources/{name}", headers=headers)


async def test_a_sync_with_the_snapshot_store_down_changes_nothing(
    api: Client,
    headers: dict[str, str],
    live_env: LiveEnv,
    relays: dict[str, Relay],
    tenant: str,
) -> None:
    host: Host = api.app[HOST]
    name, record = await _created(api, headers, live_env, tenant)
    graph = await host.load_metadata(record)

    await relays["pg"].cut()
    response = await api.post(f"/api/v1/metadata/datasources/{name}/sync", headers=headers)
    assert response.status == 503, await response.text()
    assert await repairs.pending(host, tenant, name) == []
    await relays["pg"].start()
    assert await host.load_metadata(record) == graph
    await api.delete(f"/api/datasources/{name}", headers=headers)


async def test_a_glossary_term_is_kept_in_postgresql_and_linked_in_neo4j_even_across_an_outage(
    api: Client,
    headers: dict[str, str],
    live_env: LiveEnv,
    relays: dict[str, Relay],
    tenant: str,
) -> None:
    host: Host = api.app[HOST]
    name, record = await _created(api, headers, live_env, tenant)
    graph = await host.load_metadata(record)
    assert graph is not None
    first, second = graph.tables[0], graph.tables[-1]
    paths = [f"{name}.{t.schema}.{t.name}.{t.columns[0].name}" for t in (first, second)]
    neo4j, pg = _plugin(host, "neo4j").catalog, _plugin(host, "pg")

    async def linked() -> list[tuple[str, str, str]]:
        return [(link.term, link.table, link.column) for link in await neo4j.load_links(record)]

    created = await api.post(
        "/api/v1/metadata/glossary",
        json={"term": "Key", "definition": "identifies a row", "columns": paths[:1]},
        headers=headers,
    )
    assert created.status == 201, await created.text()
    term_id = (await created.json())["id"]
    # Both backends have it: the term in PostgreSQL, its link as an edge in Neo4j.
    stored = await pg.get_glossary_term(tenant, term_id)
    assert stored is not None and stored.columns == tuple(paths[:1])
    assert await linked() == [("Key", first.name, first.columns[0].name)]

    await relays["neo4j"].cut()
    moved = await api.put(
        f"/api/v1/metadata/glossary/{term_id}",
        json={"term": "Key", "definition": "identifies a row", "columns": paths[1:]},
        headers=headers,
    )
    assert moved.status == 200, await moved.text()
    stored = await pg.get_glossary_term(tenant, term_id)
    assert stored is not None and stored.columns == tuple(paths[1:])
    assert [r.kind for r in await repairs.pending(host, tenant, term_id)] == [
        "relink_glossary_term"
    ]
    await relays["neo4j"].start()
    await _finished(host, tenant, term_id)
    assert await linked() == [("Key", second.name, second.columns[0].name)]

    await relays["neo4j"].cut()
    deleted = await api.delete(f"/api/v1/metadata/glossary/{term_id}", headers=headers)
    assert deleted.status == 204
    assert await pg.get_glossary_term(tenant, term_id) is None
    await relays["neo4j"].start()
    await _finished(host, tenant, term_id)
    assert await linked() == []
    await api.delete(f"/api/datasources/{name}", headers=headers)
