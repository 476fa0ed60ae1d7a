"""JSON and problem+json responses."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from weaver.errors import Problem

# The result formats write JSON without aiohttp, so the writer lives beside the values.
from weaver.values import dumps as dumps

PROBLEM_CONTENT_TYPE = "application/problem+json"


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
