"""A query engine for tests of the result formats: it answers every statement with one
table holding every kind of value an engine can hand the core, in two batches, and can
fail after the first batch (statement text ``fail``)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from datetime import UTC, date, datetime, time, timedelta, timezone
from decimal import Decimal
from typing import Any

from weaver import hookimpl
from weaver.errors import EngineFailed
from weaver.settings import Settings
from weaver.types import PreparedQuery, ResultColumn, SqlDialect

COLUMNS = (
    ResultColumn("big", "decimal(38,0)"),
    ResultColumn("f", "double"),
    ResultColumn("amount", "decimal(12,2)"),
    ResultColumn("day", "date"),
    ResultColumn("at", "timestamp(6) with time zone"),
    ResultColumn("local", "timestamp(6)"),
    ResultColumn("blob", "varbinary"),
    ResultColumn("text", "varchar"),
    ResultColumn("flag", "boolean"),
    ResultColumn("clock", "time(6)"),
)
SEOUL = timezone(timedelta(hours=9))
ROWS: tuple[tuple[Any, ...], ...] = (
    (
        2**70,
        float("nan"),
        Decimal("12.50"),
        date(2024, 2, 29),
        datetime(2024, 2, 1, 9, 30, tzinfo=SEOUL),
        datetime(2024, 2, 1, 0, 0, 0, 123456),
        b"\x00\xff",
        'comma, "quote"\nnewline',
        True,
        time(23, 59, 58),
    ),
    (
        -(2**65),
        float("inf"),
        Decimal("-0.01"),
        date(1970, 1, 1),
        datetime(2025, 12, 31, 23, 59, 59, tzinfo=UTC),
        datetime(1999, 12, 31, 23, 59, 59),
        b"",
        "한국어 🙂 עברית",
        False,
        time(0, 0),
    ),
    (None, float("-inf"), None, None, None, None, None, None, None, None),
    (0, 1.5, Decimal("0.00"), date(2000, 1, 1), None, None, b"x", "", None, None),
)


class ValueRows:
    def __init__(self, fail_after_first: bool) -> None:
        self._fail = fail_after_first

    @property
    def columns(self) -> Sequence[ResultColumn]:
        return COLUMNS

    async def __aiter__(self) -> AsyncIterator[Sequence[Sequence[Any]]]:
        yield ROWS[:2]
        if self._fail:
            raise EngineFailed("the engine lost its source halfway")
        yield ROWS[2:]

    async def aclose(self) -> None:
        return None


class ValueEngine:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    @hookimpl
    def sql_dialect(self) -> SqlDialect:
        return SqlDialect("sqlite", schemas=False)

    @hookimpl
    def execute_query(self, query: PreparedQuery) -> ValueRows:
        return ValueRows(fail_after_first="fail" in query.sql)

    @hookimpl
    def cancel_query(self) -> bool:
        return False
