"""Queries as resources through real gateway processes, in front of the real MindsDB, with
their records in PostgreSQL and their slots in Redis: stopped at the source however they
are stopped, paged from another process, kept in history, private to their tenant, and
failed when the process running them dies.

Runs only with ``WEAVER_RUN_E2E=1`` and the services' environment. The statements run on a
database of this module's own (see `create_scratch_database`): ``ticks`` makes a 30-second
statement, ``wide`` has the rows to page through. "Gone from the source" is read from that
database's ``pg_stat_activity``.
"""

from __future__ import annotations

import asyncio
import secrets
import signal
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest

pytest.importorskip("weaver_mindsdb", reason="the first-party plugins are not installed")

from weaver_mindsdb.testing import (
    LiveEnv,
    busy_backends,
    create_scratch_database,
    drop_scratch_database,
    live,
    live_env_from_environment,
    wait_for,
)

from tests.serving import Serving, clean_environment
from weaver.settings import Settings
from weaver.testing import free_port
from weaver.testing.harness import wait_until_live
from weaver.testing.live import required_environment, tenant_headers

pytestmark = live

JWT_SECRET = "lifecycle-live-jwt-secret-0123456789abcdef"
ENCRYPTION_KEY = "lifecycle-live-encryption-key-0123456789"
SERVICES = ("POSTGRES_DSN", "REDIS_URL")
PAGED_ROWS = 50_000
# The deadline: the statement is gone from the source within this.
GONE_SECONDS = 2.0
SLOW = "SELECT id, pg_sleep(0.1) AS s FROM lab.public.ticks"  # 300 rows: 30 s
LEASE_SECONDS = 2


@dataclass
class Gateway:
    url: str
    serving: Serving
    workdir: Path


@dataclass
class Lab:
    env: LiveEnv
    database: str
    gateways: list[Gateway]
    tenant: str
    other_tenant: str

    def headers(self, tenant: str | None = None) -> dict[str, str]:
        keys = Settings.from_env_names({"JWT_SECRET_KEY": JWT_SECRET})
        return tenant_headers(keys, tenant or self.tenant)

    async def gone_from_source(self) -> bool:
        async def idle() -> bool:
            return not await busy_backends(self.env, self.database)

        return await wait_for(idle, GONE_SECONDS, interval=0.01)

    async def running_at_source(self, request: asyncio.Task[Any] | None = None) -> None:
        async def active() -> bool:
            if request is not None and request.done():
                raise AssertionError(f"the request ended first: {request.result()}")
            return any(r["state"] == "active" for r in await busy_backends(self.env, self.database))

        assert await wait_for(active, 30), "the statement never reached the source"

    async def stop_leftovers(self) -> None:
        """What a dead gateway left running on the source, stopped for the next test."""
        await self.env.fetch(
            self.env.database,
            "SELECT pg_cancel_backend(pid) FROM pg_stat_activity "
            "WHERE datname = $1 AND pid <> pg_backend_pid() AND state <> 'idle'",
            self.database,
        )


def gateway_environment(workdir: Path, env: LiveEnv) -> dict[str, str]:
    services = required_environment(SERVICES)
    variables = clean_environment(
        APP_ENV="test",
        JWT_SECRET_KEY=JWT_SECRET,
        ENCRYPTION_KEY=ENCRYPTION_KEY,
        # One registry between the processes; query records and results in PostgreSQL.
        WEAVER_DATA_DIR=str(workdir / "data"),
        WEAVER_PLUGINS_STRICT="true",
        WEAVER_EXTERNAL_MODE="true",
        MINDSDB_URL=env.mindsdb_url,
        WEAVER_METADATA_PG_MODE="true",
        POSTGRES_DSN=services["POSTGRES_DSN"],
        WEAVER_REQUEST_GUARD_REDIS_MODE="true",
        REDIS_URL=services["REDIS_URL"],
        WEAVER_QUERY_LEASE_SECONDS=str(LEASE_SECONDS),
        # Room for a synchronous query that would run 30 s, to stop it on the way.
        MINDSDB_TIMEOUT="60",
        WEAVER_RATE_LIMIT="100000/60s",
    )
    if env.mindsdb_user:
        variables.update(MINDSDB_USER=env.mindsdb_user, MINDSDB_PASSWORD=env.mindsdb_password)
    return variables


def start_gateway(workdir: Path, env: LiveEnv, n: int) -> Gateway:
    port = free_port()
    serving = Serving(
        port, gateway_environment(workdir, env), workdir / f"gateway-{n}.log", "--host", "127.0.0.1"
    )
    url = f"http://127.0.0.1:{port}"
    wait_until_live(f"{url}/health/live", serving, seconds=60)
    return Gateway(url, serving, workdir)


