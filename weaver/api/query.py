"""`/api/query`: read-only SQL across the tenant's datasources, and queries as resources.

A query's rows go out in the format ``Accept`` asks for, written as they arrive from the
engine (JSON excepted: it is one document, sent whole). Errors before the first byte are
problems; after it, NDJSON ends with an error line and CSV and Arrow are cut off without
their terminating chunk, so that no client takes a partial file for a whole one.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Sequence
from datetime import datetime
from typing import Any, Literal

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from weaver.api.models import Answer, Body
from weaver.api.paging import ItemList, ListQuery, page_of
from weaver.errors import Problem, Unprocessable, field_error, problem_body
from weaver.keys import QUERIES, REQUEST_ID, SETTINGS, principal_of
from weaver.queries.service import Execution, QueryService
from weaver.responses import json_response
from weaver.results import ResultEncoder, ResultSummary, encoder_for
from weaver.routing import RouteTable
from weaver.types import QueryRecord, QueryVia, ResultColumn
from weaver.workflows import query as workflow

routes = RouteTable()

# How often a synchronous query looks whether its client is still there (aiohttp does
# not cancel a handler when the client goes away).
DISCONNECT_POLL_SECONDS = 0.25
PAGE_DEFAULT_ROWS = 1000
# Batches smaller than this are encoded on the loop: a thread hand-off costs more.
INLINE_ENCODE_ROWS = 200
PAGE_MAX_ROWS = 10_000
QUERY_HEADERS = {"X-Query-Id": "the query's id"}
STREAMED_MEDIA_TYPES = (
    "application/x-ndjson",
    "text/csv",
    "application/vnd.apache.arrow.stream",
)


class QueryRequest(Body):
    sql: str = Field(min_length=1, max_length=100_000)
    limit: int | None = Field(None, ge=1)
    timeout_seconds: float | None = Field(None, gt=0)


class ResultColumnOut(Answer):
    name: str
    type: str


class QueryResponse(Answer):
    query_id: str
    columns: list[ResultColumnOut]
    rows: list[list[Any]]
    row_count: int
    truncated: bool
    elapsed_ms: float


class QueryAccepted(Answer):
    """Accepted: the query runs in the background (Prefer: respond-async)."""

    query_id: str
    status: Literal["queued", "running", "succeeded", "failed", "cancelled"]


class ProblemOut(BaseModel):
    model_config = ConfigDict(extra="allow")

    type: str
    title: str
    status: int
    detail: str


class QueryOut(Answer):
    query_id: str
    status: Literal["queued", "running", "succeeded", "failed", "cancelled"]
    sql: str
    datasources: list[str]
    submitted_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    row_count: int | None
    truncated: bool | None
    elapsed_ms: float | None
    sub: str
    bytes: int | None
    via: Literal["api", "mcp", "console"]
    mode: Literal["sync", "async"]
    error: ProblemOut | None = None


class ResultPageOut(Answer):
    columns: list[ResultColumnOut]
    rows: list[list[Any]]
    next_cursor: str | None


class HistoryQuery(ListQuery):
    status: Literal["queued", "running", "succeeded", "failed", "cancelled"] | None = None
    sub: str | None = Field(None, min_length=1, max_length=255)


class ResultsQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    cursor: str | None = Field(None, max_length=500)
    limit: int | None = Field(None, ge=1)


def render(record: QueryRecord) -> dict[str, Any]:
    body: dict[str, Any] = {
        "query_id": record.query_id,
        "status": record.status,
        "sql": record.sql,
        "datasources": list(record.datasources),
        "submitted_at": record.submitted_at.isoformat(),
        "started_at": record.started_at.isoformat() if record.started_at else None,
        "finished_at": record.finished_at.isoformat() if record.finished_at else None,
        "row_count": record.row_count,
        "truncated": record.truncated,
        "elapsed_ms": record.elapsed_ms,
        "sub": record.subject,
        "bytes": record.bytes_sent,
        "via": record.via,
        "mode": record.mode,
    }
    if record.error is not None:
        body["error"] = dict(record.error)
    return body


async def encode(encoder: ResultEncoder, batch: Sequence[Sequence[Any]]) -> bytes:
    """A batch's bytes. Encoding a full batch costs milliseconds (about 20 ms for 5000
    rows of CSV): off the event loop, so an export never delays another request."""
    if len(batch) < INLINE_ENCODE_ROWS:
        return encoder.rows(batch)
    return await asyncio.to_thread(encoder.rows, batch)


@routes.route(
    "POST",
    "/api/query",
    summary="Run read-only SQL (Prefer: respond-async to run it in the background)",
    tag="query",
    role="viewer",
    body=QueryRequest,
    response=QueryResponse,
    errors=(400, 404, 406, 409, 422, 429, 502, 503, 504),
    headers=QUERY_HEADERS,
    media_types=STREAMED_MEDIA_TYPES,
    alternatives={
        202: (
            QueryAccepted,
            {**QUERY_HEADERS, "Location": "the query's URL", "Preference-Applied": "respond-async"},
        )
    },
)
async def run_query(request: web.Request, body: QueryRequest) -> web.StreamResponse:
    queries, settings, principal = (
        request.app[QUERIES],
        request.app[SETTINGS],
        principal_of(request),
    )
    if _prefers_async(request):
        # The result is stored and paged later in any format: it may be as large as an
        # export, and is as large as a JSON answer unless the caller asks for more.
        record = await queries.submit(
            principal,
            body.sql,
            limit=body.limit or workflow.DEFAULT_ROW_LIMIT,
            timeout_seconds=body.timeout_seconds,
            max_rows=settings.export_max_rows,
            via=_via(request),
        )
        return json_response(
            {"query_id": record.query_id, "status": record.status},
            status=202,
            headers={
                "Location": f"/api/query/{record.query_id}",
                "X-Query-Id": record.query_id,
                "Preference-Applied": "respond-async",
            },
        )
    encoder = encoder_for(request.headers.get("Accept"))
    max_rows = settings.export_max_rows if encoder.streams else settings.query_max_rows
    default = settings.export_max_rows if encoder.streams else workflow.DEFAULT_ROW_LIMIT
    limit = body.limit if body.limit is not None else default
    async with queries.run_sync(
        principal,
        body.sql,
        limit=limit,
        timeout_seconds=body.timeout_seconds,
        max_rows=max_rows,
        via=_via(request),
    ) as execution:
        return await _answer(request, queries, execution, encoder)


def _via(request: web.Request) -> QueryVia:
    """Where the query came from, for its history: the console says so in a header."""
    return "console" if request.headers.get("X-Weaver-Client") == "console" else "api"


def _prefers_async(request: web.Request) -> bool:
    """RFC 7240 ``Prefer: respond-async`` (among other preferences, any case)."""
    return any(
        part.split("=", 1)[0].strip().lower() == "respond-async"
        for value in request.headers.getall("Prefer", [])
        for part in value.replace(";", ",").split(",")
    )


async def _answer(
    request: web.Request, queries: QueryService, execution: Execution, encoder: ResultEncoder
) -> web.StreamResponse:
    """Run a synchronous query into a response in ``encoder``'s format."""
    response = web.StreamResponse(
        headers={"Content-Type": encoder.media_type, "X-Query-Id": execution.query_id}
    )
    pending: list[bytes] = []

    async def send(chunk: bytes) -> None:
        if not chunk:
            return
        if not encoder.streams:
            pending.append(chunk)
            return
        if not response.prepared:
            await response.prepare(request)
        try:
            await response.write(chunk)
        except ConnectionError:
            # Closing the stream (the pump does, on the way out) ends the statement.
            raise execution.client_gone() from None
        execution.bytes_sent += len(chunk)

    async def on_columns(columns: Sequence[ResultColumn]) -> None:
        await send(encoder.start(columns))

    async def on_rows(batch: Sequence[Sequence[Any]]) -> None:
        await send(await encode(encoder, batch))

    watcher = asyncio.create_task(_watch_client(request, queries, execution))
    try:
        pumped = await execution.stream(on_columns, on_rows)
    except Problem as problem:
        if not response.prepared:
            problem.headers.setdefault("X-Query-Id", execution.query_id)
            raise
        execution.ended_by = problem
        await _end_stream(request, response, encoder, problem)
        return response
    finally:
        watcher.cancel()
    summary = ResultSummary(
        execution.query_id, pumped.row_count, pumped.truncated, pumped.elapsed_ms
    )
    if not encoder.streams:
        body = b"".join([*pending, encoder.finish(summary)])
        execution.bytes_sent = len(body)
        return web.Response(
            body=body,
            content_type=encoder.media_type,
            headers={"X-Query-Id": execution.query_id},
        )
    await send(encoder.finish(summary))
    if not response.prepared:
        await response.prepare(request)
    await response.write_eof()
    return response


