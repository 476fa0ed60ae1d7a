"""Fixtures for the PostgreSQL guard's tests: a database of the suite's own on the shared
server, and a TCP relay in front of that server that a test can cut and restore, so that
the database "goes away" without stopping a server other suites use."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
from collections.abc import AsyncIterator
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest

# The metadata database that scripts/services.sh creates, whose user may create others.
DEFAULT_DSN = "postgresql://sample_user:sample_password@127.0.0.1:5433/weaver_meta"
TEST_DATABASE = "weaver_pg_guard_test"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


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


class Relay:
    """Forwards loopback connections on its own port to the real server, until cut."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.port = free_port()
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._relay, "127.0.0.1", self.port)

    async def cut(self) -> None:
        """Refuse new connections and drop the open ones, as a database that died."""
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        for writer in list(self._writers):
            writer.close()
        self._writers.clear()

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.close()
            return
        self._writers |= {writer, upstream_writer}

        async def pump(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
            with contextlib.suppress(OSError):
                while data := await source.read(65536):
                    sink.write(data)
                    await sink.drain()
            sink.close()

        await asyncio.gather(pump(reader, upstream_writer), pump(upstream_reader, writer))
        self._writers -= {writer, upstream_writer}


@pytest.fixture
async def relay(guard_dsn: str) -> AsyncIterator[Relay]:
    parts = urlsplit(guard_dsn)
    started = Relay(parts.hostname or "127.0.0.1", parts.port or 5432)
    await started.start()
    try:
        yield started
    finally:
        await started.cut()
