"""Every status the request pipeline answers for an operation is one `/openapi.json`
documents for it, with the headers that answer carries: each route is sent what the
middlewares and the route's declaration refuse (no token, the wrong role, a body too
large, not JSON, a malformed or reused Idempotency-Key, a foreign cursor, an
unacceptable Accept, the rate limit spent, the guard's backend down)."""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterator
from importlib.metadata import EntryPoint
from typing import Any

import pytest

from tests.conftest import ClientFactory
from weaver.app import create_app
from weaver.keys import ROUTES
from weaver.ratelimit import IDEMPOTENT_METHODS
from weaver.routing import Route
from weaver.settings import Settings

MAX_BODY = 256
# Headers the gateway sets on some answers, each to be documented where it is sent.
SET_HEADERS = (
    "X-Request-Id",
    "X-Query-Id",
    "Location",
    "Link",
    "RateLimit",
    "RateLimit-Policy",
    "Retry-After",
    "WWW-Authenticate",
    "Accept-Encoding",
    "Idempotent-Replayed",
)


def documented_routes(client: Any) -> list[Route]:
    return [route for route in client.app[ROUTES].routes if route.documented]


def concrete(route: Route, query: str = "") -> str:
    return re.sub(r"{\w+}", "nope", route.path) + query


class Answers:
    """What each operation answered, by (method, path template)."""

    def __init__(self) -> None:
        self.seen: dict[tuple[str, str], dict[int, dict[str, str]]] = defaultdict(dict)

    async def send(self, client: Any, route: Route, query: str = "", **kwargs: Any) -> int:
        response = await client.request(route.method, concrete(route, query), **kwargs)
        await response.read()
        self.seen[route.method, route.path][response.status] = dict(response.headers)
        return int(response.status)

    def undocumented(self, document: dict[str, Any]) -> Iterator[str]:
        for (method, path), answers in sorted(self.seen.items()):
            documented = document["paths"][path][method.lower()]["responses"]
            for status, headers in sorted(answers.items()):
                if str(status) not in documented:
                    yield f"{method} {path} answered {status}, undocumented"
                    continue
                declared = documented[str(status)].get("headers", {})
                for name in SET_HEADERS:
                    if name in headers and name not in declared:
                        yield f"{method} {path} {status} sent {name}, undocumented"


@pytest.fixture
def settings_overrides() -> dict[str, str]:
    return {"WEAVER_MAX_BODY_BYTES": str(MAX_BODY)}


async def test_what_the_pipeline_refuses_is_documented(
    client: Any, auth: Any, aiohttp_client: ClientFactory, settings: Settings
) -> None:
    answers = Answers()
    nobody = auth(roles=[])
    for route in documented_routes(client):
        api = route.path.startswith("/api/")
        await answers.send(client, route, headers=auth(roles=["admin"]))
        if api:
            await answers.send(client, route)
            await answers.send(client, route, headers={"Authorization": "Bearer forged"})
            await answers.send(client, route, headers=nobody, data=b"{}" * MAX_BODY)
        if route.role is not None:
            await answers.send(client, route, headers=nobody)
        if api and route.method in IDEMPOTENT_METHODS:
            await answers.send(client, route, headers={**auth(), "Idempotency-Key": "a b"})
            keyed = {**auth(roles=["admin"]), "Idempotency-Key": f"{route.handler.__name__}"}
            await answers.send(client, route, "?first", headers=keyed)
            await answers.send(client, route, "?second", headers=keyed)
        if route.body is not None:
            admin = auth(roles=["admin"])
            await answers.send(client, route, headers=admin, data="{")
            await answers.send(client, route, headers={**admin, "Content-Type": "text/plain"})
            await answers.send(client, route, headers=admin, json={"unknown": 1})
            await answers.send(
                client,
                route,
                headers={**admin, "Content-Type": "application/json", "Content-Encoding": "x"},
                data=b"{}",
            )
        if route.query is not None:
            admin = auth(roles=["admin"])
            await answers.send(client, route, "?cursor=%25%25", headers=admin)
            await answers.send(client, route, "?limit=lots", headers=admin)
        if route.media_types:
            await answers.send(client, route, headers={**auth(), "Accept": "image/png"})

    # The rate limit spent, and the guard's backend down (failing closed).
    spent = Settings.model_validate({**settings.model_dump(), "rate_limit_text": "1/60s"})
    spent_client = await aiohttp_client(create_app(spent))
    down_client = await aiohttp_client(
        create_app(
            settings,
            environ={"WEAVER_FAILING_GUARD_MODE": "true"},
            discovered=[EntryPoint("failing_guard", "tests.plugins.failing_guard", "weaver")],
        )
    )
    for route in documented_routes(client):
        if route.path.startswith("/api/"):
            headers = auth(sub=f"spender-{route.handler.__name__}")
            for _ in range(2):
                await answers.send(spent_client, route, headers=headers)
            await answers.send(down_client, route, headers=auth())

    statuses = {status for answers_of in answers.seen.values() for status in answers_of}
    # The probes reached every layer: a walk that provoked nothing would prove nothing.
    assert {400, 401, 403, 406, 413, 415, 422, 429, 503} <= statuses
    document = await (await client.get("/openapi.json")).json()
    assert list(answers.undocumented(document)) == []


async def test_every_operation_documents_the_unexpected(client: Any) -> None:
    document = await (await client.get("/openapi.json")).json()
    for route in documented_routes(client):
        responses = document["paths"][route.path][route.method.lower()]["responses"]
        assert "500" in responses, f"{route.method} {route.path}"
        assert "X-Request-Id" in responses["500"]["headers"]
