"""An export of 1,000,000 rows by 6 columns through Weaver, in NDJSON, CSV and Arrow,
against the physical limit of the pipeline: the same rows fetched with Python's
``sqlite3`` and written in the same format by the same library, in one process.

The gateway is a real ``weaver serve`` on the embedded defaults; the rows are an embedded
SQLite datasource (the file `bench_encoders.make_database` writes). For each format,
rounds alternate baseline and gateway, the order swapped each round:

* rows/s — the baseline's in this process (wall clock), the gateway's as a client reads
  the whole response (wall clock from the request to the last byte);
* first byte — from sending the request to the first chunk of the body;
* memory — the gateway's resident set (``/proc/<pid>/status`` VmRSS, sampled every 20 ms)
  at its peak during the export, above what it was just before.

Goals: NDJSON and CSV at least 50% of the baseline's rows/s, Arrow at least 70%; the
gateway's memory grows by less than 64 MB; the first byte within 100 ms.

    python bench/bench_export.py [--rows 1000000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import aiohttp
from bench_encoders import BASELINES, FORMATS, SELECT, fetched, make_database
from bench_gateway import gateway_env, wait_until_up
from common import bench_headers

from weaver.testing import free_port

GOALS = {"ndjson": 0.5, "csv": 0.5, "arrow": 0.7}
MEMORY_GOAL_MB = 64
FIRST_BYTE_GOAL_MS = 100


@dataclass
class Export:
    rows_per_second: float
    first_byte_ms: float
    memory_mb: float
    bytes: int


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


async def through_gateway(
    base: str, headers: dict[str, str], media_type: str, sql: str, rows: int, pid: int
) -> Export:
    before = rss_mb(pid)
    peak = before
    stop = asyncio.Event()

    async def sample() -> None:
        nonlocal peak
        while not stop.is_set():
            peak = max(peak, rss_mb(pid))
            await asyncio.sleep(0.02)

    sampler = asyncio.create_task(sample())
    size = 0
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=None)) as session:
        started = time.perf_counter()
        async with session.post(
            base + "/api/query",
            json={"sql": sql, "limit": rows},
            headers={**headers, "Accept": media_type},
        ) as response:
            if response.status != 200:
                raise RuntimeError(f"HTTP {response.status}: {await response.text()}")
            first = None
            async for chunk in response.content.iter_any():
                if first is None:
                    first = time.perf_counter()
                size += len(chunk)
        elapsed = time.perf_counter() - started
    stop.set()
    await sampler
    assert first is not None
    return Export(rows / elapsed, (first - started) * 1000, peak - before, size)


def baseline(run: Callable[..., int], database: Path, rows: int) -> tuple[float, int]:
    started = time.perf_counter()
    size = run(fetched(database))
    return rows / (time.perf_counter() - started), size


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="weaver-bench-export-"))
    database = workdir / "sqlite" / "big.db"
    database.parent.mkdir(parents=True)
    make_database(database, args.rows)
    env = gateway_env(workdir, WEAVER_ACCESS_LOG="false")
    headers = bench_headers("bench", env["JWT_SECRET_KEY"])
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    gateway = subprocess.Popen(  # noqa: ASYNC220 - started once, before anything is timed
        [sys.executable, "-m", "weaver", "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        await wait_until_up(base + "/health/live")
        async with aiohttp.ClientSession(headers=headers) as session:
            body = {"name": "big", "engine": "sqlite", "connection": {"path": "big.db"}}
            async with session.post(base + "/api/datasources", json=body) as response:
                assert response.status == 201, await response.text()
        sql = SELECT.replace("FROM t", "FROM big.t")
        print(f"{args.rows} rows x 6 columns, {args.rounds} rounds, median round")
        print(
            f"{'format':<7} {'baseline rows/s':>16} {'weaver rows/s':>14} {'ratio':>6} "
            f"{'first byte':>11} {'memory':>9}"
        )
        for name, media_type in FORMATS.items():
            ratios, base_rates, exports = [], [], []
            for round_ in range(args.rounds):
                order = ["baseline", "weaver"] if round_ % 2 == 0 else ["weaver", "baseline"]
                for side in order:
                    if side == "baseline":
                        rate, _ = baseline(BASELINES[name], database, args.rows)
                        base_rates.append(rate)
                    else:
                        exports.append(
                            await through_gateway(
                                base, headers, media_type, sql, args.rows, gateway.pid
                            )
                        )
                ratios.append(exports[-1].rows_per_second / base_rates[-1])
            ratio = statistics.median(ratios)
            first_byte = statistics.median(e.first_byte_ms for e in exports)
            memory = max(e.memory_mb for e in exports)
            verdict = "meets" if ratio >= GOALS[name] else "MISSES"
            print(
                f"{name:<7} {statistics.median(base_rates):>16,.0f} "
                f"{statistics.median(e.rows_per_second for e in exports):>14,.0f} "
                f"{ratio:>6.0%} {first_byte:>9.1f}ms {memory:>7.1f}MB  "
                f"({verdict} {GOALS[name]:.0%}; memory "
                f"{'meets' if memory < MEMORY_GOAL_MB else 'MISSES'} {MEMORY_GOAL_MB} MB; "
                f"first byte {'meets' if first_byte < FIRST_BYTE_GOAL_MS else 'MISSES'} "
                f"{FIRST_BYTE_GOAL_MS} ms)"
            )
    finally:
        gateway.terminate()
        gateway.wait(timeout=10)


if __name__ == "__main__":
    asyncio.run(main())
