"""Building a started host outside an HTTP app, for contract tests."""

from __future__ import annotations

import socket
import time
import urllib.request
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, ClassVar, Protocol

from weaver.bootstrap import build_host
from weaver.host import Host
from weaver.settings import Settings

# Short enough that a test waiting for an idempotency record to expire takes seconds, not
# the ten minutes of the production default.
IDEMPOTENCY_TTL_SECONDS = 2


def make_settings(data_dir: Path, **overrides: Any) -> Settings:
    """Settings for a test: a private data directory, a fixed encryption key and a short
    idempotency TTL (`IDEMPOTENCY_TTL_SECONDS`).

    Keyword names are the environment variable names (``WEAVER_EXTERNAL_MODE="true"``).
    """
    values: dict[str, Any] = {
        "APP_ENV": "test",
        "WEAVER_DATA_DIR": str(data_dir),
        "ENCRYPTION_KEY": "test-encryption-key-0123456789abcdef",
        "JWT_SECRET_KEY": "test-jwt-secret-0123456789abcdef0123",
        "WEAVER_REQUEST_GUARD_IDEMPOTENCY_TTL_SECONDS": str(IDEMPOTENCY_TTL_SECONDS),
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


class Polled(Protocol):
    """A child process: `subprocess.Popen`, or a wrapper with its ``poll``."""

    def poll(self) -> int | None: ...


def wait_until_live(url: str, server: Polled, seconds: float = 30) -> None:
    """Until ``url`` (a ``/health/live``) answers; fails when ``server`` exits first or
    ``seconds`` pass."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            with urllib.request.urlopen(url, timeout=1):
                return
        except OSError:
            if time.monotonic() > deadline or server.poll() is not None:
                raise RuntimeError(f"weaver serve did not come up at {url}") from None
            time.sleep(0.1)


def free_port() -> int:
    """A loopback port nothing listens on now (bound, then released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class PluginContract:
    """What every contract class shares: it names the plugin under test and checks that
    this plugin is the one answering, not the embedded default behind it.

    A subclass sets ``plugin`` to the plugin's entry-point name. A plugin that takes over
    only part of a contract's hooks (snapshots but not the registry, say) lists them in
    ``plugin_hooks``; by default it must own every hook of ``contract_hooks``.
    """

    plugin: ClassVar[str]
    contract_hooks: ClassVar[tuple[str, ...]] = ()
    plugin_hooks: ClassVar[tuple[str, ...] | None] = None

    def test_the_plugin_under_test_answers(self, host: Host) -> None:
        plugin = getattr(self, "plugin", None)
        assert plugin, (
            f"{type(self).__name__} must name the plugin under test by its entry-point "
            "name, e.g. plugin = 'acme'"
        )
        hooks = self.plugin_hooks or self.contract_hooks
        assert set(hooks) <= set(self.contract_hooks), (
            f"{sorted(set(hooks) - set(self.contract_hooks))} are not hooks of this contract"
        )
        owners = {hook: host.owner_of(hook) for hook in hooks}
        assert owners == dict.fromkeys(hooks, plugin), (
            f"these hooks are answered by another plugin than {plugin!r}: "
            f"{ {hook: owner for hook, owner in owners.items() if owner != plugin} }"
        )
