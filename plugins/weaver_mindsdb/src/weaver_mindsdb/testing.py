"""Helpers for live tests against a real MindsDB and the PostgreSQL sample databases.

Used by this plugin's live suite, the external end-to-end suite and the benchmark; needs
the ``test`` extra (pytest, asyncpg).
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from weaver_services import mindsdb as mindsdb_service
from weaver_services.layout import Layout
from weaver_services.process import process_alive, spawn, stop_group

from weaver.settings import Settings
from weaver.testing import free_port, make_settings
from weaver.testing.live import (
    SAMPLE_ENV,
    SampleDatabases,
    live_marker,
    required_environment,
    sample_fields,
    user_schema,
)
from weaver.types import Datasource

live = live_marker("live MindsDB suite")

LIVE_ENV = ("MINDSDB_URL", *SAMPLE_ENV)
# Optional: MINDSDB_USER and MINDSDB_PASSWORD, when MindsDB has HTTP auth on.

Register = Callable[..., Awaitable[Datasource]]


@dataclass(frozen=True)
class LiveEnv(SampleDatabases):
    mindsdb_url: str
    # Weaver's own MindsDB account, when MindsDB has HTTP auth on.
    mindsdb_user: str = ""
    mindsdb_password: str = ""

    def settings(self, data_dir: Path, **overrides: str) -> Settings:
        """Settings for a gateway in external mode on this MindsDB."""
        values = {"WEAVER_EXTERNAL_MODE": "true", "MINDSDB_URL": self.mindsdb_url}
        if self.mindsdb_user:
            values.update(MINDSDB_USER=self.mindsdb_user, MINDSDB_PASSWORD=self.mindsdb_password)
        return make_settings(data_dir, **{**values, **overrides})

    async def mindsdb_headers(self, session: aiohttp.ClientSession) -> dict[str, str]:
        """What a request straight to MindsDB must carry: a bearer token when auth is on."""
        return await mindsdb_service.auth_headers(
            session, self.mindsdb_url, self.mindsdb_user, self.mindsdb_password
        )

    async def mindsdb_sql(self, query: str) -> dict[str, Any]:
        """A statement sent straight to MindsDB, bypassing the plugin."""
        async with aiohttp.ClientSession() as session:
            headers = await self.mindsdb_headers(session)
            async with session.post(
                f"{self.mindsdb_url}/api/sql/query", json={"query": query}, headers=headers
            ) as response:
                body: dict[str, Any] = await response.json(content_type=None)
                return body

    async def mindsdb_databases(self) -> set[str]:
        body = await self.mindsdb_sql("SHOW DATABASES")
        assert body["type"] == "table", body
        return {str(row[0]).lower() for row in body["data"]}

    async def drop_databases(self, names: Iterable[str]) -> None:
        """Drop MindsDB's databases of these names, bypassing the plugin."""
        for name in names:
            await self.mindsdb_sql(f"DROP DATABASE IF EXISTS `{name}`")


def live_env_from_environment(environ: Mapping[str, str] = os.environ) -> LiveEnv:
    """The variables as a `LiveEnv`; fails the test (not skips it) when one is missing."""
    return LiveEnv(
        **sample_fields(environ),
        mindsdb_url=required_environment(["MINDSDB_URL"], environ)["MINDSDB_URL"].rstrip("/"),
        mindsdb_user=environ.get("MINDSDB_USER", ""),
        mindsdb_password=environ.get("MINDSDB_PASSWORD", ""),
    )


def mindsdb_python() -> Path:
    """The interpreter of the MindsDB that ``scripts/services.sh`` installs, or
    ``WEAVER_MINDSDB_PYTHON``."""
    if os.environ.get("WEAVER_MINDSDB_PYTHON"):
        return Path(os.environ["WEAVER_MINDSDB_PYTHON"])
    return mindsdb_service.venv_dir(Layout.from_environ(os.environ)) / "bin" / "python"


def _start_mindsdb(
    storage: Path, username: str, password: str, port: int | None
) -> tuple[int, str]:
    python = mindsdb_python()
    if not python.exists():
        pytest.fail(f"no MindsDB at {python}: run scripts/services.sh up mindsdb first")
    port = port or free_port()
    config = storage / "config.json"
    mindsdb_service.write_config(config, port, username, password)
    pid = spawn(
        mindsdb_service.server_command(python, config),
        pid_file=storage / "mindsdb.pid",
        log_file=storage / "mindsdb.log",
        env=mindsdb_service.server_environ(os.environ, storage),
    )
    return pid, f"http://127.0.0.1:{port}"


@asynccontextmanager
async def private_mindsdb(
    storage: Path,
    *,
    username: str,
    password: str,
    startup_seconds: float = 180.0,
    port: int | None = None,
) -> AsyncIterator[str]:
    """A MindsDB of the test's own with HTTP auth on, on ``port`` (a free loopback port by
    default); yields its URL and stops it afterwards. Started again with the same storage
    and port, it is the same server restarted."""
    pid, url = await asyncio.to_thread(_start_mindsdb, storage, username, password, port)
    try:
        await _wait_until_it_answers(url, pid, (username, password), startup_seconds)
        yield url
    finally:
        await stop_group("private mindsdb", pid, grace=30)


