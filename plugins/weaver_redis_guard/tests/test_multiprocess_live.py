"""Three `weaver serve` processes sharing one Redis and one embedded store: the rate limit
and Idempotency-Key hold across them, and Redis going away and coming back is survived
without restarting a gateway."""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import redis
from weaver_redis_guard.plugin import KEY_PREFIX
from weaver_redis_guard.testing import RedisServer, free_port

from weaver.auth import mint_token
from weaver.ratelimit import caller_key
from weaver.testing.harness import make_settings
from weaver.types import Principal

pytestmark = [
    pytest.mark.live,
    pytest.mark.skipif(
        os.environ.get("WEAVER_RUN_E2E") != "1", reason="live suite: set WEAVER_RUN_E2E=1"
    ),
]

GATEWAYS = 3
RATE_LIMIT = 30
IDEMPOTENCY_TTL_SECONDS = 5
JWT_SECRET_KEY = "multiprocess-jwt-secret-0123456789abcdef"
ENCRYPTION_KEY = "multiprocess-encryption-key-0123456789"
DATASOURCE = {"name": "demo", "engine": "sqlite", "connection": {"path": "demo.db"}}


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: Any


@dataclass
class Gateways:
    """``weaver serve`` processes on loopback with one environment between them."""

    workdir: Path
    redis_url: str
    overrides: dict[str, str] = field(default_factory=dict)
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)
    urls: list[str] = field(default_factory=list)
    callers: list[Principal] = field(default_factory=list)

    def environment(self) -> dict[str, str]:
        sqlite_root = self.workdir / "sqlite"
        sqlite_root.mkdir(parents=True, exist_ok=True)
        with sqlite3.connect(sqlite_root / "demo.db") as db:
            db.execute("CREATE TABLE IF NOT EXISTS items (id INTEGER PRIMARY KEY, name TEXT)")
        db.close()
        env = {k: v for k, v in os.environ.items() if not k.startswith("WEAVER_")}
        env.update(
            APP_ENV="test",
            WEAVER_DATA_DIR=str(self.workdir / "data"),
            WEAVER_SQLITE_ROOT=str(sqlite_root),
            JWT_SECRET_KEY=JWT_SECRET_KEY,
            ENCRYPTION_KEY=ENCRYPTION_KEY,
            WEAVER_REQUEST_GUARD_REDIS_MODE="true",
            REDIS_URL=self.redis_url,
            WEAVER_RATE_LIMIT=f"{RATE_LIMIT}/3600s",
            WEAVER_REQUEST_GUARD_IDEMPOTENCY_TTL_SECONDS=str(IDEMPOTENCY_TTL_SECONDS),
        )
        env.update(self.overrides)
        return env

    def start(self) -> None:
        env = self.environment()
        # Probed one at a time, the same free port could come back twice.
        ports: set[int] = set()
        while len(ports) < GATEWAYS:
            ports.add(free_port())
        command = [sys.executable, "-m", "weaver", "serve", "--host", "127.0.0.1", "--port"]
        for n, port in enumerate(sorted(ports)):
            with (self.workdir / f"gateway-{n}.log").open("wb") as log:
                self.processes.append(
                    subprocess.Popen([*command, str(port)], env=env, stdout=log, stderr=log)
                )
            self.urls.append(f"http://127.0.0.1:{port}")
        try:
            for url, process in zip(self.urls, self.processes, strict=True):
                self._wait_until_live(url, process)
        except BaseException:
            # The fixture never gets to stop gateways that failed to start together.
            self.stop()
            raise

    def _wait_until_live(self, url: str, process: subprocess.Popen[bytes]) -> None:
        import urllib.request

        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            assert process.poll() is None, f"gateway exited:\n{self.logs()}"
            try:
                with urllib.request.urlopen(f"{url}/health/live", timeout=1) as answer:
                    if answer.status == 200:
                        return
            except OSError:
                time.sleep(0.2)
        raise AssertionError(f"gateway at {url} did not come up:\n{self.logs()}")

    def stop(self) -> None:
        for process in self.processes:
            process.send_signal(signal.SIGTERM)
        for process in self.processes:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()

    def logs(self) -> str:
        return "\n".join(p.read_text(errors="replace") for p in self.workdir.glob("*.log"))

    def caller(self) -> dict[str, str]:
        """The Authorization header of a new caller, in a tenant of its own."""
        principal = Principal("alice", f"t-{uuid.uuid4().hex[:12]}", frozenset())
        self.callers.append(principal)
        settings = make_settings(self.workdir / "mint", JWT_SECRET_KEY=JWT_SECRET_KEY)
        token = mint_token(
            settings, tenant_id=principal.tenant_id, subject=principal.subject, roles=["editor"]
        )
        return {"Authorization": f"Bearer {token}"}

    def forget_callers(self) -> None:
        """Remove what the guard keeps for this run's callers from the shared Redis."""
        client = redis.Redis.from_url(self.redis_url)
        try:
            for principal in self.callers:
                pattern = f"{KEY_PREFIX}{{{caller_key(principal)}}}*"
                keys = list(client.scan_iter(match=pattern, count=1000))
                if keys:
                    client.delete(*keys)
        finally:
            client.close()


