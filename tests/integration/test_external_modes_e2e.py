"""External mode end to end (deployment document §6): the real HTTP app in front of a real
MindsDB, with the PostgreSQL and Neo4j metadata plugins when they are installed.

Runs only with ``WEAVER_RUN_E2E=1``, and then never skips: a missing variable or service
fails. Variables (§6.1): ``MINDSDB_URL``, ``POSTGRES_DSN``, ``NEO4J_URI``, ``NEO4J_USER``,
``NEO4J_PASSWORD``; ``MINDSDB_USER``/``MINDSDB_PASSWORD`` when MindsDB has HTTP auth on;
optionally ``WEAVER_E2E_DS_HOST/PORT/DATABASE/USER/PASSWORD`` (the
datasource target, by default the server and account of ``POSTGRES_DSN``, database
``sample_enterprise``) and ``WEAVER_E2E_CRM_DATABASE`` (the second database for joins,
default ``sample_crm``). ``scripts/weaver_external_exit_gate.py`` runs this file in a loop.

Expected values are read from the sources with asyncpg; nothing is written down here.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import pytest

# The suite drives the first-party plugins; without them (a core-only install) it has
# nothing to run, so it skips as a whole instead of failing to import.
pytest.importorskip("weaver_mindsdb", reason="the first-party plugins are not installed")

from weaver_mindsdb.testing import (
    LiveEnv,
    integer_key,
    live,
    user_schema,
    user_tables,
)

from weaver.app import create_app
from weaver.naming import internal_name
from weaver.settings import Settings
from weaver.testing.live import (
    ApiDatasources,
    Auth,
    Client,
    Create,
    ScratchSchemas,
    required_environment,
    tenant_headers,
    two_tenants,
)

pytestmark = live

REQUIRED_ENV = ("MINDSDB_URL", "POSTGRES_DSN", "NEO4J_URI", "NEO4J_USER", "NEO4J_PASSWORD")
# The metadata plugins this suite turns on when they are installed, by entry-point name.
METADATA_PLUGINS = {"pg": "WEAVER_METADATA_PG_MODE", "neo4j": "WEAVER_METADATA_EXTERNAL_MODE"}

ClientFactory = Callable[..., Awaitable[Client]]


# --- environment and app ------------------------------------------------------------------


def _required() -> dict[str, str]:
    return required_environment(REQUIRED_ENV)


@pytest.fixture
def env() -> LiveEnv:
    required = _required()
    dsn = urlsplit(required["POSTGRES_DSN"])
    return LiveEnv(
        mindsdb_url=required["MINDSDB_URL"].rstrip("/"),
        host=os.environ.get("WEAVER_E2E_DS_HOST") or dsn.hostname or "127.0.0.1",
        port=int(os.environ.get("WEAVER_E2E_DS_PORT") or dsn.port or 5432),
        database=os.environ.get("WEAVER_E2E_DS_DATABASE") or "sample_enterprise",
        user=os.environ.get("WEAVER_E2E_DS_USER") or unquote(dsn.username or ""),
        password=os.environ.get("WEAVER_E2E_DS_PASSWORD") or unquote(dsn.password or ""),
        crm_database=os.environ.get("WEAVER_E2E_CRM_DATABASE") or "sample_crm",
        mindsdb_user=os.environ.get("MINDSDB_USER", ""),
        mindsdb_password=os.environ.get("MINDSDB_PASSWORD", ""),
    )


@pytest.fixture
def e2e_settings(tmp_path: Path, env: LiveEnv) -> Settings:
    installed = {ep.name for ep in entry_points(group="weaver")}
    assert "mindsdb" in installed, "the weaver-mindsdb plugin is not installed"
    flags = {flag: "true" for name, flag in METADATA_PLUGINS.items() if name in installed}
    return env.settings(
        tmp_path / "data",
        # A plugin that does not load fails the run instead of being reported down.
        WEAVER_PLUGINS_STRICT="true",
        **flags,
        **_required(),
    )


@pytest.fixture
async def api(aiohttp_client: ClientFactory, e2e_settings: Settings) -> Client:
    return await aiohttp_client(create_app(e2e_settings))


@pytest.fixture
def tenants() -> tuple[str, str]:
    """Two tenants of this test alone: reruns and loops of the exit gate never collide."""
    return two_tenants("e2e")


@pytest.fixture
def auth(e2e_settings: Settings) -> Auth:
    """Headers carrying an editor token for a tenant, minted as a client would."""
    return lambda tenant_id: tenant_headers(e2e_settings, tenant_id)


@pytest.fixture
async def create(api: Client, auth: Auth, env: LiveEnv) -> AsyncIterator[Create]:
    """POST a datasource (201 expected); every one made is deleted through the API after."""
    datasources = ApiDatasources(api, auth, env)
    yield datasources.create
    await env.drop_databases(internal_name(t, n) for t, n in await datasources.delete_all())


Scratch = Callable[[str], Awaitable[str]]


@pytest.fixture
async def scratch(env: LiveEnv) -> AsyncIterator[Scratch]:
    """A schema of this test's own in a sample database, dropped afterwards."""
    schemas = ScratchSchemas(env, "weaver_e2e")
    yield schemas.make
    await schemas.drop_all()


