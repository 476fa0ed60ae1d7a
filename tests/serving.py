"""Running `weaver` as a user does, in a subprocess, for the tests that need the real
command: ports, a clean environment, waiting until it answers, stopping it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

# Settings of the developer's shell that would change what a test sees.
_INHERITED_SETTINGS = ("WEAVER_", "JWT_", "LOG_LEVEL", "APP_ENV", "ENCRYPTION_KEY", "OTEL_")
STRONG_SECRET = "serving-test-secret-0123456789abcdef0123"


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


class Serving:
    """``weaver serve`` on ``port``, its output in a file (never an unread pipe, which the
    access log would fill until the gateway stalls)."""

    def __init__(self, port: int, env: dict[str, str], log: Path, *args: str) -> None:
        self.log = log
        log.parent.mkdir(parents=True, exist_ok=True)
        with log.open("wb") as output:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "weaver", "serve", "--port", str(port), *args],
                env=env,
                stdout=output,
                stderr=subprocess.STDOUT,
            )

    def poll(self) -> int | None:
        return self.process.poll()

    def stop(self) -> str:
        """Stop the way Ctrl+C or a container runtime does; what it wrote."""
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        return self.log.read_text(errors="replace")
