"""Owner dispatch that cannot be fooled: wrappers, two owners, late plugins, monitoring,
and one instance of a class plugin per app. Each case loads a real plugin the way an
installed one is loaded (an entry point), or registers one on a running host."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import ClientFactory
from tests.plugins.contenders import LateEngine, SecondEngine
from tests.test_plugins import entry
from weaver import hookspecs
from weaver.app import create_app
from weaver.bootstrap import build_host
from weaver.builtin.engine import EmbeddedEngine
from weaver.host import Host
from weaver.keys import HOST
from weaver.plugins import PluginConflict, build_plugin_manager
from weaver.settings import Settings
from weaver.testing import running_host

CONTENDERS = {"WEAVER_RECORDING_MODE": "1", "WEAVER_SECOND_MODE": "1"}
CONTENDING = [
    entry("recording", "tests.plugins.recording_engine"),
    entry("second", "tests.plugins.contenders:SecondEngine"),
]


def test_every_hook_has_its_combine_rule_beside_its_spec() -> None:
    rules = hookspecs.combine_rules(hookspecs)
    assert rules["execute_query"] == "owner" and rules["check_health"] == "each"
    # Every rule is applied by a typed facade method of the same name.
    facade = {"weaver_startup": "startup", "weaver_shutdown": "shutdown"}
    assert [h for h in rules if not callable(getattr(Host, facade.get(h, h), None))] == []


def test_a_spec_without_a_rule_is_refused() -> None:
    import types

    module = types.ModuleType("specs")

    @hookspecs._spec_marker
    def unruled(context: object) -> None: ...

    module.unruled = unruled  # type: ignore[attr-defined]
    with pytest.raises(TypeError, match="unruled"):
        hookspecs.combine_rules(module)


# --- wrappers ----------------------------------------------------------------------------


async def test_a_wrapper_on_an_owner_hook_never_becomes_the_owner(settings: Settings) -> None:
    host = build_host(
        settings,
        environ={"WEAVER_WRAPPER_MODE": "1"},
        discovered=[entry("wrapper", "tests.plugins.contenders:WrappingGuard")],
    )
    info = host.plugins["wrapper"]
    assert info.load_status == "down" and "guard_request" in (info.detail or "")
    assert host.pm.get_plugin("wrapper") is None
    assert host.owner_of("guard_request") == "embedded_guard"


# --- two owners --------------------------------------------------------------------------


async def test_two_owners_of_one_hook_are_a_conflict_not_a_choice(
    aiohttp_client: ClientFactory, settings: Settings
) -> None:
    client = await aiohttp_client(create_app(settings, environ=CONTENDERS, discovered=CONTENDING))
    response = await client.get("/health/ready")
    assert response.status == 503
    checks = (await response.json())["checks"]
    for name, other in (("recording", "second"), ("second", "recording")):
        assert checks[name]["status"] == "down"
        assert other in checks[name]["detail"] and "conflict" in checks[name]["detail"]
        assert checks[name]["conflicts"]["validate_connection"] == [other]
        assert checks[name]["conflicts"]["register_datasource"] == [other]
    # Neither answers: the hooks fall back to the embedded defaults.
    host = client.app[HOST]
    assert host.owner_of("validate_connection") == "embedded_engine"


def test_strict_mode_refuses_to_start_with_two_owners(settings: Settings) -> None:
    strict = settings.model_copy(update={"plugins_strict": True})
    with pytest.raises(PluginConflict, match="recording and second both own"):
        create_app(strict, environ=CONTENDERS, discovered=CONTENDING)


def test_the_conflict_is_one_clear_line_in_the_log(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    build_plugin_manager(settings, environ=CONTENDERS, discovered=CONTENDING)
    lines = [r.getMessage() for r in caplog.records if "conflict" in r.getMessage()]
    assert len(lines) == 1
    assert "recording and second both own" in lines[0]


# --- plugins registered later ------------------------------------------------------------


async def test_a_plugin_registered_on_a_running_host_takes_part(settings: Settings) -> None:
    async with running_host(settings) as host:
        assert await host.validate_connection("late", {}) is None
        host.register_plugin(LateEngine(), "late")
        assert host.owner_of("validate_connection") == "late"
        spec = await host.validate_connection("late", {})
        assert spec is not None and spec.public == {"late": "late"}
        host.pm.unregister(name="late")
        assert host.owner_of("validate_connection") == "embedded_engine"


async def test_a_plugin_registered_straight_on_pluggy_is_seen_too(settings: Settings) -> None:
    async with running_host(settings) as host:
        host.pm.register(LateEngine(), name="late")
        assert host.owner_of("validate_connection") == "late"


async def test_a_second_owner_registered_later_is_refused(settings: Settings) -> None:
    async with running_host(settings) as host:
        host.register_plugin(LateEngine(), "late")
        with pytest.raises(PluginConflict, match="validate_connection"):
            host.register_plugin(SecondEngine(settings), "second")
        assert host.pm.get_plugin("second") is None
        assert host.owner_of("validate_connection") == "late"


# --- monitoring and tracing --------------------------------------------------------------


async def test_pluggy_monitoring_sees_owner_and_each_calls(settings: Settings) -> None:
    seen: list[tuple[str, list[str]]] = []

    def before(hook: str, impls: list[Any], kwargs: dict[str, Any]) -> None:
        seen.append((hook, [impl.plugin_name for impl in impls]))

    async with running_host(settings) as host:
        undo = host.pm.add_hookcall_monitoring(before, lambda *args: None)
        try:
            await host.get_datasource("t", "missing")
            await host.check_health()
        finally:
            undo()
    assert ("get_datasource", ["embedded_store"]) in seen
    # An each-hook is called once per implementation, each seen on its own.
    health = [impls for hook, impls in seen if hook == "check_health"]
    assert sorted(name for impls in health for name in impls) == sorted(
        ["embedded_store", "embedded_engine"]
    )
    assert all(len(impls) == 1 for impls in health)


# --- one instance per app ----------------------------------------------------------------


def test_class_plugins_are_built_once_per_app_with_its_settings(settings: Settings) -> None:
    SecondEngine.built_with.clear()
    first = build_host(settings, environ={"WEAVER_SECOND_MODE": "1"}, discovered=CONTENDING[1:])
    second = build_host(settings, environ={"WEAVER_SECOND_MODE": "1"}, discovered=CONTENDING[1:])
    assert SecondEngine.built_with == [settings, settings]
    assert first.pm.get_plugin("second") is not second.pm.get_plugin("second")
    engines = [host.pm.get_plugin("embedded_engine") for host in (first, second)]
    assert all(isinstance(engine, EmbeddedEngine) for engine in engines)
    assert engines[0] is not engines[1]
