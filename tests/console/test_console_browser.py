"""The console in a real browser against a real `weaver serve --demo`: sign-in, the
catalog, the diagram, search, snapshots, the glossary, roles, tenancy and synchronous
queries. Each screen is photographed and checked with axe-core."""

from __future__ import annotations

import json
import re
import sqlite3
import uuid
from typing import Any

import pytest

from tests.console.conftest import Console, Server, copy_demo, open_console, serve_demo

try:
    from playwright.sync_api import expect
except ImportError:  # the `browser` fixture says what is missing
    expect = None

pytestmark = pytest.mark.browser

JOIN = (
    "SELECT o.id, c.name, c.country, o.quantity\n"
    "FROM demo.orders o\n"
    "JOIN demo.customers c ON c.id = o.customer_id\n"
    "ORDER BY o.id"
)


def synced(server: Server, datasource: str = "demo") -> None:
    server.json("POST", f"/api/v1/metadata/datasources/{datasource}/sync", server.token())


def diagram_boxes(console: Console) -> list[dict[str, Any]]:
    return list(
        console.page.evaluate(
            """() => [...document.querySelectorAll('a.erd-table')].map(a => {
                const r = a.querySelector('rect.erd-box').getBoundingClientRect();
                return {name: a.dataset.table, x: r.x, y: r.y, w: r.width, h: r.height};
            })"""
        )
    )


def assert_no_overlap(boxes: list[dict[str, Any]]) -> None:
    for i, a in enumerate(boxes):
        for b in boxes[i + 1 :]:
            apart = (
                a["x"] + a["w"] <= b["x"]
                or b["x"] + b["w"] <= a["x"]
                or a["y"] + a["h"] <= b["y"]
                or b["y"] + b["h"] <= a["y"]
            )
            assert apart, f"{a['name']} overlaps {b['name']}"


def test_sign_in_with_the_demo_token_and_follow_foreign_keys(console: Console) -> None:
    page = console.page
    console.open()
    expect(page.locator("#signin")).to_be_visible()
    console.screenshot("sign-in")
    console.check_accessibility("sign-in")

    page.click("#dev-token")
    expect(page.locator(".datasource-card h2")).to_have_text(["demo"])
    expect(page.locator("#identity")).to_contain_text("demo · demo · editor")
    page.locator(".datasource-card").get_by_role("button", name="Sync catalog").click()
    expect(page.locator(".toast.success")).to_contain_text("Synced demo: 3 tables")
    expect(page.locator(".datasource-card .sync-state")).to_contain_text("Synced")
    console.screenshot("catalog")
    console.check_accessibility("catalog")

    # Down the tree: datasource → schema → table.
    page.get_by_role("button", name="Expand demo", exact=True).click()
    page.get_by_role("button", name="Expand demo.main").click()
    page.locator("#sidebar").get_by_role("link", name="orders").click()
    expect(page.locator("#main h1")).to_have_text("demo.main.orders")
    customer_id = page.locator('tr[data-column="customer_id"]')
    expect(customer_id.locator(".badge.fk")).to_have_text("FK")
    expect(customer_id.locator("a.fk-link")).to_have_text("→ customers.id")
    expect(page.locator('tr[data-column="id"] .badge.key')).to_have_text("PK")
    expect(page.locator('tr[data-column="note"] td').nth(1)).to_have_text("null")
    console.screenshot("table")
    console.check_accessibility("table")

    # The key the other way: customers is referenced by orders.customer_id.
    customer_id.locator("a.fk-link").click()
    expect(page.locator("#main h1")).to_have_text("demo.main.customers")
    expect(page.locator(".referenced-by li")).to_have_text(["orders.customer_id → customers.id"])


