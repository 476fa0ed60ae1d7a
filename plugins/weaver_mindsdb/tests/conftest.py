"""Fixtures for the live MindsDB suite: the real server, real PostgreSQL sample databases.

The live tests run only with ``WEAVER_RUN_E2E=1``; then every variable named in
`weaver_mindsdb.testing.LIVE_ENV` is required, and a missing one fails the test rather than
skipping it.
"""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
from weaver_mindsdb.testing import LiveEnv, Register, live_env_from_environment

from weaver.host import Host
from weaver.testing import running_host
from weaver.testing.live import HostDatasources, ScratchSchemas


@pytest.fixture
def live_env() -> LiveEnv:
    return live_env_from_environment()


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"


@pytest.fixture
async def host(live_env: LiveEnv, data_dir: Path) -> AsyncIterator[Host]:
    async with running_host(live_env.settings(data_dir)) as started:
        assert started.query_plugin == "mindsdb", started.plugins
        yield started


@pytest.fixture
def tenant() -> str:
    """A tenant of this test alone, so reruns and other suites never collide."""
    return f"live-{secrets.token_hex(4)}"


@pytest.fixture
async def register(live_env: LiveEnv, host: Host) -> AsyncIterator[Register]:
    """Register datasources on ``host``; every MindsDB database made is dropped after."""
    datasources = HostDatasources(host)
    yield datasources.register
    await live_env.drop_databases(d.internal_name for d in datasources.made)


@pytest.fixture
async def scratch_schema(live_env: LiveEnv) -> AsyncIterator[Callable[[str], Awaitable[str]]]:
    """Make a schema of this test's own in a sample database: ``await make(database)``
    returns its name; it is dropped afterwards."""
    schemas = ScratchSchemas(live_env, "weaver_live")
    yield schemas.make
    await schemas.drop_all()
