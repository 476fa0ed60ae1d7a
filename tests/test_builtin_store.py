"""The embedded SQLite store: the store contract, plus what sharing one file means.

Several gateway processes share one data directory, so besides the contract these tests
open the same directory from several hosts and from several OS processes.
"""

from __future__ import annotations

import asyncio
import json
import multiprocessing
import sqlite3
from collections.abc import AsyncIterator
from multiprocessing.synchronize import Barrier
from pathlib import Path
from typing import Any

import pytest

from weaver.builtin.store import EmbeddedStore
from weaver.builtin.store.database import DB_FILE, MIGRATIONS, SQLiteStore
from weaver.errors import Conflict, Unavailable
from weaver.host import Host
from weaver.testing.harness import make_settings, running_host
from weaver.testing.queries import (
    HISTORY_BEFORE,
    SWEEP_NOW,
    QueryStoreContract,
    chunk,
    make_query,
    succeeded,
)
from weaver.testing.store import (
    StoreContract,
    make_datasource,
    make_term,
    search_key,
    shop_graph,
)
from weaver.types import Column, Page, SchemaGraph, Table


class TestEmbeddedStore(StoreContract):
    plugin = "embedded_store"

    @pytest.fixture
    async def host(self, tmp_path: Path) -> AsyncIterator[Host]:
        async with running_host(make_settings(tmp_path)) as host:
            yield host


class TestEmbeddedQueryStore(QueryStoreContract):
    plugin = "embedded_store"

    @pytest.fixture
    async def host(self, tmp_path: Path) -> AsyncIterator[Host]:
        async with running_host(make_settings(tmp_path)) as host:
            yield host


async def test_a_sweep_reports_every_tenants_stored_bytes(tmp_path: Path) -> None:
    """A file of its own: the sweep's total is known exactly (the contract, which may share
    a server with others, can only bound it from below)."""
    async with running_host(make_settings(tmp_path)) as host:
        assert (await host.sweep_queries(SWEEP_NOW, HISTORY_BEFORE)).result_bytes == 0
        expired = succeeded(make_query("acme"), result_expires_at=SWEEP_NOW)
        for record, size in [(succeeded(make_query("acme")), 300), (expired, 200)]:
            await host.save_query(record, create=True)
            await host.save_result_chunk("acme", record.query_id, 0, chunk(size), 10_000)
        other = succeeded(make_query("globex"))
        await host.save_query(other, create=True)
        await host.save_result_chunk("globex", other.query_id, 0, chunk(50), 10_000)
        later = SWEEP_NOW.replace(year=SWEEP_NOW.year + 1)
        assert (await host.sweep_queries(later, HISTORY_BEFORE)).result_bytes == 350


async def test_records_survive_a_restart(tmp_path: Path) -> None:
    datasource = make_datasource("acme", "sales")
    term = make_term("acme", "Revenue")
    async with running_host(make_settings(tmp_path)) as host:
        assert host.owner_of("save_datasource") == "embedded_store"
        await host.save_datasource(datasource, create=True)
        await host.store_metadata(datasource, shop_graph())
        await host.save_glossary_term(term, create=True)

    async with running_host(make_settings(tmp_path)) as host:
        assert await host.get_datasource("acme", "sales") == datasource
        assert await host.load_metadata(datasource) == shop_graph()
        assert await host.get_glossary_term("acme", term.id) == term
        hits = await host.search_metadata("acme", "orders", "table", Page(10))
        assert [search_key(h) for h in hits] == ["sales.sales.orders"]


async def test_schema_version_is_recorded(tmp_path: Path) -> None:
    async with running_host(make_settings(tmp_path)):
        pass
    with sqlite3.connect(tmp_path / DB_FILE) as db:
        assert db.execute("PRAGMA user_version").fetchone() == (len(MIGRATIONS),)
        assert db.execute("PRAGMA journal_mode").fetchone() == ("wal",)


