"""Test helpers for the live suites here and the guard benchmark: a throw-away
``redis-server`` to stop and restart, and the commands a piece of work sent to Redis."""

from __future__ import annotations

import asyncio
import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import Awaitable
from pathlib import Path

from redis.asyncio import Redis

from weaver.testing import free_port

__all__ = ["RedisServer", "commands_sent", "free_port"]


class RedisServer:
    """A throw-away ``redis-server`` on loopback, with nothing kept on disk."""

    def __init__(self, workdir: Path, *extra_args: str) -> None:
        binary = shutil.which("redis-server")
        assert binary, "redis-server is not installed (scripts/services.sh installs it)"
        self.binary = binary
        self.workdir = workdir
        self.port = free_port()
        self.extra_args = extra_args
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.process = subprocess.Popen(
            [
                self.binary,
                "--bind", "127.0.0.1",
                "--port", str(self.port),
                "--save", "",
                "--appendonly", "no",
                "--dir", str(self.workdir),
                *self.extra_args,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2) as conn:
                    # Any answer will do: with requirepass it is an error, but an answer.
                    conn.sendall(b"PING\r\n")
                    if conn.recv(64):
                        return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"redis-server did not start on port {self.port}")

    def stop(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait()
            self.process = None


async def commands_sent(redis_url: str, work: Awaitable[object], mentioning: str = "") -> list[str]:
    """The commands clients sent to Redis while ``work`` ran, as MONITOR saw them.

    Commands that scripts run inside the server are left out (MONITOR shows them too);
    with ``mentioning``, so are commands whose text does not contain it — the way to
    pick one test's commands out of a server others use at the same time.
    """
    marker = f"commands-sent-done-{uuid.uuid4().hex}"
    client = Redis.from_url(redis_url)
    try:
        async with client.monitor() as monitor:

            async def collect() -> list[str]:
                sent: list[str] = []
                while marker not in (command := await monitor.next_command())["command"]:
                    if command["client_type"] != "lua" and mentioning in command["command"]:
                        sent.append(command["command"])
                return sent

            collecting = asyncio.create_task(collect())
            await work
            await client.echo(marker)
            return await collecting
    finally:
        await client.aclose()
