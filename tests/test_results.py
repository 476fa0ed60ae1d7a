"""Every result format writes the same rows: JSON, NDJSON, CSV and Arrow, read back with
the standard readers and compared with what the JSON document says."""

from __future__ import annotations

import base64
import csv
import io
import json
import math
from datetime import UTC, date, datetime, time, timedelta, timezone
from decimal import Decimal
from typing import Any

import orjson
import pyarrow as pa
import pytest

from weaver.results import MEDIA_TYPES, ResultEncoder, ResultSummary, encoder_for
from weaver.types import ResultColumn
from weaver.values import dumps, jsonable_row

# A result with every kind of value an engine returns, as the engine returns it.
KOLKATA = timezone(timedelta(hours=5, minutes=30))

COLUMNS = [
    ResultColumn("big", "decimal(38,0)"),
    ResultColumn("i", "bigint"),
    ResultColumn("f", "double"),
    ResultColumn("dec", "decimal(10,2)"),
    ResultColumn("d", "date"),
    ResultColumn("t", "time(6)"),
    ResultColumn("tsz", "timestamp(6) with time zone"),
    ResultColumn("ts", "timestamp(6)"),
    ResultColumn("b", "varbinary"),
    ResultColumn("s", "varchar"),
    ResultColumn("flag", "boolean"),
    ResultColumn("j", "json"),
    ResultColumn("n", "null"),
]

ENGINE_ROWS: list[list[Any]] = [
    [
        2**70,
        2**63 - 1,
        1.5,
        Decimal("12.50"),
        date(2024, 2, 1),
        time(12, 34, 56, 789000),
        datetime(2024, 2, 1, 0, 0, tzinfo=KOLKATA),
        datetime(2024, 2, 1, 8, 30, 0, 123456),
        b"\x00\xff\x10",
        "emoji 🚀 and RTL שלום עולם",
        True,
        {"a": [1, 2], "b": None},
        None,
    ],
    [
        -(2**65),
        -1,
        float("nan"),
        Decimal("-0.01"),
        date(1970, 1, 1),
        time(0, 0),
        datetime(2024, 2, 1, 0, 0, tzinfo=UTC),
        datetime(1999, 12, 31, 23, 59, 59),
        b"",
        'comma, "quote" and\r\nCRLF\nLF\rCR',
        False,
        [1, "x"],
        None,
    ],
    [
        5,
        0,
        float("inf"),
        Decimal("0.00"),
        date(2024, 12, 31),
        time(23, 59, 59, 999999),
        datetime(2023, 6, 1, 12, 0, 0, 1, tzinfo=timezone(timedelta(hours=-7))),
        datetime(2024, 2, 29),
        b"plain",
        "",
        None,
        {},
        None,
    ],
    [
        None,
        None,
        float("-inf"),
        None,
        None,
        None,
        None,
        None,
        None,
        None,
        None,
        None,
        None,
    ],
    [0, 42, 1e-7, Decimal("99999999.99"), None, None, None, None, None, "ok", True, None, None],
    [1, 7, 1e20, None, None, None, None, None, None, "-", False, "text in json", None],
]

# The same rows as the result store keeps them: JSON-native.
STORED_ROWS = [jsonable_row(row) for row in ENGINE_ROWS]

SUMMARY = ResultSummary("q-1", len(ENGINE_ROWS), True, 12.5)


def encode(
    media_type: str,
    columns: list[ResultColumn],
    batches: list[list[list[Any]]],
    summary: ResultSummary = SUMMARY,
    **options: Any,
) -> bytes:
    encoder: ResultEncoder = encoder_for(media_type, **options)
    assert encoder.media_type.partition(";")[0] == media_type
    chunks = [encoder.start(columns), *(encoder.rows(batch) for batch in batches)]
    return b"".join([*chunks, encoder.finish(summary)])


def halves(rows: list[list[Any]]) -> list[list[list[Any]]]:
    return [rows[:2], [], rows[2:]]


