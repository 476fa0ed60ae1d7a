"""The plugin against a real MindsDB and real PostgreSQL sample databases.

Runs only with ``WEAVER_RUN_E2E=1`` (see conftest.py for the variables). Expected values
are read from the source databases directly with asyncpg, never written down here; the
few tables a test needs of its own it creates in a scratch schema and drops after.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from weaver_mindsdb import statements
from weaver_mindsdb.plugin import MindsDBPlugin
from weaver_mindsdb.testing import (
    LiveEnv,
    Register,
    count_rows,
    free_port,
    integer_key,
    live,
    private_mindsdb,
    user_tables,
)

from weaver.errors import EngineFailed, EngineTimeout, Unavailable
from weaver.external.reconcile import reconcile
from weaver.host import Host
from weaver.naming import internal_name
from weaver.testing import running_host
from weaver.testing.engine import EngineContract, prepare, principal_for, sample_statements
from weaver.testing.live import register_datasource, user_schema
from weaver.types import Datasource, QueryResult
from weaver.workflows import query as query_workflow

pytestmark = live

Scratch = Callable[[str], Awaitable[str]]


def mindsdb_of(host: Host) -> MindsDBPlugin:
    plugin = host.pm.get_plugin("mindsdb")
    assert isinstance(plugin, MindsDBPlugin)
    return plugin


async def query(host: Host, datasources: list[Datasource], sql: str, **options: Any) -> QueryResult:
    """``sql`` through the core's query workflow, as ``/api/query`` runs it."""
    prepared = await prepare(host, sql, datasources, **options)
    return await query_workflow.execute(host, principal_for(datasources[0]), prepared)


async def create_directly(env: LiveEnv, name: str, database: str) -> None:
    """A MindsDB database made behind the plugin's back."""
    parameters = env.connection(database)
    body = await env.mindsdb_sql(statements.create_database(name, "postgres", parameters))
    assert body["type"] == "ok", body


# --- datasource lifecycle ---------------------------------------------------------------


async def test_register_replace_and_unregister_follow_mindsdb(
    live_env: LiveEnv, host: Host, register: Register, tenant: str
) -> None:
    datasource = await register(tenant, "sales", live_env.connection())
    assert datasource.internal_name in await live_env.mindsdb_databases()

    # A changed connection (the other sample database) replaces the definition in place.
    await host.register_datasource(
        datasource, live_env.connection(live_env.crm_database), replace=True
    )
    assert datasource.internal_name in await live_env.mindsdb_databases()
    schema, table = (await user_tables(live_env, live_env.crm_database))[0]
    expected = await count_rows(live_env, live_env.crm_database, schema, table)
    result = await query(host, [datasource], f"SELECT count(*) FROM sales.{schema}.{table}")
    assert result.rows == [[expected]]

    await host.unregister_datasource(datasource)
    assert datasource.internal_name not in await live_env.mindsdb_databases()
    # Dropping what MindsDB no longer has is not an error.
    await host.unregister_datasource(datasource)


async def test_a_refused_connection_creates_nothing_and_hides_the_password(
    live_env: LiveEnv, host: Host, tenant: str
) -> None:
    password = f"wrong-{secrets.token_hex(6)}"
    with pytest.raises(EngineFailed) as caught:
        await register_datasource(host, tenant, "sales", live_env.connection(password=password))
    assert password not in caught.value.detail
    assert internal_name(tenant, "sales") not in caught.value.detail
    assert internal_name(tenant, "sales") not in await live_env.mindsdb_databases()
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
    assert datasource.internal_name not in caught.value.detail
    schema, table = (await user_tables(live_env, live_env.database))[0]
    expected = await count_rows(live_env, live_env.database, schema, table)
    result = await query(host, [datasource], f"SELECT count(*) FROM sales.{schema}.{table}")
    assert result.rows == [[expected]]


async def test_registering_over_a_leftover_database_redefines_it(
    live_env: LiveEnv, host: Host, register: Register, tenant: str
) -> None:
    # A database of this internal name that MindsDB kept from an earlier run, pointing at
    # the other sample database: the new registration must win.
    await create_directly(live_env, internal_name(tenant, "sales"), live_env.crm_database)
    datasource = await register(tenant, "sales", live_env.connection())
    schema, table = (await user_tables(live_env, live_env.database))[0]
    expected = await count_rows(live_env, live_env.database, schema, table)
    result = await query(host, [datasource], f"SELECT count(*) FROM sales.{schema}.{table}")
    assert result.rows == [[expected]]


