"""The Redis guard against a real Redis: the guard contract, and what only Redis has —
round trips, keys that expire by themselves, scripts the server forgot, a limit shared by
several gateways, and a server that goes away and comes back."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from redis.asyncio import Redis
from weaver_redis_guard.plugin import PLUGIN_NAME, RedisGuard
from weaver_redis_guard.testing import RedisServer

from weaver.errors import GuardUnavailable, RateLimited
from weaver.host import Host
from weaver.settings import Settings
from weaver.testing.guard import GuardContract, claim, guard_request, new_principal, stored, write
from weaver.testing.harness import make_settings, running_host

pytestmark = [
    pytest.mark.live,
    pytest.mark.skipif(
        os.environ.get("WEAVER_RUN_E2E") != "1", reason="live suite: set WEAVER_RUN_E2E=1"
    ),
]


def redis_settings(tmp_path: Path, url: str, **overrides: str) -> Settings:
    return make_settings(
        tmp_path, WEAVER_REQUEST_GUARD_REDIS_MODE="true", REDIS_URL=url, **overrides
    )


class TestRedisGuard(GuardContract):
    @pytest.fixture
    def guard_overrides(self, redis_url: str) -> dict[str, str]:
        return {"WEAVER_REQUEST_GUARD_REDIS_MODE": "true", "REDIS_URL": redis_url}

    @pytest.fixture
    async def host(self, guard_settings: Settings, key_prefix: str) -> AsyncIterator[Host]:
        async with running_host(guard_settings) as host:
            assert host.owner_of("guard_request") == PLUGIN_NAME
            assert (await host.check_health())[PLUGIN_NAME].status == "up"
            yield host


@pytest.fixture
async def host(tmp_path: Path, redis_url: str, key_prefix: str) -> AsyncIterator[Host]:
    async with running_host(redis_settings(tmp_path, redis_url)) as host:
        yield host


@pytest.fixture
def round_trips(host: Host, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every command the guard sends to Redis, by name, from now on."""
    client = host.context.state[PLUGIN_NAME].redis
    sent: list[str] = []
    execute = client.execute_command

    def counting(*args: Any, **options: Any) -> Awaitable[Any]:
        sent.append(str(args[0]))
        return execute(*args, **options)  # type: ignore[no-any-return]

    monkeypatch.setattr(client, "execute_command", counting)
    return sent


async def write_cycle(host: Host, key: str) -> None:
    request = write(new_principal(), key)
    await host.guard_response(request, await claim(host, request), stored())


async def test_a_read_costs_one_round_trip(host: Host, round_trips: list[str]) -> None:
    await host.guard_request(guard_request(new_principal()))  # loads the script
    round_trips.clear()
    await host.guard_request(guard_request(new_principal()))
    assert round_trips == ["EVALSHA"]


async def test_an_idempotent_write_costs_two(host: Host, round_trips: list[str]) -> None:
    await write_cycle(host, "warm-up")
    round_trips.clear()
    await write_cycle(host, "key-1")
    assert round_trips == ["EVALSHA", "EVALSHA"]


async def test_every_key_expires_by_itself(host: Host, redis_url: str, key_prefix: str) -> None:
    await host.guard_request(guard_request(new_principal()))
    await write_cycle(host, "answered")
    await claim(host, write(new_principal(), "in-flight"))
    client = Redis.from_url(redis_url)
    try:
        keys = [key async for key in client.scan_iter(match=f"{key_prefix}*")]
        assert len(keys) == 5  # three callers: a TAT each, and two idempotency records
        for key in keys:
            assert await client.pttl(key) > 0, key
    finally:
        await client.aclose()


async def test_scripts_the_server_forgot_are_loaded_again(host: Host, redis_url: str) -> None:
    await write_cycle(host, "before")
    client = Redis.from_url(redis_url)
    try:
        await client.script_flush()
    finally:
        await client.aclose()
    await write_cycle(host, "after")


async def test_gateways_sharing_redis_share_one_limit(
    tmp_path: Path, redis_url: str, key_prefix: str
) -> None:
    settings = redis_settings(tmp_path, redis_url, WEAVER_RATE_LIMIT="7/3600s")
    principal = new_principal()
    async with running_host(settings) as first, running_host(settings) as second:
        outcomes = await asyncio.gather(
            *(gateway.guard_request(guard_request(principal)) for gateway in [first, second] * 10),
            return_exceptions=True,
        )
    assert sum(not isinstance(o, BaseException) for o in outcomes) == 7
    assert sum(isinstance(o, RateLimited) for o in outcomes) == 13


async def test_service_resumes_when_redis_returns(
    tmp_path: Path, private_redis: RedisServer
) -> None:
    async with running_host(redis_settings(tmp_path, private_redis.url)) as host:
        await host.guard_request(guard_request(new_principal()))

        private_redis.stop()
        with pytest.raises(GuardUnavailable):
            await host.guard_request(guard_request(new_principal()))
        assert (await host.check_health())[PLUGIN_NAME].status == "down"

        private_redis.start()
        await host.guard_request(guard_request(new_principal()))
        await write_cycle(host, "after-restart")
        assert (await host.check_health())[PLUGIN_NAME].status == "up"


async def test_url_password_and_db_reach_the_server(
    tmp_path: Path, start_redis: Callable[..., RedisServer]
) -> None:
    base = f"127.0.0.1:{start_redis('--requirepass', 's3cret').port}"
    async with running_host(redis_settings(tmp_path, f"redis://:wrong@{base}/3")) as host:
        with pytest.raises(GuardUnavailable):
            await host.guard_request(guard_request(new_principal()))

    async with running_host(redis_settings(tmp_path, f"redis://:s3cret@{base}/3")) as host:
        await host.guard_request(guard_request(new_principal()))
        guard: RedisGuard = host.context.state[PLUGIN_NAME]
        assert await _dbsize(guard, 3) == 1
        assert await _dbsize(guard, 0) == 0


async def _dbsize(guard: RedisGuard, db: int) -> int:
    kwargs = guard.redis.connection_pool.connection_kwargs
    client = Redis(host=kwargs["host"], port=kwargs["port"], password=kwargs["password"], db=db)
    try:
        return int(await client.dbsize())
    finally:
        await client.aclose()
