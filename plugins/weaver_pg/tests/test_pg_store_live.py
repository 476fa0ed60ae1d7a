"""The pg plugin against a real PostgreSQL: the store contract with the plugin owning
snapshots, glossary and statistics (the embedded store keeps the registry and the graph),
the query-store contract, gateways sharing queries through one database, its schema, and
the server going away and coming back."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import pytest
from weaver_pg.plugin import PLUGIN_NAME
from weaver_pg.schema import MIGRATIONS, SCHEMA

from weaver.errors import GatewayLost, Unavailable, problem_body
from weaver.host import Host
from weaver.settings import Settings
from weaver.testing.harness import make_settings, running_host
from weaver.testing.queries import (
    HISTORY_BEFORE,
    LAPSED,
    SWEEP_NOW,
    QueryStoreContract,
    chunk,
    far_future,
    make_query,
    succeeded,
)
from weaver.testing.relay import Relay
from weaver.testing.store import StoreContract, make_datasource, make_statistics, make_term

pytestmark = [
    pytest.mark.live,
    pytest.mark.skipif(
        os.environ.get("WEAVER_RUN_E2E") != "1", reason="live suite: set WEAVER_RUN_E2E=1"
    ),
]

# The metadata database that scripts/services.sh creates.
DEFAULT_DSN = "postgresql://sample_user:sample_password@127.0.0.1:5433/weaver_meta"
PG_HOOKS = [
    "save_snapshot",
    "list_snapshots",
    "get_snapshot",
    "save_glossary_term",
    "get_glossary_term",
    "list_glossary_terms",
    "delete_glossary_term",
    "save_statistics",
    "load_statistics",
]


@pytest.fixture
def dsn() -> str:
    return os.environ.get("POSTGRES_DSN") or DEFAULT_DSN


def pg_settings(tmp_path: Path, dsn: str) -> Settings:
    return make_settings(tmp_path, WEAVER_METADATA_PG_MODE="true", POSTGRES_DSN=dsn)


async def forget_tenants(dsn: str, *tenant_ids: str) -> None:
    """The shared database keeps what tests wrote unless they remove it."""
    connection = await asyncpg.connect(dsn)
    try:
        for table in ("snapshots", "glossary_terms", "statistics", "queries", "query_results"):
            await connection.execute(
                f"DELETE FROM {SCHEMA}.{table} WHERE tenant_id = any($1::text[])", tenant_ids
            )
    finally:
        await connection.close()


class TestPgStore(StoreContract):
    plugin = PLUGIN_NAME
    plugin_hooks = tuple(PG_HOOKS)

    @pytest.fixture
    async def host(
        self, tmp_path: Path, dsn: str, tenant_a: str, tenant_b: str
    ) -> AsyncIterator[Host]:
        async with running_host(pg_settings(tmp_path, dsn)) as host:
            assert {host.owner_of(hook) for hook in PG_HOOKS} == {PLUGIN_NAME}
            assert host.owner_of("save_datasource") == "embedded_store"
            assert host.owner_of("store_metadata") == "embedded_store"
            assert (await host.check_health())[PLUGIN_NAME].status == "up"
            yield host
        await forget_tenants(dsn, tenant_a, tenant_b)


class TestPgQueryStore(QueryStoreContract):
    plugin = PLUGIN_NAME

    @pytest.fixture
    async def host(
        self, tmp_path: Path, dsn: str, tenant_a: str, tenant_b: str
    ) -> AsyncIterator[Host]:
        async with running_host(pg_settings(tmp_path, dsn)) as host:
            assert (await host.check_health())[PLUGIN_NAME].status == "up"
            yield host
        await forget_tenants(dsn, tenant_a, tenant_b)


@pytest.fixture
async def host(tmp_path: Path, dsn: str) -> AsyncIterator[Host]:
    async with running_host(pg_settings(tmp_path, dsn)) as host:
        yield host


@pytest.fixture
def tenant() -> str:
    return f"qpg{uuid.uuid4().hex[:12]}"


@pytest.fixture
async def two_hosts(tmp_path: Path, dsn: str, tenant: str) -> AsyncIterator[tuple[Host, Host]]:
    """Two gateways, as on two machines: nothing shared but the database."""
    async with (
        running_host(pg_settings(tmp_path / "first", dsn)) as first,
        running_host(pg_settings(tmp_path / "second", dsn)) as second,
    ):
        yield first, second
    await forget_tenants(dsn, tenant)


# --- gateways sharing queries through the database -----------------------------------------


async def test_a_cancel_asked_on_one_host_reaches_the_host_running_the_query(
    two_hosts: tuple[Host, Host], tenant: str
) -> None:
    runner, other = two_hosts
    node = f"runner:{uuid.uuid4().hex[:8]}"
    running = make_query(tenant, owner=node, lease_until=far_future())
    await runner.save_query(running, create=True)
    assert await runner.poll_queries(node, None) == []

    assert await other.request_query_cancel(tenant, running.query_id) is True
    assert await runner.poll_queries(node, far_future()) == [running.query_id]
    # The runner's next write, made before it saw the mark, keeps it.
    await runner.save_query(replace(running, row_count=10), create=False)
    seen = await other.get_query(tenant, running.query_id)
    assert seen == replace(running, row_count=10, cancel_requested=True)

    ended = replace(running, status="cancelled", finished_at=datetime.now(UTC), owner=None)
    await runner.save_query(ended, create=False)
    assert await other.request_query_cancel(tenant, running.query_id) is False
    assert await runner.poll_queries(node, None) == []


async def test_a_sweep_on_one_host_fails_the_lapsed_query_of_another(
    two_hosts: tuple[Host, Host], tenant: str
) -> None:
    gone, sweeper = two_hosts
    node = f"gone:{uuid.uuid4().hex[:8]}"
    lease_seconds = 1.0
    lapsing = make_query(
        tenant, owner=node, lease_until=datetime.now(UTC) + timedelta(seconds=lease_seconds)
    )
    renewed = make_query(tenant, owner=f"{node}-alive", lease_until=lapsing.lease_until)
    for record in (lapsing, renewed):
        await gone.save_query(record, create=True)
    history = datetime.now(UTC) - timedelta(days=30)

    await sweeper.sweep_queries(datetime.now(UTC), history)
    assert await gone.get_query(tenant, lapsing.query_id) == lapsing

    # One owner goes on renewing; the other stopped, and its lease is waited out.
    await gone.poll_queries(renewed.owner or "", far_future())
    await asyncio.sleep(lease_seconds + 0.5)
    moment = datetime.now(UTC)
    await sweeper.sweep_queries(moment, history)

    failed = await gone.get_query(tenant, lapsing.query_id)
    assert failed is not None
    assert (failed.status, failed.error) == ("failed", problem_body(GatewayLost()))
    assert failed.finished_at is not None and lapsing.submitted_at < failed.finished_at
    alive = await gone.get_query(tenant, renewed.query_id)
    assert alive is not None and alive.status == "running"
    assert await gone.poll_queries(node, far_future()) == []


async def test_hosts_sweeping_at_once_fail_each_query_once(
    two_hosts: tuple[Host, Host], tenant: str
) -> None:
    first, second = two_hosts
    await first.sweep_queries(SWEEP_NOW, HISTORY_BEFORE)
    lapsed = [make_query(tenant, owner="gone", lease_until=LAPSED) for _ in range(30)]
    for record in lapsed:
        await first.save_query(record, create=True)

    sweeps = await asyncio.gather(
        *(host.sweep_queries(SWEEP_NOW, HISTORY_BEFORE) for host in [first, second] * 3)
    )
    assert sum(sweep.failed for sweep in sweeps) == len(lapsed)
    for record in lapsed:
        swept = await second.get_query(tenant, record.query_id)
        assert swept is not None and swept.status == "failed"


async def test_hosts_writing_results_at_once_keep_within_the_bound(
    two_hosts: tuple[Host, Host], tenant: str
) -> None:
    bound = 2000
    records = [succeeded(make_query(tenant)) for _ in range(12)]
    for record in records:
        await two_hosts[0].save_query(record, create=True)
    await asyncio.gather(
        *(
            two_hosts[n % 2].save_result_chunk(tenant, record.query_id, 0, chunk(450), bound)
            for n, record in enumerate(records)
        )
    )
    kept = [
        await two_hosts[1].load_result_chunks(tenant, record.query_id, 0, 0) for record in records
    ]
    assert sum(len(c) for chunks in kept for c in chunks) <= bound
    assert sum(1 for chunks in kept if chunks) == bound // 450


async def test_a_query_may_hold_any_text(host: Host, tenant: str, dsn: str) -> None:
    """NUL characters and all: the record is kept as JSON text, which escapes them."""
    record = replace(make_query(tenant), sql="SELECT '\x00' AS nul, '漢字' AS han")
    failed = replace(record, status="failed", error={"detail": "engine said \x00\x01"})
    try:
        await host.save_query(failed, create=True)
        assert await host.get_query(tenant, record.query_id) == failed
    finally:
        await forget_tenants(dsn, tenant)


async def test_schema_is_migrated_to_the_latest_version(host: Host, dsn: str) -> None:
    connection = await asyncpg.connect(dsn)
    try:
        versions = await connection.fetch(
            f"SELECT version FROM {SCHEMA}.schema_migrations ORDER BY version"
        )
        tables = await connection.fetch(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = $1", SCHEMA
        )
    finally:
        await connection.close()
    assert [row["version"] for row in versions] == list(range(1, len(MIGRATIONS) + 1))
    assert {row["table_name"] for row in tables} >= {
        "snapshots",
        "glossary_terms",
        "statistics",
        "queries",
        "query_results",
        "schema_migrations",
    }


async def test_gateways_starting_together_share_the_schema(tmp_path: Path, dsn: str) -> None:
    async def start(index: int) -> dict[str, str]:
        async with running_host(pg_settings(tmp_path / str(index), dsn)) as host:
            return {
                name: check.status
                for name, check in (await host.check_health()).items()
                if name == PLUGIN_NAME
            }

    assert await asyncio.gather(*(start(n) for n in range(3))) == [{PLUGIN_NAME: "up"}] * 3


async def test_glossary_terms_are_unique_in_the_database(host: Host, dsn: str) -> None:
    """The rule holds for every writer of the table, not only through the plugin."""
    term = make_term("tunique", "Revenue")
    await host.save_glossary_term(term, create=True)
    connection = await asyncpg.connect(dsn)
    try:
        with pytest.raises(asyncpg.UniqueViolationError):
            await connection.execute(
                f"INSERT INTO {SCHEMA}.glossary_terms"
                " (tenant_id, id, term, definition, synonyms, columns, created_at, updated_at)"
                " VALUES ($1, 'other', 'REVENUE', '', '{}', '{}', now(), now())",
                term.tenant_id,
            )
    finally:
        await connection.close()
        await forget_tenants(dsn, term.tenant_id)


# --- the server going away ---------------------------------------------------------------


@pytest.fixture
async def relay(dsn: str) -> AsyncIterator[Relay]:
    relay = Relay.to(dsn, 5432)
    yield relay
    await relay.cut()


async def pg_status(host: Host) -> str:
    return (await host.check_health())[PLUGIN_NAME].status


async def test_starts_while_postgres_is_down_and_recovers(
    tmp_path: Path, dsn: str, relay: Relay
) -> None:
    async with running_host(pg_settings(tmp_path, relay.through(dsn))) as host:
        assert PLUGIN_NAME not in host.startup_errors
        assert await pg_status(host) == "down"
        datasource = make_datasource("trecover", "shop")
        with pytest.raises(Unavailable):
            await host.save_statistics(datasource, make_statistics(1))

        await relay.start()
        assert await pg_status(host) == "up"
        await host.save_statistics(datasource, make_statistics(1))

        # Every open connection is cut: the pool must notice and reconnect later.
        await relay.cut()
        assert await pg_status(host) == "down"
        with pytest.raises(Unavailable):
            await host.load_statistics(datasource)

        await relay.start()
        assert await pg_status(host) == "up"
        assert await host.load_statistics(datasource) == make_statistics(1)
        await host.delete_metadata(datasource)
        assert await host.load_statistics(datasource) is None
