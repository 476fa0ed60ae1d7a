"""`make run` as a new user meets it: it installs once, quietly, and only again when
pyproject.toml changes; PORT and PYTHON are honoured and documented."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()

pytestmark = pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")


def make(*args: str, venv: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["make", "--no-print-directory", "-C", str(ROOT), *args, f"VENV={venv}"],
        capture_output=True,
        text=True,
        timeout=600,
    )


def planned(*args: str, venv: Path) -> list[str]:
    """The commands make would run (``make -n``), none of them run."""
    result = make("-n", *args, venv=venv)
    assert result.returncode == 0, result.stderr
    return result.stdout.splitlines()


def fake_venv(tmp_path: Path, *, installed_after_pyproject: bool) -> Path:
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    (venv / "bin" / "python").touch()
    stamp = venv / ".installed-core"
    stamp.touch()
    pyproject = (ROOT / "pyproject.toml").stat().st_mtime
    moment = pyproject + 60 if installed_after_pyproject else pyproject - 60
    os.utime(stamp, (moment, moment))
    return venv


def test_run_serves_without_installing_when_nothing_changed(tmp_path: Path) -> None:
    venv = fake_venv(tmp_path, installed_after_pyproject=True)
    assert planned("run", venv=venv) == [
        f"{venv}/bin/weaver serve --host 127.0.0.1 --port 8000 --demo"
    ]


def test_run_installs_again_after_pyproject_changed(tmp_path: Path) -> None:
    venv = fake_venv(tmp_path, installed_after_pyproject=False)
    commands = planned("run", venv=venv)
    assert any("pip install" in c and c.endswith("-e .") for c in commands), commands
    assert commands[-1].endswith("--demo")


def test_port_and_python_are_honoured_and_documented(tmp_path: Path) -> None:
    venv = fake_venv(tmp_path, installed_after_pyproject=True)
    assert planned("run", "PORT=8123", venv=venv)[-1].endswith("--port 8123 --demo")
    fresh = planned("run", "PYTHON=python3.12", venv=tmp_path / "none")
    assert f"python3.12 -m venv {tmp_path / 'none'}" in fresh
    assert "make run PORT=8080" in README
    assert "make run PYTHON=python3.12" in README


def test_a_python_older_than_3_11_is_refused(tmp_path: Path) -> None:
    old = tmp_path / "python3.10"
    old.write_text("#!/bin/sh\nexit 1\n")  # answers the version check the way 3.10 would
    old.chmod(0o755)
    result = make("install-core", f"PYTHON={old}", venv=tmp_path / "venv")
    assert result.returncode != 0
    assert "Weaver needs Python 3.11 or newer: make run PYTHON=python3.12" in result.stderr
    assert not (tmp_path / "venv").exists()


def test_install_is_quiet_and_happens_once(tmp_path: Path) -> None:
    # A real virtual environment, installed as `make run` does the first time.
    venv = tmp_path / "venv"
    first = make("install-core", f"PYTHON={sys.executable}", venv=venv)
    assert first.returncode == 0, first.stdout + first.stderr
    # setuptools' notice about editable installs, ten lines on every start before.
    assert "BuildBackendWarning" not in first.stderr
    assert "Please be careful with folders" not in first.stderr
    assert (venv / "bin" / "weaver").exists()
    again = make("install-core", f"PYTHON={sys.executable}", venv=venv)
    assert again.returncode == 0
    assert "pip" not in again.stdout, again.stdout
