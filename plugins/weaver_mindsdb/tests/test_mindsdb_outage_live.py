"""A real MindsDB stopped under a running gateway, then started again."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestClient
from weaver_mindsdb.testing import LiveEnv, free_port, live, private_mindsdb

from weaver.app import create_app
from weaver.auth import mint_token

pytestmark = live

ClientFactory = Callable[..., Awaitable[TestClient[Any, Any]]]


async def wait_until_ready(client: TestClient[Any, Any], seconds: float) -> dict[str, Any]:
    body: dict[str, Any] = {}
    for _ in range(int(seconds * 2)):
        response = await client.get("/health/ready")
        body = await response.json()
        if response.status == 200:
            return body
        await asyncio.sleep(0.5)
    raise AssertionError(f"not ready within {seconds:g}s: {body}")


async def test_mindsdb_stopped_then_restarted_without_restarting_weaver(
    live_env: LiveEnv, tmp_path: Path, tenant: str, aiohttp_client: ClientFactory
) -> None:
    password = secrets.token_urlsafe(12)
    storage, port = tmp_path / "mindsdb", free_port()
    settings = live_env.settings(
        tmp_path / "data",
        MINDSDB_URL=f"http://127.0.0.1:{port}",
        MINDSDB_USER="weaver",
        MINDSDB_PASSWORD=password,
        MINDSDB_TIMEOUT="5",
    )
    token = mint_token(settings, tenant_id=tenant, subject="ops", roles=["editor"])
    auth = {"Authorization": f"Bearer {token}"}
    schema = "sales"
    sql = {"sql": f"SELECT count(*) AS n FROM shop.{schema}.customers"}

    async with private_mindsdb(storage, username="weaver", password=password, port=port):
        client = await aiohttp_client(create_app(settings))
        await wait_until_ready(client, 30)
        created = await client.post(
            "/api/datasources",
            json={"name": "shop", "engine": "postgres", "connection": live_env.connection()},
            headers=auth,
        )
        assert created.status == 201, await created.text()
        answered = await client.post("/api/query", json=sql, headers=auth)
        assert answered.status == 200, await answered.text()
        expected = (await answered.json())["rows"]

    # MindsDB is down: readiness says so, queries fail cleanly, liveness is untouched.
    ready = await client.get("/health/ready")
    assert ready.status == 503
    body = await ready.json()
    assert body["status"] == "degraded"
    assert body["checks"]["mindsdb"]["status"] == "down"
    failed = await client.post("/api/query", json=sql, headers=auth)
    assert failed.status in (502, 503), await failed.text()
    assert failed.content_type == "application/problem+json"
    assert password not in await failed.text()
    assert (await client.get("/health/live")).status == 200

    # The same server back on the same port and storage: the gateway recovers by itself.
    async with private_mindsdb(storage, username="weaver", password=password, port=port):
        await wait_until_ready(client, 60)
        again = await client.post("/api/query", json=sql, headers=auth)
        assert again.status == 200, await again.text()
        assert (await again.json())["rows"] == expected
        deleted = await client.delete("/api/datasources/shop", headers=auth)
        assert deleted.status == 204
