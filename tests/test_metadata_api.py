"""`/api/v1/metadata` on the embedded defaults: sync, browse, search, snapshots, stats."""

from __future__ import annotations

import sqlite3
from typing import Any

from tests.conftest import TENANT_B, assert_problem
from weaver.settings import Settings

DS = "/api/v1/metadata/datasources/shop"


async def sync(client: Any, auth: Any) -> dict[str, Any]:
    response = await client.post(f"{DS}/sync", headers=auth())
    assert response.status == 200, await response.text()
    return dict(await response.json())


async def test_sync_counts(client: Any, auth: Any, shop: str) -> None:
    result = await sync(client, auth)
    assert result["schemas"] == 1
    assert result["tables"] == 2
    assert result["columns"] == 10
    assert result["foreign_keys"] == 1
    assert result["snapshot_id"]


async def test_browse_schema_tables_and_table(client: Any, auth: Any, shop: str) -> None:
    await sync(client, auth)
    schemas = await (await client.get(f"{DS}/schemas", headers=auth())).json()
    assert schemas == {"items": [{"name": "main", "table_count": 2}], "next_cursor": None}

    tables = await (await client.get(f"{DS}/schemas/main/tables", headers=auth())).json()
    assert [(t["name"], t["column_count"]) for t in tables["items"]] == [
        ("customers", 5),
        ("orders", 5),
    ]

    orders = await (await client.get(f"{DS}/schemas/main/tables/orders", headers=auth())).json()
    assert orders["datasource"] == "shop"
    assert orders["schema"] == "main"
    by_name = {c["name"]: c for c in orders["columns"]}
    assert by_name["id"]["primary_key"] is True
    assert by_name["customer_id"]["nullable"] is False
    assert by_name["customer_id"]["references"] == {
        "schema": "main",
        "table": "customers",
        "column": "id",
    }
    assert [c["ordinal"] for c in orders["columns"]] == [1, 2, 3, 4, 5]

    customers = await (
        await client.get(f"{DS}/schemas/main/tables/customers", headers=auth())
    ).json()
    assert customers["referenced_by"] == [
        {"schema": "main", "table": "orders", "column": "customer_id", "referenced_column": "id"}
    ]


async def test_browse_missing_things_is_404(client: Any, auth: Any, shop: str) -> None:
    assert (await client.get(f"{DS}/schemas", headers=auth())).status == 404  # not synced
    await sync(client, auth)
    for url in (f"{DS}/schemas/nope/tables", f"{DS}/schemas/main/tables/nope"):
        response = await client.get(url, headers=auth())
        assert response.status == 404
        assert_problem(await response.json(), 404)


async def test_search_tables_and_columns(client: Any, auth: Any, shop: str) -> None:
    await sync(client, auth)
    tables = await (
        await client.get("/api/v1/metadata/search?q=CUST&kind=table", headers=auth())
    ).json()
    assert [(h["datasource"], h["table"]) for h in tables["items"]] == [("shop", "customers")]
    columns = await (
        await client.get("/api/v1/metadata/search?q=_at&kind=column", headers=auth())
    ).json()
    assert [(h["table"], h["column"]) for h in columns["items"]] == [("orders", "placed_at")]
    other = await (
        await client.get("/api/v1/metadata/search?q=cust", headers=auth(TENANT_B))
    ).json()
    assert other["items"] == []


async def test_search_needs_q(client: Any, auth: Any) -> None:
    response = await client.get("/api/v1/metadata/search", headers=auth())
    assert response.status == 422
    response = await client.get("/api/v1/metadata/search?q=x&kind=view", headers=auth())
    assert response.status == 422


