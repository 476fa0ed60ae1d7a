"""The conformance kit's own guarantee: a contract passes only when the plugin it names
is the one answering its hooks, never because an embedded default answered instead."""

from __future__ import annotations

from importlib.metadata import EntryPoint
from pathlib import Path

import pytest

from weaver.bootstrap import build_host
from weaver.host import Host
from weaver.testing import (
    EngineContract,
    GuardContract,
    QueryStoreContract,
    StoreContract,
    make_settings,
)
from weaver.testing.harness import IDEMPOTENCY_TTL_SECONDS, PluginContract


def host_with(tmp_path: Path, name: str, module: str) -> Host:
    return build_host(
        make_settings(tmp_path),
        environ={f"WEAVER_{name.upper()}_MODE": "true"},
        discovered=[EntryPoint(name, module, "weaver")],
    )


@pytest.mark.parametrize(
    "contract", [GuardContract, StoreContract, QueryStoreContract, EngineContract]
)
def test_a_plugin_owning_none_of_the_hooks_fails_the_contract(
    tmp_path: Path, contract: type[PluginContract]
) -> None:
    host = host_with(tmp_path, "health_only", "tests.plugins.health_only")
    suite = type("TestHealthOnly", (contract,), {"plugin": "health_only"})()
    with pytest.raises(AssertionError, match="answered by another plugin than 'health_only'"):
        suite.test_the_plugin_under_test_answers(host)


def test_the_plugin_answering_passes(tmp_path: Path) -> None:
    host = host_with(tmp_path, "failing_guard", "tests.plugins.failing_guard")
    # failing_guard owns guard_request only; guard_response stays embedded.
    partial = type("TestPartial", (GuardContract,), {"plugin": "failing_guard"})()
    with pytest.raises(AssertionError, match="guard_response"):
        partial.test_the_plugin_under_test_answers(host)
    narrowed = type(
        "TestNarrowed",
        (GuardContract,),
        {"plugin": "failing_guard", "plugin_hooks": ("guard_request",)},
    )()
    narrowed.test_the_plugin_under_test_answers(host)


def test_a_contract_must_name_its_plugin(tmp_path: Path) -> None:
    host = host_with(tmp_path, "health_only", "tests.plugins.health_only")
    unnamed = type("TestUnnamed", (GuardContract,), {})()
    with pytest.raises(AssertionError, match="must name the plugin under test"):
        unnamed.test_the_plugin_under_test_answers(host)
    stray = type(
        "TestStray",
        (GuardContract,),
        {"plugin": "embedded_guard", "plugin_hooks": ("execute_query",)},
    )()
    with pytest.raises(AssertionError, match="not hooks of this contract"):
        stray.test_the_plugin_under_test_answers(host)


def test_kit_settings_keep_idempotency_records_briefly(tmp_path: Path) -> None:
    # The guard contract waits for a record to expire; with the production default of
    # 600 s a subclass built from make_settings would run for ten minutes.
    assert make_settings(tmp_path).idempotency_ttl_seconds == IDEMPOTENCY_TTL_SECONDS <= 5


async def test_the_expiry_test_refuses_to_wait_out_a_long_ttl(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, WEAVER_REQUEST_GUARD_IDEMPOTENCY_TTL_SECONDS="600")
    host = build_host(settings, environ={})
    suite = type("TestLongTtl", (GuardContract,), {"plugin": "embedded_guard"})()
    with pytest.raises(pytest.fail.Exception, match="would wait that long"):
        await suite.test_stored_response_expires_after_the_ttl(host)