async def send(
    session: aiohttp.ClientSession,
    url: str,
    method: str,
    path: str,
    headers: dict[str, str],
    json: Any = None,
) -> Reply:
    async with session.request(method, url + path, headers=headers, json=json) as answer:
        body = await answer.json(content_type=None) if answer.content_length != 0 else None
        return Reply(answer.status, dict(answer.headers), body)


async def spread(
    gateways: Gateways, count: int, method: str, path: str, headers: dict[str, str], **kw: Any
) -> list[Reply]:
    """``count`` concurrent requests, dealt round-robin to the gateways."""
    async with aiohttp.ClientSession() as session:
        return await asyncio.gather(
            *(
                send(session, gateways.urls[n % GATEWAYS], method, path, headers, **kw)
                for n in range(count)
            )
        )


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateways]:
    """Three gateways on the shared Redis, for the tests that keep it running."""
    url = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
    gateways = Gateways(tmp_path_factory.mktemp("gateways"), url)
    gateways.start()
    try:
        yield gateways
    finally:
        gateways.stop()
        gateways.forget_callers()


async def test_limit_holds_exactly_across_processes(shared: Gateways) -> None:
    auth = shared.caller()
    replies = await spread(shared, RATE_LIMIT + 100, "GET", "/api/datasources", auth)

    statuses = sorted(r.status for r in replies)
    assert statuses == [200] * RATE_LIMIT + [429] * 100, shared.logs()
    refused = next(r for r in replies if r.status == 429)
    assert refused.headers["Content-Type"].startswith("application/problem+json")
    assert int(refused.headers["Retry-After"]) >= 1
    assert refused.headers["RateLimit-Policy"] == f'"default";q={RATE_LIMIT};w=3600'
    assert refused.headers["RateLimit"].startswith('"default";r=0;')


async def test_one_key_creates_one_datasource_across_processes(shared: Gateways) -> None:
    auth = shared.caller()
    headers = {**auth, "Idempotency-Key": "create-demo"}
    replies = await spread(shared, 20, "POST", "/api/datasources", headers, json=DATASOURCE)

    created = [r for r in replies if r.status == 201 and "Idempotent-Replayed" not in r.headers]
    replayed = [r for r in replies if r.headers.get("Idempotent-Replayed") == "true"]
    in_flight = [r for r in replies if r.status == 409 and "in progress" in r.body["detail"]]
    assert len(created) == 1, [(r.status, r.body) for r in replies]
    assert len(created) + len(replayed) + len(in_flight) == 20, [r.body for r in replies]
    assert all(r.status == 201 and r.body == created[0].body for r in replayed)

    listing = await spread(shared, 1, "GET", "/api/datasources", auth)
    assert [d["name"] for d in listing[0].body["items"]] == ["demo"]


async def create(session: aiohttp.ClientSession, url: str, headers: dict[str, str]) -> Reply:
    return await send(session, url, "POST", "/api/datasources", headers, DATASOURCE)


async def test_another_tenant_reusing_the_key_runs_on_its_own(shared: Gateways) -> None:
    key = {"Idempotency-Key": "same-key-for-both"}
    tenant_a = {**shared.caller(), **key}
    tenant_b = {**shared.caller(), **key}
    async with aiohttp.ClientSession() as session:
        first_a = await create(session, shared.urls[0], tenant_a)
        first_b = await create(session, shared.urls[1], tenant_b)
        again_a = await create(session, shared.urls[2], tenant_a)
    assert first_a.status == first_b.status == 201
    assert "Idempotent-Replayed" not in first_b.headers
    assert again_a.headers.get("Idempotent-Replayed") == "true"
    assert again_a.body == first_a.body


async def test_key_runs_again_after_its_ttl(shared: Gateways) -> None:
    headers = {**shared.caller(), "Idempotency-Key": "expiring"}
    async with aiohttp.ClientSession() as session:
        first = await create(session, shared.urls[0], headers)
        replay = await create(session, shared.urls[1], headers)
        await asyncio.sleep(IDEMPOTENCY_TTL_SECONDS + 1)
        rerun = await create(session, shared.urls[2], headers)
    assert first.status == 201
    assert replay.headers.get("Idempotent-Replayed") == "true"
    # The handler ran again, and found the datasource it created the first time.
    assert rerun.status == 409
    assert "Idempotent-Replayed" not in rerun.headers
    assert "in progress" not in rerun.body["detail"]


