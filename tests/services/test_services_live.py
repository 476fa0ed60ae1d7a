"""The services package against real servers (``WEAVER_RUN_E2E=1``).

The shared set (default ports and state dir) is only inspected and brought `up`, which
must reuse it; stop and start are exercised on second servers with ports and a state
dir of their own.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping
from pathlib import Path

import pytest
from weaver_services import SERVICES, MindsDB, Neo4j, Postgres, Redis, Service, Trino
from weaver_services.cli import exclusive
from weaver_services.layout import HOST, Layout
from weaver_services.process import port_open

pytestmark = [
    pytest.mark.live,
    pytest.mark.skipif(
        os.environ.get("WEAVER_RUN_E2E") != "1", reason="live suite: set WEAVER_RUN_E2E=1"
    ),
]


def shared(cls: type[Service]) -> Service:
    return cls(Layout.from_environ(os.environ), os.environ)


def free_ports(count: int) -> list[int]:
    """Consecutive free loopback ports below the ephemeral range."""
    for first in range(20000, 30000, 10):
        ports = list(range(first, first + count))
        if not any(port_open(HOST, p, timeout=0.2) for p in ports) and all(map(bindable, ports)):
            return ports
    raise AssertionError("no free ports between 20000 and 30000")


def bindable(port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind((HOST, port))
        except OSError:
            return False
    return True


def own_set(tmp_path: Path, **settings: str) -> tuple[Layout, Mapping[str, str]]:
    environ = {**os.environ, "WEAVER_STATE_DIR": str(tmp_path / "state"), **settings}
    layout = Layout.from_environ(environ)
    layout.ensure()
    return layout, environ


def pids(service: Service) -> list[int | None]:
    match service:
        case Postgres():
            return [int((service.layout.run_dir / "postgres.pid").read_text())]
        case Trino():
            return [daemon.pid() for daemon in service.daemons.values()]
        case Redis() | Neo4j() | MindsDB():
            return [service.daemon.pid()]
    raise AssertionError(f"no pids known for {service.name}")


@pytest.mark.parametrize("cls", SERVICES, ids=[cls.name for cls in SERVICES])
async def test_the_shared_service_is_up_and_up_reuses_it(cls: type[Service]) -> None:
    service = shared(cls)
    status = await service.status()
    assert status.up, status.line()
    before = pids(service)
    with exclusive(service.layout):  # as `services.sh up` would, beside other users
        await service.up()
    assert pids(service) == before
    assert (await service.status()).up


async def test_a_second_redis_starts_and_stops(tmp_path: Path) -> None:
    (port,) = free_ports(1)
    layout, environ = own_set(tmp_path, WEAVER_REDIS_PORT=str(port))
    redis = Redis(layout, environ)
    try:
        await redis.up()
        status = await redis.status()
        assert status.up and status.detail == f"pid {redis.daemon.pid()}"
        assert redis.env() == {"REDIS_URL": f"redis://{HOST}:{port}/0"}
    finally:
        await redis.down()
    assert not (await redis.status()).up
    assert not port_open(HOST, port)


async def test_a_second_trino_cluster_starts_runs_on_its_worker_and_stops(
    tmp_path: Path,
) -> None:
    coordinator, worker = free_ports(2)
    layout, environ = own_set(
        tmp_path,
        WEAVER_TRINO_PORT=str(coordinator),
        WEAVER_TRINO_WORKER_PORT=str(worker),
        WEAVER_TRINO_HEAP="512M",
    )
    trino = Trino(layout, environ)
    try:
        await trino.up()  # ready means a query ran on the worker
        assert (await trino.status()).up
        first = pids(trino)
        await trino.up()
        assert pids(trino) == first
    finally:
        await trino.down()
    assert pids(trino) == [None, None]
    assert not port_open(HOST, coordinator) and not port_open(HOST, worker)
    assert not (await trino.status()).up
