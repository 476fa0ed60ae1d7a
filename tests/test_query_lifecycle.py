"""Queries as resources on the embedded defaults: ids, no statement on the event loop,
cancellation (DELETE, a client gone, a timeout), async results, history, concurrency."""

from __future__ import annotations

import asyncio
import sqlite3
from typing import Any

import aiohttp
import pytest

from tests.conftest import TENANT_B, assert_problem
from weaver.builtin.store.database import DB_FILE
from weaver.keys import HOST, QUERIES
from weaver.queries import service as service_module
from weaver.queries.service import QueryService

# Counting to 10^12 takes hours: it ends only when something stops it.
RUNAWAY = (
    "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 1000000000000)"
    " SELECT count(*) FROM n CROSS JOIN shop.customers"
)
# One SQLite VM step of seconds: no progress handler interrupts it.
ONE_LONG_STEP = "SELECT length(printf('%.*c', 500000000, 'x')) AS n FROM shop.customers LIMIT 1"
ASYNC = {"Prefer": "respond-async"}


async def post(client: Any, headers: dict[str, str], **body: Any) -> Any:
    return await client.post("/api/query", json=body, headers=headers)


async def status_of(client: Any, headers: dict[str, str], query_id: str) -> dict[str, Any]:
    response = await client.get(f"/api/query/{query_id}", headers=headers)
    assert response.status == 200, await response.text()
    body: dict[str, Any] = await response.json()
    return body


async def until(client: Any, headers: dict[str, str], query_id: str, *statuses: str) -> Any:
    """The query's record once it is in one of ``statuses`` (polled, as a client does)."""
    for _ in range(600):
        body = await status_of(client, headers, query_id)
        if body["status"] in statuses:
            return body
        await asyncio.sleep(0.05)
    raise AssertionError(f"query {query_id} stayed {body['status']}")


async def running_async(client: Any, headers: dict[str, str]) -> str:
    """The id of a runaway async query, once it runs."""
    accepted = await post(client, {**headers, **ASYNC}, sql=RUNAWAY, timeout_seconds=30)
    query_id: str = (await accepted.json())["query_id"]
    await until(client, headers, query_id, "running")
    return query_id


async def running_id(client: Any) -> str:
    """The id of the one query the app runs now (a synchronous one has no id until its
    answer, so a test finds it as a client would find it in history)."""
    service: QueryService = client.app[QUERIES]
    for _ in range(400):
        if service._local:
            return next(iter(service._local))
        await asyncio.sleep(0.01)
    raise AssertionError("no query started")


# --- ids and records -----------------------------------------------------------


async def test_every_query_has_an_id_and_a_record(client: Any, auth: Any, shop: str) -> None:
    response = await post(client, auth(), sql="SELECT id FROM shop.customers ORDER BY id")
    assert response.status == 200
    body = await response.json()
    assert body["query_id"] == response.headers["X-Query-Id"]
    record = await status_of(client, auth(), body["query_id"])
    assert record["status"] == "succeeded"
    assert (record["row_count"], record["truncated"]) == (3, False)
    assert record["sql"] == "SELECT id FROM shop.customers ORDER BY id"
    assert record["datasources"] == ["shop"]
    assert (record["sub"], record["via"], record["mode"]) == ("alice", "api", "sync")
    assert record["bytes"] == len(await response.read())
    assert record["started_at"] and record["finished_at"]


async def test_a_refused_query_is_recorded_with_its_problem(
    client: Any, auth: Any, shop: str
) -> None:
    response = await post(client, auth(), sql="DELETE FROM shop.orders")
    assert response.status == 400
    record = await status_of(client, auth(), response.headers["X-Query-Id"])
    assert record["status"] == "failed"
    assert record["error"]["status"] == 400 and "only SELECT" in record["error"]["detail"]


async def test_unknown_tables_and_columns_are_the_callers_mistake(
    client: Any, auth: Any, shop: str
) -> None:
    for sql in ("SELECT * FROM shop.nope", "SELECT nope FROM shop.customers"):
        response = await post(client, auth(), sql=sql)
        body = await response.json()
        assert_problem(body, 400)
        assert body["type"].endswith("query-failed")
        assert "w_" not in body["detail"]


async def test_result_columns_name_no_internal_name(client: Any, auth: Any, shop: str) -> None:
    response = await post(client, auth(), sql="SELECT count(shop.orders.id) FROM shop.orders")
    (column,) = (await response.json())["columns"]
    assert "w_" not in column["name"] and "shop" in column["name"]


# --- nothing on the event loop -----------------------------------------------------------


