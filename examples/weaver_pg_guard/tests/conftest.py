"""Fixtures for the PostgreSQL guard's tests: a database of the suite's own on the shared
server, and a TCP relay in front of that server that a test can cut and restore, so that
the database "goes away" without stopping a server other suites use."""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest

from weaver.testing.relay import Relay

# The metadata database that scripts/services.sh creates, whose user may create others.
DEFAULT_DSN = "postgresql://sample_user:sample_password@127.0.0.1:5433/weaver_meta"
TEST_DATABASE = "weaver_pg_guard_test"


def with_database(dsn: str, database: str) -> str:
    return urlunsplit(urlsplit(dsn)._replace(path=f"/{database}"))


def with_address(dsn: str, host: str, port: int) -> str:
    parts = urlsplit(dsn)
    credentials = parts.netloc.rpartition("@")[0]
    netloc = f"{credentials}@{host}:{port}" if credentials else f"{host}:{port}"
    return urlunsplit(parts._replace(netloc=netloc))


async def create_database(dsn: str, database: str) -> None:
    connection = await asyncpg.connect(dsn)
    try:
        exists = await connection.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", database)
        if not exists:
            # Two suites starting together: the loser finds it made.
            with contextlib.suppress(asyncpg.DuplicateDatabaseError):
                await connection.execute(f'CREATE DATABASE "{database}"')
    finally:
        await connection.close()


@pytest.fixture(scope="session")
def guard_dsn() -> str:
    """This suite's database on the shared PostgreSQL (``POSTGRES_DSN``'s server)."""
    base = os.environ.get("POSTGRES_DSN") or DEFAULT_DSN
    asyncio.run(create_database(base, TEST_DATABASE))
    return with_database(base, TEST_DATABASE)


@pytest.fixture
async def relay(guard_dsn: str) -> AsyncIterator[Relay]:
    parts = urlsplit(guard_dsn)
    started = Relay(parts.hostname or "127.0.0.1", parts.port or 5432)
    await started.start()
    try:
        yield started
    finally:
        await started.cut()
