"""Conventions every response follows: request ids, problem+json, limits, CORS."""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp import web

from tests.conftest import assert_problem
from weaver.keys import ROUTES


async def test_request_id_is_echoed_when_sane(client: Any) -> None:
    response = await client.get("/health/live", headers={"X-Request-Id": "abc-123"})
    assert response.headers["X-Request-Id"] == "abc-123"


@pytest.mark.parametrize("incoming", ["", "has space", "x" * 129, "ünïcode"])
async def test_insane_request_id_is_replaced(client: Any, incoming: str) -> None:
    response = await client.get("/health/live", headers={"X-Request-Id": incoming})
    generated = response.headers["X-Request-Id"]
    assert generated != incoming
    assert len(generated) == 32


async def test_generated_request_ids_differ(client: Any) -> None:
    ids = {(await client.get("/health/live")).headers["X-Request-Id"] for _ in range(20)}
    assert len(ids) == 20
    assert all(len(i) == 32 and int(i, 16) >= 0 for i in ids)


async def test_error_carries_the_request_id(client: Any) -> None:
    response = await client.get("/api/datasources", headers={"X-Request-Id": "req-9"})
    assert (await response.json())["request_id"] == "req-9"


async def test_unknown_route_is_problem_404(client: Any) -> None:
    response = await client.get("/nowhere")
    assert response.status == 404
    assert response.content_type == "application/problem+json"
    assert_problem(await response.json(), 404)


async def test_wrong_method_is_problem_405_with_allow(client: Any, auth: Any) -> None:
    response = await client.put("/api/datasources", headers=auth())
    assert response.status == 405
    assert "GET" in response.headers["Allow"]
    assert_problem(await response.json(), 405)


async def test_malformed_json_is_400(client: Any, auth: Any) -> None:
    response = await client.post(
        "/api/datasources",
        data=b"{not json",
        headers={**auth(), "Content-Type": "application/json"},
    )
    assert response.status == 400
    assert_problem(await response.json(), 400)


async def test_empty_body_is_400(client: Any, auth: Any) -> None:
    response = await client.post(
        "/api/datasources", data=b"", headers={**auth(), "Content-Type": "application/json"}
    )
    assert response.status == 400


async def test_wrong_shape_is_422_with_field_errors(client: Any, auth: Any) -> None:
    response = await client.post("/api/datasources", json=["a", "list"], headers=auth())
    assert response.status == 422
    body = await response.json()
    assert_problem(body, 422)
    assert body["errors"]


async def test_non_json_content_type_is_415(client: Any, auth: Any) -> None:
    response = await client.post(
        "/api/datasources", data=b"name=x", headers={**auth(), "Content-Type": "text/plain"}
    )
    assert response.status == 415


class TestBodyLimit:
    @pytest.fixture
    def settings_overrides(self) -> dict[str, str]:
        return {"WEAVER_MAX_BODY_BYTES": "2048"}

    async def test_large_body_is_413(self, client: Any, auth: Any) -> None:
        response = await client.post(
            "/api/query", json={"sql": "SELECT 1 -- " + "x" * 4096}, headers=auth()
        )
        assert response.status == 413
        assert_problem(await response.json(), 413)

    async def test_large_chunked_body_is_413(self, client: Any, auth: Any) -> None:
        async def chunks() -> Any:
            for _ in range(10):
                yield b"x" * 1024

        response = await client.post(
            "/api/query", data=chunks(), headers={**auth(), "Content-Type": "application/json"}
        )
        assert response.status == 413


async def test_unexpected_error_is_500_without_internals(client: Any, auth: Any) -> None:
    async def explode(request: web.Request) -> web.StreamResponse:
        raise RuntimeError("secret password=hunter2 at /srv/internal")

    # Swap a handler in place: routes cannot be added once the app is frozen.
    route = next(r for r in client.app.router.routes() if r.resource.canonical == "/health/live")
    original = route._handler
    route._handler = explode
    try:
        response = await client.get("/health/live")
    finally:
        route._handler = original
    assert response.status == 500
    body = await response.json()
    assert_problem(body, 500)
    assert "hunter2" not in await response.text()
    assert "/srv/internal" not in body["detail"]


