"""Join paths through the gateway's own endpoints with the schema graph in a real Neo4j:
REST and the MCP SDK's client, three hops apart, on a synced SQLite datasource."""

from __future__ import annotations

import os
import sqlite3
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx2
import pytest
from aiohttp.test_utils import TestServer
from mcp import ClientSession
from mcp.client.streamable_http import streamable_http_client

from weaver.app import create_app
from weaver.auth import mint_token
from weaver.keys import HOST
from weaver.settings import Settings

pytestmark = [
    pytest.mark.live,
    pytest.mark.skipif(
        os.environ.get("WEAVER_RUN_E2E") != "1", reason="live suite: set WEAVER_RUN_E2E=1"
    ),
]

CHAIN = """
CREATE TABLE customers (id INTEGER PRIMARY KEY, country TEXT);
CREATE TABLE orders (id INTEGER PRIMARY KEY, customer_id INTEGER REFERENCES customers(id));
CREATE TABLE products (id INTEGER PRIMARY KEY, title TEXT);
CREATE TABLE order_items (id INTEGER PRIMARY KEY, order_id INTEGER REFERENCES orders(id),
                          product_id INTEGER REFERENCES products(id));
INSERT INTO customers VALUES (1, 'KR'), (2, 'DE');
INSERT INTO orders VALUES (1, 1), (2, 2);
INSERT INTO products VALUES (1, 'Tea');
INSERT INTO order_items VALUES (1, 1, 1), (2, 2, 1), (3, 2, 1);
"""
THREE_HOPS = [
    {"from": "chain.main.customers.id", "to": "chain.main.orders.customer_id"},
    {"from": "chain.main.orders.id", "to": "chain.main.order_items.order_id"},
    {"from": "chain.main.order_items.product_id", "to": "chain.main.products.id"},
]


@pytest.fixture
async def gateway(
    neo4j_settings: Callable[..., Settings],
    forget_tenants: Callable[[list[str]], None],
    tmp_path: Any,
) -> AsyncIterator[tuple[str, str]]:
    tenant = f"tn{uuid.uuid4().hex[:12]}"
    forget_tenants([tenant])
    settings = neo4j_settings(WEAVER_SQLITE_ROOT=str(tmp_path / "sqlite"))
    settings.sqlite_root_path.mkdir(parents=True)
    with sqlite3.connect(settings.sqlite_root_path / "chain.db") as db:
        db.executescript(CHAIN)
    db.close()
    app = create_app(settings)
    assert app[HOST].owner_of("find_join_paths") == "neo4j"
    server = TestServer(app)
    await server.start_server()
    token = mint_token(settings, tenant_id=tenant, subject="agent", roles=["editor"])
    base = str(server.make_url("")).rstrip("/")
    async with httpx2.AsyncClient(headers={"Authorization": f"Bearer {token}"}) as http:
        body = {"name": "chain", "engine": "sqlite", "connection": {"path": "chain.db"}}
        assert (await http.post(base + "/api/datasources", json=body)).status_code == 201
        synced = await http.post(base + "/api/v1/metadata/datasources/chain/sync")
        assert synced.status_code == 200, synced.text
    try:
        yield base, token
    finally:
        await server.close()


async def test_three_hops_over_rest_and_mcp(gateway: tuple[str, str]) -> None:
    base, token = gateway
    ends = {"from": "chain.main.customers", "to": "chain.main.products"}
    async with httpx2.AsyncClient(headers={"Authorization": f"Bearer {token}"}) as http:
        answer = (await http.get(base + "/api/v1/metadata/join-paths", params=ends)).json()
        assert [path["hops"] for path in answer["items"]] == [THREE_HOPS]
        async with (
            streamable_http_client(base + "/mcp", http_client=http) as (read, write),
            ClientSession(read, write) as session,
        ):
            await session.initialize()
            result = await session.call_tool(
                "join_paths", {"from_table": ends["from"], "to_table": ends["to"]}
            )
            assert not result.is_error, result.content
            (path,) = result.structured_content["items"]  # type: ignore[index]
            assert path["hops"] == THREE_HOPS
            counted = await session.call_tool(
                "run_query", {"sql": f"SELECT count(*) AS n {path['sql']}"}
            )
            assert counted.structured_content["rows"] == [[3]]  # type: ignore[index]
