"""A small client for MindsDB's HTTP API (``/api/sql/query``, ``/api/status``, ``/api/login``).

MindsDB answers a SQL request with HTTP 200 whether it worked or not; the body's ``type``
says which (``table``, ``ok`` or ``error``). This module turns those answers into values
and three exceptions; it knows nothing about tenants or datasources.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any

import aiohttp
from yarl import URL

log = logging.getLogger(__name__)


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
    ) -> None:
        self.base_url = base_url.rstrip("/")
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
            message = body.get("error_message") if isinstance(body, dict) else None
            raise MindsDBError(str(message or f"MindsDB answered HTTP {status}"))
        if status >= 400 or not isinstance(body, dict):
            raise MindsDBUnreachable(f"MindsDB answered HTTP {status} to {method} {path}")
        return body

    async def _send(
        self, method: str, path: str, payload: object, token: str | None
    ) -> tuple[int, object]:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        try:
            async with self.session.request(
                method, self.base_url + path, json=payload, headers=headers
            ) as response:
                try:
                    body: object = await response.json(content_type=None)
                except ValueError:
                    body = None
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
        return response.status, body

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