# --- queries ----------------------------------------------------------------------------


async def test_every_sample_table_counts_the_same_through_mindsdb(
    live_env: LiveEnv, host: Host, register: Register, tenant: str
) -> None:
    datasource = await register(tenant, "sales", live_env.connection())
    for schema, table in await user_tables(live_env, live_env.database):
        expected = await count_rows(live_env, live_env.database, schema, table)
        result = await query(
            host, [datasource], f"SELECT count(*) AS n FROM sales.{schema}.{table}"
        )
        assert result.rows == [[expected]], (schema, table)
        assert result.columns[0].type == "integer"


async def test_a_point_lookup_returns_the_source_row(
    live_env: LiveEnv, host: Host, register: Register, tenant: str
) -> None:
    datasource = await register(tenant, "sales", live_env.connection())
    schema, table, column = await integer_key(live_env, live_env.database)
    (source,) = await live_env.fetch(
        live_env.database,
        f'SELECT * FROM "{schema}"."{table}" ORDER BY "{column}" LIMIT 1',
    )
    key = source[column]
    result = await query(
        host, [datasource], f"SELECT * FROM sales.{schema}.{table} WHERE {column} = {key}"
    )
    names = [c.name for c in result.columns]
    assert names == list(source.keys())
    assert len(result.rows) == 1 and result.truncated is False
    assert result.rows[0][names.index(column)] == key


async def test_a_join_across_two_databases(
    live_env: LiveEnv, host: Host, register: Register, tenant: str, scratch_schema: Scratch
) -> None:
    # Every other key of a sample table, copied into the other database: the join must
    # find exactly those.
    schema, table, column = await integer_key(live_env, live_env.database)
    keys = [
        row[0]
        for row in await live_env.fetch(
            live_env.database, f'SELECT "{column}" FROM "{schema}"."{table}" LIMIT 400'
        )
    ][::2]
    scratch = await scratch_schema(live_env.crm_database)
    connection = await live_env.pg(live_env.crm_database)
    try:
        await connection.execute(f'CREATE TABLE "{scratch}".picked (k bigint PRIMARY KEY, n int)')
        await connection.executemany(
            f'INSERT INTO "{scratch}".picked VALUES ($1, $2)',
            [(key, index) for index, key in enumerate(sorted(keys))],
        )
    finally:
        await connection.close()
    sales = await register(tenant, "sales", live_env.connection())
    crm = await register(tenant, "crm", live_env.connection(live_env.crm_database))
    result = await query(
        host,
        [sales, crm],
        f"SELECT p.n, s.{column} FROM sales.{schema}.{table} AS s "
        f"JOIN crm.{scratch}.picked AS p ON s.{column} = p.k ORDER BY p.n",
        limit=1000,
    )
    assert [row[1] for row in result.rows] == sorted(keys)
    assert result.truncated is False


async def test_two_tenants_own_the_same_name_apart(
    live_env: LiveEnv, host: Host, register: Register, scratch_schema: Scratch
) -> None:
    tenants = {"A": f"live-a-{secrets.token_hex(3)}", "B": f"live-b-{secrets.token_hex(3)}"}
    databases = {"A": live_env.database, "B": live_env.crm_database}
    owned: dict[str, Datasource] = {}
    for label, tenant_id in tenants.items():
        scratch = await scratch_schema(databases[label])
        await live_env.execute(
            databases[label],
            f'CREATE TABLE "{scratch}".marker (owner text)',
            f"INSERT INTO \"{scratch}\".marker VALUES ('{label}')",
        )
        owned[label] = await register(
            tenant_id, "sales", live_env.connection(databases[label], schema=scratch)
        )
    assert owned["A"].internal_name != owned["B"].internal_name
    for label, datasource in owned.items():
        result = await query(host, [datasource], "SELECT owner FROM sales.marker")
        assert result.rows == [[label]]


