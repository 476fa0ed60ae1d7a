"""Pid files, liveness, stopping by process group and port reservation, on real processes."""

from __future__ import annotations

import functools
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from weaver_services.layout import Layout
from weaver_services.process import (
    descendants,
    live_pid,
    process_alive,
    process_state,
    reserve_port,
    spawn,
    stop_group,
)
from weaver_services.service import Daemon


def wait_for(predicate: Callable[[], bool], seconds: float = 5.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


def test_a_spawned_child_is_alive_until_stopped(layout: Layout) -> None:
    daemon = Daemon("sleeper", "sleep 300", layout)
    pid = daemon.spawn(["sleep", "300"])
    assert daemon.pid_file.read_text().strip() == str(pid)
    assert daemon.pid() == pid
    # A recycled pid running something else is not ours.
    assert live_pid(daemon.pid_file, "redis-server") is None


async def test_stop_group_ends_the_child_and_forgets_it(layout: Layout) -> None:
    daemon = Daemon("sleeper", "sleep 301", layout)
    pid = daemon.spawn(["sleep", "301"])
    await daemon.stop(grace=5)
    assert not process_alive(pid)
    assert daemon.pid() is None
    assert not daemon.pid_file.exists()


async def test_a_child_that_exits_by_itself_is_not_alive(layout: Layout) -> None:
    daemon = Daemon("short", "sleep 0.1", layout)
    pid = daemon.spawn(["sleep", "0.1"])
    assert wait_for(lambda: daemon.pid() is None)
    assert not process_alive(pid)


# A chain of execs (env, bash, env, bash, then sleep) like the one Trino's launcher makes on
# its way to the JVM; each stage's command line names the marker.
EXEC_CHAIN = ["/usr/bin/env", "bash", "-c", "exec /usr/bin/env bash -c 'exec -a marker sleep 0.3'"]


def alive_throughout(pid_file: Path, still_running: Callable[[], bool]) -> bool:
    """Whether `live_pid` kept finding the recorded pid for as long as it really ran."""
    while still_running():
        if live_pid(pid_file, "marker") is None and still_running():
            return False
    return True


def test_a_child_going_through_execs_is_never_taken_for_dead(layout: Layout) -> None:
    # /proc/<pid>/cmdline reads empty for a moment inside each execve: a readiness loop
    # that looked only there declared a starting Trino dead.
    daemon = Daemon("chain", "marker", layout)
    for _ in range(5):
        pid = daemon.spawn(EXEC_CHAIN)
        assert alive_throughout(daemon.pid_file, functools.partial(process_alive, pid))


def test_a_zombie_that_is_not_our_child_is_not_alive(tmp_path: Path) -> None:
    child = subprocess.Popen(["bash", "-c", "exit 0", "marker"])
    (tmp_path / "zombie.pid").write_text(f"{child.pid}\n")
    assert wait_for(lambda: process_state(child.pid) == "Z")
    assert live_pid(tmp_path / "zombie.pid", "marker") is None
    child.wait()


def test_a_garbled_or_missing_pid_file_means_not_running(tmp_path: Path) -> None:
    assert live_pid(tmp_path / "missing.pid", "x") is None
    (tmp_path / "garbled.pid").write_text("not a pid\n")
    assert live_pid(tmp_path / "garbled.pid", "x") is None


async def test_stop_group_kills_what_ignores_term_and_left_the_group(tmp_path: Path) -> None:
    # The child ignores TERM, and starts a grandchild in a session of its own (outside the
    # group), as MindsDB's API processes may.
    script = "trap '' TERM; setsid sleep 302 & sleep 303; wait"
    pid = spawn(["bash", "-c", script], pid_file=tmp_path / "t.pid", log_file=tmp_path / "t.log")
    assert wait_for(lambda: len(descendants(pid)) >= 2)
    tree = descendants(pid)
    await stop_group("stubborn", pid, grace=1)
    assert not process_alive(pid)
    assert wait_for(lambda: not any(process_alive(p) for p in tree))


def test_spawn_keeps_the_previous_log(tmp_path: Path) -> None:
    log = tmp_path / "s.log"
    log.write_text("previous run\n")
    pid = spawn(["true"], pid_file=tmp_path / "s.pid", log_file=log)
    assert wait_for(lambda: not process_alive(pid))
    assert (tmp_path / "s.log.1").read_text() == "previous run\n"


def port_files(tmp_path: Path, reserved: str) -> dict[str, Path]:
    (tmp_path / "range").write_text("32768\t60999\n")
    (tmp_path / "reserved").write_text(reserved + "\n")
    return {"range_file": tmp_path / "range", "reserved_file": tmp_path / "reserved"}


def test_a_port_inside_the_ephemeral_range_is_reserved(tmp_path: Path) -> None:
    files = port_files(tmp_path, "")
    assert reserve_port(47334, **files)
    assert files["reserved_file"].read_text() == "47334"
    assert reserve_port(50000, **files)
    assert files["reserved_file"].read_text() == "47334,50000"


def test_a_port_outside_the_range_or_listed_already_is_left_alone(tmp_path: Path) -> None:
    files = port_files(tmp_path, "47000-48000,50000")
    assert not reserve_port(18080, **files)
    assert not reserve_port(47334, **files)
    assert not reserve_port(50000, **files)
    assert files["reserved_file"].read_text().strip() == "47000-48000,50000"