def test_the_diagram_shows_every_table_of_the_demo_schema(console: Console) -> None:
    server = console.server
    synced(server)
    token = server.token()
    tables = server.json("GET", "/api/v1/metadata/datasources/demo/schemas/main/tables", token)
    names = sorted(t["name"] for t in tables["items"])
    console.open()
    console.sign_in(token)
    console.go("catalog/demo/main")
    expect(console.page.locator("a.erd-table")).to_have_count(len(names))
    boxes = diagram_boxes(console)
    assert sorted(b["name"] for b in boxes) == names
    assert_no_overlap(boxes)
    edges = console.page.locator("path.erd-edge")
    expect(edges).to_have_count(2)
    assert sorted(
        f"{e.get_attribute('data-from')}->{e.get_attribute('data-to')}" for e in edges.all()
    ) == ["orders->customers", "orders->products"]
    console.screenshot("diagram")
    console.check_accessibility("diagram")


def twenty_table_schema() -> str:
    """A warehouse of 20 tables: chains, a hub, long and crossing keys, a self-reference."""
    tables = {
        "regions": [],
        "countries": ["regions"],
        "cities": ["countries"],
        "addresses": ["cities"],
        "customers": ["addresses"],
        "segments": [],
        "customer_segments": ["customers", "segments"],
        "suppliers": ["addresses"],
        "categories": [],
        "products": ["categories", "suppliers"],
        "warehouses": ["addresses"],
        "stock": ["products", "warehouses"],
        "orders": ["customers", "addresses"],
        "order_lines": ["orders", "products"],
        "payments": ["orders"],
        "shipments": ["orders", "warehouses"],
        "returns": ["order_lines", "shipments"],
        "employees": [],
        "audit_log": [],
        "promotions": ["products", "regions"],
    }
    script = []
    for name, parents in tables.items():
        columns = ["id INTEGER PRIMARY KEY", "label TEXT NOT NULL"]
        columns += [f"{p}_id INTEGER REFERENCES {p}(id)" for p in parents]
        if name == "employees":
            columns.append("manager_id INTEGER REFERENCES employees(id)")
        script.append(f"CREATE TABLE {name} ({', '.join(columns)});")
    return "\n".join(script)


def test_the_diagram_of_a_twenty_table_schema_is_readable(console: Console) -> None:
    server = console.server
    token = server.token()
    path = server.sqlite_root / "warehouse.db"
    with sqlite3.connect(path) as db:
        db.executescript(twenty_table_schema())
    db.close()
    body = {"name": "warehouse", "engine": "sqlite", "connection": {"path": "warehouse.db"}}
    status, _, _ = server.call("POST", "/api/datasources", token, body)
    assert status in (201, 409)
    result = server.json("POST", "/api/v1/metadata/datasources/warehouse/sync", token)
    assert result["tables"] == 20

    console.open()
    console.sign_in(token)
    console.go("catalog/warehouse/main")
    expect(console.page.locator("a.erd-table")).to_have_count(20)
    expect(console.page.locator("path.erd-edge")).to_have_count(result["foreign_keys"])
    console.page.get_by_role("button", name="Fit").click()
    boxes = diagram_boxes(console)
    assert_no_overlap(boxes)
    # Traceable: no edge runs through a box other than the two it joins.
    crossings = console.page.evaluate(
        """() => {
            const boxes = [...document.querySelectorAll('a.erd-table')].map(a => [
                a.dataset.table, a.querySelector('rect.erd-box').getBoundingClientRect()]);
            const svg = document.querySelector('svg.erd');
            const bad = [];
            for (const path of document.querySelectorAll('path.erd-edge')) {
                const ends = [path.dataset.from, path.dataset.to];
                const length = path.getTotalLength();
                for (let at = 0; at <= length; at += 3) {
                    const p = path.getPointAtLength(at).matrixTransform(path.getScreenCTM());
                    for (const [name, r] of boxes) {
                        if (ends.includes(name)) continue;
                        const inside = p.x > r.left + 1 && p.x < r.right - 1
                            && p.y > r.top + 1 && p.y < r.bottom - 1;
                        if (inside) bad.push(`${ends.join('->')} crosses ${name}`);
                    }
                }
            }
            return [...new Set(bad)];
        }"""
    )
    assert crossings == []
    console.screenshot("diagram-20-tables-fit", element=console.page.locator(".erd-wrap"))
    console.page.get_by_role("button", name="Actual size").click()
    console.screenshot("diagram-20-tables", element=console.page.locator(".erd-frame"))
    console.check_accessibility("diagram-20-tables")