def json_document(rows: list[list[Any]] = ENGINE_ROWS) -> dict[str, Any]:
    document: dict[str, Any] = json.loads(encode("application/json", COLUMNS, halves(rows)))
    return document


def json_text(value: Any) -> str:
    """How a JSON writer writes a value: orjson, or the standard library beyond 64 bits."""
    return "" if value is None else value if isinstance(value, str) else dumps(value).decode()


def test_json_is_the_query_answer_byte_for_byte() -> None:
    body = encode("application/json", COLUMNS, halves(ENGINE_ROWS))
    assert body == dumps(
        {
            "query_id": "q-1",
            "columns": [{"name": c.name, "type": c.type} for c in COLUMNS],
            "rows": [jsonable_row(row) for row in ENGINE_ROWS],
            "row_count": len(ENGINE_ROWS),
            "truncated": True,
            "elapsed_ms": 12.5,
        }
    )
    document = json.loads(body)
    # Beyond 64 bits orjson gives up; the standard library writes the integer whole.
    assert document["rows"][0][0] == 2**70
    assert document["rows"][1][2:4] == ["nan", "-0.01"]
    assert document["rows"][0][8] == base64.b64encode(b"\x00\xff\x10").decode()


def test_json_page_shape_carries_the_next_cursor() -> None:
    summary = ResultSummary("q-1", 2, False, 1.0, next_cursor="abc")
    body = encode("application/json", COLUMNS, [ENGINE_ROWS[:2]], summary, json_shape="page")
    assert body == dumps(
        {
            "columns": [{"name": c.name, "type": c.type} for c in COLUMNS],
            "rows": [jsonable_row(row) for row in ENGINE_ROWS[:2]],
            "next_cursor": "abc",
        }
    )
    last = encode(
        "application/json", COLUMNS, [], ResultSummary("q", 0, False, 0), json_shape="page"
    )
    assert json.loads(last) == {
        "columns": json.loads(body)["columns"],
        "rows": [],
        "next_cursor": None,
    }


def test_json_does_not_stream_and_the_others_do() -> None:
    assert [encoder_for(m).streams for m in MEDIA_TYPES] == [False, True, True, True]


def test_content_types() -> None:
    assert [encoder_for(m).media_type for m in MEDIA_TYPES] == [
        "application/json",
        "application/x-ndjson",
        "text/csv; charset=utf-8",
        "application/vnd.apache.arrow.stream",
    ]


def test_ndjson_round_trips_the_json_rows() -> None:
    body = encode("application/x-ndjson", COLUMNS, halves(ENGINE_ROWS))
    assert body.endswith(b"\n")
    lines = [json.loads(line) for line in body.decode().split("\n")[:-1]]
    document = json_document()
    assert lines[0] == {"columns": document["columns"]}
    assert lines[1:-1] == document["rows"]
    assert lines[-1] == {"row_count": len(ENGINE_ROWS), "truncated": True}


def test_ndjson_failure_is_a_last_line() -> None:
    encoder = encoder_for("application/x-ndjson")
    encoder.start(COLUMNS)
    encoder.rows(ENGINE_ROWS[:1])
    problem = {"type": "https://weaver.dev/problems/engine-error", "status": 502, "detail": "x"}
    line = encoder.failure(problem)
    assert line is not None and line.endswith(b"\n") and line.count(b"\n") == 1
    assert json.loads(line) == {"error": problem}


def test_csv_round_trips_the_json_rows() -> None:
    body = encode("text/csv", COLUMNS, halves(ENGINE_ROWS))
    text = body.decode()
    records = list(csv.reader(io.StringIO(text, newline="")))
    document = json_document()
    assert records[0] == [c.name for c in COLUMNS]
    assert records[1:] == [[json_text(v) for v in row] for row in document["rows"]]
    # RFC 4180: CRLF after every record, fields with a comma, quote, CR or LF quoted,
    # quotes doubled; numbers as JSON writes them.
    assert text.endswith("\r\n") and text.count("\r\n") == len(ENGINE_ROWS) + 2  # one in a field
    assert '"comma, ""quote"" and\r\nCRLF\nLF\rCR"' in text
    assert ",1e-7," in text and ",1e+20," in text and ",true," in text
    assert '"{""a"":[1,2],""b"":null}"' in text
    assert "\r\n1180591620717411303424,9223372036854775807,1.5,12.50," in text