async def test_openapi_documents_every_route(client: Any) -> None:
    response = await client.get("/openapi.json")
    assert response.status == 200
    document = await response.json()
    assert document["openapi"].startswith("3.1")
    for route in client.app[ROUTES].routes:
        if not route.documented:
            # The console's page and files are served, not API.
            assert route.method.lower() not in document["paths"].get(route.path, {})
            continue
        operation = document["paths"][route.path][route.method.lower()]
        assert str(route.status) in operation["responses"]
        if route.role:
            assert operation["security"] == [{"bearer": []}]
            assert "401" in operation["responses"]
        if route.body is not None:
            ref = operation["requestBody"]["content"]["application/json"]["schema"]["$ref"]
            assert ref.split("/")[-1] in document["components"]["schemas"]


async def test_openapi_body_schema_is_the_validating_model(client: Any) -> None:
    document = await (await client.get("/openapi.json")).json()
    create = document["components"]["schemas"]["DatasourceCreate"]
    assert set(create["required"]) == {"name", "engine", "connection"}
    assert create["properties"]["name"]["pattern"] == "^[a-z][a-z0-9_]{0,62}$"


class TestCors:
    async def test_preflight_from_allowed_origin(self, client: Any) -> None:
        response = await client.options(
            "/api/datasources",
            headers={
                "Origin": "http://localhost:3000",
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "Authorization, Content-Type",
            },
        )
        assert response.status in (200, 204)
        assert response.headers["Access-Control-Allow-Origin"] == "http://localhost:3000"
        assert "POST" in response.headers["Access-Control-Allow-Methods"]
        assert "Authorization" in response.headers["Access-Control-Allow-Headers"]

    async def test_preflight_from_other_origin_gets_no_allow_origin(self, client: Any) -> None:
        response = await client.options(
            "/api/datasources",
            headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "GET"},
        )
        assert "Access-Control-Allow-Origin" not in response.headers

    async def test_simple_request_from_allowed_origin(self, client: Any) -> None:
        response = await client.get("/health/live", headers={"Origin": "http://localhost:3000"})
        assert response.headers["Access-Control-Allow-Origin"] == "http://localhost:3000"
        assert "X-Request-Id" in response.headers["Access-Control-Expose-Headers"]

    async def test_simple_request_from_other_origin(self, client: Any) -> None:
        response = await client.get("/health/live", headers={"Origin": "https://evil.example"})
        assert "Access-Control-Allow-Origin" not in response.headers


class TestCorsWildcardIgnored:
    @pytest.fixture
    def settings_overrides(self) -> dict[str, str]:
        return {"WEAVER_CORS_ALLOWED_ORIGINS": "*"}

    async def test_star_allows_nobody(self, client: Any) -> None:
        response = await client.get("/health/live", headers={"Origin": "https://any.example"})
        assert "Access-Control-Allow-Origin" not in response.headers


async def test_metrics_exposes_request_counts_by_route_template(
    client: Any, auth: Any, shop: str
) -> None:
    await client.get("/api/datasources/shop", headers=auth())
    await client.get("/api/datasources/nope", headers=auth())
    text = await (await client.get("/metrics")).text()
    assert 'route="/api/datasources/{name}"' in text
    assert 'status="404"' in text
    assert "weaver_http_request_duration_seconds_bucket" in text
    assert "/api/datasources/shop" not in text


async def test_health_live_and_ready(client: Any) -> None:
    assert await (await client.get("/health/live")).json() == {"status": "alive"}
    response = await client.get("/health/ready")
    body = await response.json()
    assert response.status == 200
    assert body["status"] == "ready"
    assert body["checks"]["embedded_store"]["status"] == "up"
    for name in ("mindsdb", "neo4j", "pg", "redis_guard"):
        assert body["checks"][name]["status"] == "disabled"
    metrics = await (await client.get("/metrics")).text()
    assert 'weaver_plugin_up{plugin="embedded_store"} 1.0' in metrics


async def test_query_status_names_the_engine(client: Any, auth: Any) -> None:
    response = await client.get("/api/query/status", headers=auth(roles=["viewer"]))
    assert response.status == 200
    body = await response.json()
    assert body["engine"] == "embedded_engine"
    assert body["status"] == "up"
