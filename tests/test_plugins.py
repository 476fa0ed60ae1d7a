"""Plugin loading: flags, import failures, discovery, hook validation, health."""

from __future__ import annotations

import sys
import textwrap
from collections.abc import Iterator
from importlib.metadata import EntryPoint
from pathlib import Path
from typing import Any

import pluggy
import pytest

from tests.conftest import ClientFactory
from weaver.app import create_app
from weaver.bootstrap import build_host
from weaver.plugins import PluginLoadError, build_plugin_manager, mode_flag
from weaver.settings import Settings


def entry(name: str, module: str) -> EntryPoint:
    return EntryPoint(name, module, "weaver")


def test_seed_flags_map_to_plugin_names() -> None:
    assert mode_flag("mindsdb") == "WEAVER_EXTERNAL_MODE"
    assert mode_flag("neo4j") == "WEAVER_METADATA_EXTERNAL_MODE"
    assert mode_flag("pg") == "WEAVER_METADATA_PG_MODE"
    assert mode_flag("redis_guard") == "WEAVER_REQUEST_GUARD_REDIS_MODE"
    assert mode_flag("acme") == "WEAVER_ACME_MODE"


def test_disabled_plugin_is_blocked_and_never_imported(settings: Settings) -> None:
    sys.modules.pop("tests.plugins.import_canary", None)
    pm, infos = build_plugin_manager(
        settings, environ={}, discovered=[entry("canary", "tests.plugins.import_canary")]
    )
    assert infos["canary"].load_status == "disabled"
    assert pm.is_blocked("canary")
    assert "tests.plugins.import_canary" not in sys.modules


def test_enabled_plugin_is_imported_and_registered(settings: Settings) -> None:
    pm, infos = build_plugin_manager(
        settings,
        environ={"WEAVER_CANARY_MODE": "true"},
        discovered=[entry("canary", "tests.plugins.import_canary")],
    )
    assert infos["canary"].load_status == "loaded"
    assert pm.get_plugin("canary") is not None


def test_import_error_is_down_with_the_reason(settings: Settings) -> None:
    pm, infos = build_plugin_manager(
        settings,
        environ={"WEAVER_BROKEN_MODE": "1"},
        discovered=[entry("broken", "tests.plugins.broken_import")],
    )
    assert infos["broken"].load_status == "down"
    assert "libfoo" in (infos["broken"].detail or "")
    assert pm.get_plugin("broken") is None


@pytest.mark.parametrize(
    ("target", "reason"),
    [
        ("tests.plugins.broken_import", "libfoo"),
        # A wrapper would become an owner that answers with a generator.
        ("tests.plugins.contenders:WrappingGuard", "wrappers on guard_request"),
    ],
)
def test_strict_mode_raises_on_a_plugin_that_cannot_take_part(
    settings: Settings, target: str, reason: str
) -> None:
    strict = settings.model_copy(update={"plugins_strict": True})
    with pytest.raises(PluginLoadError, match=reason):
        build_plugin_manager(
            strict, environ={"WEAVER_BROKEN_MODE": "1"}, discovered=[entry("broken", target)]
        )


def test_misspelt_hook_fails_loudly(settings: Settings) -> None:
    with pytest.raises(pluggy.PluginValidationError, match="guard_requests"):
        build_plugin_manager(
            settings,
            environ={"WEAVER_TYPO_MODE": "1"},
            discovered=[entry("typo", "tests.plugins.misspelt_hook")],
        )


def test_seed_flag_on_without_the_package_is_down(settings: Settings) -> None:
    flagged = settings.model_copy(update={"metadata_external_mode": True})
    _, infos = build_plugin_manager(flagged, environ={}, discovered=[])
    assert infos["neo4j"].load_status == "down"
    assert "is installed" in (infos["neo4j"].detail or "")


