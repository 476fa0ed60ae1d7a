"""Clients for the live smoke suite, one per real server that ``scripts/services.sh`` starts.

The suite runs only with ``WEAVER_RUN_E2E=1`` and reads where the servers are from the
variables that ``eval "$(scripts/services.sh env)"`` exports. A missing variable is a
failure, not a skip: the exit gate must never pass on a suite that did not run.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator

import aiohttp
import asyncpg
import pytest
import redis.asyncio as aioredis
from neo4j import AsyncDriver, AsyncGraphDatabase

from .clients import MindsDB, PgTarget, Trino, require_env


@pytest.fixture
def pg_target() -> PgTarget:
    return PgTarget()


@pytest.fixture
async def pg_enterprise(pg_target: PgTarget) -> AsyncIterator[asyncpg.Connection]:
    conn = await pg_target.connect(pg_target.enterprise)
    yield conn
    await conn.close()


@pytest.fixture
async def pg_crm(pg_target: PgTarget) -> AsyncIterator[asyncpg.Connection]:
    conn = await pg_target.connect(pg_target.crm)
    yield conn
    await conn.close()


@pytest.fixture
async def redis_client() -> AsyncIterator[aioredis.Redis]:
    client = aioredis.from_url(require_env("REDIS_URL"), decode_responses=True)
    yield client
    await client.aclose()


@pytest.fixture
async def neo4j_driver() -> AsyncIterator[AsyncDriver]:
    driver = AsyncGraphDatabase.driver(
        require_env("NEO4J_URI"),
        auth=(require_env("NEO4J_USER"), require_env("NEO4J_PASSWORD")),
    )
    yield driver
    await driver.close()


@pytest.fixture
async def mindsdb() -> AsyncIterator[MindsDB]:
    timeout = aiohttp.ClientTimeout(total=120)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        client = MindsDB(session, require_env("MINDSDB_URL"))
        user, password = os.environ.get("MINDSDB_USER"), os.environ.get("MINDSDB_PASSWORD")
        if user and password:
            await client.login(user, password)
        yield client


@pytest.fixture
async def trino() -> AsyncIterator[Trino]:
    timeout = aiohttp.ClientTimeout(total=120)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        yield Trino(session, require_env("TRINO_URL"), require_env("TRINO_USER"))