def test_search_finds_a_column(console: Console) -> None:
    synced(console.server)
    page = console.page
    console.open()
    console.sign_in(console.server.token())
    page.keyboard.press("/")
    expect(page.locator("#search-input")).to_be_focused()
    page.keyboard.type("customer_id")
    page.keyboard.press("Enter")
    hits = page.locator("#found-columns + ul a.column-hit")
    expect(hits.first).to_be_visible()
    expect(hits).to_contain_text(["demo.main.orders.customer_id"])
    console.screenshot("search")
    console.check_accessibility("search")
    hits.filter(has_text="demo.main.orders.").first.click()
    expect(page.locator("#main h1")).to_have_text("demo.main.orders")


def test_a_join_runs_and_its_results_page(console: Console) -> None:
    server = console.server
    expected = server.json("POST", "/api/query", server.token(), {"sql": JOIN})
    assert expected["row_count"] == 500
    page = console.page
    console.open()
    console.sign_in(server.token())
    console.go("sql")
    console.set_sql(JOIN)
    page.locator(".CodeMirror textarea").focus()
    page.keyboard.press("Control+Enter")
    expect(page.locator("#query-status .badge.status")).to_have_text("succeeded")
    expect(page.locator("#query-status .row-count")).to_have_text("500 rows")
    expect(page.locator("#result-range")).to_have_text("Rows 1\N{EN DASH}100 of 500")
    headers = page.locator(".results-grid thead th .col-name")
    expect(headers).to_have_text([c["name"] for c in expected["columns"]])
    expect(page.locator(".results-grid thead th .col-type")).to_have_text(
        [c["type"] for c in expected["columns"]]
    )
    console.screenshot("sql-results")
    console.check_accessibility("sql-results")
    page.get_by_role("button", name="Next", exact=True).click()
    expect(page.locator("#result-range")).to_have_text("Rows 101\N{EN DASH}200 of 500")
    first = page.locator(".results-grid tbody tr").first.locator("td")
    row = expected["rows"][100]
    expect(first).to_have_text([str(101), *[str(v) for v in row]])


def test_a_parse_error_points_at_its_line_and_column(console: Console) -> None:
    page = console.page
    console.open()
    console.sign_in(console.server.token())
    console.go("sql")
    console.set_sql("SELECT *\nFROM demo.orders\nWHERE (quantity = 1")
    page.click("#run-query")
    error = page.locator("#query-error")
    expect(error).to_contain_text("could not parse SQL at line 3, column")
    button = page.locator("#error-position")
    expect(button).to_have_text(re.compile(r"Go to line 3, column \d+"))
    expect(page.locator(".CodeMirror .cm-error-mark")).to_have_count(1)
    console.screenshot("sql-error")
    console.check_accessibility("sql-error")
    button.click()
    line = page.evaluate("() => document.querySelector('.CodeMirror').CodeMirror.getCursor().line")
    assert line == 2


