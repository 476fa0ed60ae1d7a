"""Column types read from MindsDB's untyped JSON rows."""

from __future__ import annotations

import pytest
from weaver_mindsdb.client import Table
from weaver_mindsdb.results import column_type, result_columns


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ([1, 2, None], "integer"),
        ([1, 2.5], "number"),
        ([1.5, None], "number"),
        ([True, False], "boolean"),
        ([True, 1], "text"),
        (["2024-01-02", None], "date"),
        (["2024-01-02 10:00:00.000000", "2024-01-03T11:00:00Z"], "datetime"),
        (["2024-01-02", "2024-01-03 10:00:00"], "datetime"),
        (["2024-01-02", "soon"], "text"),
        (["a", 1], "text"),
        ([{"a": 1}, [1, 2]], "json"),
        ([None, None], "null"),
        ([], "null"),
    ],
)
def test_column_type(values: list[object], expected: str) -> None:
    assert column_type(values) == expected


def test_columns_are_typed_by_their_values() -> None:
    columns = result_columns(["id", "name", "gone"], [[1, "a", None], [2, None, None]])
    assert [(c.name, c.type) for c in columns] == [
        ("id", "integer"),
        ("name", "text"),
        ("gone", "null"),
    ]
    # An empty answer still has its columns.
    assert [c.type for c in result_columns(["id"], [])] == ["null"]


def test_records_key_rows_by_lower_case_column() -> None:
    assert Table(["TABLE_NAME", "n"], [["t", 1]]).records() == [{"table_name": "t", "n": 1}]
