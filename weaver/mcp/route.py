"""``/mcp`` in the aiohttp app: the route, and the SDK's session manager for its lifetime.

The manager runs *stateless*: every POST is a whole exchange, answered as JSON, with no
session kept in this process — any gateway process behind a load balancer can answer
any request, as for ``/api``. The request reaches the handler after the gateway's
middleware (token, tenant, rate limit, metrics, traces), like an ``/api`` request; the
handler passes the verified caller to the tools in the ASGI scope.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from aiohttp import web
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
from mcp.server.transport_security import TransportSecuritySettings

from weaver.errors import Forbidden
from weaver.keys import HOST, QUERIES, SETTINGS, principal_of
from weaver.mcp import asgi
from weaver.mcp.tools import PRINCIPAL_SCOPE_KEY, build_server

PATH = "/mcp"
MANAGER = web.AppKey("mcp_session_manager", StreamableHTTPSessionManager)


def install(app: web.Application) -> None:
    """Add ``/mcp`` to ``app`` (built with its host and query service)."""
    server = build_server(app[HOST], app[QUERIES])
    server.streamable_http_app(
        streamable_http_path=PATH,
        json_response=True,
        stateless_http=True,
        max_request_body_size=app[SETTINGS].max_body_bytes,
        # Host and Origin checks guard servers that trust whoever reaches them; this
        # one answers only requests carrying a tenant's token, and CORS is the
        # gateway's.
        transport_security=TransportSecuritySettings(enable_dns_rebinding_protection=False),
    )
    app[MANAGER] = server.session_manager
    for method in ("GET", "POST", "DELETE"):
        app.router.add_route(method, PATH, handle)
    app.cleanup_ctx.append(_running)


async def handle(request: web.Request) -> web.StreamResponse:
    principal = principal_of(request)
    if not principal.can("viewer"):
        raise Forbidden("the MCP tools need the 'viewer' role")
    manager = request.app[MANAGER]
    return await asgi.serve(manager.handle_request, request, {PRINCIPAL_SCOPE_KEY: principal})


async def _running(app: web.Application) -> AsyncIterator[None]:
    # The manager's task group must be left in the task that entered it, and aiohttp
    # may start and clean up an app in two different tasks: so it lives in its own.
    started, stopping = asyncio.Event(), asyncio.Event()

    async def run() -> None:
        async with app[MANAGER].run():
            started.set()
            await stopping.wait()

    task = asyncio.create_task(run(), name="weaver-mcp")
    waiting = asyncio.ensure_future(started.wait())
    await asyncio.wait([task, waiting], return_when=asyncio.FIRST_COMPLETED)
    waiting.cancel()
    if task.done():
        task.result()  # it failed to start: say why
    yield
    stopping.set()
    await task