async def test_a_slow_query_times_out_and_the_engine_recovers(
    live_env: LiveEnv, host: Host, register: Register, tenant: str
) -> None:
    datasource = await register(tenant, "sales", live_env.connection())
    schema, table = (await user_tables(live_env, live_env.database))[0]
    with pytest.raises(EngineTimeout):
        await query(
            host,
            [datasource],
            f"SELECT pg_sleep(5) FROM sales.{schema}.{table} LIMIT 2",
            timeout_seconds=0.5,
        )
    result = await query(host, [datasource], f"SELECT count(*) FROM sales.{schema}.{table}")
    assert len(result.rows) == 1


async def test_rows_past_the_limit_are_cut_and_flagged(
    live_env: LiveEnv, host: Host, register: Register, tenant: str
) -> None:
    datasource = await register(tenant, "sales", live_env.connection())
    counts = {
        (schema, table): await count_rows(live_env, live_env.database, schema, table)
        for schema, table in await user_tables(live_env, live_env.database)
    }
    (schema, table), rows = max(counts.items(), key=lambda item: item[1])
    assert rows >= 3, "no sample table has three rows"
    result = await query(host, [datasource], f"SELECT * FROM sales.{schema}.{table}", limit=2)
    assert len(result.rows) == 2 and result.truncated is True


# --- catalog ----------------------------------------------------------------------------


async def test_introspection_matches_the_source_catalog(
    live_env: LiveEnv, host: Host, register: Register, tenant: str
) -> None:
    datasource = await register(tenant, "sales", live_env.connection())
    graph = await host.introspect_datasource(datasource)
    db = live_env.database
    schemas = await live_env.fetch(
        db,
        f"SELECT schema_name FROM information_schema.schemata WHERE {user_schema('schema_name')}",
    )
    tables = await live_env.fetch(
        db,
        "SELECT table_schema, table_name FROM information_schema.tables "
        f"WHERE table_type IN ('BASE TABLE', 'VIEW') AND {user_schema('table_schema')}",
    )
    columns = await live_env.fetch(
        db,
        "SELECT count(*) FROM information_schema.columns AS c JOIN information_schema.tables AS t "
        "USING (table_schema, table_name) "
        f"WHERE t.table_type IN ('BASE TABLE', 'VIEW') AND {user_schema('t.table_schema')}",
    )
    primary_keys = await live_env.fetch(
        db,
        "SELECT count(*) FROM information_schema.table_constraints AS tc "
        "JOIN information_schema.key_column_usage AS k USING (constraint_schema, constraint_name) "
        "WHERE tc.constraint_type = 'PRIMARY KEY' "
        f"AND {user_schema('tc.table_schema')}",
    )
    foreign_keys = await live_env.fetch(
        db,
        "SELECT count(*) FROM information_schema.table_constraints AS tc "
        "JOIN information_schema.key_column_usage AS k USING (constraint_schema, constraint_name) "
        "WHERE tc.constraint_type = 'FOREIGN KEY' "
        f"AND {user_schema('tc.table_schema')}",
    )
    cross_schema = await live_env.fetch(
        db,
        "SELECT count(*) FROM information_schema.referential_constraints AS rc "
        "JOIN information_schema.table_constraints AS fk "
        "ON fk.constraint_schema = rc.constraint_schema "
        "AND fk.constraint_name = rc.constraint_name "
        "JOIN information_schema.table_constraints AS pk "
        "ON pk.constraint_schema = rc.unique_constraint_schema "
        "AND pk.constraint_name = rc.unique_constraint_name "
        "WHERE fk.table_schema <> pk.table_schema",
    )
    assert sorted(graph.schemas) == sorted(r[0] for r in schemas)
    assert sorted((t.schema, t.name) for t in graph.tables) == sorted((r[0], r[1]) for r in tables)
    assert graph.column_count == columns[0][0]
    assert sum(c.primary_key for t in graph.tables for c in t.columns) == primary_keys[0][0]
    assert graph.foreign_key_count == foreign_keys[0][0]
    if cross_schema[0][0]:
        assert any(
            c.references is not None and c.references.schema != t.schema
            for t in graph.tables
            for c in t.columns
        )
    for table in graph.tables:
        assert [c.ordinal for c in table.columns] == sorted(c.ordinal for c in table.columns)
        assert all(c.data_type for c in table.columns)


