"""The ``up`` sequence every service shares: reuse, restart on a changed key, start again."""

from __future__ import annotations

from collections.abc import Mapping

import pytest
from weaver_services.layout import Layout
from weaver_services.process import ServiceError
from weaver_services.service import Service, StartAgain, Status


class Recorder(Service):
    """A service whose server is a flag: the sequence of verbs is what is checked."""

    name = "recorder"
    default_timeout = 1

    def __init__(self, layout: Layout, environ: Mapping[str, str]) -> None:
        super().__init__(layout, environ)
        self.calls: list[str] = []
        self.is_running = False
        self.broken_starts = 0

    def start_key(self) -> str:
        return self.environ.get("SETTING", "a")

    async def install(self) -> None:
        self.calls.append("install")

    async def running(self) -> bool:
        return self.is_running

    async def start(self) -> None:
        self.calls.append("start")
        self.is_running = True

    async def ready(self) -> None:
        self.calls.append("ready")
        if self.broken_starts:
            self.broken_starts -= 1
            raise StartAgain("port taken")

    async def stop(self) -> None:
        self.calls.append("stop")
        self.is_running = False

    async def status(self) -> Status:
        return Status(self.name, self.is_running, "nowhere")

    def env(self) -> dict[str, str]:
        return {}


class InPlace(Recorder):
    installs_in_place = True


async def test_a_running_server_with_the_same_key_is_reused(layout: Layout) -> None:
    service = Recorder(layout, {})
    await service.up()
    assert service.calls == ["install", "start", "ready"]
    service.calls.clear()
    await service.up()
    assert service.calls == ["install", "ready"]


async def test_a_changed_key_restarts_after_the_install(layout: Layout) -> None:
    await Recorder(layout, {}).up()
    changed = Recorder(layout, {"SETTING": "b"})
    changed.is_running = True
    await changed.up()
    assert changed.calls == ["install", "stop", "start", "ready"]
    assert changed.recorded_key() == "b"


async def test_an_install_in_place_stops_the_server_first(layout: Layout) -> None:
    await InPlace(layout, {}).up()
    changed = InPlace(layout, {"SETTING": "b"})
    changed.is_running = True
    await changed.up()
    assert changed.calls == ["stop", "install", "start", "ready"]


async def test_a_broken_start_is_started_again_a_bounded_number_of_times(
    layout: Layout,
) -> None:
    service = Recorder(layout, {})
    service.broken_starts = 1
    await service.up()
    assert service.calls == ["install", "start", "ready", "stop", "start", "ready"]

    hopeless = Recorder(layout, {"SETTING": "c"})
    hopeless.broken_starts = 5
    with pytest.raises(ServiceError, match="port taken"):
        await hopeless.up(attempts=2)
    assert hopeless.calls.count("start") == 2
