"""The PostgreSQL guard against a real PostgreSQL: the core's guard contract, and what only
a shared database shows — gateways in other processes sharing one limit and one key, a
database that goes away and comes back, rows that stop counting."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import pytest
from weaver_pg_guard.plugin import DSN_VARIABLE, PLUGIN_NAME
from weaver_pg_guard.schema import SCHEMA

from weaver.app import create_app
from weaver.auth import mint_token
from weaver.errors import GuardUnavailable, RateLimited
from weaver.host import Host
from weaver.ratelimit import caller_key
from weaver.settings import Settings
from weaver.testing import GuardContract, free_port, make_settings, running_host
from weaver.testing.guard import claim, guard_request, new_principal, stored, write
from weaver.testing.harness import wait_until_live
from weaver.testing.relay import Relay

from .conftest import with_address

pytestmark = [
    pytest.mark.live,
    pytest.mark.skipif(
        os.environ.get("WEAVER_RUN_E2E") != "1", reason="live suite: set WEAVER_RUN_E2E=1"
    ),
]

FLAG = {"WEAVER_PG_GUARD_MODE": "true"}


class TestPgGuard(GuardContract):
    plugin = PLUGIN_NAME
    # Rate limits and Idempotency-Keys; query slots stay with the embedded guard.
    plugin_hooks = ("guard_request", "guard_response")

    @pytest.fixture
    def guard_overrides(self, guard_dsn: str) -> dict[str, str]:
        return {"POSTGRES_DSN": guard_dsn}

    @pytest.fixture
    async def host(self, guard_settings: Settings) -> AsyncIterator[Host]:
        async with running_host(guard_settings, FLAG) as host:
            assert (await host.check_health())[PLUGIN_NAME].status == "up"
            yield host


def guard_settings(tmp_path: Path, dsn: str, **overrides: str) -> Settings:
    return make_settings(tmp_path, POSTGRES_DSN=dsn, **overrides)


async def test_hosts_sharing_the_database_share_one_limit(tmp_path: Path, guard_dsn: str) -> None:
    settings = guard_settings(tmp_path, guard_dsn, WEAVER_RATE_LIMIT="7/3600s")
    principal = new_principal()
    async with running_host(settings, FLAG) as first, running_host(settings, FLAG) as second:
        outcomes = await asyncio.gather(
            *(gateway.guard_request(guard_request(principal)) for gateway in [first, second] * 10),
            return_exceptions=True,
        )
    assert sum(not isinstance(o, BaseException) for o in outcomes) == 7, outcomes
    assert sum(isinstance(o, RateLimited) for o in outcomes) == 13


async def test_the_dsn_variable_names_the_database(
    tmp_path: Path, guard_dsn: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(DSN_VARIABLE, guard_dsn)
    # POSTGRES_DSN points nowhere; the guard's own variable wins.
    elsewhere = with_address(guard_dsn, "127.0.0.1", free_port())
    async with running_host(guard_settings(tmp_path, elsewhere), FLAG) as host:
        assert (await host.check_health())[PLUGIN_NAME].status == "up"
        await host.guard_request(guard_request(new_principal()))


async def test_the_sweep_deletes_rows_that_no_longer_count(tmp_path: Path, guard_dsn: str) -> None:
    # One request a second: the caller's TAT is in the past a second after its request.
    settings = guard_settings(tmp_path, guard_dsn, WEAVER_RATE_LIMIT="1/1s")
    principal = new_principal()
    caller = caller_key(principal)
    async with running_host(settings, FLAG) as host:
        request = write(principal, "key-1")
        await host.guard_response(request, await claim(host, request), stored())
        assert await rows_of(guard_dsn, caller) == (1, 1)

        await asyncio.sleep(host.context.settings.idempotency_ttl_seconds + 1)
        await host.context.state[PLUGIN_NAME].sweep()
        assert await rows_of(guard_dsn, caller) == (0, 0)


async def rows_of(dsn: str, caller: str) -> tuple[int, int]:
    connection = await asyncpg.connect(dsn)
    try:
        rates = await connection.fetchval(
            f"SELECT count(*) FROM {SCHEMA}.rate_limits WHERE caller = $1", caller
        )
        records = await connection.fetchval(
            f"SELECT count(*) FROM {SCHEMA}.idempotency_records WHERE caller = $1", caller
        )
    finally:
        await connection.close()
    return int(rates), int(records)


@pytest.mark.parametrize("fail_open", [False, True], ids=["fail-closed", "fail-open"])
async def test_database_outage_and_recovery(
    aiohttp_client: Any, tmp_path: Path, guard_dsn: str, relay: Relay, fail_open: bool
) -> None:
    settings = guard_settings(
        tmp_path,
        with_address(guard_dsn, "127.0.0.1", relay.port),
        WEAVER_REQUEST_GUARD_FAIL_OPEN=str(fail_open).lower(),
    )
    client = await aiohttp_client(create_app(settings, environ=FLAG))
    auth = {"Authorization": f"Bearer {token(settings)}"}
    assert (await client.get("/api/datasources", headers=auth)).status == 200

    await relay.cut()
    during = [await client.get("/api/datasources", headers=auth) for _ in range(3)]
    if fail_open:
        assert [r.status for r in during] == [200] * 3
    else:
        assert [r.status for r in during] == [503] * 3
        problem = await during[0].json()
        assert problem["type"].endswith("/guard-unavailable")
        assert "PostgreSQL" in problem["detail"] and "127.0.0.1" not in problem["detail"]
    ready = await client.get("/health/ready")
    assert ready.status == 503
    assert (await ready.json())["checks"][PLUGIN_NAME]["status"] == "down"

    await relay.start()
    after = [await client.get("/api/datasources", headers=auth) for _ in range(3)]
    assert [r.status for r in after] == [200] * 3
    assert all("RateLimit" in r.headers for r in after)
    ready = await client.get("/health/ready")
    assert (await ready.json())["checks"][PLUGIN_NAME]["status"] == "up"


def token(settings: Settings, tenant: str | None = None) -> str:
    tenant = tenant or new_principal().tenant_id
    return mint_token(settings, tenant_id=tenant, subject="alice", roles=["editor"])


# --- several gateway processes ----------------------------------------------------------

GATEWAYS = 2
PROCESS_LIMIT = 40
JWT_SECRET = "pg-guard-test-secret-0123456789abcdef01"


@pytest.fixture
def gateways(tmp_path: Path, guard_dsn: str) -> Iterator[list[str]]:
    """Two `weaver serve` processes guarded by the same database."""
    sqlite_root = tmp_path / "sqlite"
    sqlite_root.mkdir()
    (sqlite_root / "demo.db").touch()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WEAVER_", "JWT_"))}
    env.update(
        APP_ENV="test",
        JWT_SECRET_KEY=JWT_SECRET,
        ENCRYPTION_KEY=JWT_SECRET,
        WEAVER_SQLITE_ROOT=str(sqlite_root),
        WEAVER_PG_GUARD_MODE="true",
        POSTGRES_DSN=guard_dsn,
        WEAVER_RATE_LIMIT=f"{PROCESS_LIMIT}/3600s",
    )
    servers, urls = [], []
    for n in range(GATEWAYS):
        port = free_port()
        env["WEAVER_DATA_DIR"] = str(tmp_path / f"data-{n}")
        servers.append(
            subprocess.Popen(
                [sys.executable, "-m", "weaver", "serve", "--port", str(port)],
                env=dict(env),
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        )
        urls.append(f"http://127.0.0.1:{port}")
    try:
        for url, server in zip(urls, servers, strict=True):
            wait_until_live(f"{url}/health/live", server, seconds=60)
        yield urls
    finally:
        for server in servers:
            server.terminate()
        for server in servers:
            server.wait(timeout=20)


async def spread(
    urls: list[str], count: int, method: str, headers: dict[str, str], json: Any = None
) -> list[tuple[int, dict[str, str], Any]]:
    async def one(n: int) -> tuple[int, dict[str, str], Any]:
        url = urls[n % len(urls)] + "/api/datasources"
        async with session.request(method, url, headers=headers, json=json) as answer:
            return answer.status, dict(answer.headers), await answer.json(content_type=None)

    async with aiohttp.ClientSession() as session:
        return await asyncio.gather(*(one(n) for n in range(count)))


async def test_the_limit_holds_exactly_across_processes(gateways: list[str]) -> None:
    settings = Settings.from_env_names({"JWT_SECRET_KEY": JWT_SECRET})
    auth = {"Authorization": f"Bearer {token(settings)}"}
    replies = await spread(gateways, PROCESS_LIMIT + 25, "GET", auth)
    assert sorted(status for status, _, _ in replies) == [200] * PROCESS_LIMIT + [429] * 25
    refused = next(headers for status, headers, _ in replies if status == 429)
    assert int(refused["Retry-After"]) >= 1
    assert refused["RateLimit-Policy"] == f'"default";q={PROCESS_LIMIT};w=3600'


async def test_one_key_creates_once_across_processes(gateways: list[str]) -> None:
    settings = Settings.from_env_names({"JWT_SECRET_KEY": JWT_SECRET})
    headers = {"Authorization": f"Bearer {token(settings)}", "Idempotency-Key": "create-demo"}
    body = {"name": "demo", "engine": "sqlite", "connection": {"path": "demo.db"}}
    replies = await spread(gateways, 12, "POST", headers, json=body)
    created = [r for r in replies if r[0] == 201 and "Idempotent-Replayed" not in r[1]]
    replayed = [r for r in replies if r[1].get("Idempotent-Replayed") == "true"]
    in_flight = [r for r in replies if r[0] == 409 and "in progress" in r[2]["detail"]]
    assert len(created) == 1, replies
    assert len(created) + len(replayed) + len(in_flight) == 12, replies
    assert all(r[0] == 201 and r[2] == created[0][2] for r in replayed)


async def test_an_unreachable_database_is_unavailable_not_a_stall(
    tmp_path: Path, guard_dsn: str
) -> None:
    closed = with_address(guard_dsn, "127.0.0.1", free_port())
    async with running_host(guard_settings(tmp_path, closed), FLAG) as host:
        with pytest.raises(GuardUnavailable):
            await host.guard_request(guard_request(new_principal()))
