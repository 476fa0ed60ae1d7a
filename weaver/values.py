"""Engine values as JSON-native ones: what every result format starts from."""

from __future__ import annotations

import base64
import json
from datetime import date, datetime, timedelta
from datetime import time as time_of_day
from decimal import Decimal
from typing import Any
from uuid import UUID

import orjson

# Values orjson writes exactly as `jsonable` would return them; floats are not among them,
# since NaN and the infinities need a string.
_NATIVE_TYPES = frozenset({int, str, bool, type(None)})


def jsonable_row(row: list[Any]) -> list[Any]:
    """``row`` ready for the JSON writer: most rows hold only native values, and are
    checked for that in one pass instead of converting every value."""
    if _NATIVE_TYPES.issuperset(map(type, row)):
        return row
    return [jsonable(v) for v in row]


def jsonable(value: Any) -> Any:
    """Engine values as JSON-native ones; exact types travel as strings."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        # NaN and infinities are not JSON.
        return (
            value if value == value and value not in (float("inf"), float("-inf")) else str(value)
        )
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime | date | time_of_day):
        return value.isoformat()
    if isinstance(value, timedelta):
        return str(value.total_seconds())
    if isinstance(value, bytes | bytearray | memoryview):
        return base64.b64encode(bytes(value)).decode()
    if isinstance(value, UUID):
        return str(value)
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    return str(value)


def iso_temporal(value: Any, data_type: str) -> Any:
    """A value of a date or time column (``data_type`` as the engine names it) in ISO
    8601, whatever form the engine answered in: MindsDB's JSON writes
    ``2024-02-01 00:00:00.000000``, SQLite returns the text it stored. Values of other
    columns, and text that reads as no date or time, are left as they are."""
    kind = data_type.lower()
    parse: Any
    if "timestamp" in kind or "datetime" in kind:
        parse = datetime.fromisoformat
    elif kind == "date":
        parse = _date
    elif kind.startswith("time"):
        parse = time_of_day.fromisoformat
    else:
        return value
    if isinstance(value, str):
        try:
            return parse(value.strip()).isoformat()
        except ValueError:
            return value
    if isinstance(value, datetime | date | time_of_day):
        return value.isoformat()
    return value


def _date(text: str) -> date:
    # A source may answer a date with a midnight time (MindsDB does for some engines).
    try:
        return date.fromisoformat(text)
    except ValueError:
        return datetime.fromisoformat(text).date()


def dumps(data: Any) -> bytes:
    """Compact UTF-8 JSON. orjson writes a typical answer ten times faster than the
    standard library; integers beyond 64 bits (which an engine may return) are left to
    the standard library, which writes any integer."""
    try:
        return orjson.dumps(data)
    except TypeError:
        return json.dumps(data, separators=(",", ":"), ensure_ascii=False).encode()