async def test_glossary_links_are_made_from_the_terms_of_a_store_before_migration_5(
    tmp_path: Path,
) -> None:
    """Up to migration 4 a term's links were its column paths alone; migration 5 makes
    the link rows from them, so the linked columns keep their terms after the upgrade."""
    with sqlite3.connect(tmp_path / DB_FILE) as db:
        for statements in MIGRATIONS[:4]:
            for statement in statements:
                db.execute(statement)
        db.execute("PRAGMA user_version = 4")
        paths = ["shop.main.orders.total", "shop.main.orders.id", "shop.main.nope", "shop"]
        db.execute(
            "INSERT INTO glossary_terms VALUES"
            " ('acme', 't1', 'Revenue', 'revenue', 'd', '[]', ?, 'revenue', ?, ?)",
            (json.dumps(paths), "2024-02-01T00:00:00+00:00", "2024-02-01T00:00:00+00:00"),
        )
    db.close()
    async with running_host(make_settings(tmp_path)) as host:
        datasource = make_datasource("acme", "shop")
        graph = SchemaGraph(
            schemas=["main"],
            tables=[
                Table(
                    "main",
                    "orders",
                    [
                        Column("id", "INTEGER", False, 1, primary_key=True),
                        Column("total", "REAL", True, 2),
                    ],
                )
            ],
        )
        await host.save_datasource(datasource, create=True)
        await host.store_metadata(datasource, graph)
        links = await host.load_glossary_links(datasource)
    assert [(link.term, link.table, link.column) for link in links] == [
        ("Revenue", "orders", "id"),
        ("Revenue", "orders", "total"),
    ]


async def test_a_newer_schema_is_refused(tmp_path: Path) -> None:
    with sqlite3.connect(tmp_path / DB_FILE) as db:
        db.execute(f"PRAGMA user_version = {len(MIGRATIONS) + 1}")
    async with running_host(make_settings(tmp_path)) as host:
        assert "schema version" in host.startup_errors["embedded_store"]
        plugin = host.pm.get_plugin("embedded_store")
        assert isinstance(plugin, EmbeddedStore)
        with pytest.raises(Unavailable, match="not open"):
            _ = plugin.store


