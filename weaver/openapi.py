"""The OpenAPI 3.1 document, generated from the route table's models."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import JsonSchemaMode, models_json_schema

from weaver import __version__
from weaver.routing import Route, RouteTable

REF = "#/components/schemas/{model}"
_PATH_PARAM = re.compile(r"{(\w+)}")


class ProblemDetails(BaseModel):
    """RFC 9457 problem details, as every error is answered."""

    type: str
    title: str
    status: int
    detail: str
    request_id: str
    errors: list[dict[str, Any]] | None = None


_STATUS_TEXT = {
    400: "Bad request",
    401: "Missing or invalid token",
    403: "The caller lacks the role",
    404: "Not found (or another tenant's)",
    406: "None of the media types the operation answers is acceptable",
    409: "Conflict",
    410: "Gone (expired)",
    413: "Body too large",
    415: "The body is not JSON",
    422: "Invalid input",
    429: "Rate limited (or too many queries)",
    502: "The backend refused",
    503: "A backend is unavailable",
    504: "The backend timed out",
}


def build_document(table: RouteTable) -> dict[str, Any]:
    # Bodies are documented as they are validated, responses as they are serialised.
    modes: dict[type[BaseModel], JsonSchemaMode] = {ProblemDetails: "serialization"}
    documented = [route for route in table.routes if route.documented]
    for route in documented:
        if route.body is not None:
            modes[route.body] = "validation"
        if isinstance(route.response, type) and issubclass(route.response, BaseModel):
            modes[route.response] = "serialization"
        for model, _ in route.alternatives.values():
            modes[model] = "serialization"
    ordered = sorted(modes.items(), key=lambda item: item[0].__name__)
    refs, definitions = models_json_schema(ordered, ref_template=REF)
    schema_ref = {model: refs[(model, mode)] for model, mode in ordered}

    paths: dict[str, dict[str, Any]] = {}
    for route in documented:
        paths.setdefault(route.path, {})[route.method.lower()] = _operation(route, schema_ref)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Weaver",
            "version": __version__,
            "description": "One authenticated, multi-tenant REST API in front of many databases.",
        },
        "paths": paths,
        "components": {
            "schemas": definitions.get("$defs", {}),
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}
            },
        },
    }


def _operation(route: Route, schema_ref: dict[type[BaseModel], Any]) -> dict[str, Any]:
    operation: dict[str, Any] = {
        "operationId": route.handler.__name__,
        "summary": route.summary,
        "tags": [route.tag],
    }
    parameters = [
        {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
        for name in _PATH_PARAM.findall(route.path)
    ]
    if route.query is not None:
        properties = route.query.model_json_schema()["properties"]
        for name, info in route.query.model_fields.items():
            # A parameter named like a Python keyword (`from`) is a field with an alias.
            key = info.alias or name
            parameters.append(
                {
                    "name": key,
                    "in": "query",
                    "required": info.is_required(),
                    "schema": properties[key],
                }
            )
    if parameters:
        operation["parameters"] = parameters
    if route.body is not None:
        operation["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": schema_ref[route.body]}},
        }
    guarded = route.role is not None
    success: dict[str, Any] = {"description": route.summary, "headers": _headers(route, guarded)}
    if route.response is not None:
        success["content"] = {"application/json": {"schema": schema_ref[route.response]}}
        for media_type in route.media_types:
            success["content"][media_type] = {"schema": {}}
    responses: dict[str, Any] = {str(route.status): success}
    for status, (model, headers) in route.alternatives.items():
        other: dict[str, Any] = {
            "description": model.__doc__ or route.summary,
            "headers": _headers(route, guarded, extra=headers),
            "content": {"application/json": {"schema": schema_ref[model]}},
        }
        responses[str(status)] = other
    problem = {"application/problem+json": {"schema": schema_ref[ProblemDetails]}}
    codes = set(route.errors)
    if guarded:
        operation["security"] = [{"bearer": []}]
        # Every /api call is authenticated, rate limited, and refused (503) when the
        # guard's backend is down and the guard fails closed.
        codes |= {401, 403, 429, 503}
    if route.body is not None:
        codes |= {400, 413, 415, 422}
    if route.query is not None:
        codes |= {400, 422}
    for code in sorted(codes):
        if str(code) not in responses:
            answer: dict[str, Any] = {"description": _STATUS_TEXT[code], "content": problem}
            answer["headers"] = _headers(route, guarded, problem=code)
            responses[str(code)] = answer
    operation["responses"] = responses
    return operation


_HEADER_TEXT = {
    "X-Request-Id": "The request's id (the incoming one, if sane), also in every log line",
    "RateLimit-Policy": "The caller's rate limit (IETF draft)",
    "RateLimit": "What is left of the caller's rate limit (IETF draft)",
    "Retry-After": "Seconds to wait before trying again",
}


def _headers(
    route: Route,
    guarded: bool,
    problem: int | None = None,
    extra: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    names = {"X-Request-Id": _HEADER_TEXT["X-Request-Id"]}
    if guarded:
        names["RateLimit-Policy"] = _HEADER_TEXT["RateLimit-Policy"]
        names["RateLimit"] = _HEADER_TEXT["RateLimit"]
    if problem in (429, 503):
        names["Retry-After"] = _HEADER_TEXT["Retry-After"]
    if extra is not None:
        names.update(extra)
    elif problem is None:
        names.update(route.headers)
    elif "X-Query-Id" in route.headers:
        names["X-Query-Id"] = route.headers["X-Query-Id"]
    return {
        name: {"description": text, "schema": {"type": "string"}} for name, text in names.items()
    }
