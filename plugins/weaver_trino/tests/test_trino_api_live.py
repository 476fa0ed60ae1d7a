"""The whole API in front of the real two-node Trino cluster: a real app built with
``create_app``, driven over HTTP with aiohttp's test client, on the PostgreSQL sample
databases. Runs only with ``WEAVER_RUN_E2E=1``; expected values come from the sources.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson
import pytest
from weaver_trino.testing import MODE, LiveEnv, Scratch, cluster, live, resident_bytes

from weaver.app import create_app
from weaver.naming import internal_name
from weaver.settings import Settings
from weaver.testing.live import (
    ApiDatasources,
    Auth,
    Client,
    Create,
    tenant_headers,
    two_tenants,
)

pytestmark = live

ClientFactory = Callable[..., Awaitable[Client]]
# Long enough for a worker lost mid-query to surface (Trino waits 60 s for its pages).
LONG_TIMEOUT = "150"


@pytest.fixture
def app_settings(live_env: LiveEnv, tmp_path: Path) -> Settings:
    return live_env.settings(
        tmp_path / "data", WEAVER_PLUGINS_STRICT="true", MINDSDB_TIMEOUT=LONG_TIMEOUT
    )


@pytest.fixture
async def api(aiohttp_client: ClientFactory, app_settings: Settings) -> Client:
    return await aiohttp_client(create_app(app_settings, environ=MODE))


@pytest.fixture
def tenants() -> tuple[str, str]:
    return two_tenants("trino")


@pytest.fixture
def auth(app_settings: Settings) -> Auth:
    return lambda tenant_id: tenant_headers(app_settings, tenant_id)


@pytest.fixture
async def create(api: Client, auth: Auth, live_env: LiveEnv) -> AsyncIterator[Create]:
    datasources = ApiDatasources(api, auth, live_env)
    yield datasources.create
    await live_env.drop_catalogs(internal_name(t, n) for t, n in await datasources.delete_all())


async def run_sql(
    api: Client, headers: dict[str, str], sql: str, **options: Any
) -> tuple[int, dict[str, Any], str]:
    response = await api.post("/api/query", json={"sql": sql, **options}, headers=headers)
    return response.status, await response.json(), response.headers.get("X-Query-Id", "")


# --- datasources ------------------------------------------------------------------------


async def test_datasources_are_catalogs_created_changed_and_dropped(
    api: Client,
    auth: Auth,
    live_env: LiveEnv,
    tenants: tuple[str, str],
    create: Create,
) -> None:
    tenant = tenants[0]
    catalog = internal_name(tenant, "sales")
    body = await create(tenant, "sales", live_env.database)
    assert body["password_set"] is True and "password" not in body["connection"]
    assert catalog in await live_env.catalogs()

    patched = await api.patch(
        "/api/datasources/sales",
        json={"connection": live_env.connection(live_env.crm_database)},
        headers=auth(tenant),
    )
    assert patched.status == 200, await patched.json()
    assert catalog in await live_env.catalogs()
    status, answer, _ = await run_sql(
        api, auth(tenant), "SELECT count(*) AS n FROM sales.crm.customer_tiers"
    )
    expected = (
        await live_env.fetch(live_env.crm_database, "SELECT count(*) FROM crm.customer_tiers")
    )[0][0]
    assert status == 200 and answer["rows"] == [[expected]], answer

    wrong = live_env.connection(password=f"wrong-{secrets.token_hex(4)}")
    refused = await api.patch(
        "/api/datasources/sales", json={"connection": wrong}, headers=auth(tenant)
    )
    assert refused.status == 502
    assert wrong["password"] not in await refused.text()
    status, answer, _ = await run_sql(
        api, auth(tenant), "SELECT count(*) AS n FROM sales.crm.customer_tiers"
    )
    assert status == 200 and answer["rows"] == [[expected]]

    deleted = await api.delete("/api/datasources/sales", headers=auth(tenant))
    assert deleted.status == 204
    assert catalog not in await live_env.catalogs()


# --- queries ----------------------------------------------------------------------------


async def test_a_join_across_two_databases_runs_on_the_worker(
    api: Client,
    auth: Auth,
    live_env: LiveEnv,
    tenants: tuple[str, str],
    create: Create,
) -> None:
    tenant = tenants[0]
    await create(tenant, "ent", live_env.database)
    await create(tenant, "crm", live_env.crm_database)
    sql = (
        "SELECT c.segment, t.tier, count(*) AS customers FROM ent.sales.customers AS c "
        "JOIN crm.crm.customer_tiers AS t ON c.customer_id = t.customer_id "
        "GROUP BY c.segment, t.tier ORDER BY c.segment, t.tier"
    )
    status, answer, query_id = await run_sql(api, auth(tenant), sql)
    assert status == 200, answer
    segments = {
        row[0]: row[1]
        for row in await live_env.fetch(
            live_env.database, "SELECT customer_id, segment FROM sales.customers"
        )
    }
    tiers = await live_env.fetch(
        live_env.crm_database, "SELECT customer_id, tier FROM crm.customer_tiers"
    )
    counted: dict[tuple[str, str], int] = {}
    for customer_id, tier in tiers:
        if customer_id in segments:
            key = (segments[customer_id], tier)
            counted[key] = counted.get(key, 0) + 1
    assert answer["rows"] == [[s, t, n] for (s, t), n in sorted(counted.items())]
    assert [c["name"] for c in answer["columns"]] == ["segment", "tier", "customers"]

    # Trino's query list names the query by Weaver's id; the worker ran its stages.
    (ran,) = await live_env.queries_tagged(query_id)
    assert "weaver" in ran["session"]["clientTags"]
    assert "weaver-worker" in await live_env.nodes_that_ran(ran["queryId"])


async def test_two_tenants_own_the_same_name_apart(
    api: Client,
    auth: Auth,
    live_env: LiveEnv,
    tenants: tuple[str, str],
    create: Create,
) -> None:
    a, b = tenants
    await create(a, "sales", live_env.database)
    await create(b, "sales", live_env.crm_database)
    customers = (await live_env.fetch(live_env.database, "SELECT count(*) FROM sales.customers"))[
        0
    ][0]
    tiers = await live_env.scalar(live_env.crm_database, "SELECT count(*) FROM crm.tiers")
    assert (await run_sql(api, auth(a), "SELECT count(*) FROM sales.sales.customers"))[1][
        "rows"
    ] == [[customers]]
    assert (await run_sql(api, auth(b), "SELECT count(*) FROM sales.crm.tiers"))[1]["rows"] == [
        [tiers]
    ]
    # Each sees its own database only: B's `sales` has no sales schema.
    status, answer, _ = await run_sql(api, auth(b), "SELECT count(*) FROM sales.sales.customers")
    assert status == 400 and internal_name(b, "sales") not in answer["detail"]


async def test_what_reaches_outside_the_tenant_is_refused_before_trino_sees_it(
    api: Client,
    auth: Auth,
    live_env: LiveEnv,
    tenants: tuple[str, str],
    create: Create,
) -> None:
    a, b = tenants
    await create(a, "sales", live_env.database)
    await create(b, "other", live_env.crm_database)
    marker = f"marker_{secrets.token_hex(6)}"
    refused = {
        f"SELECT '{marker}' FROM other.crm.tiers": 404,  # B's datasource, named by A
        f"SELECT other.crm.tiers.tier, '{marker}' FROM sales.sales.customers": 404,
        f"SELECT query, '{marker}' FROM system.runtime.queries": 400,
        f"SELECT * FROM TABLE(sales.system.query(query => 'SELECT ''{marker}'''))": 400,
        f"EXECUTE IMMEDIATE 'SELECT ''{marker}'''": 400,
        f"SELECT sales.system.query('{marker}') FROM sales.sales.customers": 400,
    }
    for sql, expected in refused.items():
        status, answer, _ = await run_sql(api, auth(a), sql)
        assert status == expected, (sql, answer)
        assert internal_name(b, "other") not in answer["detail"]
    # B's internal name typed by A is only a name A has no datasource of.
    guessed = f"SELECT * FROM {internal_name(b, 'other')}.crm.tiers WHERE '{marker}' = ''"
    assert (await run_sql(api, auth(a), guessed))[0] == 404
    # A statement that does reach Trino shows up in its list, so the check can fail.
    status, _, _ = await run_sql(api, auth(a), f"SELECT '{marker}' AS m FROM sales.sales.regions")
    assert status == 200
    texts = [q["query"] for q in await live_env.queries() if marker in q.get("query", "")]
    assert len(texts) == 1 and "regions" in texts[0], texts


async def test_cancel_stops_the_query_in_trino_and_on_the_source(
    api: Client,
    auth: Auth,
    live_env: LiveEnv,
    tenants: tuple[str, str],
    create: Create,
    scratch_schema: Scratch,
) -> None:
    tenant = tenants[0]
    schema = await scratch_schema(live_env.crm_database)
    await live_env.execute(
        live_env.crm_database,
        f'CREATE VIEW "{schema}".sleeper AS SELECT 1 AS slept FROM pg_sleep(60)',
    )
    await create(tenant, "crm", live_env.crm_database)
    response = await api.post(
        "/api/query",
        json={"sql": f"SELECT * FROM crm.{schema}.sleeper", "timeout_seconds": 120},
        headers={**auth(tenant), "Prefer": "respond-async"},
    )
    assert response.status == 202, await response.json()
    query_id = (await response.json())["query_id"]

    async def on_the_source() -> list[Any]:
        return await live_env.fetch(
            live_env.crm_database,
            "SELECT pid FROM pg_stat_activity WHERE state = 'active' AND query LIKE $1",
            f"%{schema}%sleeper%",
        )

    deadline = time.monotonic() + 60
    while not await on_the_source():
        assert time.monotonic() < deadline, "the statement never reached PostgreSQL"
        await asyncio.sleep(0.1)
    (tagged,) = await live_env.queries_tagged(query_id)

    cancelled_at = time.monotonic()
    deleted = await api.delete(f"/api/query/{query_id}", headers=auth(tenant))
    assert deleted.status == 204
    state: dict[str, Any] = {}
    while time.monotonic() - cancelled_at < 2.0:
        state = await live_env.rest(f"/v1/query/{tagged['queryId']}")
        if state["state"] == "FAILED" and not await on_the_source():
            break
        await asyncio.sleep(0.05)
    stopped = time.monotonic() - cancelled_at
    assert state["state"] == "FAILED", state["state"]
    assert state["errorCode"]["name"] == "USER_CANCELED"
    assert not await on_the_source()
    print(f"\ncancel: stopped in Trino and on PostgreSQL {stopped * 1000:.0f} ms after DELETE")
    record = await (await api.get(f"/api/query/{query_id}", headers=auth(tenant))).json()
    assert record["status"] == "cancelled"


async def test_a_million_rows_stream_as_ndjson_in_flat_memory(
    api: Client,
    auth: Auth,
    live_env: LiveEnv,
    tenants: tuple[str, str],
    create: Create,
    scratch_database: str,
) -> None:
    rows = 1_000_000
    await live_env.execute(
        scratch_database,
        "CREATE TABLE big AS SELECT g AS id, md5(g::text) AS label, g * 1.25 AS amount, "
        f"timestamp '2024-01-01' + g * interval '1 second' AS at FROM generate_series(1, {rows}) g",
    )
    tenant = tenants[0]
    await create(tenant, "scratch", scratch_database)
    before = peak = resident_bytes()
    started = time.perf_counter()
    response = await api.post(
        "/api/query",
        json={"sql": "SELECT id, label, amount, at FROM scratch.big", "limit": rows},
        headers={**auth(tenant), "Accept": "application/x-ndjson"},
    )
    assert response.status == 200
    lines, tail, last = 0, b"", b""
    async for chunk in response.content.iter_any():
        data = tail + chunk
        parts = data.split(b"\n")
        tail = parts.pop()
        lines += len(parts)
        if parts:
            last = parts[-1]
        peak = max(peak, resident_bytes())
    elapsed = time.perf_counter() - started
    final = orjson.loads(last or tail)
    # The columns line, a line per row, the closing line.
    assert lines == rows + 2 and final == {"row_count": rows, "truncated": False}, final
    growth = (peak - before) / 2**20
    print(
        f"\nexport: {rows} rows in {elapsed:.1f}s ({rows / elapsed:,.0f} rows/s), "
        f"RSS {before / 2**20:.0f} MiB -> peak {peak / 2**20:.0f} MiB (+{growth:.0f} MiB)"
    )
    # The whole result in memory would take well over 300 MiB; pages of it take a few.
    assert growth < 120, f"RSS grew {growth:.0f} MiB while streaming"


async def test_a_worker_lost_mid_query_is_a_clean_502_and_the_next_query_runs(
    api: Client,
    auth: Auth,
    live_env: LiveEnv,
    tenants: tuple[str, str],
    create: Create,
) -> None:
    tenant = tenants[0]
    await create(tenant, "ent", live_env.database)
    joins = " ".join(f"CROSS JOIN ent.sales.regions AS r{i}" for i in range(12))
    slow = f"SELECT count(*) FROM ent.sales.regions AS r {joins}"
    running = asyncio.create_task(run_sql(api, auth(tenant), slow, timeout_seconds=140))
    await asyncio.sleep(3)
    assert not running.done(), running
    service = cluster()
    assert service.kill_worker()
    try:
        status, answer, _ = await running
        assert status == 502, answer
        assert answer["type"].endswith("engine-error")
        assert "w_" not in answer["detail"] and "Traceback" not in answer["detail"]
    finally:
        await service.start_worker()
    status, answer, _ = await run_sql(api, auth(tenant), "SELECT count(*) FROM ent.sales.regions")
    expected = await live_env.scalar(live_env.database, "SELECT count(*) FROM sales.regions")
    assert status == 200 and answer["rows"] == [[expected]], answer


# --- catalog sync -----------------------------------------------------------------------


async def test_sync_reads_sample_enterprise_with_its_keys(
    api: Client,
    auth: Auth,
    live_env: LiveEnv,
    tenants: tuple[str, str],
    create: Create,
) -> None:
    tenant = tenants[0]
    await create(tenant, "ent", live_env.database)
    response = await api.post("/api/v1/metadata/datasources/ent/sync", headers=auth(tenant))
    summary = await response.json()
    assert response.status == 200, summary
    db = live_env.database
    user_schemas = "table_schema <> 'information_schema' AND left(table_schema, 3) <> 'pg_'"
    tables = await live_env.fetch(
        db, f"SELECT count(*) FROM information_schema.tables WHERE {user_schemas}"
    )
    columns = await live_env.fetch(
        db, f"SELECT count(*) FROM information_schema.columns WHERE {user_schemas}"
    )
    foreign = await live_env.fetch(
        db, "SELECT count(*) FROM pg_constraint AS c, unnest(c.conkey) WHERE c.contype = 'f'"
    )
    assert summary["tables"] == tables[0][0]
    assert summary["columns"] == columns[0][0]  # no column dropped on the way
    assert summary["foreign_keys"] == foreign[0][0] > 0

    table = await (
        await api.get(
            "/api/v1/metadata/datasources/ent/schemas/sales/tables/orders", headers=auth(tenant)
        )
    ).json()
    by_name = {c["name"]: c for c in table["columns"]}
    assert by_name["order_id"]["primary_key"] is True
    assert by_name["customer_id"]["references"] == {
        "schema": "sales",
        "table": "customers",
        "column": "customer_id",
    }

    refreshed = await api.post(
        "/api/v1/metadata/datasources/ent/stats/refresh", headers=auth(tenant)
    )
    assert refreshed.status == 200, await refreshed.json()
    stats = await (
        await api.get("/api/v1/metadata/datasources/ent/stats", headers=auth(tenant))
    ).json()
    orders = next(t for t in stats["tables"] if (t["schema"], t["table"]) == ("sales", "orders"))
    assert orders["row_count"] == await live_env.scalar(db, "SELECT count(*) FROM sales.orders")
    shipped = next(c for c in orders["columns"] if c["name"] == "shipped_at")
    low = await live_env.scalar(db, "SELECT min(shipped_at) FROM sales.orders")
    # ISO 8601, the same instant as the source's.
    assert datetime.fromisoformat(shipped["min"]) == low