async def _wait_until_it_answers(
    url: str, pid: int, credentials: tuple[str, str], seconds: float
) -> None:
    """Until a logged-in ``SELECT 1`` works, as ``scripts/services.sh`` waits for its own."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if not process_alive(pid):
            pytest.fail("the private MindsDB exited before it answered")
        if await mindsdb_service.answers(url, *credentials):
            return
        await asyncio.sleep(1)
    pytest.fail(f"the private MindsDB did not answer within {seconds:g}s")


# --- reading the sample databases directly, to check what MindsDB reports ---------------


async def user_tables(env: LiveEnv, database: str) -> list[tuple[str, str]]:
    """Every base table of the database's own schemas: (schema, table), sorted."""
    rows = await env.fetch(
        database,
        "SELECT table_schema, table_name FROM information_schema.tables "
        f"WHERE table_type = 'BASE TABLE' AND {user_schema('table_schema')} ORDER BY 1, 2",
    )
    assert rows, f"{database} has no tables to test with"
    return [(r[0], r[1]) for r in rows]


async def count_rows(env: LiveEnv, database: str, schema: str, table: str) -> int:
    (row,) = await env.fetch(database, f'SELECT count(*) FROM "{schema}"."{table}"')
    return int(row[0])


async def integer_key(env: LiveEnv, database: str) -> tuple[str, str, str]:
    """A sample table with a one-column integer primary key: (schema, table, column)."""
    keys = await env.fetch(
        database,
        "SELECT k.table_schema, k.table_name, min(k.column_name) "
        "FROM information_schema.table_constraints AS tc "
        "JOIN information_schema.key_column_usage AS k "
        "USING (constraint_schema, constraint_name, table_schema, table_name) "
        "JOIN information_schema.columns AS c USING (table_schema, table_name, column_name) "
        "WHERE tc.constraint_type = 'PRIMARY KEY' GROUP BY 1, 2 "
        "HAVING count(*) = 1 AND bool_and(c.data_type IN ('integer', 'bigint')) ORDER BY 1, 2",
    )
    assert keys, f"{database} has no table with an integer primary key"
    return keys[0][0], keys[0][1], keys[0][2]


# --- a database of the test's own, beside the samples -----------------------------------

# Rows of ``ticks``: with ``pg_sleep(s)`` per row, a statement runs 300 * s seconds, all
# of it inside MindsDB's first FETCH.
TICKS = 300


async def create_scratch_database(env: LiveEnv, name: str, *, rows: int = 0) -> None:
    """Create database ``name`` as the sample user (who may create databases) with
    ``ticks`` (`TICKS` rows) and ``wide`` (``rows`` generated rows of six columns, the
    shape of a real table: bigint, integer, text, numeric, timestamptz, text)."""
    await env.execute(env.database, f'CREATE DATABASE "{name}"')
    await env.execute(
        name,
        f"CREATE TABLE ticks AS SELECT g AS id FROM generate_series(1, {TICKS}) AS g",
        "CREATE TABLE wide AS SELECT g::bigint AS id, (g % 1000)::int AS qty, "
        "'label-' || g AS label, (g * 1.25)::numeric(12, 2) AS amount, "
        "timestamptz '2024-01-01 00:00:00+00' + g * interval '1 second' AS created, "
        f"repeat('x', 20) AS note FROM generate_series(1, {rows}) AS g",
        "ANALYZE",
    )


async def drop_scratch_database(env: LiveEnv, name: str) -> None:
    """Drop it, with the connections MindsDB may still keep to it (its handlers idle out
    after a minute; only connections of the sample user's own are ended)."""
    await env.execute(env.database, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


async def busy_backends(env: LiveEnv, database: str, tag: str | None = None) -> list[Any]:
    """The backends of ``database`` running a statement or holding a transaction open
    (MindsDB's pooled connections sit ``idle`` between queries); only those running
    under ``tag`` when one is given."""
    condition = "application_name = $1" if tag is not None else "$1::text IS NULL"
    return await env.fetch(
        env.database,
        "SELECT pid, state, application_name, query FROM pg_stat_activity "
        f"WHERE datname = $2 AND pid <> pg_backend_pid() AND state <> 'idle' AND {condition}",
        tag,
        database,
    )


async def wait_for(
    check: Callable[[], Awaitable[bool]], seconds: float, interval: float = 0.02
) -> bool:
    """Poll ``check`` until it holds or ``seconds`` pass; whether it held."""
    deadline = time.monotonic() + seconds
    while True:
        if await check():
            return True
        if time.monotonic() >= deadline:
            return False
        await asyncio.sleep(interval)