# --- reading the sources directly ---------------------------------------------------------


async def run_sql(
    api: Client, headers: dict[str, str], sql: str, **options: Any
) -> tuple[int, dict[str, Any]]:
    response = await api.post("/api/query", json={"sql": sql, **options}, headers=headers)
    return response.status, await response.json()


# --- datasources --------------------------------------------------------------------------


async def test_datasources_are_created_and_deleted_in_mindsdb(
    api: Client, auth: Auth, env: LiveEnv, tenants: tuple[str, str]
) -> None:
    tenant = tenants[0]
    engine_name = internal_name(tenant, "sales")
    response = await api.post(
        "/api/datasources",
        json={"name": "sales", "engine": "postgres", "connection": env.connection()},
        headers=auth(tenant),
    )
    body = await response.json()
    assert response.status == 201, body
    assert response.headers["Location"] == "/api/datasources/sales"
    assert body["password_set"] is True and "password" not in body["connection"]
    assert env.password not in await response.text()
    try:
        assert engine_name in await env.mindsdb_databases()
        assert (await api.get("/api/datasources/sales", headers=auth(tenant))).status == 200
    finally:
        deleted = await api.delete("/api/datasources/sales", headers=auth(tenant))
    assert deleted.status == 204
    assert engine_name not in await env.mindsdb_databases()
    assert (await api.get("/api/datasources/sales", headers=auth(tenant))).status == 404


async def test_a_connection_mindsdb_refuses_is_502_and_leaves_nothing(
    api: Client, auth: Auth, env: LiveEnv, tenants: tuple[str, str]
) -> None:
    tenant = tenants[0]
    password = f"wrong-{secrets.token_hex(6)}"
    response = await api.post(
        "/api/datasources",
        json={
            "name": "sales",
            "engine": "postgres",
            "connection": env.connection(password=password),
        },
        headers=auth(tenant),
    )
    text = await response.text()
    assert response.status == 502, text
    assert response.content_type == "application/problem+json"
    assert password not in text and internal_name(tenant, "sales") not in text
    assert (await api.get("/api/datasources/sales", headers=auth(tenant))).status == 404
    assert internal_name(tenant, "sales") not in await env.mindsdb_databases()


# --- queries ------------------------------------------------------------------------------


async def test_queries_run_on_mindsdb(
    api: Client,
    auth: Auth,
    env: LiveEnv,
    tenants: tuple[str, str],
    create: Create,
) -> None:
    tenant = tenants[0]
    await create(tenant, "sales", env.database)
    status = await api.get("/api/query/status", headers=auth(tenant))
    assert (await status.json())["engine"] == "mindsdb"

    for schema, table in await user_tables(env, env.database):
        expected = await env.scalar(env.database, f'SELECT count(*) FROM "{schema}"."{table}"')
        code, body = await run_sql(
            api, auth(tenant), f"SELECT count(*) AS n FROM sales.{schema}.{table}"
        )
        assert code == 200, body
        assert body["rows"] == [[expected]] and body["columns"] == [
            {"name": "n", "type": "integer"}
        ]

    schema, table, column = await integer_key(env, env.database)
    key = await env.scalar(env.database, f'SELECT min("{column}") FROM "{schema}"."{table}"')
    code, body = await run_sql(
        api, auth(tenant), f"SELECT * FROM sales.{schema}.{table} WHERE {column} = {key}"
    )
    assert code == 200, body
    names = [c["name"] for c in body["columns"]]
    assert body["row_count"] == 1 and body["truncated"] is False and body["elapsed_ms"] >= 0
    assert body["rows"][0][names.index(column)] == key

    rows = await env.scalar(env.database, f'SELECT count(*) FROM "{schema}"."{table}"')
    code, body = await run_sql(api, auth(tenant), f"SELECT * FROM sales.{schema}.{table}", limit=1)
    assert code == 200 and body["row_count"] == 1 and body["truncated"] is (rows > 1)


