"""Fixtures for the live Trino suites: the real two-node cluster, the real PostgreSQL
sample databases. Live tests run only with ``WEAVER_RUN_E2E=1``; then every variable in
`weaver_trino.testing.LIVE_ENV` is required, and a missing one fails the test."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from weaver_trino.statements import staging_name
from weaver_trino.testing import MODE, LiveEnv, Register, Scratch, live_env_from_environment

from weaver.host import Host
from weaver.testing import running_host
from weaver.testing.live import HostDatasources, ScratchSchemas


@pytest.fixture
def live_env() -> LiveEnv:
    return live_env_from_environment()


@pytest.fixture
async def host(live_env: LiveEnv, tmp_path: Path) -> AsyncIterator[Host]:
    async with running_host(live_env.settings(tmp_path / "data"), MODE) as started:
        assert started.owner_of("execute_query") == "trino", started.plugins
        yield started


@pytest.fixture
def tenant() -> str:
    """A tenant of this test alone, so reruns and other suites never collide."""
    return f"live-{secrets.token_hex(4)}"


@pytest.fixture
async def register(live_env: LiveEnv, host: Host) -> AsyncIterator[Register]:
    """Register datasources as ``POST /api/datasources`` does; every catalog made is
    dropped afterwards."""
    datasources = HostDatasources(host)
    yield datasources.register
    await live_env.drop_catalogs(
        name for d in datasources.made for name in (d.internal_name, staging_name(d.internal_name))
    )


@pytest.fixture
async def scratch_schema(live_env: LiveEnv) -> AsyncIterator[Scratch]:
    """A schema of this test's own in a sample database (``await make(database)``),
    dropped afterwards."""
    schemas = ScratchSchemas(live_env, "weaver_trino")
    yield schemas.make
    await schemas.drop_all()


@pytest.fixture
async def scratch_database(live_env: LiveEnv) -> AsyncIterator[str]:
    """A database of this test's own on the sample server, dropped afterwards: for data
    that must sit in ``public`` or be large, without touching the sample databases."""
    name = f"weaver_trino_{secrets.token_hex(4)}"
    await live_env.execute(live_env.database, f'CREATE DATABASE "{name}"')
    yield name
    await live_env.execute(live_env.database, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
