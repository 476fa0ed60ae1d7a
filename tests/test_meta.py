"""Keep the contract honest: every hook documented and tested, every seed setting known."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import pytest

from weaver import hookspecs
from weaver.settings import Settings

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


@pytest.mark.parametrize("hook", HOOKS)
def test_every_hook_is_exercised_by_a_test(hook: str) -> None:
    texts = [
        path.read_text()
        for folder in (ROOT / "tests", ROOT / "weaver" / "testing")
        for path in folder.rglob("*.py")
    ]
    facade_call = re.compile(rf"\.{hook}\(|\bdef {hook}\(|\"hook {hook}\"")
    assert any(facade_call.search(text) for text in texts), f"no test calls {hook}"


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
