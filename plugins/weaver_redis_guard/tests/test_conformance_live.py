"""The Redis guard against a real Redis: the guard contract, and what only Redis has —
commands per request, shared pipelines, keys that expire by themselves, scripts the
server forgot, a limit shared by several gateways, a server that goes and comes back."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from redis.asyncio import Redis
from weaver_redis_guard.plugin import PLUGIN_NAME, RedisGuard, RedisGuardPlugin, slots_key
from weaver_redis_guard.testing import RedisServer, commands_sent

from weaver.errors import GuardUnavailable, RateLimited
from weaver.host import Host
from weaver.settings import Settings
from weaver.testing.guard import (
    GuardContract,
    claim,
    guard_request,
    new_principal,
    new_tenant,
    stored,
    write,
)
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


def guard_of(host: Host) -> RedisGuard:
    plugin = host.pm.get_plugin(PLUGIN_NAME)
    assert isinstance(plugin, RedisGuardPlugin)
    return plugin.guard


class TestRedisGuard(GuardContract):
    plugin = PLUGIN_NAME

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


async def write_cycle(host: Host, key: str) -> None:
    request = write(new_principal(), key)
    await host.guard_response(request, await claim(host, request), stored())


def names(commands: list[str]) -> list[str]:
    return [command.split()[0].upper() for command in commands]


async def test_a_read_costs_one_command(host: Host, redis_url: str, key_prefix: str) -> None:
    await host.guard_request(guard_request(new_principal()))  # the server learns the script
    read = host.guard_request(guard_request(new_principal()))
    assert names(await commands_sent(redis_url, read, key_prefix)) == ["EVALSHA"]


async def test_an_idempotent_write_costs_two(host: Host, redis_url: str, key_prefix: str) -> None:
    await write_cycle(host, "warm-up")
    written = write_cycle(host, "key-1")
    assert names(await commands_sent(redis_url, written, key_prefix)) == ["EVALSHA", "EVALSHA"]


async def test_concurrent_reads_cost_one_command_each(
    host: Host, redis_url: str, key_prefix: str
) -> None:
    await host.guard_request(guard_request(new_principal()))

    async def reads() -> None:
        callers = [new_principal() for _ in range(20)]
        await asyncio.gather(*(host.guard_request(guard_request(c)) for c in callers))

    assert names(await commands_sent(redis_url, reads(), key_prefix)) == ["EVALSHA"] * 20


async def test_concurrent_calls_share_pipelines(
    host: Host, monkeypatch: pytest.MonkeyPatch
) -> None:
    scripts = guard_of(host).scripts
    pipelines: list[int] = []
    send = scripts._pipeline

    async def counting(batch: list[Any]) -> list[Any]:
        pipelines.append(len(batch))
        return await send(batch)

    monkeypatch.setattr(scripts, "_pipeline", counting)
    await asyncio.gather(*(host.guard_request(guard_request(new_principal())) for _ in range(20)))
    assert sum(pipelines) == 20
    assert len(pipelines) < 20


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


async def test_a_tenants_slots_live_as_long_as_its_longest_lease(
    host: Host, redis_url: str, key_prefix: str
) -> None:
    tenant = new_tenant()
    key = slots_key(tenant)
    assert key.startswith(key_prefix)
    client = Redis.from_url(redis_url)
    try:
        assert await host.acquire_query_slot(tenant, "short", 3, 5.0)
        assert 0 < await client.pttl(key) <= 5000
        assert await host.acquire_query_slot(tenant, "long", 3, 60.0)
        assert 5000 < await client.pttl(key) <= 60_000
        # Scored by the lease's end on Redis's clock.
        now_ms = int((await client.time())[0]) * 1000
        scores = dict(await client.zrange(key, 0, -1, withscores=True))
        assert now_ms + 59_000 <= scores[b"long"] <= now_ms + 61_000
        assert await client.zcard(key) == 2

        await host.release_query_slot(tenant, "long")
        await host.release_query_slot(tenant, "short")
        assert await client.exists(key) == 0
    finally:
        await client.aclose()


async def test_a_query_slot_costs_one_command(host: Host, redis_url: str, key_prefix: str) -> None:
    tenant = new_tenant()
    await host.acquire_query_slot(tenant, "warm-up", 2, 5.0)  # the server learns the script

    async def take_and_renew() -> None:
        assert await host.acquire_query_slot(tenant, "q1", 2, 5.0)
        assert await host.acquire_query_slot(tenant, "q1", 2, 5.0)

    assert names(await commands_sent(redis_url, take_and_renew(), key_prefix)) == ["EVALSHA"] * 2
    released = host.release_query_slot(tenant, "q1")
    assert names(await commands_sent(redis_url, released, key_prefix)) == ["ZREM"]


async def test_gateways_sharing_redis_share_the_query_slots(
    tmp_path: Path, redis_url: str, key_prefix: str
) -> None:
    settings = redis_settings(tmp_path, redis_url)
    tenant = new_tenant()
    async with running_host(settings) as first, running_host(settings) as second:
        outcomes = await asyncio.gather(
            *(
                gateway.acquire_query_slot(tenant, f"q{n}", 3, 60.0)
                for n, gateway in enumerate([first, second] * 10)
            )
        )
        assert sum(outcomes) == 3
        holders = [f"q{n}" for n, taken in enumerate(outcomes) if taken]
        # Released on one gateway, taken on the other.
        await first.release_query_slot(tenant, holders[0])
        assert await second.acquire_query_slot(tenant, "late", 3, 60.0)
        assert not await first.acquire_query_slot(tenant, "later", 3, 60.0)


async def test_scripts_the_server_forgot_are_loaded_again(host: Host, redis_url: str) -> None:
    await write_cycle(host, "before")
    client = Redis.from_url(redis_url)
    try:
        await client.script_flush()
        await write_cycle(host, "after")
        await client.script_flush()
        await asyncio.gather(*(write_cycle(host, f"concurrent-{n}") for n in range(10)))
    finally:
        await client.aclose()


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
        guard: RedisGuard = guard_of(host)
        assert await _dbsize(guard, 3) == 1
        assert await _dbsize(guard, 0) == 0


async def _dbsize(guard: RedisGuard, db: int) -> int:
    kwargs = guard.redis.connection_pool.connection_kwargs
    client = Redis(host=kwargs["host"], port=kwargs["port"], password=kwargs["password"], db=db)
    try:
        return int(await client.dbsize())
    finally:
        await client.aclose()
