"""Trino's client protocol (``POST /v1/statement``, follow ``nextUri``, ``DELETE`` it to
cancel) on one pooled aiohttp session.

Written here rather than taken from a library: the official ``trino`` client is
synchronous (DB-API over requests), so every page would hold a thread; ``aiotrino``, its
asyncio port (last release 2025-03, untyped), writes each connection's headers onto the
aiohttp session it is given, so concurrent statements on one shared, pooled session
would overwrite each other's tags and users. The protocol itself is three verbs and a
JSON page; this module speaks it and knows nothing about tenants or datasources.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import aiohttp
import orjson
from yarl import URL

log = logging.getLogger(__name__)

# Trino answers 503 while the coordinator is overloaded or starting; the protocol lets a
# client send the same request again (nextUri carries a token, so a page is never lost).
BUSY_STATUSES = frozenset({502, 503, 504})
BUSY_RETRIES = 5
BUSY_FIRST_DELAY = 0.05


class TrinoUnreachable(Exception):
    """No usable answer from the coordinator: refused or reset connection, a reply that is
    not the protocol's, or a coordinator still busy after retries."""


class TrinoLoginRefused(TrinoUnreachable):
    """The coordinator refused Weaver's own credentials (``TRINO_USER``/``TRINO_PASSWORD``)."""


class TrinoQueryError(Exception):
    """Trino ran the statement and it failed. ``kind`` is Trino's ``errorType``
    (``USER_ERROR``, ``INTERNAL_ERROR``, ``INSUFFICIENT_RESOURCES``, ``EXTERNAL``), ``name``
    its ``errorName``; ``message`` is Trino's, raw: it may name catalogs."""

    def __init__(self, error: Mapping[str, Any], query_id: str | None) -> None:
        self.name = str(error.get("errorName") or "UNKNOWN")
        self.kind = str(error.get("errorType") or "INTERNAL_ERROR")
        self.message = str(error.get("message") or self.name)
        self.query_id = query_id
        super().__init__(f"{self.name}: {self.message}")


@dataclass(frozen=True, slots=True)
class Column:
    """A result column: its name, Trino's type name (``decimal(38, 2)``) and the type's
    raw name (``decimal``), which decides how its values are read."""

    name: str
    type: str
    raw_type: str


class TrinoClient:
    """One Trino coordinator. Every request names ``user`` (``X-Trino-User``); with a
    ``password``, HTTP basic auth goes along (the caller makes sure that is over https)."""

    def __init__(
        self,
        base_url: str,
        session: aiohttp.ClientSession,
        *,
        user: str,
        password: str = "",
        source: str = "weaver",
    ) -> None:
        self.base_url = base_url.rstrip("/")
        # For the log: where Trino was expected, without credentials.
        self.shown_url = str(URL(self.base_url).with_user(None))
        self.session = session
        self.auth = aiohttp.BasicAuth(user, password) if password else None
        # Built once: a query makes 6-24 requests, each of which sends these.
        self.headers: dict[str, str] = {
            "X-Trino-User": user,
            "X-Trino-Source": source,
            # Timestamps with their real precision (not cut to milliseconds), and one
            # session time zone whatever the coordinator's own is.
            "X-Trino-Client-Capabilities": "PARAMETRIC_DATETIME",
            "X-Trino-Time-Zone": "UTC",
        }
        self._reachable = True

    def statement(
        self, sql: str, *, client_info: str | None = None, tags: Iterable[str] = ()
    ) -> Statement:
        """A statement not sent yet (`Statement.start`); ``client_info`` and ``tags`` name
        it in Trino's query list."""
        headers = dict(self.headers)
        if client_info:
            headers["X-Trino-Client-Info"] = client_info
        tag_list = ",".join(tags)
        if tag_list:
            headers["X-Trino-Client-Tags"] = tag_list
        return Statement(self, sql, headers)

    async def execute(self, sql: str) -> tuple[list[Column], list[list[Any]]]:
        """Run ``sql`` to the end and answer its columns and every row: for the gateway's
        own statements (catalogs, introspection), never for tenant results."""
        statement = self.statement(sql)
        rows = await statement.start()
        while not statement.finished:
            rows.extend(await statement.advance())
        return list(statement.columns or []), rows

    async def get_json(self, path: str) -> Any:
        """``GET`` a REST resource of the coordinator (``/v1/info``, ``/v1/query/{id}``)."""
        return await self.request("GET", self.base_url + path, self.headers)

    async def request(
        self, method: str, url: str, headers: Mapping[str, str], data: bytes | None = None
    ) -> Any:
        """One protocol request and its JSON answer (``None`` for an empty body), sent
        again while the coordinator says it is busy."""
        delay = BUSY_FIRST_DELAY
        for attempt in range(BUSY_RETRIES + 1):
            status, body = await self._send(method, url, headers, data)
            if status not in BUSY_STATUSES or attempt == BUSY_RETRIES:
                break
            await asyncio.sleep(delay)
            delay *= 2
        if status in (401, 403):
            raise TrinoLoginRefused(
                f"Trino refused Weaver's credentials (HTTP {status}); check TRINO_USER "
                "and TRINO_PASSWORD"
            )
        if status >= 400:
            raise TrinoUnreachable(f"Trino answered HTTP {status} to {method}")
        if not body:
            return None
        try:
            return orjson.loads(body)
        except orjson.JSONDecodeError:
            raise TrinoUnreachable(f"Trino answered {method} with something not JSON") from None

    async def _send(
        self, method: str, url: str, headers: Mapping[str, str], data: bytes | None
    ) -> tuple[int, bytes]:
        try:
            async with self.session.request(
                method, url, headers=headers, data=data, auth=self.auth
            ) as response:
                body = await response.read()
        except (aiohttp.ClientError, OSError) as error:
            # Timeouts are the caller's (asyncio.timeout): they are not caught here.
            if self._reachable:
                self._reachable = False
                log.warning(
                    "Trino at %s is unreachable (%s); requests that need it fail until it "
                    "answers again",
                    self.shown_url,
                    str(error) or type(error).__name__,
                )
            raise TrinoUnreachable(f"Trino is unreachable: {type(error).__name__}") from error
        if not self._reachable:
            self._reachable = True
            log.info("Trino at %s answers again", self.shown_url)
        return response.status, body


