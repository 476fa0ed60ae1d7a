"""Fixtures for the Neo4j plugin's live tests: the shared server (``NEO4J_URI``,
``NEO4J_USER``, ``NEO4J_PASSWORD``, defaulting to what ``scripts/services.sh`` starts)
and removal of the tenants a test wrote."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
from neo4j import AsyncDriver, AsyncGraphDatabase

from weaver.host import Host
from weaver.settings import Settings
from weaver.testing.harness import make_settings, running_host

NEO4J_URI = os.environ.get("NEO4J_URI", "bolt://127.0.0.1:7687")
NEO4J_USER = os.environ.get("NEO4J_USER", "neo4j")
NEO4J_PASSWORD = os.environ.get("NEO4J_PASSWORD", "weaver_dev_password")


@pytest.fixture
def neo4j_uri() -> str:
    return NEO4J_URI


@pytest.fixture
def neo4j_settings(tmp_path: Path) -> Callable[..., Settings]:
    """Settings enabling the plugin on the shared server; keywords override (by
    environment name), ``uri`` replaces ``NEO4J_URI``."""

    def settings(uri: str = NEO4J_URI, **overrides: str) -> Settings:
        values = {"NEO4J_USER": NEO4J_USER, "NEO4J_PASSWORD": NEO4J_PASSWORD, **overrides}
        return make_settings(
            tmp_path, WEAVER_METADATA_EXTERNAL_MODE="true", NEO4J_URI=uri, **values
        )

    return settings


@pytest.fixture
async def neo4j() -> AsyncIterator[AsyncDriver]:
    """A driver of the test's own, to look at the graph behind the plugin's back."""
    driver = AsyncGraphDatabase.driver(NEO4J_URI, auth=(NEO4J_USER, NEO4J_PASSWORD))
    yield driver
    await driver.close()


@pytest.fixture
async def forget_tenants(neo4j: AsyncDriver) -> AsyncIterator[Callable[[list[str]], None]]:
    """Register tenant ids whose nodes are removed when the test ends."""
    tenants: list[str] = []
    yield tenants.extend
    if tenants:
        await neo4j.execute_query(
            "MATCH (n) WHERE n.tenant_id IN $tenants DETACH DELETE n", tenants=tenants
        )


@pytest.fixture
def tenant(forget_tenants: Callable[[list[str]], None]) -> str:
    """A tenant of this test alone, its nodes removed at the end."""
    tenant_id = f"tn{uuid.uuid4().hex[:12]}"
    forget_tenants([tenant_id])
    return tenant_id


@pytest.fixture
async def host(neo4j_settings: Callable[..., Settings]) -> AsyncIterator[Host]:
    """A host with the graph in Neo4j."""
    async with running_host(neo4j_settings()) as host:
        yield host
