"""The MindsDB client's log through an outage: one warning naming where MindsDB was
expected when it stops answering, one line when it is back, nothing per retry.

No MindsDB is needed: a closed port is an outage, and a small HTTP server on that port
answering like MindsDB's ``/api/sql/query`` is its return.
"""

from __future__ import annotations

import logging

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from weaver_mindsdb.client import MindsDBClient, MindsDBUnreachable
from weaver_mindsdb.testing import free_port

LOGGER = "weaver_mindsdb.client"


async def answer_ok(request: web.Request) -> web.Response:
    return web.json_response({"type": "ok"})


def mindsdb_like() -> web.Application:
    app = web.Application()
    app.router.add_post("/api/sql/query", answer_ok)
    return app


def outage_lines(caplog: pytest.LogCaptureFixture) -> list[tuple[int, str]]:
    return [(r.levelno, r.getMessage()) for r in caplog.records if r.name == LOGGER]


async def test_an_outage_is_logged_once_with_the_url_and_its_end(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger=LOGGER)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    async with aiohttp.ClientSession() as session:
        client = MindsDBClient(url, session)
        for _ in range(3):
            with pytest.raises(MindsDBUnreachable) as unreachable:
                await client.sql("SELECT 1")
            # What callers see names no address; the operator's log does.
            assert "127.0.0.1" not in str(unreachable.value)
        (warning,) = outage_lines(caplog)
        assert warning[0] == logging.WARNING
        assert f"MindsDB at {url} is unreachable" in warning[1]

        server = TestServer(mindsdb_like(), host="127.0.0.1", port=port)
        await server.start_server()
        try:
            assert await client.sql("SELECT 1") is None
            assert await client.sql("SELECT 1") is None
        finally:
            await server.close()
        assert outage_lines(caplog)[1:] == [(logging.INFO, f"MindsDB at {url} answers again")]

        # A second outage is a second warning.
        with pytest.raises(MindsDBUnreachable):
            await client.sql("SELECT 1")
        assert len(outage_lines(caplog)) == 3
        assert outage_lines(caplog)[2][0] == logging.WARNING


async def test_credentials_in_the_url_are_not_logged(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger=LOGGER)
    async with aiohttp.ClientSession() as session:
        client = MindsDBClient(f"http://weaver:s3cret@127.0.0.1:{free_port()}", session)
        with pytest.raises(MindsDBUnreachable):
            await client.sql("SELECT 1")
    (warning,) = outage_lines(caplog)
    assert "s3cret" not in warning[1] and "127.0.0.1" in warning[1]
