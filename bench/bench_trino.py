"""What Weaver adds to a Trino query, and Trino against MindsDB behind Weaver, in one run.

Two gateways run as their own processes (``weaver serve``) on loopback: one with
``WEAVER_TRINO_MODE=true`` on the dev Trino cluster, one with ``WEAVER_EXTERNAL_MODE=true``
on MindsDB, both with the same two sample databases registered. One request at a time,
in rotating order, goes to Weaver+Trino, straight to Trino's HTTP API (the statement
Weaver sends: internal names, ``LIMIT limit + 1``, every ``nextUri`` followed, on one
pooled session) and to Weaver+MindsDB. Weaver+Trino against direct Trino is the gateway's
cost (target: at most 2 ms at p50); Weaver+Trino against Weaver+MindsDB is the choice of
engine for the README.

    scripts/services.sh up postgres mindsdb trino
    eval "$(scripts/services.sh env)"
    python bench/bench_trino.py [--iterations 200] [--warmup 20]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import aiohttp
from bench_mindsdb import CASES, LIMIT, TARGET_MS, Case
from common import (
    ENCRYPTION_KEY,
    JWT_SECRET,
    bench_headers,
    percentile,
    services_environ,
    wait_until_up,
    weaver_serve,
)
from weaver_trino.testing import LiveEnv, live_env_from_environment

from weaver.testing import free_port

Call = Callable[[], Awaitable[None]]


def gateway_environ(workdir: Path, flag: str, **extra: str) -> dict[str, str]:
    env = {
        **os.environ,
        "APP_ENV": "development",
        flag: "true",
        "WEAVER_DATA_DIR": str(workdir / "data"),
        "ENCRYPTION_KEY": ENCRYPTION_KEY,
        "JWT_SECRET_KEY": JWT_SECRET,
        # The guard runs, but its budget must not be what is measured.
        "WEAVER_RATE_LIMIT": "1000000000/60s",
        "LOG_LEVEL": "WARNING",
        **extra,
    }
    for other in (
        "WEAVER_EXTERNAL_MODE",
        "WEAVER_TRINO_MODE",
        "WEAVER_METADATA_EXTERNAL_MODE",
        "WEAVER_METADATA_PG_MODE",
        "WEAVER_REQUEST_GUARD_REDIS_MODE",
    ):
        if other != flag:
            env.pop(other, None)
    return env


async def direct_trino(session: aiohttp.ClientSession, live: LiveEnv, sql: str) -> None:
    """The client protocol as Weaver's plugin speaks it, with nothing around it."""
    headers = {**live.headers, "X-Trino-Client-Capabilities": "PARAMETRIC_DATETIME"}
    url = f"{live.trino_url}/v1/statement"
    async with session.post(url, data=sql.encode(), headers=headers) as reply:
        page: dict[str, Any] = await reply.json()
    rows = 0
    while True:
        rows += len(page.get("data", []))
        assert "error" not in page, page["error"]
        if "nextUri" not in page:
            break
        async with session.get(page["nextUri"], headers=headers) as reply:
            page = await reply.json()
    assert rows > 0


async def through_weaver(
    session: aiohttp.ClientSession, gateway: str, auth: dict[str, str], case: Case
) -> None:
    body = {"sql": case.tenant_sql(), "limit": LIMIT}
    async with session.post(gateway + "/api/query", json=body, headers=auth) as response:
        answer: dict[str, Any] = await response.json()
        assert response.status == 200 and answer["row_count"] > 0, answer


async def measure(calls: dict[str, Call], iterations: int, warmup: int) -> dict[str, list[float]]:
    samples: dict[str, list[float]] = {label: [] for label in calls}
    failures: dict[str, int] = dict.fromkeys(calls, 0)
    order = list(calls.items())
    for index in range(warmup + iterations):
        # Rotate who goes first, so none always meets a warmer cache.
        shift = index % len(order)
        for label, call in order[shift:] + order[:shift]:
            started = time.perf_counter()
            try:
                await call()
            except AssertionError:
                # Counted and reported, not timed: a failed request is not a fast one.
                failures[label] += 1
                continue
            if index >= warmup:
                samples[label].append((time.perf_counter() - started) * 1000)
    failed = {label: n for label, n in failures.items() if n}
    if failed:
        print(f"failed requests (not timed): {failed}")
    return samples


def report(case: Case, samples: dict[str, list[float]]) -> None:
    for label, values in samples.items():
        print(
            f"{case.name:<22} {label:<16} {percentile(values, 0.5):>8.2f} "
            f"{percentile(values, 0.99):>8.2f} {statistics.fmean(values):>8.2f}"
        )
    added = percentile(samples["weaver+trino"], 0.5) - percentile(samples["trino direct"], 0.5)
    verdict = "within" if added <= TARGET_MS else "OVER"
    ratio = percentile(samples["weaver+trino"], 0.5) / percentile(samples["weaver+mindsdb"], 0.5)
    print(
        f"{case.name:<22} {'weaver adds':<16} {added:>8.2f}   {verdict} the {TARGET_MS:g} ms "
        f"p50 target; weaver+trino / weaver+mindsdb at p50: {ratio:.2f}"
    )


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=200)
    parser.add_argument("--warmup", type=int, default=20)
    args = parser.parse_args()

    live = live_env_from_environment(services_environ())
    databases = {"enterprise": live.database, "crm": live.crm_database}
    tenant = f"bench-{secrets.token_hex(4)}"
    auth = bench_headers(tenant)
    workdir = Path(tempfile.mkdtemp(prefix="weaver-bench-trino-"))
    gateways = {
        "weaver+trino": (f"http://127.0.0.1:{free_port()}", "WEAVER_TRINO_MODE", {}),
        "weaver+mindsdb": (
            f"http://127.0.0.1:{free_port()}",
            "WEAVER_EXTERNAL_MODE",
            {"MINDSDB_URL": services_environ()["MINDSDB_URL"]},
        ),
    }
    with ExitStack() as stack:
        for label, (url, flag, extra) in gateways.items():
            port = int(url.rsplit(":", 1)[1])
            stack.enter_context(weaver_serve(port, gateway_environ(workdir / label, flag, **extra)))
        async with aiohttp.ClientSession() as session:
            for url, _, _ in gateways.values():
                await wait_until_up(url + "/health/live")
                for name, database in databases.items():
                    body = {
                        "name": name,
                        "engine": "postgres",
                        "connection": live.connection(database),
                    }
                    async with session.post(url + "/api/datasources", json=body, headers=auth) as r:
                        assert r.status == 201, await r.text()
            try:
                print(
                    f"{'query':<22} {'path':<16} {'p50 ms':>8} {'p99 ms':>8} {'mean ms':>8}   "
                    f"({args.iterations} iterations each, interleaved)"
                )
                trino_url = gateways["weaver+trino"][0]
                mindsdb_url = gateways["weaver+mindsdb"][0]
                for case in CASES:
                    calls: dict[str, Call] = {
                        "weaver+trino": lambda c=case: through_weaver(session, trino_url, auth, c),
                        "trino direct": lambda c=case: direct_trino(
                            session, live, c.direct_sql(tenant)
                        ),
                        "weaver+mindsdb": lambda c=case: through_weaver(
                            session, mindsdb_url, auth, c
                        ),
                    }
                    report(case, await measure(calls, args.iterations, args.warmup))
            finally:
                for url, _, _ in gateways.values():
                    for name in databases:
                        async with session.delete(f"{url}/api/datasources/{name}", headers=auth):
                            pass


if __name__ == "__main__":
    asyncio.run(main())
