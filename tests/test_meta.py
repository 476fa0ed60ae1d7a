"""Keep the contract honest: every hook documented and tested, every seed setting known."""

from __future__ import annotations

import inspect
import re
from pathlib import Path
from typing import Any

import pytest

from weaver import hookspecs
from weaver.settings import Settings
from weaver.types import Page

ROOT = Path(__file__).resolve().parent.parent
HOOKS = sorted(
    name
    for name, value in vars(hookspecs).items()
    if callable(value) and hasattr(value, "weaver_spec")
)
SEED = ROOT.parent / "shared" / "seed" / "000_a440c6df192e4298.txt"


def test_hooks_exist() -> None:
    assert {"execute_query", "store_metadata", "guard_request", "check_health"} <= set(HOOKS)


@pytest.mark.parametrize("hook", HOOKS)
def test_every_hook_is_documented(hook: str) -> None:
    doc = inspect.getdoc(getattr(hookspecs, hook)) or ""
    assert "Rule:" in doc, f"{hook} does not say how results combine"
    assert "sync" in doc.lower() or "async" in doc.lower(), (
        f"{hook} does not say if async is allowed"
    )


async def test_hook_calls_are_recorded_for_the_whole_suite_check(tmp_path: Path) -> None:
    """`tests.conftest` fails a full run in which some hook was never called through the
    facade; this proves the recording it relies on sees a real call."""
    from tests.conftest import CALLED_HOOKS
    from weaver.testing import make_settings, running_host

    CALLED_HOOKS.discard("list_glossary_terms")
    async with running_host(make_settings(tmp_path)) as host:
        await host.list_glossary_terms("t", None, Page(1))
    assert "list_glossary_terms" in CALLED_HOOKS


@pytest.mark.skipif(not SEED.exists(), reason="the deployment document is beside the repo")
def test_every_seed_variable_is_a_setting() -> None:
    table_rows = re.findall(r"^\| `([A-Z][A-Z0-9_]+)` \|", SEED.read_text(), re.M)
    assert len(table_rows) > 20
    known = set()
    for name, info in Settings.model_fields.items():
        alias = info.validation_alias
        known.add(str(alias if isinstance(alias, str) else name).upper())
    missing = sorted(set(table_rows) - known)
    assert not missing, f"settings missing for {missing}"


async def test_answers_outside_the_declared_model_fail_under_test_settings(
    aiohttp_client: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """Every route of the suite runs with this check on (``APP_ENV=test``); here is a
    route that breaks its model, to show the check bites."""
    from aiohttp import web

    from weaver.api.models import Answer
    from weaver.responses import json_response
    from weaver.routing import ResponseMismatch, RouteTable
    from weaver.types import Principal

    class Declared(Answer):
        name: str

    table = RouteTable()

    @table.route("GET", "/good", summary="", tag="t", response=Declared)
    async def good(request: web.Request) -> web.StreamResponse:
        return json_response({"name": "x"})

    @table.route("GET", "/bad", summary="", tag="t", response=Declared)
    async def bad(request: web.Request) -> web.StreamResponse:
        return json_response({"name": "x", "undeclared": 1})

    app = web.Application()
    table.install(app, web.RequestKey("principal", Principal), check_responses=True)
    client = await aiohttp_client(app)
    assert (await client.get("/good")).status == 200
    assert (await client.get("/bad")).status == 500
    assert ResponseMismatch.__name__ in caplog.text and "undeclared" in caplog.text
