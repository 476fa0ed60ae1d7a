"""The query path's SQL checks: what is refused, what is collected, how names are rewritten."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlglot import exp

from weaver import sql
from weaver.errors import InvalidQuery, NotFound
from weaver.naming import internal_name, public_names
from weaver.sql import (
    SYSTEM_DATABASES,
    parse_read_only,
    referenced_datasources,
    render,
    to_internal_names,
    with_limit,
)
from weaver.types import Datasource, SqlDialect


def datasource(name: str, tenant_id: str = "t1") -> Datasource:
    now = datetime.now(UTC)
    return Datasource(
        tenant_id, name, "sqlite", internal_name(tenant_id, name), {}, "", (), None, now, now
    )


# Public name -> internal name, as the core renders them (readable stand-ins here).
INTERNAL = {"sales": "w_t1_sales", "crm": "w_t1_crm"}


def check(sql: str, dialect: str | None = None) -> set[str]:
    return referenced_datasources(parse_read_only(sql, dialect))


# --- refused statements -------------------------------------------------------------


@pytest.mark.parametrize(
    ("sql", "dialect"),
    [
        ("INSERT INTO sales.t VALUES (1)", None),
        ("INSERT INTO sales.t SELECT * FROM crm.u", "mysql"),
        ("UPDATE sales.t SET a = 1", None),
        ("DELETE FROM sales.t", "sqlite"),
        ("MERGE INTO sales.t USING crm.u ON 1 = 1 WHEN MATCHED THEN DELETE", "postgres"),
        ("REPLACE INTO sales.t VALUES (1)", "sqlite"),
        ("CREATE TABLE sales.x (a INT)", None),
        ("CREATE TABLE sales.x AS SELECT 1", "sqlite"),
        ("DROP TABLE sales.t", None),
        ("ALTER TABLE sales.t ADD COLUMN b INT", None),
        ("TRUNCATE TABLE sales.t", "mysql"),
        ("PRAGMA writable_schema = 1", "sqlite"),
        ("ATTACH DATABASE '/etc/passwd' AS x", "sqlite"),
        ("DETACH DATABASE x", "sqlite"),
        ("VACUUM INTO '/tmp/copy.db'", "sqlite"),
        ("SET sql_safe_updates = 0", "mysql"),
        ("COPY sales.t TO '/tmp/out.csv'", "postgres"),
        ("SELECT * INTO sales.copy FROM sales.t", "postgres"),
        ("SELECT * FROM sales.t FOR UPDATE", "postgres"),
        ("SELECT * FROM sales.t FOR SHARE", "postgres"),
        ("SELECT * FROM sales.t LOCK IN SHARE MODE", "mysql"),
        ("WITH gone AS (DELETE FROM sales.t RETURNING *) SELECT * FROM gone", "postgres"),
        ("SHOW TABLES", "mysql"),
        ("DESCRIBE sales.t", "mysql"),
        ("EXPLAIN SELECT 1", "sqlite"),
        ("CALL sales.proc()", "mysql"),
        ("BEGIN", None),
        ("COMMIT", None),
        ("USE sales", "mysql"),
        ("VALUES (1, 2)", None),
        ("GRANT SELECT ON sales.t TO someone", "postgres"),
        ("SELECT load_extension('/tmp/evil.so')", "sqlite"),
        ("SELECT readfile('/etc/passwd')", "sqlite"),
        ("SELECT LOAD_FILE('/etc/passwd')", "mysql"),
        ("SELECT pg_read_file('/etc/passwd')", "postgres"),
        ("SELECT set_config('search_path', 'x', false)", "postgres"),
        ("SELECT setval('sales.seq', 1)", "postgres"),
        ("SELECT /*+ SET_VAR(sql_mode = '') */ a FROM sales.t", "mysql"),
    ],
)
def test_anything_but_a_read_is_refused(sql: str, dialect: str | None) -> None:
    with pytest.raises(InvalidQuery):
        parse_read_only(sql, dialect)


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT 1; DROP TABLE sales.t",
        "SELECT 1; SELECT 2",
        "SELECT 1 /* ; */ ; DELETE FROM sales.t",
        "SELECT 1 -- comment\n; DELETE FROM sales.t",
    ],
)
def test_more_than_one_statement_is_refused(sql: str) -> None:
    with pytest.raises(InvalidQuery, match="exactly one statement"):
        parse_read_only(sql, "sqlite")


@pytest.mark.parametrize(
    ("sql", "dialect"),
    [
        ("SELECT a FROM sales.t /* ; DROP TABLE sales.t */", "sqlite"),
        ("SELECT a FROM sales.t -- ; DROP TABLE sales.t", "sqlite"),
        ("SELECT a /*! , (SELECT 1) */ FROM sales.t", "mysql"),
        ("SELECT a FROM sales.t # note", "mysql"),
    ],
)
def test_comments_are_dropped(sql: str, dialect: str) -> None:
    statement = parse_read_only(sql, dialect)
    assert isinstance(statement, exp.Select)
    rendered = statement.sql(dialect)
    assert "/*" not in rendered and "--" not in rendered and "DROP" not in rendered
    assert rendered == "SELECT a FROM sales.t"


@pytest.mark.parametrize(
    ("sql", "dialect"),
    [
        ("SELECT * FROM sales.t WHERE a = ?", "sqlite"),
        ("SELECT * FROM sales.t WHERE a = :a", "sqlite"),
        ("SELECT * FROM sales.t WHERE a = $1", "postgres"),
    ],
)
def test_parameters_are_refused(sql: str, dialect: str) -> None:
    with pytest.raises(InvalidQuery, match="parameters"):
        parse_read_only(sql, dialect)


@pytest.mark.parametrize("sql", ["", "   ", "\n\t", ";", " ; ; ", "-- only a comment\n"])
def test_empty_text_is_refused(sql: str) -> None:
    with pytest.raises(InvalidQuery, match="empty"):
        parse_read_only(sql, None)


@pytest.mark.parametrize("sql", ["SELEC 1", "SELECT * FROM", "SELECT 'open", "SELECT (1"])
def test_unparseable_text_is_refused(sql: str) -> None:
    with pytest.raises(InvalidQuery, match="could not parse"):
        parse_read_only(sql, "sqlite")


def test_parse_errors_quote_only_a_short_excerpt() -> None:
    secretish = "x" * 500
    with pytest.raises(InvalidQuery) as caught:
        parse_read_only(f"SELECT * FROM sales.t WHERE a = ( {secretish}", "sqlite")
    assert len(caught.value.detail) < 200
    assert secretish not in caught.value.detail


def test_deep_nesting_is_refused_not_crashed() -> None:
    with pytest.raises(InvalidQuery):
        parse_read_only("SELECT " + "(" * 20000 + "1" + ")" * 20000, "sqlite")


# --- accepted reads -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("sql", "expected"),
    [
        ("SELECT * FROM sales.orders", {"sales"}),
        ("SELECT o.id FROM sales.orders AS o JOIN crm.customers c ON o.c = c.id", {"sales", "crm"}),
        ("SELECT * FROM sales.public.orders", {"sales"}),
        ("SELECT * FROM sales.orders WHERE id IN (SELECT id FROM crm.customers)", {"sales", "crm"}),
        ("SELECT * FROM (SELECT id FROM sales.orders) AS sub", {"sales"}),
        ("WITH recent AS (SELECT * FROM sales.orders) SELECT * FROM recent", {"sales"}),
        ("SELECT id FROM sales.a UNION SELECT id FROM crm.b", {"sales", "crm"}),
        ("SELECT id FROM sales.a INTERSECT SELECT id FROM crm.b", {"sales", "crm"}),
        ("SELECT id FROM sales.a EXCEPT SELECT id FROM crm.b", {"sales", "crm"}),
        ("(SELECT 1)", set()),
        ("SELECT 1 + 1", set()),
        ("SELECT count(*) FROM sales.t GROUP BY a HAVING count(*) > 1 ORDER BY 1", {"sales"}),
        (
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 5) "
            "SELECT * FROM n",
            set(),
        ),
        ("WITH a AS (SELECT 1 AS n), b AS (SELECT n FROM a) SELECT * FROM b", set()),
        (
            "WITH a AS (SELECT id FROM sales.t) SELECT id FROM a UNION SELECT id FROM a",
            {"sales"},
        ),
        ("SELECT * FROM sales.t WHERE id IN (WITH a AS (SELECT 1) SELECT * FROM a)", {"sales"}),
        ("SELECT sales.orders.id FROM sales.orders", {"sales"}),
        ("SELECT sales.public.orders.id FROM sales.public.orders", {"sales"}),
        ("SELECT sales.orders.* FROM sales.orders", {"sales"}),
    ],
)
def test_reads_are_accepted_and_their_datasources_collected(sql: str, expected: set[str]) -> None:
    assert check(sql, "sqlite") == expected


def test_quoted_and_mixed_case_names_are_lower_cased() -> None:
    assert check('SELECT * FROM "Sales"."Orders" JOIN CRM.t ON 1 = 1', "sqlite") == {
        "sales",
        "crm",
    }
    assert check("SELECT * FROM `Sales`.`Orders`", "mysql") == {"sales"}


def test_the_same_statement_is_returned_parsed() -> None:
    statement = parse_read_only("SELECT a FROM sales.t WHERE b = 1", "mysql")
    assert statement.sql("mysql") == "SELECT a FROM sales.t WHERE b = 1"


# --- qualifier checks ---------------------------------------------------------------


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT * FROM orders",
        "SELECT * FROM sales.orders JOIN customers ON 1 = 1",
        "SELECT * FROM sales.orders WHERE id IN (SELECT id FROM customers)",
        # A CTE name is visible only inside the query that defines it,
        "SELECT * FROM (WITH x AS (SELECT 1) SELECT * FROM x) AS a JOIN x ON 1 = 1",
        # not inside its own body unless RECURSIVE (there, `x` is some table named x),
        "WITH x AS (SELECT * FROM x) SELECT * FROM x",
        # and not inside the body of an earlier CTE.
        "WITH a AS (SELECT * FROM b), b AS (SELECT 1) SELECT * FROM a",
    ],
)
def test_unqualified_tables_are_refused(sql: str) -> None:
    with pytest.raises(InvalidQuery, match=r"<datasource>\.<table>"):
        check(sql, "sqlite")


@pytest.mark.parametrize("name", sorted(SYSTEM_DATABASES))
def test_system_databases_are_refused(name: str) -> None:
    with pytest.raises(InvalidQuery, match="system database"):
        check(f"SELECT * FROM {name}.some_table", "mysql")


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT * FROM information_schema.tables",
        "SELECT * FROM INFORMATION_SCHEMA.COLUMNS",
        'SELECT * FROM "Information_Schema".tables',
        "SELECT * FROM mindsdb.models",
        "SELECT * FROM sales.t JOIN mindsdb.models.m ON 1 = 1",
        "SELECT * FROM sales.t WHERE a IN (SELECT a FROM pg_catalog.pg_user)",
        "SELECT mysql.user.password FROM sales.t",
    ],
)
def test_system_databases_are_refused_anywhere(sql: str) -> None:
    with pytest.raises(InvalidQuery, match="not queryable"):
        check(sql, "mysql")


@pytest.mark.parametrize(
    ("sql", "dialect"),
    [
        ("SELECT * FROM pragma_table_info('orders')", "sqlite"),
        ("SELECT * FROM sales.t, json_each(sales.t.doc)", "sqlite"),
        ("SELECT * FROM read_csv('/etc/passwd')", "duckdb"),
        ("SELECT * FROM generate_series(1, 10)", "postgres"),
        ("SELECT * FROM sales.t, LATERAL (SELECT 1) AS x", "postgres"),
        ("SELECT * FROM UNNEST([1, 2])", "bigquery"),
        # MindsDB's native query: the inner text would run unchecked on the source.
        ("SELECT * FROM sales (SELECT * FROM pg_shadow)", "mysql"),
        ("SELECT * FROM a.b.c.d", "mysql"),
        ("SELECT * FROM sales.t, ROWS FROM (generate_series(1, 2))", "postgres"),
        ("SELECT * FROM sales.json_each('[1]')", "sqlite"),
        ("SELECT * FROM sales.t WHERE a IN (SELECT value FROM json_each('[1]'))", "sqlite"),
    ],
)
def test_table_sources_that_are_not_tables_are_refused(sql: str, dialect: str) -> None:
    with pytest.raises(InvalidQuery):
        check(sql, dialect)


# --- rewriting ----------------------------------------------------------------------


def test_two_and_three_part_names_are_rewritten_in_sqlite() -> None:
    statement = parse_read_only(
        "SELECT sales.orders.id, c.name FROM sales.orders "
        "JOIN crm.main.customers AS c ON sales.orders.c = c.id",
        "sqlite",
    )
    rewritten = to_internal_names(statement, INTERNAL, schema_as_catalog=False)
    assert rewritten.sql("sqlite") == (
        "SELECT w_t1_sales.orders.id, c.name FROM w_t1_sales.orders "
        "JOIN w_t1_crm.customers AS c ON w_t1_sales.orders.c = c.id"
    )


def test_three_part_names_keep_their_schema_with_schemas() -> None:
    statement = parse_read_only(
        "SELECT `Sales`.`public`.`orders`.`id` FROM `Sales`.`public`.`orders` "
        "JOIN crm.t USING (id)",
        "mysql",
    )
    rewritten = to_internal_names(statement, INTERNAL)
    assert rewritten.sql("mysql") == (
        "SELECT w_t1_sales.`public`.`orders`.`id` FROM w_t1_sales.`public`.`orders` "
        "JOIN w_t1_crm.t USING (id)"
    )


def test_rewriting_reaches_ctes_subqueries_and_set_operations() -> None:
    statement = parse_read_only(
        "WITH x AS (SELECT id FROM sales.a) SELECT id FROM x "
        "WHERE id IN (SELECT id FROM crm.b) UNION SELECT id FROM sales.c",
        "mysql",
    )
    rendered = to_internal_names(statement, INTERNAL).sql("mysql")
    assert " sales." not in rendered and " crm." not in rendered
    assert rendered.count("w_t1_sales.") == 2 and rendered.count("w_t1_crm.") == 1
    # The CTE keeps its own, unqualified name.
    assert "FROM x" in rendered


def test_a_schema_other_than_main_is_refused_for_sqlite() -> None:
    statement = parse_read_only("SELECT * FROM sales.public.orders", "sqlite")
    with pytest.raises(InvalidQuery, match="schema"):
        to_internal_names(statement, INTERNAL, schema_as_catalog=False)


def test_the_input_is_not_mutated() -> None:
    statement = parse_read_only("SELECT sales.t.a FROM sales.t JOIN crm.main.u ON 1 = 1", "sqlite")
    before = statement.sql("sqlite")
    to_internal_names(statement, INTERNAL, schema_as_catalog=False)
    to_internal_names(statement, INTERNAL)
    assert statement.sql("sqlite") == before


def test_internal_names_that_need_quoting_are_quoted() -> None:
    odd = {"sales": "tenant-1 sales"}
    statement = parse_read_only("SELECT * FROM sales.t", "sqlite")
    assert to_internal_names(statement, odd).sql("sqlite") == 'SELECT * FROM "tenant-1 sales".t'
    assert to_internal_names(statement, odd).sql("mysql") == "SELECT * FROM `tenant-1 sales`.t"


def test_a_datasource_missing_from_the_mapping_is_not_found() -> None:
    statement = parse_read_only("SELECT * FROM other.t", "sqlite")
    with pytest.raises(NotFound, match="other"):
        to_internal_names(statement, INTERNAL)


# --- limits -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sql", "limit", "expected"),
    [
        ("SELECT a FROM sales.t", 10, "SELECT a FROM sales.t LIMIT 10"),
        ("SELECT a FROM sales.t LIMIT 5", 10, "SELECT a FROM sales.t LIMIT 5"),
        ("SELECT a FROM sales.t LIMIT 500", 10, "SELECT a FROM sales.t LIMIT 10"),
        ("SELECT a FROM sales.t LIMIT 500 OFFSET 7", 10, "SELECT a FROM sales.t LIMIT 10 OFFSET 7"),
        ("SELECT a FROM sales.t UNION SELECT a FROM crm.u", 3, None),
    ],
)
def test_with_limit_never_loosens_a_smaller_limit(sql: str, limit: int, expected: str) -> None:
    statement = parse_read_only(sql, "sqlite")
    limited = with_limit(statement, limit)
    if expected is not None:
        assert limited.sql("sqlite") == expected
    else:
        assert limited.sql("sqlite").endswith(f"LIMIT {limit}")
    assert statement.sql("sqlite") == sql  # the input is untouched


def test_with_limit_can_work_in_place_on_a_private_copy() -> None:
    statement = parse_read_only("SELECT a FROM sales.t", "sqlite")
    limited = with_limit(statement, 3, copy=False)
    assert limited is statement
    assert statement.sql("sqlite") == "SELECT a FROM sales.t LIMIT 3"


def test_with_limit_wraps_limits_it_cannot_read() -> None:
    statement = parse_read_only("SELECT a FROM sales.t LIMIT (SELECT 3)", "sqlite")
    assert with_limit(statement, 10).sql("sqlite") == (
        "SELECT * FROM (SELECT a FROM sales.t LIMIT (SELECT 3)) AS limited LIMIT 10"
    )


# --- error messages -----------------------------------------------------------------


def test_internal_names_are_replaced_in_engine_messages() -> None:
    sales, crm, sales2 = datasource("sales"), datasource("crm"), datasource("sales_2")
    other_tenant = datasource("secret", tenant_id="t2")
    message = (
        f"no such table: {sales.internal_name.upper()}.orders (near {crm.internal_name}.x); "
        f"{sales2.internal_name} is another; {other_tenant.internal_name} belongs to no one here"
    )
    assert public_names(message, [sales, crm, sales2]) == (
        "no such table: sales.orders (near crm.x); sales_2 is another; "
        "<datasource> belongs to no one here"
    )


def test_messages_without_internal_names_are_unchanged() -> None:
    assert public_names("syntax error", [datasource("sales")]) == "syntax error"
    assert public_names("syntax error", []) == "syntax error"


# --- rendering once, by value -------------------------------------------------------


def test_the_engine_text_is_rendered_from_the_tenant_text_and_remembered_by_value() -> None:
    dialect = SqlDialect("sqlite", schemas=False)
    names = (("crm", "w_t1_crm"), ("sales", "w_t1_sales"))
    text = "SELECT s.id FROM sales.orders AS s JOIN crm.main.c ON c.id = s.c"
    first = render(text, dialect, names, 11)
    assert first == (
        "SELECT s.id FROM w_t1_sales.orders AS s JOIN w_t1_crm.c ON c.id = s.c LIMIT 11"
    )
    # The same text, dialect, names and limit: the same string, not rendered again.
    assert render(text, dialect, names, 11) is first
    # Other names (another tenant's datasources) or another limit: another rendering.
    other = (("crm", "w_t2_crm"), ("sales", "w_t2_sales"))
    assert "w_t2_sales" in render(text, dialect, other, 11)
    assert render(text, dialect, names, 3).endswith("LIMIT 3")
    # The shared, checked tree stays as the tenant wrote it.
    assert sql.check(text, "sqlite").tree.sql("sqlite") == text


# --- engines that read a two-part name as schema.table (Trino) ------------------------

TRINO = SqlDialect("trino", default_schemas=(("postgres", "public"),))


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT * FROM system.runtime.queries",
        "SELECT * FROM sales.t JOIN system.runtime.nodes AS n ON 1 = 1",
        "SELECT system.runtime.queries.query FROM sales.public.t",
        "SELECT * FROM tpch.tiny.nation",
        "SELECT * FROM jmx.current.x",
        "SELECT * FROM memory.default.x",
    ],
)
def test_trinos_own_catalogs_are_refused(sql: str) -> None:
    with pytest.raises(InvalidQuery, match="not queryable"):
        check(sql, "trino")


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT * FROM TABLE(sales.system.query(query => 'SELECT * FROM pg_shadow'))",
        "SELECT * FROM sales.public.t JOIN TABLE(sales.system.query(query => 'x')) AS q ON 1 = 1",
        "SELECT * FROM sales.t WHERE EXISTS (SELECT 1 FROM TABLE(system.query(query => 'x')))",
        "SELECT * FROM TABLE(exclude_columns(input => TABLE(sales.public.t), columns => "
        "DESCRIPTOR(a)))",
        "SELECT * FROM TABLE(sequence(start => 1, stop => 10))",
        "SELECT * FROM sales.system.query(query => 'x')",
    ],
)
def test_table_functions_are_refused(sql: str) -> None:
    with pytest.raises(InvalidQuery):
        check(sql, "trino")


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT sales.system.query(query => 'x') FROM sales.public.t",
        "SELECT system.builtin.abs(1) FROM sales.public.t",
        "SELECT w_0123456789ab_other.public.f(1) FROM sales.public.t",
        "SELECT `x`.pg_read_file('/etc/passwd') FROM sales.t",
    ],
)
def test_qualified_function_names_are_refused(sql: str) -> None:
    with pytest.raises(InvalidQuery, match="bare name"):
        check(sql, "mysql" if "`" in sql else "trino")


def test_row_fields_and_lambdas_are_not_qualified_functions() -> None:
    assert check(
        "SELECT CAST(ROW(1) AS ROW(x INT)).x, transform(ARRAY[1], v -> v + 1) FROM sales.public.t",
        "trino",
    ) == {"sales"}


def test_execute_immediate_is_refused() -> None:
    with pytest.raises(InvalidQuery, match="only SELECT"):
        check("EXECUTE IMMEDIATE 'SELECT * FROM system.runtime.queries'", "trino")


def test_four_part_column_references_name_a_datasource_the_core_checks() -> None:
    # `ds.schema.table.column` names its datasource like a table does: collected (so a
    # datasource of another tenant is not found) and renamed.
    assert check("SELECT other.public.t.c FROM sales.public.t", "trino") == {"other", "sales"}
    statement = parse_read_only("SELECT crm.public.t.c FROM crm.public.t", "trino")
    assert to_internal_names(statement, INTERNAL).sql("trino") == (
        "SELECT w_t1_crm.public.t.c FROM w_t1_crm.public.t"
    )


def test_two_part_names_get_the_datasources_default_schema() -> None:
    statement = parse_read_only(
        "SELECT sales.orders.id, c.name FROM sales.orders "
        "JOIN crm.crm.customers AS c ON sales.orders.c = c.id",
        "trino",
    )
    rewritten = to_internal_names(
        statement, INTERNAL, default_schemas={"sales": "public", "crm": None}
    )
    assert rewritten.sql("trino") == (
        "SELECT w_t1_sales.public.orders.id, c.name FROM w_t1_sales.public.orders "
        "JOIN w_t1_crm.crm.customers AS c ON w_t1_sales.public.orders.c = c.id"
    )


def test_a_two_part_name_without_a_default_schema_is_refused_with_the_form_to_write() -> None:
    statement = parse_read_only("SELECT * FROM crm.customers", "trino")
    with pytest.raises(InvalidQuery, match=r"crm\.<schema>\.<table>"):
        to_internal_names(statement, INTERNAL, default_schemas={"crm": None})


def test_rendering_chooses_the_default_schema_by_datasource_engine() -> None:
    names = (("crm", "w_t1_crm"), ("sales", "w_t1_sales"))
    text = "SELECT s.id FROM sales.orders AS s JOIN crm.crm.tiers AS t ON t.id = s.id"
    rendered = render(text, TRINO, names, 11, (("crm", "mysql"), ("sales", "postgres")))
    assert rendered == (
        "SELECT s.id FROM w_t1_sales.public.orders AS s "
        "JOIN w_t1_crm.crm.tiers AS t ON t.id = s.id LIMIT 11"
    )
    with pytest.raises(InvalidQuery, match="name the schema"):
        render("SELECT * FROM crm.tiers", TRINO, names, 11, (("crm", "mysql"),))
    # Without default schemas (MindsDB), two-part names stay two-part.
    assert render("SELECT * FROM sales.t", SqlDialect("mysql"), names, 11) == (
        "SELECT * FROM w_t1_sales.t LIMIT 11"
    )
