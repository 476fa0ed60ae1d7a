"""Conformance tests for query engines (``execute_query``, ``introspect_datasource``,
``compute_statistics``).

Every engine is checked against one small dataset, `SAMPLE_TABLES`: two tables with a
primary key each, a foreign key between them and NULLs. `sample_statements(dialect)`
renders the statements that create and fill it, for loading it into the engine's
backend. Subclass `EngineContract` and provide:

* ``host`` — a started host whose query engine is the one under test;
* ``sample_datasource`` — an async factory ``(name) -> Datasource`` that registers a
  datasource of your engine (``validate_connection`` then ``register_datasource``, or the
  whole API path) whose tables are exactly `SAMPLE_TABLES`, and returns its record;
* ``slow_sql`` — a statement on ``{ds}`` (the datasource's name) that runs for minutes;
* ``sample_schema`` — the schema the sample tables live in (``main`` for SQLite).

::

    class TestMyEngine(EngineContract):
        plugin = "myengine"  # its entry-point name: the one that must answer

        @pytest.fixture
        def sample_schema(self) -> str:
            return "public"
        ...
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import pytest
from sqlglot import exp, parse_one

from weaver.errors import EngineTimeout, QueryFailed
from weaver.host import Host
from weaver.testing.harness import PluginContract
from weaver.types import ColumnRef, Datasource, PreparedQuery, Principal, QueryResult, Table
from weaver.workflows import query as query_workflow

SampleFactory = Callable[[str], Awaitable[Datasource]]


@dataclass(frozen=True)
class SampleColumn:
    name: str
    data_type: str
    nullable: bool
    primary_key: bool = False
    references: tuple[str, str] | None = None  # (table, column)


@dataclass(frozen=True)
class SampleTable:
    name: str
    columns: tuple[SampleColumn, ...]
    rows: tuple[tuple[Any, ...], ...]

    def values(self, column: str) -> list[Any]:
        index = [c.name for c in self.columns].index(column)
        return [row[index] for row in self.rows]


CUSTOMERS = SampleTable(
    "customers",
    (
        SampleColumn("id", "INT", nullable=False, primary_key=True),
        SampleColumn("name", "VARCHAR(100)", nullable=False),
        SampleColumn("email", "VARCHAR(200)", nullable=True),
    ),
    (
        (1, "Ada", "ada@example.com"),
        (2, "Grace", None),
        (3, "Linus", "linus@example.com"),
        (4, "Barbara", None),
        (5, "Edsger", "edsger@example.com"),
    ),
)
ORDERS = SampleTable(
    "orders",
    (
        SampleColumn("id", "INT", nullable=False, primary_key=True),
        SampleColumn("customer_id", "INT", nullable=True, references=("customers", "id")),
        SampleColumn("amount", "DOUBLE", nullable=False),
        SampleColumn("note", "VARCHAR(200)", nullable=True),
    ),
    (
        (10, 1, 12.5, "first"),
        (11, 1, 7.25, None),
        (12, 2, 100.0, "bulk"),
        (13, 3, 3.0, None),
        (14, None, 1.5, "walk-in"),
        (15, 5, 42.0, None),
    ),
)
SAMPLE_TABLES = (CUSTOMERS, ORDERS)


def _create_table(table: SampleTable, dialect: str) -> str:
    definitions = []
    for column in table.columns:
        text = f"{column.name} {column.data_type}" + ("" if column.nullable else " NOT NULL")
        if column.primary_key:
            text += " PRIMARY KEY"
        if column.references:
            text += f" REFERENCES {column.references[0]} ({column.references[1]})"
        definitions.append(text)
    return parse_one(f"CREATE TABLE {table.name} ({', '.join(definitions)})").sql(dialect)


def sample_statements(dialect: str) -> list[str]:
    """CREATE TABLE and INSERT statements for `SAMPLE_TABLES`, in ``dialect``."""
    statements = []
    for table in SAMPLE_TABLES:
        statements.append(_create_table(table, dialect))
        insert = exp.insert(
            exp.values([tuple(row) for row in table.rows]),
            table.name,
            columns=[column.name for column in table.columns],
        )
        statements.append(insert.sql(dialect))
    return statements


CONTRACT_TENANT = "contract"


async def prepare(
    host: Host,
    sql: str,
    datasources: Sequence[Datasource],
    *,
    limit: int = 100,
    timeout_seconds: float = 30.0,
) -> PreparedQuery:
    """What the core hands an engine for ``sql`` (checked and rendered by the core's own
    query workflow), on registered ``datasources`` of one tenant."""
    principal = principal_for(datasources[0]) if datasources else _nobody()
    return await query_workflow.render(
        host, principal, sql, limit=limit, timeout_seconds=timeout_seconds
    )


def principal_for(datasource: Datasource) -> Principal:
    return Principal("contract", datasource.tenant_id, frozenset({"viewer"}))


def _nobody() -> Principal:
    return Principal("contract", CONTRACT_TENANT, frozenset({"viewer"}))


async def run_query(host: Host, datasource: Datasource, sql: str, **options: Any) -> QueryResult:
    """``sql`` (``{ds}`` standing for the datasource) run the way ``/api/query`` runs it."""
    query = await prepare(host, sql.format(ds=datasource.name), [datasource], **options)
    return await query_workflow.execute(host, principal_for(datasource), query)


def _table(tables: Sequence[Table], schema: str, name: str) -> Table:
    found = [t for t in tables if t.schema == schema and t.name.lower() == name]
    assert len(found) == 1, f"expected table {schema}.{name} once, got {tables}"
    return found[0]


class EngineContract(PluginContract):
    """Contract tests every query engine must pass; see the module docstring."""

    contract_hooks = ("execute_query", "introspect_datasource", "compute_statistics")

    @pytest.fixture
    def sample_schema(self) -> str:
        return "main"

    async def test_query_returns_columns_and_rows(
        self, host: Host, sample_datasource: SampleFactory
    ) -> None:
        datasource = await sample_datasource("sample")
        result = await run_query(
            host, datasource, "SELECT id, name, email FROM {ds}.customers ORDER BY id"
        )
        assert [c.name for c in result.columns] == ["id", "name", "email"]
        assert [tuple(row) for row in result.rows] == list(CUSTOMERS.rows)
        assert result.truncated is False

    async def test_joins_filters_and_aggregates_run_in_the_engine(
        self, host: Host, sample_datasource: SampleFactory
    ) -> None:
        datasource = await sample_datasource("sample")
        result = await run_query(
            host,
            datasource,
            "SELECT c.name, count(*) AS n, sum(o.amount) AS total "
            "FROM {ds}.orders AS o JOIN {ds}.customers AS c ON o.customer_id = c.id "
            "WHERE o.amount > 2 GROUP BY c.name ORDER BY c.name",
        )
        names = dict(zip(CUSTOMERS.values("id"), CUSTOMERS.values("name"), strict=True))
        expected: dict[str, list[float]] = {}
        for _, customer_id, amount, _ in ORDERS.rows:
            if customer_id is not None and amount > 2:
                expected.setdefault(names[customer_id], []).append(amount)
        assert [c.name for c in result.columns] == ["name", "n", "total"]
        assert [(row[0], row[1], float(row[2])) for row in result.rows] == [
            (name, len(amounts), sum(amounts)) for name, amounts in sorted(expected.items())
        ]

    async def test_limit_sets_truncated(self, host: Host, sample_datasource: SampleFactory) -> None:
        datasource = await sample_datasource("sample")
        sql = "SELECT id FROM {ds}.orders ORDER BY id"
        ids = ORDERS.values("id")

        cut = await run_query(host, datasource, sql, limit=2)
        assert [row[0] for row in cut.rows] == ids[:2] and cut.truncated is True

        exact = await run_query(host, datasource, sql, limit=len(ids))
        assert [row[0] for row in exact.rows] == ids and exact.truncated is False

        # The tenant's own, smaller LIMIT is kept and is not a truncation.
        own = await run_query(host, datasource, sql + " LIMIT 3", limit=5)
        assert [row[0] for row in own.rows] == ids[:3] and own.truncated is False

    async def test_a_slow_query_times_out(
        self, host: Host, sample_datasource: SampleFactory, slow_sql: str
    ) -> None:
        datasource = await sample_datasource("sample")
        with pytest.raises(EngineTimeout):
            await run_query(host, datasource, slow_sql, timeout_seconds=1.0)
        # The engine is still usable afterwards.
        result = await run_query(host, datasource, "SELECT count(*) FROM {ds}.customers")
        assert result.rows == [[len(CUSTOMERS.rows)]]

    async def test_mistakes_only_the_engine_sees_are_the_callers_and_name_no_internal_name(
        self, host: Host, sample_datasource: SampleFactory
    ) -> None:
        datasource = await sample_datasource("sample")
        for sql in (
            "SELECT * FROM {ds}.no_such_table",
            "SELECT no_such_column FROM {ds}.customers",
        ):
            # 400, not 502: the caller can fix the statement; the engine did not fail.
            with pytest.raises(QueryFailed) as caught:
                await run_query(host, datasource, sql)
            assert datasource.internal_name.lower() not in caught.value.detail.lower()

    async def test_introspection_describes_the_sample(
        self, host: Host, sample_datasource: SampleFactory, sample_schema: str
    ) -> None:
        datasource = await sample_datasource("sample")
        graph = await host.introspect_datasource(datasource)
        assert sample_schema in graph.schemas
        for sample in SAMPLE_TABLES:
            table = _table(graph.tables, sample_schema, sample.name)
            assert [c.name for c in table.columns] == [c.name for c in sample.columns]
            assert [c.ordinal for c in table.columns] == list(range(1, len(sample.columns) + 1))
            for column, expected in zip(table.columns, sample.columns, strict=True):
                assert column.data_type, f"{sample.name}.{column.name} has no type"
                assert column.primary_key is expected.primary_key, column
                assert column.nullable is expected.nullable, column
                want = (
                    ColumnRef(sample_schema, *expected.references) if expected.references else None
                )
                assert column.references == want, column

    async def test_statistics_agree_with_the_data(
        self, host: Host, sample_datasource: SampleFactory, sample_schema: str
    ) -> None:
        datasource = await sample_datasource("sample")
        graph = await host.introspect_datasource(datasource)
        statistics = await host.compute_statistics(datasource, graph)
        for sample in SAMPLE_TABLES:
            (table,) = [
                t
                for t in statistics.tables
                if t.schema == sample_schema and t.table.lower() == sample.name
            ]
            counted = await run_query(
                host, datasource, f"SELECT count(*) FROM {{ds}}.{sample.name}"
            )
            assert table.row_count == counted.rows[0][0] == len(sample.rows)
            by_name = {c.name: c for c in table.columns}
            assert set(by_name) == {c.name for c in sample.columns}
            for column in sample.columns:
                values = sample.values(column.name)
                present = [v for v in values if v is not None]
                assert by_name[column.name].null_count == len(values) - len(present)
                assert by_name[column.name].distinct_count == len(set(present))
                # min/max are optional ("where cheap"), but right when given.
                if by_name[column.name].min is not None:
                    assert by_name[column.name].min == min(present)
                if by_name[column.name].max is not None:
                    assert by_name[column.name].max == max(present)
