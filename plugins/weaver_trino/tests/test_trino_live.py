"""The plugin against the real two-node Trino cluster and the PostgreSQL sample databases.

Runs only with ``WEAVER_RUN_E2E=1`` (see conftest.py). Expected values are read from the
sources with asyncpg, never written down here.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from weaver_trino.plugin import TrinoPlugin
from weaver_trino.statements import create_catalog, staging_name
from weaver_trino.testing import MODE, LiveEnv, Register, Scratch, live

from weaver.errors import EngineFailed, QueryFailed, Unavailable
from weaver.host import Host
from weaver.naming import internal_name
from weaver.testing import free_port, running_host
from weaver.testing.engine import EngineContract, prepare, principal_for, sample_statements
from weaver.testing.live import user_schema
from weaver.types import Datasource, QueryResult
from weaver.workflows import query as query_workflow
from weaver.workflows.datasources import register as register_workflow

pytestmark = live


async def query(host: Host, datasources: list[Datasource], sql: str, **options: Any) -> QueryResult:
    prepared = await prepare(host, sql, datasources, **options)
    return await query_workflow.execute(host, principal_for(datasources[0]), prepared)


async def count(env: LiveEnv, database: str, table: str) -> int:
    return int((await env.fetch(database, f"SELECT count(*) FROM {table}"))[0][0])


# --- datasource lifecycle ---------------------------------------------------------------


async def test_register_replace_and_unregister_follow_show_catalogs(
    live_env: LiveEnv, host: Host, register: Register, tenant: str
) -> None:
    datasource = await register(tenant, "sales", live_env.connection())
    assert datasource.internal_name in await live_env.catalogs()
    expected = await count(live_env, live_env.crm_database, "crm.customer_tiers")

    await host.register_datasource(
        datasource, live_env.connection(live_env.crm_database), replace=True
    )
    catalogs = await live_env.catalogs()
    assert datasource.internal_name in catalogs
    assert staging_name(datasource.internal_name) not in catalogs
    result = await query(host, [datasource], "SELECT count(*) FROM sales.crm.customer_tiers")
    assert result.rows == [[expected]]

    await host.unregister_datasource(datasource)
    assert datasource.internal_name not in await live_env.catalogs()
    await host.unregister_datasource(datasource)  # gone already: not an error


async def test_a_refused_connection_creates_nothing_and_hides_the_password(
    live_env: LiveEnv, host: Host, tenant: str
) -> None:
    password = f"wrong-{secrets.token_hex(6)}"
    with pytest.raises(EngineFailed) as caught:
        await register_workflow(
            host,
            tenant_id=tenant,
            name="sales",
            engine="postgres",
            connection=live_env.connection(password=password),
            description=None,
        )
    assert "password authentication failed" in caught.value.detail
    assert password not in caught.value.detail
    assert internal_name(tenant, "sales") not in caught.value.detail
    assert internal_name(tenant, "sales") not in await live_env.catalogs()
    assert await host.get_datasource(tenant, "sales") is None


async def test_a_refused_replacement_keeps_the_working_definition(
    live_env: LiveEnv, host: Host, register: Register, tenant: str
) -> None:
    datasource = await register(tenant, "sales", live_env.connection())
    password = f"wrong-{secrets.token_hex(6)}"
    with pytest.raises(EngineFailed) as caught:
        await host.register_datasource(
            datasource, live_env.connection(password=password), replace=True
        )
    assert password not in caught.value.detail
    assert "wr_" not in caught.value.detail and datasource.internal_name not in caught.value.detail
    assert staging_name(datasource.internal_name) not in await live_env.catalogs()
    expected = await count(live_env, live_env.database, "sales.customers")
    result = await query(host, [datasource], "SELECT count(*) FROM sales.sales.customers")
    assert result.rows == [[expected]]


async def test_registering_over_a_leftover_catalog_redefines_it(
    live_env: LiveEnv, host: Host, register: Register, tenant: str
) -> None:
    # A catalog of this internal name left from an earlier run, on the other database.
    leftover = internal_name(tenant, "sales")
    crm = live_env.connection(live_env.crm_database)
    properties = {
        "connection-url": f"jdbc:postgresql://{crm['host']}:{crm['port']}/{crm['database']}",
        "connection-user": crm["user"],
        "connection-password": crm["password"],
    }
    await live_env.trino(create_catalog(leftover, "postgresql", properties))
    datasource = await register(tenant, "sales", live_env.connection())
    expected = await count(live_env, live_env.database, "sales.customers")
    result = await query(host, [datasource], "SELECT count(*) FROM sales.sales.customers")
    assert result.rows == [[expected]]


# --- queries ----------------------------------------------------------------------------


async def test_every_sample_table_counts_the_same_through_trino(
    live_env: LiveEnv, host: Host, register: Register, tenant: str
) -> None:
    datasource = await register(tenant, "ent", live_env.connection())
    tables = await live_env.fetch(
        live_env.database,
        "SELECT table_schema, table_name FROM information_schema.tables "
        f"WHERE table_type = 'BASE TABLE' AND {user_schema('table_schema')} ORDER BY 1, 2",
    )
    assert tables
    for schema, table in tables:
        expected = await count(live_env, live_env.database, f'"{schema}"."{table}"')
        result = await query(host, [datasource], f"SELECT count(*) AS n FROM ent.{schema}.{table}")
        assert result.rows == [[expected]], (schema, table)
        assert result.columns[0].type == "bigint"


async def test_values_arrive_typed_and_unbounded_numerics_are_kept(
    live_env: LiveEnv, host: Host, register: Register, tenant: str, scratch_schema: Scratch
) -> None:
    schema = await scratch_schema(live_env.crm_database)
    await live_env.execute(
        live_env.crm_database,
        f'CREATE TABLE "{schema}".typed (n numeric, d numeric(10, 3), t timestamptz, '
        "b bytea, f double precision, a int[])",
        f"INSERT INTO \"{schema}\".typed VALUES (12.345, 1.5, '2024-01-02 03:04:05.123456+02', "
        "'\\x01ff', 'NaN', '{1,2}')",
    )
    datasource = await register(tenant, "crm", live_env.connection(live_env.crm_database))
    result = await query(host, [datasource], f"SELECT n, d, t, b, f, a FROM crm.{schema}.typed")
    types = [c.type for c in result.columns]
    assert types == [
        "decimal(38, 2)",
        "decimal(10, 3)",
        "timestamp(6) with time zone",
        "varbinary",
        "double",
        "array(integer)",
    ]
    # JSON-native on the way out: exact text, ISO 8601, base64.
    assert result.rows == [
        ["12.35", "1.500", "2024-01-02T01:04:05.123456+00:00", "Af8=", "nan", [1, 2]]
    ]


async def test_user_mistakes_are_the_callers_and_name_no_catalog(
    live_env: LiveEnv, host: Host, register: Register, tenant: str
) -> None:
    datasource = await register(tenant, "ent", live_env.connection())
    for sql in (
        "SELECT * FROM ent.sales.no_such_table",
        "SELECT no_such_column FROM ent.sales.customers",
        "SELECT name + 1 FROM ent.sales.customers",
        "SELECT * FROM ent.no_such_table",
    ):
        with pytest.raises(QueryFailed) as caught:
            await query(host, [datasource], sql)
        assert datasource.internal_name not in caught.value.detail, caught.value.detail


async def test_two_part_names_read_the_public_schema(
    live_env: LiveEnv, host: Host, register: Register, tenant: str, scratch_database: str
) -> None:
    await live_env.execute(
        scratch_database,
        "CREATE TABLE public.marker (owner text)",
        "INSERT INTO marker VALUES ('me')",
    )
    datasource = await register(tenant, "mine", live_env.connection(scratch_database))
    result = await query(host, [datasource], "SELECT owner FROM mine.marker")
    assert result.rows == [["me"]]


async def test_a_catalog_trino_lost_is_recreated_by_the_next_query(
    live_env: LiveEnv, host: Host, register: Register, tenant: str
) -> None:
    datasource = await register(tenant, "ent", live_env.connection())
    # What a restarted coordinator with the memory catalog store looks like.
    await live_env.drop_catalogs([datasource.internal_name])
    expected = await count(live_env, live_env.database, "sales.regions")
    result = await query(host, [datasource], "SELECT count(*) FROM ent.sales.regions")
    assert result.rows == [[expected]]
    assert datasource.internal_name in await live_env.catalogs()


# --- Trino down, reconciliation, health -------------------------------------------------


async def test_a_trino_that_does_not_answer_is_down_and_unavailable(
    live_env: LiveEnv, tmp_path: Path, tenant: str
) -> None:
    settings = live_env.settings(tmp_path / "down", TRINO_URL=f"http://127.0.0.1:{free_port()}")
    async with running_host(settings, MODE) as host:
        assert "trino" not in host.startup_errors
        assert (await host.check_health())["trino"].status == "down"
        with pytest.raises(Unavailable):
            await register_workflow(
                host,
                tenant_id=tenant,
                name="sales",
                engine="postgres",
                connection=live_env.connection(),
                description=None,
            )
        assert await host.get_datasource(tenant, "sales") is None


async def test_a_password_is_never_sent_over_plain_http(live_env: LiveEnv, tmp_path: Path) -> None:
    settings = live_env.settings(tmp_path / "data", TRINO_PASSWORD="secret")
    async with running_host(settings, MODE) as host:
        assert "https" in host.startup_errors["trino"]


async def wait_for(check: Callable[[], Awaitable[bool]], seconds: float = 30) -> None:
    for _ in range(int(seconds * 10)):
        if await check():
            return
        await asyncio.sleep(0.1)
    raise AssertionError("the condition did not hold in time")


async def test_start_up_recreates_lost_catalogs_and_reports_strays(
    live_env: LiveEnv, tmp_path: Path, tenant: str, caplog: pytest.LogCaptureFixture
) -> None:
    settings = live_env.settings(tmp_path / "data")
    stray = f"w_{secrets.token_hex(6)}_stray"
    async with running_host(settings, MODE) as host:
        datasource = await register_workflow(
            host,
            tenant_id=tenant,
            name="sales",
            engine="postgres",
            connection=live_env.connection(),
            description=None,
        )
        checks = await host.check_health()
        assert checks["trino"].status == "up" and checks["trino"].extra["workers"] >= 1
    try:
        await live_env.drop_catalogs([datasource.internal_name])
        await live_env.trino(f'CREATE CATALOG "{stray}" USING tpch')
        caplog.set_level(logging.INFO, logger="weaver_trino")
        async with running_host(settings, MODE) as host:

            async def reconciled() -> bool:
                return bool((await host.check_health())["trino"].extra.get("reconciled"))

            await wait_for(reconciled)
            extra = (await host.check_health())["trino"].extra
            assert extra["recreated"] >= 1 and extra["strays"] >= 1, extra
            catalogs = await live_env.catalogs()
            assert datasource.internal_name in catalogs
            assert stray in catalogs  # reported, never dropped
            assert stray in caplog.text
    finally:
        await live_env.drop_catalogs([datasource.internal_name, stray])


def test_the_plugin_is_built_per_app(live_env: LiveEnv, tmp_path: Path) -> None:
    first = TrinoPlugin(live_env.settings(tmp_path / "a"))
    second = TrinoPlugin(live_env.settings(tmp_path / "b"))
    assert first is not second and first.settings is not second.settings


# --- the engine conformance kit ---------------------------------------------------------


class TestTrinoEngineContract(EngineContract):
    plugin = "trino"

    @pytest.fixture
    async def sample_schema(self, live_env: LiveEnv, scratch_database: str) -> str:
        # In `public`, since the contract names tables `{ds}.table`.
        await live_env.execute(scratch_database, *sample_statements("postgres"))
        return "public"

    @pytest.fixture
    def sample_datasource(
        self,
        live_env: LiveEnv,
        register: Register,
        tenant: str,
        scratch_database: str,
        sample_schema: str,
    ) -> Callable[[str], Awaitable[Datasource]]:
        async def make(name: str) -> Datasource:
            return await register(tenant, name, live_env.connection(scratch_database))

        return make

    @pytest.fixture
    def slow_sql(self) -> str:
        # Trino multiplies 6 rows 14 times over (about 78 billion rows to count).
        joins = " ".join(f"CROSS JOIN {{ds}}.orders AS o{i}" for i in range(13))
        return f"SELECT count(*) FROM {{ds}}.orders AS o {joins}"
