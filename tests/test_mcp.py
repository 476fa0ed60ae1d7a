"""``/mcp`` with the MCP SDK's own client against a real ``weaver serve --demo``: the
tools on the demo shop, tenancy, tokens, read-only queries, hints, history, and a query
cancelled when its client goes away."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import urllib.request
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx2
import pytest
from mcp import ClientSession, MCPError
from mcp.client.streamable_http import streamable_http_client
from mcp.types import CallToolResult

from tests.serving import Serving, clean_environment
from weaver.auth import mint_token
from weaver.settings import Settings
from weaver.testing import free_port
from weaver.testing.harness import wait_until_live

SECRET = "mcp-test-secret-0123456789abcdef0123456789"
TOOLS = {
    "list_datasources",
    "search_catalog",
    "describe_table",
    "join_paths",
    "context",
    "sample_rows",
    "run_query",
    "glossary",
}
RUNAWAY = (
    "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 1000000000000)"
    " SELECT count(*) FROM n CROSS JOIN demo.customers"
)


class Gateway:
    def __init__(self, base: str, data: Path) -> None:
        self.base = base
        self.data = data
        settings = Settings.from_env_names({"JWT_SECRET_KEY": SECRET})
        self.demo = mint_token(settings, tenant_id="demo", subject="agent", roles=["viewer"])
        self.editor = mint_token(settings, tenant_id="demo", subject="agent", roles=["editor"])
        self.other = mint_token(settings, tenant_id="other", subject="agent", roles=["admin"])

    def call(self, method: str, path: str, token: str, body: Any = None) -> Any:
        request = urllib.request.Request(
            self.base + path,
            method=method,
            data=json.dumps(body).encode() if body is not None else None,
            headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request) as response:
            return json.loads(response.read() or b"null")

    @asynccontextmanager
    async def session(self, token: str | None) -> AsyncIterator[ClientSession]:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        async with (
            httpx2.AsyncClient(headers=headers, timeout=30) as http,
            streamable_http_client(self.base + "/mcp", http_client=http) as (read, write),
            ClientSession(read, write) as session,
        ):
            await session.initialize()
            yield session


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    root = tmp_path_factory.mktemp("mcp")
    port = free_port()
    env = clean_environment(WEAVER_DATA_DIR=str(root / "data"), JWT_SECRET_KEY=SECRET)
    server = Serving(port, env, root / "weaver.log", "--demo")
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until_live(base + "/health/live", server)
        gateway = Gateway(base, root / "data")
        gateway.call("POST", "/api/v1/metadata/datasources/demo/sync", gateway.editor)
        yield gateway
    finally:
        server.stop()


def structured(result: CallToolResult) -> Any:
    assert not result.is_error, result.content
    return result.structured_content


def error_text(result: CallToolResult) -> str:
    assert result.is_error, result.structured_content
    text = " ".join(getattr(block, "text", "") for block in result.content)
    assert "Traceback" not in text
    return text


async def test_the_tools_are_listed_with_schemas(gateway: Gateway) -> None:
    async with gateway.session(gateway.demo) as session:
        listed = (await session.list_tools()).tools
    assert {tool.name for tool in listed} == TOOLS
    for tool in listed:
        assert tool.description, tool.name
        assert tool.input_schema["type"] == "object", tool.name
        assert tool.output_schema is not None, tool.name
        assert tool.annotations is not None and tool.annotations.read_only_hint is True
    run_query = next(tool for tool in listed if tool.name == "run_query")
    assert run_query.input_schema["required"] == ["sql"]


async def test_every_tool_on_the_demo_shop(gateway: Gateway) -> None:
    term = gateway.call(
        "POST",
        "/api/v1/metadata/glossary",
        gateway.editor,
        {
            "term": "Units sold",
            "definition": "How many of a product an order bought",
            "columns": ["demo.main.orders.quantity"],
        },
    )
    try:
        async with gateway.session(gateway.demo) as session:
            found = structured(await session.call_tool("list_datasources", {}))
            assert [d["name"] for d in found["items"]] == ["demo"]

            found = structured(await session.call_tool("search_catalog", {"query": "CUSTOM"}))
            assert [h["table"] for h in found["items"]] == ["customers"]

            table = structured(
                await session.call_tool(
                    "describe_table", {"datasource": "demo", "schema": "main", "table": "orders"}
                )
            )
            customer_id = next(c for c in table["columns"] if c["name"] == "customer_id")
            assert customer_id["references"] == {
                "schema": "main",
                "table": "customers",
                "column": "id",
            }

            paths = structured(
                await session.call_tool(
                    "join_paths",
                    {"from_table": "demo.main.customers", "to_table": "demo.main.products"},
                )
            )
            (path,) = paths["items"]
            assert path["hops"] == [
                {"from": "demo.main.customers.id", "to": "demo.main.orders.customer_id"},
                {"from": "demo.main.orders.product_id", "to": "demo.main.products.id"},
            ]
            counted = structured(
                await session.call_tool("run_query", {"sql": f"SELECT count(*) AS n {path['sql']}"})
            )
            assert counted["rows"] == [[500]]

            context = structured(
                await session.call_tool(
                    "context", {"question": "revenue by customer country", "max_chars": 4000}
                )
            )
            names = [t["table"] for t in context["tables"]]
            assert names[:2] == ["demo.main.customers", "demo.main.orders"]
            assert any(
                {j["from"], j["to"]} == {"demo.main.customers", "demo.main.orders"}
                for j in context["join_paths"]
            )
            assert len(json.dumps(context, separators=(",", ":"))) <= 4000

            rows = structured(
                await session.call_tool(
                    "sample_rows",
                    {"datasource": "demo", "schema": "main", "table": "products", "limit": 3},
                )
            )
            assert [c["name"] for c in rows["columns"]] == ["id", "name", "unit_price"]
            assert rows["row_count"] == 3

            found = structured(await session.call_tool("glossary", {"query": "units"}))
            assert [t["term"] for t in found["items"]] == ["Units sold"]
    finally:
        gateway.call("DELETE", f"/api/v1/metadata/glossary/{term['id']}", gateway.editor)
    history = gateway.call("GET", "/api/query/history?limit=5", gateway.demo)["items"]
    assert {item["via"] for item in history[:2]} == {"mcp"}


async def test_another_tenant_sees_nothing_of_the_demo(gateway: Gateway) -> None:
    table = {"datasource": "demo", "schema": "main", "table": "orders"}
    async with gateway.session(gateway.other) as session:
        assert structured(await session.call_tool("list_datasources", {})) == {"items": []}
        assert structured(await session.call_tool("search_catalog", {"query": "o"})) == {
            "items": []
        }
        assert structured(await session.call_tool("glossary", {})) == {"items": []}
        context = structured(await session.call_tool("context", {"question": "orders"}))
        assert context["tables"] == [] and context["join_paths"] == []
        for tool, arguments in [
            ("describe_table", table),
            ("sample_rows", table),
            ("join_paths", {"from_table": "demo.main.orders", "to_table": "demo.main.customers"}),
            ("run_query", {"sql": "SELECT count(*) FROM demo.orders"}),
        ]:
            text = error_text(await session.call_tool(tool, arguments))
            assert "Not Found" in text and "demo" in text, (tool, text)
            assert "products" not in text and "customer_id" not in text


async def test_no_token_is_refused(gateway: Gateway) -> None:
    async with httpx2.AsyncClient(timeout=10) as http:
        response = await http.post(
            gateway.base + "/mcp",
            json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"},
            headers={"Accept": "application/json, text/event-stream"},
        )
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert response.json()["title"] == "Unauthorized"
    # The SDK's client gives up at its first request (it says no more than that).
    with pytest.raises(ExceptionGroup) as refused:
        async with gateway.session(None) as session:
            await session.list_tools()
    assert refused.group_contains(MCPError)


async def test_writes_are_refused_and_the_source_is_unchanged(gateway: Gateway) -> None:
    database = gateway.data / "sqlite" / "demo.db"

    def orders() -> int:
        with sqlite3.connect(f"file:{database}?mode=ro", uri=True) as db:
            return int(db.execute("SELECT count(*) FROM orders").fetchone()[0])

    before = orders()
    async with gateway.session(gateway.editor) as session:
        for statement in [
            "DELETE FROM demo.orders",
            "UPDATE demo.orders SET quantity = 0",
            "WITH gone AS (DELETE FROM demo.orders RETURNING id) SELECT * FROM gone",
            "SELECT 1 FROM demo.orders; DROP TABLE demo.orders",
        ]:
            text = error_text(await session.call_tool("run_query", {"sql": statement}))
            assert "Query Not Allowed" in text, text
    assert orders() == before == 500


async def test_an_unknown_column_gets_a_suggestion(gateway: Gateway) -> None:
    async with gateway.session(gateway.demo) as session:
        text = error_text(
            await session.call_tool("run_query", {"sql": "SELECT cuntry FROM demo.customers"})
        )
    assert "Query Failed" in text and "did you mean 'country'?" in text


async def test_a_query_stops_when_its_client_goes_away(gateway: Gateway) -> None:
    call = {
        "jsonrpc": "2.0",
        "id": 7,
        "method": "tools/call",
        "params": {"name": "run_query", "arguments": {"sql": RUNAWAY, "timeout_seconds": 14}},
    }
    headers = {
        "Authorization": f"Bearer {gateway.demo}",
        "Accept": "application/json, text/event-stream",
        "MCP-Protocol-Version": "2025-06-18",
    }
    async with httpx2.AsyncClient(timeout=1.5) as http:
        with pytest.raises(httpx2.TimeoutException):
            await http.post(gateway.base + "/mcp", json=call, headers=headers)
    # The connection is closed: the gateway cancels the tool, and so the statement.
    for _ in range(60):
        history = gateway.call("GET", "/api/query/history?limit=1", gateway.demo)["items"]
        if history and history[0]["sql"] == RUNAWAY and history[0]["status"] != "running":
            break
        await asyncio.sleep(0.25)
    record = history[0]
    assert record["sql"] == RUNAWAY and record["via"] == "mcp"
    # Cancelled, not failed: a timeout would have ended it `failed` after 14 s.
    assert record["status"] == "cancelled", record
