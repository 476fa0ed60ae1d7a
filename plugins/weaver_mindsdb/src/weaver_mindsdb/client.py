"""A small client for MindsDB's HTTP API (``/api/sql/query``, ``/api/status``,
``/api/login``, ``/api/util/ping``).

MindsDB answers a SQL request with HTTP 200 whether it worked or not; the body's ``type``
says which (``table``, ``ok`` or ``error``). This module turns those answers into values
and three exceptions; it knows nothing about tenants or datasources. A statement's rows
can also be asked for as ``jsonlines`` (`MindsDBClient.open_answer`), which MindsDB 26.1
accepts though it does not document it: the answer is then read as it comes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import aiohttp
import orjson
from yarl import URL

log = logging.getLogger(__name__)


# MindsDB's content types for ``"response_format": "jsonlines"`` and for a whole answer.
JSONLINES = "application/jsonlines"
JSON = "application/json"
# The most read of an answer that is not a stream (an error page), to find its message.
ERROR_BODY_BYTES = 64 * 1024


class MindsDBError(Exception):
    """MindsDB ran the request and refused it (``type: error``, or an HTTP 5xx).

    The message is MindsDB's, raw: it may name internal databases and quote parameters.
    """

    def __init__(self, message: str, code: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.code = code


class MindsDBUnreachable(Exception):
    """No answer from MindsDB at all: refused connection, reset, unparseable reply."""


class MindsDBAuthFailed(MindsDBUnreachable):
    """MindsDB refused Weaver's own credentials (``MINDSDB_USER``/``MINDSDB_PASSWORD``)."""


@dataclass(frozen=True, slots=True)
class Table:
    """A ``type: table`` answer."""

    column_names: list[str]
    data: list[list[Any]]

    def records(self) -> list[dict[str, Any]]:
        """Rows keyed by lower-cased column name (MindsDB keeps the source's case)."""
        names = [name.lower() for name in self.column_names]
        return [dict(zip(names, row, strict=True)) for row in self.data]


