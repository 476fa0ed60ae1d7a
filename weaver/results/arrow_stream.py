"""``application/vnd.apache.arrow.stream``: an Arrow IPC stream of typed columns, one
record batch per batch of rows."""

from __future__ import annotations

import io
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from weaver.results.arrow_types import ArrowColumn, ValueDoesNotFit, arrow_column
from weaver.results.columns import transpose
from weaver.results.protocol import ResultSummary
from weaver.types import ResultColumn

if TYPE_CHECKING:
    from _typeshed import ReadableBuffer


class _Chunks(io.RawIOBase):
    """The file the stream writer writes to: it hands out what was written since the
    last call, so memory holds one batch at a time."""

    def __init__(self) -> None:
        super().__init__()
        self._parts: list[bytes] = []
        self._position = 0

    def writable(self) -> bool:
        return True

    def write(self, data: ReadableBuffer) -> int:
        chunk = bytes(data)
        self._parts.append(chunk)
        self._position += len(chunk)
        return len(chunk)

    def tell(self) -> int:
        return self._position

    def take(self) -> bytes:
        taken = b"".join(self._parts)
        self._parts.clear()
        return taken


@contextmanager
def _holding(column: ResultColumn) -> Iterator[None]:
    """Any failure to hold a value, as a `ValueDoesNotFit` that names its column."""
    try:
        yield
    except (pa.ArrowException, ValueError, TypeError, ArithmeticError) as error:
        raise ValueDoesNotFit(
            f"column {column.name!r} of type {column.type!r} cannot hold a value of this "
            f"result: {str(error)[:200]}"
        ) from None


class ArrowEncoder:
    """The schema goes out with the first batch, since the values of a bare ``decimal``
    or a ``datetime`` column decide its type; `start` sends nothing."""

    media_type = "application/vnd.apache.arrow.stream"
    streams = True

    def __init__(self) -> None:
        self._columns: Sequence[ResultColumn] = ()
        self._arrow_columns: list[ArrowColumn] = []
        self._chunks = _Chunks()
        self._writer: pa.ipc.RecordBatchStreamWriter | None = None
        self._schema = pa.schema([])

    def start(self, columns: Sequence[ResultColumn]) -> bytes:
        self._columns = columns
        return b""

    def _open(self, first_values: Sequence[Sequence[Any]]) -> pa.ipc.RecordBatchStreamWriter:
        for column, values in zip(self._columns, first_values, strict=True):
            with _holding(column):
                self._arrow_columns.append(arrow_column(column.type, values))
        self._schema = pa.schema(
            [
                pa.field(column.name, arrow.arrow_type)
                for column, arrow in zip(self._columns, self._arrow_columns, strict=True)
            ]
        )
        self._writer = pa.ipc.new_stream(self._chunks, self._schema)
        return self._writer

    def rows(self, batch: Sequence[Sequence[Any]]) -> bytes:
        if not batch:
            return b""
        columns = transpose(batch, len(self._columns))
        writer = self._writer or self._open(columns)
        arrays = []
        for column, arrow, values in zip(self._columns, self._arrow_columns, columns, strict=True):
            with _holding(column):
                arrays.append(arrow.array(values))
        writer.write_batch(pa.RecordBatch.from_arrays(arrays, schema=self._schema))
        return self._chunks.take()

    def finish(self, summary: ResultSummary) -> bytes:
        writer = self._writer or self._open([() for _ in self._columns])
        # The summary rides on a last, empty batch: aiohttp cannot send HTTP trailers and
        # most clients would not read them, and an empty batch leaves the table as it is.
        # Readers find it with `read_next_batch_with_custom_metadata`.
        writer.write_batch(
            pa.RecordBatch.from_pylist([], schema=self._schema),
            custom_metadata={
                b"weaver.query_id": summary.query_id.encode(),
                b"weaver.row_count": str(summary.row_count).encode(),
                b"weaver.truncated": b"true" if summary.truncated else b"false",
            },
        )
        writer.close()
        return self._chunks.take()

    def failure(self, problem: Mapping[str, Any]) -> bytes | None:
        return None
