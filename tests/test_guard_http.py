"""The request guard as seen over HTTP: RateLimit headers, 429, idempotency, fail modes."""

from __future__ import annotations

import asyncio
from importlib.metadata import EntryPoint
from typing import Any

import pytest

from tests.conftest import TENANT_B, ClientFactory, assert_problem
from weaver.app import create_app
from weaver.settings import Settings


class TestRateLimit:
    @pytest.fixture
    def settings_overrides(self) -> dict[str, str]:
        return {"WEAVER_RATE_LIMIT": "3/60s"}

    async def test_limit_headers_and_429(self, client: Any, auth: Any) -> None:
        statuses = []
        for _ in range(3):
            response = await client.get("/api/datasources", headers=auth())
            statuses.append(response.status)
            assert "q=3" in response.headers["RateLimit-Policy"]
            assert "RateLimit" in response.headers
        assert statuses == [200, 200, 200]
        response = await client.get("/api/datasources", headers=auth())
        assert response.status == 429
        retry_after = int(response.headers["Retry-After"])
        # The three came back 20 s apart from the first: the next is due within 20 s,
        # and the RateLimit field says the same wait as Retry-After.
        assert 1 <= retry_after <= 20
        assert response.headers["RateLimit"] == f'"default";r=0;t={retry_after}'
        problem = await response.json()
        assert_problem(problem, 429)
        # Distinct from the 429 for too many running queries, so a client can tell them apart.
        assert problem["type"].endswith("/rate-limited")
        # Another caller of the same tenant, and another tenant, have their own budget.
        assert (await client.get("/api/datasources", headers=auth(sub="bob"))).status == 200
        assert (await client.get("/api/datasources", headers=auth(TENANT_B))).status == 200

    async def test_health_is_not_limited(self, client: Any) -> None:
        for _ in range(6):
            assert (await client.get("/health/live")).status == 200

    async def test_rejections_are_counted(self, client: Any, auth: Any) -> None:
        for _ in range(5):
            await client.get("/api/datasources", headers=auth())
        text = await (await client.get("/metrics")).text()
        assert 'weaver_guard_rejections_total{reason="rate_limited"} 2.0' in text


class TestIdempotency:
    @staticmethod
    def body(name: str = "shop") -> dict[str, Any]:
        return {"name": name, "engine": "sqlite", "connection": {"path": "shop.db"}}

    @pytest.fixture(autouse=True)
    def shop_file(self, sqlite_file: Any) -> None:
        sqlite_file("shop.db", "CREATE TABLE t (x);")

    async def test_replay_returns_the_stored_response(self, client: Any, auth: Any) -> None:
        headers = {**auth(), "Idempotency-Key": "create-shop-1"}
        first = await client.post("/api/datasources", json=self.body(), headers=headers)
        second = await client.post("/api/datasources", json=self.body(), headers=headers)
        assert first.status == second.status == 201
        assert await first.json() == await second.json()
        assert second.headers["Idempotent-Replayed"] == "true"
        assert second.headers["Location"] == first.headers["Location"]
        assert "Idempotent-Replayed" not in first.headers

    async def test_same_key_other_request_is_422(self, client: Any, auth: Any) -> None:
        headers = {**auth(), "Idempotency-Key": "k"}
        await client.post("/api/datasources", json=self.body(), headers=headers)
        response = await client.post("/api/datasources", json=self.body("other"), headers=headers)
        assert response.status == 422
        assert (await client.get("/api/datasources/other", headers=auth())).status == 404

    async def test_concurrent_same_key_runs_once(self, client: Any, auth: Any) -> None:
        headers = {**auth(), "Idempotency-Key": "burst"}
        responses = await asyncio.gather(
            *(client.post("/api/datasources", json=self.body(), headers=headers) for _ in range(10))
        )
        statuses = sorted(r.status for r in responses)
        assert statuses.count(201) >= 1
        assert set(statuses) <= {201, 409}
        created = [
            r for r in responses if r.status == 201 and "Idempotent-Replayed" not in r.headers
        ]
        assert len(created) == 1
        for response in responses:
            if response.status == 409:
                assert_problem(await response.json(), 409)

    async def test_keys_are_scoped_per_tenant(self, client: Any, auth: Any) -> None:
        for tenant in ("tenant-a", TENANT_B):
            headers = {**auth(tenant), "Idempotency-Key": "shared"}
            response = await client.post("/api/datasources", json=self.body(), headers=headers)
            assert response.status == 201
            assert "Idempotent-Replayed" not in response.headers

    async def test_client_errors_are_replayed_too(self, client: Any, auth: Any) -> None:
        headers = {**auth(), "Idempotency-Key": "bad"}
        body = {"name": "Bad Name", "engine": "sqlite", "connection": {"path": "shop.db"}}
        first = await client.post("/api/datasources", json=body, headers=headers)
        second = await client.post("/api/datasources", json=body, headers=headers)
        assert first.status == second.status == 422
        assert second.headers["Idempotent-Replayed"] == "true"

    async def test_server_errors_are_not_stored(self, client: Any, auth: Any) -> None:
        headers = {**auth(), "Idempotency-Key": "engine-fails"}
        body = {"name": "gone", "engine": "sqlite", "connection": {"path": "missing.db"}}
        first = await client.post("/api/datasources", json=body, headers=headers)
        assert first.status == 502
        second = await client.post("/api/datasources", json=body, headers=headers)
        assert second.status == 502
        assert "Idempotent-Replayed" not in second.headers

    @pytest.mark.parametrize("key", ["", "x" * 256, "has space", "ключ"])
    async def test_malformed_key_is_400(self, client: Any, auth: Any, key: str) -> None:
        response = await client.post(
            "/api/datasources", json=self.body(), headers={**auth(), "Idempotency-Key": key}
        )
        assert response.status == 400


class TestGuardBackendDown:
    @pytest.fixture
    def fail_open(self) -> str:
        return "false"

    @pytest.fixture
    async def client(
        self, aiohttp_client: ClientFactory, settings: Settings, fail_open: str
    ) -> Any:
        settings = settings.model_copy(update={"guard_fail_open": fail_open == "true"})
        entry = EntryPoint("failing_guard", "tests.plugins.failing_guard", "weaver")
        app = create_app(
            settings, environ={"WEAVER_FAILING_GUARD_MODE": "true"}, discovered=[entry]
        )
        return await aiohttp_client(app)

    async def test_fail_closed_is_503(self, client: Any, auth: Any) -> None:
        response = await client.get("/api/datasources", headers=auth())
        assert response.status == 503
        body = await response.json()
        assert_problem(body, 503)
        assert "unreachable" in body["detail"]
        text = await (await client.get("/metrics")).text()
        assert 'weaver_guard_rejections_total{reason="guard_unavailable"} 1.0' in text

    @pytest.mark.parametrize("fail_open", ["true"])
    async def test_fail_open_lets_requests_through(self, client: Any, auth: Any) -> None:
        response = await client.get("/api/datasources", headers=auth())
        assert response.status == 200
        text = await (await client.get("/metrics")).text()
        assert 'reason="guard_unavailable_fail_open"} 1.0' in text
