"""Sample rows, join paths, schema context and did-you-mean hints over REST, on the
embedded defaults."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import TENANT_B, assert_problem

META = "/api/v1/metadata"

# orders → customers ← addresses, order_items → orders and → products: customers and
# products are three hops apart; orders and addresses two ways one hop apart.
CHAIN_SCHEMA = """
CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT NOT NULL, country TEXT);
CREATE TABLE addresses (id INTEGER PRIMARY KEY, city TEXT);
CREATE TABLE orders (id INTEGER PRIMARY KEY,
                     customer_id INTEGER REFERENCES customers(id),
                     billing_address_id INTEGER REFERENCES addresses(id),
                     shipping_address_id INTEGER REFERENCES addresses(id),
                     amount REAL);
CREATE TABLE products (id INTEGER PRIMARY KEY, title TEXT);
CREATE TABLE order_items (id INTEGER PRIMARY KEY,
                          order_id INTEGER REFERENCES orders(id),
                          product_id INTEGER REFERENCES products(id));
CREATE TABLE "select" ("from" INTEGER, "Mixed Case" TEXT);
INSERT INTO customers VALUES (1, 'Ada', 'KR'), (2, 'Bo', 'DE');
INSERT INTO addresses VALUES (1, 'Seoul'), (2, 'Berlin');
INSERT INTO orders VALUES (1, 1, 1, 2, 9.5), (2, 2, 2, 2, 3.0), (3, 1, 1, 1, 1.25);
INSERT INTO products VALUES (1, 'Tea'), (2, 'Cup');
INSERT INTO order_items VALUES (1, 1, 1), (2, 1, 2), (3, 2, 1), (4, 3, 2);
INSERT INTO "select" VALUES (1, 'x'), (2, 'y'), (3, 'z');
"""


@pytest.fixture
async def chain(client: Any, sqlite_file: Callable[[str, str], Path], auth: Any) -> str:
    sqlite_file("chain.db", CHAIN_SCHEMA)
    body = {"name": "chain", "engine": "sqlite", "connection": {"path": "chain.db"}}
    assert (await client.post("/api/datasources", json=body, headers=auth())).status == 201
    synced = await client.post(f"{META}/datasources/chain/sync", headers=auth())
    assert synced.status == 200, await synced.text()
    return "chain"


async def get(client: Any, url: str, headers: dict[str, str], **params: Any) -> Any:
    response = await client.get(url, params=params, headers=headers)
    return response.status, await response.json()


# --- sample rows -------------------------------------------------------------------------


async def test_sample_rows_run_through_the_query_path(client: Any, auth: Any, chain: str) -> None:
    url = f"{META}/datasources/chain/schemas/main/tables/orders/sample"
    status, body = await get(client, url, auth())
    assert status == 200, body
    assert [c["name"] for c in body["columns"]] == [
        "id",
        "customer_id",
        "billing_address_id",
        "shipping_address_id",
        "amount",
    ]
    assert len(body["rows"]) == 3
    status, body = await get(client, url, auth(), limit=2)
    assert len(body["rows"]) == 2
    # The sample is a query like any other: in the caller's history, sent via the API.
    _, history = await get(client, "/api/query/history", auth())
    assert history["items"][0]["via"] == "api"
    assert "LIMIT 2" in history["items"][0]["sql"]


async def test_sample_quotes_names_for_the_engine(client: Any, auth: Any, chain: str) -> None:
    status, body = await get(
        client, f"{META}/datasources/chain/schemas/main/tables/select/sample", auth()
    )
    assert status == 200, body
    assert [c["name"] for c in body["columns"]] == ["from", "Mixed Case"]
    assert body["rows"] == [[1, "x"], [2, "y"], [3, "z"]]


async def test_sample_limits_and_unknown_tables(client: Any, auth: Any, chain: str) -> None:
    base = f"{META}/datasources/chain/schemas/main/tables"
    status, body = await get(client, f"{base}/orders/sample", auth(), limit=101)
    assert status == 422
    assert_problem(body, 422)
    status, body = await get(client, f"{base}/ghosts/sample", auth())
    assert status == 404 and "ghosts" in body["detail"]
    # Another tenant's table answers like a missing one.
    status, body = await get(client, f"{base}/orders/sample", auth(TENANT_B))
    assert status == 404


# --- join paths ------------------------------------------------------------------------


async def test_three_hops_with_sql_that_runs(client: Any, auth: Any, chain: str) -> None:
    status, body = await get(
        client,
        f"{META}/join-paths",
        auth(),
        **{"from": "chain.main.customers", "to": "chain.main.products"},
    )
    assert status == 200, body
    (path,) = body["items"]
    assert path["hops"] == [
        {"from": "chain.main.customers.id", "to": "chain.main.orders.customer_id"},
        {"from": "chain.main.orders.id", "to": "chain.main.order_items.order_id"},
        {"from": "chain.main.order_items.product_id", "to": "chain.main.products.id"},
    ]
    assert body["next_cursor"] is None
    counted = await client.post(
        "/api/query", json={"sql": f"SELECT count(*) {path['sql']}"}, headers=auth()
    )
    assert counted.status == 200, await counted.text()
    assert (await counted.json())["rows"] == [[4]]


async def test_several_shortest_paths_and_none(client: Any, auth: Any, chain: str) -> None:
    status, body = await get(
        client,
        f"{META}/join-paths",
        auth(),
        **{"from": "chain.main.orders", "to": "chain.main.addresses"},
    )
    assert [p["hops"][0]["from"] for p in body["items"]] == [
        "chain.main.orders.billing_address_id",
        "chain.main.orders.shipping_address_id",
    ]
    for path in body["items"]:
        counted = await client.post(
            "/api/query", json={"sql": f"SELECT count(*) {path['sql']}"}, headers=auth()
        )
        assert (await counted.json())["rows"] == [[3]]
    within_two = {"from": "chain.main.customers", "to": "chain.main.products", "max_hops": 2}
    status, body = await get(client, f"{META}/join-paths", auth(), **within_two)
    assert status == 200 and body["items"] == []


async def test_join_path_parameters_are_checked(client: Any, auth: Any, chain: str) -> None:
    both = {"from": "chain.main.customers", "to": "chain.main.products"}
    status, body = await get(client, f"{META}/join-paths", auth(), **both, max_hops=7)
    assert status == 422
    assert_problem(body, 422)
    status, body = await get(
        client,
        f"{META}/join-paths",
        auth(),
        **{"from": "chain.customers", "to": "chain.main.products"},
    )
    assert status == 422
    status, body = await get(
        client, f"{META}/join-paths", auth(), **{**both, "to": "chain.main.ghosts"}
    )
    assert status == 404
    status, body = await get(client, f"{META}/join-paths", auth(TENANT_B), **both)
    assert status == 404


# --- context ---------------------------------------------------------------------------


async def test_context_ranks_tables_and_joins_them(client: Any, auth: Any, chain: str) -> None:
    params = {"q": "revenue by customer country"}
    response = await client.get(f"{META}/context", params=params, headers=auth())
    assert response.status == 200
    raw = await response.read()
    body = json.loads(raw)
    names = [t["table"] for t in body["tables"]]
    assert names[:2] == ["chain.main.customers", "chain.main.orders"]
    assert body["tables"][0]["score"] == 7
    join = next(j for j in body["join_paths"] if {j["from"], j["to"]} == set(names[:2]))
    assert join["hops"] == [
        {"from": "chain.main.customers.id", "to": "chain.main.orders.customer_id"}
    ]
    assert len(raw.decode()) <= 12000 and body["truncated"] is False
    # Same catalog, same question: the same bytes.
    again = await client.get(f"{META}/context", params=params, headers=auth())
    assert await again.read() == raw


async def test_context_uses_the_glossary(client: Any, auth: Any, chain: str) -> None:
    term = {
        "term": "Revenue",
        "definition": "What orders bring in",
        "synonyms": ["turnover"],
        "columns": ["chain.main.orders.amount"],
    }
    assert (await client.post(f"{META}/glossary", json=term, headers=auth())).status == 201
    status, body = await get(client, f"{META}/context", auth(), q="turnover per city")
    assert status == 200
    orders = next(t for t in body["tables"] if t["table"] == "chain.main.orders")
    assert orders["glossary"] == [{"term": "Revenue", "definition": "What orders bring in"}]
    assert "turnover: glossary term Revenue" in orders["matched"]
    amount = next(c for c in orders["columns"] if c["name"] == "amount")
    assert amount["glossary"] == ["Revenue"]


async def test_context_fits_max_chars_dropping_the_lowest_ranked(
    client: Any, auth: Any, chain: str
) -> None:
    question = "customer order address product items"
    _, whole = await get(client, f"{META}/context", auth(), q=question)
    assert len(whole["tables"]) == 5
    for max_chars in (3000, 1500, 700, 200):
        response = await client.get(
            f"{META}/context", params={"q": question, "max_chars": max_chars}, headers=auth()
        )
        raw = (await response.read()).decode()
        assert len(raw) <= max_chars, max_chars
        body = json.loads(raw)
        assert body["truncated"] is True
        kept = [t["table"] for t in body["tables"]]
        # What stays is a prefix of the ranking.
        assert kept == [t["table"] for t in whole["tables"]][: len(kept)]
    status, body = await get(client, f"{META}/context", auth(), q="x", max_chars=199)
    assert status == 422


async def test_context_of_another_tenant_is_empty(client: Any, auth: Any, chain: str) -> None:
    status, body = await get(client, f"{META}/context", auth(TENANT_B), q="customer orders")
    assert status == 200
    assert body == {"tables": [], "join_paths": [], "truncated": False}


# --- did you mean ------------------------------------------------------------------------


async def test_unknown_names_get_close_names_of_the_tenant(
    client: Any, auth: Any, chain: str, sqlite_file: Callable[[str, str], Path]
) -> None:
    # Tenant B has a table whose name is closer still: it must never be suggested to A.
    sqlite_file("b.db", "CREATE TABLE customerz (id INTEGER, countri TEXT);")
    body = {"name": "chain", "engine": "sqlite", "connection": {"path": "b.db"}}
    assert (await client.post("/api/datasources", json=body, headers=auth(TENANT_B))).status == 201
    await client.post(f"{META}/datasources/chain/sync", headers=auth(TENANT_B))

    async def detail(sql: str) -> str:
        response = await client.post("/api/query", json={"sql": sql}, headers=auth())
        problem = await response.json()
        assert response.status == 400, problem
        return str(problem["detail"])

    column = await detail("SELECT cuntry FROM chain.customers")
    assert "did you mean 'country'?" in column
    assert "countri" not in column
    table = await detail("SELECT * FROM chain.customer")
    assert "did you mean 'customers'" in table
    assert "customerz" not in table
    # The history keeps the hint with the error.
    _, history = await get(client, "/api/query/history", auth())
    assert "did you mean" in history["items"][0]["error"]["detail"]
