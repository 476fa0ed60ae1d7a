"""Row batches seen column by column.

A column's values are usually all of one or two Python types, so each format checks the
set of types once per column and batch (a pass in C), and converts value by value only
the columns that need it. `jsonable_row` converts every value of a row that holds a
float, since NaN needs a string; here a column of floats is checked for NaN with one
sum. On the export benchmark's rows (one float column of six) that is 9 times faster.
"""

from __future__ import annotations

import functools
import operator
from collections.abc import Sequence
from typing import Any

import orjson

from weaver.values import dumps, jsonable

NoneType = type(None)
# Values the JSON writer writes exactly as `jsonable` would return them.
JSON_NATIVE = frozenset({int, str, bool, NoneType})
# Values whose JSON text has no comma, so one column's texts come from a single write.
_NUMBERS = frozenset({float, int, bool, NoneType})
_TEXT = frozenset({str, NoneType})
_not_none = functools.partial(operator.is_not, None)


@functools.lru_cache(maxsize=64)
def _getters(width: int) -> tuple[operator.itemgetter[Any], ...]:
    return tuple(operator.itemgetter(index) for index in range(width))


def transpose(batch: Sequence[Sequence[Any]], width: int) -> list[list[Any]]:
    """The columns of ``batch``, each a list of ``len(batch)`` values."""
    if batch and set(map(len, batch)) != {width}:
        raise ValueError(f"rows of {sorted(set(map(len, batch)))} values for {width} columns")
    # A map per column is a third faster than `zip(*batch)`, which walks 5000 iterators.
    return [list(map(getter, batch)) for getter in _getters(width)]


def kinds(values: Sequence[Any]) -> set[type]:
    return set(map(type, values))


def _finite(values: Sequence[Any]) -> bool:
    """Whether a column of numbers holds no NaN or infinity (which JSON cannot write):
    either makes the sum NaN or infinite; so does an overflow, which is only slower."""
    try:
        total = sum(filter(_not_none, values), 0.0)
    except OverflowError:
        return False
    return total - total == 0.0


def jsonable_column(values: Sequence[Any]) -> Sequence[Any]:
    """``values`` as `jsonable` would make them, the same object when nothing changes."""
    found = kinds(values)
    if found <= JSON_NATIVE or (found <= _NUMBERS and _finite(values)):
        return values
    return [jsonable(v) for v in values]


def json_rows(batch: Sequence[Sequence[Any]], width: int) -> Sequence[Sequence[Any]]:
    """``batch`` with JSON-native values: the rows themselves when they hold nothing else."""
    columns = transpose(batch, width)
    converted = [jsonable_column(values) for values in columns]
    if all(new is old for new, old in zip(converted, columns, strict=True)):
        return batch
    return list(zip(*converted, strict=True))


def field_text(value: Any) -> str | None:
    """A JSON-native value as text: a string as it is, anything else as its JSON text;
    ``None`` stays ``None`` (an empty CSV field, an Arrow null)."""
    if value is None or type(value) is str:
        return value
    return dumps(value).decode()


def text_column(values: Sequence[Any], found: set[type] | None = None) -> Sequence[str | None]:
    """The `field_text` of each value as `jsonable` makes it; ``found`` is `kinds`
    of ``values`` if the caller has it."""
    found = kinds(values) if found is None else found
    if found <= _TEXT:
        return values
    if found <= _NUMBERS:
        try:
            texts = orjson.dumps(values).decode()[1:-1].split(",")
        except TypeError:  # an integer beyond 64 bits
            pass
        else:
            if "null" not in texts:
                return texts
            # orjson writes NaN, the infinities and None as null; `jsonable` tells them apart.
            return [
                text if text != "null" else field_text(jsonable(value))
                for text, value in zip(texts, values, strict=True)
            ]
    return [field_text(jsonable(v)) for v in values]
