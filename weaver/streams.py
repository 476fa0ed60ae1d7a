"""`RowStream`s for engines, written once: rows an engine already holds, in batches."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import Any

from weaver.types import ResultColumn

# Rows handed on at a time, so that even a result read whole is written as it goes.
BATCH_ROWS = 5000


class RowsInMemory:
    """The rows of an engine whose protocol answers a statement whole (MindsDB's HTTP
    API): the stream hands them on in batches and lets go of each one it passed."""

    def __init__(
        self,
        columns: Sequence[ResultColumn],
        rows: list[Sequence[Any]],
        batch_rows: int = BATCH_ROWS,
    ) -> None:
        self._columns = columns
        self._rows: list[Sequence[Any]] | None = rows
        self._batch_rows = batch_rows

    @property
    def columns(self) -> Sequence[ResultColumn]:
        return self._columns

    async def __aiter__(self) -> AsyncIterator[Sequence[Sequence[Any]]]:
        rows, start = self._rows, 0
        while rows is not None and start < len(rows):
            yield rows[start : start + self._batch_rows]
            start += self._batch_rows
            rows = self._rows

    async def aclose(self) -> None:
        self._rows = None
