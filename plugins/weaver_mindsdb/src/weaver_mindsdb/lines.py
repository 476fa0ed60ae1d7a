"""MindsDB's ``jsonlines`` answer, read as it arrives, in memory bounded by a line.

The answer is ``{"type": "table", "column_names": [...]}`` (or ``{"type": "error", ...}``)
on the first line, then one JSON array of rows per line: one line per chunk MindsDB
fetched from the source (10,000 rows by default, about a megabyte for a narrow table).
There is no trailer. Lines are split here, since aiohttp's ``readline`` refuses lines
over 512 KiB.

A plan that MindsDB finishes itself (a join across datasources, for one) sends its whole
result as one line. A line that outgrows `LINE_BYTES` is parsed incrementally instead
(ijson, yajl's C parser): its rows are handed on in batches as the bytes arrive, and
only one row at a time has to fit, in `ROW_BYTES`. ijson is about four times slower
than orjson, so ordinary lines are read whole with orjson.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import ijson
import orjson

# A line up to this size is read whole; a longer one is parsed as it arrives.
LINE_BYTES = 8 * 1024 * 1024
# The most the first line may take (column names, or an error quoting the statement).
HEAD_BYTES = 1024 * 1024
# The most one row may take in the answer (a row is parsed whole even on the slow path).
ROW_BYTES = 64 * 1024 * 1024
# Rows handed on at a time from a line parsed as it arrives.
BATCH_ROWS = 10_000

Row = list[Any]


class MalformedAnswer(Exception):
    """The answer is not what MindsDB sends: not JSON, not rows, or over the bounds."""


@dataclass(frozen=True, slots=True)
class _LongLine:
    """The start of a line longer than `LINE_BYTES`; the rest is still to be read."""

    prefix: bytes


class AnswerLines:
    """One answer's lines, from ``chunks`` (the HTTP body as it arrives): `first` once,
    then `batches`."""

    def __init__(
        self,
        chunks: AsyncIterator[bytes],
        *,
        line_bytes: int = LINE_BYTES,
        head_bytes: int = HEAD_BYTES,
        row_bytes: int = ROW_BYTES,
        batch_rows: int = BATCH_ROWS,
    ) -> None:
        self._chunks = chunks
        self._line_bytes = line_bytes
        self._head_bytes = head_bytes
        self._row_bytes = row_bytes
        self._batch_rows = batch_rows
        self._buffer = bytearray()
        # How much of the buffer is known to hold no newline.
        self._scanned = 0
        self._ended = False

    async def first(self) -> dict[str, Any]:
        """The first line: the column names, or MindsDB's error."""
        line = await self._line(self._head_bytes)
        if line is None:
            raise MalformedAnswer("the query engine sent an empty answer")
        if isinstance(line, _LongLine):
            raise MalformedAnswer("the first line of the query engine's answer is too long")
        value = _loads(line)
        if not isinstance(value, dict):
            raise MalformedAnswer("the query engine's answer does not start with its type")
        return value

    async def batches(self) -> AsyncIterator[list[Row]]:
        """Row batches until the answer ends; a line that is not rows raises
        `MalformedAnswer` (an error object is handed to the caller as `EmbeddedError`)."""
        while True:
            line = await self._line(self._line_bytes)
            if line is None:
                return
            if isinstance(line, _LongLine):
                async for batch in self._long_line(line.prefix):
                    yield batch
                continue
            rows = _loads(line)
            if isinstance(rows, dict):
                raise EmbeddedError(rows)
            if not isinstance(rows, list) or not all(type(row) is list for row in rows):
                raise MalformedAnswer("a line of the query engine's answer is not rows")
            if rows:
                yield rows

    async def _chunk(self) -> bool:
        """Read one more chunk into the buffer; False at the end of the answer."""
        if self._ended:
            return False
        chunk = await anext(self._chunks, None)
        if chunk is None:
            self._ended = True
            return False
        self._buffer += chunk
        return True

    async def _line(self, most: int) -> bytes | _LongLine | None:
        """The next whole line (without its newline), the start of one too long to hold,
        or None once the answer has ended."""
        while True:
            end = self._buffer.find(b"\n", self._scanned)
            if 0 <= end <= most:
                line = bytes(self._buffer[:end])
                del self._buffer[: end + 1]
                self._scanned = 0
                if line.strip():
                    return line
                continue
            self._scanned = len(self._buffer)
            if end > most or len(self._buffer) > most:
                prefix = bytes(self._buffer)
                self._buffer.clear()
                self._scanned = 0
                return _LongLine(prefix)
            if not await self._chunk():
                # MindsDB ends every line with a newline; a last one without is still read.
                line = bytes(self._buffer)
                self._buffer.clear()
                self._scanned = 0
                return line if line.strip() else None

    async def _long_line(self, prefix: bytes) -> AsyncIterator[list[Row]]:
        """The rows of one long line, parsed as its bytes arrive."""
        if not prefix.lstrip().startswith(b"["):
            raise MalformedAnswer("a line of the query engine's answer is too long")
        rows: list[Any] = ijson.sendable_list()
        parser = ijson.items_coro(rows, "item", use_float=True)
        pending = 0  # bytes fed since the last whole row
        piece: bytes | None = prefix
        while piece is not None:
            end = piece.find(b"\n")
            if end >= 0:
                # The line ends here; what follows is the next line's.
                self._buffer[:0] = piece[end + 1 :]
                piece = piece[:end]
            before = len(rows)
            try:
                if piece:  # an empty send would end the parser's input
                    parser.send(piece)
                if end >= 0:
                    parser.close()
            except ijson.JSONError as error:
                raise MalformedAnswer(
                    f"a line of the query engine's answer is not JSON: {error}"
                ) from None
            pending = 0 if len(rows) > before else pending + len(piece)
            if pending > self._row_bytes:
                raise MalformedAnswer(
                    f"a row of the answer is larger than {self._row_bytes // (1024 * 1024)} MiB"
                )
            while len(rows) >= self._batch_rows or (end >= 0 and rows):
                batch = rows[: self._batch_rows]
                del rows[: self._batch_rows]
                _check_rows(batch)
                yield batch
            if end >= 0:
                return
            piece = await self._next_piece()
        try:
            parser.close()
        except ijson.JSONError as error:
            raise MalformedAnswer(f"the query engine's answer ended mid-line: {error}") from None
        if rows:
            _check_rows(rows)
            yield list(rows)

    async def _next_piece(self) -> bytes | None:
        if not self._buffer and not await self._chunk():
            return None
        piece = bytes(self._buffer)
        self._buffer.clear()
        self._scanned = 0
        return piece


class EmbeddedError(Exception):
    """An object line where rows were expected: MindsDB's error after the first line."""

    def __init__(self, body: dict[str, Any]) -> None:
        super().__init__(str(body.get("error_message") or body))
        self.body = body


def _loads(line: bytes) -> Any:
    try:
        return orjson.loads(line)
    except orjson.JSONDecodeError as error:
        raise MalformedAnswer(f"a line of the query engine's answer is not JSON: {error}") from None


def _check_rows(rows: list[Any]) -> None:
    if not all(type(row) is list for row in rows):
        raise MalformedAnswer("a line of the query engine's answer is not rows")
