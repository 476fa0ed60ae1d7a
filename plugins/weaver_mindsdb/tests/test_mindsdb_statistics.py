"""Statistics rows as MindsDB's JSON answers them, read into records."""

from __future__ import annotations

from weaver_mindsdb.introspection import table_statistics

from weaver.types import Column, Table


def column(name: str, data_type: str, ordinal: int) -> Column:
    return Column(name=name, data_type=data_type, nullable=True, ordinal=ordinal)


def test_date_and_time_extremes_come_back_in_iso_8601() -> None:
    table = Table(
        "public",
        "events",
        [
            column("at", "timestamp without time zone", 1),
            column("zoned", "timestamp with time zone", 2),
            column("day", "date", 3),
            column("clock", "time without time zone", 4),
            column("label", "text", 5),
            column("amount", "integer", 6),
        ],
    )
    # The forms MindsDB 26's JSON writes for PostgreSQL's date and time types.
    row = {"row_count": 2}
    values = [
        ("2024-02-01 00:00:00.000000", "2024-02-05 10:00:00.123456"),
        ("2024-02-01 00:00:00.000000+00:00", "2024-02-01 05:30:00.000000+05:30"),
        ("2024-02-01", "2024-02-09 00:00:00"),
        ("08:30:00", "17:00:00.500000"),
        ("2024-02-01 00:00:00.000000", "zz"),
        (1, 9),
    ]
    for index, (low, high) in enumerate(values):
        row |= {f"n{index}": 2, f"d{index}": 2, f"lo{index}": low, f"hi{index}": high}
    statistics = table_statistics(table, row)
    assert [(c.min, c.max) for c in statistics.columns] == [
        ("2024-02-01T00:00:00", "2024-02-05T10:00:00.123456"),
        ("2024-02-01T00:00:00+00:00", "2024-02-01T05:30:00+05:30"),
        ("2024-02-01", "2024-02-09"),
        ("08:30:00", "17:00:00.500000"),
        ("2024-02-01 00:00:00.000000", "zz"),
        (1, 9),
    ]