def test_the_editor_completes_names_from_the_catalog(console: Console) -> None:
    synced(console.server)
    page = console.page
    console.open()
    console.sign_in(console.server.token())
    console.go("sql")
    console.set_sql("")
    page.locator(".CodeMirror textarea").focus()
    page.keyboard.type("SELECT * FROM demo.")
    hints = page.locator(".CodeMirror-hints .hint-text")
    expect(hints).to_contain_text(["main", "customers", "orders", "products"])
    page.keyboard.type("ord")
    expect(hints).to_have_text(["orders"])
    page.keyboard.press("Enter")
    page.keyboard.type(" o WHERE o.cust")
    expect(hints).to_have_text(["customer_id"])
    expect(page.locator(".CodeMirror-hints .hint-kind")).to_have_text(["integer · orders"])
    console.screenshot("sql-completion")
    page.keyboard.press("Enter")
    text = page.evaluate("() => document.querySelector('.CodeMirror').CodeMirror.getValue()")
    assert text == "SELECT * FROM demo.orders o WHERE o.customer_id"


def test_a_diff_between_two_snapshots_shows_what_changed(console: Console) -> None:
    server = console.server
    token = server.token()
    copy_demo(server, "shop_copy.db")
    body = {"name": "shopcopy", "engine": "sqlite", "connection": {"path": "shop_copy.db"}}
    assert server.call("POST", "/api/datasources", token, body)[0] == 201
    before = server.json("POST", "/api/v1/metadata/datasources/shopcopy/sync", token)
    with sqlite3.connect(server.sqlite_root / "shop_copy.db") as db:
        db.executescript(
            "CREATE TABLE returns (id INTEGER PRIMARY KEY,"
            " order_id INTEGER NOT NULL REFERENCES orders(id), reason TEXT);"
            "ALTER TABLE customers ADD COLUMN tier TEXT;"
        )
    db.close()
    after = server.json("POST", "/api/v1/metadata/datasources/shopcopy/sync", token)
    assert after["tables"] == before["tables"] + 1

    page = console.page
    console.open()
    console.sign_in(token)
    console.go("snapshots/shopcopy")
    expect(page.locator(".diff-summary")).to_have_text(
        "1 table added, 0 tables removed, 1 table changed"
    )
    expect(page.locator(".diff-card > ul.diff > li.added > code")).to_have_text(["main.returns"])
    changed = page.locator(".diff-card > ul.diff > li.changed")
    expect(changed.locator("> code")).to_have_text(["main.customers"])
    expect(changed.locator("li.added code")).to_have_text(["tier"])
    expect(page.locator("#snapshot-to")).to_have_value(after["snapshot_id"])
    expect(page.locator("#snapshot-from")).to_have_value(before["snapshot_id"])
    console.screenshot("snapshot-diff")
    console.check_accessibility("snapshot-diff")
    # The same snapshot on both sides: nothing changed.
    page.select_option("#snapshot-from", after["snapshot_id"])
    page.get_by_role("button", name="Compare").click()
    expect(page.locator(".diff-summary")).to_contain_text("No difference")


def test_statistics_and_glossary_terms_sit_beside_columns(console: Console) -> None:
    server = console.server
    token = server.token()
    synced(server)
    term = f"Order line {uuid.uuid4().hex[:6]}"
    server.json(
        "POST",
        "/api/v1/metadata/glossary",
        token,
        {"term": term, "definition": "One purchase", "columns": ["demo.main.orders.id"]},
    )
    page = console.page
    console.open()
    console.sign_in(token)
    console.go("catalog/demo")
    expect(page.locator("#main h1")).to_have_text("demo")
    page.get_by_role("button", name="Refresh statistics").click()
    expect(page.locator(".toast.success")).to_contain_text("Statistics of demo")
    console.go("catalog/demo/main/orders")
    stats = server.json("GET", "/api/v1/metadata/datasources/demo/stats", token)
    orders = next(t for t in stats["tables"] if t["table"] == "orders")
    note = next(c for c in orders["columns"] if c["name"] == "note")
    row = page.locator('tr[data-column="note"] td')
    expect(row.nth(3)).to_have_text(str(note["null_count"]))
    expect(row.nth(4)).to_have_text(str(note["distinct_count"]))
    chip = page.locator('tr[data-column="id"] a.chip')
    expect(chip).to_have_text([term])
    chip.click()
    card = page.locator(f'article.term[data-term="{term}"]')
    expect(card).to_contain_text("One purchase")
    expect(card.locator("a.chip")).to_have_text(["demo.main.orders.id"])
    console.screenshot("glossary")
    console.check_accessibility("glossary")


