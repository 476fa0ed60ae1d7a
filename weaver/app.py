"""`create_app()`: the whole gateway, built before it serves."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterable, Mapping
from importlib.metadata import EntryPoint

from aiohttp import web

from weaver.api import agents, datasources, glossary, health, metadata, query
from weaver.auth import TokenVerifier
from weaver.bootstrap import build_host
from weaver.console import routes as console
from weaver.keys import HOST, METRICS, OPENAPI_DOCUMENT, PRINCIPAL, QUERIES, ROUTES, SETTINGS
from weaver.mcp import route as mcp
from weaver.middleware import cors, decorate, make_api_guard, observe, trace_requests
from weaver.observability import Metrics, setup_tracing, tracing_active
from weaver.openapi import build_document
from weaver.queries.service import QueryService
from weaver.responses import dumps
from weaver.routing import RouteTable
from weaver.settings import Settings
from weaver.workflows.repairs import Repairer

RESOURCE_MODULES = (health, datasources, query, metadata, agents, glossary, console)


def create_app(
    settings: Settings | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    discovered: Iterable[EntryPoint] | None = None,
) -> web.Application:
    """The gateway. ``environ`` carries third-party plugin flags and ``discovered``
    replaces entry-point discovery (both default to the real process's)."""
    settings = settings if settings is not None else Settings()
    setup_tracing()
    host = build_host(settings, environ=environ, discovered=discovered)
    table = RouteTable()
    for module in RESOURCE_MODULES:
        table.extend(module.routes)

    middlewares = [observe, cors, make_api_guard(TokenVerifier(settings))]
    if tracing_active():
        middlewares.insert(0, trace_requests)
    app = web.Application(middlewares=middlewares, client_max_size=settings.max_body_bytes)
    app[SETTINGS] = settings
    app[HOST] = host
    app[METRICS] = metrics = Metrics()
    metrics.record_build(
        name for name, info in host.plugins.items() if info.load_status == "loaded"
    )
    app[QUERIES] = QueryService(host, metrics)
    app[ROUTES] = table
    app[OPENAPI_DOCUMENT] = dumps(build_document(table))
    table.install(app, PRINCIPAL, check_responses=settings.app_env == "test")
    app.on_response_prepare.append(decorate)
    app.cleanup_ctx.append(_plugin_lifecycle)
    # After the plugins' lifecycle, so the MCP tools stop before the plugins do.
    mcp.install(app)
    if metrics.process is not None:
        app.cleanup_ctx.append(_process_metrics)
    return app


async def _plugin_lifecycle(app: web.Application) -> AsyncIterator[None]:
    host, queries = app[HOST], app[QUERIES]
    repairer = Repairer(host)
    await host.startup()
    await queries.start()
    await repairer.start()
    yield
    await repairer.stop()
    # Queries still running end as failed ("the gateway stopped"), before the engines go.
    await queries.stop()
    await host.shutdown()


async def _process_metrics(app: web.Application) -> AsyncIterator[None]:
    process = app[METRICS].process
    assert process is not None
    refreshing = asyncio.create_task(process.refresh_periodically())
    yield
    refreshing.cancel()
