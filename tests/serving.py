"""Running `weaver` as a user does, in a subprocess, for the tests that need the real
command: ports, a clean environment, waiting until it answers, stopping it."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

# Settings of the developer's shell that would change what a test sees.
_INHERITED_SETTINGS = ("WEAVER_", "JWT_", "LOG_LEVEL", "APP_ENV", "ENCRYPTION_KEY", "OTEL_")
STRONG_SECRET = "serving-test-secret-0123456789abcdef0123"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def clean_environment(**overrides: str) -> dict[str, str]:
    """This process's environment without any Weaver setting, plus ``overrides``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(_INHERITED_SETTINGS)}
    env.update(overrides)
    return env


def production_environment(data_dir: Path, **overrides: str) -> dict[str, str]:
    """Settings production accepts: JSON log lines, strong secrets."""
    return clean_environment(
        APP_ENV="production",
        JWT_SECRET_KEY=STRONG_SECRET,
        ENCRYPTION_KEY=STRONG_SECRET,
        WEAVER_DATA_DIR=str(data_dir),
        **overrides,
    )


def wait_until_live(url: str, server: subprocess.Popen[bytes], seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while True:
        try:
            with urllib.request.urlopen(url):
                return
        except OSError:
            if time.monotonic() > deadline or server.poll() is not None:
                raise RuntimeError("weaver serve did not come up") from None
            time.sleep(0.1)


def start_serving(port: int, env: dict[str, str], *args: str) -> subprocess.Popen[bytes]:
    """``weaver serve`` on ``port``, its log on a pipe; the caller stops it with `stop`."""
    return subprocess.Popen(
        [sys.executable, "-m", "weaver", "serve", "--port", str(port), *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def stop(server: subprocess.Popen[bytes]) -> tuple[str, str]:
    """Stop the way Ctrl+C or a container runtime does; its output, decoded."""
    server.send_signal(signal.SIGTERM)
    try:
        out, err = server.communicate(timeout=20)
    except subprocess.TimeoutExpired:
        server.kill()
        out, err = server.communicate()
    return out.decode(errors="replace"), err.decode(errors="replace")
