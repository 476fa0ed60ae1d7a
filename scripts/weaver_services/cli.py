"""``python -m weaver_services up|down|status|env [service...]`` (none named: all of them).

    up      install what is missing, start what is not running, wait until each is ready
    down    stop what this package started (by pid and process group)
    status  one line per service; exit 1 if any is down
    env     ``export`` lines for the live suites and the exit gate

Everything is idempotent: `up` on a running set returns in seconds and restarts a server
only when its version or settings changed. Settings come from the environment:

    WEAVER_CACHE_DIR, WEAVER_STATE_DIR   where caches and state live (see layout.py)
    WEAVER_SERVICE_TIMEOUT               seconds to wait for each service
    WEAVER_PG_PORT (5433), WEAVER_PG_CLUSTER (weaver), WEAVER_REDIS_PORT (6379),
    WEAVER_NEO4J_BOLT_PORT (7687), WEAVER_MINDSDB_PORT (47334),
    WEAVER_TRINO_PORT (18080), WEAVER_TRINO_WORKER_PORT (its port + 1)
                                         a second set, with its own WEAVER_STATE_DIR,
                                         can run beside the first
    NEO4J_PASSWORD                       default weaver_dev_password (8+ characters)
    MINDSDB_USER, MINDSDB_PASSWORD       both set: MindsDB's HTTP auth is on
    TRINO_USER                           Trino's admin user (default weaver)
    WEAVER_TRINO_HEAP (1G), WEAVER_TRINO_JAVA_HOME (the newest JDK 24+ in /usr/lib/jvm)
"""

from __future__ import annotations

import argparse
import asyncio
import fcntl
import os
import shlex
import sys
import time
import traceback
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from itertools import chain

from . import SERVICES, apt
from .layout import Layout
from .process import ServiceError, log
from .service import Service

LOCK_WAIT_SECONDS = 1200


def select(names: Sequence[str], layout: Layout, environ: Mapping[str, str]) -> list[Service]:
    """The named services (all when none is), always in `SERVICES` order."""
    known = [cls.name for cls in SERVICES]
    unknown = [name for name in names if name not in known]
    if unknown:
        raise ServiceError(f"unknown service {unknown[0]!r} (known: {' '.join(known)})")
    return [cls(layout, environ) for cls in SERVICES if not names or cls.name in names]


@contextmanager
def exclusive(layout: Layout) -> Iterator[None]:
    """One `up` or `down` at a time per state dir: two would race on pid files and fixture
    loads. The same lock file as the earlier shell script, with the same flock(2)."""
    with (layout.state_dir / ".lock").open("w") as lock:
        deadline = time.monotonic() + LOCK_WAIT_SECONDS
        while True:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise ServiceError(f"another `up` or `down` holds {lock.name}") from None
                time.sleep(0.5)
        yield


def render_env(services: Sequence[Service]) -> str:
    variables = {k: v for service in services for k, v in service.env().items()}
    return "".join(f"export {k}={shlex.quote(v)}\n" for k, v in variables.items())


async def up(services: Sequence[Service]) -> None:
    # apt runs one at a time: every Debian package first, then the services in parallel
    # (Neo4j, MindsDB and Trino each spend 10-60 s starting; nothing waits on another).
    await apt.ensure(chain.from_iterable(s.apt_packages() for s in services))
    began = time.monotonic()

    async def bring_up(service: Service) -> None:
        started = time.monotonic()
        await service.up()
        log(f"{service.name}: ready in {time.monotonic() - started:.1f}s")

    outcomes = await asyncio.gather(*(bring_up(s) for s in services), return_exceptions=True)
    failed = [report(s.name, o) for s, o in zip(services, outcomes, strict=True) if o]
    peers = {s.name: s for s, o in zip(services, outcomes, strict=True) if not o}
    for service in peers.values():
        try:
            await service.after_ready(peers)
        except Exception as error:  # reported with the others below
            failed.append(report(service.name, error))
    if failed:
        raise ServiceError(f"not ready: {' '.join(failed)} (logs in {services[0].layout.log_dir})")
    log(
        f"all requested services ready in {time.monotonic() - began:.1f}s: "
        + " ".join(s.name for s in services)
    )


def report(name: str, error: BaseException) -> str:
    if isinstance(error, ServiceError):
        log(f"ERROR: {error}")
    else:  # a bug here, not a server's fault: the traceback helps
        traceback.print_exception(error)
    return name


async def down(services: Sequence[Service]) -> None:
    for service in reversed(services):
        await service.down()


async def status(services: Sequence[Service]) -> bool:
    statuses = await asyncio.gather(*(s.status() for s in services))
    for line in statuses:
        print(line.line(), flush=True)
    return all(s.up for s in statuses)


def main(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="services.sh",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("command", choices=["up", "down", "status", "env"])
    parser.add_argument("services", nargs="*", metavar="service")
    args = parser.parse_args(argv)
    environ = dict(os.environ if environ is None else environ)
    layout = Layout.from_environ(environ)
    try:
        services = select(args.services, layout, environ)
        if args.command == "env":
            sys.stdout.write(render_env(services))
            return 0
        layout.ensure()
        if args.command == "status":
            return 0 if asyncio.run(status(services)) else 1
        with exclusive(layout):
            asyncio.run(up(services) if args.command == "up" else down(services))
    except ServiceError as error:
        log(f"ERROR: {error}")
        return 1
    return 0
