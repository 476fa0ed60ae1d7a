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

With ``--source mindsdb`` or ``both`` (and ``eval "$(scripts/services.sh env)"``), the
same number of rows of a generated PostgreSQL table goes out as NDJSON through MindsDB,
against asyncpg reading the table and orjson writing it; MindsDB, not the gateway, sets
that pace (it reads the source and re-encodes every row before the gateway sees one).

    python bench/bench_export.py [--rows 1000000] [--rounds 3] [--source embedded|mindsdb|both]
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import statistics
import tempfile
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from decimal import Decimal
from functools import partial
from pathlib import Path
from typing import Any

import aiohttp
from bench_encoders import (
    BASELINES,
    BATCH_ROWS,
    FORMATS,
    SELECT,
    baseline_ndjson,
    fetched,
    make_database,
)
from bench_gateway import gateway_env
from common import bench_headers, wait_until_up, weaver_serve
from weaver_mindsdb.testing import (
    LiveEnv,
    create_scratch_database,
    drop_scratch_database,
    live_env_from_environment,
)

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


@dataclass
class Gateway:
    base: str
    headers: dict[str, str]
    pid: int

    async def export(self, media_type: str, sql: str, rows: int) -> Export:
        """``sql`` exported in ``media_type``, read to its last byte, with the gateway's
        resident memory sampled all along."""
        before = rss_mb(self.pid)
        peak = before
        stop = asyncio.Event()

        async def sample() -> None:
            nonlocal peak
            while not stop.is_set():
                peak = max(peak, rss_mb(self.pid))
                await asyncio.sleep(0.02)

        sampler = asyncio.create_task(sample())
        size = 0
        first = None
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=None)) as session:
            started = time.perf_counter()
            async with session.post(
                self.base + "/api/query",
                json={"sql": sql, "limit": rows},
                headers={**self.headers, "Accept": media_type},
            ) as response:
                if response.status != 200:
                    raise RuntimeError(f"HTTP {response.status}: {await response.text()}")
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


@asynccontextmanager
async def served(env: dict[str, str], datasource: dict[str, Any]) -> AsyncIterator[Gateway]:
    """A real ``weaver serve`` with ``env`` and one datasource of tenant ``bench``."""
    headers = bench_headers("bench", env["JWT_SECRET_KEY"])
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with weaver_serve(port, env) as gateway:
        await wait_until_up(base + "/health/live")
        async with (
            aiohttp.ClientSession(headers=headers) as session,
            session.post(base + "/api/datasources", json=datasource) as response,
        ):
            assert response.status == 201, await response.text()
        yield Gateway(base, headers, gateway.pid)


HEADER = (
    f"{'format':<7} {'baseline rows/s':>16} {'weaver rows/s':>14} {'ratio':>6} "
    f"{'first byte':>11} {'memory':>9}"
)


async def embedded(rows: int, rounds: int) -> None:
    workdir = Path(tempfile.mkdtemp(prefix="weaver-bench-export-"))
    database = workdir / "sqlite" / "big.db"
    database.parent.mkdir(parents=True)
    make_database(database, rows)
    env = gateway_env(workdir, WEAVER_ACCESS_LOG="false")
    datasource = {"name": "big", "engine": "sqlite", "connection": {"path": "big.db"}}
    async with served(env, datasource) as gateway:
        sql = SELECT.replace("FROM t", "FROM big.t")
        print(f"{rows} rows x 6 columns from embedded SQLite, {rounds} rounds, median round")
        print(HEADER)
        for name, media_type in FORMATS.items():
            ratios, base_rates, exports = [], [], []
            for round_ in range(rounds):
                order = ["baseline", "weaver"] if round_ % 2 == 0 else ["weaver", "baseline"]
                for side in order:
                    if side == "baseline":
                        rate, _ = baseline(BASELINES[name], database, rows)
                        base_rates.append(rate)
                    else:
                        exports.append(await gateway.export(media_type, sql, rows))
                ratios.append(exports[-1].rows_per_second / base_rates[-1])
            report(name, statistics.median(base_rates), exports, statistics.median(ratios))


