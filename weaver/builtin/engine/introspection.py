"""Reading a SQLite file's catalog (tables, views, columns, keys) and its statistics.

A SQLite file has one schema, ``main``. Views are listed as tables (their columns, no
keys).
"""

from __future__ import annotations

import math
import sqlite3
from dataclasses import dataclass
from typing import Any

from weaver.builtin.engine.connections import quote
from weaver.builtin.engine.paths import read_only_uri
from weaver.builtin.engine.runs import Run
from weaver.types import Column, ColumnRef, ColumnStatistics, SchemaGraph, Table, TableStatistics
from weaver.values import iso_temporal

SCHEMA = "main"
# SQLite's default limit on result columns is 2000; statistics use four per column.
STATISTICS_COLUMNS_PER_QUERY = 400

_TABLES_SQL = (
    "SELECT name, type FROM sqlite_master WHERE type IN ('table', 'view') "
    "AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' ORDER BY name"
)
_COLUMNS_SQL = 'SELECT cid, name, type, "notnull", pk FROM pragma_table_info(?) ORDER BY cid'
_FOREIGN_KEYS_SQL = 'SELECT "table", "from", "to", seq FROM pragma_foreign_key_list(?)'


@dataclass
class _TableInfo:
    name: str
    columns: list[Column]
    primary_key: list[str]


def _table_info(connection: sqlite3.Connection, table: str) -> _TableInfo:
    rows = connection.execute(_COLUMNS_SQL, (table,)).fetchall()
    keyed = sorted((pk, name) for _, name, _, _, pk in rows if pk > 0)
    primary_key = [name for _, name in keyed]
    columns = []
    for cid, name, declared, not_null, pk in rows:
        # Only INTEGER PRIMARY KEY (the rowid) refuses NULL without NOT NULL in SQLite.
        rowid = primary_key == [name] and declared.upper() == "INTEGER"
        columns.append(
            Column(
                name=name,
                data_type=declared or "ANY",
                nullable=not (not_null or rowid),
                ordinal=cid + 1,
                primary_key=pk > 0,
            )
        )
    return _TableInfo(table, columns, primary_key)


def introspect(run: Run, file: str) -> SchemaGraph:
    with run.connect(read_only_uri(file)) as connection:
        tables: dict[str, _TableInfo] = {}
        for name, kind in connection.execute(_TABLES_SQL).fetchall():
            try:
                tables[name.lower()] = _table_info(connection, name)
            except sqlite3.OperationalError:
                # A view over a table that was dropped cannot be described (nor read):
                # it is left out rather than failing the whole datasource.
                if kind != "view":
                    raise
        for info in tables.values():
            by_name = {column.name.lower(): column for column in info.columns}
            for target, source, target_column, seq in connection.execute(
                _FOREIGN_KEYS_SQL, (info.name,)
            ):
                referenced = tables.get(target.lower())
                if target_column is None and referenced and seq < len(referenced.primary_key):
                    # `REFERENCES t` without a column means t's primary key.
                    target_column = referenced.primary_key[seq]
                if target_column is not None:
                    by_name[source.lower()].references = ColumnRef(
                        SCHEMA, referenced.name if referenced else target, target_column
                    )
    return SchemaGraph(
        schemas=[SCHEMA],
        tables=[Table(SCHEMA, info.name, info.columns) for info in tables.values()],
    )


def _blob_affinity(data_type: str) -> bool:
    # SQLite's affinity rules: a BLOB in the declared type, or no declared type.
    return "BLOB" in data_type.upper() or data_type.upper() in ("", "ANY")


def _jsonable(value: Any) -> Any:
    """A min/max fit for JSON: bytes (a blob in a text column) and infinities dropped."""
    if isinstance(value, bytes) or (isinstance(value, float) and not math.isfinite(value)):
        return None
    return value


def table_statistics(connection: sqlite3.Connection, table: Table) -> TableStatistics:
    source = f"{quote(SCHEMA)}.{quote(table.name)}"
    (row_count,) = connection.execute(f"SELECT count(*) FROM {source}").fetchone()
    statistics = []
    for start in range(0, len(table.columns), STATISTICS_COLUMNS_PER_QUERY):
        chunk = table.columns[start : start + STATISTICS_COLUMNS_PER_QUERY]
        selected = []
        for column in chunk:
            name = quote(column.name)
            extremes = (
                "NULL, NULL" if _blob_affinity(column.data_type) else f"min({name}), max({name})"
            )
            selected.append(f"count({name}), count(DISTINCT {name}), {extremes}")
        values = connection.execute(f"SELECT {', '.join(selected)} FROM {source}").fetchone()
        for index, column in enumerate(chunk):
            non_null, distinct, low, high = values[index * 4 : index * 4 + 4]
            statistics.append(
                ColumnStatistics(
                    name=column.name,
                    null_count=row_count - non_null,
                    distinct_count=distinct,
                    min=iso_temporal(_jsonable(low), column.data_type),
                    max=iso_temporal(_jsonable(high), column.data_type),
                )
            )
    return TableStatistics(SCHEMA, table.name, row_count, statistics)