@pytest.fixture(scope="module")
def lab_database() -> Iterator[tuple[LiveEnv, str]]:
    env = live_env_from_environment()
    name = f"weaver_lifecycle_{secrets.token_hex(4)}"
    asyncio.run(create_scratch_database(env, name, rows=PAGED_ROWS))
    try:
        yield env, name
    finally:
        asyncio.run(drop_scratch_database(env, name))


@pytest.fixture(scope="module")
def gateways(
    lab_database: tuple[LiveEnv, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[list[Gateway]]:
    env, _ = lab_database
    workdir = tmp_path_factory.mktemp("lifecycle")
    started = [start_gateway(workdir, env, n) for n in range(2)]
    yield started
    for gateway in started:
        if gateway.serving.poll() is None:
            gateway.serving.stop()


@pytest.fixture
async def lab(lab_database: tuple[LiveEnv, str], gateways: list[Gateway]) -> AsyncIterator[Lab]:
    env, database = lab_database
    run = secrets.token_hex(4)
    lab = Lab(env, database, gateways, f"life-a-{run}", f"life-b-{run}")
    async with aiohttp.ClientSession() as session:
        response = await session.post(
            f"{gateways[0].url}/api/datasources",
            json={"name": "lab", "engine": "postgres", "connection": env.connection(database)},
            headers=lab.headers(),
        )
        assert response.status == 201, await response.text()
    yield lab
    await lab.stop_leftovers()
    async with aiohttp.ClientSession() as session:
        await session.delete(f"{gateways[0].url}/api/datasources/lab", headers=lab.headers())


@dataclass
class Reply:
    status: int
    body: Any
    headers: dict[str, str]


async def request(method: str, url: str, headers: dict[str, str], **kwargs: Any) -> Reply:
    async with (
        aiohttp.ClientSession() as session,
        session.request(method, url, headers=headers, **kwargs) as response,
    ):
        body = await response.json(content_type=None) if response.content_length != 0 else None
        return Reply(response.status, body, dict(response.headers))


async def call(method: str, url: str, headers: dict[str, str], **kwargs: Any) -> tuple[int, Any]:
    reply = await request(method, url, headers, **kwargs)
    return reply.status, reply.body


async def submit_async(lab: Lab, sql: str, **options: Any) -> str:
    status, body = await call(
        "POST",
        f"{lab.gateways[0].url}/api/query",
        {**lab.headers(), "Prefer": "respond-async"},
        json={"sql": sql, **options},
    )
    assert status == 202, body
    return str(body["query_id"])


async def record(lab: Lab, query_id: str, gateway: int = 1) -> dict[str, Any]:
    status, body = await call(
        "GET", f"{lab.gateways[gateway].url}/api/query/{query_id}", lab.headers()
    )
    assert status == 200, body
    return dict(body)


async def settled(lab: Lab, query_id: str, seconds: float = 60) -> dict[str, Any]:
    deadline = time.monotonic() + seconds
    while True:
        body = await record(lab, query_id)
        if body["status"] not in ("queued", "running") or time.monotonic() > deadline:
            return body
        await asyncio.sleep(0.1)


async def history_status(lab: Lab, query_id: str) -> str:
    status, body = await call("GET", f"{lab.gateways[1].url}/api/query/history", lab.headers())
    assert status == 200, body
    statuses = {item["query_id"]: item["status"] for item in body["items"]}
    assert query_id in statuses, "the query is not in its tenant's history"
    return str(statuses[query_id])


# --- stopped at the source ------------------------------------------------------------------


async def test_delete_from_another_process_stops_the_statement_at_the_source(lab: Lab) -> None:
    query_id = await submit_async(lab, SLOW, timeout_seconds=120)
    await lab.running_at_source()
    await asyncio.sleep(1)
    status, _ = await call("DELETE", f"{lab.gateways[1].url}/api/query/{query_id}", lab.headers())
    assert status == 204
    assert await lab.gone_from_source(), "the statement still runs on the source"
    assert (await settled(lab, query_id))["status"] == "cancelled"
    assert await history_status(lab, query_id) == "cancelled"


async def test_a_client_that_goes_away_stops_the_statement_at_the_source(lab: Lab) -> None:
    async def run() -> tuple[int, Any]:
        return await call(
            "POST",
            f"{lab.gateways[0].url}/api/query",
            lab.headers(),
            json={"sql": SLOW, "timeout_seconds": 60},
        )

    request = asyncio.create_task(run())
    await lab.running_at_source(request)
    await asyncio.sleep(1)
    request.cancel()
    assert await lab.gone_from_source(), "the statement still runs on the source"

    async def recorded_cancelled() -> bool:
        status, body = await call(
            "GET", f"{lab.gateways[1].url}/api/query/history?status=cancelled", lab.headers()
        )
        assert status == 200, body
        return [item["sql"] for item in body["items"]] == [SLOW]

    # The record says so once the statement has stopped: a moment after the source.
    assert await wait_for(recorded_cancelled, 10), "history never shows the query cancelled"


async def test_a_timeout_stops_the_statement_at_the_source(lab: Lab) -> None:
    reply = await request(
        "POST",
        f"{lab.gateways[0].url}/api/query",
        lab.headers(),
        json={"sql": SLOW, "timeout_seconds": 1},
    )
    assert reply.status == 504, reply.body
    assert await lab.gone_from_source(), "the statement still runs on the source"
    failed = await record(lab, reply.headers["X-Query-Id"])
    assert failed["status"] == "failed"
    assert failed["error"]["status"] == 504
    assert await history_status(lab, failed["query_id"]) == "failed"


# --- results, history, tenants ----------------------------------------------------------------


async def test_async_results_paged_from_another_process_are_the_synchronous_rows(lab: Lab) -> None:
    sql = "SELECT id, qty, label, amount, created, note FROM lab.public.wide ORDER BY id"
    status, synchronous = await call(
        "POST",
        f"{lab.gateways[0].url}/api/query",
        lab.headers(),
        json={"sql": sql, "limit": PAGED_ROWS},
    )
    assert status == 200, synchronous
    assert synchronous["row_count"] == PAGED_ROWS

    query_id = await submit_async(lab, sql, limit=PAGED_ROWS)
    finished = await settled(lab, query_id)
    assert finished["status"] == "succeeded", finished
    assert finished["row_count"] == PAGED_ROWS

    rows: list[Any] = []
    cursor = ""
    pages = 0
    while True:
        status, page = await call(
            "GET",
            f"{lab.gateways[1].url}/api/query/{query_id}/results",
            lab.headers(),
            params={"limit": "10000", **({"cursor": cursor} if cursor else {})},
        )
        assert status == 200, page
        assert page["columns"] == synchronous["columns"]
        rows.extend(page["rows"])
        pages += 1
        if not page["next_cursor"]:
            break
        cursor = page["next_cursor"]
    assert pages == PAGED_ROWS // 10000
    assert rows == synchronous["rows"]
    assert await history_status(lab, query_id) == "succeeded"


async def test_another_tenant_cannot_see_page_or_cancel_a_query(lab: Lab) -> None:
    query_id = await submit_async(lab, "SELECT id FROM lab.public.ticks ORDER BY id")
    assert (await settled(lab, query_id))["status"] == "succeeded"
    stranger = lab.headers(lab.other_tenant)
    for gateway in lab.gateways:
        for method, path in (
            ("GET", f"/api/query/{query_id}"),
            ("GET", f"/api/query/{query_id}/results"),
            ("DELETE", f"/api/query/{query_id}"),
        ):
            status, body = await call(method, gateway.url + path, stranger)
            assert status == 404, (method, path, body)
    # Still there for its owner: the stranger's DELETE discarded nothing.
    status, page = await call(
        "GET", f"{lab.gateways[1].url}/api/query/{query_id}/results", lab.headers()
    )
    assert status == 200 and len(page["rows"]) == 300


# --- a process that dies ------------------------------------------------------------------------


async def test_a_query_of_a_process_that_dies_ends_failed_and_the_process_comes_back(
    lab: Lab,
) -> None:
    query_id = await submit_async(lab, SLOW, timeout_seconds=120)
    await lab.running_at_source()
    dying = lab.gateways[0]
    dying.serving.process.send_signal(signal.SIGKILL)
    dying.serving.process.wait()
    # The other process's sweep finds the lapsed lease.
    finished = await settled(lab, query_id, seconds=LEASE_SECONDS * 30)
    assert finished["status"] == "failed", finished
    assert await history_status(lab, query_id) == "failed"

    # Restarted in its place, it runs queries again.
    replacement = start_gateway(dying.workdir, lab.env, 2)
    lab.gateways[0] = replacement
    status, body = await call(
        "POST",
        f"{replacement.url}/api/query",
        lab.headers(),
        json={"sql": "SELECT count(*) AS n FROM lab.public.ticks"},
    )
    assert status == 200, body
    assert body["rows"] == [[300]]