async def test_hosts_sharing_a_directory_see_each_others_writes(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    async with running_host(settings) as first, running_host(settings) as second:
        datasource = make_datasource("acme", "sales")
        await first.save_datasource(datasource, create=True)
        assert await second.get_datasource("acme", "sales") == datasource
        assert await second.delete_datasource("acme", "sales") is True
        assert await first.get_datasource("acme", "sales") is None
        assert await first.list_datasources("acme", Page(10)) == []


async def test_a_remembered_datasource_is_read_again_after_any_change(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    async with running_host(settings) as first, running_host(settings) as second:
        await first.save_datasource(make_datasource("acme", "sales"), create=True)
        remembered = await first.get_datasource("acme", "sales")
        assert remembered is not None
        assert await first.get_datasource("acme", "sales") is remembered

        # Changed by another host on the same file...
        changed = make_datasource("acme", "sales", description="changed by the second")
        await second.save_datasource(changed, create=False)
        assert await first.get_datasource("acme", "sales") == changed

        # ...and by a connection outside Weaver, as another process would.
        with sqlite3.connect(tmp_path / DB_FILE) as db:
            db.execute("UPDATE datasources SET description = 'changed outside'")
        db.close()
        seen = await first.get_datasource("acme", "sales")
        assert seen is not None and seen.description == "changed outside"

        await second.delete_datasource("acme", "sales")
        assert await first.get_datasource("acme", "sales") is None


async def test_concurrent_creates_of_one_name_let_exactly_one_win(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    async with running_host(settings) as first, running_host(settings) as second:
        for index in range(20):
            name = f"contended_{index}"
            outcomes = await asyncio.gather(
                *(
                    host.save_datasource(
                        make_datasource("acme", name, description=label), create=True
                    )
                    for host, label in [(first, "first"), (second, "second")]
                ),
                return_exceptions=True,
            )
            assert sorted(type(o).__name__ for o in outcomes) == ["Conflict", "NoneType"]
            stored = await first.get_datasource("acme", name)
            assert stored is not None
            winner = "first" if outcomes[0] is None else "second"
            assert stored.description == winner


def _graph(prefix: str, tables: int) -> SchemaGraph:
    return SchemaGraph(
        schemas=["public"],
        tables=[
            Table("public", f"{prefix}_{n:03d}", [Column("id", "integer", False, 1)])
            for n in range(tables)
        ],
    )


async def test_readers_never_see_half_a_graph(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    graphs = {"old": _graph("old", 300), "new": _graph("new", 200)}
    async with running_host(settings) as writer, running_host(settings) as reader:
        datasource = make_datasource("acme", "shop")
        await writer.save_datasource(datasource, create=True)
        await writer.store_metadata(datasource, graphs["old"])

        async def write() -> None:
            for round_ in range(30):
                await writer.store_metadata(datasource, graphs["new" if round_ % 2 else "old"])

        async def read() -> set[int]:
            seen: set[int] = set()
            while not writing.done():
                hits = await reader.search_metadata("acme", "_", "table", Page(1000))
                prefixes = {hit.table.split("_")[0] for hit in hits}
                assert len(prefixes) == 1, "a search mixed two graphs"
                assert len(hits) == len(graphs[prefixes.pop()].tables)
                graph = await reader.load_metadata(datasource)
                assert graph in graphs.values()
                seen.add(len(hits))
            return seen

        writing = asyncio.ensure_future(write())
        await asyncio.gather(writing, read(), read())


async def test_a_lookup_that_meets_a_lock_waits_in_a_thread(tmp_path: Path) -> None:
    async with running_host(make_settings(tmp_path)) as host:
        store: SQLiteStore = host.pm.get_plugin("embedded_store").store
        holder = sqlite3.connect(store.path, isolation_level=None)
        holder.execute("BEGIN IMMEDIATE")

        def take_the_write_lock(db: sqlite3.Connection) -> str:
            db.execute("BEGIN IMMEDIATE")
            db.execute("ROLLBACK")
            return "acquired"

        # On the loop thread the lock fails at once; the retry waits in a worker thread
        # while the loop goes on, here releasing the lock.
        waiting = asyncio.ensure_future(store.lookup(take_the_write_lock))
        for _ in range(3):
            await asyncio.sleep(0)
        assert not waiting.done()
        holder.execute("ROLLBACK")
        holder.close()
        assert await waiting == "acquired"


# --- several OS processes on one directory ------------------------------------------------

WORKERS = 3
NAMES_PER_WORKER = 25


def _create_from_process(data_dir: str, worker: int, start: Barrier, results: Any) -> None:
    """Runs in a child process: every worker starts its host on the same fresh directory at
    once, creates names of its own and races the others for a shared set."""

    async def run() -> dict[str, Any]:
        outcome: dict[str, Any] = {"worker": worker, "won": [], "conflicts": 0, "errors": []}
        start.wait()
        async with running_host(make_settings(Path(data_dir))) as host:
            if host.startup_errors:
                outcome["errors"].append(repr(host.startup_errors))
                return outcome

            async def create(name: str) -> None:
                try:
                    await host.save_datasource(make_datasource("acme", name), create=True)
                    outcome["won"].append(name)
                except Conflict:
                    outcome["conflicts"] += 1
                except Exception as error:
                    outcome["errors"].append(repr(error))

            for index in range(NAMES_PER_WORKER):
                await asyncio.gather(create(f"w{worker}_{index}"), create(f"shared_{index}"))
        return outcome

    try:
        results.put(asyncio.run(run()))
    except Exception as error:
        results.put({"worker": worker, "won": [], "conflicts": 0, "errors": [repr(error)]})


async def test_processes_sharing_a_directory_lose_no_writes(tmp_path: Path) -> None:
    spawn = multiprocessing.get_context("spawn")
    start = spawn.Barrier(WORKERS)
    results = spawn.Queue()
    processes = [
        spawn.Process(target=_create_from_process, args=(str(tmp_path), n, start, results))
        for n in range(WORKERS)
    ]
    for process in processes:
        process.start()
    outcomes = [await asyncio.to_thread(results.get, timeout=120) for _ in processes]
    for process in processes:
        await asyncio.to_thread(process.join, 30)
        assert process.exitcode == 0

    assert [o["errors"] for o in outcomes] == [[]] * WORKERS
    won = [name for o in outcomes for name in o["won"]]
    shared = sorted(name for name in won if name.startswith("shared_"))
    assert shared == sorted(f"shared_{index}" for index in range(NAMES_PER_WORKER))
    assert sum(o["conflicts"] for o in outcomes) == (WORKERS - 1) * NAMES_PER_WORKER

    async with running_host(make_settings(tmp_path)) as host:
        stored = await host.list_datasources("acme", Page(limit=1000))
    assert sorted(d.name for d in stored) == sorted(won)
    assert len(stored) == (WORKERS + 1) * NAMES_PER_WORKER