async def _watch_client(request: web.Request, queries: QueryService, execution: Execution) -> None:
    while True:
        await asyncio.sleep(DISCONNECT_POLL_SECONDS)
        transport = request.transport
        if transport is None or transport.is_closing():
            queries.cancel_on_disconnect(execution)
            return


async def _end_stream(
    request: web.Request,
    response: web.StreamResponse,
    encoder: ResultEncoder,
    problem: Problem,
) -> None:
    """A failure after the first byte: the format's own error record, or a cut-off."""
    body = {**problem_body(problem), "request_id": request[REQUEST_ID]}
    tail = encoder.failure(body)
    with contextlib.suppress(ConnectionError):
        if tail is not None:
            await response.write(tail)
            await response.write_eof()
            return
    # No terminating chunk: the client's parser sees an incomplete body.
    transport = request.transport
    if transport is not None:
        transport.close()


@routes.route(
    "GET",
    "/api/query/history",
    summary="Queries newest first: the caller's, or the tenant's for an admin",
    tag="query",
    role="viewer",
    query=HistoryQuery,
    response=ItemList[QueryOut],
    errors=(400, 403),
)
async def history(request: web.Request, query: HistoryQuery) -> web.StreamResponse:
    records = await request.app[QUERIES].history(
        principal_of(request),
        subject=query.sub,
        status=query.status,
        page=query.page(),
    )
    return json_response(page_of(records, query, lambda r: r.query_id, render))


