"""``application/json``: the whole result as one document, written at the end."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal

from weaver.results.columns import json_rows
from weaver.results.protocol import ResultSummary
from weaver.types import ResultColumn
from weaver.values import dumps

JsonShape = Literal["query", "page"]


def column_list(columns: Sequence[ResultColumn]) -> list[dict[str, str]]:
    return [{"name": column.name, "type": column.type} for column in columns]


class JsonEncoder:
    """Shape ``query`` is `POST /api/query`'s answer; shape ``page`` is a page of
    ``GET /api/query/{id}/results``, whose ``next_cursor`` comes with the summary.

    A document is valid only once closed, so the rows are kept until `finish`; the core
    caps how many.
    """

    media_type = "application/json"
    streams = False

    def __init__(self, shape: JsonShape = "query") -> None:
        self._shape = shape
        self._columns: Sequence[ResultColumn] = ()
        self._rows: list[Sequence[Any]] = []

    def start(self, columns: Sequence[ResultColumn]) -> bytes:
        self._columns = columns
        return b""

    def rows(self, batch: Sequence[Sequence[Any]]) -> bytes:
        self._rows.extend(json_rows(batch, len(self._columns)))
        return b""

    def finish(self, summary: ResultSummary) -> bytes:
        columns = column_list(self._columns)
        if self._shape == "page":
            return dumps(
                {"columns": columns, "rows": self._rows, "next_cursor": summary.next_cursor}
            )
        return dumps(
            {
                "query_id": summary.query_id,
                "columns": columns,
                "rows": self._rows,
                "row_count": summary.row_count,
                "truncated": summary.truncated,
                "elapsed_ms": summary.elapsed_ms,
            }
        )

    def failure(self, problem: Mapping[str, Any]) -> bytes | None:
        # Nothing has been sent: the core answers with the problem itself.
        return None