async def test_a_join_across_two_databases(
    api: Client,
    auth: Auth,
    env: LiveEnv,
    tenants: tuple[str, str],
    create: Create,
    scratch: Scratch,
) -> None:
    tenant = tenants[0]
    schema, table, column = await integer_key(env, env.database)
    keys = [
        row[0]
        for row in await env.fetch(
            env.database, f'SELECT "{column}" FROM "{schema}"."{table}" LIMIT 300'
        )
    ][::3]
    scratch_schema = await scratch(env.crm_database)
    connection = await env.pg(env.crm_database)
    try:
        await connection.execute(f'CREATE TABLE "{scratch_schema}".picked (k bigint PRIMARY KEY)')
        await connection.executemany(
            f'INSERT INTO "{scratch_schema}".picked VALUES ($1)', [(k,) for k in keys]
        )
    finally:
        await connection.close()
    await create(tenant, "sales", env.database)
    await create(tenant, "crm", env.crm_database)
    code, body = await run_sql(
        api,
        auth(tenant),
        f"SELECT s.{column} FROM sales.{schema}.{table} AS s "
        f"JOIN crm.{scratch_schema}.picked AS p ON s.{column} = p.k ORDER BY s.{column}",
    )
    assert code == 200, body
    assert [row[0] for row in body["rows"]] == sorted(keys)


async def test_writes_system_databases_and_native_queries_are_400(
    api: Client,
    auth: Auth,
    env: LiveEnv,
    tenants: tuple[str, str],
    create: Create,
) -> None:
    tenant = tenants[0]
    await create(tenant, "sales", env.database)
    schema, table = (await user_tables(env, env.database))[0]
    before = await env.scalar(env.database, f'SELECT count(*) FROM "{schema}"."{table}"')
    for sql in (
        f"DELETE FROM sales.{schema}.{table}",
        f"INSERT INTO sales.{schema}.{table} SELECT * FROM sales.{schema}.{table}",
        f"UPDATE sales.{schema}.{table} SET x = 1",
        f"DROP TABLE sales.{schema}.{table}",
        f"SELECT 1 FROM sales.{schema}.{table}; DELETE FROM sales.{schema}.{table}",
        "CREATE DATABASE x WITH ENGINE = 'postgres'",
        "SELECT * FROM information_schema.databases",
        "SELECT * FROM mindsdb.models",
        "SELECT * FROM files.anything",
        "SELECT * FROM sales (SELECT 1)",
    ):
        code, body = await run_sql(api, auth(tenant), sql)
        assert code == 400, (sql, body)
        assert internal_name(tenant, "sales") not in str(body)
    assert await env.scalar(env.database, f'SELECT count(*) FROM "{schema}"."{table}"') == before


async def test_a_slow_query_is_504(
    api: Client,
    auth: Auth,
    env: LiveEnv,
    tenants: tuple[str, str],
    create: Create,
) -> None:
    tenant = tenants[0]
    await create(tenant, "sales", env.database)
    schema, table = (await user_tables(env, env.database))[0]
    code, body = await run_sql(
        api,
        auth(tenant),
        f"SELECT pg_sleep(5) FROM sales.{schema}.{table} LIMIT 2",
        timeout_seconds=0.5,
    )
    assert code == 504, body


# --- metadata -----------------------------------------------------------------------------


