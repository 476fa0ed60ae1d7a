"""Column types of MindsDB's answers.

MindsDB sends column names and JSON values but no column types, so a column's type is
read from its values (the first batch of a streamed answer): the narrowest type every
non-null value fits.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import Any

from weaver.types import ResultColumn

_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_DATETIME = re.compile(
    r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?(Z|[+-]\d{2}(:?\d{2})?)?$"
)


def value_type(value: object) -> str:
    """The type name of one JSON value."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, dict | list):
        return "json"
    if isinstance(value, str):
        if _DATE.match(value):
            return "date"
        if _DATETIME.match(value):
            return "datetime"
    return "text"


# Pairs of types whose values a column may mix, and the type that holds both.
_WIDER: dict[frozenset[str], str] = {
    frozenset({"integer", "number"}): "number",
    frozenset({"date", "datetime"}): "datetime",
}


def column_type(values: Iterable[object]) -> str:
    """The type of a column: ``null`` when every value is null, ``text`` when its values
    disagree beyond what one type can hold."""
    found = "null"
    for value in values:
        kind = value_type(value)
        if kind == "null" or kind == found:
            continue
        found = kind if found == "null" else _WIDER.get(frozenset({found, kind}), "text")
    return found


def result_columns(names: Sequence[str], rows: Sequence[Sequence[Any]]) -> list[ResultColumn]:
    """The columns ``names``, typed by their values in ``rows``."""
    return [
        ResultColumn(name, column_type(row[index] for row in rows if index < len(row)))
        for index, name in enumerate(names)
    ]
