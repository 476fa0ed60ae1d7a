"""What Weaver adds to a MindsDB query: the same statements through the gateway and
straight to MindsDB's HTTP API, in one run.

Weaver runs as its own process (``weaver serve``, external mode) on loopback; the load
generator sends one request at a time, alternating gateway and direct, so both see the
same MindsDB, the same sources and the same machine noise. The direct request is the
statement Weaver itself sends (internal names, ``LIMIT limit + 1``), so the difference is
the gateway: HTTP, token, guard, parsing and checks twice, rewriting, the result's JSON.
Target: at most 2 ms added at the median.

Weaver wraps a statement of one PostgreSQL datasource so that its source runs it under
the query's tag (`weaver_mindsdb.tagging`), and asks for an answer of more than 10,000
rows as ``jsonlines``. Two more paths straight to MindsDB measure what each costs a
small result: ``tagged`` (the wrapped statement Weaver sends, a fresh tag each time)
and ``lines`` (the plain statement as jsonlines, which Weaver does not use at this
limit). With ``WEAVER_MINDSDB_TAG_QUERIES=false`` Weaver, and ``tagged``, send the plain
statement.

    scripts/services.sh up postgres mindsdb
    eval "$(scripts/services.sh env)"
    python bench/bench_mindsdb.py [--iterations 300] [--warmup 20]

Needs MINDSDB_URL and the sample databases (WEAVER_E2E_DS_*, WEAVER_E2E_CRM_DATABASE;
the defaults are those of scripts/services.sh).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import orjson
from common import (
    ENCRYPTION_KEY,
    JWT_SECRET,
    bench_headers,
    percentile,
    services_environ,
    wait_until_up,
    weaver_serve,
)
from weaver_mindsdb import tagging
from weaver_mindsdb.testing import live_env_from_environment

from weaver.naming import internal_name
from weaver.testing import free_port

LIMIT = 1000
TARGET_MS = 2.0


@dataclass(frozen=True)
class Case:
    name: str
    # SQL over the datasources {enterprise} and {crm}.
    template: str

    def tenant_sql(self) -> str:
        return self.template.format(enterprise="enterprise", crm="crm")

    def direct_sql(self, tenant: str) -> str:
        """The statement Weaver sends MindsDB: internal names, one row more."""
        names = {name: internal_name(tenant, name) for name in ("enterprise", "crm")}
        return f"{self.template.format(**names)} LIMIT {LIMIT + 1}"

    def tagged_sql(self, tenant: str) -> str:
        """The same, as Weaver sends it where it tags: a fresh tag every time."""
        sql = self.direct_sql(tenant)
        tagging_off = os.environ.get("WEAVER_MINDSDB_TAG_QUERIES", "true").lower() == "false"
        if tagging_off or "{crm}" in self.template or not tagging.can_tag(sql):
            return sql
        tag = tagging.query_tag(secrets.token_urlsafe(12))
        assert tag is not None
        return tagging.tag_statement(sql, tag)


CASES = (
    Case(
        "point lookup",
        "SELECT customer_id, name, segment, credit_limit FROM {enterprise}.sales.customers "
        "WHERE customer_id = 42",
    ),
    Case(
        "cross-database join",
        "SELECT c.segment, t.tier, count(*) AS customers "
        "FROM {enterprise}.sales.customers AS c "
        "JOIN {crm}.crm.customer_tiers AS t ON c.customer_id = t.customer_id "
        "GROUP BY c.segment, t.tier",
    ),
)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=300)
    parser.add_argument("--warmup", type=int, default=20)
    args = parser.parse_args()

    live = live_env_from_environment(services_environ())
    databases = {"enterprise": live.database, "crm": live.crm_database}
    tenant = f"bench-{secrets.token_hex(4)}"
    workdir = Path(tempfile.mkdtemp(prefix="weaver-bench-mindsdb-"))
    env = {
        **os.environ,
        "APP_ENV": "development",
        "WEAVER_EXTERNAL_MODE": "true",
        "MINDSDB_URL": live.mindsdb_url,
        "WEAVER_DATA_DIR": str(workdir / "data"),
        "ENCRYPTION_KEY": ENCRYPTION_KEY,
        "JWT_SECRET_KEY": JWT_SECRET,
        # The guard runs, but its budget must not be what is measured.
        "WEAVER_RATE_LIMIT": "1000000000/60s",
        "LOG_LEVEL": "WARNING",
    }
    for flag in (
        "WEAVER_METADATA_EXTERNAL_MODE",
        "WEAVER_METADATA_PG_MODE",
        "WEAVER_REQUEST_GUARD_REDIS_MODE",
    ):
        env.pop(flag, None)

    port = free_port()
    gateway = f"http://127.0.0.1:{port}"
    auth = bench_headers(tenant)
    with weaver_serve(port, env):
        await wait_until_up(gateway + "/health/live")
        async with aiohttp.ClientSession() as session:
            for name, database in databases.items():
                body = {"name": name, "engine": "postgres", "connection": live.connection(database)}
                async with session.post(gateway + "/api/datasources", json=body, headers=auth) as r:
                    assert r.status == 201, await r.text()
            try:
                targets = Targets(
                    session=session,
                    gateway=gateway,
                    gateway_auth=auth,
                    mindsdb=live.mindsdb_url,
                    mindsdb_auth=await live.mindsdb_headers(session),
                    tenant=tenant,
                )
                await run_cases(targets, args.iterations, args.warmup)
            finally:
                for name in databases:
                    async with session.delete(f"{gateway}/api/datasources/{name}", headers=auth):
                        pass


@dataclass
class Targets:
    """Where the requests go, and what they carry."""

    session: aiohttp.ClientSession
    gateway: str
    gateway_auth: dict[str, str]
    mindsdb: str
    mindsdb_auth: dict[str, str]
    tenant: str


async def measure(
    case: Case, targets: Targets, iterations: int, warmup: int
) -> dict[str, list[float]]:
    """Milliseconds per request: ``weaver`` (client to gateway and back), ``engine`` (the
    part of it the gateway spent in the query engine, its own ``elapsed_ms``) and
    ``direct`` (client to MindsDB and back)."""
    samples: dict[str, list[float]] = {
        "direct": [],
        "lines": [],
        "tagged": [],
        "weaver": [],
        "engine": [],
    }
    weaver_body = {"sql": case.tenant_sql(), "limit": LIMIT}
    direct_body = {"query": case.direct_sql(targets.tenant)}

    async def through_weaver() -> float:
        async with targets.session.post(
            targets.gateway + "/api/query", json=weaver_body, headers=targets.gateway_auth
        ) as response:
            answer: dict[str, Any] = await response.json()
            assert response.status == 200 and answer["row_count"] > 0, answer
            return float(answer["elapsed_ms"])

    async def whole(sql: str) -> float:
        async with targets.session.post(
            targets.mindsdb + "/api/sql/query", json={"query": sql}, headers=targets.mindsdb_auth
        ) as response:
            answer: dict[str, Any] = await response.json(content_type=None)
            assert answer.get("type") == "table" and answer["data"], answer
            return 0.0

    async def direct() -> float:
        return await whole(direct_body["query"])

    async def as_lines(sql: str) -> float:
        body = {"query": sql, "response_format": "jsonlines"}
        async with targets.session.post(
            targets.mindsdb + "/api/sql/query", json=body, headers=targets.mindsdb_auth
        ) as response:
            lines = [orjson.loads(line) async for line in response.content if line.strip()]
            assert lines[0].get("type") == "table" and len(lines) > 1, lines
            return 0.0

    async def direct_lines() -> float:
        return await as_lines(case.direct_sql(targets.tenant))

    async def tagged() -> float:
        return await whole(case.tagged_sql(targets.tenant))

    calls = [
        ("weaver", through_weaver),
        ("direct", direct),
        ("lines", direct_lines),
        ("tagged", tagged),
    ]
    for index in range(warmup + iterations):
        # Rotate which goes first, so none always meets a warmer cache.
        shift = index % len(calls)
        for label, call in calls[shift:] + calls[:shift]:
            started = time.perf_counter()
            engine = await call()
            elapsed = (time.perf_counter() - started) * 1000
            if index >= warmup:
                samples[label].append(elapsed)
                if label == "weaver":
                    samples["engine"].append(engine)
    return samples


def report(case: Case, samples: dict[str, list[float]]) -> None:
    for label in ("direct", "lines", "tagged", "weaver", "engine"):
        values = samples[label]
        print(
            f"{case.name:<22} {label:<8} {percentile(values, 0.5):>8.2f} "
            f"{percentile(values, 0.99):>8.2f} {statistics.fmean(values):>8.2f}"
        )
    added_p50 = percentile(samples["weaver"], 0.5) - percentile(samples["direct"], 0.5)
    added_p99 = percentile(samples["weaver"], 0.99) - percentile(samples["direct"], 0.99)
    verdict = "within" if added_p50 <= TARGET_MS else "OVER"
    print(
        f"{case.name:<22} {'added':<8} {added_p50:>8.2f} {added_p99:>8.2f}"
        f"   {verdict} the {TARGET_MS:g} ms p50 target"
    )
    for label, more, less in (
        ("streamed", "lines", "direct"),
        ("tag", "tagged", "direct"),
        ("gateway", "weaver", "tagged"),
    ):
        p50 = percentile(samples[more], 0.5) - percentile(samples[less], 0.5)
        p99 = percentile(samples[more], 0.99) - percentile(samples[less], 0.99)
        print(f"{case.name:<22} {label:<8} {p50:>8.2f} {p99:>8.2f}   ({more} - {less})")


async def run_cases(targets: Targets, iterations: int, warmup: int) -> None:
    print(
        f"{'query':<22} {'path':<8} {'p50 ms':>8} {'p99 ms':>8} {'mean ms':>8}   "
        f"({iterations} iterations each, interleaved)"
    )
    for case in CASES:
        report(case, await measure(case, targets, iterations, warmup))


if __name__ == "__main__":
    asyncio.run(main())
