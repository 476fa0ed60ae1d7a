"""`POST /api/query` and `GET /api/query/{id}/results` in every format: the same values
in JSON, NDJSON, CSV and Arrow; 406; truncation; a failure after the first byte."""

from __future__ import annotations

import asyncio
import csv
import io
import json
from importlib.metadata import EntryPoint
from typing import Any

import aiohttp
import pyarrow as pa
import pytest

from tests.conftest import ClientFactory, assert_problem
from weaver.app import create_app
from weaver.settings import Settings

NDJSON = "application/x-ndjson"
CSV = "text/csv"
ARROW = "application/vnd.apache.arrow.stream"
VALUES = EntryPoint("values", "tests.plugins.value_engine:ValueEngine", "weaver")


@pytest.fixture
async def values(aiohttp_client: ClientFactory, settings: Settings) -> Any:
    app = create_app(settings, environ={"WEAVER_VALUES_MODE": "1"}, discovered=[VALUES])
    return await aiohttp_client(app)


async def fetch(client: Any, auth: Any, accept: str, sql: str = "SELECT 1", **body: Any) -> Any:
    return await client.post(
        "/api/query", json={"sql": sql, **body}, headers={**auth(), "Accept": accept}
    )


def csv_field(value: Any) -> str:
    """What a JSON value is as a CSV field (values rendered as in JSON)."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return json.dumps(value)


async def test_every_format_carries_the_same_values(values: Any, auth: Any) -> None:
    document = await (await fetch(values, auth, "application/json")).json()
    expected = document["rows"]
    assert len(expected) == 4 and document["truncated"] is False

    ndjson = await fetch(values, auth, NDJSON)
    assert ndjson.headers["Content-Type"].startswith(NDJSON)
    lines = [json.loads(line) for line in (await ndjson.text()).splitlines()]
    assert lines[0] == {"columns": document["columns"]}
    assert lines[1:-1] == expected
    assert lines[-1] == {"row_count": 4, "truncated": False}

    table = list(csv.reader(io.StringIO((await (await fetch(values, auth, CSV)).read()).decode())))
    assert table[0] == [c["name"] for c in document["columns"]]
    assert table[1:] == [[csv_field(v) for v in row] for row in expected]

    arrow = await fetch(values, auth, ARROW)
    reader = pa.ipc.open_stream(await arrow.read())
    read = reader.read_all()
    types = dict(zip(read.schema.names, read.schema.types, strict=True))
    # Typed, not strings: decimals and timestamps stay what they are.
    assert types["big"] == pa.decimal128(38, 0)
    assert types["amount"] == pa.decimal128(12, 2)
    assert types["at"] == pa.timestamp("us", tz="UTC")
    assert types["day"] == pa.date32()
    column = read.column("big").to_pylist()
    assert [int(v) if v is not None else None for v in column] == [r[0] for r in expected]
    assert read.num_rows == 4


async def test_an_unacceptable_format_is_406(values: Any, auth: Any) -> None:
    for accept in ("text/html", "application/xml", "text/csv;q=0"):
        response = await fetch(values, auth, accept)
        body = await response.json()
        assert_problem(body, 406)


async def test_truncation_is_reported_at_the_end_of_each_stream(
    client: Any, auth: Any, shop: str
) -> None:
    sql = "SELECT id FROM shop.customers ORDER BY id"
    lines = (await (await fetch(client, auth, NDJSON, sql, limit=2)).text()).splitlines()
    assert [json.loads(line) for line in lines[1:]] == [
        [1],
        [2],
        {"row_count": 2, "truncated": True},
    ]
    arrow = pa.ipc.open_stream(await (await fetch(client, auth, ARROW, sql, limit=2)).read())
    batches = []
    while True:
        try:
            batches.append(arrow.read_next_batch_with_custom_metadata())
        except StopIteration:
            break
    trailer = batches[-1]
    assert trailer.batch.num_rows == 0
    assert trailer.custom_metadata[b"weaver.truncated"] == b"true"
    assert trailer.custom_metadata[b"weaver.row_count"] == b"2"


async def test_a_failure_after_the_first_byte_ends_the_stream_visibly(
    values: Any, auth: Any
) -> None:
    ndjson = await fetch(values, auth, NDJSON, sql="SELECT 'fail'")
    assert ndjson.status == 200
    last = json.loads((await ndjson.text()).splitlines()[-1])
    assert last["error"]["status"] == 502 and "halfway" in last["error"]["detail"]
    # Its record says how it ended, though the answer began as a 200.
    query = await values.get(f"/api/query/{ndjson.headers['X-Query-Id']}", headers=auth())
    record = await query.json()
    assert record["status"] == "failed", record
    assert record["error"]["status"] == 502 and "halfway" in record["error"]["detail"]
    # CSV and Arrow have no error record: the response is cut off before its end.
    for accept in (CSV, ARROW):
        response = await fetch(values, auth, accept, sql="SELECT 'fail'")
        with pytest.raises(aiohttp.ClientPayloadError):
            await response.read()
    # Before the first byte, the same failure is a plain problem.
    document = await fetch(values, auth, "application/json", sql="SELECT 'fail'")
    assert_problem(await document.json(), 502)


async def test_a_client_gone_mid_export_cancels_the_query(
    client: Any, auth: Any, shop: str
) -> None:
    sql = (
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 100000000)"
        " SELECT i, 'padding padding padding' AS p FROM n CROSS JOIN shop.customers"
    )
    url = client.make_url("/api/query")
    async with aiohttp.ClientSession() as session:
        response = await session.post(url, json={"sql": sql}, headers={**auth(), "Accept": NDJSON})
        query_id = response.headers["X-Query-Id"]
        await response.content.read(1024)
        response.close()
    for _ in range(400):
        record = await (await client.get(f"/api/query/{query_id}", headers=auth())).json()
        if record["status"] != "running":
            break
        await asyncio.sleep(0.05)
    assert record["status"] == "cancelled", record
    assert record["bytes"] > 0


async def test_async_results_page_in_every_format_with_a_link_to_the_next(
    client: Any, auth: Any, shop: str
) -> None:
    accepted = await client.post(
        "/api/query",
        json={"sql": "SELECT id, name FROM shop.customers ORDER BY id"},
        headers={**auth(), "Prefer": "respond-async"},
    )
    query_id = (await accepted.json())["query_id"]
    for _ in range(200):
        record = await (await client.get(f"/api/query/{query_id}", headers=auth())).json()
        if record["status"] == "succeeded":
            break
        await asyncio.sleep(0.05)
    page = await client.get(
        f"/api/query/{query_id}/results",
        params={"limit": "2"},
        headers={**auth(), "Accept": NDJSON},
    )
    lines = [json.loads(line) for line in (await page.text()).splitlines()]
    assert lines[1:3] == [[1, "Ada"], [2, "Bo"]]
    link = page.headers["Link"]
    assert link.endswith('rel="next"')
    following = link[1 : link.index(">")]
    rest = await client.get(following, headers={**auth(), "Accept": CSV})
    assert list(csv.reader(io.StringIO(await rest.text()))) == [["id", "name"], ["3", "Cy"]]
    assert "Link" not in rest.headers
