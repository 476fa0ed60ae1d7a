"""The Redis guard without a working Redis: client settings, a closed port, a silent server.

No Redis is needed: these tests point REDIS_URL at places where no Redis answers.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
from redis.asyncio.connection import SSLConnection
from weaver_redis_guard.plugin import SOCKET_TIMEOUT_SECONDS, redis_client

from weaver.errors import GuardUnavailable
from weaver.host import Host
from weaver.testing.guard import guard_request, new_principal, write
from weaver.testing.harness import make_settings, running_host


async def redis_guard_host(tmp_path: Path, url: str) -> AsyncIterator[Host]:
    settings = make_settings(tmp_path, WEAVER_REQUEST_GUARD_REDIS_MODE="true", REDIS_URL=url)
    async with running_host(settings) as host:
        assert host.owner_of("guard_request") == "redis_guard"
        yield host


@pytest.fixture
async def closed_port_host(tmp_path: Path, unused_port: Callable[[], int]) -> AsyncIterator[Host]:
    async for host in redis_guard_host(tmp_path, f"redis://127.0.0.1:{unused_port()}/0"):
        yield host


@pytest.fixture
async def silent_server_host(tmp_path: Path) -> AsyncIterator[Host]:
    """A server that accepts connections and never says a word, like a black hole."""
    held: list[asyncio.StreamWriter] = []

    async def swallow(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)

    server = await asyncio.start_server(swallow, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        async for host in redis_guard_host(tmp_path, f"redis://127.0.0.1:{port}/0"):
            yield host
    finally:
        for writer in held:
            writer.close()
        server.close()
        await server.wait_closed()


def test_url_db_password_and_timeouts_are_honoured() -> None:
    client = redis_client("redis://guard:s%40cret@127.0.0.1:6390/7")
    kwargs = client.connection_pool.connection_kwargs
    assert (kwargs["host"], kwargs["port"], kwargs["db"]) == ("127.0.0.1", 6390, 7)
    assert (kwargs["username"], kwargs["password"]) == ("guard", "s@cret")
    assert kwargs["socket_timeout"] == SOCKET_TIMEOUT_SECONDS
    assert kwargs["socket_connect_timeout"] == SOCKET_TIMEOUT_SECONDS
    assert kwargs["retry"].get_retries() == 0


def test_rediss_scheme_uses_tls() -> None:
    client = redis_client("rediss://:pw@cache.example:6380/2")
    assert client.connection_pool.connection_class is SSLConnection
    assert client.connection_pool.connection_kwargs["db"] == 2


async def test_closed_port_is_guard_unavailable(closed_port_host: Host) -> None:
    with pytest.raises(GuardUnavailable) as unavailable:
        await closed_port_host.guard_request(guard_request(new_principal()))
    assert "127.0.0.1" not in unavailable.value.detail
    with pytest.raises(GuardUnavailable):
        await closed_port_host.guard_request(write(new_principal(), "key-1"))
    outcomes = await asyncio.gather(
        *(closed_port_host.guard_request(guard_request(new_principal())) for _ in range(5)),
        return_exceptions=True,
    )
    assert all(isinstance(o, GuardUnavailable) for o in outcomes)


async def test_query_slots_without_redis_are_guard_unavailable(
    closed_port_host: Host, silent_server_host: Host
) -> None:
    # The core decides what that means (WEAVER_REQUEST_GUARD_FAIL_OPEN); the plugin says so.
    for host in (closed_port_host, silent_server_host):
        with pytest.raises(GuardUnavailable):
            await host.acquire_query_slot("tenant-1", "q1", 8, 20.0)
        with pytest.raises(GuardUnavailable):
            await host.release_query_slot("tenant-1", "q1")


async def test_closed_port_reports_down(closed_port_host: Host) -> None:
    check = (await closed_port_host.check_health())["redis_guard"]
    assert check.status == "down"


async def test_silent_server_is_guard_unavailable(silent_server_host: Host) -> None:
    outcomes = await asyncio.gather(
        *(silent_server_host.guard_request(guard_request(new_principal())) for _ in range(5)),
        return_exceptions=True,
    )
    assert all(isinstance(o, GuardUnavailable) for o in outcomes)
    check = (await silent_server_host.check_health())["redis_guard"]
    assert check.status == "down"


async def test_malformed_url_reports_down(tmp_path: Path) -> None:
    async for host in redis_guard_host(tmp_path, "http://not-redis/0"):
        assert (await host.check_health())["redis_guard"].status == "down"
        with pytest.raises(GuardUnavailable):
            await host.guard_request(guard_request(new_principal()))