def report(
    name: str, base_rate: float, exports: list[Export], ratio: float, judged: bool = True
) -> None:
    """One row of the table; ``judged`` rows say whether they meet the goals."""
    first_byte = statistics.median(e.first_byte_ms for e in exports)
    memory = max(e.memory_mb for e in exports)
    goal = GOALS[name]
    verdict = (
        f"  ({'meets' if ratio >= goal else 'MISSES'} {goal:.0%}; memory "
        f"{'meets' if memory < MEMORY_GOAL_MB else 'MISSES'} {MEMORY_GOAL_MB} MB; "
        f"first byte {'meets' if first_byte < FIRST_BYTE_GOAL_MS else 'MISSES'} "
        f"{FIRST_BYTE_GOAL_MS} ms)"
    )
    print(
        f"{name:<7} {base_rate:>16,.0f} "
        f"{statistics.median(e.rows_per_second for e in exports):>14,.0f} "
        f"{ratio:>6.0%} {first_byte:>9.1f}ms {memory:>7.1f}MB" + (verdict if judged else "")
    )


async def postgres_ndjson(env: LiveEnv, database: str, sql: str) -> tuple[float, int]:
    """The baseline through MindsDB: the same rows read from PostgreSQL by asyncpg (a
    server-side cursor, batches of `BATCH_ROWS`) and written as NDJSON by orjson."""
    connection = await env.pg(database)
    try:
        started = time.perf_counter()
        count = 0
        async with connection.transaction():
            cursor = await connection.cursor(sql)
            while batch := await cursor.fetch(BATCH_ROWS):
                rows = [tuple(_plain(value) for value in record) for record in batch]
                baseline_ndjson(partial(iter, [rows]))
                count += len(rows)
        return count / (time.perf_counter() - started), count
    finally:
        await connection.close()


def _plain(value: Any) -> Any:
    # orjson writes ints, strings and datetimes itself; a Decimal it leaves to the caller.
    return str(value) if isinstance(value, Decimal) else value


async def through_mindsdb(rows: int, rounds: int) -> None:
    """NDJSON from a generated PostgreSQL table through MindsDB, against asyncpg reading
    the same table; needs ``eval "$(scripts/services.sh env)"``."""
    env = live_env_from_environment()
    database = f"weaver_bench_{secrets.token_hex(4)}"
    await create_scratch_database(env, database, rows=rows)
    workdir = Path(tempfile.mkdtemp(prefix="weaver-bench-export-mindsdb-"))
    gateway_settings = gateway_env(
        workdir,
        WEAVER_ACCESS_LOG="false",
        WEAVER_EXTERNAL_MODE="true",
        MINDSDB_URL=env.mindsdb_url,
        MINDSDB_TIMEOUT="600",
    )
    datasource = {"name": "big", "engine": "postgres", "connection": env.connection(database)}
    columns = "id, qty, label, amount, created, note"
    try:
        async with served(gateway_settings, datasource) as gateway:
            print(f"\n{rows} rows x 6 columns from PostgreSQL through MindsDB, NDJSON")
            print(HEADER)
            ratios, base_rates, exports = [], [], []
            for _ in range(rounds):
                rate, _count = await postgres_ndjson(env, database, f"SELECT {columns} FROM wide")
                base_rates.append(rate)
                sql = f"SELECT {columns} FROM big.public.wide"
                exports.append(await gateway.export("application/x-ndjson", sql, rows))
                ratios.append(exports[-1].rows_per_second / rate)
            # Reported, not judged: the goals are the gateway's, and MindsDB sets this pace.
            ratio = statistics.median(ratios)
            report("ndjson", statistics.median(base_rates), exports, ratio, judged=False)
    finally:
        await drop_scratch_database(env, database)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--source",
        choices=["embedded", "mindsdb", "both"],
        default="embedded",
        help="where the rows come from; mindsdb needs the services up",
    )
    args = parser.parse_args()
    if args.source in ("embedded", "both"):
        await embedded(args.rows, args.rounds)
    if args.source in ("mindsdb", "both"):
        await through_mindsdb(args.rows, args.rounds)


if __name__ == "__main__":
    asyncio.run(main())
