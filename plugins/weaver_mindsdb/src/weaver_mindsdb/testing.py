"""Helpers for live tests against a real MindsDB and the PostgreSQL sample databases.

Used by this plugin's live suite, the external end-to-end suite and the benchmark; needs
the ``test`` extra (pytest, asyncpg).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import pytest

from weaver.host import Host
from weaver.settings import Settings
from weaver.testing import free_port, make_settings
from weaver.types import Datasource
from weaver.workflows.datasources import register

RUN_E2E = os.environ.get("WEAVER_RUN_E2E") == "1"
live = pytest.mark.skipif(not RUN_E2E, reason="live MindsDB suite: set WEAVER_RUN_E2E=1")

LIVE_ENV = (
    "MINDSDB_URL",
    "WEAVER_E2E_DS_HOST",
    "WEAVER_E2E_DS_PORT",
    "WEAVER_E2E_DS_DATABASE",
    "WEAVER_E2E_DS_USER",
    "WEAVER_E2E_DS_PASSWORD",
    "WEAVER_E2E_CRM_DATABASE",
)
# Optional: MINDSDB_USER and MINDSDB_PASSWORD, when MindsDB has HTTP auth on.

Register = Callable[..., Awaitable[Datasource]]


@dataclass(frozen=True)
class LiveEnv:
    mindsdb_url: str
    host: str
    port: int
    database: str
    user: str
    password: str
    crm_database: str
    # Weaver's own MindsDB account, when MindsDB has HTTP auth on.
    mindsdb_user: str = ""
    mindsdb_password: str = ""

    def settings(self, data_dir: Path, **overrides: str) -> Settings:
        """Settings for a gateway in external mode on this MindsDB."""
        values = {"WEAVER_EXTERNAL_MODE": "true", "MINDSDB_URL": self.mindsdb_url}
        if self.mindsdb_user:
            values.update(MINDSDB_USER=self.mindsdb_user, MINDSDB_PASSWORD=self.mindsdb_password)
        return make_settings(data_dir, **{**values, **overrides})

    def connection(self, database: str | None = None, **overrides: Any) -> dict[str, Any]:
        """A postgres connection for MindsDB to one of the sample databases."""
        return {
            "host": self.host,
            "port": self.port,
            "database": database or self.database,
            "user": self.user,
            "password": self.password,
            **overrides,
        }

    async def pg(self, database: str | None = None) -> asyncpg.Connection:
        """A direct connection, to check what MindsDB reports against the source."""
        return await asyncpg.connect(
            host=self.host,
            port=self.port,
            user=self.user,
            password=self.password,
            database=database or self.database,
        )

    async def mindsdb_headers(self, session: aiohttp.ClientSession) -> dict[str, str]:
        """What a request straight to MindsDB must carry: a bearer token when auth is on."""
        if not self.mindsdb_user:
            return {}
        credentials = {"username": self.mindsdb_user, "password": self.mindsdb_password}
        async with session.post(f"{self.mindsdb_url}/api/login", json=credentials) as response:
            assert response.status == 200, await response.text()
            token = (await response.json(content_type=None))["token"]
        return {"Authorization": f"Bearer {token}"}

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


def live_env_from_environment() -> LiveEnv:
    """The variables as a `LiveEnv`; fails the test (not skips it) when one is missing."""
    missing = [name for name in LIVE_ENV if not os.environ.get(name)]
    if missing:
        pytest.fail("WEAVER_RUN_E2E=1 needs " + ", ".join(missing))
    env = os.environ
    return LiveEnv(
        mindsdb_url=env["MINDSDB_URL"].rstrip("/"),
        host=env["WEAVER_E2E_DS_HOST"],
        port=int(env["WEAVER_E2E_DS_PORT"]),
        database=env["WEAVER_E2E_DS_DATABASE"],
        user=env["WEAVER_E2E_DS_USER"],
        password=env["WEAVER_E2E_DS_PASSWORD"],
        crm_database=env["WEAVER_E2E_CRM_DATABASE"],
        mindsdb_user=env.get("MINDSDB_USER", ""),
        mindsdb_password=env.get("MINDSDB_PASSWORD", ""),
    )


async def register_datasource(
    host: Host,
    tenant_id: str,
    name: str,
    connection: dict[str, Any],
    engine: str = "postgres",
) -> Datasource:
    """What ``POST /api/datasources`` does: check, seal, record, then register."""
    return await register(
        host,
        tenant_id=tenant_id,
        name=name,
        engine=engine,
        connection=connection,
        description=None,
    )


def mindsdb_python() -> Path:
    """The interpreter of the MindsDB that ``scripts/services.sh`` installs (its cache
    layout), or ``WEAVER_MINDSDB_PYTHON``."""
    if os.environ.get("WEAVER_MINDSDB_PYTHON"):
        return Path(os.environ["WEAVER_MINDSDB_PYTHON"])
    cache = Path(
        os.environ.get("WEAVER_CACHE_DIR")
        or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "weaver"
    )
    return cache / "mindsdb-26.1.0-venv" / "bin" / "python"


def _start_mindsdb(
    storage: Path, username: str, password: str, port: int | None
) -> tuple[subprocess.Popen[bytes], str]:
    python = mindsdb_python()
    if not python.exists():
        pytest.fail(f"no MindsDB at {python}: run scripts/services.sh up mindsdb first")
    port = port or free_port()
    storage.mkdir(parents=True, exist_ok=True)
    config = storage / "config.json"
    config.write_text(
        json.dumps(
            {
                "api": {"http": {"host": "127.0.0.1", "port": str(port)}},
                "auth": {"http_auth_enabled": True, "username": username, "password": password},
            }
        )
    )
    # MindsDB also reads credentials from MINDSDB_USERNAME/PASSWORD: keep them out.
    environ = {
        key: value
        for key, value in os.environ.items()
        if key not in ("MINDSDB_USERNAME", "MINDSDB_PASSWORD", "MINDSDB_USER")
    }
    environ["MINDSDB_STORAGE_DIR"] = str(storage)
    with (storage / "mindsdb.log").open("wb") as log:
        process = subprocess.Popen(
            [str(python), "-m", "mindsdb", "--api=http", "--no_studio", f"--config={config}"],
            env=environ,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    return process, f"http://127.0.0.1:{port}"


def _descendants(pid: int) -> list[int]:
    """Every process below ``pid``, from /proc: MindsDB's API processes start sessions of
    their own, so its process group does not hold them all."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, pending = [], [pid]
    while pending:
        for child in children.get(pending.pop(), []):
            found.append(child)
            pending.append(child)
    return found


