"""What every answer carries whichever layer produced it: the request id, CORS for an
allowed origin (errors and streams included, so a browser can read them), Vary: Origin;
and /openapi.json says which headers each answer has."""

from __future__ import annotations

from typing import Any

import pytest

ALLOWED = "http://localhost:3000"


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("GET", "/no/such/route", 404),
        ("GET", "/api/datasources", 401),
        ("PUT", "/health/live", 405),
    ],
)
async def test_errors_to_an_allowed_origin_are_readable(
    client: Any, method: str, path: str, status: int
) -> None:
    response = await client.request(method, path, headers={"Origin": ALLOWED})
    assert response.status == status
    assert response.headers["Access-Control-Allow-Origin"] == ALLOWED
    assert "X-Request-Id" in response.headers["Access-Control-Expose-Headers"]
    assert response.headers["X-Request-Id"]
    assert "Origin" in response.headers.getall("Vary")


@pytest.mark.parametrize("origin", [ALLOWED, "https://elsewhere.example"])
async def test_answers_vary_by_origin(client: Any, origin: str) -> None:
    response = await client.get("/health/live", headers={"Origin": origin})
    assert "Origin" in response.headers.getall("Vary")


async def test_a_streamed_answer_carries_them_too(client: Any, auth: Any) -> None:
    response = await client.post(
        "/api/query",
        json={"sql": "SELECT 1 AS one"},
        headers={**auth(roles=["viewer"]), "Accept": "application/x-ndjson", "Origin": ALLOWED},
    )
    assert response.status == 200, await response.text()
    assert response.headers["X-Request-Id"]
    assert response.headers["X-Query-Id"]
    assert response.headers["Access-Control-Allow-Origin"] == ALLOWED
    assert "RateLimit" in response.headers


async def test_openapi_names_each_answers_headers(client: Any) -> None:
    document = await (await client.get("/openapi.json")).json()
    responses = document["paths"]["/api/query"]["post"]["responses"]
    assert {"X-Request-Id", "X-Query-Id", "RateLimit", "RateLimit-Policy"} <= responses["200"][
        "headers"
    ].keys()
    assert {"Location", "X-Query-Id"} <= responses["202"]["headers"].keys()
    assert "Retry-After" in responses["429"]["headers"]
    assert "Retry-After" in responses["503"]["headers"]
    assert {"406", "415", "503"} <= responses.keys()
    created = document["paths"]["/api/datasources"]["post"]["responses"]["201"]["headers"]
    assert "Location" in created
