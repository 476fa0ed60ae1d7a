"""Helpers for live suites, whichever engine plugin they drive: the PostgreSQL sample
databases that ``scripts/services.sh`` loads, tokens for a tenant, and datasources made
through the HTTP API and removed afterwards.

A plugin's live environment subclasses `SampleDatabases` with its engine's own fields;
``sample_fields()`` reads the sample variables for its ``from_environment``.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import asyncpg
import pytest
from aiohttp.test_utils import TestClient

from weaver.auth import mint_token
from weaver.host import Host
from weaver.settings import Settings
from weaver.types import Datasource
from weaver.workflows.datasources import register

RUN_E2E = os.environ.get("WEAVER_RUN_E2E") == "1"

SAMPLE_ENV = (
    "WEAVER_E2E_DS_HOST",
    "WEAVER_E2E_DS_PORT",
    "WEAVER_E2E_DS_DATABASE",
    "WEAVER_E2E_DS_USER",
    "WEAVER_E2E_DS_PASSWORD",
    "WEAVER_E2E_CRM_DATABASE",
)

Client = TestClient[Any, Any]
Auth = Callable[[str], dict[str, str]]
# `create(tenant_id, name, database, **connection)`: the 201 answer's body.
Create = Callable[..., Awaitable[dict[str, Any]]]


def live_marker(suite: str) -> pytest.MarkDecorator:
    """Skips ``suite`` unless ``WEAVER_RUN_E2E=1``."""
    return pytest.mark.skipif(not RUN_E2E, reason=f"{suite}: set WEAVER_RUN_E2E=1")


def required_environment(
    names: Iterable[str], environ: Mapping[str, str] = os.environ
) -> dict[str, str]:
    """The variables' values; fails the test (not skips it) when one is missing."""
    missing = [name for name in names if not environ.get(name)]
    if missing:
        pytest.fail("WEAVER_RUN_E2E=1 needs " + ", ".join(missing))
    return {name: environ[name] for name in names}


@dataclass(frozen=True)
class SampleDatabases:
    """The PostgreSQL server of the sample databases, and the account that reads them."""

    host: str
    port: int
    database: str
    user: str
    password: str
    crm_database: str

    def connection(self, database: str | None = None, **overrides: Any) -> dict[str, Any]:
        """A postgres datasource connection to one of the sample databases."""
        return {
            "host": self.host,
            "port": self.port,
            "database": database or self.database,
            "user": self.user,
            "password": self.password,
            **overrides,
        }

    async def pg(self, database: str | None = None) -> asyncpg.Connection:
        """A direct connection, to check what the engine reports against the source."""
        return await asyncpg.connect(
            host=self.host,
            port=self.port,
            user=self.user,
            password=self.password,
            database=database or self.database,
        )

    async def fetch(self, database: str, sql: str, *args: Any) -> list[Any]:
        connection = await self.pg(database)
        try:
            return list(await connection.fetch(sql, *args))
        finally:
            await connection.close()

    async def scalar(self, database: str, sql: str) -> Any:
        return (await self.fetch(database, sql))[0][0]

    async def execute(self, database: str, *statements: str) -> None:
        connection = await self.pg(database)
        try:
            for statement in statements:
                await connection.execute(statement)
        finally:
            await connection.close()


def sample_fields(environ: Mapping[str, str] = os.environ) -> dict[str, Any]:
    """`SampleDatabases`' fields from ``SAMPLE_ENV`` (every one required)."""
    env = required_environment(SAMPLE_ENV, environ)
    return {
        "host": env["WEAVER_E2E_DS_HOST"],
        "port": int(env["WEAVER_E2E_DS_PORT"]),
        "database": env["WEAVER_E2E_DS_DATABASE"],
        "user": env["WEAVER_E2E_DS_USER"],
        "password": env["WEAVER_E2E_DS_PASSWORD"],
        "crm_database": env["WEAVER_E2E_CRM_DATABASE"],
    }


def user_schema(column: str) -> str:
    """SQL true for the schemas a PostgreSQL catalog holds for its users, not itself."""
    return f"{column} <> 'information_schema' AND left({column}, 3) <> 'pg_'"


def two_tenants(prefix: str) -> tuple[str, str]:
    """Two tenants of one test alone, so reruns and other suites never collide."""
    run = secrets.token_hex(4)
    return f"{prefix}-a-{run}", f"{prefix}-b-{run}"


def tenant_headers(
    settings: Settings, tenant_id: str, roles: Iterable[str] = ("editor",)
) -> dict[str, str]:
    """Headers carrying a token for ``tenant_id``, minted as a client would."""
    token = mint_token(settings, tenant_id=tenant_id, subject=f"user-of-{tenant_id}", roles=roles)
    return {"Authorization": f"Bearer {token}"}


class ApiDatasources:
    """Datasources made with ``POST /api/datasources`` (201 expected), each deleted
    through the API by `delete_all`, which names what it deleted for the engine's own
    clean-up."""

    def __init__(self, api: Client, auth: Auth, samples: SampleDatabases) -> None:
        self.api = api
        self.auth = auth
        self.samples = samples
        self.made: list[tuple[str, str]] = []

    async def create(
        self, tenant_id: str, name: str, database: str, **connection: Any
    ) -> dict[str, Any]:
        body = {
            "name": name,
            "engine": "postgres",
            "connection": self.samples.connection(database, **connection),
        }
        response = await self.api.post("/api/datasources", json=body, headers=self.auth(tenant_id))
        answer: dict[str, Any] = await response.json()
        assert response.status == 201, answer
        self.made.append((tenant_id, name))
        return answer

    async def delete_all(self) -> list[tuple[str, str]]:
        """Delete every datasource made; their (tenant, name) pairs."""
        for tenant_id, name in self.made:
            await self.api.delete(f"/api/datasources/{name}", headers=self.auth(tenant_id))
        return self.made


class ScratchSchemas:
    """Schemas of one test's own in the sample databases (``await make(database)`` names
    it), all dropped by `drop_all`."""

    def __init__(self, samples: SampleDatabases, prefix: str) -> None:
        self.samples = samples
        self.name = f"{prefix}_{secrets.token_hex(4)}"
        self.made: list[str] = []

    async def make(self, database: str) -> str:
        await self.samples.execute(database, f'CREATE SCHEMA "{self.name}"')
        self.made.append(database)
        return self.name

    async def drop_all(self) -> None:
        for database in self.made:
            await self.samples.execute(database, f'DROP SCHEMA IF EXISTS "{self.name}" CASCADE')


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


class HostDatasources:
    """Datasources registered on a started host, remembered for the engine's clean-up."""

    def __init__(self, host: Host) -> None:
        self.host = host
        self.made: list[Datasource] = []

    async def register(self, tenant_id: str, name: str, connection: dict[str, Any]) -> Datasource:
        datasource = await register_datasource(self.host, tenant_id, name, connection)
        self.made.append(datasource)
        return datasource