@pytest.fixture(params=[False, True], ids=["fail-closed", "fail-open"])
def private(
    request: pytest.FixtureRequest, tmp_path: Path, start_redis: Callable[..., RedisServer]
) -> Iterator[tuple[Gateways, RedisServer]]:
    """Three gateways on a Redis of this test alone, which the test may stop."""
    server = start_redis()
    fail_open = "true" if request.param else "false"
    gateways = Gateways(tmp_path, server.url, {"WEAVER_REQUEST_GUARD_FAIL_OPEN": fail_open})
    gateways.start()
    try:
        yield gateways, server
    finally:
        gateways.stop()


async def ready(gateways: Gateways) -> list[Reply]:
    return await spread(gateways, GATEWAYS, "GET", "/health/ready", {})


async def test_redis_outage_and_recovery(private: tuple[Gateways, RedisServer]) -> None:
    gateways, server = private
    fail_open = gateways.overrides["WEAVER_REQUEST_GUARD_FAIL_OPEN"] == "true"
    auth = gateways.caller()
    before = await spread(gateways, GATEWAYS, "GET", "/api/datasources", auth)
    assert [r.status for r in before] == [200] * GATEWAYS

    server.stop()
    during = await spread(gateways, 2 * GATEWAYS, "GET", "/api/datasources", auth)
    if fail_open:
        assert [r.status for r in during] == [200] * 2 * GATEWAYS, gateways.logs()
    else:
        assert [r.status for r in during] == [503] * 2 * GATEWAYS, gateways.logs()
        for reply in during:
            assert reply.headers["Content-Type"].startswith("application/problem+json")
            assert reply.body["type"].endswith("/guard-unavailable")
            assert "Redis" in reply.body["detail"]
    for reply in await ready(gateways):
        assert reply.status == 503
        assert reply.body["checks"]["redis_guard"]["status"] == "down"

    server.start()
    after = await spread(gateways, 2 * GATEWAYS, "GET", "/api/datasources", auth)
    assert [r.status for r in after] == [200] * 2 * GATEWAYS, gateways.logs()
    assert all("RateLimit" in r.headers for r in after)
    for reply in await ready(gateways):
        assert reply.status == 200
        assert reply.body["checks"]["redis_guard"]["status"] == "up"


# A statement that counts for hours: it runs until it is cancelled.
RUNAWAY = (
    "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 1000000000000)"
    " SELECT count(*) FROM n WHERE (SELECT count(*) FROM demo.items) >= 0"
)


async def test_query_concurrency_holds_exactly_across_processes(tmp_path: Path) -> None:
    """WEAVER_QUERY_CONCURRENCY=2 for a tenant whose queries land on three processes:
    exactly two run, the others wait queued, and a synchronous one is refused."""
    gateways = Gateways(
        tmp_path,
        os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"),
        overrides={"WEAVER_QUERY_CONCURRENCY": "2", "WEAVER_RATE_LIMIT": "100000/60s"},
    )
    gateways.start()
    try:
        auth = gateways.caller()
        async with aiohttp.ClientSession() as session:
            made = await send(
                session, gateways.urls[0], "POST", "/api/datasources", auth, DATASOURCE
            )
            assert made.status == 201, made.body
            asynchronous = {**auth, "Prefer": "respond-async"}
            accepted = await spread(
                gateways, 6, "POST", "/api/query", asynchronous, json={"sql": RUNAWAY}
            )
            assert {r.status for r in accepted} == {202}, [r.body for r in accepted]
            ids = [r.body["query_id"] for r in accepted]

            async def statuses() -> list[str]:
                replies = await asyncio.gather(
                    *(
                        send(session, gateways.urls[n % GATEWAYS], "GET", f"/api/query/{q}", auth)
                        for n, q in enumerate(ids)
                    )
                )
                return sorted(r.body["status"] for r in replies)

            for _ in range(100):
                seen = await statuses()
                if seen.count("running") == 2:
                    break
                await asyncio.sleep(0.1)
            # Two run, wherever they were sent; the four others wait their turn.
            assert seen == ["queued"] * 4 + ["running"] * 2, seen
            await asyncio.sleep(1)
            assert await statuses() == seen
            refused = await send(
                session, gateways.urls[2], "POST", "/api/query", auth, {"sql": RUNAWAY}
            )
            assert refused.status == 429, refused.body
            assert refused.body["type"].endswith("too-many-queries")
            for n, query_id in enumerate(ids):
                await send(
                    session, gateways.urls[n % GATEWAYS], "DELETE", f"/api/query/{query_id}", auth
                )
            for _ in range(100):
                if set(await statuses()) == {"cancelled"}:
                    break
                await asyncio.sleep(0.1)
            assert set(await statuses()) == {"cancelled"}
    finally:
        gateways.stop()
        gateways.forget_callers()
