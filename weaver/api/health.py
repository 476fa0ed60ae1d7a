"""Liveness, readiness, query engine status, metrics and the OpenAPI document."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any, Literal

from aiohttp import web

from weaver.api.models import Answer, OpenAnswer
from weaver.errors import Unauthorized
from weaver.keys import HOST, METRICS, OPENAPI_DOCUMENT, SETTINGS, TOKENS
from weaver.responses import json_response
from weaver.routing import RouteTable
from weaver.types import HealthCheck

routes = RouteTable()


class Liveness(Answer):
    status: Literal["alive"]


class PluginCheck(OpenAnswer):
    status: Literal["up", "down", "disabled"]
    detail: str | None = None
    latency_ms: float | None = None


class Readiness(Answer):
    status: Literal["ready", "degraded"]
    checks: dict[str, PluginCheck]


class QueryEngineStatus(OpenAnswer):
    engine: str
    status: Literal["up", "down"]
    detail: str | None = None
    latency_ms: float | None = None


def _check_body(check: HealthCheck) -> dict[str, Any]:
    body = {k: v for k, v in asdict(check).items() if v is not None and k != "extra"}
    body.update(check.extra)
    return body


@routes.route(
    "GET", "/health/live", summary="The process is alive", tag="operations", response=Liveness
)
async def live(request: web.Request) -> web.StreamResponse:
    # Never touches a dependency: a slow database must not get the process restarted.
    return json_response({"status": "alive"})


@routes.route(
    "GET",
    "/health/ready",
    summary="Every enabled plugin answers",
    tag="operations",
    response=Readiness,
    errors=(503,),
)
async def ready(request: web.Request) -> web.StreamResponse:
    checks = await request.app[HOST].check_health()
    metrics = request.app[METRICS]
    for name, check in checks.items():
        metrics.plugin_up.labels(name).set(1 if check.status == "up" else 0)
    degraded = any(check.status == "down" for check in checks.values())
    detailed = _may_see_details(request)
    return json_response(
        {
            "status": "degraded" if degraded else "ready",
            "checks": {
                name: _check_body(check) if detailed else {"status": check.status}
                for name, check in checks.items()
            },
        },
        status=503 if degraded else 200,
    )


def _may_see_details(request: web.Request) -> bool:
    """Whether the caller may read the checks' details. A probe needs only the statuses;
    versions and errors tell an attacker what to aim at, so in production they need a
    valid token (any role)."""
    if not request.app[SETTINGS].is_production:
        return True
    try:
        request.app[TOKENS].verify(request.headers.get("Authorization"))
    except Unauthorized:
        return False
    return True


@routes.route(
    "GET",
    "/api/query/status",
    summary="The query engine answers",
    tag="query",
    role="viewer",
    response=QueryEngineStatus,
)
async def query_status(request: web.Request) -> web.StreamResponse:
    host = request.app[HOST]
    engine = host.query_plugin or "none"
    check = (await host.check_health(only=engine)).get(engine, HealthCheck("down", "no engine"))
    body = _check_body(check)
    body["status"] = "up" if check.status == "up" else "down"
    return json_response({"engine": engine, **body})


@routes.route("GET", "/metrics", summary="Prometheus metrics", tag="operations")
async def metrics(request: web.Request) -> web.StreamResponse:
    payload, content_type = request.app[METRICS].exposition()
    response = web.Response(body=payload)
    response.headers["Content-Type"] = content_type
    return response


@routes.route(
    "GET", "/openapi.json", summary="This API as an OpenAPI 3.1 document", tag="operations"
)
async def openapi(request: web.Request) -> web.StreamResponse:
    return web.Response(body=request.app[OPENAPI_DOCUMENT], content_type="application/json")
