"""The README's "Writing a plugin", run as written: its files are written out, the
plugin is built and installed as a distribution, and its conformance test is run with
pytest, in a directory of its own, the way a plugin author would."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from tests.serving import clean_environment
from weaver.testing import GuardContract

README = Path(__file__).resolve().parent.parent / "README.md"
SNIPPET_FILES = {"pyproject.toml", "src/weaver_acme/plugin.py", "tests/test_acme.py"}


def plugin_snippets() -> dict[str, str]:
    """The section's code blocks by the file their first line names (``# path``)."""
    section = README.read_text().split("### Writing a plugin", 1)[1].split("\n## ", 1)[0]
    files = {}
    for block in re.findall(r"```(?:toml|python)\n(.*?)```", section, re.S):
        first = block.partition("\n")[0]
        assert first.startswith("# "), f"a block that names no file: {first!r}"
        files[first[2:].strip()] = block
    return files


def test_the_section_names_the_plugins_files() -> None:
    assert set(plugin_snippets()) == SNIPPET_FILES


def test_the_plugin_installs_and_passes_the_kit_as_written(tmp_path: Path) -> None:
    project, site = tmp_path / "weaver-acme", tmp_path / "site"
    for name, text in plugin_snippets().items():
        (project / name).parent.mkdir(parents=True, exist_ok=True)
        (project / name).write_text(text)

    # Offline: against the gateway installed here, with the build backend installed here.
    install = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
         "--no-deps", "--no-build-isolation", "--target", str(site), str(project)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert install.returncode == 0, install.stdout + install.stderr
    assert list(site.glob("weaver_acme-0.1.0.dist-info/entry_points.txt"))

    tests = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"],
        cwd=project,
        env=clean_environment(PYTHONPATH=str(site)),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert tests.returncode == 0, tests.stdout + tests.stderr
    summary = tests.stdout.strip().splitlines()[-1]
    # Every test of the kit ran, the check that acme is the one answering included.
    kit = [name for name in dir(GuardContract) if name.startswith("test_")]
    assert "test_the_plugin_under_test_answers" in kit
    assert re.match(rf"{len(kit)} passed in ", summary), summary
