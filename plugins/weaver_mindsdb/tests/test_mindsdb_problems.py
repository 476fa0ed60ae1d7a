"""MindsDB's refusals, word for word as MindsDB 26.1 sends them, classified: the
caller's mistakes are 400, the engine's failures 502, and neither detail carries
MindsDB's preamble, its rewritten query or an internal name."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from weaver_mindsdb.problems import query_problem, read_message

from weaver.errors import EngineFailed, QueryFailed
from weaver.types import Datasource

INTERNAL = "w_0123456789ab_sales"
PREAMBLE = (
    "An error occurred while executing a derived query on the external database during "
    "processing of your original SQL query.\n\nDatabase Details:\n- Name: "
    f"{INTERNAL}\n- Type: postgres\n\nError:\n"
)
SALES = Datasource(
    tenant_id="t",
    name="sales",
    engine="postgres",
    internal_name=INTERNAL,
    connection={"host": "db", "user": "u"},
    sealed_secrets="",
    secret_keys=("password",),
    description=None,
    created_at=datetime.now(UTC),
    updated_at=datetime.now(UTC),
)


def derived(error: str, failed: str) -> str:
    return f"{PREAMBLE}{error}\n\nFailed Query:\n    {failed}"


CALLERS = {
    "unknown table": (
        derived(
            '    relation "no_such_table" does not exist\n    LINE 2: FROM no_such_table\n'
            "                 ^",
            "SELECT * FROM no_such_table",
        ),
        'sales (postgres): relation "no_such_table" does not exist',
    ),
    "unknown column": (
        derived(
            '    column "no_such_col" does not exist\n    LINE 1: ...CLARE '
            '"mindsdb_139659678971344" CURSOR FOR SELECT no_such_co...\n'
            "                                                                 ^",
            "SELECT no_such_col AS no_such_col FROM big LIMIT 1",
        ),
        'sales (postgres): column "no_such_col" does not exist',
    ),
    "type mismatch": (
        derived(
            '    invalid input syntax for type integer: "abc"\n'
            "    LINE 3: WHERE qty = 'abc' \n                        ^",
            "SELECT id AS id FROM big WHERE qty = 'abc' LIMIT 1",
        ),
        'sales (postgres): invalid input syntax for type integer: "abc"',
    ),
    "$1 read as a column": (
        derived(
            '    column "$1" does not exist\n    LINE 3: WHERE id = "$1"\n                       ^',
            "SELECT id AS id FROM big WHERE id = `$1`",
        ),
        'sales (postgres): column "$1" does not exist',
    ),
    "division by zero on a constant": (
        derived("    division by zero", "SELECT 1 / 0 AS x FROM big LIMIT 1"),
        "sales (postgres): division by zero",
    ),
    "unknown function, with its hint": (
        derived(
            "    function no_such_fn(bigint) does not exist\n    LINE 1: ...CLARE "
            '"mindsdb_139659417338960" CURSOR FOR SELECT no_such_fn...\n'
            "                                                                 ^\n"
            "    HINT:  No function matches the given name and argument types. You might "
            "need to add explicit type casts.",
            "SELECT no_such_fn(id) FROM big LIMIT 1",
        ),
        "sales (postgres): function no_such_fn(bigint) does not exist HINT: No function "
        "matches the given name and argument types. You might need to add explicit type "
        "casts.",
    ),
    "permission denied": (
        derived("    permission denied for table big_private", "SELECT * FROM big_private"),
        "sales (postgres): permission denied for table big_private",
    ),
    "ambiguous column": (
        derived(
            '    column reference "id" is ambiguous\n    LINE 1: DECLARE "mindsdb_1" '
            "CURSOR FOR SELECT id \n                                   ^",
            "SELECT id FROM small AS s JOIN big AS b ON s.id = b.id LIMIT 2",
        ),
        'sales (postgres): column reference "id" is ambiguous',
    ),
    "grouping": (
        derived(
            '    column "small.name" must appear in the GROUP BY clause or be used in an '
            "aggregate function",
            "SELECT id, name, count(*) FROM small GROUP BY id",
        ),
        'sales (postgres): column "small.name" must appear in the GROUP BY clause or be used '
        "in an aggregate function",
    ),
    "parameter not set (?)": (
        "Parameter is not set: ?",
        "query parameter ? has no value: write values into the statement",
    ),
    "parameter not set (:p)": (
        "Parameter is not set: p",
        "query parameter p has no value: write values into the statement",
    ),
    "something MindsDB evaluates itself": (
        "An error occurred while processing an internally generated query derived from "
        "your original SQL statement.\n\nDatabase Details:\n- Type: DuckDB\n\nError:\n"
        "    Unknown function: 'no_such'. This function is not recognized during internal "
        "query processing.\n    Please use DuckDB-supported functions instead.\n\n"
        "Failed Query:\n    SELECT no_such(x) FROM df",
        "the query engine cannot evaluate this statement: Unknown function: 'no_such'. This "
        "function is not recognized during internal query processing. Please use "
        "DuckDB-supported functions instead.",
    ),
}


@pytest.mark.parametrize("case", sorted(CALLERS))
def test_the_callers_mistakes_are_400_in_the_sources_words(case: str) -> None:
    message, detail = CALLERS[case]
    problem = query_problem(message, datasources=[SALES])
    assert isinstance(problem, QueryFailed), problem
    assert problem.status == 400
    assert problem.detail == detail


def test_an_unparseable_statement_keeps_the_reason_not_the_rewritten_text() -> None:
    sent = f"SELEC id FROM {INTERNAL}.big"
    message = (
        f"The SQL statement cannot be parsed - {sent}: Syntax error, unknown input:\n"
        f">{sent}\n-^^^^^"
    )
    problem = query_problem(message, statement=sent, datasources=[SALES])
    assert isinstance(problem, QueryFailed)
    assert problem.detail == (
        "the query engine could not parse the statement: Syntax error, unknown input"
    )


ENGINES = {
    "a poisoned pooled connection": f"[postgres/{INTERNAL}]: the connection is closed",
    "a lost connection (HTTP 500 detail)": "the connection is lost",
    "a refused connection": 'Can\'t connect to db: connection to server at "db" failed',
    "the source timing out": derived(
        "    canceling statement due to statement timeout", "SELECT * FROM big"
    ),
    "a database that is gone": derived('    database "gone" does not exist', "SELECT * FROM big"),
    "the source out of connections": derived(
        "    remaining connection slots are reserved for non-replication superuser connections",
        "SELECT 1",
    ),
}


@pytest.mark.parametrize("case", sorted(ENGINES))
def test_the_engines_failures_are_502(case: str) -> None:
    problem = query_problem(ENGINES[case], datasources=[SALES])
    assert isinstance(problem, EngineFailed), problem
    assert INTERNAL not in problem.detail
    assert "derived query" not in problem.detail and "Failed Query" not in problem.detail


def test_a_datasource_mindsdb_lost_is_the_engines_failure() -> None:
    message = (
        f"Table '{INTERNAL}.big' not found in the database. The project database support "
        "only single-part names: mindsdb"
    )
    problem = query_problem(message, datasources=[SALES])
    assert isinstance(problem, EngineFailed)
    assert "sales" in problem.detail and INTERNAL not in problem.detail


def test_secrets_quoted_by_the_source_are_masked() -> None:
    message = derived('    relation "hunter22" does not exist', "SELECT * FROM hunter22")
    problem = query_problem(message, datasources=[SALES], secrets=["hunter22"])
    assert "hunter22" not in problem.detail


def test_a_message_is_read_apart() -> None:
    parsed = read_message(CALLERS["unknown table"][0])
    assert parsed.external is True
    assert (parsed.database, parsed.handler) == (INTERNAL, "postgres")
    assert parsed.error is not None and parsed.error.startswith('relation "no_such_table"')
    assert read_message("Parameter is not set: p").external is None
