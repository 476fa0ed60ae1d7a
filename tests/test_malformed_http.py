"""Requests aiohttp refuses below the application (its parser's limits, a body it cannot
decode) are answered as problems quoting at most a short excerpt of what was sent, and
logged without a traceback: through the test client and through a real `weaver serve`."""

from __future__ import annotations

import asyncio
import gzip
import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest

from tests.conftest import assert_problem
from tests.serving import Serving, production_environment
from weaver.testing import free_port
from weaver.testing.harness import wait_until_live

# What a client sends that it must not get back whole: a token of 9000 characters.
SECRET = "eyJzZWNyZXQiOiJ0b2tlbiJ9" * 375
BODY = b'{"sql": "SELECT 1"}'


def request(*lines: str, body: bytes = b"") -> bytes:
    head = "\r\n".join(["POST /api/query HTTP/1.1", "Host: gateway", *lines, "", ""])
    return head.encode() + body


MALFORMED: dict[str, bytes] = {
    "header too long": request(f"Authorization: Bearer {SECRET}", "Content-Length: 0"),
    "request line too long": f"GET /{SECRET} HTTP/1.1\r\nHost: gateway\r\n\r\n".encode(),
    "too many headers": request(*(f"X-Filler-{i}: {SECRET[:40]}" for i in range(200))),
    "length and chunked": request(
        "Content-Length: 19", "Transfer-Encoding: chunked", body=b"13\r\n" + BODY + b"\r\n0\r\n\r\n"
    ),
    "not http": b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + SECRET.encode()[:200],
    "coding not decodable here": request(
        "Content-Type: application/json",
        "Content-Encoding: br",
        f"Content-Length: {len(BODY)}",
        body=BODY,
    ),
}
# Bodies whose Content-Encoding does not match them: aiohttp refuses them as the handler
# reads, which used to be a 500.
MISLABELLED: dict[str, bytes] = {
    coding: request(
        "Authorization: Bearer {token}",
        "Content-Type: application/json",
        f"Content-Encoding: {coding}",
        f"Content-Length: {len(BODY)}",
        body=BODY,
    )
    for coding in ("gzip", "deflate")
}


async def exchange(port: int, data: bytes) -> tuple[int, dict[str, str], bytes]:
    """Send raw bytes; the status, headers and body the server answered."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(data)
        await writer.drain()
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
        status_line, *header_lines = head.decode("latin-1").split("\r\n")
        headers = {}
        for line in filter(None, header_lines):
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        body = await asyncio.wait_for(reader.readexactly(int(headers["content-length"])), 10)
    finally:
        writer.close()
    return int(status_line.split()[1]), headers, body


def assert_short_problem(status: int, headers: dict[str, str], body: bytes) -> dict[str, Any]:
    assert 400 <= status < 500, (status, body)
    assert headers["content-type"].startswith("application/problem+json"), headers
    assert headers["x-request-id"]
    problem: dict[str, Any] = json.loads(body)
    assert_problem(problem, status)
    assert problem["request_id"] == headers["x-request-id"]
    # A short excerpt at most: never the token, never a long run of what was sent.
    assert SECRET[:40] not in body.decode(), problem
    assert len(body) < 400, problem
    return problem


def tracebacks(records: list[logging.LogRecord]) -> list[str]:
    return [r.getMessage() for r in records if r.exc_info or r.levelno >= logging.ERROR]


@pytest.mark.parametrize("case", sorted(MALFORMED))
async def test_parser_refusals_are_short_problems(
    client: Any, case: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    status, headers, body = await exchange(client.port, MALFORMED[case])
    assert_short_problem(status, headers, body)
    assert not tracebacks(caplog.records)
    assert any("malformed request" in r.getMessage() for r in caplog.records)


async def test_over_long_header_names_the_limit(client: Any) -> None:
    status, headers, body = await exchange(client.port, MALFORMED["header too long"])
    problem = assert_short_problem(status, headers, body)
    assert status == 400 and "8190 bytes" in problem["detail"]


async def test_a_coding_the_server_cannot_decode_is_415_with_accept_encoding(client: Any) -> None:
    status, headers, body = await exchange(client.port, MALFORMED["coding not decodable here"])
    assert_short_problem(status, headers, body)
    # br is decoded only where the Brotli package is installed; then the body (which is not
    # brotli) fails to decode instead.
    assert status in (400, 415)
    if status == 415:
        assert "gzip" in headers["accept-encoding"]


@pytest.mark.parametrize("coding", sorted(MISLABELLED))
async def test_a_body_not_in_its_content_encoding_is_400(
    client: Any, auth: Any, coding: str, caplog: pytest.LogCaptureFixture
) -> None:
    token = auth()["Authorization"].removeprefix("Bearer ")
    status, headers, body = await exchange(
        client.port, MISLABELLED[coding].replace(b"{token}", token.encode())
    )
    problem = assert_short_problem(status, headers, body)
    assert status == 400, problem
    assert not tracebacks(caplog.records)


async def test_a_real_gzip_body_is_read(client: Any, auth: Any) -> None:
    response = await client.post(
        "/api/query",
        data=gzip.compress(BODY),
        headers={**auth(), "Content-Type": "application/json", "Content-Encoding": "gzip"},
    )
    assert response.status == 200, await response.text()


async def test_a_coding_nothing_decodes_is_415(client: Any, auth: Any) -> None:
    response = await client.post(
        "/api/query",
        data=BODY,
        headers={**auth(), "Content-Type": "application/json", "Content-Encoding": "compress"},
    )
    assert response.status == 415
    assert_problem(await response.json(content_type=None), 415)
    assert "gzip" in response.headers["Accept-Encoding"]


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[int, Serving]]:
    """One production `weaver serve` for the module (JSON log lines, to read levels)."""
    data_dir = tmp_path_factory.mktemp("served")
    port = free_port()
    server = Serving(port, production_environment(data_dir), data_dir / "weaver.log")
    try:
        wait_until_live(f"http://127.0.0.1:{port}/health/live", server)
        yield port, server
    finally:
        server.stop()


@pytest.mark.parametrize("case", sorted(MALFORMED))
async def test_weaver_serve_answers_malformed_requests_as_problems(
    served: tuple[int, Serving], case: str
) -> None:
    port, server = served
    status, headers, body = await exchange(port, MALFORMED[case])
    assert_short_problem(status, headers, body)
    # The gateway still serves, and said so in one line, without a traceback.
    status, _, _ = await exchange(port, b"GET /health/live HTTP/1.1\r\nHost: g\r\n\r\n")
    assert status == 200
    lines = [json.loads(line) for line in server.log.read_text().splitlines() if line]
    assert not [line for line in lines if line["level"] == "ERROR" or "exception" in line]
    assert any("malformed request" in line["message"] for line in lines)
