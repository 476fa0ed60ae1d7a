"""The PostgreSQL guard with no database to reach: requests get `GuardUnavailable` at
once (for the core's fail-open rule), health says down, and the log says where the
database was expected once per outage, without its password.

Needs no server (the port is closed), so it runs in every suite.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest
from weaver_pg_guard.plugin import DSN_VARIABLE, PLUGIN_NAME, describe_target

from weaver.errors import GuardUnavailable
from weaver.testing import free_port, make_settings, running_host
from weaver.testing.guard import guard_request, new_principal, write

FLAG = {"WEAVER_PG_GUARD_MODE": "true"}


async def test_every_call_is_unavailable_and_logged_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="weaver_pg_guard.plugin")
    port = free_port()
    dsn = f"postgresql://weaver:secret-password@127.0.0.1:{port}/guard"
    async with running_host(make_settings(tmp_path, POSTGRES_DSN=dsn), FLAG) as host:
        assert host.owner_of("guard_request") == PLUGIN_NAME
        outcomes = await asyncio.gather(
            host.guard_request(guard_request(new_principal())),
            host.guard_request(write(new_principal(), "key-1")),
            *(host.guard_request(guard_request(new_principal())) for _ in range(5)),
            return_exceptions=True,
        )
        assert all(isinstance(o, GuardUnavailable) for o in outcomes), outcomes
        detail = str(outcomes[0])
        assert "secret-password" not in detail and "127.0.0.1" not in detail
        check = (await host.check_health())[PLUGIN_NAME]
        assert check.status == "down"
        assert "secret-password" not in str(check.detail)

    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1, warnings
    assert f"127.0.0.1:{port}/guard" in warnings[0]
    assert "secret-password" not in warnings[0]


async def test_without_a_dsn_the_plugin_is_down(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Settings read the environment too: no DSN from the shell either.
    for variable in ("POSTGRES_DSN", DSN_VARIABLE):
        monkeypatch.delenv(variable, raising=False)
    async with running_host(make_settings(tmp_path), FLAG) as host:
        assert "POSTGRES_DSN" in host.startup_errors[PLUGIN_NAME]
        assert (await host.check_health())[PLUGIN_NAME].status == "down"
        with pytest.raises(GuardUnavailable):
            await host.guard_request(guard_request(new_principal()))


@pytest.mark.parametrize(
    ("dsn", "shown"),
    [
        ("postgresql://u:pw@db.internal:6543/guard", "db.internal:6543/guard"),
        ("postgres://db.internal/guard", "db.internal:5432/guard"),
        ("host=db.internal password=pw", "the configured database"),
    ],
)
def test_the_log_names_the_database_without_credentials(dsn: str, shown: str) -> None:
    assert describe_target(dsn) == shown
