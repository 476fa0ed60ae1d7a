"""Fixtures for the core tests: an app on the embedded defaults, tokens, SQLite files."""

from __future__ import annotations

import sqlite3
from collections.abc import Awaitable, Callable, Iterable
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from weaver.app import create_app
from weaver.auth import mint_token
from weaver.settings import Settings
from weaver.testing import make_settings

TENANT_A = "tenant-a"
TENANT_B = "tenant-b"

ClientFactory = Callable[..., Awaitable[TestClient[Any, Any]]]

SHOP_SCHEMA = """
CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT NOT NULL, country TEXT,
                        balance NUMERIC, signed_up DATE);
CREATE TABLE orders (id INTEGER PRIMARY KEY,
                     customer_id INTEGER NOT NULL REFERENCES customers(id),
                     total REAL, placed_at TIMESTAMP, note TEXT);
INSERT INTO customers VALUES (1, 'Ada', 'KR', 10.50, '2024-01-02'),
                             (2, 'Bo', 'DE', NULL, '2024-02-03'),
                             (3, 'Cy', NULL, 3.25, '2024-03-04');
INSERT INTO orders VALUES (10, 1, 99.5, '2025-01-01T10:00:00', 'first'),
                          (11, 1, 5.0, '2025-01-02T11:00:00', NULL),
                          (12, 2, 12.25, '2025-02-01T12:00:00', NULL);
"""

TIERS_SCHEMA = """
CREATE TABLE tiers (customer_id INTEGER PRIMARY KEY, tier TEXT NOT NULL);
INSERT INTO tiers VALUES (1, 'gold'), (2, 'silver'), (3, 'bronze');
"""


@pytest.fixture
def settings_overrides() -> dict[str, str]:
    """Override in a test module to change settings for its app."""
    return {}


@pytest.fixture
def settings(tmp_path: Path, settings_overrides: dict[str, str]) -> Settings:
    values = {
        "WEAVER_SQLITE_ROOT": str(tmp_path / "sqlite"),
        "WEAVER_CORS_ALLOWED_ORIGINS": "http://localhost:3000",
    }
    values.update(settings_overrides)
    return make_settings(tmp_path / "data", **values)


@pytest.fixture
def sqlite_file(settings: Settings) -> Callable[[str, str], Path]:
    """Write a SQLite database under the SQLite root from a script."""

    def write(relative: str, script: str) -> Path:
        path = settings.sqlite_root_path / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        with sqlite3.connect(path) as db:
            db.executescript(script)
        db.close()
        return path

    return write


@pytest.fixture
def token(settings: Settings) -> Callable[..., str]:
    def mint(tenant: str = TENANT_A, roles: Iterable[str] = ("editor",), sub: str = "alice") -> str:
        return mint_token(settings, tenant_id=tenant, subject=sub, roles=roles)

    return mint


@pytest.fixture
def auth(token: Callable[..., str]) -> Callable[..., dict[str, str]]:
    """Headers for a caller: ``auth()``, ``auth(TENANT_B)``, ``auth(roles=["viewer"])``."""

    def headers(tenant: str = TENANT_A, **kwargs: Any) -> dict[str, str]:
        return {"Authorization": f"Bearer {token(tenant, **kwargs)}"}

    return headers


@pytest.fixture
async def client(aiohttp_client: ClientFactory, settings: Settings) -> TestClient[Any, Any]:
    return await aiohttp_client(create_app(settings))


@pytest.fixture
async def shop(
    client: TestClient[Any, Any],
    sqlite_file: Callable[[str, str], Path],
    auth: Callable[..., dict[str, str]],
) -> str:
    """A `shop` datasource of tenant A over a small SQLite file."""
    sqlite_file("shop.db", SHOP_SCHEMA)
    response = await client.post(
        "/api/datasources",
        json={"name": "shop", "engine": "sqlite", "connection": {"path": "shop.db"}},
        headers=auth(),
    )
    assert response.status == 201, await response.text()
    return "shop"


def assert_problem(body: dict[str, Any], status: int) -> None:
    assert body["status"] == status
    assert {"type", "title", "status", "detail", "request_id"} <= body.keys()
    assert "Traceback" not in body["detail"]
