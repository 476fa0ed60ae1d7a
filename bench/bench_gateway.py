"""Gateway overhead: Weaver on the embedded defaults against a bare aiohttp handler.

Both servers run as separate processes on loopback and answer the same JSON; one load
generator drives both, in alternating rounds, so machine noise hits them alike. The
figure that matters is the ratio: Weaver should keep at least half of the bare
handler's throughput. Beside it, each server's CPU time per request (all its threads),
which says what a request costs when the machine's speed drifts.

    python bench/bench_gateway.py [--requests 2000] [--concurrency 16] [--rounds 5]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import aiohttp
from common import ENCRYPTION_KEY, JWT_SECRET, bench_headers, process, wait_until_up

from weaver.testing import free_port

ROOT = Path(__file__).resolve().parent.parent

# The bare handler serves on the same event loop as `weaver serve` (uvloop where installed),
# so the comparison is of what the gateway does, not of the loop.
BARE_SERVER = """
import sys
from aiohttp import web
from weaver.cli import new_event_loop
body = open(sys.argv[2], "rb").read()
async def answer(request):
    if request.method == "POST":
        await request.read()
    return web.Response(body=body, content_type="application/json")
app = web.Application()
app.router.add_route("*", "/{tail:.*}", answer)
web.run_app(
    app, host="127.0.0.1", port=int(sys.argv[1]), access_log=None, print=None,
    loop=new_event_loop(),
)
"""


@dataclass
class Scenario:
    name: str
    method: str
    path: str
    body: dict[str, object] | None


@dataclass
class Result:
    requests_per_second: float
    p50_ms: float
    p99_ms: float
    # The server process's CPU time (all its threads) per request: what a request costs
    # whatever else the machine runs meanwhile.
    cpu_ms: float = 0.0

    @classmethod
    def median(cls, rounds: list[Result]) -> Result:
        """The median of each figure over several rounds."""
        return cls(
            statistics.median(r.requests_per_second for r in rounds),
            statistics.median(r.p50_ms for r in rounds),
            statistics.median(r.p99_ms for r in rounds),
            statistics.median(r.cpu_ms for r in rounds),
        )

    @classmethod
    def of(cls, latencies: list[float], elapsed: float) -> Result:
        """Throughput and percentiles of one round: every request's latency, and the
        round's wall time, in seconds."""
        latencies = sorted(latencies)
        return cls(
            len(latencies) / elapsed,
            latencies[len(latencies) // 2] * 1000,
            latencies[int(len(latencies) * 0.99)] * 1000,
        )


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time of process ``pid`` so far (``/proc/<pid>/stat``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def measured(
    server: subprocess.Popen[bytes],
    base: str,
    scenario: Scenario,
    args: argparse.Namespace,
    headers: dict[str, str],
) -> Result:
    """One round of `load` against ``server``, with its CPU time per request."""
    before = cpu_seconds(server.pid)
    result = await load(base, scenario, headers, args.requests, args.concurrency)
    result.cpu_ms = (cpu_seconds(server.pid) - before) / args.requests * 1000
    return result


def gateway_env(workdir: Path, **extra: str) -> dict[str, str]:
    """The environment of a benchmarked gateway: its own directories and keys, a rate
    limit too high to be what is measured, quiet logs; ``WEAVER_*`` of the caller's shell
    left out so that nothing but ``extra`` changes the set-up."""
    return {
        **{k: v for k, v in os.environ.items() if not k.startswith("WEAVER_")},
        "WEAVER_DATA_DIR": str(workdir / "data"),
        "WEAVER_SQLITE_ROOT": str(workdir / "sqlite"),
        "ENCRYPTION_KEY": ENCRYPTION_KEY,
        "JWT_SECRET_KEY": JWT_SECRET,
        "WEAVER_RATE_LIMIT": "1000000000/60s",
        # Likewise the per-tenant query slots: the load runs 16 requests at once.
        "WEAVER_QUERY_CONCURRENCY": "1000",
        "LOG_LEVEL": "WARNING",
        **extra,
    }


async def load(
    base: str, scenario: Scenario, headers: dict[str, str], requests: int, concurrency: int
) -> Result:
    latencies: list[float] = []
    remaining = iter(range(requests))
    connector = aiohttp.TCPConnector(limit=concurrency)
    data = json.dumps(scenario.body).encode() if scenario.body is not None else None
    request_headers = {**headers, "Content-Type": "application/json"}

    async with aiohttp.ClientSession(connector=connector) as session:

        async def worker() -> None:
            for _ in remaining:
                started = time.perf_counter()
                async with session.request(
                    scenario.method, base + scenario.path, data=data, headers=request_headers
                ) as response:
                    await response.read()
                    if response.status != 200:
                        raise RuntimeError(f"{scenario.name}: HTTP {response.status}")
                latencies.append(time.perf_counter() - started)

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    return Result.of(latencies, elapsed)


def write_shop(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with sqlite3.connect(path) as db:
        db.executescript(
            "CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT, country TEXT);"
            + "".join(
                f"INSERT INTO customers VALUES ({i}, 'Customer {i}', 'KR');" for i in range(100)
            )
        )
    db.close()


def load_arguments(doc: str | None) -> argparse.Namespace:
    """The load generator's knobs, the same for every HTTP benchmark."""
    parser = argparse.ArgumentParser(description=(doc or "").splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=5)
    return parser.parse_args()


async def main() -> None:
    args = load_arguments(__doc__)

    workdir = Path(tempfile.mkdtemp(prefix="weaver-bench-"))
    env = gateway_env(workdir)
    for flag in (
        "WEAVER_EXTERNAL_MODE",
        "WEAVER_METADATA_EXTERNAL_MODE",
        "WEAVER_METADATA_PG_MODE",
        "WEAVER_REQUEST_GUARD_REDIS_MODE",
    ):
        env.pop(flag, None)
    write_shop(workdir / "sqlite" / "shop.db")
    headers = bench_headers("bench", env["JWT_SECRET_KEY"])
    scenarios = [
        Scenario("GET /api/datasources", "GET", "/api/datasources", None),
        Scenario(
            "POST /api/query (10 rows)",
            "POST",
            "/api/query",
            {"sql": "SELECT id, name, country FROM shop.customers WHERE id < 10"},
        ),
    ]

    gateway_port, bare_port = free_port(), free_port()
    gateway = f"http://127.0.0.1:{gateway_port}"
    bare = f"http://127.0.0.1:{bare_port}"
    serve = [sys.executable, "-m", "weaver", "serve", "--port", str(gateway_port)]
    with process(serve, env) as gateway_server:
        await wait_until_up(gateway + "/health/live")
        async with aiohttp.ClientSession(headers=headers) as session:
            body = {"name": "shop", "engine": "sqlite", "connection": {"path": "shop.db"}}
            async with session.post(gateway + "/api/datasources", json=body) as response:
                assert response.status == 201, await response.text()

        print(
            f"{'scenario':<28} {'server':<8} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} "
            f"{'CPU ms/req':>10}"
        )
        for scenario in scenarios:
            async with (
                aiohttp.ClientSession(headers=headers) as session,
                session.request(
                    scenario.method, gateway + scenario.path, json=scenario.body
                ) as response,
            ):
                answer = await response.read()
            answer_file = workdir / "answer.json"
            answer_file.write_bytes(answer)
            bare_server = [sys.executable, "-c", BARE_SERVER, str(bare_port), str(answer_file)]
            with process(bare_server, env) as bare_process:
                await wait_until_up(bare + "/")
                runs: dict[str, list[Result]] = {"bare": [], "weaver": []}
                # Warm both, then measure them in pairs of back-to-back rounds, the order
                # swapped every round, so that drift in the machine's speed hits both.
                await load(bare, scenario, headers, 300, args.concurrency)
                await load(gateway, scenario, headers, 300, args.concurrency)
                pairs = [("bare", bare_process, bare), ("weaver", gateway_server, gateway)]
                for _ in range(args.rounds):
                    for label, server, base in pairs:
                        runs[label].append(await measured(server, base, scenario, args, headers))
                    pairs.reverse()
            medians = {label: Result.median(results) for label, results in runs.items()}
            for label, result in medians.items():
                print(
                    f"{scenario.name:<28} {label:<8} {result.requests_per_second:>9.0f} "
                    f"{result.p50_ms:>8.2f} {result.p99_ms:>8.2f} {result.cpu_ms:>10.3f}"
                )
            # The median of each pair's ratio: a noisy round spoils one pair, not the figure.
            ratio = statistics.median(
                w.requests_per_second / b.requests_per_second
                for b, w in zip(runs["bare"], runs["weaver"], strict=True)
            )
            verdict = "meets" if ratio >= 0.5 else "MISSES"
            print(f"{scenario.name:<28} weaver keeps {ratio:.0%} of bare ({verdict} the 50% goal)")


if __name__ == "__main__":
    asyncio.run(main())
