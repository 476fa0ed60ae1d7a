"""`/api/v1/metadata/glossary`."""

from __future__ import annotations

import sqlite3
from typing import Any

import pytest

from tests.conftest import TENANT_B, assert_problem
from weaver.settings import Settings

URL = "/api/v1/metadata/glossary"


async def create(client: Any, auth: Any, **body: Any) -> Any:
    payload = {"term": "Churn", "definition": "Customers lost in a period"}
    payload.update(body)
    return await client.post(URL, json=payload, headers=auth())


async def test_create_get_replace_delete(client: Any, auth: Any, shop: str) -> None:
    response = await create(
        client, auth, synonyms=["attrition"], columns=["shop.main.customers.id"]
    )
    assert response.status == 201
    term = await response.json()
    assert response.headers["Location"] == f"{URL}/{term['id']}"
    assert term["synonyms"] == ["attrition"]
    assert "tenant_id" not in term

    assert await (await client.get(f"{URL}/{term['id']}", headers=auth())).json() == term

    replaced = await client.put(
        f"{URL}/{term['id']}",
        json={"term": "Churn rate", "definition": "Share of customers lost"},
        headers=auth(),
    )
    assert replaced.status == 200
    body = await replaced.json()
    assert body["term"] == "Churn rate" and body["synonyms"] == []

    assert (await client.delete(f"{URL}/{term['id']}", headers=auth())).status == 204
    assert (await client.get(f"{URL}/{term['id']}", headers=auth())).status == 404
    assert (await client.delete(f"{URL}/{term['id']}", headers=auth())).status == 404


async def test_duplicate_term_is_409_case_insensitive(client: Any, auth: Any) -> None:
    assert (await create(client, auth)).status == 201
    response = await create(client, auth, term="CHURN")
    assert response.status == 409
    assert_problem(await response.json(), 409)
    # Another tenant may use the same term.
    assert (
        await client.post(URL, json={"term": "Churn", "definition": "x"}, headers=auth(TENANT_B))
    ).status == 201


async def test_rename_onto_an_existing_term_is_409(client: Any, auth: Any) -> None:
    await create(client, auth)
    other = await (await create(client, auth, term="Revenue")).json()
    response = await client.put(
        f"{URL}/{other['id']}", json={"term": "churn", "definition": "x"}, headers=auth()
    )
    assert response.status == 409
    kept = await (await client.get(f"{URL}/{other['id']}", headers=auth())).json()
    assert kept["term"] == "Revenue"


async def test_list_and_search(client: Any, auth: Any) -> None:
    await create(client, auth, term="Revenue", definition="Money in", synonyms=["turnover"])
    await create(client, auth, term="Churn")
    await create(client, auth, term="ARPU", definition="Average revenue per user")
    listing = await (await client.get(URL, headers=auth())).json()
    assert [t["term"] for t in listing["items"]] == ["ARPU", "Churn", "Revenue"]
    found = await (await client.get(f"{URL}?q=REVENUE", headers=auth())).json()
    assert [t["term"] for t in found["items"]] == ["ARPU", "Revenue"]
    by_synonym = await (await client.get(f"{URL}?q=turnover", headers=auth())).json()
    assert [t["term"] for t in by_synonym["items"]] == ["Revenue"]
    page = await (await client.get(f"{URL}?limit=2", headers=auth())).json()
    assert len(page["items"]) == 2 and page["next_cursor"]
    rest = await (
        await client.get(f"{URL}?limit=2&cursor={page['next_cursor']}", headers=auth())
    ).json()
    assert [t["term"] for t in rest["items"]] == ["Revenue"]


async def test_other_tenant_cannot_see_or_touch(client: Any, auth: Any) -> None:
    term = await (await create(client, auth)).json()
    other = auth(TENANT_B)
    assert (await client.get(f"{URL}/{term['id']}", headers=other)).status == 404
    assert (
        await client.put(
            f"{URL}/{term['id']}", json={"term": "x", "definition": "y"}, headers=other
        )
    ).status == 404
    assert (await client.delete(f"{URL}/{term['id']}", headers=other)).status == 404
    assert (await (await client.get(URL, headers=other)).json())["items"] == []
    assert (await client.get(f"{URL}/{term['id']}", headers=auth())).status == 200


@pytest.mark.parametrize(
    "body",
    [
        {"term": "", "definition": "x"},
        {"term": "   ", "definition": "x"},
        {"term": "x"},
        {"term": "x", "definition": "y", "columns": ["not-a-path"]},
        {"term": "x", "definition": "y", "columns": [3]},
        {"term": "x", "definition": "y", "synonyms": [""]},
        {"term": "x", "definition": "y", "unknown": 1},
    ],
)
async def test_invalid_terms_are_422(client: Any, auth: Any, body: dict[str, Any]) -> None:
    response = await client.post(URL, json=body, headers=auth())
    assert response.status == 422


async def test_columns_must_name_the_tenants_datasources(client: Any, auth: Any, shop: str) -> None:
    response = await create(client, auth, columns=["warehouse.main.items.id"])
    assert response.status == 422
    other = await client.post(
        URL,
        json={"term": "x", "definition": "y", "columns": ["shop.main.customers.id"]},
        headers=auth(TENANT_B),
    )
    assert other.status == 422


async def glossary_of(client: Any, auth: Any, table: str) -> dict[str, list[str]]:
    url = f"/api/v1/metadata/datasources/shop/schemas/main/tables/{table}"
    response = await client.get(url, headers=auth())
    assert response.status == 200, await response.text()
    return {
        c["name"]: [t["term"] for t in c["glossary"]] for c in (await response.json())["columns"]
    }


async def test_a_tables_columns_show_their_terms_across_syncs(
    client: Any, auth: Any, shop: str, settings: Settings
) -> None:
    sync = "/api/v1/metadata/datasources/shop/sync"
    revenue = await (
        await create(
            client,
            auth,
            term="Revenue",
            columns=["shop.main.orders.total", "shop.main.orders.discount"],
        )
    ).json()
    assert (await client.post(sync, headers=auth())).status == 200
    await create(client, auth, term="Order", columns=["shop.main.orders.id"])
    orders = await glossary_of(client, auth, "orders")
    assert orders == {
        "id": ["Order"],
        "customer_id": [],
        "total": ["Revenue"],
        "placed_at": [],
        "note": [],
    }
    assert (await client.post(sync, headers=auth())).status == 200
    assert await glossary_of(client, auth, "orders") == orders

    # A column the term named before it existed is linked by the sync that brings it.
    with sqlite3.connect(settings.sqlite_root_path / "shop.db") as db:
        db.execute("ALTER TABLE orders ADD COLUMN discount REAL")
    db.close()
    assert (await client.post(sync, headers=auth())).status == 200
    assert await glossary_of(client, auth, "orders") == {**orders, "discount": ["Revenue"]}

    await client.put(
        f"{URL}/{revenue['id']}",
        json={"term": "Net revenue", "definition": "x", "columns": ["shop.main.orders.total"]},
        headers=auth(),
    )
    changed = await glossary_of(client, auth, "orders")
    assert (changed["total"], changed["discount"]) == (["Net revenue"], [])
    assert (await client.delete(f"{URL}/{revenue['id']}", headers=auth())).status == 204
    assert (await glossary_of(client, auth, "orders"))["total"] == []
    assert not any((await glossary_of(client, auth, "customers")).values())