async def test_snapshots_list_get_and_diff(
    client: Any, auth: Any, shop: str, settings: Settings
) -> None:
    first = (await sync(client, auth))["snapshot_id"]
    with sqlite3.connect(settings.sqlite_root_path / "shop.db") as db:
        db.executescript(
            "CREATE TABLE refunds (id INTEGER PRIMARY KEY, order_id INTEGER REFERENCES orders(id));"
            "ALTER TABLE customers ADD COLUMN email TEXT;"
        )
    db.close()
    second = (await sync(client, auth))["snapshot_id"]

    listing = await (await client.get(f"{DS}/snapshots", headers=auth())).json()
    assert [s["id"] for s in listing["items"]] == [second, first]
    assert listing["items"][0]["tables"] == 3

    old = await (await client.get(f"{DS}/snapshots/{first}", headers=auth())).json()
    assert {t["name"] for t in old["tables"]} == {"customers", "orders"}

    diff = await (
        await client.get(f"{DS}/snapshots/{second}/diff?against={first}", headers=auth())
    ).json()
    assert diff["added_tables"] == ["main.refunds"]
    assert diff["removed_tables"] == []
    assert diff["changed_tables"] == [
        {
            "table": "main.customers",
            "added_columns": ["email"],
            "removed_columns": [],
            "changed_columns": [],
        }
    ]
    assert (await client.get(f"{DS}/snapshots/nope", headers=auth())).status == 404
    missing = await client.get(f"{DS}/snapshots/{second}/diff?against=nope", headers=auth())
    assert missing.status == 404
    assert (await client.get(f"{DS}/snapshots/{second}/diff", headers=auth())).status == 422


async def test_statistics(client: Any, auth: Any, shop: str) -> None:
    assert (await client.get(f"{DS}/stats", headers=auth())).status == 404
    response = await client.post(f"{DS}/stats/refresh", headers=auth())
    assert response.status == 200
    refreshed = await response.json()
    stats = await (await client.get(f"{DS}/stats", headers=auth())).json()
    assert stats == refreshed
    tables = {t["table"]: t for t in stats["tables"]}
    assert tables["customers"]["row_count"] == 3
    columns = {c["name"]: c for c in tables["customers"]["columns"]}
    assert columns["country"]["null_count"] == 1
    assert columns["country"]["distinct_count"] == 2
    assert columns["id"]["min"] == 1 and columns["id"]["max"] == 3
    assert stats["computed_at"]


async def test_metadata_is_per_tenant(client: Any, auth: Any, shop: str) -> None:
    snapshot = (await sync(client, auth))["snapshot_id"]
    await client.post(f"{DS}/stats/refresh", headers=auth())
    other = auth(TENANT_B)
    for url in (
        f"{DS}/schemas",
        f"{DS}/snapshots",
        f"{DS}/snapshots/{snapshot}",
        f"{DS}/stats",
        f"{DS}/schemas/main/tables/orders",
    ):
        assert (await client.get(url, headers=other)).status == 404, url
    assert (await client.post(f"{DS}/sync", headers=other)).status == 404


async def test_viewer_cannot_sync(client: Any, auth: Any, shop: str) -> None:
    assert (await client.post(f"{DS}/sync", headers=auth(roles=["viewer"]))).status == 403


async def test_deleting_the_datasource_forgets_its_metadata(
    client: Any, auth: Any, shop: str, sqlite_file: Any
) -> None:
    await sync(client, auth)
    await client.post(f"{DS}/stats/refresh", headers=auth())
    assert (await client.delete("/api/datasources/shop", headers=auth())).status == 204
    sqlite_file("shop2.db", "CREATE TABLE other (id INTEGER PRIMARY KEY);")
    recreated = await client.post(
        "/api/datasources",
        json={"name": "shop", "engine": "sqlite", "connection": {"path": "shop2.db"}},
        headers=auth(),
    )
    assert recreated.status == 201
    assert (await client.get(f"{DS}/schemas", headers=auth())).status == 404
    assert (await (await client.get(f"{DS}/snapshots", headers=auth())).json())["items"] == []
    assert (await client.get(f"{DS}/stats", headers=auth())).status == 404
    hits = await (await client.get("/api/v1/metadata/search?q=cust", headers=auth())).json()
    assert hits["items"] == []
