"""Statements Weaver writes for MindsDB: names, parameter literals, native queries."""

from __future__ import annotations

import pytest
from mindsdb_sql_parser import parse_sql
from weaver_mindsdb import statements
from weaver_mindsdb.statements import UnrepresentableParameter

AWKWARD_VALUES = [
    'pa"ss',
    "it's",
    'x""y',
    "é€ 😀",
    "line\nbreak",
    "back\\slash",
    "{}(),; -- /* */",
    "' OR 1=1 --",
    '"}, "host": "evil',
]


@pytest.mark.parametrize("value", AWKWARD_VALUES)
def test_parameter_values_reach_mindsdb_exactly(value: str) -> None:
    parameters = {"host": "db.example", "port": 5432, "password": value, "ssl": True}
    statement = statements.create_database("w_abc_sales", "postgres", parameters)
    parsed = parse_sql(statement)
    assert parsed.parameters == parameters
    assert parsed.engine == "postgres"
    assert parsed.name.parts == ["w_abc_sales"]


@pytest.mark.parametrize("value", ["both\"and'", "ends in \\'", "trailing\\"])
def test_values_mindsdb_would_misread_are_refused(value: str) -> None:
    with pytest.raises(UnrepresentableParameter) as caught:
        statements.create_database("w_abc_sales", "postgres", {"user": "u", "password": value})
    assert caught.value.key == "password"
    assert value not in str(caught.value)


def test_alter_database_carries_nulls_for_dropped_parameters() -> None:
    parameters = {"host": "h", "port": 1, "schema": None}
    parsed = parse_sql(statements.alter_database("w_abc_sales", parameters))
    assert parsed.params == {"parameters": parameters}


@pytest.mark.parametrize("name", ["Sales", "w-x", "w_x`; DROP DATABASE y", "", "a.b"])
def test_only_internal_names_are_quoted(name: str) -> None:
    with pytest.raises(ValueError):
        statements.quote_name(name)


def test_drop_is_idempotent_and_quoted() -> None:
    parsed = parse_sql(statements.drop_database("w_abc_sales"))
    assert parsed.if_exists is True
    assert parsed.name.parts == ["w_abc_sales"]


def test_native_query_text_reaches_the_source_verbatim() -> None:
    native = 'SELECT "we""ird" FROM "s"."t" WHERE x = \'a)b\' AND f(1, (2))'
    parsed = parse_sql(statements.native_query("w_abc_sales", native))
    assert parsed.from_table.query == native
    assert parsed.from_table.integration.parts == ["w_abc_sales"]


def test_native_query_that_would_not_survive_is_refused() -> None:
    with pytest.raises(ValueError):
        statements.native_query("w_abc_sales", "SELECT 1) UNION (SELECT 2")


def test_nested_connection_parameters_read_back_as_written() -> None:
    parameters = {"host": "h", "connection_parameters": {"application_name": "weaver:ds=w_abc_x"}}
    assert parse_sql(statements.create_database("w_abc_x", "postgres", parameters)).parameters == (
        parameters
    )
    parsed = parse_sql(statements.alter_database("w_abc_x", parameters))
    assert parsed.params == {"parameters": parameters}
