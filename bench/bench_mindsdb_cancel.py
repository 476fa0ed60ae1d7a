"""How fast a cancel stops a MindsDB query at its PostgreSQL source, and how fast rows
stream: in-process, through the core's pump, on the real MindsDB and PostgreSQL.

Each run starts a statement, waits until it runs on the source, lets it run a second,
calls ``host.cancel_query`` (what ``DELETE /api/query/{id}`` does) and polls
``pg_stat_activity`` every 2 ms until nothing runs on the database: the time from the
cancel call to that moment. Two shapes: ``sleeping`` (``pg_sleep`` per row, the backend
executing all along) and ``reading`` (a million-row scan, the backend idle between
MindsDB's fetches). Then one million-row result streams through the pump, with this
process's resident memory sampled.

    scripts/services.sh up postgres mindsdb
    eval "$(scripts/services.sh env)"
    python bench/bench_mindsdb_cancel.py [--runs 20]

The statements run on a database of the bench's own, created as the sample user and
dropped at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from common import report, services_environ
from weaver_mindsdb import tagging
from weaver_mindsdb.testing import (
    LiveEnv,
    busy_backends,
    create_scratch_database,
    drop_scratch_database,
    live_env_from_environment,
    wait_for,
)

from weaver.host import Host
from weaver.queries.pump import pump
from weaver.testing import running_host
from weaver.testing.engine import prepare, principal_for
from weaver.testing.live import register_datasource
from weaver.types import Datasource, PreparedQuery

ROWS = 1_000_000
SHAPES = {
    "sleeping": ("SELECT id, pg_sleep(0.1) AS s FROM lab.ticks", 1.0),
    "reading": ("SELECT * FROM lab.wide", 1.0),
}


async def ignore(_: Any) -> None:
    return None


async def one_cancel(
    env: LiveEnv, host: Host, datasource: Datasource, database: str, sql: str, after: float
) -> tuple[float, float]:
    """Seconds from the cancel call to the statement gone, and to cancel_query's return."""
    query: PreparedQuery = await prepare(host, sql, [datasource], limit=ROWS, timeout_seconds=120)
    tag = tagging.query_tag(query.query_id)
    task = asyncio.create_task(
        pump(host, principal_for(datasource), query, on_columns=ignore, on_rows=ignore)
    )

    async def running() -> bool:
        return any(r["state"] == "active" for r in await busy_backends(env, database, tag))

    assert await wait_for(running, 60), "the statement never reached the source"
    await asyncio.sleep(after)
    started = time.perf_counter()
    cancelling = asyncio.create_task(host.cancel_query(query))

    async def gone() -> bool:
        return not await busy_backends(env, database)

    assert await wait_for(gone, 30, interval=0.002), "the statement is still there after 30s"
    gone_after = time.perf_counter() - started
    assert await cancelling is True
    returned_after = time.perf_counter() - started
    try:
        await task
    except Exception as error:  # QueryCancelled, as it must
        assert type(error).__name__ == "QueryCancelled", error
    else:
        raise AssertionError("a cancelled query answered as if whole")
    return gone_after, returned_after


def resident_bytes() -> int:
    with open(f"/proc/{os.getpid()}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS")


async def stream(host: Host, datasource: Datasource) -> None:
    query = await prepare(host, "SELECT * FROM lab.wide", [datasource], limit=ROWS)
    before = peak = resident_bytes()
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.wait(0.02):
            peak = max(peak, resident_bytes())

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    started = time.perf_counter()
    first: list[float] = []

    async def note_first(batch: Any) -> None:
        if not first:
            first.append(time.perf_counter() - started)

    try:
        pumped = await pump(
            host, principal_for(datasource), query, on_columns=ignore, on_rows=note_first
        )
    finally:
        done.set()
        sampler.join()
    seconds = time.perf_counter() - started
    print(
        f"stream    {pumped.row_count} rows in {seconds:.1f}s: {pumped.row_count / seconds:,.0f} "
        f"rows/s, first batch after {first[0]:.2f}s, resident memory "
        f"+{(peak - before) / 2**20:.1f} MiB"
    )


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    args = parser.parse_args()
    env = live_env_from_environment(services_environ())
    database = f"weaver_bench_{secrets.token_hex(4)}"
    print(f"creating {database} ({ROWS} rows)", flush=True)
    await create_scratch_database(env, database, rows=ROWS)
    try:
        settings = env.settings(Path(tempfile.mkdtemp(prefix="weaver-bench-cancel-")))
        async with running_host(settings) as host:
            tenant = f"bench-{secrets.token_hex(4)}"
            datasource = await register_datasource(host, tenant, "lab", env.connection(database))
            try:
                for shape, (sql, after) in SHAPES.items():
                    gone, returned = [], []
                    for _ in range(args.runs):
                        g, r = await one_cancel(env, host, datasource, database, sql, after)
                        gone.append(g * 1000)
                        returned.append(r * 1000)
                    report(f"{shape} gone", gone)
                    report(f"{shape} returned", returned)
                await stream(host, datasource)
            finally:
                await host.unregister_datasource(datasource)
    finally:
        await drop_scratch_database(env, database)


if __name__ == "__main__":
    asyncio.run(main())
