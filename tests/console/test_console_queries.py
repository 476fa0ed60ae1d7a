"""The console over the query lifecycle of API.md ("Queries are resources", "Result
formats"): async submission, polling, paged results, cancel, history and downloads.

Written to the contract: they need `Prefer: respond-async`, `GET /api/query/{id}`,
`…/results`, `DELETE /api/query/{id}`, `GET /api/query/history` and the CSV/NDJSON
formats on the server."""

from __future__ import annotations

import csv
import io
import json
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from tests.console.conftest import Console, Server

try:
    from playwright.sync_api import expect
except ImportError:  # the `browser` fixture says what is missing
    expect = None

pytestmark = pytest.mark.browser

JOIN = (
    "SELECT o.id, c.name, c.country, o.quantity, o.note\n"
    "FROM demo.orders o\n"
    "JOIN demo.customers c ON c.id = o.customer_id\n"
    "ORDER BY o.id"
)
# Counts to a billion in SQLite: minutes of work, so it is still running when cancelled.
LONG = (
    "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 1000000000)\n"
    "SELECT count(*) AS counted FROM n"
)


def async_query(server: Server, token: str, sql: str) -> str:
    """The id of `sql` run through the API as an async query, once it has succeeded."""
    status, headers, body = server.call(
        "POST", "/api/query", token, {"sql": sql}, {"Prefer": "respond-async"}
    )
    assert status == 202, body[:300]
    location = headers["Location"]
    deadline = time.monotonic() + 30
    while True:
        state = server.json("GET", location, token)
        if state["status"] == "succeeded":
            return str(state["query_id"])
        assert state["status"] in ("queued", "running"), state
        assert time.monotonic() < deadline, state
        time.sleep(0.1)


def run(console: Console) -> Any:
    """Clicks Run; returns the response to the submission."""
    page = console.page
    with page.expect_response(
        lambda r: r.url.endswith("/api/query") and r.request.method == "POST", timeout=30_000
    ) as submitted:
        page.click("#run-query")
    return submitted.value


def shown_rows(console: Console) -> list[list[str]]:
    return list(
        console.page.evaluate(
            """() => [...document.querySelectorAll('.results-grid tbody tr')]
                 .map(tr => [...tr.querySelectorAll('td')].slice(1).map(td => td.textContent))"""
        )
    )


def as_text(row: list[Any]) -> list[str]:
    return ["NULL" if v is None else str(v) for v in row]


def test_a_query_runs_async_and_its_results_page_from_the_server(console: Console) -> None:
    server = console.server
    token = server.token()
    reference = async_query(server, token, JOIN)
    first = server.json("GET", f"/api/query/{reference}/results?limit=100", token)
    second = server.json(
        "GET", f"/api/query/{reference}/results?limit=100&cursor={first['next_cursor']}", token
    )

    page = console.page
    console.open()
    console.sign_in(token)
    console.go("sql")
    console.set_sql(JOIN)
    response = run(console)
    assert response.status == 202
    assert response.request.headers["prefer"] == "respond-async"
    location = response.headers["location"]
    query_id = response.json()["query_id"]
    assert location == f"/api/query/{query_id}"
    expect(page.locator("#query-status .badge.status")).to_have_text("succeeded")
    expect(page.locator("#query-status .row-count")).to_have_text("500 rows")
    expect(page.locator("#query-status .query-id")).to_have_text(query_id)
    expect(page.locator("#result-range")).to_have_text("Rows 1\N{EN DASH}100 of 500")
    assert shown_rows(console) == [as_text(r) for r in first["rows"]]
    console.screenshot("async-results")
    console.check_accessibility("async-results")

    with page.expect_request(lambda r: "/results?" in r.url and "cursor=" in r.url) as paged:
        page.get_by_role("button", name="Next", exact=True).click()
    assert f"/api/query/{query_id}/results?limit=100&cursor=" in paged.value.url
    expect(page.locator("#result-range")).to_have_text("Rows 101\N{EN DASH}200 of 500")
    assert shown_rows(console) == [as_text(r) for r in second["rows"]]
    page.get_by_role("button", name="Previous").click()
    expect(page.locator("#result-range")).to_have_text("Rows 1\N{EN DASH}100 of 500")

    urls = [r.url for r in console.requests]
    assert any(url.endswith(location) for url in urls), "the console never polled the query"
    # Only pages were fetched, never the whole result.
    results = [url for url in urls if "/results" in url]
    assert results and all("limit=100" in url for url in results)


