"""`POST /api/query` on the embedded SQLite engine."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import TENANT_B, TIERS_SCHEMA, assert_problem
from weaver.responses import dumps


async def query(client: Any, auth: Any, sql: str, **extra: Any) -> Any:
    return await client.post("/api/query", json={"sql": sql, **extra}, headers=auth())


async def test_select_returns_columns_rows_and_counts(client: Any, auth: Any, shop: str) -> None:
    response = await query(client, auth, "SELECT id, name FROM shop.customers ORDER BY id")
    assert response.status == 200
    body = await response.json()
    assert [c["name"] for c in body["columns"]] == ["id", "name"]
    assert body["rows"] == [[1, "Ada"], [2, "Bo"], [3, "Cy"]]
    assert body["row_count"] == 3
    assert body["truncated"] is False
    assert body["elapsed_ms"] >= 0


async def test_values_become_json_without_losing_what_they_were(
    client: Any, auth: Any, shop: str
) -> None:
    response = await query(
        client,
        auth,
        "SELECT 1 AS i, 2.5 AS r, 'ü' AS t, NULL AS n, x'00ff' AS b, 9e999 AS inf, -9e999 AS ninf"
        " FROM shop.customers WHERE id = 1",
    )
    body = await response.json()
    # Blobs travel as base64; infinities, which JSON has no number for, as strings.
    assert body["rows"] == [[1, 2.5, "ü", None, "AP8=", "inf", "-inf"]]
    assert [c["type"] for c in body["columns"]] == [
        "integer",
        "real",
        "text",
        "null",
        "blob",
        "real",
        "real",
    ]


def test_integers_beyond_64_bits_are_still_written() -> None:
    assert dumps({"n": 2**70, "s": "é"}) == '{"n":1180591620717411303424,"s":"é"}'.encode()


async def test_three_part_name_with_main_schema(client: Any, auth: Any, shop: str) -> None:
    response = await query(client, auth, "SELECT count(*) AS n FROM shop.main.orders")
    assert (await response.json())["rows"] == [[3]]


async def test_join_across_two_datasources(
    client: Any, auth: Any, shop: str, sqlite_file: Any
) -> None:
    sqlite_file("crm.db", TIERS_SCHEMA)
    created = await client.post(
        "/api/datasources",
        json={"name": "crm", "engine": "sqlite", "connection": {"path": "crm.db"}},
        headers=auth(),
    )
    assert created.status == 201
    response = await query(
        client,
        auth,
        "SELECT c.name, t.tier FROM shop.customers c JOIN crm.tiers t ON t.customer_id = c.id "
        "ORDER BY c.id",
    )
    assert (await response.json())["rows"] == [["Ada", "gold"], ["Bo", "silver"], ["Cy", "bronze"]]


async def test_limit_truncates(client: Any, auth: Any, shop: str) -> None:
    body = await (await query(client, auth, "SELECT id FROM shop.customers", limit=2)).json()
    assert body["row_count"] == 2
    assert body["truncated"] is True


async def test_values_are_json_native(client: Any, auth: Any, shop: str) -> None:
    body = await (
        await query(
            client,
            auth,
            "SELECT balance, signed_up, total, note FROM shop.customers "
            "JOIN shop.orders ON orders.customer_id = customers.id WHERE orders.id = 10",
        )
    ).json()
    assert body["rows"] == [[10.5, "2024-01-02", 99.5, "first"]]


@pytest.mark.parametrize(
    "sql",
    [
        "DELETE FROM shop.customers",
        "UPDATE shop.customers SET name = 'x'",
        "INSERT INTO shop.customers (id, name) VALUES (9, 'x')",
        "DROP TABLE shop.customers",
        "CREATE TABLE shop.x (a INT)",
        "SELECT 1; DELETE FROM shop.customers",
        "ATTACH DATABASE '/etc/passwd' AS p",
        "PRAGMA shop.table_info(customers)",
        "SELECT * FROM customers",
        "this is not sql",
        "SELECT * FROM sqlite_master",
        "SELECT * FROM information_schema.tables",
        "SELECT * FROM mindsdb.models",
    ],
)
async def test_not_a_single_read_is_400(client: Any, auth: Any, shop: str, sql: str) -> None:
    response = await query(client, auth, sql)
    assert response.status == 400, await response.text()
    assert_problem(await response.json(), 400)
    # Nothing changed.
    rows = (await (await query(client, auth, "SELECT count(*) FROM shop.customers")).json())["rows"]
    assert rows == [[3]]


async def test_unknown_datasource_is_404_naming_it(client: Any, auth: Any, shop: str) -> None:
    response = await query(client, auth, "SELECT * FROM warehouse.items")
    assert response.status == 404
    assert "warehouse" in (await response.json())["detail"]


async def test_other_tenants_datasource_is_404(client: Any, auth: Any, shop: str) -> None:
    response = await client.post(
        "/api/query", json={"sql": "SELECT * FROM shop.customers"}, headers=auth(TENANT_B)
    )
    assert response.status == 404


async def test_runaway_query_times_out_with_504(client: Any, auth: Any, shop: str) -> None:
    response = await query(
        client,
        auth,
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n) "
        "SELECT count(*) FROM n, shop.customers",
        timeout_seconds=0.3,
    )
    assert response.status == 504
    assert_problem(await response.json(), 504)
    # The gateway still answers.
    assert (await client.get("/health/live")).status == 200


async def test_engine_error_is_502_without_internal_names(
    client: Any, auth: Any, shop: str
) -> None:
    response = await query(client, auth, "SELECT no_such_column FROM shop.customers")
    assert response.status in (400, 502)
    detail = (await response.json())["detail"]
    assert "w_" not in detail


@pytest.mark.parametrize(
    "body",
    [
        {"sql": ""},
        {"sql": "SELECT 1", "limit": 0},
        {"sql": "SELECT 1", "limit": 100_001},
        {"sql": "SELECT 1", "timeout_seconds": 16},
        {"sql": "SELECT 1", "timeout_seconds": -1},
        {"query": "SELECT 1"},
    ],
)
async def test_invalid_query_body_is_422(client: Any, auth: Any, body: dict[str, Any]) -> None:
    response = await client.post("/api/query", json=body, headers=auth())
    assert response.status == 422


async def test_query_latency_is_measured_by_engine(client: Any, auth: Any, shop: str) -> None:
    await query(client, auth, "SELECT 1 FROM shop.customers")
    text = await (await client.get("/metrics")).text()
    assert 'weaver_query_duration_seconds_count{engine="embedded_engine",outcome="ok"} 1.0' in text


async def test_a_query_longer_than_the_inline_budget_still_answers(
    client: Any, auth: Any, shop: str
) -> None:
    sql = (
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 300000) "
        "SELECT count(*) FROM n, shop.customers WHERE customers.id = 1"
    )
    # The first run attaches in a worker; later ones start on the loop, are stopped by the
    # budget and finish in a worker. All must give the same answer.
    for _ in range(3):
        body = await (await query(client, auth, sql)).json()
        assert body["rows"] == [[300000]]
