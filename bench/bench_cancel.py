"""Cancellation latency: from ``DELETE /api/query/{id}`` to the statement gone at the
source, p50/p99 over 20 runs, against a real ``weaver serve``.

* embedded SQLite: a statement that would count for hours runs synchronously; one second
  in, another connection DELETEs it. "Gone" is the moment the waiting request receives
  its 409: the gateway answers only after the engine interrupted the statement and
  closed its cursor.
* with ``--mindsdb`` (and ``eval "$(scripts/services.sh env)"``): a PostgreSQL
  datasource through MindsDB runs a statement of 30 s (``pg_sleep``); "gone" is the first
  moment ``pg_stat_activity`` on the source shows no active statement of the datasource's
  role tagged with the query (polled every 5 ms).

    python bench/bench_cancel.py [--runs 20] [--mindsdb]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import time
from pathlib import Path

import aiohttp
import asyncpg
from bench_gateway import gateway_env, write_shop
from common import bench_headers, report, wait_until_up, weaver_serve

from weaver.testing import free_port

RUNAWAY = (
    "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 1000000000000)"
    " SELECT count(*) FROM n CROSS JOIN shop.customers"
)
SLEEPER = "SELECT count(*) FROM sales.{schema}.{table} WHERE pg_sleep(30) IS NOT NULL"


async def post(session: aiohttp.ClientSession, headers: dict[str, str], sql: str) -> int:
    """A synchronous query; the status it answered."""
    body = {"sql": sql, "timeout_seconds": 15}
    async with session.post("/api/query", json=body, headers=headers) as response:
        await response.read()
        return response.status


async def running_query(session: aiohttp.ClientSession, headers: dict[str, str]) -> str:
    """The id of the caller's running query, as a client finds it: in its history."""
    for _ in range(500):
        async with session.get(
            "/api/query/history", params={"status": "running"}, headers=headers
        ) as response:
            items = (await response.json())["items"]
        if items:
            return str(items[0]["query_id"])
        await asyncio.sleep(0.01)
    raise RuntimeError("the query never started")


async def embedded_run(session: aiohttp.ClientSession, headers: dict[str, str]) -> float:
    waiting = asyncio.create_task(post(session, headers, RUNAWAY))
    query_id = await running_query(session, headers)
    await asyncio.sleep(1)
    started = time.perf_counter()
    async with session.delete(f"/api/query/{query_id}", headers=headers) as deleted:
        assert deleted.status == 204, await deleted.text()
    status = await waiting
    gone = time.perf_counter() - started
    assert status == 409, status
    return gone * 1000


async def mindsdb_run(
    session: aiohttp.ClientSession, headers: dict[str, str], source: asyncpg.Connection, sql: str
) -> float:
    waiting = asyncio.create_task(post(session, headers, sql))
    query_id = await running_query(session, headers)
    busy = (
        "SELECT count(*) FROM pg_stat_activity WHERE usename = current_user"
        " AND state = 'active' AND pid <> pg_backend_pid() AND application_name LIKE $1"
    )
    for _ in range(1000):
        if await source.fetchval(busy, f"%{query_id}%") or await source.fetchval(busy, "weaver%"):
            break
        await asyncio.sleep(0.01)
    await asyncio.sleep(1)
    started = time.perf_counter()
    async with session.delete(f"/api/query/{query_id}", headers=headers) as deleted:
        assert deleted.status == 204, await deleted.text()
    # Another process (PostgreSQL) changes what is polled: there is no event to await.
    while await source.fetchval(busy, "weaver%"):  # noqa: ASYNC110
        await asyncio.sleep(0.005)
    gone = time.perf_counter() - started
    await waiting
    return gone * 1000


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--mindsdb", action="store_true")
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="weaver-bench-cancel-"))
    write_shop(workdir / "sqlite" / "shop.db")
    extra = {"WEAVER_ACCESS_LOG": "false"}
    if args.mindsdb:
        extra.update(
            WEAVER_EXTERNAL_MODE="true",
            MINDSDB_URL=os.environ["MINDSDB_URL"],
            MINDSDB_USER=os.environ.get("MINDSDB_USER", ""),
            MINDSDB_PASSWORD=os.environ.get("MINDSDB_PASSWORD", ""),
        )
    env = gateway_env(workdir, **extra)
    headers = bench_headers(f"bench{os.getpid()}", env["JWT_SECRET_KEY"])
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with weaver_serve(port, env):
        await wait_until_up(base + "/health/live")
        async with aiohttp.ClientSession(base) as session:
            if not args.mindsdb:
                body = {"name": "shop", "engine": "sqlite", "connection": {"path": "shop.db"}}
                async with session.post("/api/datasources", json=body, headers=headers) as made:
                    assert made.status == 201, await made.text()
                latencies = [await embedded_run(session, headers) for _ in range(args.runs)]
                report("embedded SQLite: DELETE -> 409", latencies)
                return
            source = await asyncpg.connect(
                host=os.environ["WEAVER_E2E_DS_HOST"],
                port=int(os.environ["WEAVER_E2E_DS_PORT"]),
                database=os.environ["WEAVER_E2E_DS_DATABASE"],
                user=os.environ["WEAVER_E2E_DS_USER"],
                password=os.environ["WEAVER_E2E_DS_PASSWORD"],
            )
            connection = {
                "host": os.environ["WEAVER_E2E_DS_HOST"],
                "port": int(os.environ["WEAVER_E2E_DS_PORT"]),
                "database": os.environ["WEAVER_E2E_DS_DATABASE"],
                "user": os.environ["WEAVER_E2E_DS_USER"],
                "password": os.environ["WEAVER_E2E_DS_PASSWORD"],
            }
            body = {"name": "sales", "engine": "postgres", "connection": connection}
            async with session.post("/api/datasources", json=body, headers=headers) as made:
                assert made.status == 201, await made.text()
            try:
                schema, table = await source.fetchrow(
                    "SELECT table_schema, table_name FROM information_schema.tables"
                    " WHERE table_schema NOT IN ('pg_catalog', 'information_schema')"
                    " AND table_type = 'BASE TABLE' ORDER BY 1, 2 LIMIT 1"
                )
                sql = SLEEPER.format(schema=schema, table=table)
                latencies = [
                    await mindsdb_run(session, headers, source, sql) for _ in range(args.runs)
                ]
                report("MindsDB + PostgreSQL: DELETE -> gone", latencies)
            finally:
                async with session.delete("/api/datasources/sales", headers=headers):
                    pass
                await source.close()


if __name__ == "__main__":
    asyncio.run(main())
