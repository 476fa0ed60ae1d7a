"""Tracing spans and structured logs."""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from weaver import __version__
from weaver.logs import JsonFormatter

_EXPORTER = InMemorySpanExporter()


@pytest.fixture
def spans() -> InMemorySpanExporter:
    # The global provider can be set once per process; whoever sets it first wins, so
    # install ours only if nobody has, and read spans through our exporter either way.
    provider = trace.get_tracer_provider()
    if not isinstance(provider, TracerProvider):
        provider = TracerProvider()
        trace.set_tracer_provider(provider)
    if not getattr(provider, "_weaver_test_exporter", False):
        provider.add_span_processor(SimpleSpanProcessor(_EXPORTER))
        provider._weaver_test_exporter = True  # type: ignore[attr-defined]
    _EXPORTER.clear()
    return _EXPORTER


async def test_server_span_with_route_status_tenant_and_hook_children(
    spans: InMemorySpanExporter, client: Any, auth: Any
) -> None:
    await client.get("/api/datasources/missing", headers=auth())
    finished = spans.get_finished_spans()
    server = next(s for s in finished if s.name == "GET /api/datasources/{name}")
    assert server.kind == trace.SpanKind.SERVER
    assert server.attributes is not None
    assert server.attributes["http.route"] == "/api/datasources/{name}"
    assert server.attributes["http.response.status_code"] == 404
    assert server.attributes["weaver.tenant_id"] == "tenant-a"
    # Start-up hooks run outside any request; the request's hooks are its children.
    hooks = [
        s
        for s in finished
        if s.name.startswith("hook ") and s.context.trace_id == server.context.trace_id
    ]
    assert {s.name for s in hooks} >= {"hook guard_request", "hook get_datasource"}
    for hook in hooks:
        assert hook.parent is not None and hook.parent.span_id == server.context.span_id
        assert hook.attributes is not None and hook.attributes["weaver.plugin"]


def test_json_log_lines_carry_request_fields() -> None:
    record = logging.LogRecord("weaver.http", logging.ERROR, __file__, 1, "boom", None, None)
    record.request_id = "req-1"
    record.route = "/api/query"
    line = json.loads(JsonFormatter().format(record))
    assert line["message"] == "boom"
    assert line["level"] == "ERROR"
    assert line["request_id"] == "req-1"
    assert line["route"] == "/api/query"


def test_sentry_without_the_sdk_only_warns(caplog: pytest.LogCaptureFixture) -> None:
    from weaver.observability import setup_error_tracking
    from weaver.settings import Settings

    settings = Settings.from_env_names({"SENTRY_DSN": "https://key@sentry.example/1"})
    try:
        import sentry_sdk  # noqa: F401
    except ImportError:
        assert setup_error_tracking(settings) is False
        assert "sentry-sdk is not installed" in caplog.text
    else:
        pytest.skip("sentry-sdk is installed here")
    assert setup_error_tracking(Settings.from_env_names({})) is False


INCOMING_TRACE_ID = 0x4BF92F3577B34DA6A3CE929D0E0E4736
INCOMING_SPAN_ID = 0x00F067AA0BA902B7


async def test_incoming_traceparent_is_the_server_spans_parent(
    spans: InMemorySpanExporter, client: Any, auth: Any
) -> None:
    headers = {
        **auth(),
        "traceparent": f"00-{INCOMING_TRACE_ID:032x}-{INCOMING_SPAN_ID:016x}-01",
        "User-Agent": "tour/1.0",
    }
    response = await client.get("/api/datasources/missing", headers=headers)
    (server,) = [s for s in spans.get_finished_spans() if s.kind == trace.SpanKind.SERVER]
    assert server.context.trace_id == INCOMING_TRACE_ID
    assert server.parent is not None and server.parent.is_remote
    assert server.parent.span_id == INCOMING_SPAN_ID
    assert server.attributes is not None
    # OpenTelemetry's HTTP server conventions, and the id the caller was answered with.
    assert server.attributes["url.path"] == "/api/datasources/missing"
    assert server.attributes["client.address"] == "127.0.0.1"
    assert server.attributes["user_agent.original"] == "tour/1.0"
    assert server.attributes["weaver.request_id"] == response.headers["X-Request-Id"]


async def test_without_traceparent_a_trace_starts_here(
    spans: InMemorySpanExporter, client: Any
) -> None:
    await client.get("/health/live")
    (server,) = [s for s in spans.get_finished_spans() if s.kind == trace.SpanKind.SERVER]
    assert server.parent is None


async def test_metrics_have_status_process_and_build_info(client: Any, auth: Any) -> None:
    await client.get("/api/datasources/missing", headers=auth())
    exposition = await (await client.get("/metrics")).text()
    assert (
        'weaver_http_request_duration_seconds_count{method="GET",'
        'route="/api/datasources/{name}",status="404"} 1.0'
    ) in exposition
    for name in ("process_resident_memory_bytes", "process_cpu_seconds_total", "process_open_fds"):
        assert f"\n{name} " in exposition
    (build,) = [line for line in exposition.splitlines() if line.startswith("weaver_build_info{")]
    assert 'plugins="embedded_engine,embedded_guard,embedded_store"' in build
    assert f'version="{__version__}"' in build and 'python="3.' in build
    assert build.endswith(" 1.0")
