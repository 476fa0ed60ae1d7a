"""Thin clients and settings shared by the live smoke suite and its fixtures."""

from __future__ import annotations

import os
from typing import Any

import aiohttp
import asyncpg
import pytest
from weaver_services import mindsdb as mindsdb_service
from weaver_services import trino as trino_service

LIVE = os.environ.get("WEAVER_RUN_E2E") == "1"


def require_env(name: str) -> str:
    value = os.environ.get(name, "")
    if not value:
        pytest.fail(f'{name} is not set: run `eval "$(scripts/services.sh env)"` first')
    return value


class PgTarget:
    """Where the sample databases are, as the E2E variables of the deployment document say."""

    def __init__(self) -> None:
        self.host = require_env("WEAVER_E2E_DS_HOST")
        self.port = int(require_env("WEAVER_E2E_DS_PORT"))
        self.user = require_env("WEAVER_E2E_DS_USER")
        self.password = require_env("WEAVER_E2E_DS_PASSWORD")
        self.enterprise = require_env("WEAVER_E2E_DS_DATABASE")
        self.crm = require_env("WEAVER_E2E_CRM_DATABASE")

    async def connect(self, database: str) -> asyncpg.Connection:
        return await asyncpg.connect(
            host=self.host,
            port=self.port,
            user=self.user,
            password=self.password,
            database=database,
            timeout=10,
        )


class MindsDB:
    """The MindsDB HTTP API: ``POST /api/sql/query``, with token login when auth is on."""

    def __init__(self, session: aiohttp.ClientSession, url: str) -> None:
        self.session = session
        self.url = url.rstrip("/")
        self.headers: dict[str, str] = {}

    async def login(self, user: str, password: str) -> None:
        self.headers.update(
            await mindsdb_service.auth_headers(self.session, self.url, user, password)
        )

    async def status(self) -> dict[str, Any]:
        async with self.session.get(f"{self.url}/api/status", headers=self.headers) as resp:
            assert resp.status == 200, await resp.text()
            result: dict[str, Any] = await resp.json()
            return result

    async def sql(self, query: str) -> dict[str, Any]:
        async with self.session.post(
            f"{self.url}/api/sql/query", json={"query": query}, headers=self.headers
        ) as resp:
            # MindsDB answers 200 for results and for SQL errors alike.
            assert resp.status == 200, await resp.text()
            result: dict[str, Any] = await resp.json()
            return result

    async def database_names(self) -> set[str]:
        result = await self.sql("SHOW DATABASES")
        assert result["type"] == "table", result
        return {str(row[0]) for row in result["data"]}


class Trino:
    """A Trino coordinator through its client protocol; ``admin`` is the user that owns
    catalogs (``TRINO_USER``), any other name is an ordinary user."""

    def __init__(self, session: aiohttp.ClientSession, url: str, admin: str) -> None:
        self.session = session
        self.url = url.rstrip("/")
        self.admin = admin

    async def run(self, sql: str, user: str | None = None) -> trino_service.Statement:
        return await trino_service.statement(self.session, self.url, user or self.admin, sql)

    async def get(self, path: str, user: str | None = None) -> Any:
        async with self.session.get(
            f"{self.url}{path}", headers={"X-Trino-User": user or self.admin}
        ) as resp:
            assert resp.status == 200, await resp.text()
            return await resp.json()
