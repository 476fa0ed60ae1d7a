"""`weaver serve --demo`: something to query on a first run."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from weaver.auth import mint_token
from weaver.bootstrap import build_host
from weaver.settings import Settings
from weaver.workflows.datasources import register

DEMO_TENANT = "demo"
DEMO_DATASOURCE = "demo"
DEMO_FILE = "demo.db"
# Who the printed token (and the console's development sign-in) speaks for.
DEMO_SUBJECT = "demo"
DEMO_ROLES = ("editor",)

_SCHEMA = """
CREATE TABLE customers (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    country TEXT NOT NULL,
    signed_up DATE NOT NULL
);
CREATE TABLE products (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    unit_price NUMERIC NOT NULL
);
CREATE TABLE orders (
    id INTEGER PRIMARY KEY,
    customer_id INTEGER NOT NULL REFERENCES customers(id),
    product_id INTEGER NOT NULL REFERENCES products(id),
    quantity INTEGER NOT NULL,
    ordered_at TIMESTAMP NOT NULL,
    note TEXT
);
"""

_COUNTRIES = ("KR", "DE", "US", "JP", "BR")


def write_demo_database(path: Path) -> None:
    """A small shop: 50 customers, 12 products, 500 orders, deterministic."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".tmp")
    partial.unlink(missing_ok=True)
    with sqlite3.connect(partial) as db:
        db.executescript(_SCHEMA)
        db.executemany(
            "INSERT INTO customers VALUES (?, ?, ?, ?)",
            [
                (i, f"Customer {i}", _COUNTRIES[i % 5], f"2024-{1 + i % 12:02d}-{1 + i % 28:02d}")
                for i in range(1, 51)
            ],
        )
        db.executemany(
            "INSERT INTO products VALUES (?, ?, ?)",
            [(i, f"Product {i}", round(4.5 * i + 0.99, 2)) for i in range(1, 13)],
        )
        db.executemany(
            "INSERT INTO orders VALUES (?, ?, ?, ?, ?, ?)",
            [
                (
                    i,
                    1 + (i * 7) % 50,
                    1 + (i * 5) % 12,
                    1 + i % 4,
                    f"2025-{1 + i % 12:02d}-{1 + i % 28:02d}T{i % 24:02d}:00:00",
                    "gift" if i % 10 == 0 else None,
                )
                for i in range(1, 501)
            ],
        )
    partial.replace(path)


async def prepare_demo(settings: Settings) -> list[str]:
    """Create the demo file and datasource if missing; returns how to use them."""
    path = settings.sqlite_root_path / DEMO_FILE
    if not path.exists():
        write_demo_database(path)
    host = build_host(settings)
    await host.startup()
    try:
        if await host.get_datasource(DEMO_TENANT, DEMO_DATASOURCE) is None:
            await register(
                host,
                tenant_id=DEMO_TENANT,
                name=DEMO_DATASOURCE,
                engine="sqlite",
                connection={"path": DEMO_FILE},
                description="A small demo shop: customers, products, orders",
            )
    finally:
        await host.shutdown()
    token = mint_token(
        settings, tenant_id=DEMO_TENANT, subject=DEMO_SUBJECT, roles=DEMO_ROLES, ttl_seconds=86400
    )
    return [
        f"datasource '{DEMO_DATASOURCE}' of tenant '{DEMO_TENANT}' is ready; "
        "a token for it (role editor, 24 h):",
        f"  export TOKEN={token}",
    ]
