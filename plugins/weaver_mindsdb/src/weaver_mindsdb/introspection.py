"""Reading a datasource's catalog and statistics through MindsDB native queries.

Each query here is written by the gateway for one source engine and runs verbatim on the
source (``SELECT * FROM <internal> (<native sql>)``). Names that come from the source's
catalog (schemas, tables, columns) are quoted for the source; no tenant text is used.
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
from weaver.values import iso_temporal

# Runs one native query on the datasource and answers its rows keyed by lower-cased
# column name.
NativeRunner = Callable[[str], Awaitable[list[dict[str, Any]]]]

# Statistics queries in flight at once for one datasource: enough to hide MindsDB's
# round trip, few enough not to load the source.
STATISTICS_CONCURRENCY = 4


@dataclass(frozen=True)
class Catalog:
    """The native SQL that reads one kind of source's catalog."""

    schemas_sql: str
    columns_sql: str
    primary_keys_sql: str
    foreign_keys_sql: str
    # Lower-cased data types whose min/max is meaningful and cheap.
    orderable: frozenset[str]
    # Lower-cased data types the source cannot compare for DISTINCT as they are.
    incomparable: frozenset[str]
    identifier_quote: str
    text_type: str

    def quote(self, name: str) -> str:
        q = self.identifier_quote
        return q + name.replace(q, q + q) + q

    def statistics_sql(self, table: Table) -> str:
        """One pass over ``table``: its row count and, per column, non-null and distinct
        counts and min/max where orderable. Columns are aliased by position so that no
        source name has to survive as an alias."""
        parts = ["count(*) AS row_count"]
        for index, column in enumerate(table.columns):
            name = self.quote(column.name)
            data_type = column.data_type.lower()
            distinct = (
                f"CAST({name} AS {self.text_type})" if data_type in self.incomparable else name
            )
            parts.append(f"count({name}) AS n{index}")
            parts.append(f"count(DISTINCT {distinct}) AS d{index}")
            if data_type in self.orderable:
                parts.append(f"min({name}) AS lo{index}")
                parts.append(f"max({name}) AS hi{index}")
        source = f"{self.quote(table.schema)}.{self.quote(table.name)}"
        return f"SELECT {', '.join(parts)} FROM {source}"


_PG_NOT_SYSTEM = "{col} <> 'information_schema' AND left({col}, 3) <> 'pg_'"

POSTGRES = Catalog(
    schemas_sql=(
        "SELECT schema_name FROM information_schema.schemata WHERE "
        + _PG_NOT_SYSTEM.format(col="schema_name")
        + " ORDER BY schema_name"
    ),
    # From tables outward, so that a table without columns is still listed.
    columns_sql=(
        "SELECT t.table_schema, t.table_name, c.column_name, "
        "CASE WHEN c.data_type = 'USER-DEFINED' THEN c.udt_name ELSE c.data_type END "
        "AS data_type, c.is_nullable, c.ordinal_position "
        "FROM information_schema.tables AS t "
        "LEFT JOIN information_schema.columns AS c "
        "ON c.table_schema = t.table_schema AND c.table_name = t.table_name "
        "WHERE t.table_type IN ('BASE TABLE', 'VIEW') AND "
        + _PG_NOT_SYSTEM.format(col="t.table_schema")
        + " ORDER BY t.table_schema, t.table_name, c.ordinal_position"
    ),
    primary_keys_sql=(
        "SELECT k.table_schema, k.table_name, k.column_name "
        "FROM information_schema.table_constraints AS tc "
        "JOIN information_schema.key_column_usage AS k "
        "ON k.constraint_schema = tc.constraint_schema "
        "AND k.constraint_name = tc.constraint_name "
        "AND k.table_schema = tc.table_schema AND k.table_name = tc.table_name "
        "WHERE tc.constraint_type = 'PRIMARY KEY'"
    ),
    # pg_catalog rather than information_schema: PostgreSQL lets two tables of one schema
    # have foreign keys of the same name, which information_schema cannot tell apart.
    # Pairs come from conkey/confkey so composite keys stay matched column by column.
    foreign_keys_sql=(
        "SELECT ns.nspname AS table_schema, cl.relname AS table_name, "
        "att.attname AS column_name, fns.nspname AS ref_schema, fcl.relname AS ref_table, "
        "fatt.attname AS ref_column "
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
        "WHERE con.contype = 'f' AND " + _PG_NOT_SYSTEM.format(col="ns.nspname")
    ),
    orderable=frozenset(
        {
            "smallint",
            "integer",
            "bigint",
            "numeric",
            "real",
            "double precision",
            "date",
            "time without time zone",
            "time with time zone",
            "timestamp without time zone",
            "timestamp with time zone",
            "interval",
            "character varying",
            "character",
            "text",
        }
    ),
    # No equality operator: DISTINCT on them fails, on their text form it does not.
    incomparable=frozenset({"json", "xml", "point", "line", "polygon", "path", "box", "circle"}),
    identifier_quote='"',
    text_type="text",
)

_MYSQL_ORDERABLE = frozenset(
    {
        "tinyint",
        "smallint",
        "mediumint",
        "int",
        "bigint",
        "decimal",
        "float",
        "double",
        "date",
        "datetime",
        "timestamp",
        "time",
        "year",
        "char",
        "varchar",
    }
)

