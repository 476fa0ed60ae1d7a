"""Request guard cost: the Redis guard, the embedded guard and no guard on one endpoint.

Three gateways run as separate processes on loopback, each with one guard: the
``redis_guard`` plugin on a private ``redis-server``, the embedded guard, and a plugin
that admits everything without doing anything (the core has no switch to turn the guard
off, so "no guard" is a guard that does no work). The load generator of
``bench_gateway.py`` drives ``GET /api/datasources`` on each in alternating rounds.

It also counts the commands each request sends to Redis, with MONITOR on the private
server, which nothing else talks to: the target is one for a read and two for an
idempotent write. (Concurrent requests share pipelines, so network round trips per
request are at most that.)

    python bench/bench_guard.py [--requests 2000] [--concurrency 16] [--rounds 5]
"""

from __future__ import annotations

import asyncio
import shutil
import sys
import tempfile
import time
import uuid
from importlib.metadata import EntryPoint
from pathlib import Path

import aiohttp
from bench_gateway import (
    Result,
    Scenario,
    gateway_env,
    load,
    load_arguments,
)
from common import bench_headers, process, wait_until_up
from weaver_redis_guard.testing import RedisServer, commands_sent

from weaver import hookimpl
from weaver.settings import Settings
from weaver.testing import free_port
from weaver.testing.harness import make_settings, running_host
from weaver.types import (
    GuardDecision,
    GuardRequest,
    Principal,
)

NO_GUARD = "no_guard"
READ = Scenario("GET /api/datasources", "GET", "/api/datasources", None)


# --- the "no guard" variant: a plugin that owns the guard hooks and does nothing ---------


# Hook implementations take only the arguments they use: these use none.
@hookimpl
def guard_request() -> GuardDecision:
    return GuardDecision(headers={})


@hookimpl
def guard_response() -> None:
    return None


def serve_without_guard(port: int) -> None:
    from aiohttp import web

    from weaver.app import create_app

    plugin = EntryPoint(name=NO_GUARD, value="bench_guard", group="weaver")
    app = create_app(Settings(), environ={"WEAVER_NO_GUARD_MODE": "true"}, discovered=[plugin])
    web.run_app(app, host="127.0.0.1", port=port, access_log=None, print=None)


# --- measuring --------------------------------------------------------------------------


async def idempotent_writes(base: str, headers: dict[str, str], count: int) -> None:
    """Writes with a fresh Idempotency-Key each, answered 422 (so stored) by the handler."""
    async with aiohttp.ClientSession(headers=headers) as session:
        for _ in range(count):
            key = {"Idempotency-Key": uuid.uuid4().hex}
            invalid = {"name": "Not A Valid Name", "engine": "sqlite", "connection": {}}
            async with session.post(f"{base}/api/datasources", json=invalid, headers=key) as answer:
                await answer.read()
                if answer.status != 422:
                    raise RuntimeError(f"idempotent write: HTTP {answer.status}")


async def hook_cost(settings: Settings, requests: int, concurrency: int) -> Result:
    """The guard alone: ``Host.guard_request`` in this process, with no HTTP around it."""
    principal = Principal("bench", "bench", frozenset({"viewer"}))
    request = GuardRequest(principal, "GET", "/api/datasources", None, "")
    latencies: list[float] = []
    remaining = iter(range(requests))
    async with running_host(settings) as host:

        async def worker() -> None:
            for _ in remaining:
                started = time.perf_counter()
                await host.guard_request(request)
                latencies.append(time.perf_counter() - started)

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    return Result.of(latencies, elapsed)


def print_table(title: str, results: dict[str, list[Result]]) -> None:
    print(title)
    print(f"{'guard':<10} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8}")
    for name, rounds in results.items():
        result = Result.median(rounds)
        print(
            f"{name:<10} {result.requests_per_second:>9.0f} "
            f"{result.p50_ms:>8.2f} {result.p99_ms:>8.2f}"
        )


async def main() -> None:
    args = load_arguments(__doc__)

    workdir = Path(tempfile.mkdtemp(prefix="weaver-bench-guard-"))
    redis_server = RedisServer(workdir / "redis")
    redis_server.start()
    env = gateway_env(workdir, REDIS_URL=redis_server.url)
    headers = bench_headers("bench", env["JWT_SECRET_KEY"])

    ports = {name: free_port() for name in ("redis", "embedded", "none")}
    while len(set(ports.values())) < len(ports):  # probed one at a time, one may repeat
        ports = {name: free_port() for name in ports}
    serve = [sys.executable, "-m", "weaver", "serve", "--host", "127.0.0.1", "--port"]
    redis_env = {**env, "WEAVER_REQUEST_GUARD_REDIS_MODE": "true"}
    servers = {
        "redis": ([*serve, str(ports["redis"])], redis_env),
        "embedded": ([*serve, str(ports["embedded"])], env),
        "none": ([sys.executable, __file__, "--serve-without-guard", str(ports["none"])], env),
    }
    bases = {name: f"http://127.0.0.1:{port}" for name, port in ports.items()}
    try:
        with process(*servers["redis"]), process(*servers["embedded"]), process(*servers["none"]):
            for base in bases.values():
                await wait_until_up(base + "/health/live")
                await load(base, READ, headers, 300, args.concurrency)  # warm-up

            results: dict[str, list[Result]] = {name: [] for name in bases}
            for _ in range(args.rounds):
                for name, base in bases.items():
                    results[name].append(
                        await load(base, READ, headers, args.requests, args.concurrency)
                    )

            # Counted apart from the timed rounds: MONITOR slows Redis down.
            reads, writes = 1000, 300
            loaded = load(bases["redis"], READ, headers, reads, args.concurrency)
            per_read = len(await commands_sent(redis_server.url, loaded)) / reads
            written = idempotent_writes(bases["redis"], headers, writes)
            per_write = len(await commands_sent(redis_server.url, written)) / writes

        hooks: dict[str, list[Result]] = {"redis": [], "embedded": []}
        for _ in range(args.rounds):
            for name, flag in (("redis", "true"), ("embedded", "false")):
                guard_settings = make_settings(
                    workdir / "hooks",
                    WEAVER_REQUEST_GUARD_REDIS_MODE=flag,
                    REDIS_URL=redis_server.url,
                    WEAVER_RATE_LIMIT=env["WEAVER_RATE_LIMIT"],
                )
                hooks[name].append(await hook_cost(guard_settings, args.requests, args.concurrency))
    finally:
        redis_server.stop()
        shutil.rmtree(workdir, ignore_errors=True)

    print_table(
        f"HTTP {READ.name}, {args.requests} requests x {args.rounds} rounds, "
        f"concurrency {args.concurrency} (median of rounds)",
        results,
    )
    print_table("\nThe guard hook alone (Host.guard_request in this process)", hooks)
    print(f"Redis commands per read: {per_read:.2f} (target 1)")
    print(f"Redis commands per idempotent write: {per_write:.2f} (target at most 2)")


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--serve-without-guard":
        serve_without_guard(int(sys.argv[2]))
    else:
        asyncio.run(main())
