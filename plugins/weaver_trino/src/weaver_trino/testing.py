"""Helpers for live tests against the real Trino cluster and the PostgreSQL sample
databases: used by this plugin's live suites and its benchmark; needs the ``test`` extra
(pytest, asyncpg, weaver-services).
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
from weaver_services.layout import Layout
from weaver_services.trino import Trino as TrinoService
from weaver_services.trino import stage_nodes

from weaver.settings import Settings
from weaver.testing import make_settings
from weaver.testing.live import (
    SAMPLE_ENV,
    SampleDatabases,
    live_marker,
    required_environment,
    sample_fields,
)
from weaver.types import Datasource

live = live_marker("live Trino suite")

LIVE_ENV = ("TRINO_URL", "TRINO_USER", *SAMPLE_ENV)
# `register(tenant_id, name, connection)` and `make(database) -> schema` fixtures.
Register = Callable[..., Awaitable[Datasource]]
Scratch = Callable[[str], Awaitable[str]]
# The flag that enables the plugin: a third-party plugin's, read from the environment.
MODE = {"WEAVER_TRINO_MODE": "true"}


@dataclass(frozen=True)
class LiveEnv(SampleDatabases):
    trino_url: str
    trino_user: str

    def settings(self, data_dir: Path, **overrides: str) -> Settings:
        values = {"TRINO_URL": self.trino_url, "TRINO_USER": self.trino_user}
        return make_settings(data_dir, **{**values, **overrides})

    # --- Trino itself, bypassing the plugin --------------------------------------------

    @property
    def headers(self) -> dict[str, str]:
        return {"X-Trino-User": self.trino_user}

    async def trino(self, sql: str) -> list[list[Any]]:
        """A statement sent straight to Trino; its rows (raises on an error)."""
        async with aiohttp.ClientSession() as session:
            async with session.post(
                f"{self.trino_url}/v1/statement", data=sql.encode(), headers=self.headers
            ) as reply:
                page: dict[str, Any] = await reply.json()
            rows: list[list[Any]] = []
            while True:
                rows.extend(page.get("data", []))
                if "error" in page:
                    raise AssertionError(f"{sql[:60]}: {page['error'].get('message')}")
                if "nextUri" not in page:
                    return rows
                async with session.get(page["nextUri"], headers=self.headers) as reply:
                    page = await reply.json()

    async def catalogs(self) -> set[str]:
        return {str(row[0]) for row in await self.trino("SHOW CATALOGS")}

    async def drop_catalogs(self, names: Iterable[str]) -> None:
        for name in names:
            await self.trino(f'DROP CATALOG IF EXISTS "{name}"')

    async def rest(self, path: str) -> Any:
        url, headers = f"{self.trino_url}{path}", self.headers
        async with aiohttp.ClientSession() as session, session.get(url, headers=headers) as reply:
            reply.raise_for_status()
            return await reply.json()

    async def queries(self) -> list[dict[str, Any]]:
        """Trino's query list (``GET /v1/query``), every query it still remembers."""
        listed: list[dict[str, Any]] = await self.rest("/v1/query")
        return listed

    async def queries_tagged(self, query_id: str) -> list[dict[str, Any]]:
        """The Trino queries whose client info is the core's ``query_id``."""
        return [
            q for q in await self.queries() if q.get("session", {}).get("clientInfo") == query_id
        ]

    async def nodes_that_ran(self, trino_query_id: str) -> set[str]:
        info = await self.rest(f"/v1/query/{trino_query_id}")
        return stage_nodes(info["outputStage"]) if info.get("outputStage") else set()


def live_env_from_environment(environ: Mapping[str, str] = os.environ) -> LiveEnv:
    """The variables as a `LiveEnv`; fails the test (not skips it) when one is missing."""
    trino = required_environment(["TRINO_URL", "TRINO_USER"], environ)
    return LiveEnv(
        **sample_fields(environ),
        trino_url=trino["TRINO_URL"].rstrip("/"),
        trino_user=trino["TRINO_USER"],
    )


def cluster() -> TrinoService:
    """The dev cluster as ``scripts/services.sh`` runs it, to kill and restart its worker."""
    return TrinoService(Layout.from_environ(os.environ), os.environ)


def resident_bytes() -> int:
    """This process's resident memory (``VmRSS``)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS in /proc/self/status")
