"""Trace propagation end to end: `weaver serve` exports over OTLP/HTTP to a receiver
running in the test, which decodes the protobuf export the way a collector does."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from tests.serving import Serving, clean_environment
from weaver.testing import free_port

TRACE_ID = "0af7651916cd43dd8448eb211c80319c"
PARENT_SPAN_ID = "b7ad6b7169203331"


class Receiver:
    """An OTLP/HTTP trace endpoint (``POST /v1/traces``) that keeps what it is sent."""

    def __init__(self) -> None:
        self.spans: list[Span] = []
        self.resources: list[dict[str, Any]] = []
        self.received = asyncio.Event()

    async def export(self, request: web.Request) -> web.Response:
        assert request.content_type == "application/x-protobuf"
        export = ExportTraceServiceRequest.FromString(await request.read())
        for resource_spans in export.resource_spans:
            self.resources.append(
                {a.key: a.value.string_value for a in resource_spans.resource.attributes}
            )
            for scope_spans in resource_spans.scope_spans:
                self.spans.extend(scope_spans.spans)
        self.received.set()
        return web.Response(
            body=ExportTraceServiceResponse().SerializeToString(),
            content_type="application/x-protobuf",
        )

    async def span_named(self, name: str, seconds: float = 30) -> Span:
        async with asyncio.timeout(seconds):
            while True:
                found = [s for s in self.spans if s.name == name]
                if found:
                    return found[0]
                self.received.clear()
                await self.received.wait()


@pytest.fixture
async def receiver() -> AsyncIterator[tuple[Receiver, str]]:
    receiving = Receiver()
    app = web.Application()
    app.router.add_post("/v1/traces", receiving.export)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    try:
        yield receiving, f"http://127.0.0.1:{server.port}"
    finally:
        await server.close()


def attributes(span: Span) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for attribute in span.attributes:
        value = attribute.value
        found[attribute.key] = value.string_value or value.int_value
    return found


async def wait_until_live(session: aiohttp.ClientSession, base: str, server: Any) -> None:
    # Asynchronously: the receiver shares this event loop and must keep answering.
    async with asyncio.timeout(60):
        while True:
            assert server.poll() is None, "weaver serve exited"
            try:
                async with session.get(base + "/health/live") as answer:
                    if answer.status == 200:
                        return
            except aiohttp.ClientConnectionError:
                pass
            await asyncio.sleep(0.1)


async def test_the_server_span_continues_the_callers_trace(
    receiver: tuple[Receiver, str], tmp_path: Path
) -> None:
    receiving, endpoint = receiver
    env = clean_environment(
        WEAVER_DATA_DIR=str(tmp_path),
        OTEL_EXPORTER_OTLP_ENDPOINT=endpoint,
        # Export within a tenth of a second instead of the default five.
        OTEL_BSP_SCHEDULE_DELAY="100",
    )
    port = free_port()
    server = Serving(port, env, tmp_path / "weaver.log")
    base = f"http://127.0.0.1:{port}"
    try:
        async with aiohttp.ClientSession() as session:
            await wait_until_live(session, base, server)
            headers = {
                "traceparent": f"00-{TRACE_ID}-{PARENT_SPAN_ID}-01",
                "X-Request-Id": "otlp-request-1",
                "User-Agent": "otlp-test/1.0",
            }
            async with session.get(base + "/api/datasources", headers=headers) as answer:
                assert answer.status == 401
            span = await receiving.span_named("GET /api/datasources")
    finally:
        log = server.stop()

    assert span.kind == Span.SPAN_KIND_SERVER
    assert span.trace_id.hex() == TRACE_ID
    assert span.parent_span_id.hex() == PARENT_SPAN_ID
    found = attributes(span)
    assert found["http.route"] == "/api/datasources"
    assert found["http.response.status_code"] == 401
    assert found["url.path"] == "/api/datasources"
    assert found["client.address"] == "127.0.0.1"
    assert found["user_agent.original"] == "otlp-test/1.0"
    assert found["weaver.request_id"] == "otlp-request-1"
    assert any(r.get("service.name") == "weaver" for r in receiving.resources)
    # The request's log lines name the same trace and request.
    (access,) = [line for line in log.splitlines() if "request_id=otlp-request-1" in line]
    assert f"trace_id={TRACE_ID}" in access