def test_a_viewer_sees_no_write_buttons(console: Console) -> None:
    server = console.server
    synced(server)
    page = console.page
    console.open()
    console.sign_in(server.token(roles=("viewer",), sub="vera"))
    expect(page.locator(".datasource-card").first).to_be_visible()
    expect(page.get_by_role("button", name="Sync catalog")).to_have_count(0)
    expect(page.get_by_role("button", name="Refresh statistics")).to_have_count(0)
    console.go("catalog/demo")
    expect(page.locator("#main h1")).to_have_text("demo")
    expect(page.get_by_role("button", name="Sync catalog")).to_have_count(0)
    expect(page.get_by_role("button", name="Refresh statistics")).to_have_count(0)
    console.screenshot("viewer")
    # The server agrees: a viewer's sync is refused.
    status, _, _ = server.call(
        "POST", "/api/v1/metadata/datasources/demo/sync", server.token(roles=("viewer",))
    )
    assert status == 403


def test_another_tenant_sees_none_of_the_demo(console: Console) -> None:
    server = console.server
    synced(server)
    page = console.page
    console.open()
    console.sign_in(server.token(tenant="acme", sub="mallory"))
    expect(page.locator("#main p.muted").first).to_have_text("Tenant acme: 0 datasources.")
    expect(page.locator("#sidebar")).to_contain_text("No datasources in this tenant yet.")
    page.fill("#search-input", "customer")
    page.keyboard.press("Enter")
    expect(page.locator("#found-tables")).to_have_text("Tables (0)")
    expect(page.locator("#found-columns")).to_have_text("Columns (0)")
    console.go("catalog/demo/main/orders")
    expect(page.locator("#main h1")).to_have_text("Not found")
    console.go("sql")
    console.set_sql("SELECT * FROM demo.orders")
    page.click("#run-query")
    expect(page.locator("#query-error")).to_contain_text("datasource 'demo' not found")
    console.screenshot("other-tenant")


def test_the_token_stays_in_the_tab_and_out_of_every_url(console: Console) -> None:
    page = console.page
    console.open()
    page.click("#dev-token")
    expect(page.locator(".datasource-card").first).to_be_visible()
    token = page.evaluate("() => sessionStorage.getItem('weaver.token')")
    assert token and token.count(".") == 2
    assert page.evaluate("() => Object.keys(localStorage)") in ([], ["weaver.theme"])
    assert page.context.cookies() == []
    console.go("sql")
    console.set_sql("SELECT 1 AS one")
    page.click("#run-query")
    expect(page.locator("#query-status .badge.status")).to_have_text("succeeded")
    assert all(token not in request.url for request in console.requests)
    api_calls = [r for r in console.requests if "/api/" in r.url]
    assert api_calls
    assert all(r.headers.get("authorization") == f"Bearer {token}" for r in api_calls)
    # Signing out forgets it.
    page.get_by_role("button", name="Sign out").click()
    expect(page.locator("#signin")).to_be_visible()
    assert page.evaluate("() => sessionStorage.getItem('weaver.token')") is None


def test_a_refused_token_is_explained(console: Console) -> None:
    server = console.server
    page = console.page
    console.open()
    forged = server.token().rsplit(".", 1)[0] + ".c2lnbmF0dXJl"
    page.fill("#token-input", forged)
    page.click("#signin-form button[type=submit]")
    expect(page.locator("#signin-error")).to_contain_text("token is invalid")
    page.fill("#token-input", "not a token")
    page.click("#signin-form button[type=submit]")
    expect(page.locator("#signin-error")).to_contain_text("three parts")
    console.check_accessibility("sign-in-error")


