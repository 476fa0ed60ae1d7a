"""Reading a datasource's catalog and statistics through Trino.

Schemas, tables and columns come from the catalog's ``information_schema``, so they are
what a query sees: Trino's names and Trino's types. Keys are not there (Trino has no
constraints); they are read on the source itself through the connector's pass-through
``system.query`` table function, with SQL the gateway writes (never tenant text).
Statistics are one aggregate query per table, run by Trino.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from weaver.types import (
    Column,
    ColumnRef,
    ColumnStatistics,
    DatasourceStatistics,
    SchemaGraph,
    Table,
    TableStatistics,
)
from weaver.values import jsonable
from weaver_trino.statements import literal, pass_through, quote_catalog, quote_name

# Runs one statement and answers its rows keyed by lower-cased column name, values
# converted to their types.
Runner = Callable[[str], Awaitable[list[dict[str, Any]]]]

# Statistics queries in flight at once for one datasource: Trino's fixed cost per query
# (hundreds of milliseconds) is hidden, and the source is not swamped.
STATISTICS_CONCURRENCY = 4

_SYSTEM_SCHEMAS = ("information_schema", "pg_catalog")
# Raw Trino types whose min/max means something and is cheap.
_ORDERABLE = frozenset(
    {
        "tinyint",
        "smallint",
        "integer",
        "bigint",
        "real",
        "double",
        "decimal",
        "date",
        "time",
        "timestamp",
        "timestamp with time zone",
        "varchar",
        "char",
    }
)
# Raw types DISTINCT cannot compare as they are: counted on their JSON text.
_AS_JSON = frozenset({"array", "map", "row"})


@dataclass(frozen=True)
class KeyQueries:
    """Native SQL, for one kind of source, that lists its primary and foreign keys."""

    primary_keys: str
    foreign_keys: str


# pg_catalog rather than information_schema: PostgreSQL lets two tables of one schema
# have constraints of the same name, which information_schema cannot tell apart; conkey
# and confkey keep composite keys matched column by column. Names are cast to text, a
# type every connector maps.
_POSTGRES_KEYS = KeyQueries(
    primary_keys=(
        "SELECT ns.nspname::text AS table_schema, cl.relname::text AS table_name, "
        "att.attname::text AS column_name "
        "FROM pg_catalog.pg_constraint AS con "
        "JOIN pg_catalog.pg_class AS cl ON cl.oid = con.conrelid "
        "JOIN pg_catalog.pg_namespace AS ns ON ns.oid = cl.relnamespace "
        "JOIN pg_catalog.pg_attribute AS att "
        "ON att.attrelid = con.conrelid AND att.attnum = ANY (con.conkey) "
        "WHERE con.contype = 'p'"
    ),
    foreign_keys=(
        "SELECT ns.nspname::text AS table_schema, cl.relname::text AS table_name, "
        "att.attname::text AS column_name, fns.nspname::text AS ref_schema, "
        "fcl.relname::text AS ref_table, fatt.attname::text AS ref_column "
        "FROM pg_catalog.pg_constraint AS con "
        "JOIN pg_catalog.pg_class AS cl ON cl.oid = con.conrelid "
        "JOIN pg_catalog.pg_namespace AS ns ON ns.oid = cl.relnamespace "
        "JOIN pg_catalog.pg_class AS fcl ON fcl.oid = con.confrelid "
        "JOIN pg_catalog.pg_namespace AS fns ON fns.oid = fcl.relnamespace "
        "CROSS JOIN LATERAL unnest(con.conkey, con.confkey) AS k(attnum, ref_attnum) "
        "JOIN pg_catalog.pg_attribute AS att "
        "ON att.attrelid = con.conrelid AND att.attnum = k.attnum "
        "JOIN pg_catalog.pg_attribute AS fatt "
        "ON fatt.attrelid = con.confrelid AND fatt.attnum = k.ref_attnum "
        "WHERE con.contype = 'f'"
    ),
)
_MYSQL_KEYS = KeyQueries(
    primary_keys=(
        "SELECT TABLE_SCHEMA AS table_schema, TABLE_NAME AS table_name, "
        "COLUMN_NAME AS column_name FROM information_schema.KEY_COLUMN_USAGE "
        "WHERE CONSTRAINT_NAME = 'PRIMARY'"
    ),
    foreign_keys=(
        "SELECT TABLE_SCHEMA AS table_schema, TABLE_NAME AS table_name, "
        "COLUMN_NAME AS column_name, REFERENCED_TABLE_SCHEMA AS ref_schema, "
        "REFERENCED_TABLE_NAME AS ref_table, REFERENCED_COLUMN_NAME AS ref_column "
        "FROM information_schema.KEY_COLUMN_USAGE WHERE REFERENCED_TABLE_NAME IS NOT NULL"
    ),
)
KEYS: dict[str, KeyQueries] = {
    "postgres": _POSTGRES_KEYS,
    "mysql": _MYSQL_KEYS,
    "mariadb": _MYSQL_KEYS,
}


def _schema_filter(column: str, only_schema: str | None) -> str:
    if only_schema is not None:
        return f"{column} = {literal(only_schema.lower())}"
    system = ", ".join(literal(name) for name in _SYSTEM_SCHEMAS)
    return f"{column} NOT IN ({system}) AND substr({column}, 1, 3) <> 'pg_'"


def schemas_sql(catalog: str, only_schema: str | None) -> str:
    return (
        f"SELECT schema_name FROM {quote_catalog(catalog)}.information_schema.schemata "
        f"WHERE {_schema_filter('schema_name', only_schema)} ORDER BY schema_name"
    )


def columns_sql(catalog: str, only_schema: str | None) -> str:
    # From tables outward, so that a table without columns is still listed.
    schema = quote_catalog(catalog) + ".information_schema"
    return (
        "SELECT t.table_schema, t.table_name, c.column_name, c.data_type, c.is_nullable, "
        f"c.ordinal_position FROM {schema}.tables AS t LEFT JOIN {schema}.columns AS c "
        "ON c.table_schema = t.table_schema AND c.table_name = t.table_name "
        f"WHERE {_schema_filter('t.table_schema', only_schema)} "
        "ORDER BY t.table_schema, t.table_name, c.ordinal_position"
    )


def _key(row: dict[str, Any]) -> tuple[str, str, str]:
    # Trino shows source names lower-cased; the source's own catalog keeps their case.
    return (
        str(row["table_schema"]).lower(),
        str(row["table_name"]).lower(),
        str(row["column_name"]).lower(),
    )


def build_graph(
    schema_rows: Sequence[dict[str, Any]],
    column_rows: Sequence[dict[str, Any]],
    primary_key_rows: Sequence[dict[str, Any]],
    foreign_key_rows: Sequence[dict[str, Any]],
) -> SchemaGraph:
    """The graph of the catalog's tables; keys on tables Trino does not show are left out."""
    primary = {_key(row) for row in primary_key_rows}
    references = {
        _key(row): ColumnRef(
            str(row["ref_schema"]).lower(),
            str(row["ref_table"]).lower(),
            str(row["ref_column"]).lower(),
        )
        for row in foreign_key_rows
    }
    tables: dict[tuple[str, str], Table] = {}
    for row in column_rows:
        schema, name = str(row["table_schema"]), str(row["table_name"])
        table = tables.setdefault((schema, name), Table(schema=schema, name=name, columns=[]))
        if row.get("column_name") is None:
            continue
        key = _key(row)
        table.columns.append(
            Column(
                name=str(row["column_name"]),
                data_type=str(row["data_type"]),
                nullable=str(row["is_nullable"]).upper() == "YES",
                ordinal=int(row["ordinal_position"]),
                primary_key=key in primary,
                references=references.get(key),
            )
        )
    schemas = sorted({str(row["schema_name"]) for row in schema_rows} | {s for s, _ in tables})
    return SchemaGraph(schemas=schemas, tables=[tables[k] for k in sorted(tables)])


