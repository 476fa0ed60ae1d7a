"""Processes and ports: start a server detached, find it again by pid, stop its group."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

# The servers this process started: polled so that one that exits is reaped at once
# instead of lingering as a zombie that still answers kill(pid, 0).
_spawned: dict[int, subprocess.Popen[bytes]] = {}


def log(message: str) -> None:
    print(f"[services] {message}", file=sys.stderr, flush=True)


class ServiceError(Exception):
    """A service could not be installed, started or reached; the message says which."""


def _reap() -> None:
    for pid, child in list(_spawned.items()):
        if child.poll() is not None:
            del _spawned[pid]


def command_line(pid: int) -> str:
    """The process's arguments joined by spaces; empty for a zombie or a missing pid, and
    for a moment while the process runs ``execve``."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return ""
    return raw.replace(b"\0", b" ").decode(errors="replace").strip()


def process_state(pid: int) -> str:
    """The one-letter state of ``/proc/<pid>/stat`` (``Z`` for a zombie); empty if gone."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return ""


def settled_command_line(pid: int, seconds: float = 0.5) -> str:
    """`command_line`, read again while it is empty and the process is neither gone nor a
    zombie: Trino's launcher passes through env, bash and the Go launcher on its way to
    the JVM, an ``execve`` each, and a read landing inside one of those sees nothing."""
    deadline = time.monotonic() + seconds
    while True:
        line = command_line(pid)
        if line or process_state(pid) in ("", "Z", "X") or time.monotonic() > deadline:
            return line
        time.sleep(0.005)


def process_alive(pid: int) -> bool:
    _reap()
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def live_pid(pid_file: Path, pattern: str) -> int | None:
    """The pid recorded in ``pid_file`` if that process is alive and its command line still
    contains ``pattern`` (a recycled pid belongs to something else)."""
    try:
        text = pid_file.read_text().split()
    except OSError:
        return None
    if not text or not text[0].isdigit():
        return None
    pid = int(text[0])
    if not process_alive(pid) or pattern not in settled_command_line(pid):
        return None
    return pid


def rotate_log(log_file: Path) -> None:
    """Keep the previous run's log as ``.1``."""
    if log_file.exists():
        log_file.replace(log_file.with_name(log_file.name + ".1"))


def spawn(
    argv: Sequence[str],
    *,
    pid_file: Path,
    log_file: Path,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
) -> int:
    """Start ``argv`` in a session of its own (so neither Ctrl-C here nor the end of a CI
    step's process group takes it down) and record its pid, which is also its group id."""
    rotate_log(log_file)
    pid_file.unlink(missing_ok=True)
    with log_file.open("ab") as output:
        child = subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
            env=dict(env) if env is not None else None,
            cwd=cwd,
            start_new_session=True,
        )
    _spawned[child.pid] = child
    pid_file.write_text(f"{child.pid}\n")
    # /proc shows the new command line a moment after Popen returns; until then the pid
    # would not match its pattern and would pass for a dead server.
    deadline = time.monotonic() + 5
    while not command_line(child.pid) and child.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    return child.pid