@pytest.fixture
def installed_distribution(tmp_path: Path) -> Iterator[str]:
    """A real third-party distribution on sys.path, found through its metadata only."""
    root = tmp_path / "site"
    package = root / "weaver_acme"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "plugin.py").write_text(
        textwrap.dedent(
            """
            from weaver import hookimpl
            from weaver.types import HealthCheck

            @hookimpl
            def check_health():
                return HealthCheck("up", extra={"vendor": "acme"})
            """
        )
    )
    info = root / "weaver_acme-1.2.3.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: weaver-acme\nVersion: 1.2.3\n")
    (info / "entry_points.txt").write_text("[weaver]\nacme = weaver_acme.plugin\n")
    sys.path.insert(0, str(root))
    try:
        yield "acme"
    finally:
        sys.path.remove(str(root))
        for module in ("weaver_acme.plugin", "weaver_acme"):
            sys.modules.pop(module, None)


async def test_third_party_entry_point_is_discovered(
    aiohttp_client: ClientFactory, settings: Settings, installed_distribution: str
) -> None:
    app = create_app(settings, environ={"WEAVER_ACME_MODE": "true"})
    client = await aiohttp_client(app)
    body = await (await client.get("/health/ready")).json()
    acme = body["checks"]["acme"]
    assert acme["status"] == "up"
    assert acme["vendor"] == "acme"


async def test_third_party_plugin_off_is_listed_disabled(
    aiohttp_client: ClientFactory, settings: Settings, installed_distribution: str
) -> None:
    client = await aiohttp_client(create_app(settings, environ={}))
    body = await (await client.get("/health/ready")).json()
    assert body["checks"]["acme"]["status"] == "disabled"


async def test_broken_plugin_makes_ready_503_but_the_gateway_serves(
    aiohttp_client: ClientFactory, settings: Settings, auth: Any
) -> None:
    app = create_app(
        settings,
        environ={"WEAVER_BROKEN_MODE": "1"},
        discovered=[entry("broken", "tests.plugins.broken_import")],
    )
    client = await aiohttp_client(app)
    response = await client.get("/health/ready")
    assert response.status == 503
    body = await response.json()
    assert body["status"] == "degraded"
    assert body["checks"]["broken"]["status"] == "down"
    assert (await client.get("/health/live")).status == 200
    assert (await client.get("/api/datasources", headers=auth())).status == 200


async def test_startup_failure_and_hanging_health_are_down(
    aiohttp_client: ClientFactory, settings: Settings
) -> None:
    quick = settings.model_copy(update={"health_check_timeout": 0.2})
    app = create_app(
        quick,
        environ={"WEAVER_NOSTART_MODE": "1", "WEAVER_HANGS_MODE": "1"},
        discovered=[
            entry("nostart", "tests.plugins.slow_and_failing:fails_to_start"),
            entry("hangs", "tests.plugins.slow_and_failing:hangs_on_health"),
        ],
    )
    client = await aiohttp_client(app)
    response = await client.get("/health/ready")
    assert response.status == 503
    checks = (await response.json())["checks"]
    assert checks["nostart"]["status"] == "down"
    assert "refused" in checks["nostart"]["detail"]
    assert checks["hangs"]["status"] == "down"
    assert "0.2s" in checks["hangs"]["detail"]


async def test_every_plugin_is_shut_down_even_when_one_fails(settings: Settings) -> None:
    from tests.plugins import slow_and_failing

    environ = {"WEAVER_BADCLOSE_MODE": "1", "WEAVER_GOODCLOSE_MODE": "1"}
    discovered = [
        entry("badclose", "tests.plugins.slow_and_failing:fails_to_shut_down"),
        entry("goodclose", "tests.plugins.slow_and_failing:shuts_down"),
    ]
    before = slow_and_failing.shuts_down.calls
    host = build_host(settings, environ=environ, discovered=discovered)
    await host.startup()
    await host.shutdown()
    assert slow_and_failing.fails_to_shut_down.calls >= 1
    assert slow_and_failing.shuts_down.calls == before + 1


async def test_defaults_start_before_plugins_and_stop_after_them(settings: Settings) -> None:
    from tests.plugins import slow_and_failing

    host = build_host(
        settings,
        environ={"WEAVER_ORDER_MODE": "1"},
        discovered=[entry("order", "tests.plugins.slow_and_failing:order_probe")],
    )
    await host.startup()
    # The store answered while the plugin started: it was already open.
    assert slow_and_failing.order_probe.saw_store_open is True
    await host.shutdown()
    assert slow_and_failing.order_probe.store_open_at_shutdown is True