@pytest.mark.parametrize(
    "viewport", [{"width": 390, "height": 844}, {"width": 1280, "height": 800}]
)
def test_dark_theme_and_a_phone_screen(console: Console, viewport: dict[str, int]) -> None:
    synced(console.server)
    page = console.page
    page.set_viewport_size(viewport)
    console.open()
    console.sign_in(console.server.token())
    page.get_by_role("button", name="Switch to dark theme").click()
    assert page.evaluate("() => document.documentElement.dataset.theme") == "dark"
    for screen, route in [
        ("dark-catalog", "catalog"),
        ("dark-table", "catalog/demo/main/orders"),
        ("dark-diagram", "catalog/demo/main"),
    ]:
        console.go(route)
        expect(page.locator("#main .page")).to_be_visible()
        page.wait_for_function("() => !document.querySelector('#main[aria-busy]')")
        console.screenshot(screen, full_page=True)
        console.check_accessibility(screen)
    console.go("sql")
    console.set_sql(JOIN)
    page.click("#run-query")
    expect(page.locator("#query-status .badge.status")).to_have_text("succeeded")
    console.screenshot("dark-sql")
    console.check_accessibility("dark-sql")
    # Nothing is wider than the screen but the scrolling regions meant to be.
    overflow = page.evaluate("() => document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 0, json.dumps(viewport)


def test_the_console_waits_out_the_rate_limit(browser: Any, tmp_path: Any) -> None:
    # Three requests per two seconds: one page of the catalog needs more than that.
    with (
        serve_demo(tmp_path, WEAVER_RATE_LIMIT="3/2s") as limited,
        open_console(browser, limited, "rate-limited") as console,
    ):
        synced(limited)
        page = console.page
        console.open()
        console.sign_in(limited.token())
        # Toasts go away by themselves: keep a record of every one shown.
        page.evaluate(
            """() => { window.shownToasts = [];
                new MutationObserver(() => document.querySelectorAll('#toasts .toast')
                    .forEach(t => window.shownToasts.push(t.className + ': ' + t.textContent)))
                .observe(document.getElementById('toasts'), {childList: true}); }"""
        )
        for route in ("catalog/demo", "catalog/demo/main", "catalog/demo/main/orders"):
            console.go(route)
            page.wait_for_function("() => !document.querySelector('#main[aria-busy]')")
        console.go("catalog/demo/main")
        expect(page.locator("a.erd-table")).to_have_count(3, timeout=30_000)
        shown = page.evaluate("() => window.shownToasts")
        statuses = [
            r.response().status for r in console.requests if "/api/" in r.url and r.response()
        ]
        assert 429 in statuses, statuses
        assert any("warn: Rate limited" in t for t in shown), shown


def test_the_keyboard_reaches_everything_and_leaves_the_editor(console: Console) -> None:
    synced(console.server)
    page = console.page
    console.open()
    # Sign in without a mouse: Tab to the demo token button and press Enter.
    for _ in range(10):
        page.keyboard.press("Tab")
        if page.evaluate("() => document.activeElement.id") == "dev-token":
            break
    page.keyboard.press("Enter")
    expect(page.locator(".datasource-card").first).to_be_visible()
    tree = page.get_by_role("button", name="Expand demo", exact=True)
    tree.focus()
    page.keyboard.press("Enter")
    expect(page.get_by_role("button", name="Collapse demo", exact=True)).to_be_visible()
    console.go("sql")
    page.locator(".CodeMirror textarea").focus()
    page.keyboard.press("Tab")
    # Tab leaves the editor instead of indenting: the keyboard is never trapped there.
    assert page.evaluate("() => !document.activeElement.closest('.CodeMirror')")
    page.keyboard.press("Shift+Tab")
    page.keyboard.press("Control+Enter")
    expect(page.locator("#query-status .badge.status")).to_have_text("succeeded")
