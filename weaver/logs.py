"""Log lines: plain text in development, JSON in production, and every line written while
a request is handled carries its request id and trace id.

The request is known through a context variable that the ``observe`` middleware sets for
the task serving it, so a plugin's own ``logging`` calls get the fields too, without
passing anything along. The trace id is the current span's; when no spans are recorded
(no exporter configured) it is read from the request's ``traceparent`` — only when a line
is actually written, so a request that logs nothing pays nothing for it.
"""

from __future__ import annotations

import logging
import sys
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import UTC, datetime

import orjson
from opentelemetry import trace
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

ACCESS_LOGGER = "weaver.access"
# Fields a record may carry (set by the filter below or passed as `extra`), in the order
# they are written.
RECORD_FIELDS = (
    "request_id",
    "trace_id",
    "tenant_id",
    "method",
    "route",
    "status",
    "duration_ms",
)
_TRACE_CONTEXT = TraceContextTextMapPropagator()


@dataclass(slots=True)
class RequestLogContext:
    """What every log line of one request says about it."""

    request_id: str
    traceparent: str | None = None
    _incoming_trace_id: str | None = field(default=None, init=False)

    def trace_id(self) -> str | None:
        span = trace.get_current_span().get_span_context()
        if span.is_valid:
            return trace.format_trace_id(span.trace_id)
        if self.traceparent is None:
            return None
        if self._incoming_trace_id is None:
            incoming = _TRACE_CONTEXT.extract({"traceparent": self.traceparent})
            context = trace.get_current_span(incoming).get_span_context()
            self._incoming_trace_id = (
                trace.format_trace_id(context.trace_id) if context.is_valid else ""
            )
        return self._incoming_trace_id or None


current_request: ContextVar[RequestLogContext | None] = ContextVar(
    "weaver_current_request", default=None
)


class RequestContextFilter(logging.Filter):
    """Puts the current request's id and trace id on every record that passes."""

    def filter(self, record: logging.LogRecord) -> bool:
        context = current_request.get()
        if context is not None:
            if getattr(record, "request_id", None) is None:
                record.request_id = context.request_id
            if getattr(record, "trace_id", None) is None:
                record.trace_id = context.trace_id()
        return True


def _fields(record: logging.LogRecord) -> dict[str, object]:
    found = {}
    for name in RECORD_FIELDS:
        value = getattr(record, name, None)
        if value is not None:
            found[name] = value
    return found


class TextFormatter(logging.Formatter):
    """``time LEVEL logger: message key=value ...`` for a terminal."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        fields = {k: v for k, v in _fields(record).items() if k in _TEXT_FIELDS}
        if not fields:
            return line
        first, newline, rest = line.partition("\n")  # keep a traceback below the fields
        suffix = " ".join(f"{name}={value}" for name, value in fields.items())
        return f"{first} {suffix}{newline}{rest}"


# The access line's message already says method, route, status and duration.
_TEXT_FIELDS = frozenset({"request_id", "trace_id", "tenant_id"})


class JsonFormatter(logging.Formatter):
    """One JSON object per line, for log collectors (Loki, ELK)."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        entry.update(_fields(record))
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(entry, default=str).decode()


def setup_logging(level: str, *, json_lines: bool) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if json_lines else TextFormatter())
    handler.addFilter(RequestContextFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