# MySQL and MariaDB: one schema, the connection's database (other databases on the same
# server are outside the datasource).
MYSQL = Catalog(
    schemas_sql="SELECT DATABASE() AS schema_name",
    columns_sql=(
        "SELECT t.TABLE_SCHEMA AS table_schema, t.TABLE_NAME AS table_name, "
        "c.COLUMN_NAME AS column_name, c.DATA_TYPE AS data_type, "
        "c.IS_NULLABLE AS is_nullable, c.ORDINAL_POSITION AS ordinal_position "
        "FROM information_schema.TABLES AS t "
        "LEFT JOIN information_schema.COLUMNS AS c "
        "ON c.TABLE_SCHEMA = t.TABLE_SCHEMA AND c.TABLE_NAME = t.TABLE_NAME "
        "WHERE t.TABLE_SCHEMA = DATABASE() AND t.TABLE_TYPE IN ('BASE TABLE', 'VIEW') "
        "ORDER BY t.TABLE_NAME, c.ORDINAL_POSITION"
    ),
    primary_keys_sql=(
        "SELECT TABLE_SCHEMA AS table_schema, TABLE_NAME AS table_name, "
        "COLUMN_NAME AS column_name FROM information_schema.KEY_COLUMN_USAGE "
        "WHERE TABLE_SCHEMA = DATABASE() AND CONSTRAINT_NAME = 'PRIMARY'"
    ),
    foreign_keys_sql=(
        "SELECT TABLE_SCHEMA AS table_schema, TABLE_NAME AS table_name, "
        "COLUMN_NAME AS column_name, REFERENCED_TABLE_SCHEMA AS ref_schema, "
        "REFERENCED_TABLE_NAME AS ref_table, REFERENCED_COLUMN_NAME AS ref_column "
        "FROM information_schema.KEY_COLUMN_USAGE "
        "WHERE TABLE_SCHEMA = DATABASE() AND REFERENCED_TABLE_NAME IS NOT NULL"
    ),
    orderable=_MYSQL_ORDERABLE,
    incomparable=frozenset({"geometry", "point", "linestring", "polygon"}),
    identifier_quote="`",
    text_type="CHAR",
)

CATALOGS: dict[str, Catalog] = {"postgres": POSTGRES, "mysql": MYSQL, "mariadb": MYSQL}


def _key(row: dict[str, Any]) -> tuple[str, str, str]:
    return str(row["table_schema"]), str(row["table_name"]), str(row["column_name"])


def build_graph(
    schema_rows: Sequence[dict[str, Any]],
    column_rows: Sequence[dict[str, Any]],
    primary_key_rows: Sequence[dict[str, Any]],
    foreign_key_rows: Sequence[dict[str, Any]],
) -> SchemaGraph:
    """Assemble the catalog queries' rows into a graph. Keys on tables the graph does not
    hold (the account may not see them) are left out."""
    primary = {_key(row) for row in primary_key_rows}
    references = {
        _key(row): ColumnRef(str(row["ref_schema"]), str(row["ref_table"]), str(row["ref_column"]))
        for row in foreign_key_rows
    }
    tables: dict[tuple[str, str], Table] = {}
    for row in column_rows:
        schema, name = str(row["table_schema"]), str(row["table_name"])
        table = tables.setdefault((schema, name), Table(schema=schema, name=name, columns=[]))
        if row.get("column_name") is None:
            continue  # a table without columns
        key = _key(row)
        table.columns.append(
            Column(
                name=key[2],
                data_type=str(row["data_type"]),
                nullable=str(row["is_nullable"]).upper() == "YES",
                ordinal=int(row["ordinal_position"]),
                primary_key=key in primary,
                references=references.get(key),
            )
        )
    schemas = sorted({str(row["schema_name"]) for row in schema_rows} | {s for s, _ in tables})
    return SchemaGraph(schemas=schemas, tables=[tables[k] for k in sorted(tables)])


async def introspect(catalog: Catalog, run: NativeRunner) -> SchemaGraph:
    schema_rows, column_rows, primary_key_rows, foreign_key_rows = await asyncio.gather(
        run(catalog.schemas_sql),
        run(catalog.columns_sql),
        run(catalog.primary_keys_sql),
        run(catalog.foreign_keys_sql),
    )
    return build_graph(schema_rows, column_rows, primary_key_rows, foreign_key_rows)


def table_statistics(table: Table, row: dict[str, Any]) -> TableStatistics:
    """One statistics row (see `Catalog.statistics_sql`) as a `TableStatistics`."""
    row_count = int(row["row_count"])
    columns = [
        ColumnStatistics(
            name=column.name,
            null_count=row_count - int(row[f"n{index}"]),
            distinct_count=int(row[f"d{index}"]),
            min=iso_temporal(row.get(f"lo{index}"), column.data_type),
            max=iso_temporal(row.get(f"hi{index}"), column.data_type),
        )
        for index, column in enumerate(table.columns)
    ]
    return TableStatistics(
        schema=table.schema, table=table.name, row_count=row_count, columns=columns
    )


async def compute(catalog: Catalog, run: NativeRunner, graph: SchemaGraph) -> DatasourceStatistics:
    gate = asyncio.Semaphore(STATISTICS_CONCURRENCY)

    async def one(table: Table) -> TableStatistics:
        async with gate:
            rows = await run(catalog.statistics_sql(table))
        return table_statistics(table, rows[0])

    tables = await asyncio.gather(*(one(table) for table in graph.tables))
    return DatasourceStatistics(tables=list(tables), computed_at=datetime.now(UTC))