async def test_one_long_vm_step_does_not_hold_up_other_requests(
    client: Any, auth: Any, shop: str
) -> None:
    heavy = asyncio.create_task(post(client, auth(), sql=ONE_LONG_STEP, timeout_seconds=1))
    await running_id(client)
    live = await client.get("/health/live")
    # The loop answered while the statement still ran on an engine thread.
    assert live.status == 200 and not heavy.done()
    response = await heavy
    assert response.status in (200, 504)


# --- cancellation -----------------------------------------------------------


async def test_delete_cancels_a_synchronous_query_and_its_request_answers_409(
    client: Any, auth: Any, shop: str
) -> None:
    waiting = asyncio.create_task(post(client, auth(), sql=RUNAWAY, timeout_seconds=10))
    query_id = await running_id(client)
    assert (await client.delete(f"/api/query/{query_id}", headers=auth())).status == 204
    response = await waiting
    body = await response.json()
    assert_problem(body, 409)
    assert body["type"].endswith("query-cancelled")
    record = await until(client, auth(), query_id, "cancelled")
    assert record["error"]["status"] == 409
    # The statement was interrupted, not left running on an engine thread.
    engine = client.app[HOST].pm.get_plugin("embedded_engine")
    assert query_id not in engine.runs


async def test_a_query_whose_end_is_being_recorded_is_still_found(
    client: Any, auth: Any, shop: str, settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A synchronous query is first written when it ends (it is announced only if it runs
    # long): while that write waits on the store, this process must still answer for it.
    monkeypatch.setattr(service_module, "ANNOUNCE_AFTER_SECONDS", 60)
    waiting = asyncio.create_task(post(client, auth(), sql=RUNAWAY, timeout_seconds=10))
    query_id = await running_id(client)
    # Another writer holds the store's lock, as another gateway process may.
    other = sqlite3.connect(settings.data_dir / DB_FILE, isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")
        assert (await client.delete(f"/api/query/{query_id}", headers=auth())).status == 204
        # The statement stops within milliseconds; its end is then recorded, and that
        # write waits for the lock (for up to the store's 5 s busy timeout).
        for _ in range(25):
            record = await status_of(client, auth(), query_id)
            assert record["status"] in ("running", "cancelled")
            await asyncio.sleep(0.02)
        assert query_id not in client.app[HOST].pm.get_plugin("embedded_engine").runs
        assert not waiting.done(), "the end was recorded without waiting for the lock"
    finally:
        other.execute("ROLLBACK")
        other.close()
    assert (await waiting).status == 409
    assert (await until(client, auth(), query_id, "cancelled"))["status"] == "cancelled"


async def test_a_client_that_goes_away_cancels_its_query(client: Any, auth: Any, shop: str) -> None:
    url = client.make_url("/api/query")
    timeout = aiohttp.ClientTimeout(total=0.5)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        with pytest.raises(asyncio.TimeoutError):
            await session.post(url, json={"sql": RUNAWAY, "timeout_seconds": 10}, headers=auth())
    query_id = (await client.app[HOST].list_queries("tenant-a", None, None, _page()))[0].query_id
    record = await until(client, auth(), query_id, "cancelled", "failed")
    assert record["status"] == "cancelled", record["error"]


async def test_a_query_that_runs_out_of_time_fails_with_the_504(
    client: Any, auth: Any, shop: str
) -> None:
    response = await post(client, auth(), sql=RUNAWAY, timeout_seconds=0.5)
    assert_problem(await response.json(), 504)
    record = await status_of(client, auth(), response.headers["X-Query-Id"])
    assert record["status"] == "failed" and record["error"]["status"] == 504


async def test_another_tenant_and_a_peer_cannot_see_or_cancel_a_query(
    client: Any, auth: Any, shop: str
) -> None:
    response = await post(client, auth(), sql="SELECT 1 AS x FROM shop.customers", **{})
    query_id = response.headers["X-Query-Id"]
    peer = auth(sub="bob", roles=["editor"])
    for headers in (auth(TENANT_B), peer):
        for method, path in (
            ("GET", f"/api/query/{query_id}"),
            ("GET", f"/api/query/{query_id}/results"),
            ("DELETE", f"/api/query/{query_id}"),
        ):
            answer = await client.request(method, path, headers=headers)
            assert answer.status == 404, (method, path, await answer.text())
    admin = auth(sub="root", roles=["admin"])
    assert (await status_of(client, admin, query_id))["sub"] == "alice"


# --- async queries -----------------------------------------------------------


async def test_an_async_query_answers_202_and_its_result_pages_like_the_sync_one(
    client: Any, auth: Any, shop: str
) -> None:
    sql = (
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 2500)"
        " SELECT i, i * 2 AS twice FROM n CROSS JOIN shop.customers WHERE customers.id = 1"
    )
    accepted = await client.post(
        "/api/query", json={"sql": sql, "limit": 5000}, headers={**auth(), **ASYNC}
    )
    assert accepted.status == 202
    body = await accepted.json()
    query_id = body["query_id"]
    assert accepted.headers["Location"] == f"/api/query/{query_id}"
    assert body["status"] == "queued"
    record = await until(client, auth(), query_id, "succeeded", "failed")
    assert record["status"] == "succeeded" and record["row_count"] == 2500
    assert record["mode"] == "async"

    rows: list[list[Any]] = []
    cursor = None
    while True:
        params = {"limit": "1000", **({"cursor": cursor} if cursor else {})}
        page = await client.get(f"/api/query/{query_id}/results", params=params, headers=auth())
        assert page.status == 200, await page.text()
        content = await page.json()
        assert [c["name"] for c in content["columns"]] == ["i", "twice"]
        rows.extend(content["rows"])
        cursor = content["next_cursor"]
        if cursor is None:
            break
    sync = await (await post(client, auth(), sql=sql, limit=5000)).json()
    assert rows == sync["rows"] and len(rows) == 2500


async def test_results_of_a_running_query_conflict_and_of_a_sync_one_are_gone(
    client: Any, auth: Any, shop: str
) -> None:
    query_id = await running_async(client, auth())
    running = await client.get(f"/api/query/{query_id}/results", headers=auth())
    assert_problem(await running.json(), 409)
    assert (await client.delete(f"/api/query/{query_id}", headers=auth())).status == 204
    assert (await until(client, auth(), query_id, "cancelled", "failed"))["status"] == "cancelled"

    sync = await post(client, auth(), sql="SELECT 1 AS x FROM shop.customers")
    gone = await client.get(f"/api/query/{sync.headers['X-Query-Id']}/results", headers=auth())
    assert_problem(await gone.json(), 410)


async def test_a_cursor_of_another_query_is_refused(client: Any, auth: Any, shop: str) -> None:
    ids = []
    for _ in range(2):
        accepted = await client.post(
            "/api/query",
            json={"sql": "SELECT id FROM shop.customers", "limit": 10},
            headers={**auth(), **ASYNC},
        )
        ids.append((await accepted.json())["query_id"])
    for query_id in ids:
        await until(client, auth(), query_id, "succeeded")
    first = await client.get(f"/api/query/{ids[0]}/results", params={"limit": "1"}, headers=auth())
    cursor = (await first.json())["next_cursor"]
    foreign = await client.get(
        f"/api/query/{ids[1]}/results", params={"cursor": cursor}, headers=auth()
    )
    assert_problem(await foreign.json(), 400)


# --- history -----------------------------------------------------------


async def test_history_lists_the_callers_queries_newest_first(
    client: Any, auth: Any, shop: str
) -> None:
    for n in range(3):
        await post(client, auth(), sql=f"SELECT {n} AS n FROM shop.customers LIMIT 1")
    await post(client, auth(sub="bob", roles=["viewer"]), sql="SELECT 9 AS n FROM shop.orders")
    body = await (await client.get("/api/query/history", headers=auth())).json()
    assert [item["sql"][:8] for item in body["items"]][:3] == ["SELECT 2", "SELECT 1", "SELECT 0"]
    assert {item["sub"] for item in body["items"]} == {"alice"}
    paged = await (
        await client.get("/api/query/history", params={"limit": "2"}, headers=auth())
    ).json()
    assert len(paged["items"]) == 2 and paged["next_cursor"]
    rest = await (
        await client.get(
            "/api/query/history", params={"cursor": paged["next_cursor"]}, headers=auth()
        )
    ).json()
    assert rest["items"][0]["sql"].startswith("SELECT 0")
    # A viewer asks for another caller's queries: forbidden; an admin sees them.
    other = await client.get("/api/query/history", params={"sub": "bob"}, headers=auth())
    assert other.status == 403
    admin = auth(sub="root", roles=["admin"])
    everyone = await (
        await client.get("/api/query/history", params={"sub": "bob"}, headers=admin)
    ).json()
    assert [item["sub"] for item in everyone["items"]] == ["bob"]
    failed = await (
        await client.get("/api/query/history", params={"status": "failed"}, headers=auth())
    ).json()
    assert failed["items"] == []


# --- concurrency -----------------------------------------------------------


@pytest.mark.parametrize("settings_overrides", [{"WEAVER_QUERY_CONCURRENCY": "1"}])
async def test_one_more_sync_query_than_the_tenant_may_run_is_429(
    client: Any, auth: Any, shop: str
) -> None:
    first = asyncio.create_task(post(client, auth(), sql=RUNAWAY, timeout_seconds=10))
    query_id = await running_id(client)
    refused = await post(client, auth(), sql="SELECT 1 AS x FROM shop.customers")
    body = await refused.json()
    assert_problem(body, 429)
    assert body["type"].endswith("too-many-queries")
    assert int(refused.headers["Retry-After"]) >= 1
    # Another tenant has slots of its own.
    assert (await post(client, auth(TENANT_B), sql="SELECT 1 AS x")).status != 429
    # An async query waits, queued, and runs once the slot is free.
    accepted = await client.post(
        "/api/query",
        json={"sql": "SELECT 1 AS x FROM shop.customers"},
        headers={**auth(), **ASYNC},
    )
    waiting_id = (await accepted.json())["query_id"]
    await asyncio.sleep(0.5)
    assert (await status_of(client, auth(), waiting_id))["status"] == "queued"
    await client.delete(f"/api/query/{query_id}", headers=auth())
    await first
    assert (await until(client, auth(), waiting_id, "succeeded"))["row_count"] == 3


def _page() -> Any:
    from weaver.types import Page

    return Page(10)


# --- the process running a query goes away -------------------------------------------------


async def test_a_query_of_a_gateway_that_died_ends_failed(tmp_path: Any) -> None:
    """A real gateway process killed mid-query (no chance to clean up): once its lease
    lapses, any other process's sweep marks the query failed, never running forever."""
    import signal
    import sqlite3

    from tests.serving import Serving, clean_environment
    from weaver.auth import mint_token
    from weaver.testing import free_port, make_settings, running_host
    from weaver.testing.harness import wait_until_live

    data, root = tmp_path / "data", tmp_path / "sqlite"
    root.mkdir()
    with sqlite3.connect(root / "shop.db") as db:
        db.execute("CREATE TABLE customers (id INTEGER PRIMARY KEY)")
        db.execute("INSERT INTO customers VALUES (1)")
    settings = make_settings(data, WEAVER_SQLITE_ROOT=str(root), WEAVER_QUERY_LEASE_SECONDS="1")
    env = clean_environment(
        WEAVER_DATA_DIR=str(data),
        WEAVER_SQLITE_ROOT=str(root),
        JWT_SECRET_KEY=settings.jwt_secret_key,
        ENCRYPTION_KEY=settings.encryption_key,
        WEAVER_QUERY_LEASE_SECONDS="1",
    )
    port = free_port()
    gateway = Serving(port, env, tmp_path / "gateway.log")
    try:
        wait_until_live(f"http://127.0.0.1:{port}/health/live", gateway)
        token = mint_token(settings, tenant_id="acme", subject="alice", roles=["editor"])
        headers = {"Authorization": f"Bearer {token}"}
        base = f"http://127.0.0.1:{port}"
        async with aiohttp.ClientSession(base) as session:
            created = await session.post(
                "/api/datasources",
                json={"name": "shop", "engine": "sqlite", "connection": {"path": "shop.db"}},
                headers=headers,
            )
            assert created.status == 201, await created.text()
            accepted = await session.post(
                "/api/query",
                json={"sql": RUNAWAY, "timeout_seconds": 300},
                headers={**headers, **ASYNC},
            )
            query_id = (await accepted.json())["query_id"]
            for _ in range(100):
                record = await (await session.get(f"/api/query/{query_id}", headers=headers)).json()
                if record["status"] == "running":
                    break
                await asyncio.sleep(0.05)
            assert record["status"] == "running"
        gateway.process.send_signal(signal.SIGKILL)
        gateway.process.wait()
    finally:
        if gateway.poll() is None:
            gateway.stop()
    async with running_host(settings) as host:
        await asyncio.sleep(1.5)  # the dead process's lease (1 s) lapses
        from datetime import UTC, datetime, timedelta

        swept = await host.sweep_queries(datetime.now(UTC), datetime.now(UTC) - timedelta(days=1))
        assert swept.failed == 1
        record = await host.get_query("acme", query_id)
    assert record is not None and record.status == "failed"
    assert record.error is not None and record.error["type"].endswith("gateway-lost")


async def test_a_gateway_that_stops_ends_its_running_queries_failed(
    client: Any, auth: Any, shop: str
) -> None:
    query_id = await running_async(client, auth())
    host = client.app[HOST]
    await client.app[QUERIES].stop()
    record = await host.get_query("tenant-a", query_id)
    assert record is not None and record.status == "failed"
    assert record.error is not None and "stopped" in record.error["detail"]