async def introspect(
    run: Runner, catalog: str, engine: str, only_schema: str | None
) -> SchemaGraph:
    keys = KEYS.get(engine)
    queries = [schemas_sql(catalog, only_schema), columns_sql(catalog, only_schema)]
    if keys is not None:
        queries += [
            pass_through(catalog, keys.primary_keys),
            pass_through(catalog, keys.foreign_keys),
        ]
    answers = await asyncio.gather(*(run(sql) for sql in queries))
    schema_rows, column_rows, *key_rows = answers
    primary_rows, foreign_rows = key_rows if key_rows else ([], [])
    return build_graph(schema_rows, column_rows, primary_rows, foreign_rows)


def _raw_type(data_type: str) -> str:
    lowered = data_type.lower()
    if lowered.startswith("timestamp") and lowered.endswith("with time zone"):
        return "timestamp with time zone"
    return lowered.split("(", 1)[0].strip()


def _aggregates(table: Table, distinct_of: Callable[[str, str], str]) -> str:
    """The select list of one pass over ``table``: its row count and, per column,
    non-null and distinct counts and min/max where orderable. Columns are aliased by
    position so that no source name has to survive as an alias."""
    parts = ["count(*) AS row_count"]
    for index, column in enumerate(table.columns):
        name = quote_name(column.name)
        raw = _raw_type(column.data_type)
        parts.append(f"count({name}) AS n{index}")
        parts.append(f"count(DISTINCT {distinct_of(name, raw)}) AS d{index}")
        if raw in _ORDERABLE:
            parts.append(f"min({name}) AS lo{index}")
            parts.append(f"max({name}) AS hi{index}")
    return ", ".join(parts)