async def test_statistics_match_the_source(
    live_env: LiveEnv, host: Host, register: Register, tenant: str
) -> None:
    datasource = await register(tenant, "sales", live_env.connection())
    graph = await host.introspect_datasource(datasource)
    statistics = await host.compute_statistics(datasource, graph)
    assert len(statistics.tables) == len(graph.tables)
    for table in statistics.tables:
        expected = await count_rows(live_env, live_env.database, table.schema, table.table)
        assert table.row_count == expected, (table.schema, table.table)
        for column in table.columns:
            quoted = '"' + column.name.replace('"', '""') + '"'
            (counts,) = await live_env.fetch(
                live_env.database,
                f"SELECT count(*) - count({quoted}), count(DISTINCT CAST({quoted} AS text)) "
                f'FROM "{table.schema}"."{table.table}"',
            )
            assert (column.null_count, column.distinct_count) == (counts[0], counts[1]), (
                table.table,
                column.name,
            )
    # Dates and times come back in ISO 8601, the instants the source holds.
    departments = next(t for t in statistics.tables if t.table == "departments")
    created = next(c for c in departments.columns if c.name == "created_at")
    ((low, high),) = await live_env.fetch(
        live_env.database,
        'SELECT min(created_at), max(created_at) FROM "hr"."departments"',
    )
    assert low is not None and "T" in created.min
    # MindsDB answers a timestamptz without its offset, as the UTC wall time.
    assert (datetime.fromisoformat(created.min), datetime.fromisoformat(created.max)) == (
        low.astimezone(UTC).replace(tzinfo=None),
        high.astimezone(UTC).replace(tzinfo=None),
    )


# --- MindsDB down, reconciliation -------------------------------------------------------


async def test_a_mindsdb_that_does_not_answer_is_down_and_unavailable(
    live_env: LiveEnv, tmp_path: Path, tenant: str
) -> None:
    settings = live_env.settings(tmp_path / "down", MINDSDB_URL=f"http://127.0.0.1:{free_port()}")
    # Start-up does not need MindsDB.
    async with running_host(settings) as host:
        assert "mindsdb" not in host.startup_errors
        checks = await host.check_health()
        assert checks["mindsdb"].status == "down"
        with pytest.raises(Unavailable):
            await register_datasource(host, tenant, "sales", live_env.connection())
        assert await host.get_datasource(tenant, "sales") is None


async def test_start_up_recreates_lost_databases_and_reports_strays(
    live_env: LiveEnv, tmp_path: Path, tenant: str, caplog: pytest.LogCaptureFixture
) -> None:
    data_dir = tmp_path / "data"
    settings = live_env.settings(data_dir)
    stray = f"w_{secrets.token_hex(6)}_stray"
    async with running_host(settings) as host:
        datasource = await register_datasource(host, tenant, "sales", live_env.connection())
    try:
        # MindsDB loses the database; a database named like Weaver's appears.
        await live_env.mindsdb_sql(f"DROP DATABASE `{datasource.internal_name}`")
        await create_directly(live_env, stray, live_env.database)
        caplog.set_level(logging.INFO, logger="weaver_mindsdb")
        async with running_host(settings) as host:
            for _ in range(100):
                extra = (await host.check_health())["mindsdb"].extra
                if extra.get("reconciled"):
                    break
                await asyncio.sleep(0.1)
            assert extra["reconciled"] is True and extra["recreated"] >= 1, extra
            assert extra["strays"] >= 1
            assert datasource.internal_name in await live_env.mindsdb_databases()
            # Strays are reported, never dropped.
            assert stray in await live_env.mindsdb_databases()
            assert stray in caplog.text
    finally:
        for name in (datasource.internal_name, stray):
            await live_env.mindsdb_sql(f"DROP DATABASE IF EXISTS `{name}`")


