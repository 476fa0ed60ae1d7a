"""Metrics, tracing and error reporting (log lines are `weaver.logs`)."""

from __future__ import annotations

import asyncio
import logging
import os
import platform
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    ProcessCollector,
    generate_latest,
    multiprocess,
)

from weaver import __version__
from weaver.settings import Settings

# Latency buckets for a gateway: most answers take milliseconds, queries up to seconds.
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)


class Metrics:
    """One registry per app, so that several apps in one process (tests) stay apart.

    With several worker processes, ``PROMETHEUS_MULTIPROC_DIR`` is set by the CLI and the
    exposition aggregates every worker's samples.
    """

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.multiprocess = bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))
        self.requests = Counter(
            "weaver_http_requests_total",
            "HTTP requests by route template, method and status.",
            ["route", "method", "status"],
            registry=self.registry,
        )
        self.request_latency = Histogram(
            "weaver_http_request_duration_seconds",
            "HTTP request latency by route template, method and status.",
            ["route", "method", "status"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.query_latency = Histogram(
            "weaver_query_duration_seconds",
            "Query latency by engine plugin and outcome.",
            ["engine", "outcome"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.guard_rejections = Counter(
            "weaver_guard_rejections_total",
            "Requests the guard refused or could not judge, by reason.",
            ["reason"],
            registry=self.registry,
        )
        self.plugin_up = Gauge(
            "weaver_plugin_up",
            "1 when the plugin was up at the last health check, 0 when down or disabled.",
            ["plugin"],
            registry=self.registry,
            multiprocess_mode="livemax",
        )
        self.running_queries = Gauge(
            "weaver_running_queries",
            "Queries running now, by the plugin that runs them.",
            ["engine"],
            registry=self.registry,
            multiprocess_mode="livesum",
        )
        self.query_cancellations = Counter(
            "weaver_query_cancellations_total",
            "Queries stopped before they finished, by cause.",
            ["cause"],
            registry=self.registry,
        )
        self.result_store_bytes = Gauge(
            "weaver_result_store_bytes",
            "Bytes of async query results kept, as of the last sweep.",
            registry=self.registry,
            multiprocess_mode="livemax",
        )
        self.build_info = Gauge(
            "weaver_build_info",
            "Always 1; the labels say which version runs, on which Python, with which plugins.",
            ["version", "python", "plugins"],
            registry=self.registry,
            multiprocess_mode="livemax",
        )
        self.process = WorkerProcessMetrics(self.registry) if self.multiprocess else None
        if self.process is None:
            ProcessCollector(registry=self.registry)
        self._request_children: dict[tuple[str, str, int], tuple[Any, Any]] = {}
        self._query_children: dict[tuple[str, str], Any] = {}

    def observe_request(self, route: str, method: str, status: int, seconds: float) -> None:
        # `labels()` takes a lock and builds a key on every call; the children of a route
        # never change, so they are looked up once.
        key = (route, method, status)
        children = self._request_children.get(key)
        if children is None:
            children = self._request_children[key] = (
                self.requests.labels(route, method, str(status)),
                self.request_latency.labels(route, method, str(status)),
            )
        children[0].inc()
        children[1].observe(seconds)

    def observe_query(self, engine: str, outcome: str, seconds: float) -> None:
        key = (engine, outcome)
        child = self._query_children.get(key)
        if child is None:
            child = self._query_children[key] = self.query_latency.labels(engine, outcome)
        child.observe(seconds)

    def record_build(self, loaded_plugins: Iterable[str]) -> None:
        self.build_info.labels(
            __version__, platform.python_version(), ",".join(sorted(loaded_plugins))
        ).set(1)

    def exposition(self) -> tuple[bytes, str]:
        if self.process is not None:
            self.process.refresh()
            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
            return generate_latest(registry), CONTENT_TYPE_LATEST
        return generate_latest(self.registry), CONTENT_TYPE_LATEST


class WorkerProcessMetrics:
    """``process_*`` metrics of every worker under ``weaver serve --workers N``.

    prometheus-client aggregates only its own metric files across processes, not
    collectors such as `ProcessCollector`, so each worker copies what that collector reads
    for it into gauges of the same names, one series per worker (``pid`` label). Workers
    refresh them every `REFRESH_SECONDS` and the one answering a scrape just before.
    """

    REFRESH_SECONDS = 10.0

    def __init__(self, registry: CollectorRegistry) -> None:
        self._source = ProcessCollector(registry=None)
        # Named after the samples: the CPU counter's sample keeps its `_total`.
        self._gauges = {
            sample.name: Gauge(
                sample.name, family.documentation, registry=registry, multiprocess_mode="liveall"
            )
            for family in self._source.collect()
            for sample in family.samples
        }

    def refresh(self) -> None:
        for family in self._source.collect():
            for sample in family.samples:
                self._gauges[sample.name].set(sample.value)

    async def refresh_periodically(self) -> None:
        while True:
            self.refresh()
            await asyncio.sleep(self.REFRESH_SECONDS)


def prepare_multiprocess_metrics(directory: Path) -> None:
    """Called by the parent before forking workers: a clean directory for their samples."""
    directory.mkdir(parents=True, exist_ok=True)
    for stale in directory.glob("*.db"):
        stale.unlink()
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(directory)


def tracing_active() -> bool:
    """Whether spans go anywhere: an SDK tracer provider is installed."""
    return isinstance(trace.get_tracer_provider(), TracerProvider)


def setup_tracing(environ: Mapping[str, str] | None = None) -> None:
    """Export spans over OTLP when the standard ``OTEL_EXPORTER_OTLP_*`` variables name
    an endpoint.

    Otherwise the API's no-op provider stays in place: recording spans nobody exports
    cost more than the rest of a small request. An embedding application that installs
    its own SDK provider first gets Weaver's spans in it.
    """
    environ = os.environ if environ is None else environ
    if isinstance(trace.get_tracer_provider(), TracerProvider):
        return
    if not (
        environ.get("OTEL_EXPORTER_OTLP_ENDPOINT")
        or environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
    ):
        return
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    provider = TracerProvider(
        resource=Resource.create({"service.name": "weaver", "service.version": __version__})
    )
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    trace.set_tracer_provider(provider)


def setup_error_tracking(settings: Settings) -> bool:
    """Report unhandled errors to Sentry when ``SENTRY_DSN`` is set and the optional
    ``sentry-sdk`` is installed (``pip install 'weaver-gateway[sentry]'``)."""
    if not settings.sentry_dsn:
        return False
    try:
        import sentry_sdk
    except ImportError:
        logging.getLogger(__name__).warning(
            "SENTRY_DSN is set but sentry-sdk is not installed; errors are only logged"
        )
        return False
    sentry_sdk.init(
        dsn=settings.sentry_dsn,
        environment=settings.app_env,
        release=f"weaver@{__version__}",
        # Requests may carry datasource credentials; never ship bodies or headers.
        send_default_pii=False,
        max_request_body_size="never",
    )
    return True
