"""The request pipeline: observe → CORS → authenticate and guard → handler."""

from __future__ import annotations

import hashlib
import logging
import random
import re
import time

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware
from opentelemetry import propagate, trace
from opentelemetry.trace import SpanKind, Status, StatusCode

from weaver import errors
from weaver.auth import TokenVerifier
from weaver.keys import (
    CORS_ORIGIN,
    HOST,
    METRICS,
    PRINCIPAL,
    REQUEST_ID,
    RESPONSE_HEADERS,
    SETTINGS,
)
from weaver.logs import ACCESS_LOGGER, RequestLogContext, current_request
from weaver.ratelimit import IDEMPOTENT_METHODS
from weaver.responses import problem_response
from weaver.types import GuardDecision, GuardRequest, Principal, StoredResponse

log = logging.getLogger("weaver.http")
access_log = logging.getLogger(ACCESS_LOGGER)
tracer = trace.get_tracer("weaver.http")

_SANE_TOKEN = re.compile(r"^[!-~]{1,128}$")
_IDEMPOTENCY_KEY = re.compile(r"^[!-~]{1,255}$")
# Response headers worth replaying with a stored idempotent response.
_REPLAYED_HEADERS = ("Content-Type", "Location")
_EXPOSED_HEADERS = (
    "X-Request-Id, X-Query-Id, Location, Link, Retry-After, RateLimit, RateLimit-Policy,"
    " Idempotent-Replayed"
)

_HTTP_PROBLEMS: dict[int, type[errors.Problem]] = {
    400: errors.BadRequest,
    404: errors.NotFound,
    405: errors.MethodNotAllowed,
    413: errors.PayloadTooLarge,
    415: errors.UnsupportedMediaType,
}


def _as_problem(exc: web.HTTPException) -> errors.Problem:
    kind = _HTTP_PROBLEMS.get(exc.status, errors.Problem)
    problem = kind(exc.reason if exc.status != 413 else "the request body is too large")
    problem.status = exc.status
    if exc.status == 405 and "Allow" in exc.headers:
        problem.headers["Allow"] = exc.headers["Allow"]
    return problem


def new_request_id() -> str:
    """128 random bits as hex, like a UUID4's. An id must be unique, not unguessable, so
    it comes from `random` (seeded from the OS in each process, and again after a fork)
    rather than from the OS on every request, which costs four times as much."""
    return f"{random.getrandbits(128):032x}"


def route_template(request: web.Request) -> str:
    resource = request.match_info.route.resource
    # Unmatched paths share one label so that scanners cannot explode the metric series.
    return resource.canonical if resource is not None else "unmatched"


@web.middleware
async def trace_requests(request: web.Request, handler: Handler) -> web.StreamResponse:
    """The server span, a child of the caller's (W3C ``traceparent``) when it sent one;
    installed only when spans are exported (see `setup_tracing`)."""
    route = route_template(request)
    attributes = {
        "http.request.method": request.method,
        "http.route": route,
        "url.path": request.path,
        "url.scheme": request.scheme,
    }
    if request.remote:
        attributes["client.address"] = request.remote
    user_agent = request.headers.get("User-Agent")
    if user_agent:
        attributes["user_agent.original"] = user_agent
    with tracer.start_as_current_span(
        f"{request.method} {route}",
        context=propagate.extract(request.headers),
        kind=SpanKind.SERVER,
        attributes=attributes,
    ) as span:
        response = await handler(request)
        span.set_attribute("weaver.request_id", request[REQUEST_ID])
        principal: Principal | None = request.get(PRINCIPAL)
        if principal is not None:
            span.set_attribute("weaver.tenant_id", principal.tenant_id)
        span.set_attribute("http.response.status_code", response.status)
        if response.status >= 500:
            span.set_status(Status(StatusCode.ERROR))
        return response


