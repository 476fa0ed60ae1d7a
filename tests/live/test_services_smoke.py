"""Each server that ``scripts/services.sh up`` starts answers through its real client.

Run with the servers up::

    scripts/services.sh up
    eval "$(scripts/services.sh env)"
    WEAVER_RUN_E2E=1 pytest -q tests/live

Expected counts come from the deterministic fixtures in ``tests/fixtures``.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from pathlib import Path

import asyncpg
import pytest
import redis.asyncio as aioredis
from neo4j import AsyncDriver
from weaver_services.layout import Layout
from weaver_services.trino import TrinoError, stage_nodes

from .clients import LIVE, MindsDB, PgTarget, Trino, require_env

pytestmark = [
    pytest.mark.live,
    pytest.mark.skipif(not LIVE, reason="live suite: set WEAVER_RUN_E2E=1"),
]


def unique(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:12]}"


# ------------------------------------------------------------------ postgres --


async def test_sample_enterprise_has_the_fixture_schema(pg_enterprise: asyncpg.Connection) -> None:
    schemas = {
        r["schema_name"]
        for r in await pg_enterprise.fetch("SELECT schema_name FROM information_schema.schemata")
    }
    assert {"hr", "sales", "inventory", "finance"} <= schemas

    tables = await pg_enterprise.fetchval(
        "SELECT count(*) FROM information_schema.tables WHERE table_type = 'BASE TABLE' "
        "AND table_schema IN ('hr', 'sales', 'inventory', 'finance')"
    )
    assert tables >= 12

    assert await pg_enterprise.fetchval("SELECT count(*) FROM sales.customers") == 1000
    assert await pg_enterprise.fetchval("SELECT count(*) FROM sales.orders") == 5000
    assert await pg_enterprise.fetchval("SELECT count(*) FROM sales.order_items") == 12500
    # Some NULLs on purpose, for statistics.
    assert (
        await pg_enterprise.fetchval("SELECT count(*) FROM sales.customers WHERE email IS NULL") > 0
    )


async def test_sample_enterprise_keys(pg_enterprise: asyncpg.Connection) -> None:
    # A cross-schema foreign key: sales.order_items.product_id -> inventory.products.
    fk = await pg_enterprise.fetchrow(
        """
        SELECT c.conname, c.confrelid::regclass::text AS target
        FROM pg_constraint c
        WHERE c.contype = 'f' AND c.conrelid = 'sales.order_items'::regclass
          AND c.confrelid = 'inventory.products'::regclass
        """
    )
    assert fk is not None and fk["target"] == "inventory.products"

    # A composite primary key.
    pk_columns = await pg_enterprise.fetchval(
        "SELECT array_length(conkey, 1) FROM pg_constraint "
        "WHERE contype = 'p' AND conrelid = 'sales.order_items'::regclass"
    )
    assert pk_columns == 2

    # Every FK is enforced: no orphan order lines.
    orphans = await pg_enterprise.fetchval(
        "SELECT count(*) FROM sales.order_items i "
        "LEFT JOIN inventory.products p USING (product_id) WHERE p.product_id IS NULL"
    )
    assert orphans == 0


async def test_sample_crm_joins_to_enterprise_ids(
    pg_enterprise: asyncpg.Connection, pg_crm: asyncpg.Connection
) -> None:
    customers = {r[0] for r in await pg_enterprise.fetch("SELECT customer_id FROM sales.customers")}
    tiered = {r[0] for r in await pg_crm.fetch("SELECT customer_id FROM crm.customer_tiers")}
    assert len(tiered) == 920
    assert len(customers & tiered) == 900  # 20 CRM-only leads, 100 customers without a tier


async def test_metadata_database_is_writable_by_the_app_user() -> None:
    conn = await asyncpg.connect(require_env("POSTGRES_DSN"), timeout=10)
    try:
        assert await conn.fetchval("SELECT current_database()") == "weaver_meta"
        table = unique("smoke")
        async with conn.transaction():
            await conn.execute(f"CREATE TABLE {table} (id int PRIMARY KEY, doc jsonb)")
            await conn.execute(f"INSERT INTO {table} VALUES (1, '{{\"ok\": true}}')")
            assert await conn.fetchval(f"SELECT doc->>'ok' FROM {table}") == "true"
            await conn.execute(f"DROP TABLE {table}")
    finally:
        await conn.close()


# --------------------------------------------------------------------- redis --


async def test_redis_set_get_expire(redis_client: aioredis.Redis) -> None:
    assert await redis_client.ping()
    key = unique("weaver:smoke")
    try:
        assert await redis_client.set(key, "value", ex=30)
        assert await redis_client.get(key) == "value"
        assert 0 < await redis_client.ttl(key) <= 30
        assert await redis_client.pexpire(key, 50)
        await asyncio.sleep(0.2)
        assert await redis_client.get(key) is None
    finally:
        await redis_client.delete(key)


# --------------------------------------------------------------------- neo4j --


async def test_neo4j_write_read_delete(neo4j_driver: AsyncDriver) -> None:
    await neo4j_driver.verify_connectivity()
    records, _, _ = await neo4j_driver.execute_query(
        "CALL dbms.components() YIELD versions, edition RETURN versions[0] AS v, edition"
    )
    assert records[0]["v"].startswith("5.26")
    assert records[0]["edition"] == "community"

    marker = unique("smoke")
    try:
        await neo4j_driver.execute_query(
            "CREATE (n:WeaverSmoke {marker: $m, at: datetime()})", m=marker
        )
        records, _, _ = await neo4j_driver.execute_query(
            "MATCH (n:WeaverSmoke {marker: $m}) "
            "RETURN n.marker AS marker, n.at IS NOT NULL AS dated",
            m=marker,
        )
        assert [(r["marker"], r["dated"]) for r in records] == [(marker, True)]
    finally:
        await neo4j_driver.execute_query("MATCH (n:WeaverSmoke {marker: $m}) DELETE n", m=marker)
    records, _, _ = await neo4j_driver.execute_query(
        "MATCH (n:WeaverSmoke {marker: $m}) RETURN count(n) AS c", m=marker
    )
    assert records[0]["c"] == 0


async def test_neo4j_refuses_a_wrong_password() -> None:
    from neo4j import AsyncGraphDatabase
    from neo4j.exceptions import AuthError

    driver = AsyncGraphDatabase.driver(
        require_env("NEO4J_URI"), auth=(require_env("NEO4J_USER"), "not-the-password")
    )
    try:
        with pytest.raises(AuthError):
            await driver.verify_connectivity()
    finally:
        await driver.close()


# ------------------------------------------------------------------- mindsdb --


def create_postgres_database(name: str, target: PgTarget, database: str, password: str) -> str:
    return (
        f'CREATE DATABASE {name} WITH ENGINE = "postgres", PARAMETERS = {{'
        f'"host": "{target.host}", "port": {target.port}, "database": "{database}", '
        f'"user": "{target.user}", "password": "{password}"}}'
    )


async def test_mindsdb_status_and_select(mindsdb: MindsDB) -> None:
    status = await mindsdb.status()
    assert status["mindsdb_version"]
    result = await mindsdb.sql("SELECT 1 AS one")
    assert result["type"] == "table", result
    assert result["data"] == [[1]]


async def test_mindsdb_auth_matches_the_environment(mindsdb: MindsDB) -> None:
    """With MINDSDB_USER/MINDSDB_PASSWORD set, services.sh turns HTTP auth on."""
    auth_wanted = bool(os.environ.get("MINDSDB_USER") and os.environ.get("MINDSDB_PASSWORD"))
    status = await mindsdb.status()
    assert status["auth"]["http_auth_enabled"] is auth_wanted
    async with mindsdb.session.post(
        f"{mindsdb.url}/api/sql/query", json={"query": "SELECT 1"}
    ) as resp:  # no token
        assert resp.status == (401 if auth_wanted else 200)


async def test_mindsdb_joins_across_two_postgres_databases(
    mindsdb: MindsDB,
    pg_target: PgTarget,
    pg_enterprise: asyncpg.Connection,
    pg_crm: asyncpg.Connection,
) -> None:
    ent, crm = unique("smoke_ent"), unique("smoke_crm")
    try:
        for name, database in ((ent, pg_target.enterprise), (crm, pg_target.crm)):
            result = await mindsdb.sql(
                create_postgres_database(name, pg_target, database, pg_target.password)
            )
            assert result["type"] == "ok", result
        assert {ent, crm} <= await mindsdb.database_names()

        result = await mindsdb.sql(
            f"SELECT c.customer_id, c.segment, t.tier "
            f"FROM {ent}.sales.customers AS c "
            f"JOIN {crm}.crm.customer_tiers AS t ON c.customer_id = t.customer_id"
        )
        assert result["type"] == "table", result
        assert [c.lower() for c in result["column_names"]] == ["customer_id", "segment", "tier"]

        # The same join computed from the two databases directly.
        customers = dict(
            await pg_enterprise.fetch("SELECT customer_id, segment FROM sales.customers")
        )
        tiers = dict(await pg_crm.fetch("SELECT customer_id, tier FROM crm.customer_tiers"))
        expected = {(cid, customers[cid], tiers[cid]) for cid in customers.keys() & tiers.keys()}
        got = {(int(r[0]), r[1], r[2]) for r in result["data"]}
        assert len(result["data"]) == len(expected) == 900
        assert got == expected
    finally:
        for name in (ent, crm):
            await mindsdb.sql(f"DROP DATABASE IF EXISTS {name}")
    assert not {ent, crm} & await mindsdb.database_names()


async def test_mindsdb_wrong_password_creates_nothing(
    mindsdb: MindsDB, pg_target: PgTarget
) -> None:
    name = unique("smoke_bad")
    try:
        result = await mindsdb.sql(
            create_postgres_database(name, pg_target, pg_target.enterprise, "wrong-password")
        )
        assert result["type"] == "error", result
        assert "connect" in result["error_message"].lower()
        assert name not in await mindsdb.database_names()
    finally:
        await mindsdb.sql(f"DROP DATABASE IF EXISTS {name}")


# --------------------------------------------------------------------- trino --


async def test_trino_pages_a_result_through_next_uri(trino: Trino) -> None:
    """The client protocol by hand: POST the statement, follow nextUri to the end."""
    headers = {"X-Trino-User": trino.admin}
    sql = "SELECT orderkey FROM tpch.tiny.orders"
    async with trino.session.post(f"{trino.url}/v1/statement", data=sql, headers=headers) as resp:
        assert resp.status == 200, await resp.text()
        page = await resp.json()
    keys: list[int] = []
    requests = 1
    while "nextUri" in page:
        async with trino.session.get(page["nextUri"], headers=headers) as resp:
            assert resp.status == 200, await resp.text()
            page = await resp.json()
        requests += 1
        keys.extend(row[0] for row in page.get("data", []))
    assert "error" not in page, page["error"]
    assert page["stats"]["state"] == "FINISHED"
    assert len(keys) == len(set(keys)) == 15000  # tpch.tiny.orders
    assert requests > 2  # the rows came in pages, not in one answer


async def test_trino_runs_queries_on_the_worker(trino: Trino) -> None:
    workers = await trino.get("/v1/node")
    # A worker restarted by another suite may stay listed twice, under one address, until
    # the coordinator forgets its earlier run: one address is one worker.
    assert len({worker["uri"] for worker in workers}) == 1
    result = await trino.run("SELECT count(*), min(name) FROM tpch.tiny.nation")
    assert result.rows == [[25, "ALGERIA"]]
    info = await trino.get(f"/v1/query/{result.query_id}")
    assert stage_nodes(info["outputStage"]) == {"weaver-worker"}


async def test_trino_reads_sample_enterprise_through_a_dynamic_catalog(
    trino: Trino, pg_target: PgTarget, pg_enterprise: asyncpg.Connection
) -> None:
    catalog = unique("smoke_pg")
    try:
        await trino.run(
            f"CREATE CATALOG {catalog} USING postgresql WITH ("
            f'"connection-url" = \'jdbc:postgresql://{pg_target.host}:{pg_target.port}/'
            f"{pg_target.enterprise}', \"connection-user\" = '{pg_target.user}', "
            f"\"connection-password\" = '{pg_target.password}')"
        )
        result = await trino.run(f"SELECT count(*) FROM {catalog}.sales.orders")
        assert result.rows == [[await pg_enterprise.fetchval("SELECT count(*) FROM sales.orders")]]
    finally:
        await trino.run(f"DROP CATALOG IF EXISTS {catalog}")


def files_containing(root: Path, needle: bytes) -> list[Path]:
    found = []
    for path in root.rglob("*"):
        try:
            if path.is_file() and needle in path.read_bytes():
                found.append(path)
        except OSError:
            continue
    return found


async def test_trino_keeps_catalog_passwords_off_the_disk(trino: Trino) -> None:
    catalog, secret = unique("smoke_secret"), unique("pw")
    try:
        # Not validated on creation: the password only has to be written somewhere.
        await trino.run(
            f"CREATE CATALOG {catalog} USING postgresql WITH ("
            "\"connection-url\" = 'jdbc:postgresql://127.0.0.1:1/none', "
            f"\"connection-user\" = 'nobody', \"connection-password\" = '{secret}')"
        )
        assert [catalog] in (await trino.run("SHOW CATALOGS")).rows
        state = Layout.from_environ(os.environ).state_dir
        assert files_containing(state / "trino", secret.encode()) == []
        assert files_containing(state / "logs", secret.encode()) == []
    finally:
        await trino.run(f"DROP CATALOG IF EXISTS {catalog}")


async def test_trino_users_see_only_their_own_queries(trino: Trino) -> None:
    alice, bob = unique("alice"), unique("bob")
    marker = unique("marker")
    await trino.run(f"SELECT '{marker}' AS marker", user=alice)

    def statements(queries: list[dict[str, object]]) -> list[str]:
        return [str(q["query"]) for q in queries if marker in str(q["query"])]

    assert statements(await trino.get("/v1/query", user=alice)) != []
    assert statements(await trino.get("/v1/query", user=bob)) == []
    assert statements(await trino.get("/v1/query")) != []  # the admin sees everyone's
    seen_by_bob = await trino.run("SELECT query FROM system.runtime.queries", user=bob)
    assert not [row for row in seen_by_bob.rows if marker in str(row[0])]


async def test_trino_ordinary_users_cannot_manage_catalogs(trino: Trino) -> None:
    user, catalog = unique("tenant"), unique("smoke_denied")
    with pytest.raises(TrinoError, match="Access Denied"):
        await trino.run(f"CREATE CATALOG {catalog} USING tpch", user=user)
    with pytest.raises(TrinoError, match="Access Denied"):
        await trino.run("DROP CATALOG tpch", user=user)
    assert [catalog] not in (await trino.run("SHOW CATALOGS")).rows