def test_a_long_query_is_cancelled(console: Console) -> None:
    server = console.server
    page = console.page
    console.open()
    console.sign_in(server.token())
    console.go("sql")
    console.set_sql(LONG)
    response = run(console)
    assert response.status == 202
    query_id = response.json()["query_id"]
    expect(page.locator("#query-status .badge.status")).to_have_text("running", timeout=30_000)
    expect(page.locator("#cancel-query")).to_be_enabled()
    with page.expect_request(lambda r: r.method == "DELETE") as cancelled:
        page.click("#cancel-query")
    assert cancelled.value.url.endswith(f"/api/query/{query_id}")
    expect(page.locator("#query-status .badge.status")).to_have_text("cancelled", timeout=30_000)
    expect(page.locator("#cancel-query")).to_be_disabled()
    expect(page.locator("#run-query")).to_be_enabled()
    console.screenshot("cancelled")
    console.check_accessibility("cancelled")
    state = server.json("GET", f"/api/query/{query_id}", server.token())
    assert state["status"] == "cancelled"


@pytest.mark.parametrize(
    ("button", "accept", "extension"),
    [("Download CSV", "text/csv", "csv"), ("Download NDJSON", "application/x-ndjson", "ndjson")],
)
def test_a_download_is_what_the_api_answers(
    console: Console, button: str, accept: str, extension: str
) -> None:
    server = console.server
    token = server.token()
    page = console.page
    console.open()
    console.sign_in(token)
    console.go("sql")
    console.set_sql(JOIN)
    query_id = run(console).json()["query_id"]
    expect(page.locator("#query-status .badge.status")).to_have_text("succeeded")
    with page.expect_download() as downloading:
        page.get_by_role("button", name=button).click()
    download = downloading.value
    assert download.suggested_filename == f"weaver-{query_id}.{extension}"
    saved = Path(download.path()).read_bytes()
    status, headers, expected = server.call(
        "GET", f"/api/query/{query_id}/results", token, headers={"Accept": accept}
    )
    assert status == 200 and headers["Content-Type"].startswith(accept)
    assert saved == expected
    # And it is the whole result, in the format's own shape.
    if extension == "csv":
        rows = list(csv.reader(io.StringIO(saved.decode())))
        assert rows[0] == ["id", "name", "country", "quantity", "note"]
        assert len(rows) == 501
    else:
        lines = [json.loads(line) for line in saved.decode().splitlines()]
        assert [c["name"] for c in lines[0]["columns"]][:2] == ["id", "name"]
        assert lines[-1]["row_count"] == 500 and lines[-1]["truncated"] is False
        assert len(lines) == 502
    console.screenshot(f"download-{extension}")


def test_history_lists_queries_and_runs_one_again(console: Console) -> None:
    server = console.server
    page = console.page
    marker = f"m{uuid.uuid4().hex[:8]}"
    sql = f"SELECT '{marker}' AS marker, count(*) AS orders FROM demo.orders"
    page.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=server.base)
    console.open()
    console.sign_in(server.token())
    console.go("sql")
    console.set_sql(sql)
    run(console)
    expect(page.locator("#query-status .badge.status")).to_have_text("succeeded")

    page.get_by_role("tab", name="History").click()
    item = page.locator(".history-item").filter(has_text=marker)
    expect(item).to_have_count(1)
    expect(item.locator(".badge.status")).to_have_text("succeeded")
    expect(item.locator(".history-sql")).to_have_text(sql)
    console.screenshot("history")
    console.check_accessibility("history")

    item.get_by_role("button", name="Copy").click()
    assert page.evaluate("() => navigator.clipboard.readText()") == sql

    console.set_sql("SELECT 1")
    with page.expect_response(
        lambda r: r.url.endswith("/api/query") and r.request.method == "POST"
    ) as again:
        item.get_by_role("button", name="Run again").click()
    assert again.value.request.post_data_json["sql"] == sql
    expect(page.get_by_role("tab", name="Results")).to_have_attribute("aria-selected", "true")
    expect(page.locator("#query-status .badge.status")).to_have_text("succeeded")
    assert shown_rows(console) == [[marker, "500"]]
    assert page.evaluate("() => document.querySelector('.CodeMirror').CodeMirror.getValue()") == sql

    page.get_by_role("tab", name="History").click()
    expect(page.locator(".history-item").filter(has_text=marker)).to_have_count(2)
    history = server.json("GET", "/api/query/history?limit=10", server.token())
    assert [entry["sql"] for entry in history["items"][:2]] == [sql, sql]
