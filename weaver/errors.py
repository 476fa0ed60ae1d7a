"""Errors that become RFC 9457 problem responses.

Handlers and plugins raise these; one middleware renders them. `detail` is shown to the
caller, so it must never carry a credential, an internal name or a stack trace.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, TypeVar

T = TypeVar("T")


def field_error(loc: Sequence[str | int], msg: str, kind: str) -> dict[str, Any]:
    """One entry of a 422's ``errors``: where (``["body", "connection", "port"]``), what is
    wrong, and a machine-readable kind. Every 422 is built from these, whichever layer or
    engine raised it, so clients parse one shape."""
    return {"loc": list(loc), "msg": msg, "type": kind}


class Problem(Exception):
    status: int = 500
    title: str = "Internal Server Error"
    type_slug: str = "internal"

    def __init__(
        self,
        detail: str | None = None,
        *,
        errors: list[dict[str, Any]] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(detail or self.title)
        self.detail = detail or self.title
        self.errors = errors
        self.headers = headers or {}

    @property
    def type_uri(self) -> str:
        return f"https://weaver.dev/problems/{self.type_slug}"


class BadRequest(Problem):
    status, title, type_slug = 400, "Bad Request", "bad-request"


class InvalidQuery(BadRequest):
    title, type_slug = "Query Not Allowed", "invalid-query"


class QueryFailed(BadRequest):
    """The engine refused the statement for a reason the caller can fix (an unknown table
    or column, a type mismatch): not the gateway's fault, not the engine's."""

    title, type_slug = "Query Failed", "query-failed"


class Unauthorized(Problem):
    status, title, type_slug = 401, "Unauthorized", "unauthorized"

    def __init__(self, detail: str | None = None) -> None:
        super().__init__(detail, headers={"WWW-Authenticate": 'Bearer realm="weaver"'})


class Forbidden(Problem):
    status, title, type_slug = 403, "Forbidden", "forbidden"


class NotFound(Problem):
    status, title, type_slug = 404, "Not Found", "not-found"


class MethodNotAllowed(Problem):
    status, title, type_slug = 405, "Method Not Allowed", "method-not-allowed"


class NotAcceptable(Problem):
    """None of the media types the caller accepts is one the resource can be sent as;
    `detail` lists those it can."""

    status, title, type_slug = 406, "Not Acceptable", "not-acceptable"


class Conflict(Problem):
    status, title, type_slug = 409, "Conflict", "conflict"


class QueryCancelled(Conflict):
    title, type_slug = "Query Cancelled", "query-cancelled"


class Gone(Problem):
    status, title, type_slug = 410, "Gone", "gone"


class PayloadTooLarge(Problem):
    status, title, type_slug = 413, "Payload Too Large", "payload-too-large"


class UnsupportedMediaType(Problem):
    status, title, type_slug = 415, "Unsupported Media Type", "unsupported-media-type"


class Unprocessable(Problem):
    status, title, type_slug = 422, "Unprocessable Content", "validation"


class RateLimited(Problem):
    status, title, type_slug = 429, "Too Many Requests", "rate-limited"


class TooManyQueries(RateLimited):
    """The tenant already runs ``WEAVER_QUERY_CONCURRENCY`` queries (or has as many
    waiting as its queue holds)."""

    title, type_slug = "Too Many Queries", "too-many-queries"


class EngineFailed(Problem):
    """The backend answered with an error; `detail` is its message, already cleaned."""

    status, title, type_slug = 502, "Bad Gateway", "engine-error"


class Unavailable(Problem):
    """A backend cannot be reached at all."""

    status, title, type_slug = 503, "Service Unavailable", "unavailable"


class GuardUnavailable(Unavailable):
    """The request guard's backend failed; `WEAVER_REQUEST_GUARD_FAIL_OPEN` decides."""

    type_slug = "guard-unavailable"


class GatewayLost(Unavailable):
    """The gateway process running a query stopped before the query ended."""

    type_slug = "gateway-lost"

    def __init__(self, detail: str | None = None) -> None:
        super().__init__(
            detail or "the gateway process running this query stopped before it finished"
        )


class EngineTimeout(Problem):
    status, title, type_slug = 504, "Gateway Timeout", "query-timeout"


def found(record: T | None, detail: str) -> T:
    """``record``, or a 404 saying what was not found (another tenant's record included:
    it answers exactly like a missing one)."""
    if record is None:
        raise NotFound(detail)
    return record


def problem_body(problem: Problem) -> dict[str, Any]:
    """What a query record keeps of the problem the query ended with: the problem+json
    body without a request id (the record outlives the request)."""
    body: dict[str, Any] = {
        "type": problem.type_uri,
        "title": problem.title,
        "status": problem.status,
        "detail": problem.detail,
    }
    if problem.errors:
        body["errors"] = problem.errors
    return body
