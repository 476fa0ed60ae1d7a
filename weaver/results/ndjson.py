"""``application/x-ndjson``: a line of columns, a JSON array per row, a closing line."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import orjson

from weaver.results.columns import json_rows
from weaver.results.json_document import column_list
from weaver.results.protocol import ResultSummary
from weaver.types import ResultColumn
from weaver.values import dumps


def _line(data: Any) -> bytes:
    return dumps(data) + b"\n"


class NdjsonEncoder:
    """The closing line, ``{"row_count", "truncated"}`` or ``{"error": problem}``, tells a
    client that the stream is whole, or why it is not."""

    media_type = "application/x-ndjson"
    streams = True

    def __init__(self) -> None:
        self._width = 0

    def start(self, columns: Sequence[ResultColumn]) -> bytes:
        self._width = len(columns)
        return _line({"columns": column_list(columns)})

    def rows(self, batch: Sequence[Sequence[Any]]) -> bytes:
        rows = json_rows(batch, self._width)
        # Appending to one buffer: a list of a batch's lines, joined, takes ten times
        # longer, since orjson's many small results are each allocated on their own.
        lines = bytearray()
        try:
            for row in rows:
                lines += orjson.dumps(row, option=orjson.OPT_APPEND_NEWLINE)
        except TypeError:  # an integer beyond 64 bits, which only `dumps` writes
            lines.clear()
            for row in rows:
                lines += _line(row)
        return bytes(lines)

    def finish(self, summary: ResultSummary) -> bytes:
        return _line({"row_count": summary.row_count, "truncated": summary.truncated})

    def failure(self, problem: Mapping[str, Any]) -> bytes | None:
        return _line({"error": dict(problem)})