def _stop_mindsdb(process: subprocess.Popen[bytes]) -> None:
    tree = _descendants(process.pid)
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(30)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    for pid in tree:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


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
    process, url = await asyncio.to_thread(_start_mindsdb, storage, username, password, port)
    try:
        await _wait_for_status(url, process, startup_seconds)
        yield url
    finally:
        await asyncio.to_thread(_stop_mindsdb, process)


async def _wait_for_status(url: str, process: subprocess.Popen[bytes], seconds: float) -> None:
    async with aiohttp.ClientSession() as session:
        for _ in range(int(seconds * 2)):
            if process.poll() is not None:
                pytest.fail(f"the private MindsDB exited with {process.returncode}")
            try:
                async with session.get(f"{url}/api/status") as response:
                    if response.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.5)
    pytest.fail(f"the private MindsDB did not answer within {seconds:g}s")


# --- reading the sample databases directly, to check what MindsDB reports ---------------


def user_schema(column: str) -> str:
    """SQL true for the schemas a PostgreSQL catalog holds for its users, not itself."""
    return f"{column} <> 'information_schema' AND left({column}, 3) <> 'pg_'"


async def fetch(env: LiveEnv, database: str, sql: str, *args: Any) -> list[Any]:
    connection = await env.pg(database)
    try:
        return list(await connection.fetch(sql, *args))
    finally:
        await connection.close()


async def execute(env: LiveEnv, database: str, *statements: str) -> None:
    connection = await env.pg(database)
    try:
        for statement in statements:
            await connection.execute(statement)
    finally:
        await connection.close()


async def user_tables(env: LiveEnv, database: str) -> list[tuple[str, str]]:
    """Every base table of the database's own schemas: (schema, table), sorted."""
    rows = await fetch(
        env,
        database,
        "SELECT table_schema, table_name FROM information_schema.tables "
        f"WHERE table_type = 'BASE TABLE' AND {user_schema('table_schema')} ORDER BY 1, 2",
    )
    assert rows, f"{database} has no tables to test with"
    return [(r[0], r[1]) for r in rows]


async def count_rows(env: LiveEnv, database: str, schema: str, table: str) -> int:
    (row,) = await fetch(env, database, f'SELECT count(*) FROM "{schema}"."{table}"')
    return int(row[0])


async def integer_key(env: LiveEnv, database: str) -> tuple[str, str, str]:
    """A sample table with a one-column integer primary key: (schema, table, column)."""
    keys = await fetch(
        env,
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
