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
from datetime import UTC, date, datetime, time, timedelta, timezone, tzinfo
from decimal import Decimal, InvalidOperation
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from weaver_trino.client import Column

Converter = Callable[[Any], Any]

_FLOAT_WORDS = {"NaN": float("nan"), "Infinity": float("inf"), "-Infinity": float("-inf")}
# `hh:mm:ss[.fraction]`; the fraction is cut to microseconds.
_FRACTION = re.compile(r"(\d{2}:\d{2}:\d{2})(?:\.(\d+))?")
_OFFSET = re.compile(r"([+-])(\d{2}):(\d{2})")


def _decimal(value: Any) -> Any:
    try:
        return Decimal(value) if isinstance(value, str) else value
    except InvalidOperation:
        return value


def _float(value: Any) -> Any:
    return _FLOAT_WORDS.get(value, value) if isinstance(value, str) else value


def _clock(text: str) -> tuple[int, int, int, int] | None:
    found = _FRACTION.fullmatch(text)
    if found is None:
        return None
    hours, minutes, seconds = (int(part) for part in found.group(1).split(":"))
    micros = int((found.group(2) or "0")[:6].ljust(6, "0"))
    return hours, minutes, seconds, micros


def _date(value: Any) -> Any:
    try:
        return date.fromisoformat(value) if isinstance(value, str) else value
    except ValueError:
        return value


def _time(value: Any) -> Any:
    clock = _clock(value) if isinstance(value, str) else None
    return time(*clock) if clock is not None else value


@lru_cache(maxsize=512)
def _zone(name: str) -> tzinfo | None:
    """``UTC``, ``+02:00`` or ``America/New_York`` as a time zone; None if unknown."""
    if name == "UTC":
        return UTC
    offset = _OFFSET.fullmatch(name)
    if offset is not None:
        sign = -1 if offset.group(1) == "-" else 1
        delta = timedelta(hours=int(offset.group(2)), minutes=int(offset.group(3)))
        return timezone(sign * delta)
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return None


def _timestamp(value: Any, zone: tzinfo | None = None) -> Any:
    if not isinstance(value, str):
        return value
    day, _, clock_text = value.partition(" ")
    clock = _clock(clock_text)
    try:
        moment = date.fromisoformat(day)
    except ValueError:
        return value
    if clock is None:
        return value
    return datetime(moment.year, moment.month, moment.day, *clock, tzinfo=zone)


def _timestamp_with_zone(value: Any) -> Any:
    if not isinstance(value, str):
        return value
    local, _, zone_name = value.rpartition(" ")
    zone = _zone(zone_name)
    if zone is None:
        return value
    return _timestamp(local, zone)


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
