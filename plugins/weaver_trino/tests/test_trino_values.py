"""Trino's JSON values read as their column's type."""

from __future__ import annotations

import math
from datetime import UTC, date, datetime, time, timedelta, timezone
from decimal import Decimal
from zoneinfo import ZoneInfo

from weaver_trino.client import Column
from weaver_trino.values import RowReader


def column(type_name: str, raw: str | None = None) -> Column:
    return Column("c", type_name, raw or type_name.split("(", 1)[0])


def read(type_name: str, value: object, raw: str | None = None) -> object:
    return RowReader([column(type_name, raw)]).read([[value]])[0][0]


def test_exact_types_become_python_values() -> None:
    assert read("decimal(38, 2)", "123456789012345678901234567890.12") == Decimal(
        "123456789012345678901234567890.12"
    )
    assert read("date", "2024-01-02") == date(2024, 1, 2)
    assert read("time(6)", "01:02:03.123456") == time(1, 2, 3, 123456)
    assert read("varbinary", "AQL/") == b"\x01\x02\xff"


def test_timestamps_keep_microseconds_and_their_zone() -> None:
    assert read("timestamp(9)", "2024-01-02 03:04:05.123456789") == datetime(
        2024, 1, 2, 3, 4, 5, 123456
    )
    assert read("timestamp(3)", "2024-01-02 03:04:05.120") == datetime(2024, 1, 2, 3, 4, 5, 120000)
    zoned = "timestamp with time zone"
    assert read("timestamp(6) with time zone", "2024-01-02 03:04:05.5 UTC", zoned) == datetime(
        2024, 1, 2, 3, 4, 5, 500000, tzinfo=UTC
    )
    offset = read("timestamp(3) with time zone", "2024-01-02 03:04:05.000 +02:00", zoned)
    assert offset == datetime(2024, 1, 2, 3, 4, 5, tzinfo=timezone(timedelta(hours=2)))
    named = read("timestamp(3) with time zone", "2024-07-01 12:00:00.000 Europe/Paris", zoned)
    assert named == datetime(2024, 7, 1, 12, tzinfo=ZoneInfo("Europe/Paris"))
    assert named.utcoffset() == timedelta(hours=2)


def test_special_floats_become_floats() -> None:
    assert math.isnan(read("double", "NaN"))  # type: ignore[arg-type]
    assert read("real", "-Infinity") == float("-inf")
    assert read("double", 1.5) == 1.5


def test_values_python_cannot_hold_stay_text_and_nulls_stay_null() -> None:
    assert read("timestamp(3)", "-0001-01-01 00:00:00.000") == "-0001-01-01 00:00:00.000"
    assert read("date", "+10000-01-01") == "+10000-01-01"
    assert read("decimal(10, 2)", None) is None


def test_other_types_are_used_as_json_gave_them() -> None:
    rows = [[1, "x", [1, 2], {"k": 1}, "01:02:03.000+05:00"]]
    reader = RowReader(
        [
            column("integer"),
            column("varchar(10)", "varchar"),
            column("array(integer)", "array"),
            column("map(varchar, integer)", "map"),
            column("time(3) with time zone", "time with time zone"),
        ]
    )
    assert reader.read([list(row) for row in rows]) == rows
