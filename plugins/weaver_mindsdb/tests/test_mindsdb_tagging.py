"""The names a statement runs under on its PostgreSQL source."""

from __future__ import annotations

import pytest
from mindsdb_sql_parser import parse_sql
from mindsdb_sql_parser.ast import Select
from weaver_mindsdb import tagging


def test_a_tagged_statement_is_the_statement_inside_a_one_time_guard() -> None:
    sql = "SELECT a, count(*) FROM `w_0123456789ab_s`.t GROUP BY a ORDER BY a DESC LIMIT 11"
    tag = tagging.query_tag("Qx-9_az")
    assert tag == "weaver:q=Qx-9_az"
    wrapped = parse_sql(tagging.tag_statement(sql, tag))
    assert isinstance(wrapped, Select)
    # The inner statement reads back exactly as it was sent.
    inner = wrapped.from_table
    assert inner.alias.parts == ["weaver_tagged"]
    inner.alias, inner.parentheses = None, False
    assert inner == parse_sql(sql)
    assert f"set_config('application_name', '{tag}', true)" in tagging.tag_statement(sql, tag)


@pytest.mark.parametrize("query_id", ["", "a'b", "a b", "x" * 49, "é"])
def test_only_plain_tokens_become_tags(query_id: str) -> None:
    assert tagging.query_tag(query_id) is None


@pytest.mark.parametrize(
    ("sql", "taggable"),
    [
        ("SELECT 1 FROM `w_x`.t", True),
        ("SELECT * FROM (SELECT 1 FROM `w_x`.t) AS s", True),
        ("WITH c AS (SELECT 1 FROM `w_x`.t) SELECT * FROM c", False),
        ("  with c AS (SELECT 1) SELECT * FROM c", False),
        ("(WITH c AS (SELECT 1) SELECT * FROM c) UNION (SELECT 2)", False),
    ],
)
def test_statements_starting_with_with_are_not_wrapped(sql: str, taggable: bool) -> None:
    assert tagging.can_tag(sql) is taggable


def test_datasource_names_fit_postgres() -> None:
    name = tagging.datasource_application_name("w_0123456789ab_" + "n" * 80)
    assert name.startswith("weaver:ds=w_0123456789ab_")
    assert len(name) == tagging.MAX_APPLICATION_NAME
