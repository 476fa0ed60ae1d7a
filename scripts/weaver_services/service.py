"""What every service has: the verbs, the ``up`` sequence built on them, and start keys."""

from __future__ import annotations

import asyncio
import hashlib
import os
import shutil
import time
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from .layout import Layout
from .process import (
    ServiceError,
    failure,
    live_pid,
    log,
    port_open,
    port_owner,
    spawn,
    stop_group,
)


def start_key(*parts: str) -> str:
    """What a server was started with, hashed because a password can be part of it.
    Computed as the shell script did (``printf '%s\\n' parts | sha256sum``), so that
    servers it started are not restarted for a different spelling of the same key."""
    return hashlib.sha256("".join(f"{part}\n" for part in parts).encode()).hexdigest()


def file_digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


class StartAgain(Exception):
    """The server came up broken in a way a fresh start repairs (a port taken meanwhile)."""


@dataclass(frozen=True)
class Status:
    name: str
    up: bool
    address: str
    detail: str = ""

    def line(self) -> str:
        state = "up" if self.up else "down"
        extra = f" {self.detail}" if self.up and self.detail else ""
        return f"{self.name:<8} {state:<4} {self.address}{extra}"


@dataclass(frozen=True)
class Daemon:
    """A server process started by `spawn`, found again through ``run/<name>.pid``."""

    name: str
    # Must appear in the process's command line: guards against a recycled pid.
    pattern: str
    layout: Layout

    @property
    def pid_file(self) -> Path:
        return self.layout.run_dir / f"{self.name}.pid"

    @property
    def log_file(self) -> Path:
        return self.layout.log_dir / f"{self.name}.log"

    def pid(self) -> int | None:
        return live_pid(self.pid_file, self.pattern)

    def spawn(
        self, argv: list[str], env: Mapping[str, str] | None = None, cwd: Path | None = None
    ) -> int:
        return spawn(argv, pid_file=self.pid_file, log_file=self.log_file, env=env, cwd=cwd)

    async def stop(self, grace: float) -> None:
        pid = self.pid()
        if pid is not None:
            await stop_group(self.name, pid, grace)
        self.pid_file.unlink(missing_ok=True)


async def wait_until(
    name: str,
    probe: Callable[[], Awaitable[bool]],
    *,
    seconds: float,
    log_file: Path,
    what: str,
    alive: Callable[[], bool] | None = None,
    interval: float = 0.5,
) -> None:
    """Poll ``probe`` until it answers True; fail when ``alive`` says the server died or
    after ``seconds``."""
    deadline = time.monotonic() + seconds
    while not await probe():
        if alive is not None and not alive():
            raise failure(name, log_file, "exited before it was ready")
        if time.monotonic() > deadline:
            raise failure(name, log_file, f"not ready on {what} in {seconds:g}s")
        await asyncio.sleep(interval)


class Service(ABC):
    """One server the live suites talk to. ``up`` is install, then start unless it already
    runs with the same settings, then ready (which waits, using the server's real client)."""

    name: ClassVar[str]
    # Seconds to wait for readiness unless WEAVER_SERVICE_TIMEOUT says otherwise.
    default_timeout: ClassVar[float]
    # Prefix of the other versions' cache folders that `up` deletes once this one serves.
    cache_glob: ClassVar[str | None] = None
    # The install replaces what the running server runs from: stop it first if it must go.
    installs_in_place: ClassVar[bool] = False

    def __init__(self, layout: Layout, environ: Mapping[str, str]) -> None:
        self.layout = layout
        self.environ = environ
        self.timeout = float(environ.get("WEAVER_SERVICE_TIMEOUT") or self.default_timeout)

    # --- the verbs, one per concern ---

    def apt_packages(self) -> list[str]:
        """Debian packages it needs; `up` installs all services' at once, before the rest."""
        return []

    @abstractmethod
    async def install(self) -> None:
        """Fetch and build what is missing (idempotent; caches outside the checkout)."""

    @abstractmethod
    async def running(self) -> bool:
        """Whether a server of ours is there to be reused (it may still be starting)."""

    @abstractmethod
    async def start(self) -> None:
        """Start it detached, with the current settings."""

    @abstractmethod
    async def ready(self) -> None:
        """Wait until a real client gets real answers; raise `ServiceError` if it never does."""

    @abstractmethod
    async def stop(self) -> None:
        """Stop what this package started (by pid and process group)."""

    @abstractmethod
    async def status(self) -> Status: ...

    @abstractmethod
    def env(self) -> dict[str, str]:
        """What the live suites read to reach it."""

    def start_key(self) -> str | None:
        """What the running server must have been started with to be reused; None when the
        service decides that in `needs_restart` itself."""
        return None

    def needs_restart(self) -> bool:
        key = self.start_key()
        return key is not None and self.recorded_key() != key

    async def after_ready(self, peers: Mapping[str, Service]) -> None:  # noqa: B027 - optional
        """Checks that need another service up too; ``peers`` are the ones brought up."""

    # --- what every service shares ---

    @property
    def key_file(self) -> Path:
        return self.layout.run_dir / f"{self.name}.key"

    def recorded_key(self) -> str | None:
        try:
            return self.key_file.read_text().strip()
        except OSError:
            return None

    def record_key(self) -> None:
        key = self.start_key()
        if key is not None:
            self.key_file.write_text(f"{key}\n")

    async def up(self, attempts: int = 3) -> None:
        if self.installs_in_place and self.needs_restart() and await self.running():
            log(f"{self.name}: version or settings changed since it started, stopping it")
            await self.down()
        await self.install()
        if await self.running():
            if not self.needs_restart():
                try:
                    await self.ready()
                    self.prune_old_caches()
                    return
                except StartAgain as reason:
                    log(f"{self.name}: {reason}, restarting")
            else:
                log(f"{self.name}: version or settings changed since it started, restarting")
            await self.down()
        for attempt in range(1, attempts + 1):
            await self.start()
            self.record_key()
            try:
                await self.ready()
                break
            except StartAgain as reason:
                if attempt == attempts:
                    raise ServiceError(f"{self.name}: {reason}") from None
                log(f"{self.name}: {reason} (attempt {attempt}), starting again")
                await self.down()
        self.prune_old_caches()

    async def down(self) -> None:
        await self.stop()
        self.key_file.unlink(missing_ok=True)

    def prune_old_caches(self) -> None:
        """After a version bump, drop the other versions' caches (100 MB to 1 GB each)."""
        if self.cache_glob is None:
            return
        keep = self.cache_dir()
        for folder in self.layout.cache_dir.glob(self.cache_glob):
            if folder.is_dir() and folder != keep:
                log(f"removing the cache of another version: {folder}")
                shutil.rmtree(folder)

    def cache_dir(self) -> Path | None:
        """This version's cache folder, kept by `prune_old_caches`."""
        return None

    def check_port_free(self, host: str, port: int) -> None:
        if port_open(host, port):
            owner = port_owner(port) or "unknown process"
            raise ServiceError(f"{self.name}: port {port} is already used by another ({owner})")


def as_root(argv: list[str]) -> list[str]:
    """Root's commands (apt, the postgres cluster): direct as root, through sudo otherwise."""
    return argv if os.geteuid() == 0 else ["sudo", *argv]