def test_csv_writes_big_integers_and_non_finite_floats_in_number_columns() -> None:
    columns = [ResultColumn("x", "real"), ResultColumn("n", "integer")]
    rows = [[float("nan"), 2**64], [None, None], [2.5, 3], [float("-inf"), True]]
    body = encode("text/csv", columns, [rows]).decode()
    assert body == "x,n\r\nnan,18446744073709551616\r\n,\r\n2.5,3\r\n-inf,true\r\n"


def test_csv_and_arrow_failures_abort() -> None:
    for media_type in ("text/csv", "application/vnd.apache.arrow.stream", "application/json"):
        encoder = encoder_for(media_type)
        encoder.start(COLUMNS)
        encoder.rows(ENGINE_ROWS[:1])
        assert encoder.failure({"status": 502}) is None


@pytest.mark.parametrize("media_type", MEDIA_TYPES)
def test_engine_values_and_stored_values_give_the_same_bytes(media_type: str) -> None:
    engine = encode(media_type, COLUMNS, halves(ENGINE_ROWS))
    stored = encode(media_type, COLUMNS, halves(STORED_ROWS))
    assert engine == stored


def test_stored_rows_are_json_native() -> None:
    # The other form really differs, or the test above would prove nothing.
    assert STORED_ROWS[0][3:9] == [
        "12.50",
        "2024-02-01",
        "12:34:56.789000",
        "2024-02-01T00:00:00+05:30",
        "2024-02-01T08:30:00.123456",
        "AP8Q",
    ]


def _same(arrow_value: Any, json_value: Any, arrow_type: pa.DataType) -> bool:
    """Whether an Arrow value is the JSON document's value, read by its Arrow type."""
    if json_value is None or arrow_value is None:
        return arrow_value is None and json_value is None
    if pa.types.is_decimal(arrow_type):
        return bool(arrow_value == Decimal(str(json_value)))
    if pa.types.is_floating(arrow_type):
        expected = float(json_value)
        return math.isnan(arrow_value) if math.isnan(expected) else arrow_value == expected
    if pa.types.is_date(arrow_type):
        return bool(arrow_value == date.fromisoformat(json_value))
    if pa.types.is_time(arrow_type):
        return bool(arrow_value == time.fromisoformat(json_value))
    if pa.types.is_timestamp(arrow_type):
        return bool(arrow_value == datetime.fromisoformat(json_value))
    if pa.types.is_binary(arrow_type):
        return bool(arrow_value == base64.b64decode(json_value))
    if pa.types.is_string(arrow_type):
        return bool(arrow_value == json_text(json_value))
    return bool(arrow_value == json_value)


def read_arrow(body: bytes) -> tuple[pa.Schema, list[pa.RecordBatch], dict[bytes, bytes]]:
    reader = pa.ipc.open_stream(body)
    batches, metadata = [], {}
    while True:
        try:
            batch, custom = reader.read_next_batch_with_custom_metadata()
        except StopIteration:
            break
        batches.append(batch)
        metadata = dict(custom) if custom is not None else {}
    return reader.schema, batches, metadata