class MindsDBClient:
    """One MindsDB server, through one pooled session.

    With ``user`` set, a bearer token is fetched from ``/api/login`` on first use and
    fetched again once when a request answers 401 (the token expired or MindsDB restarted).
    """

    def __init__(
        self,
        base_url: str,
        session: aiohttp.ClientSession,
        *,
        user: str = "",
        password: str = "",
        ping_session: aiohttp.ClientSession | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        # The ping's own connections: the pool may be taken by long answers.
        self.ping_session = ping_session or session
        # For the log: where MindsDB was expected, without any credentials in the URL.
        self.shown_url = str(URL(self.base_url).with_user(None))
        self.session = session
        # An outage is logged once when it starts and once when it ends, not per request.
        self._reachable = True
        self._user = user
        self._password = password
        self._token: str | None = None
        self._login_lock = asyncio.Lock()

    async def sql(self, query: str) -> Table | None:
        """Run one statement; the table it answered, or None for ``type: ok``."""
        body = await self._request("POST", "/api/sql/query", {"query": query})
        kind = body.get("type")
        if kind == "table":
            columns = body.get("column_names") or []
            data = body.get("data") or []
            return Table([str(c) for c in columns], [list(row) for row in data])
        if kind == "ok":
            return None
        if kind == "error":
            code = body.get("error_code")
            raise MindsDBError(
                str(body.get("error_message") or "error without a message"),
                code if isinstance(code, int) else None,
            )
        raise MindsDBUnreachable(f"unexpected answer type {kind!r} from MindsDB")

    async def status(self) -> dict[str, Any]:
        """``GET /api/status``: the version and the auth settings."""
        return await self._request("GET", "/api/status", None)

    async def ping(self) -> None:
        """``GET /api/util/ping``: MindsDB's process answers. Served outside the pool of
        threads every other request waits for, and without a login, so it answers at once
        even while every worker is busy with a long query."""
        url = self.base_url + "/api/util/ping"
        async with self._reaching(), self.ping_session.get(url) as response:
            await response.read()
        if response.status != 200:
            raise MindsDBUnreachable(f"MindsDB answered HTTP {response.status} to its ping")

    async def open_answer(self, query: str, *, lines: bool) -> aiohttp.ClientResponse:
        """Send one statement, asking for a ``jsonlines`` answer or a whole one; the
        response once MindsDB has started it, its body unread, for the caller to read
        (`weaver_mindsdb.lines`) and close. MindsDB has planned the statement (and
        declared the source's cursor) before it answers at all; ``type: error`` comes as
        the first line, or as the whole body."""
        if self._user and self._token is None:
            await self._login(stale=None)
        token = self._token
        response = await self._post_query(query, token, lines)
        if response.status == 401 and self._user:
            response.release()
            await self._login(stale=token)
            response = await self._post_query(query, self._token, lines)
        if response.status == 200 and response.content_type == (JSONLINES if lines else JSON):
            return response
        status = response.status
        try:
            raw = await response.content.read(ERROR_BODY_BYTES)
        except aiohttp.ClientError:
            raw = b""
        finally:
            response.close()
        if status == 401:
            raise MindsDBAuthFailed("MindsDB asks for credentials; set MINDSDB_USER/PASSWORD")
        message = _error_message(raw)
        if message is not None or status >= 500:
            raise MindsDBError(message or f"MindsDB answered HTTP {status}")
        raise MindsDBUnreachable(f"MindsDB answered HTTP {status} to a query")

    async def _post_query(
        self, query: str, token: str | None, lines: bool
    ) -> aiohttp.ClientResponse:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        payload = {"query": query, "response_format": "jsonlines"} if lines else {"query": query}
        async with self._reaching():
            return await self.session.post(
                self.base_url + "/api/sql/query", json=payload, headers=headers
            )

    async def _request(self, method: str, path: str, payload: object) -> dict[str, Any]:
        if self._user and self._token is None:
            await self._login(stale=None)
        token = self._token
        status, body = await self._send(method, path, payload, token)
        if status == 401 and self._user:
            await self._login(stale=token)
            status, body = await self._send(method, path, payload, self._token)
        if status == 401:
            raise MindsDBAuthFailed("MindsDB asks for credentials; set MINDSDB_USER/PASSWORD")
        if isinstance(body, dict) and body.get("type") == "error":
            return body
        if status >= 500:
            message = _message_of(body)
            raise MindsDBError(message or f"MindsDB answered HTTP {status}")
        if status >= 400 or not isinstance(body, dict):
            raise MindsDBUnreachable(f"MindsDB answered HTTP {status} to {method} {path}")
        return body

    async def _send(
        self, method: str, path: str, payload: object, token: str | None
    ) -> tuple[int, object]:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        async with (
            self._reaching(),
            self.session.request(
                method, self.base_url + path, json=payload, headers=headers
            ) as response,
        ):
            try:
                body: object = await response.json(content_type=None)
            except ValueError:
                body = None
        return response.status, body

    @contextlib.asynccontextmanager
    async def _reaching(self) -> AsyncIterator[None]:
        """A request to MindsDB: no answer at all becomes `MindsDBUnreachable`, and an
        outage is logged once when it starts and once when it ends."""
        try:
            yield
        except (aiohttp.ClientError, OSError) as error:
            # Timeouts are the caller's (asyncio.timeout): they are not caught here.
            if self._reachable:
                self._reachable = False
                log.warning(
                    "MindsDB at %s is unreachable (%s); requests that need it fail until it "
                    "answers again",
                    self.shown_url,
                    str(error) or type(error).__name__,
                )
            raise MindsDBUnreachable(f"MindsDB is unreachable: {type(error).__name__}") from error
        if not self._reachable:
            self._reachable = True
            log.info("MindsDB at %s answers again", self.shown_url)

    async def _login(self, *, stale: str | None) -> None:
        async with self._login_lock:
            if self._token is not None and self._token != stale:
                return  # another request logged in while this one waited
            status, body = await self._send(
                "POST",
                "/api/login",
                {"username": self._user, "password": self._password},
                None,
            )
            token = body.get("token") if isinstance(body, dict) else None
            if status != 200 or not isinstance(token, str):
                self._token = None
                raise MindsDBAuthFailed(f"MindsDB refused Weaver's login (HTTP {status})")
            self._token = token


def _message_of(body: object) -> str | None:
    """The message of an error body: ``type: error`` answers carry ``error_message``, the
    HTTP 500 pages of 26.1 ``detail`` (``{"title": "OperationalError", "detail": ...}``)."""
    if not isinstance(body, dict):
        return None
    for key in ("error_message", "detail", "message"):
        if body.get(key):
            return str(body[key])
    return None


def _error_message(raw: bytes) -> str | None:
    """The message of an answer that is not a stream: a JSON body, or its first line."""
    for candidate in (raw, raw.split(b"\n", 1)[0]):
        try:
            message = _message_of(orjson.loads(candidate))
        except orjson.JSONDecodeError:
            continue
        if message is not None:
            return message
    return None