async def test_with_http_auth_weaver_logs_in_and_again_when_its_token_is_revoked(
    live_env: LiveEnv, tmp_path: Path, tenant: str
) -> None:
    password = secrets.token_urlsafe(12)
    async with private_mindsdb(tmp_path / "mindsdb", username="weaver", password=password) as url:
        settings = live_env.settings(
            tmp_path / "data", MINDSDB_URL=url, MINDSDB_USER="weaver", MINDSDB_PASSWORD=password
        )
        async with running_host(settings) as host:
            # A fresh server's first login can outlast one health check's 2 s on a busy
            # machine; what matters is that the plugin gets in.
            for _ in range(30):
                check = (await host.check_health())["mindsdb"]
                if check.status == "up":
                    break
                await asyncio.sleep(1)
            assert check.status == "up", check
            datasource = await register_datasource(host, tenant, "sales", live_env.connection())
            schema, table = (await user_tables(live_env, live_env.database))[0]
            sql = f"SELECT count(*) FROM sales.{schema}.{table}"
            expected = [[await count_rows(live_env, live_env.database, schema, table)]]
            assert (await query(host, [datasource], sql)).rows == expected

            # MindsDB forgets the token (as on a restart): the next request logs in again.
            token = mindsdb_of(host).engine.client._token
            async with aiohttp.ClientSession() as session:
                headers = {"Authorization": f"Bearer {token}"}
                async with session.post(f"{url}/api/logout", headers=headers) as response:
                    assert response.status == 200
                async with session.post(
                    f"{url}/api/sql/query", json={"query": "SELECT 1"}, headers=headers
                ) as response:
                    assert response.status == 401
            assert (await query(host, [datasource], sql)).rows == expected

        for user, secret, detail in (("", "", "credentials"), ("weaver", "wrong", "login")):
            settings = live_env.settings(
                tmp_path / f"data-{detail}",
                MINDSDB_URL=url,
                MINDSDB_USER=user,
                MINDSDB_PASSWORD=secret,
            )
            async with running_host(settings) as host:
                check = (await host.check_health())["mindsdb"]
                assert check.status == "down" and detail in (check.detail or ""), check
                assert password not in (check.detail or "")
                with pytest.raises(Unavailable):
                    await register_datasource(host, tenant, "other", live_env.connection())


class FrozenRegistry:
    """The registry as reconciliation reads it, at a moment chosen by the test."""

    def __init__(self, listed: list[Datasource], present: bool) -> None:
        self.listed = listed
        self.present = present

    async def all_datasources(self) -> list[Datasource]:
        return self.listed

    async def get_datasource(self, tenant_id: str, name: str) -> Datasource | None:
        return self.listed[0] if self.present else None


async def test_reconciliation_does_not_undo_what_requests_did(
    live_env: LiveEnv, host: Host, tenant: str
) -> None:
    engine = mindsdb_of(host).engine
    datasource = await register_datasource(host, tenant, "sales", live_env.connection())
    await host.unregister_datasource(datasource)
    try:
        # Registered after the gateway started: its request created it, not reconciliation.
        before = datasource.updated_at - timedelta(seconds=1)
        registry = FrozenRegistry([datasource], present=True)
        result = await reconcile(engine, registry, host.context, started_at=before)
        assert result.recreated == []
        assert datasource.internal_name not in await live_env.mindsdb_databases()

        # Deleted by a request while reconciliation recreated it: dropped again.
        after = datasource.updated_at + timedelta(seconds=1)
        registry = FrozenRegistry([datasource], present=False)
        result = await reconcile(engine, registry, host.context, started_at=after)
        assert result.recreated == []
        assert datasource.internal_name not in await live_env.mindsdb_databases()

        # Lost by MindsDB and still registered: created again.
        registry = FrozenRegistry([datasource], present=True)
        result = await reconcile(engine, registry, host.context, started_at=after)
        assert result.recreated == [f"{tenant}/sales"]
        assert datasource.internal_name in await live_env.mindsdb_databases()
    finally:
        await live_env.mindsdb_sql(f"DROP DATABASE IF EXISTS `{datasource.internal_name}`")


# --- the engine conformance kit ---------------------------------------------------------


class TestMindsDBEngineContract(EngineContract):
    plugin = "mindsdb"

    @pytest.fixture
    async def sample_schema(self, live_env: LiveEnv, scratch_schema: Scratch) -> str:
        schema = await scratch_schema(live_env.crm_database)
        await live_env.execute(
            live_env.crm_database,
            f'SET search_path TO "{schema}"',
            *sample_statements("postgres"),
        )
        return schema

    @pytest.fixture
    async def sample_datasource(
        self, live_env: LiveEnv, register: Register, tenant: str, sample_schema: str
    ) -> AsyncIterator[Callable[[str], Awaitable[Datasource]]]:
        async def make(name: str) -> Datasource:
            return await register(
                tenant, name, live_env.connection(live_env.crm_database, schema=sample_schema)
            )

        yield make

    @pytest.fixture
    def slow_sql(self) -> str:
        # Pushed down to PostgreSQL whole: five seconds a row, far past the contract's 1s.
        return "SELECT pg_sleep(5) FROM {ds}.customers"