async def test_sync_snapshots_glossary_and_statistics(
    api: Client,
    auth: Auth,
    env: LiveEnv,
    tenants: tuple[str, str],
    create: Create,
) -> None:
    tenant = tenants[0]
    headers = auth(tenant)
    await create(tenant, "sales", env.database)
    db = env.database
    expected_tables = await env.scalar(
        db,
        "SELECT count(*) FROM information_schema.tables "
        f"WHERE table_type IN ('BASE TABLE', 'VIEW') AND {user_schema('table_schema')}",
    )
    expected_schemas = await env.scalar(
        db,
        f"SELECT count(*) FROM information_schema.schemata WHERE {user_schema('schema_name')}",
    )
    expected_foreign_keys = await env.scalar(
        db,
        "SELECT count(*) FROM information_schema.table_constraints AS tc "
        "JOIN information_schema.key_column_usage AS k USING (constraint_schema, constraint_name) "
        f"WHERE tc.constraint_type = 'FOREIGN KEY' AND {user_schema('tc.table_schema')}",
    )

    response = await api.post("/api/v1/metadata/datasources/sales/sync", headers=headers)
    first = await response.json()
    assert response.status == 200, first
    assert (first["schemas"], first["tables"], first["foreign_keys"]) == (
        expected_schemas,
        expected_tables,
        expected_foreign_keys,
    )

    schemas = await (
        await api.get("/api/v1/metadata/datasources/sales/schemas", headers=headers)
    ).json()
    assert sum(s["table_count"] for s in schemas["items"]) == expected_tables
    schema, table, column = await integer_key(env, db)
    detail = await api.get(
        f"/api/v1/metadata/datasources/sales/schemas/{schema}/tables/{table}", headers=headers
    )
    detail_body = await detail.json()
    assert detail.status == 200, detail_body
    assert next(c for c in detail_body["columns"] if c["name"] == column)["primary_key"] is True

    again = await (
        await api.post("/api/v1/metadata/datasources/sales/sync", headers=headers)
    ).json()
    snapshots = await (
        await api.get("/api/v1/metadata/datasources/sales/snapshots", headers=headers)
    ).json()
    assert [s["id"] for s in snapshots["items"]] == [again["snapshot_id"], first["snapshot_id"]]
    diff = await api.get(
        f"/api/v1/metadata/datasources/sales/snapshots/{again['snapshot_id']}/diff",
        params={"against": first["snapshot_id"]},
        headers=headers,
    )
    assert await diff.json() == {"added_tables": [], "removed_tables": [], "changed_tables": []}

    term = f"key-{secrets.token_hex(3)}"
    created = await api.post(
        "/api/v1/metadata/glossary",
        json={
            "term": term,
            "definition": "the key",
            "columns": [f"sales.{schema}.{table}.{column}"],
        },
        headers=headers,
    )
    assert created.status == 201, await created.text()
    found = await (
        await api.get("/api/v1/metadata/glossary", params={"q": term}, headers=headers)
    ).json()
    assert [t["term"] for t in found["items"]] == [term]

    refreshed = await api.post("/api/v1/metadata/datasources/sales/stats/refresh", headers=headers)
    assert refreshed.status == 200, await refreshed.text()
    stats = await (
        await api.get("/api/v1/metadata/datasources/sales/stats", headers=headers)
    ).json()
    assert len(stats["tables"]) == expected_tables
    for entry in stats["tables"]:
        rows = await env.scalar(db, f'SELECT count(*) FROM "{entry["schema"]}"."{entry["table"]}"')
        assert entry["row_count"] == rows, entry["table"]


# --- tenants ------------------------------------------------------------------------------


async def test_tenants_see_only_their_own(
    api: Client,
    auth: Auth,
    env: LiveEnv,
    tenants: tuple[str, str],
    create: Create,
    scratch: Scratch,
) -> None:
    tenant_a, tenant_b = tenants
    # The same name in both tenants, over different data.
    for tenant_id, database, owner in (
        (tenant_a, env.database, "A"),
        (tenant_b, env.crm_database, "B"),
    ):
        schema = await scratch(database)
        await env.execute(
            database,
            f'CREATE TABLE "{schema}".marker (owner text)',
            f"INSERT INTO \"{schema}\".marker VALUES ('{owner}')",
        )
        await create(tenant_id, "mine", database, schema=schema)
    await create(tenant_a, "sales", env.database)
    a, b = auth(tenant_a), auth(tenant_b)
    assert (await api.post("/api/v1/metadata/datasources/sales/sync", headers=a)).status == 200
    term = f"a-only-{secrets.token_hex(3)}"
    glossary = await api.post(
        "/api/v1/metadata/glossary", json={"term": term, "definition": "x"}, headers=a
    )
    term_id = (await glossary.json())["id"]

    for headers, owner in ((a, "A"), (b, "B")):
        code, body = await run_sql(api, headers, "SELECT owner FROM mine.marker")
        assert code == 200 and body["rows"] == [[owner]], body

    assert (await api.get("/api/datasources/sales", headers=b)).status == 404
    names = [
        d["name"] for d in (await (await api.get("/api/datasources", headers=b)).json())["items"]
    ]
    assert names == ["mine"]
    schema, table = (await user_tables(env, env.database))[0]
    code, body = await run_sql(api, b, f"SELECT count(*) FROM sales.{schema}.{table}")
    assert code == 404, body
    assert (await api.get("/api/v1/metadata/datasources/sales/snapshots", headers=b)).status == 404
    listed = await (
        await api.get("/api/v1/metadata/glossary", params={"q": term}, headers=b)
    ).json()
    assert listed["items"] == []
    assert (await api.get(f"/api/v1/metadata/glossary/{term_id}", headers=b)).status == 404


# --- health -------------------------------------------------------------------------------


async def test_readiness_reports_mindsdb_up(api: Client, e2e_settings: Settings) -> None:
    response = await api.get("/health/ready")
    body = await response.json()
    assert response.status == 200, body
    assert body["checks"]["mindsdb"]["status"] == "up", body
    enabled = {name for name, on in e2e_settings.mode_flags().items() if on}
    for name in enabled:
        assert body["checks"][name]["status"] == "up", (name, body)
