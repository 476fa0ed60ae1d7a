"""JSON and problem+json responses."""

from __future__ import annotations

import json
from typing import Any

import orjson
from aiohttp import web

from weaver.errors import Problem

PROBLEM_CONTENT_TYPE = "application/problem+json"


def dumps(data: Any) -> bytes:
    """Compact UTF-8 JSON. orjson writes a typical answer ten times faster than the
    standard library; integers beyond 64 bits (which an engine may return) are left to
    the standard library, which writes any integer."""
    try:
        return orjson.dumps(data)
    except TypeError:
        return json.dumps(data, separators=(",", ":"), ensure_ascii=False).encode()


def json_response(
    data: Any, *, status: int = 200, headers: dict[str, str] | None = None
) -> web.Response:
    return web.Response(
        body=dumps(data), status=status, headers=headers, content_type="application/json"
    )


def problem_response(problem: Problem, request_id: str) -> web.Response:
    body: dict[str, Any] = {
        "type": problem.type_uri,
        "title": problem.title,
        "status": problem.status,
        "detail": problem.detail,
        "request_id": request_id,
    }
    if problem.errors:
        body["errors"] = problem.errors
    response = web.Response(body=dumps(body), status=problem.status, headers=problem.headers)
    response.content_type = PROBLEM_CONTENT_TYPE
    return response
