"""How the gateway meets the network: aiohttp's HTTP layer, with the errors it answers by
itself in the contract's shape.

aiohttp answers a request it cannot parse (an over-long line or header, too many headers,
a Content-Length beside a Transfer-Encoding, a content coding it cannot decode) below the
application: no middleware or signal sees it, the answer is ``text/plain`` quoting the
input, and a traceback is logged at ERROR for each one, so any client can flood the log
(aio-libs/aiohttp#3287 asks for a hook; there is none). `ProblemRequestHandler` answers
those as problem+json quoting at most a short excerpt, and logs one line without a
traceback. `weaver serve` runs through `serve`, the tests' client through
`weaver.testing.GatewayTestServer`: both serve with `GatewayRunner`, so both answer alike.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from http import HTTPStatus
from typing import Any

from aiohttp import web
from aiohttp.http_exceptions import (
    BadHttpMethod,
    ContentEncodingError,
    HttpProcessingError,
    InvalidHeader,
    LineTooLong,
)
from aiohttp.web_request import BaseRequest

from weaver import errors
from weaver.middleware import new_request_id
from weaver.responses import problem_response

log = logging.getLogger("weaver.http")

# The most of aiohttp's own description of a malformed request an answer repeats: it
# quotes what was sent (a header's value, a token), which an answer must not echo whole.
_EXCERPT_CHARS = 80


def malformed(exc: BaseException | None) -> errors.Problem:
    """The problem for a request aiohttp's parser refused."""
    if isinstance(exc, LineTooLong):
        return errors.BadRequest(f"the request line or a header is longer than {exc.args[1]} bytes")
    if isinstance(exc, BadHttpMethod):
        return errors.BadRequest(
            "the request does not start with an HTTP method (HTTPS sent to an HTTP port?)"
        )
    if isinstance(exc, InvalidHeader):
        return errors.BadRequest("a header of the request is malformed")
    if isinstance(exc, ContentEncodingError):
        # Raised while reading the headers: a coding aiohttp knows but cannot decode here
        # (br and zstd need optional packages; zlib's two are always there).
        return errors.UnsupportedMediaType(
            "the body's Content-Encoding is not one this server decodes",
            headers={"Accept-Encoding": "gzip, deflate"},
        )
    text = exc.message if isinstance(exc, HttpProcessingError) else ""
    # llhttp's descriptions put the input on the lines after the first.
    first = text.strip().splitlines()[0].rstrip(":") if text.strip() else ""
    if len(first) > _EXCERPT_CHARS:
        first = first[: _EXCERPT_CHARS - 1] + "…"
    return errors.BadRequest(
        f"the request is not well-formed HTTP: {first}" if first else "malformed request"
    )


class ProblemRequestHandler(web.RequestHandler):
    """aiohttp's per-connection protocol, answering its own errors as problems."""

    __slots__ = ()

    def handle_error(
        self,
        request: BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        if request.writer.output_size > 0:
            # As aiohttp's own: once the answer has started, only a broken connection can
            # tell the client something went wrong.
            raise ConnectionError("the response has started; no error answer can follow")
        request_id = new_request_id()
        problem: errors.Problem
        if status >= 500:
            # A fault of the gateway (an error that escaped every middleware), not the
            # client's: worth its traceback.
            log.error(
                "unhandled error below the application",
                exc_info=exc,
                extra={"request_id": request_id, "status": status},
            )
            problem = errors.Problem("an unexpected error occurred; quote the request id")
            problem.status, problem.title = status, HTTPStatus(status).phrase
        else:
            problem = malformed(exc)
            log.info(
                "malformed request from %s answered %d: %s",
                request.remote,
                problem.status,
                problem.detail,
                extra={"request_id": request_id, "status": problem.status},
            )
        response = problem_response(problem, request_id)
        response.headers["X-Request-Id"] = request_id
        response.force_close()
        return response

    def log_exception(self, *args: Any, **kw: Any) -> None:
        exc = kw.get("exc_info")
        if isinstance(exc, web.RequestPayloadError | HttpProcessingError):
            # After the answer aiohttp reads what is left of the body, and a body that
            # does not decode raises there again: the client's mistake, already answered.
            log.info("discarded the rest of a malformed request body: %s", type(exc).__name__)
            return
        super().log_exception(*args, **kw)


class GatewayServer(web.Server):
    """aiohttp's low-level server, with a `ProblemRequestHandler` per connection."""

    @classmethod
    def like(cls, built: web.Server) -> GatewayServer:
        """The server aiohttp built for an app (its handler, request factory and
        per-connection settings), as a `GatewayServer`: aiohttp offers no setting for the
        protocol class, so the built one's settings are read where it keeps them."""
        return cls(
            built.request_handler,
            request_factory=built.request_factory,
            handler_cancellation=built.handler_cancellation,
            loop=built._loop,
            **built._kwargs,
        )

    def __call__(self) -> web.RequestHandler:
        return ProblemRequestHandler(self, loop=self._loop, **self._kwargs)


class GatewayRunner(web.AppRunner):
    """`web.AppRunner` serving through `GatewayServer`."""

    async def _make_server(self) -> web.Server:
        return GatewayServer.like(await super()._make_server())


def serve(
    app: web.Application,
    *,
    host: str,
    port: int,
    reuse_port: bool,
    keepalive_timeout: float,
    on_ready: Callable[[], None],
    loop_factory: Callable[[], asyncio.AbstractEventLoop],
) -> None:
    """What `web.run_app` does, with `GatewayRunner`: serve until SIGINT or SIGTERM, then
    shut down (running queries end, plugins stop) before returning."""

    async def run() -> None:
        runner = GatewayRunner(
            app, handle_signals=True, access_log=None, keepalive_timeout=keepalive_timeout
        )
        await runner.setup()
        try:
            await web.TCPSite(runner, host, port, reuse_port=reuse_port or None).start()
            on_ready()
            await asyncio.Event().wait()
        finally:
            await runner.cleanup()

    # The signal handlers raise GracefulExit out of the loop; closing the runner then
    # cancels `run`, whose cleanup runs before the loop closes.
    with (
        asyncio.Runner(loop_factory=loop_factory) as runner,
        contextlib.suppress(web.GracefulExit, KeyboardInterrupt),
    ):
        runner.run(run())
