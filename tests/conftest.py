"""Fixtures for the core tests: an app on the embedded defaults, tokens, SQLite files."""

from __future__ import annotations

import sqlite3
from collections.abc import Awaitable, Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import BaseTestServer, TestClient

from weaver import hookspecs
from weaver.app import create_app
from weaver.auth import mint_token
from weaver.plugins import WeaverPluginManager
from weaver.settings import Settings
from weaver.testing import GatewayTestServer, make_settings

TESTS = Path(__file__).resolve().parent
# Every hook some test of this suite made the core call, as pluggy's monitoring saw it.
CALLED_HOOKS: set[str] = set()

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
def aiohttp_client(aiohttp_client: ClientFactory) -> ClientFactory:
    """pytest-aiohttp's client factory, serving an app the way `weaver serve` does, so that
    what aiohttp answers by itself is answered here as in production."""

    async def serve(
        app: web.Application | BaseTestServer,
        *,
        server_kwargs: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> TestClient[Any, Any]:
        if isinstance(app, web.Application):
            app = GatewayTestServer(app, **(server_kwargs or {}))
        return await aiohttp_client(app, **kwargs)

    return serve


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


@pytest.fixture(autouse=True, scope="session")
def _record_hook_calls() -> Iterator[None]:
    """Every plugin manager built during the run reports its calls to `CALLED_HOOKS`."""
    built = WeaverPluginManager.__init__

    def init(self: WeaverPluginManager) -> None:
        built(self)
        self.add_hookcall_monitoring(
            lambda hook, impls, kwargs: CALLED_HOOKS.add(hook), lambda *args: None
        )

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(WeaverPluginManager, "__init__", init)
        yield


def _whole_suite_ran(session: pytest.Session) -> bool:
    option = session.config.option
    if option.keyword or option.markexpr or getattr(option, "deselect", None):
        return False
    targets = {Path(arg.split("::")[0]).resolve() for arg in session.config.args}
    return TESTS in targets or TESTS.parent in targets


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """The contract's meta-test: a full run of this suite must have made the core call
    every hook through the facade (what a test merely defines does not count)."""
    if exitstatus != 0 or not _whole_suite_ran(session):
        return
    missing = sorted(set(hookspecs.combine_rules(hookspecs)) - CALLED_HOOKS)
    if missing:
        session.config.get_terminal_writer().line(
            f"hooks no test made the core call: {', '.join(missing)}", red=True
        )
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
