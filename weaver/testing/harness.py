"""Building a started host outside an HTTP app, for contract tests."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from weaver.bootstrap import build_host
from weaver.host import Host
from weaver.settings import Settings


def make_settings(data_dir: Path, **overrides: Any) -> Settings:
    """Settings for a test: a private data directory and a fixed encryption key.

    Keyword names are the environment variable names (``WEAVER_EXTERNAL_MODE="true"``).
    """
    values: dict[str, Any] = {
        "APP_ENV": "test",
        "WEAVER_DATA_DIR": str(data_dir),
        "ENCRYPTION_KEY": "test-encryption-key-0123456789abcdef",
        "JWT_SECRET_KEY": "test-jwt-secret-0123456789abcdef0123",
    }
    values.update(overrides)
    return Settings.from_env_names(values)


@asynccontextmanager
async def running_host(
    settings: Settings, environ: Mapping[str, str] | None = None
) -> AsyncIterator[Host]:
    """A started host; ``environ`` carries third-party plugin flags (``WEAVER_X_MODE``)."""
    host = build_host(settings, environ=environ or {})
    await host.startup()
    try:
        yield host
    finally:
        await host.shutdown()


def free_port() -> int:
    """A loopback port nothing listens on now (bound, then released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])
