"""The `weaver` command as a new user meets it: help, refusals, settings errors, files."""

from __future__ import annotations

import subprocess
import sys
from importlib.metadata import entry_points
from pathlib import Path

import jwt
import pytest
from pydantic import ValidationError

from tests.serving import clean_environment
from weaver import cli
from weaver.plugins import ENTRY_POINT_GROUP
from weaver.settings import Settings, describe_invalid
from weaver.testing import make_settings

COMMANDS = (["serve"], ["plugins"], ["plugins", "--check"], ["token", "--tenant", "acme"])


def weaver(
    *args: str, cwd: Path | None = None, timeout: float = 60, **env: str
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "weaver", *args],
        cwd=cwd,
        env=clean_environment(**env),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_serve_help_describes_every_option() -> None:
    result = weaver("serve", "--help")
    assert result.returncode == 0
    text = " ".join(result.stdout.split())  # argparse wraps long help lines
    for described in (
        "--host HOST address to bind (default 127.0.0.1)",
        "--port PORT port to listen on (default 8000)",
        "--workers WORKERS worker processes sharing the port (default 1)",
        "--demo create a demo SQLite datasource",
        "--reload restart when a source file",
    ):
        assert described in text


def test_token_help_describes_every_option() -> None:
    result = weaver("token", "--help")
    assert result.returncode == 0
    assert "the token's tenant_id claim" in result.stdout
    assert "the token's sub claim" in result.stdout
    assert "viewer, editor, admin" in result.stdout


@pytest.mark.parametrize("roles", ["superuser", "viewer,root", ","])
def test_token_refuses_unknown_roles(roles: str) -> None:
    result = weaver("token", "--tenant", "acme", "--roles", roles)
    assert result.returncode == 2
    assert result.stdout == ""
    assert "choose from viewer, editor, admin" in result.stderr


def test_token_carries_the_roles_asked_for() -> None:
    secret = "cli-test-secret-0123456789abcdef0123"
    result = weaver(
        "token", "--tenant", "acme", "--sub", "ada", "--roles", "viewer, editor",
        JWT_SECRET_KEY=secret,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    claims = jwt.decode(result.stdout.strip(), secret, algorithms=["HS256"])
    assert (claims["tenant_id"], claims["sub"]) == ("acme", "ada")
    assert sorted(claims["roles"]) == ["editor", "viewer"]


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_a_bad_setting_is_one_line_naming_it(command: list[str], tmp_path: Path) -> None:
    result = weaver(*command, cwd=tmp_path, LOG_LEVEL="LOUD")
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        "weaver: LOG_LEVEL='LOUD' is invalid: expected one of DEBUG, INFO, WARNING, ERROR, CRITICAL"
    ]
    assert list(tmp_path.iterdir()) == []


def test_every_bad_setting_gets_its_line(tmp_path: Path) -> None:
    result = weaver(
        "serve",
        cwd=tmp_path,
        WEAVER_RATE_LIMIT="lots",
        WEAVER_MAX_BODY_BYTES="-1",
        WEAVER_EXTERNAL_MODE="maybe",
    )
    assert result.returncode == 2
    lines = {line.split("=", 1)[0]: line for line in result.stderr.splitlines()}
    assert len(lines) == 3, result.stderr
    assert lines["weaver: WEAVER_RATE_LIMIT"] == (
        "weaver: WEAVER_RATE_LIMIT='lots' is invalid: expected <requests>/<seconds>s, "
        "such as 600/60s"
    )
    assert lines["weaver: WEAVER_MAX_BODY_BYTES"] == (
        "weaver: WEAVER_MAX_BODY_BYTES='-1' is invalid: input should be greater than or equal to 1"
    )
    assert lines["weaver: WEAVER_EXTERNAL_MODE"].startswith(
        "weaver: WEAVER_EXTERNAL_MODE='maybe' is invalid: input should be a valid boolean"
    )
    assert "errors.pydantic.dev" not in result.stderr


def test_a_secret_is_never_echoed() -> None:
    with pytest.raises(ValidationError) as caught:
        Settings.model_validate(
            {"jwt_secret_key": 987654321, "redis_url": 5, "mindsdb_url": ["http://u:pw@h"]}
        )
    lines = {line.split("=", 1)[0]: line for line in describe_invalid(caught.value)}
    assert len(lines) == 3
    assert lines["JWT_SECRET_KEY"].startswith("JWT_SECRET_KEY=(hidden) is invalid")
    assert "987654321" not in "".join(lines.values())
    assert lines["REDIS_URL"].startswith("REDIS_URL=5 is invalid")
    assert lines["MINDSDB_URL"].startswith("MINDSDB_URL=(hidden) is invalid")
    assert "pw" not in lines["MINDSDB_URL"]


@pytest.mark.parametrize("check", [[], ["--check"]], ids=["list", "check"])
def test_plugins_leaves_no_file_where_it_is_run(check: list[str], tmp_path: Path) -> None:
    result = weaver("plugins", *check, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "embedded_store" in result.stdout
    assert list(tmp_path.iterdir()) == []


def test_plugins_checks_an_existing_data_directory_in_place(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    result = weaver("plugins", "--check", cwd=tmp_path, WEAVER_DATA_DIR=str(data))
    assert result.returncode == 0, result.stderr
    assert (data / "encryption.key").exists()


async def test_an_uninstalled_plugin_says_how_to_install_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    without_redis_guard = [
        ep for ep in entry_points(group=ENTRY_POINT_GROUP) if ep.name != "redis_guard"
    ]
    settings = make_settings(tmp_path)
    assert await cli._plugins(settings, check=False, discovered=without_redis_guard) == 0
    rows = {line.split()[0]: line for line in capsys.readouterr().out.splitlines()}
    assert "not installed" in rows["redis_guard"]
    assert "pip install -e plugins/weaver_redis_guard" in rows["redis_guard"]
    assert " - " in rows["redis_guard"]  # no version
    assert "not installed" not in rows["pg"]

    enabled = make_settings(tmp_path, WEAVER_REQUEST_GUARD_REDIS_MODE="true")
    await cli._plugins(enabled, check=False, discovered=without_redis_guard)
    row = next(r for r in capsys.readouterr().out.splitlines() if r.startswith("redis_guard"))
    assert " down " in row and "pip install -e plugins/weaver_redis_guard" in row


def test_reload_and_workers_do_not_mix() -> None:
    result = weaver("serve", "--reload", "--workers", "2")
    assert result.returncode == 2
    assert "--reload runs one worker" in result.stderr