def descendants(pid: int) -> list[int]:
    """Every process below ``pid``, from /proc: a child that started a session of its own
    has left the group that ``stop_group`` signals."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, pending = [], [pid]
    while pending:
        for child in children.get(pending.pop(), []):
            found.append(child)
            pending.append(child)
    return found


def _signal_group(pid: int, signum: int) -> bool:
    """Signal the group led by ``pid`` (or ``pid`` alone if it leads none); False when
    nothing was left to signal."""
    _reap()
    try:
        os.killpg(pid, signum)
        return True
    except ProcessLookupError:
        pass
    try:
        os.kill(pid, signum)
        return True
    except ProcessLookupError:
        return False


async def stop_group(name: str, pid: int, grace: float) -> None:
    """TERM the process group led by ``pid``, wait for all of it (a server's workers hold
    its port until they exit), KILL what is left after ``grace`` seconds."""
    log(f"{name}: stopping pid {pid}")
    tree = descendants(pid)
    deadline = time.monotonic() + grace
    if _signal_group(pid, signal.SIGTERM):
        killed = False
        while _signal_group(pid, 0):
            if not killed and time.monotonic() > deadline:
                log(f"{name}: still running after {grace:g}s, killing")
                _signal_group(pid, signal.SIGKILL)
                killed = True
            await asyncio.sleep(0.1)
    for straggler in tree:
        if process_alive(straggler):
            with contextlib.suppress(ProcessLookupError):
                os.kill(straggler, signal.SIGKILL)


def port_open(host: str, port: int, timeout: float = 2.0) -> bool:
    """True when something accepts TCP connections on ``host:port``."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def port_owner(port: int) -> str:
    """Who listens on ``port``, for error messages (``ss`` output; empty if unknown)."""
    try:
        out = subprocess.run(
            ["ss", "-ltnpH", f"sport = :{port}"], capture_output=True, text=True, check=False
        ).stdout
    except OSError:
        return ""
    return out.split("users:((", 1)[1].rstrip(")\n ") if "users:((" in out else ""


def reserve_port(
    port: int,
    *,
    range_file: Path = Path("/proc/sys/net/ipv4/ip_local_port_range"),
    reserved_file: Path = Path("/proc/sys/net/ipv4/ip_local_reserved_ports"),
) -> bool:
    """Take ``port`` out of the ephemeral range when it lies inside it; True if it was added
    now. Any outgoing connection of the machine may otherwise be handed the port as its
    local one, and a server starting then fails to bind. Best effort (needs root)."""
    try:
        low, high = (int(v) for v in range_file.read_text().split())
        current = reserved_file.read_text().strip()
    except (OSError, ValueError):
        return False
    if not low <= port <= high or _port_listed(port, current):
        return False
    try:
        reserved_file.write_text(f"{current},{port}" if current else str(port))
    except OSError:
        return False
    log(f"reserved port {port} (outside the ephemeral range from now on)")
    return True


def _port_listed(port: int, reserved: str) -> bool:
    """Whether ``port`` is in a list such as ``47334,50000-50010``."""
    for item in filter(None, reserved.split(",")):
        low, _, high = item.partition("-")
        if int(low) <= port <= int(high or low):
            return True
    return False


def tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def failure(name: str, log_file: Path, message: str) -> ServiceError:
    """An error naming the log, with its last lines on stderr."""
    last = tail(log_file)
    if last:
        print(f"[services] --- last lines of {log_file} ---\n{last}", file=sys.stderr)
    return ServiceError(f"{name}: {message} (log: {log_file})")


async def run(
    argv: Sequence[str],
    *,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    stdin: bytes | None = None,
    log_file: Path | None = None,
    check: bool = True,
) -> subprocess.CompletedProcess[str]:
    """Run a command to completion; its output is returned, or appended to ``log_file``.
    With ``check``, a non-zero exit raises `ServiceError` with the output's end."""
    output = log_file.open("ab") if log_file else None
    try:
        process = await asyncio.create_subprocess_exec(
            *argv,
            stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
            stdout=output or subprocess.PIPE,
            stderr=output or subprocess.PIPE,
            env=dict(env) if env is not None else None,
            cwd=cwd,
        )
        out, err = await process.communicate(stdin)
    finally:
        if output:
            output.close()
    result = subprocess.CompletedProcess(
        list(argv),
        process.returncode or 0,
        (out or b"").decode(errors="replace"),
        (err or b"").decode(errors="replace"),
    )
    if check and result.returncode != 0:
        detail = tail(log_file, 20) if log_file else (result.stderr or result.stdout).strip()
        raise ServiceError(f"{argv[0]} exited with {result.returncode}: {detail}")
    return result
