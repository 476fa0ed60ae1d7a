"""One aiohttp request handed to an ASGI application, and its answer handed back.

The MCP SDK serves streamable HTTP as an ASGI application (`StreamableHTTPSessionManager`)
and the gateway is an aiohttp application. Serving MCP beside it (a second server, or a
Starlette app in front) would put ``/mcp`` outside the gateway's middleware — the token
check and tenant binding, the rate limit, metrics, traces, request ids — and so outside
what every ``/api`` request gets. So ``/mcp`` is an aiohttp route like the others, and its
handler, once the middleware ran, hands the request to the SDK here. What the SDK's
transport uses of ASGI for one request is small — the body, a response that may stream,
a disconnect — and this is all of it, which a general ASGI-in-aiohttp adapter would add a
dependency (and a sub-application with a lifespan of its own) for.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from aiohttp import web

from weaver.errors import QueryCancelled

Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[MutableMapping[str, Any], Receive, Send], Awaitable[None]]

# How often a request waits to see whether its client is still there (aiohttp does not
# cancel a handler when the client goes away).
DISCONNECT_POLL_SECONDS = 0.25


def _scope(request: web.Request, extra: dict[str, Any]) -> dict[str, Any]:
    transport = request.transport
    peer = transport.get_extra_info("peername") if transport is not None else None
    sock = transport.get_extra_info("sockname") if transport is not None else None
    return {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": f"{request.version.major}.{request.version.minor}",
        "method": request.method,
        "scheme": request.scheme,
        "path": request.path,
        "raw_path": request.raw_path.split("?", 1)[0].encode(),
        "query_string": request.query_string.encode(),
        "root_path": "",
        "headers": [(name.lower(), value) for name, value in request.raw_headers],
        "client": tuple(peer[:2]) if isinstance(peer, tuple) else None,
        "server": tuple(sock[:2]) if isinstance(sock, tuple) else None,
        "state": {},
        **extra,
    }


async def serve(app: ASGIApp, request: web.Request, extra: dict[str, Any]) -> web.StreamResponse:
    """Run ``app`` for ``request``; ``extra`` goes into the ASGI scope (what the
    middleware established: the caller). When the client goes away the application is
    cancelled, as a disconnected client's query is."""
    body = await request.read()
    delivered = False
    finished = asyncio.Event()
    response: web.StreamResponse | None = None

    async def receive() -> Message:
        nonlocal delivered
        if not delivered:
            delivered = True
            return {"type": "http.request", "body": body, "more_body": False}
        await finished.wait()
        return {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        nonlocal response
        if message["type"] == "http.response.start":
            response = web.StreamResponse(status=message["status"])
            for name, value in message.get("headers", ()):
                response.headers.add(name.decode("latin-1"), value.decode("latin-1"))
            return
        if message["type"] != "http.response.body" or response is None:
            return
        if not response.prepared:
            await response.prepare(request)
        chunk = message.get("body", b"")
        if chunk:
            await response.write(chunk)
        if not message.get("more_body", False):
            await response.write_eof()
            finished.set()

    running = asyncio.ensure_future(app(_scope(request, extra), receive, send))
    watcher = asyncio.ensure_future(_watch_client(request, running))
    try:
        await running
    except asyncio.CancelledError:
        task = asyncio.current_task()
        if task is None or task.cancelling():
            raise  # the server stops this request: not the client's doing
        raise QueryCancelled("the request was cancelled: its client went away") from None
    finally:
        finished.set()
        watcher.cancel()
        if not running.done():
            running.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await running
    if response is None:
        raise RuntimeError("the MCP application answered nothing")
    return response


async def _watch_client(request: web.Request, running: asyncio.Future[None]) -> None:
    while not running.done():
        await asyncio.sleep(DISCONNECT_POLL_SECONDS)
        transport = request.transport
        if transport is None or transport.is_closing():
            running.cancel()
            return
