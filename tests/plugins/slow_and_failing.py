"""A plugin whose start-up fails, and one whose health check hangs."""

from __future__ import annotations

import asyncio

from weaver import hookimpl
from weaver.context import WeaverContext
from weaver.types import HealthCheck


class FailsToStart:
    @hookimpl
    async def weaver_startup(self) -> None:
        raise ConnectionRefusedError("backend at 127.0.0.1:1 refused the connection")


class HangsOnHealth:
    @hookimpl
    async def check_health(self) -> HealthCheck:
        await asyncio.sleep(30)
        return HealthCheck("up")


fails_to_start = FailsToStart()
hangs_on_health = HangsOnHealth()


class ShutdownRecorder:
    """Counts shutdowns; registered twice under two names, one of which fails."""

    def __init__(self, fail: bool) -> None:
        self.fail = fail
        self.calls = 0

    @hookimpl
    def weaver_shutdown(self) -> None:
        self.calls += 1
        if self.fail:
            raise RuntimeError("could not close the pool")


fails_to_shut_down = ShutdownRecorder(fail=True)
shuts_down = ShutdownRecorder(fail=False)


class OrderProbe:
    """Uses the embedded store from its own start-up and shutdown."""

    def __init__(self) -> None:
        self.saw_store_open: bool | None = None
        self.store_open_at_shutdown: bool | None = None

    @hookimpl
    async def weaver_startup(self, context: WeaverContext) -> None:
        assert context.registry is not None
        self.saw_store_open = await context.registry.all_datasources() == []

    @hookimpl
    async def weaver_shutdown(self, context: WeaverContext) -> None:
        assert context.registry is not None
        self.store_open_at_shutdown = await context.registry.all_datasources() == []


order_probe = OrderProbe()
