"""Trino's JSON values as Python values of their column's type.

Trino sends exact types as text (decimals ``"12.50"``, timestamps
``"2024-01-02 03:04:05.123456 +02:00"``, varbinary as base64, ``"NaN"`` for a double):
each column gets one converter from its type, so that every result format (the Arrow
stream included) carries typed values, and JSON writes them back in ISO 8601 and decimal
notation. Values Python cannot hold as their type (a year before 1 or after 9999) stay
text rather than fail the whole result; digits below the microsecond are cut, since
Python's times stop there.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Callable, Sequence
from datetime import UTC, date, datetime, time, tzinfo
from decimal import Decimal, InvalidOperation
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from weaver_trino.client import Column

Converter = Callable[[Any], Any]

_FLOAT_WORDS = {"NaN": float("nan"), "Infinity": float("inf"), "-Infinity": float("-inf")}
_OFFSET = re.compile(r"[+-]\d{2}:\d{2}")


def _decimal(value: Any) -> Any:
    try:
        return Decimal(value) if isinstance(value, str) else value
    except InvalidOperation:
        return value


def _float(value: Any) -> Any:
    return _FLOAT_WORDS.get(value, value) if isinstance(value, str) else value


# Python 3.11's fromisoformat reads Trino's text as it is (a space for the `T`, up to
# nine fraction digits, cut to six) in C: a million timestamps take half a second.
def _date(value: Any) -> Any:
    try:
        return date.fromisoformat(value) if isinstance(value, str) else value
    except ValueError:
        return value


def _time(value: Any) -> Any:
    try:
        return time.fromisoformat(value) if isinstance(value, str) else value
    except ValueError:
        return value


def _timestamp(value: Any) -> Any:
    try:
        return datetime.fromisoformat(value) if isinstance(value, str) else value
    except ValueError:
        return value


@lru_cache(maxsize=512)
def _zone(name: str) -> tzinfo | None:
    """A named zone (``America/New_York``); None if unknown."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return None


def _timestamp_with_zone(value: Any) -> Any:
    """``2024-01-02 03:04:05.123 UTC``, ``… +02:00`` or ``… Europe/Paris``."""
    if not isinstance(value, str):
        return value
    local, _, zone_name = value.rpartition(" ")
    try:
        if zone_name == "UTC":
            return datetime.fromisoformat(local).replace(tzinfo=UTC)
        if _OFFSET.fullmatch(zone_name):
            return datetime.fromisoformat(local + zone_name)
        zone = _zone(zone_name)
        return datetime.fromisoformat(local).replace(tzinfo=zone) if zone else value
    except ValueError:
        return value


def _binary(value: Any) -> Any:
    return base64.b64decode(value) if isinstance(value, str) else value


# By Trino's raw type name. Everything else (integers, booleans, varchar, char, json,
# uuid, intervals, time with time zone, arrays, maps, rows) is used as JSON gave it.
_CONVERTERS: dict[str, Converter] = {
    "decimal": _decimal,
    "real": _float,
    "double": _float,
    "date": _date,
    "time": _time,
    "timestamp": _timestamp,
    "timestamp with time zone": _timestamp_with_zone,
    "varbinary": _binary,
}


def converter(column: Column) -> Converter | None:
    """How to read ``column``'s values; None when JSON already holds them as they are."""
    return _CONVERTERS.get(column.raw_type)


class RowReader:
    """Converts pages of rows in place, touching only the columns that need it."""

    def __init__(self, columns: Sequence[Column]) -> None:
        self._converters = [
            (index, convert)
            for index, column in enumerate(columns)
            if (convert := converter(column)) is not None
        ]

    def read(self, rows: list[list[Any]]) -> list[list[Any]]:
        if self._converters:
            for row in rows:
                for index, convert in self._converters:
                    value = row[index]
                    if value is not None:
                        row[index] = convert(value)
        return rows

    def value(self, index: int, value: Any) -> Any:
        """One value of column ``index``, converted."""
        for position, convert in self._converters:
            if position == index and value is not None:
                return convert(value)
        return value