def test_arrow_round_trips_the_json_rows_with_typed_columns() -> None:
    schema, batches, metadata = read_arrow(
        encode("application/vnd.apache.arrow.stream", COLUMNS, halves(ENGINE_ROWS))
    )
    assert schema.names == [c.name for c in COLUMNS]
    assert schema.types == [
        pa.decimal128(38, 0),
        pa.int64(),
        pa.float64(),
        pa.decimal128(10, 2),
        pa.date32(),
        pa.time64("us"),
        pa.timestamp("us", tz="UTC"),
        pa.timestamp("us"),
        pa.binary(),
        pa.string(),
        pa.bool_(),
        pa.string(),
        pa.string(),
    ]
    # One record batch per non-empty batch of rows, then the empty one with the summary.
    assert [b.num_rows for b in batches] == [2, len(ENGINE_ROWS) - 2, 0]
    assert metadata == {
        b"weaver.query_id": b"q-1",
        b"weaver.row_count": str(len(ENGINE_ROWS)).encode(),
        b"weaver.truncated": b"true",
    }
    table = pa.Table.from_batches(batches)
    document = json_document()
    for index, field in enumerate(schema):
        values = table.column(index).to_pylist()
        expected = [row[index] for row in document["rows"]]
        mismatched = [
            (a, j) for a, j in zip(values, expected, strict=True) if not _same(a, j, field.type)
        ]
        assert mismatched == [], field.name
    # Zones are normalised to UTC: the instant is kept, the offset is not.
    assert table.column("tsz")[0].as_py().isoformat() == "2024-01-31T18:30:00+00:00"
    assert table.column("j").to_pylist()[:3] == ['{"a":[1,2],"b":null}', '[1,"x"]', "{}"]


def test_arrow_column_of_nulls_holds_later_values_as_text() -> None:
    columns = [ResultColumn("x", "null")]
    body = encode(
        "application/vnd.apache.arrow.stream",
        columns,
        [[[None], [None]], [[5], [2.5], ["s"], [{"k": 1}], [None]]],
        ResultSummary("q", 7, False, 0),
    )
    schema, batches, _ = read_arrow(body)
    assert schema.types == [pa.string()]
    assert pa.Table.from_batches(batches).column(0).to_pylist() == [
        None,
        None,
        "5",
        "2.5",
        "s",
        '{"k":1}',
        None,
    ]


def empty_summary() -> ResultSummary:
    return ResultSummary("q-0", 0, False, 0.5)


@pytest.mark.parametrize("columns", [COLUMNS, []], ids=["no rows", "no columns"])
def test_empty_results_in_every_format(columns: list[ResultColumn]) -> None:
    summary = empty_summary()
    names = [c.name for c in columns]
    column_list = [{"name": c.name, "type": c.type} for c in columns]

    assert json.loads(encode("application/json", columns, [[]], summary)) == {
        "query_id": "q-0",
        "columns": column_list,
        "rows": [],
        "row_count": 0,
        "truncated": False,
        "elapsed_ms": 0.5,
    }
    lines = encode("application/x-ndjson", columns, [], summary).decode().splitlines()
    assert [json.loads(line) for line in lines] == [
        {"columns": column_list},
        {"row_count": 0, "truncated": False},
    ]
    text = encode("text/csv", columns, [[]], summary).decode()
    assert list(csv.reader(io.StringIO(text, newline=""))) == [names]

    schema, batches, metadata = read_arrow(
        encode("application/vnd.apache.arrow.stream", columns, [[]], summary)
    )
    assert schema.names == names
    assert [b.num_rows for b in batches] == [0]
    assert metadata[b"weaver.row_count"] == b"0"
    if columns:
        # Without values, a bare decimal has scale 0 and a `datetime` no zone.
        assert schema.field("big").type == pa.decimal128(38, 0)
        assert schema.field("n").type == pa.string()


def test_a_row_of_the_wrong_width_is_refused() -> None:
    for media_type in MEDIA_TYPES:
        encoder = encoder_for(media_type)
        encoder.start(COLUMNS[:2])
        with pytest.raises(ValueError, match="columns"):
            encoder.rows([[1, 2], [1, 2, 3]])


def test_float_texts_are_orjsons() -> None:
    # CSV and Arrow text columns show numbers as the JSON document does, not as repr().
    values = [1e-7, 1e16, 0.1, -0.0, 123456789.125]
    columns = [ResultColumn("x", "text")]
    body = encode("text/csv", columns, [[[v] for v in values]]).decode()
    assert body.split("\r\n")[1:-1] == [orjson.dumps(v).decode() for v in values]
