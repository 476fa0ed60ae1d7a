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

from weaver.observability import JsonFormatter

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