class Statement:
    """One statement on the coordinator, page by page.

    `start` posts it, `advance` fetches the next page (its rows, possibly none while the
    query is queued or running), `cancel` deletes it. The columns are known from the first
    page that carries them; ``finished`` once a page has no ``nextUri``.
    """

    def __init__(self, client: TrinoClient, sql: str, headers: Mapping[str, str]) -> None:
        self._client = client
        self._sql = sql
        self._headers = headers
        self.query_id: str | None = None
        self.columns: list[Column] | None = None
        self.state = "NEW"
        self.finished = False
        self.cancelled = False
        self._next_uri: str | None = None

    async def start(self) -> list[list[Any]]:
        page = await self._client.request(
            "POST", self._client.base_url + "/v1/statement", self._headers, self._sql.encode()
        )
        rows = self._absorb(page)
        if self.cancelled:
            # Cancelled while the POST was on its way: Trino has the query now.
            await self._delete()
        return rows

    async def advance(self) -> list[list[Any]]:
        if self._next_uri is None:
            self.finished = True
            return []
        return self._absorb(await self._client.request("GET", self._next_uri, self._headers))

    async def cancel(self) -> bool:
        """Ask Trino to stop the query; whether there was one to stop. Safe to call at any
        time, more than once, and from another task than the one reading pages."""
        if self.finished:
            return False
        self.cancelled = True
        if self._next_uri is None:
            return self.query_id is None  # not posted yet: `start` deletes it on arrival
        return await self._delete()

    async def _delete(self) -> bool:
        uri, self._next_uri = self._next_uri, None
        self.finished = True
        if uri is None:
            return False
        try:
            await self._client.request("DELETE", uri, self._headers)
        except TrinoUnreachable as error:
            log.warning("could not cancel Trino query %s: %s", self.query_id, error)
            return False
        return True

    def _absorb(self, page: Any) -> list[list[Any]]:
        if not isinstance(page, dict) or "id" not in page:
            raise TrinoUnreachable("Trino answered a statement request with no query in it")
        self.query_id = str(page["id"])
        self.state = str(page.get("stats", {}).get("state", self.state))
        if self.columns is None and page.get("columns"):
            self.columns = [_column(c) for c in page["columns"]]
        error = page.get("error")
        self._next_uri = page.get("nextUri")
        if error is not None:
            self._next_uri, self.finished = None, True
            raise TrinoQueryError(error, self.query_id)
        if self._next_uri is None:
            self.finished = True
        data: Sequence[list[Any]] | None = page.get("data")
        return list(data) if data else []


def _column(raw: Mapping[str, Any]) -> Column:
    type_name = str(raw.get("type") or "unknown")
    signature = raw.get("typeSignature") or {}
    raw_type = str(signature.get("rawType") or type_name.split("(", 1)[0]).lower()
    return Column(str(raw.get("name") or ""), type_name, raw_type)