@routes.route(
    "GET",
    "/api/query/{query_id}",
    summary="A query's status",
    tag="query",
    role="viewer",
    response=QueryOut,
    errors=(404,),
)
async def get_query(request: web.Request) -> web.StreamResponse:
    record = await request.app[QUERIES].get(principal_of(request), request.match_info["query_id"])
    return json_response(render(record))


@routes.route(
    "DELETE",
    "/api/query/{query_id}",
    summary="Cancel a queued or running query, or discard a stored result",
    tag="query",
    role="viewer",
    status=204,
    errors=(404,),
)
async def cancel_query(request: web.Request) -> web.StreamResponse:
    await request.app[QUERIES].cancel(principal_of(request), request.match_info["query_id"])
    return web.Response(status=204)


@routes.route(
    "GET",
    "/api/query/{query_id}/results",
    summary="A page of an async query's result",
    tag="query",
    role="viewer",
    query=ResultsQuery,
    response=ResultPageOut,
    errors=(400, 404, 406, 409, 410, 422),
    headers={**QUERY_HEADERS, "Link": 'the next page, rel="next" (streamed formats)'},
    media_types=STREAMED_MEDIA_TYPES,
)
async def results(request: web.Request, query: ResultsQuery) -> web.StreamResponse:
    settings = request.app[SETTINGS]
    encoder = encoder_for(request.headers.get("Accept"), json_shape="page")
    most = settings.export_max_rows if encoder.streams else PAGE_MAX_ROWS
    limit = query.limit or (settings.export_max_rows if encoder.streams else PAGE_DEFAULT_ROWS)
    if limit > most:
        raise Unprocessable(
            f"limit is too large: at most {most} rows",
            errors=[field_error(["query", "limit"], f"at most {most}", "less_than_equal")],
        )
    query_id = request.match_info["query_id"]
    page = await request.app[QUERIES].page(principal_of(request), query_id, query.cursor, limit)
    headers = {"Content-Type": encoder.media_type, "X-Query-Id": query_id}
    if page.next_cursor is not None and encoder.streams:
        following = f"/api/query/{query_id}/results?cursor={page.next_cursor}&limit={limit}"
        headers["Link"] = f'<{following}>; rel="next"'
    response = web.StreamResponse(headers=headers)
    chunks = _page_chunks(encoder, page.columns, page.batches, query_id, page.next_cursor)
    if not encoder.streams:
        return web.Response(
            body=b"".join([chunk async for chunk in chunks]),
            content_type=encoder.media_type,
            headers={"X-Query-Id": query_id},
        )
    await response.prepare(request)
    try:
        async for chunk in chunks:
            await response.write(chunk)
    except Problem as problem:
        await _end_stream(request, response, encoder, problem)
        return response
    await response.write_eof()
    return response


async def _page_chunks(
    encoder: ResultEncoder,
    columns: Sequence[ResultColumn],
    batches: AsyncIterator[Sequence[Sequence[Any]]],
    query_id: str,
    next_cursor: str | None,
) -> AsyncIterator[bytes]:
    yield encoder.start(columns)
    count = 0
    async for batch in batches:
        count += len(batch)
        yield await encode(encoder, batch)
    yield encoder.finish(ResultSummary(query_id, count, False, 0.0, next_cursor))