def _trino_distinct(name: str, raw: str) -> str:
    if raw == "json":
        return f"json_format({name})"
    return f"json_format(CAST({name} AS json))" if raw in _AS_JSON else name


def _postgres_distinct(name: str, raw: str) -> str:
    # PostgreSQL cannot compare json, xml or geometric values; their text it can.
    return name if raw in _ORDERABLE or raw == "boolean" else f"CAST({name} AS text)"


def statistics_sql(catalog: str, engine: str, table: Table) -> str:
    """The statistics query of ``table``. On PostgreSQL it runs on the source through the
    pass-through function: one aggregate there takes milliseconds, where Trino plans a
    distinct count per column as stages of their own (seconds per table)."""
    if engine == "postgres":
        native = (
            f"SELECT {_aggregates(table, _postgres_distinct)} "
            f"FROM {quote_name(table.schema)}.{quote_name(table.name)}"
        )
        return pass_through(catalog, native)
    source = f"{quote_catalog(catalog)}.{quote_name(table.schema)}.{quote_name(table.name)}"
    return f"SELECT {_aggregates(table, _trino_distinct)} FROM {source}"


def table_statistics(table: Table, row: dict[str, Any]) -> TableStatistics:
    """One statistics row as a `TableStatistics`; min and max JSON-native, so timestamps
    are ISO 8601 and decimals exact text."""
    row_count = int(row["row_count"])
    columns = [
        ColumnStatistics(
            name=column.name,
            null_count=row_count - int(row[f"n{index}"]),
            distinct_count=int(row[f"d{index}"]),
            min=jsonable(row.get(f"lo{index}")),
            max=jsonable(row.get(f"hi{index}")),
        )
        for index, column in enumerate(table.columns)
    ]
    return TableStatistics(
        schema=table.schema, table=table.name, row_count=row_count, columns=columns
    )


async def compute(
    run: Runner, catalog: str, engine: str, graph: SchemaGraph
) -> DatasourceStatistics:
    gate = asyncio.Semaphore(STATISTICS_CONCURRENCY)

    async def one(table: Table) -> TableStatistics:
        async with gate:
            rows = await run(statistics_sql(catalog, engine, table))
        return table_statistics(table, rows[0])

    tables = await asyncio.gather(*(one(table) for table in graph.tables))
    return DatasourceStatistics(tables=list(tables), computed_at=datetime.now(UTC))
