"""Fixtures for the Redis guard's tests: the shared Redis under a private key prefix, and
private ``redis-server`` processes that a test may stop and start again."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest
import weaver_redis_guard.plugin
from redis.asyncio import Redis
from weaver_redis_guard.testing import RedisServer, free_port


@pytest.fixture
def unused_port() -> Callable[[], int]:
    """A loopback port nobody listens on right now."""
    return free_port


@pytest.fixture
def redis_url() -> str:
    """The shared server that ``scripts/services.sh`` starts (or ``REDIS_URL``)."""
    return os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")


@pytest.fixture
async def key_prefix(redis_url: str, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[str]:
    """A key prefix of this test alone on the shared server, removed afterwards."""
    prefix = f"weaver:guard-test:{uuid.uuid4().hex}:"
    monkeypatch.setattr(weaver_redis_guard.plugin, "KEY_PREFIX", prefix)
    yield prefix
    client = Redis.from_url(redis_url)
    try:
        keys = [key async for key in client.scan_iter(match=f"{prefix}*", count=1000)]
        if keys:
            await client.delete(*keys)
    finally:
        await client.aclose()


@pytest.fixture
def start_redis(tmp_path: Path) -> Iterator[Callable[..., RedisServer]]:
    """Start private servers (``start_redis("--requirepass", "pw")``); all are killed after."""
    servers: list[RedisServer] = []

    def start(*extra_args: str) -> RedisServer:
        server = RedisServer(tmp_path / f"redis-{len(servers)}", *extra_args)
        servers.append(server)
        server.start()
        return server

    yield start
    for server in servers:
        server.stop()


@pytest.fixture
def private_redis(start_redis: Callable[..., RedisServer]) -> RedisServer:
    return start_redis()
