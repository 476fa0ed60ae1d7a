"""Arrow types from engine type names, and values that do not fit them."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta, timezone
from decimal import Decimal
from typing import Any

import pyarrow as pa
import pytest

from weaver.errors import EngineFailed
from weaver.results import ResultSummary, ValueDoesNotFit, encoder_for
from weaver.types import ResultColumn

ARROW = "application/vnd.apache.arrow.stream"


def arrow_table(type_name: str, *batches: list[Any]) -> pa.Table:
    encoder = encoder_for(ARROW)
    encoder.start([ResultColumn("c", type_name)])
    body = b"".join(encoder.rows([[v] for v in batch]) for batch in batches)
    body += encoder.finish(ResultSummary("q", sum(map(len, batches)), False, 0))
    return pa.ipc.open_stream(body).read_all()


@pytest.mark.parametrize(
    ("type_name", "arrow_type"),
    [
        # The embedded SQLite engine's storage classes.
        ("integer", pa.int64()),
        ("real", pa.float64()),
        ("text", pa.string()),
        ("blob", pa.binary()),
        ("null", pa.string()),
        # MindsDB's.
        ("number", pa.float64()),
        ("boolean", pa.bool_()),
        ("date", pa.date32()),
        ("json", pa.string()),
        # Trino's, in any case and spacing.
        ("bigint", pa.int64()),
        ("INTEGER", pa.int64()),
        ("smallint", pa.int16()),
        ("tinyint", pa.int8()),
        ("double", pa.float64()),
        ("decimal(38,2)", pa.decimal128(38, 2)),
        ("DECIMAL(10, 4)", pa.decimal128(10, 4)),
        ("decimal(5)", pa.decimal128(5, 0)),
        ("decimal(50,10)", pa.decimal256(50, 10)),
        ("numeric(100,2)", pa.string()),
        ("varchar", pa.string()),
        ("varchar(10)", pa.string()),
        ("char(3)", pa.string()),
        ("time(3)", pa.time64("us")),
        ("time(3) with time zone", pa.string()),
        ("timestamp(3)", pa.timestamp("us")),
        ("timestamp(6) with time zone", pa.timestamp("us", tz="UTC")),
        ("Timestamp(6)  With Time Zone", pa.timestamp("us", tz="UTC")),
        ("timestamptz", pa.timestamp("us", tz="UTC")),
        ("varbinary", pa.binary()),
        ("uuid", pa.string()),
        ("array(integer)", pa.string()),
        ("map(varchar, integer)", pa.string()),
        ("row(x integer, y varchar)", pa.string()),
        ("interval day to second", pa.string()),
        ("something new", pa.string()),
    ],
)
def test_engine_type_names_map_to_arrow_types(type_name: str, arrow_type: pa.DataType) -> None:
    assert arrow_table(type_name).schema.field("c").type == arrow_type


def test_a_bare_decimal_takes_its_scale_from_the_first_batch() -> None:
    table = arrow_table("numeric", [Decimal("1.5"), "2.125", None, 7], [Decimal("3.1")])
    assert table.schema.field("c").type == pa.decimal128(38, 3)
    assert table.column("c").to_pylist() == [
        Decimal("1.500"),
        Decimal("2.125"),
        None,
        Decimal("7.000"),
        Decimal("3.100"),
    ]
    with pytest.raises(ValueDoesNotFit, match="'c'"):
        arrow_table("numeric", [Decimal("1.5")], [Decimal("1.0001")])


def test_a_bare_datetime_takes_its_zone_from_the_first_value() -> None:
    zoned = arrow_table("datetime", [None, "2024-01-01 10:00:00Z", "2024-01-02T00:00:00+01:00"])
    assert zoned.schema.field("c").type == pa.timestamp("us", tz="UTC")
    assert zoned.column("c").to_pylist()[1:] == [
        datetime(2024, 1, 1, 10, tzinfo=UTC),
        datetime(2024, 1, 1, 23, tzinfo=UTC),
    ]
    naive = arrow_table("datetime", ["2024-01-01", datetime(2024, 1, 1, 10)], [date(2024, 3, 1)])
    assert naive.schema.field("c").type == pa.timestamp("us")
    assert naive.column("c").to_pylist() == [
        datetime(2024, 1, 1),
        datetime(2024, 1, 1, 10),
        datetime(2024, 3, 1),
    ]


def test_a_text_column_holds_any_value_as_its_text() -> None:
    # SQLite types values, not columns: a column that began as text may hold numbers.
    table = arrow_table("text", ["a"], [1, 2.5, None, b"\x01", True])
    assert table.column("c").to_pylist() == ["a", "1", "2.5", None, "AQ==", "true"]


KOLKATA = timezone(timedelta(hours=5, minutes=30))


@pytest.mark.parametrize(
    ("type_name", "value"),
    [
        ("integer", 2**63),
        ("bigint", -(2**63) - 1),
        ("integer", 1.5),
        ("integer", "12"),
        ("integer", True),
        ("tinyint", 300),
        ("real", "1.5"),
        ("real", True),
        ("boolean", 1),
        ("decimal(10,2)", Decimal("1.234")),
        ("decimal(4,2)", Decimal("123.4")),
        ("decimal(10,2)", "NaN"),
        ("decimal(10,2)", Decimal("NaN")),
        ("decimal(10,2)", "twelve"),
        ("decimal(10,2)", 1.5),
        ("numeric", 10**40),
        ("date", datetime(2024, 1, 1, 12)),
        ("date", "2024-13-01"),
        ("time(3)", time(1, 2, tzinfo=UTC)),
        ("timestamp(3)", datetime(2024, 1, 1, tzinfo=KOLKATA)),
        ("timestamp(3)", "2024-01-01T00:00:00+00:00"),
        ("timestamp(3) with time zone", datetime(2024, 1, 1)),
        ("timestamp(3) with time zone", "2024-01-01T00:00:00"),
        ("varbinary", "not base64!"),
        ("blob", 5),
    ],
)
def test_a_value_that_does_not_fit_its_column_fails_clearly(type_name: str, value: Any) -> None:
    # In a later batch too: the first one fixes the schema, the second must still fit.
    with pytest.raises(ValueDoesNotFit) as raised:
        arrow_table(type_name, [None], [value])
    problem = raised.value
    assert isinstance(problem, EngineFailed) and problem.status == 502
    assert problem.type_slug == "value-does-not-fit"
    assert "'c'" in problem.detail and repr(type_name) in problem.detail


def test_values_that_fit_are_not_refused() -> None:
    # The other side of the refusals above: the same columns, values they hold.
    assert arrow_table("integer", [2**63 - 1, -(2**63)]).num_rows == 2
    assert arrow_table("real", [1, 2.5, "nan", "-inf"]).column("c").to_pylist()[:2] == [1.0, 2.5]
    assert arrow_table("decimal(4,2)", [Decimal("12.3"), 12, "-0.5"]).num_rows == 3
    assert (
        arrow_table("varbinary", ["AQI=", b"\x01\x02", bytearray(b"\x01\x02")])
        .column("c")
        .to_pylist()
        == [b"\x01\x02"] * 3
    )
    assert (
        arrow_table("date", ["2024-02-29", date(2024, 2, 29)]).column("c").to_pylist()
        == [date(2024, 2, 29)] * 2
    )
