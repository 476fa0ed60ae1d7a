"""The shape of the code, read from its imports: no circle among the core's modules, and
nothing but the HTTP layer (and the app that mounts it) depends on ``weaver.api``."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CORE = ROOT / "weaver"
PLUGIN_SOURCES = sorted((ROOT / "plugins").glob("*/src"))
# The composition root: it mounts the API's routes, so it may import them.
MAY_IMPORT_API = {"weaver.app"}


def _modules(source_root: Path, package_dir: Path) -> dict[str, Path]:
    found = {}
    for path in package_dir.rglob("*.py"):
        parts = path.relative_to(source_root).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found[name] = path
    return found


def _imports(name: str, path: Path) -> set[str]:
    """Every module ``name`` imports, absolute, whether or not under TYPE_CHECKING; for
    ``from package import submodule``, the submodule."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join([*base, *([node.module] if node.module else [])])
            else:
                module = node.module or ""
            for alias in node.names:
                submodule = f"{module}.{alias.name}"
                found.add(submodule if submodule in CORE_MODULES else module)
    return found


CORE_MODULES = _modules(ROOT, CORE)
CORE_EDGES = {
    name: {dep for dep in _imports(name, path) if dep in CORE_MODULES and dep != name}
    for name, path in CORE_MODULES.items()
}


def _cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    cycles: list[list[str]] = []
    state: dict[str, int] = {}
    path: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        path.append(node)
        for dep in sorted(edges[node]):
            if state.get(dep) == 1:
                cycles.append([*path[path.index(dep) :], dep])
            elif dep not in state:
                visit(dep)
        path.pop()
        state[node] = 2

    for node in sorted(edges):
        if node not in state:
            visit(node)
    return cycles


def test_the_walk_sees_the_core() -> None:
    # A walk that found nothing would pass every check below.
    assert {"weaver.host", "weaver.hookspecs", "weaver.api.query"} <= CORE_MODULES.keys()
    assert "weaver.context" in CORE_EDGES["weaver.hookspecs"]


def test_no_circle_among_core_modules() -> None:
    assert _cycles(CORE_EDGES) == []


def test_the_contract_imports_no_implementation() -> None:
    contract = {"weaver.hookspecs", "weaver.context"}
    implementation = {"weaver.host", "weaver.plugins", "weaver.bootstrap", "weaver.app"}
    for module in contract:
        assert not CORE_EDGES[module] & implementation, module


def test_only_the_http_layer_depends_on_weaver_api() -> None:
    offenders = {
        name: sorted(dep for dep in deps if dep.startswith("weaver.api"))
        for name, deps in CORE_EDGES.items()
        if not name.startswith("weaver.api") and name not in MAY_IMPORT_API
    }
    assert {name: deps for name, deps in offenders.items() if deps} == {}


@pytest.mark.parametrize("source", PLUGIN_SOURCES, ids=lambda p: p.parent.name)
def test_plugins_do_not_depend_on_weaver_api(source: Path) -> None:
    for package in source.iterdir():
        if not package.is_dir() or package.name.endswith(".egg-info"):
            continue
        for name, path in _modules(source, package).items():
            assert not any(d.startswith("weaver.api") for d in _imports(name, path)), name


@pytest.mark.parametrize(
    "source", [ROOT, *PLUGIN_SOURCES], ids=lambda p: "core" if p == ROOT else p.parent.name
)
def test_every_module_imports_with_warnings_as_errors(source: Path) -> None:
    """A deprecation met at import time fails here, not in a user's log."""
    packages = (
        ["weaver"]
        if source == ROOT
        else [p.name for p in source.iterdir() if p.is_dir() and not p.name.endswith("-info")]
    )
    script = (
        "import importlib, pkgutil, sys\n"
        f"for top in {packages!r}:\n"
        "    package = importlib.import_module(top)\n"
        "    for info in pkgutil.walk_packages(package.__path__, top + '.'):\n"
        "        if not info.name.endswith('.__main__'):\n"
        "            importlib.import_module(info.name)\n"
    )
    done = subprocess.run(
        [sys.executable, "-W", "error", "-c", script],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