@web.middleware
async def observe(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Request id, problem rendering, metrics and the access log."""
    incoming = request.headers.get("X-Request-Id", "")
    request_id = incoming if _SANE_TOKEN.match(incoming) else new_request_id()
    request[REQUEST_ID] = request_id
    # Every log line written while this request is served names it (see `weaver.logs`).
    logged_as = current_request.set(
        RequestLogContext(request_id, request.headers.get("traceparent"))
    )
    route = route_template(request)
    started = time.perf_counter()
    try:
        try:
            response = await handler(request)
        except errors.Problem as problem:
            response = problem_response(problem, request_id)
        except web.HTTPException as exc:
            if exc.status < 400:
                raise
            response = problem_response(_as_problem(exc), request_id)
        except Exception:
            log.exception("unhandled error", extra={"route": route})
            response = problem_response(
                errors.Problem("an unexpected error occurred; quote the request id"), request_id
            )
        elapsed = time.perf_counter() - started
        request.app[METRICS].observe_request(route, request.method, response.status, elapsed)
        if request.app[SETTINGS].access_log and access_log.isEnabledFor(logging.INFO):
            principal: Principal | None = request.get(PRINCIPAL)
            duration_ms = round(elapsed * 1000, 2)
            access_log.info(
                "%s %s %s %.2fms",
                request.method,
                route,
                response.status,
                duration_ms,
                extra={
                    "method": request.method,
                    "route": route,
                    "status": response.status,
                    "duration_ms": duration_ms,
                    "tenant_id": principal.tenant_id if principal is not None else None,
                },
            )
        return response
    finally:
        current_request.reset(logged_as)


@web.middleware
async def cors(request: web.Request, handler: Handler) -> web.StreamResponse:
    origin = request.headers.get("Origin")
    settings = request.app[SETTINGS]
    allowed = origin is not None and origin in settings.cors_allowed_origins
    is_preflight = (
        request.method == "OPTIONS" and "Access-Control-Request-Method" in request.headers
    )
    if is_preflight:
        if not allowed:
            raise errors.Forbidden("this origin is not allowed")
        return web.Response(
            status=204,
            headers={
                "Access-Control-Allow-Origin": origin or "",
                "Access-Control-Allow-Methods": ", ".join(settings.cors_allowed_methods),
                "Access-Control-Allow-Headers": ", ".join(settings.cors_allowed_headers),
                "Access-Control-Max-Age": "600",
                "Vary": "Origin",
            },
        )
    if allowed and origin is not None:
        # Added as the headers go out (`decorate`), so errors and streams carry it too.
        request[CORS_ORIGIN] = origin
    return await handler(request)


def make_api_guard(verifier: TokenVerifier) -> Middleware:
    """Authentication, then the request guard, for everything under ``/api/`` and for
    ``/mcp`` (the agents' protocol, held to the same token, tenant and limits)."""

    @web.middleware
    async def api_guard(request: web.Request, handler: Handler) -> web.StreamResponse:
        if not (request.path.startswith("/api/") or request.path == "/mcp"):
            return await handler(request)
        principal = verifier.verify(request.headers.get("Authorization"))
        request[PRINCIPAL] = principal
        settings = request.app[SETTINGS]
        length = request.content_length
        if length is not None and length > settings.max_body_bytes:
            raise errors.PayloadTooLarge(
                f"the request body is larger than {settings.max_body_bytes} bytes"
            )

        key = None
        if request.method in IDEMPOTENT_METHODS and "Idempotency-Key" in request.headers:
            key = request.headers["Idempotency-Key"]
            if not _IDEMPOTENCY_KEY.match(key):
                raise errors.BadRequest("Idempotency-Key must be 1-255 visible ASCII characters")
        fingerprint = ""
        if key is not None:
            body = await request.read()
            fingerprint = hashlib.sha256(
                b"%s\n%s\n%s" % (request.method.encode(), request.path_qs.encode(), body)
            ).hexdigest()
        guard_request = GuardRequest(principal, request.method, request.path, key, fingerprint)

        decision = await _decide(request, guard_request)
        response_headers(request).update(decision.headers)
        if decision.replay is not None:
            replay = decision.replay
            replayed = web.Response(body=replay.body, status=replay.status, headers=replay.headers)
            replayed.headers["Idempotent-Replayed"] = "true"
            return replayed

        response: web.StreamResponse
        if decision.claim is None:
            return await handler(request)
        try:
            response = await handler(request)
        except errors.Problem as problem:
            response = problem_response(problem, request[REQUEST_ID])
        except BaseException:
            # A crash is a 500: the client may retry with the same key.
            await _settle(request, guard_request, decision, None)
            raise
        await _settle(request, guard_request, decision, _storable(response))
        return response

    return api_guard


def _storable(response: web.StreamResponse) -> StoredResponse | None:
    """What to keep for replay; 5xx answers are not kept, so the client may retry."""
    if response.status >= 500 or not isinstance(response, web.Response):
        return None
    body = response.body
    if body is not None and not isinstance(body, bytes):
        return None
    headers = {h: response.headers[h] for h in _REPLAYED_HEADERS if h in response.headers}
    return StoredResponse(response.status, body or b"", headers)


async def _decide(request: web.Request, guard_request: GuardRequest) -> GuardDecision:
    metrics = request.app[METRICS]
    try:
        return await request.app[HOST].guard_request(guard_request)
    except errors.RateLimited:
        metrics.guard_rejections.labels("rate_limited").inc()
        raise
    except errors.GuardUnavailable:
        if not request.app[SETTINGS].guard_fail_open:
            metrics.guard_rejections.labels("guard_unavailable").inc()
            raise
        metrics.guard_rejections.labels("guard_unavailable_fail_open").inc()
        log.warning("request guard unavailable; letting the request through (fail open)")
        return GuardDecision(headers={})
    except errors.Conflict:
        metrics.guard_rejections.labels("idempotency_in_flight").inc()
        raise
    except errors.Unprocessable:
        metrics.guard_rejections.labels("idempotency_mismatch").inc()
        raise


async def _settle(
    request: web.Request,
    guard_request: GuardRequest,
    decision: GuardDecision,
    stored: StoredResponse | None,
) -> None:
    assert decision.claim is not None
    try:
        await request.app[HOST].guard_response(guard_request, decision.claim, stored)
    except Exception:
        # The response is already decided; a lost idempotency record only means a retry
        # runs again once the in-flight lease expires.
        log.exception("could not settle the idempotency claim")


def response_headers(request: web.Request) -> dict[str, str]:
    """The headers every answer to ``request`` will carry (see `decorate`)."""
    headers = request.get(RESPONSE_HEADERS)
    if headers is None:
        headers = request[RESPONSE_HEADERS] = {}
    return headers


async def decorate(request: web.Request, response: web.StreamResponse) -> None:
    """``on_response_prepare``: what every answer carries, added as its headers go out —
    a handler's, a problem rendered by a middleware, a stream prepared mid-handler, an
    error of aiohttp's own — so that no layer can answer without them."""
    request_id = request.get(REQUEST_ID)
    if request_id is not None:
        response.headers["X-Request-Id"] = request_id
    for name, value in request.get(RESPONSE_HEADERS, {}).items():
        response.headers.setdefault(name, value)
    origin = request.get(CORS_ORIGIN)
    if origin is not None:
        response.headers["Access-Control-Allow-Origin"] = origin
        response.headers["Access-Control-Expose-Headers"] = _EXPOSED_HEADERS
    if "Origin" in request.headers and "Origin" not in response.headers.getall("Vary", []):
        # Answers differ by origin (allowed or not): caches must keep them apart.
        response.headers.add("Vary", "Origin")
