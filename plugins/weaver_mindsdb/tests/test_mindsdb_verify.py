"""The defence in depth: the rendered statement, as MindsDB's own parser reads it."""

from __future__ import annotations

import pytest
from weaver_mindsdb.service import DIALECT
from weaver_mindsdb.verify import verify_rendered

from weaver import sql
from weaver.errors import InvalidQuery

NAMES = {name: f"w_0123456789ab_{name}" for name in ("sales", "crm")}
INTERNAL = list(NAMES.values())


def render(tenant_sql: str, limit: int = 100) -> str:
    """What the core hands the plugin for ``tenant_sql``, in MindsDB's dialect."""
    used = sql.check(tenant_sql, DIALECT.name).datasources
    names = tuple(sorted((n, NAMES[n]) for n in used))
    return sql.render(tenant_sql, DIALECT, names, limit + 1)


@pytest.mark.parametrize(
    "tenant_sql",
    [
        "SELECT * FROM sales.orders WHERE id = 42",
        "SELECT o.id, t.tier FROM sales.public.orders AS o "
        "JOIN crm.tiers AS t ON o.customer_id = t.customer_id",
        "WITH big AS (SELECT * FROM sales.orders WHERE total > 10) SELECT count(*) FROM big",
        "SELECT * FROM (SELECT id FROM sales.orders) AS s",
        "SELECT id FROM sales.orders WHERE customer_id IN (SELECT customer_id FROM crm.tiers)",
        "SELECT id FROM sales.orders UNION SELECT customer_id FROM crm.tiers",
        "SELECT CASE WHEN total > 1 THEN 'big' END, CAST(id AS CHAR), "
        "row_number() OVER (ORDER BY id) FROM sales.orders",
        "SELECT DISTINCT segment FROM sales.customers WHERE notes LIKE '%x%' "
        "AND shipped_at IS NOT NULL AND id BETWEEN 1 AND 5 AND flag = TRUE",
        "SELECT EXTRACT(YEAR FROM d) AS y, count(DISTINCT c) FROM sales.orders "
        "GROUP BY 1 HAVING count(*) > 1 ORDER BY 1 DESC LIMIT 10 OFFSET 20",
        "SELECT * FROM sales.orders WHERE d > DATE_SUB(CURRENT_DATE, INTERVAL 30 DAY)",
        "SELECT * FROM sales.orders AS o WHERE NOT EXISTS "
        "(SELECT 1 FROM crm.tiers AS t WHERE t.customer_id = o.customer_id)",
        "SELECT o.id FROM sales.orders AS o LEFT JOIN crm.tiers AS t ON t.id = o.id "
        "CROSS JOIN crm.regions AS r",
        "SELECT CAST(total AS DECIMAL(10, 2)), COALESCE(note, '-'), CONCAT(a, b) FROM sales.orders",
        "SELECT 1",
    ],
)
def test_reads_of_the_named_datasources_pass(tenant_sql: str) -> None:
    verify_rendered(render(tenant_sql), INTERNAL)


def test_the_row_limit_is_one_more_than_asked_and_a_smaller_one_is_kept() -> None:
    assert render("SELECT * FROM sales.orders", 10).endswith("LIMIT 11")
    assert render("SELECT * FROM sales.orders LIMIT 3", 10).endswith("LIMIT 3")
    assert render("SELECT * FROM sales.orders LIMIT 500", 10).endswith("LIMIT 11")


@pytest.mark.parametrize(
    "rendered",
    [
        # What a tenant must never get through, however the first parser read it.
        "SELECT * FROM w_0123456789ab_sales (DROP TABLE orders)",
        "SELECT * FROM w_0123456789ab_sales.orders JOIN w_fedcba987654_sales.orders",
        "SELECT * FROM information_schema.databases",
        "SELECT * FROM mindsdb.models",
        "SELECT * FROM orders",
        "SELECT * FROM w_0123456789ab_sales.orders FOR UPDATE",
        "SELECT @@version FROM w_0123456789ab_sales.orders",
        "DELETE FROM w_0123456789ab_sales.orders",
        "SHOW DATABASES",
        "SELECT * FROM w_0123456789ab_sales.orders; DROP DATABASE w_0123456789ab_sales",
        "SELECT (SELECT x FROM files.secret) FROM w_0123456789ab_sales.orders",
        "SELECT * FROM w_0123456789ab_sales.orders USING engine = 'x'",
        "not sql at all",
    ],
)
def test_anything_else_is_refused(rendered: str) -> None:
    with pytest.raises(InvalidQuery):
        verify_rendered(rendered, INTERNAL)


def test_a_cte_name_is_a_table_only_where_it_is_defined() -> None:
    verify_rendered("WITH c AS (SELECT 1 AS x) SELECT * FROM c", INTERNAL)
    with pytest.raises(InvalidQuery):
        verify_rendered("SELECT * FROM c", INTERNAL)


def test_remembered_answers_depend_on_the_datasources_and_refusals_are_not_remembered() -> None:
    statement = render("SELECT * FROM sales.orders")
    verify_rendered(statement, INTERNAL)
    verify_rendered(statement, INTERNAL)
    # The same text with other datasources in the query is judged again, and refused.
    with pytest.raises(InvalidQuery):
        verify_rendered(statement, ["w_0123456789ab_crm"])
    for _ in range(2):
        with pytest.raises(InvalidQuery):
            verify_rendered("SELECT * FROM w_0123456789ab_sales (SELECT 1)", INTERNAL)
