"""``text/csv``: RFC 4180 with a header row of column names.

Values read as in JSON: a string's text as it is, numbers as JSON writes them,
``true``/``false``, nested values as their JSON text, NULL as an empty field. An empty
string is an empty field too: the standard library's writer quotes one only when it is
alone on its line (3.12's ``QUOTE_NOTNULL`` would tell it from NULL, but quotes every
other field as well). CSV has no trailer, so a failed result is aborted.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping, Sequence
from typing import Any

from weaver.results.columns import kinds, text_column, transpose
from weaver.results.protocol import ResultSummary
from weaver.types import ResultColumn

# The writer itself writes these as JSON would: str(int) is an integer's JSON text.
_WRITTEN_AS_IS = frozenset({int, str, type(None)})


def _csv_column(values: Sequence[Any]) -> Sequence[Any]:
    found = kinds(values)
    return values if found <= _WRITTEN_AS_IS else text_column(values, found)


class CsvEncoder:
    # RFC 4180 takes text/csv to be US-ASCII unless the charset says otherwise.
    media_type = "text/csv; charset=utf-8"
    streams = True

    def __init__(self) -> None:
        self._width = 0
        # One buffer for every batch: the writer needs a file, and a batch's text is
        # taken out whole and the buffer emptied.
        self._buffer = io.StringIO()
        self._writer = csv.writer(self._buffer, lineterminator="\r\n")

    def _take(self) -> bytes:
        text = self._buffer.getvalue()
        self._buffer.seek(0)
        self._buffer.truncate()
        return text.encode()

    def start(self, columns: Sequence[ResultColumn]) -> bytes:
        self._width = len(columns)
        self._writer.writerow([column.name for column in columns])
        return self._take()

    def rows(self, batch: Sequence[Sequence[Any]]) -> bytes:
        columns = transpose(batch, self._width)
        converted = [_csv_column(values) for values in columns]
        if all(new is old for new, old in zip(converted, columns, strict=True)):
            self._writer.writerows(batch)
        else:
            self._writer.writerows(zip(*converted, strict=True))
        return self._take()

    def finish(self, summary: ResultSummary) -> bytes:
        return b""

    def failure(self, problem: Mapping[str, Any]) -> bytes | None:
        return None
