"""A running Trino statement as the core's `RowStream`: one batch per page, as Trino
answers, converted to typed values."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any

from weaver.types import ResultColumn
from weaver_trino.client import Statement
from weaver_trino.values import RowReader

# Fetches the statement's next page, with Trino's failures already turned into problems.
NextPage = Callable[[Statement], Awaitable[list[list[Any]]]]


class TrinoRows:
    """The rows of ``statement``, whose columns are known and whose first rows may have
    come with them. The next page is asked for only when the core pulls the next batch,
    so Trino holds what the client has not taken yet, not the gateway."""

    def __init__(
        self,
        statement: Statement,
        first_rows: list[list[Any]],
        next_page: NextPage,
        on_close: Callable[[], None],
    ) -> None:
        columns = statement.columns or []
        self._columns = [ResultColumn(column.name, column.type) for column in columns]
        self._reader = RowReader(columns)
        self._statement = statement
        self._first: list[list[Any]] | None = first_rows
        self._next_page = next_page
        self._on_close = on_close
        self._closed = False

    @property
    def columns(self) -> Sequence[ResultColumn]:
        return self._columns

    async def __aiter__(self) -> AsyncIterator[Sequence[Sequence[Any]]]:
        first, self._first = self._first, None
        if first:
            yield self._reader.read(first)
        while not self._closed and not self._statement.finished:
            # Pages of a query still queued or running carry no rows: fetched on, inside
            # one batch's wait, which the core bounds.
            rows = await self._next_page(self._statement)
            if rows:
                yield self._reader.read(rows)

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._first = None
        try:
            # Truncated, or the client went away: Trino stops the query at the source.
            await self._statement.cancel()
        finally:
            self._on_close()
