"""Async query results in the metadata store: written in chunks as rows arrive, read back
page by page, in flat memory either way.

A result is a sequence of chunks of `CHUNK_ROWS` rows, each a JSON array of rows of
JSON-native values (what ``jsonable`` makes of engine values: a decimal or a timestamp
is a string, bytes are base64). The column types travel in the query's record, so every
result format can be written from a stored result as from a live one.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import AsyncIterator, Sequence
from typing import Any

import orjson

from weaver.errors import BadRequest, Gone
from weaver.host import Host
from weaver.queries.pump import Rows
from weaver.types import QueryRecord, ResultColumn
from weaver.values import jsonable_row

# Rows per stored chunk: a page of the default 1000 rows is one read; a large page or an
# export reads `READ_AHEAD` chunks at a time.
CHUNK_ROWS = 1000
READ_AHEAD = 10


class ChunkWriter:
    """Collects an async query's rows into chunks and stores each when it is full."""

    def __init__(self, host: Host, record: QueryRecord, max_tenant_bytes: int) -> None:
        self._host = host
        self._record = record
        self._max_tenant_bytes = max_tenant_bytes
        self._pending: list[list[Any]] = []
        self._index = 0
        self.bytes_written = 0

    async def columns(self, columns: Sequence[ResultColumn]) -> None:
        return None

    async def rows(self, batch: Rows) -> None:
        for row in batch:
            self._pending.append(jsonable_row(list(row)))
            if len(self._pending) == CHUNK_ROWS:
                await self._flush()

    async def close(self) -> None:
        if self._pending:
            await self._flush()

    async def _flush(self) -> None:
        chunk = _dumps(self._pending)
        self._pending = []
        await self._host.save_result_chunk(
            self._record.tenant_id,
            self._record.query_id,
            self._index,
            chunk,
            self._max_tenant_bytes,
        )
        self._index += 1
        self.bytes_written += len(chunk)


def _dumps(rows: list[list[Any]]) -> bytes:
    try:
        return orjson.dumps(rows)
    except TypeError:  # integers beyond 64 bits: the standard library writes any integer
        import json

        return json.dumps(rows, separators=(",", ":"), ensure_ascii=False).encode()


async def read(host: Host, record: QueryRecord, start: int, end: int) -> AsyncIterator[Rows]:
    """Rows ``start`` to ``end`` (exclusive) of a stored result, a few chunks at a time;
    raises `Gone` if the result was dropped meanwhile (evicted, expired, cancelled)."""
    first, last = start // CHUNK_ROWS, (end - 1) // CHUNK_ROWS
    for index in range(first, last + 1, READ_AHEAD):
        upto = min(index + READ_AHEAD - 1, last)
        chunks = await host.load_result_chunks(record.tenant_id, record.query_id, index, upto)
        if len(chunks) != upto - index + 1:
            raise expired(f"the result of query '{record.query_id}' is no longer kept")
        for position, chunk in enumerate(chunks, start=index):
            rows: list[list[Any]] = orjson.loads(chunk)
            begin = max(start - position * CHUNK_ROWS, 0)
            stop = min(end - position * CHUNK_ROWS, len(rows))
            if begin < stop:
                yield rows[begin:stop]


def expired(detail: str) -> Gone:
    return Gone(detail)


def encode_cursor(query_id: str, offset: int) -> str:
    raw = orjson.dumps([query_id, offset])
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str | None, query_id: str) -> int:
    """The row offset a cursor stands for; 400 for one this API did not issue for this
    query."""
    if cursor is None:
        return 0
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        owner, offset = orjson.loads(raw)
    except (ValueError, TypeError, binascii.Error):
        raise BadRequest("the cursor is not one this API issued") from None
    if owner != query_id or not isinstance(offset, int) or offset < 0:
        raise BadRequest("the cursor is not one this API issued for this query")
    return offset
