"""Redis 7 from Debian, without persistence: the guard's data is disposable."""

from __future__ import annotations

from collections.abc import Mapping

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from . import apt
from .layout import HOST, Layout
from .process import ServiceError, log, port_open, run
from .service import Daemon, Service, Status, wait_until


class Redis(Service):
    name = "redis"
    default_timeout = 20

    def __init__(self, layout: Layout, environ: Mapping[str, str]) -> None:
        super().__init__(layout, environ)
        self.port = int(environ.get("WEAVER_REDIS_PORT") or 6379)
        self.daemon = Daemon("redis", "redis-server", layout)

    @property
    def url(self) -> str:
        return f"redis://{HOST}:{self.port}/0"

    def apt_packages(self) -> list[str]:
        return ["redis-server"]

    async def install(self) -> None:
        await apt.ensure(self.apt_packages())

    async def ping(self) -> bool:
        client = aioredis.from_url(self.url, socket_timeout=3, socket_connect_timeout=3)
        try:
            return bool(await client.ping())
        except (RedisError, OSError):
            return False
        finally:
            await client.aclose()

    async def running(self) -> bool:
        # Debian's package starts a Redis of its own on 6379 where the init system allows:
        # one that answers serves the tests as well, and is used but never stopped.
        if await self.ping():
            if self.daemon.pid() is None:
                log(f"redis: using the Redis already listening on {HOST}:{self.port}")
            return True
        return False

    async def start(self) -> None:
        if port_open(HOST, self.port):
            raise ServiceError(f"redis: port {self.port} is used by a process that is not Redis")
        (self.layout.state_dir / "redis").mkdir(parents=True, exist_ok=True)
        log(f"redis: starting on {HOST}:{self.port}")
        self.daemon.pid_file.unlink(missing_ok=True)
        # No persistence: the tests must not depend on what a previous run left behind.
        await run(
            [
                "redis-server",
                "--daemonize",
                "yes",
                "--bind",
                HOST,
                "--port",
                str(self.port),
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.layout.state_dir / "redis"),
                "--pidfile",
                str(self.daemon.pid_file),
                "--logfile",
                str(self.daemon.log_file),
            ]
        )

    async def ready(self) -> None:
        await wait_until(
            self.name,
            self.ping,
            seconds=self.timeout,
            log_file=self.daemon.log_file,
            what=f"{HOST}:{self.port}",
            interval=0.1,
        )

    async def stop(self) -> None:
        await self.daemon.stop(grace=10)

    async def status(self) -> Status:
        address = f"{HOST}:{self.port}"
        if not await self.ping():
            return Status(self.name, False, address)
        return Status(self.name, True, address, f"pid {self.daemon.pid() or 'external'}")

    def env(self) -> dict[str, str]:
        return {"REDIS_URL": self.url}
