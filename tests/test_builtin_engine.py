"""The embedded SQLite engine: the engine contract, its path rules and its sandbox."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from weaver.builtin.engine import EmbeddedEngine
from weaver.errors import EngineFailed, EngineTimeout, InvalidQuery, QueryFailed, Unprocessable
from weaver.host import Host
from weaver.testing.engine import (
    EngineContract,
    SampleFactory,
    prepare,
    principal_for,
    run_query,
    sample_statements,
)
from weaver.testing.harness import make_settings, running_host
from weaver.types import Datasource, PreparedQuery, RowStream
from weaver.workflows import datasources as workflows

TENANT = "tenant-a"
RUNAWAY = (
    "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 1000000000000) "
    "SELECT count(*) FROM n"
)


def listing(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir())


def build(path: Path, *statements: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with sqlite3.connect(path) as connection:
        for statement in statements:
            connection.execute(statement)
    connection.close()
    return path


async def register(host: Host, name: str, path: str, tenant_id: str = TENANT) -> Datasource:
    """The whole path ``POST /api/datasources`` takes."""
    return await workflows.register(
        host,
        tenant_id=tenant_id,
        name=name,
        engine="sqlite",
        connection={"path": path},
        description=None,
    )


async def rows_of(stream: RowStream) -> list[tuple[object, ...]]:
    """Every row of an engine's stream, the stream closed afterwards."""
    try:
        return [tuple(row) async for batch in stream for row in batch]
    finally:
        await stream.aclose()


def statement(sql: str, datasource: Datasource | None = None, limit: int = 10) -> PreparedQuery:
    """``sql`` handed straight to the engine, as if the core's checks had let it through
    (``sales.`` standing for the datasource)."""
    if datasource is None:
        return PreparedQuery("test", sql, {}, limit, 5.0)
    text = sql.replace("sales.", f'"{datasource.internal_name}".')
    return PreparedQuery("test", text, {datasource.name: datasource}, limit, 5.0)


@pytest.fixture
def sqlite_root(tmp_path: Path) -> Path:
    root = tmp_path / "sqlite"
    root.mkdir()
    return root.resolve()


@pytest.fixture
async def host(tmp_path: Path, sqlite_root: Path) -> AsyncIterator[Host]:
    settings = make_settings(tmp_path / "data", WEAVER_SQLITE_ROOT=str(sqlite_root))
    async with running_host(settings) as host:
        assert host.query_plugin == "embedded_engine"
        yield host


class TestEmbeddedEngine(EngineContract):
    plugin = "embedded_engine"

    @pytest.fixture
    def sample_datasource(self, host: Host, sqlite_root: Path) -> SampleFactory:
        async def create(name: str) -> Datasource:
            build(sqlite_root / "samples" / f"{name}.db", *sample_statements("sqlite"))
            return await register(host, name, f"samples/{name}.db")

        return create

    @pytest.fixture
    def slow_sql(self) -> str:
        return RUNAWAY.replace("FROM n", "FROM n JOIN {ds}.customers ON 1 = 1", 1)


# --- connections ----------------------------------------------------------------------


async def test_other_engines_are_not_supported(host: Host) -> None:
    assert await host.validate_connection("postgres", {"host": "db"}) is None


async def test_a_relative_path_inside_the_root_is_accepted(host: Host, sqlite_root: Path) -> None:
    spec = await host.validate_connection("sqlite", {"path": "team/sales.db"})
    assert spec is not None
    assert spec.public == {"path": "team/sales.db"}
    assert spec.secret == {} and spec.targets == ()


@pytest.mark.parametrize(
    ("connection", "loc"),
    [
        ({"path": "../outside.db"}, ["connection", "path"]),
        ({"path": "team/../../outside.db"}, ["connection", "path"]),
        ({"path": "/etc/passwd"}, ["connection", "path"]),
        ({"path": "."}, ["connection", "path"]),
        ({"path": ""}, ["connection", "path"]),
        ({"path": 42}, ["connection", "path"]),
        ({"path": "a\x00b.db"}, ["connection", "path"]),
        ({}, ["connection", "path"]),
        ({"path": "ok.db", "mode": "rw"}, ["connection", "mode"]),
    ],
)
async def test_bad_connections_are_unprocessable(
    host: Host, connection: dict[str, object], loc: list[str]
) -> None:
    with pytest.raises(Unprocessable) as caught:
        await host.validate_connection("sqlite", connection)
    assert caught.value.errors is not None
    # The same shape whichever engine answers: the place in the request body.
    assert ["body", *loc] in [error["loc"] for error in caught.value.errors]


async def test_a_symlink_out_of_the_root_is_refused(
    host: Host, sqlite_root: Path, tmp_path: Path
) -> None:
    outside = build(tmp_path / "outside.db", "CREATE TABLE secret (x)")
    (sqlite_root / "link.db").symlink_to(outside)
    (sqlite_root / "dir").symlink_to(tmp_path)
    for path in ("link.db", "dir/outside.db"):
        with pytest.raises(Unprocessable, match="SQLite connection"):
            await host.validate_connection("sqlite", {"path": path})


async def test_a_symlink_inside_the_root_is_followed(host: Host, sqlite_root: Path) -> None:
    build(sqlite_root / "real.db", "CREATE TABLE t (x)", "INSERT INTO t VALUES (1)")
    (sqlite_root / "alias.db").symlink_to(sqlite_root / "real.db")
    datasource = await register(host, "aliased", "alias.db")
    assert (await run_query(host, datasource, "SELECT x FROM {ds}.t")).rows == [[1]]


async def test_a_link_swapped_in_after_registration_cannot_escape(
    host: Host, sqlite_root: Path, tmp_path: Path
) -> None:
    build(sqlite_root / "sales.db", "CREATE TABLE t (x)")
    datasource = await register(host, "sales", "sales.db")
    outside = build(tmp_path / "outside.db", "CREATE TABLE t (x)", "INSERT INTO t VALUES (666)")
    (sqlite_root / "sales.db").unlink()
    (sqlite_root / "sales.db").symlink_to(outside)
    with pytest.raises(EngineFailed, match="WEAVER_SQLITE_ROOT"):
        await run_query(host, datasource, "SELECT x FROM {ds}.t")


async def test_registering_needs_an_existing_database_and_creates_nothing(
    host: Host, sqlite_root: Path
) -> None:
    (sqlite_root / "notes.txt").write_text("this is not a database, " * 100)
    (sqlite_root / "folder.db").mkdir()
    before = listing(sqlite_root)
    for path, reason in [
        ("missing.db", "does not exist"),
        ("notes.txt", "not a readable SQLite database"),
        ("folder.db", "does not exist"),
    ]:
        with pytest.raises(EngineFailed, match=reason) as caught:
            await register(host, "broken", path)
        assert str(sqlite_root) not in caught.value.detail
    assert listing(sqlite_root) == before


# --- queries --------------------------------------------------------------------------


async def test_a_join_across_two_datasources(host: Host, sqlite_root: Path) -> None:
    build(
        sqlite_root / "sales.db",
        "CREATE TABLE orders (id INTEGER PRIMARY KEY, customer INTEGER, total REAL)",
        "INSERT INTO orders VALUES (1, 7, 9.5), (2, 8, 1.0), (3, 7, 0.5)",
    )
    build(
        sqlite_root / "crm.db",
        "CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT)",
        "INSERT INTO customers VALUES (7, 'Ada'), (8, 'Grace')",
    )
    sales = await register(host, "sales", "sales.db")
    crm = await register(host, "crm", "crm.db")
    query = await prepare(
        host,
        "SELECT c.name, sum(o.total) AS spent FROM sales.orders AS o "
        "JOIN crm.main.customers AS c ON c.id = o.customer GROUP BY c.name ORDER BY c.name",
        [sales, crm],
    )
    result = await host.execute_query(principal_for(sales), query)
    assert result is not None
    assert await rows_of(result) == [("Ada", 10.0), ("Grace", 1.0)]
    assert [(c.name, c.type) for c in result.columns] == [("name", "text"), ("spent", "real")]


async def test_result_types_come_from_the_values(host: Host, sqlite_root: Path) -> None:
    build(
        sqlite_root / "kinds.db",
        "CREATE TABLE k (i INTEGER, r REAL, t TEXT, b BLOB, n TEXT)",
        "INSERT INTO k VALUES (NULL, NULL, NULL, NULL, NULL), (1, 2.5, 'x', x'00ff', NULL)",
    )
    datasource = await register(host, "kinds", "kinds.db")
    query = await prepare(host, "SELECT i, r, t, b, n FROM kinds.k", [datasource])
    result = await host.execute_query(principal_for(datasource), query)
    assert result is not None
    assert [c.type for c in result.columns] == ["integer", "real", "text", "blob", "null"]
    assert (await rows_of(result))[1] == (1, 2.5, "x", b"\x00\xff", None)


async def test_a_schema_other_than_main_is_refused(host: Host, sqlite_root: Path) -> None:
    build(sqlite_root / "s.db", "CREATE TABLE t (x)")
    datasource = await register(host, "s", "s.db")
    assert (await run_query(host, datasource, "SELECT count(*) FROM {ds}.main.t")).rows == [[0]]
    with pytest.raises(InvalidQuery, match="main"):
        await run_query(host, datasource, "SELECT * FROM {ds}.temp.t")


async def test_engine_errors_name_the_public_datasource(host: Host, sqlite_root: Path) -> None:
    build(sqlite_root / "s.db", "CREATE TABLE t (x)")
    datasource = await register(host, "sales", "s.db")
    with pytest.raises(QueryFailed) as caught:
        await run_query(host, datasource, "SELECT * FROM {ds}.nope")
    assert caught.value.detail == "no such table: sales.nope"


async def test_a_datasource_of_another_engine_is_not_run_here(host: Host) -> None:
    now = datetime.now(UTC)
    remote = Datasource(TENANT, "pg", "postgres", "w_x_pg", {}, "", (), None, now, now)
    query = PreparedQuery("test", "SELECT * FROM w_x_pg.t", {"pg": remote}, 10, 5.0)
    assert await host.execute_query(principal_for(remote), query) is None


@pytest.mark.parametrize(
    "sql",
    [
        "INSERT INTO sales.t VALUES (2)",
        "UPDATE sales.t SET x = 3",
        "DELETE FROM sales.t",
        "CREATE TABLE sales.u (y)",
        "DROP TABLE sales.t",
        "PRAGMA query_only = OFF",
        "ATTACH DATABASE 'created-by-attack.db' AS x",
        "SELECT * FROM pragma_table_info('t')",
        "SELECT load_extension('x')",
    ],
)
async def test_the_authorizer_refuses_what_slipped_past_the_checks(
    host: Host, sqlite_root: Path, sql: str
) -> None:
    file = build(sqlite_root / "s.db", "CREATE TABLE t (x)", "INSERT INTO t VALUES (1)")
    datasource = await register(host, "sales", "s.db")
    before = file.read_bytes()
    # Straight to the hook, as if `weaver.sql` had let the statement through.
    with pytest.raises(InvalidQuery, match="refused"):
        await host.execute_query(principal_for(datasource), statement(sql, datasource))
    assert file.read_bytes() == before
    assert listing(sqlite_root) == ["s.db"]


# --- reused connections ----------------------------------------------------------------


async def test_idle_connections_see_writes_and_hold_no_locks(host: Host, sqlite_root: Path) -> None:
    file = build(sqlite_root / "s.db", "CREATE TABLE t (x)", "INSERT INTO t VALUES (1), (1)")
    datasource = await register(host, "sales", "s.db")
    # Truncated: the statement had more rows when the engine stopped reading.
    assert (await run_query(host, datasource, "SELECT x FROM {ds}.t", limit=1)).truncated
    assert (await host.check_health())["embedded_engine"].extra["idle_connections"] == 1
    # A writer that will not wait gets its lock: the idle connection holds none.
    writer = sqlite3.connect(file, timeout=0)
    writer.execute("INSERT INTO t VALUES (2)")
    writer.commit()
    writer.close()
    sql = "SELECT count(*) FROM {ds}.t"
    assert (await run_query(host, datasource, sql)).rows == [[3]]
    assert (await host.check_health())["embedded_engine"].extra["idle_connections"] == 1


async def test_a_file_replaced_by_a_rename_is_read_anew(host: Host, sqlite_root: Path) -> None:
    build(sqlite_root / "s.db", "CREATE TABLE t (x)", "INSERT INTO t VALUES ('old')")
    datasource = await register(host, "sales", "s.db")
    assert (await run_query(host, datasource, "SELECT x FROM {ds}.t")).rows == [["old"]]
    build(sqlite_root / "next.db", "CREATE TABLE t (x)", "INSERT INTO t VALUES ('new')")
    (sqlite_root / "next.db").rename(sqlite_root / "s.db")
    assert (await run_query(host, datasource, "SELECT x FROM {ds}.t")).rows == [["new"]]


async def test_tenants_with_the_same_names_read_their_own_files(
    host: Host, sqlite_root: Path
) -> None:
    build(sqlite_root / "a.db", "CREATE TABLE t (x)", "INSERT INTO t VALUES ('a')")
    build(sqlite_root / "b.db", "CREATE TABLE t (x)", "INSERT INTO t VALUES ('b')")
    mine = await register(host, "sales", "a.db", tenant_id="tenant-a")
    theirs = await register(host, "sales", "b.db", tenant_id="tenant-b")
    for _ in range(3):
        assert (await run_query(host, mine, "SELECT x FROM {ds}.t")).rows == [["a"]]
        assert (await run_query(host, theirs, "SELECT x FROM {ds}.t")).rows == [["b"]]


async def test_unregistering_closes_idle_connections(host: Host, sqlite_root: Path) -> None:
    build(sqlite_root / "s.db", "CREATE TABLE t (x)")
    build(sqlite_root / "o.db", "CREATE TABLE t (x)")
    sales = await register(host, "sales", "s.db")
    other = await register(host, "other", "o.db")
    await run_query(host, sales, "SELECT x FROM {ds}.t")
    await run_query(host, other, "SELECT x FROM {ds}.t")
    await host.unregister_datasource(sales)
    assert (await host.check_health())["embedded_engine"].extra["idle_connections"] == 1


async def test_a_replaced_connection_reads_the_new_file(host: Host, sqlite_root: Path) -> None:
    build(sqlite_root / "old.db", "CREATE TABLE t (x)", "INSERT INTO t VALUES ('old')")
    build(sqlite_root / "new.db", "CREATE TABLE t (x)", "INSERT INTO t VALUES ('new')")
    datasource = await register(host, "sales", "old.db")
    assert (await run_query(host, datasource, "SELECT x FROM {ds}.t")).rows == [["old"]]
    datasource = await workflows.update(host, datasource, connection={"path": "new.db"})
    assert (await host.check_health())["embedded_engine"].extra["idle_connections"] == 0
    assert (await run_query(host, datasource, "SELECT x FROM {ds}.t")).rows == [["new"]]


async def test_a_refused_statement_does_not_spoil_the_next_query(
    host: Host, sqlite_root: Path
) -> None:
    build(sqlite_root / "s.db", "CREATE TABLE t (x)", "INSERT INTO t VALUES (1)")
    datasource = await register(host, "sales", "s.db")
    assert (await run_query(host, datasource, "SELECT x FROM {ds}.t")).rows == [[1]]
    with pytest.raises(InvalidQuery):
        await host.execute_query(
            principal_for(datasource), statement("DELETE FROM sales.t", datasource)
        )
    assert (await run_query(host, datasource, "SELECT x FROM {ds}.t")).rows == [[1]]
    with pytest.raises(QueryFailed):
        await run_query(host, datasource, "SELECT nope FROM {ds}.t")
    assert (await run_query(host, datasource, "SELECT x FROM {ds}.t")).rows == [[1]]


async def test_tenants_sending_the_same_text_read_their_own_data_at_every_limit(
    host: Host, sqlite_root: Path
) -> None:
    for name in ("a", "b"):
        rows = ", ".join([f"('{name}')"] * 3)
        build(sqlite_root / f"{name}.db", "CREATE TABLE t (x)", f"INSERT INTO t VALUES {rows}")
    mine = await register(host, "sales", "a.db", tenant_id="tenant-a")
    theirs = await register(host, "sales", "b.db", tenant_id="tenant-b")
    # The core checks and renders the text once per (text, names, limit) and shares it.
    for datasource, limit, expected in [
        (mine, 1, [["a"]]),
        (theirs, 1, [["b"]]),
        (mine, 5, [["a"], ["a"], ["a"]]),
        (theirs, 5, [["b"], ["b"], ["b"]]),
        (mine, 1, [["a"]]),
    ]:
        result = await run_query(host, datasource, "SELECT x FROM sales.t", limit=limit)
        assert (result.rows, result.truncated) == (expected, limit == 1)


async def test_tenant_queries_cannot_build_huge_values(host: Host) -> None:
    now = datetime.now(UTC)
    nobody = Datasource(TENANT, "x", "sqlite", "w_x", {}, "", (), None, now, now)
    query = await prepare(host, "SELECT length(zeroblob(200000000))", [])
    with pytest.raises(EngineFailed, match="too big"):
        await host.execute_query(principal_for(nobody), query)


async def test_too_many_datasources_in_one_query_are_refused(host: Host, sqlite_root: Path) -> None:
    datasources = []
    for n in range(11):
        build(sqlite_root / f"d{n}.db", "CREATE TABLE t (x)")
        datasources.append(await register(host, f"d{n}", f"d{n}.db"))
    sql = " UNION ALL ".join(f"SELECT x FROM d{n}.t" for n in range(11))
    with pytest.raises(InvalidQuery, match="datasources"):
        await host.execute_query(
            principal_for(datasources[0]), await prepare(host, sql, datasources)
        )


async def test_the_loop_keeps_running_during_a_runaway_query(host: Host) -> None:
    now = datetime.now(UTC)
    nobody = Datasource(TENANT, "x", "sqlite", "w_x", {}, "", (), None, now, now)
    query = await prepare(host, RUNAWAY, [], timeout_seconds=2.0)
    runaway = asyncio.create_task(host.execute_query(principal_for(nobody), query))
    ticks = 0
    for _ in range(5):
        await asyncio.sleep(0.01)
        ticks += 1
    # Had the query blocked the loop, these sleeps would only have returned after it ended.
    assert ticks == 5 and not runaway.done()
    with pytest.raises(EngineTimeout):
        await runaway


async def test_a_cancelled_query_is_interrupted(host: Host) -> None:
    now = datetime.now(UTC)
    nobody = Datasource(TENANT, "x", "sqlite", "w_x", {}, "", (), None, now, now)
    query = await prepare(host, RUNAWAY, [], timeout_seconds=600)
    runaway = asyncio.create_task(host.execute_query(principal_for(nobody), query))
    await asyncio.sleep(0.2)
    plugin = host.pm.get_plugin("embedded_engine")
    assert isinstance(plugin, EmbeddedEngine)
    running = plugin.workers.running
    assert len(running) == 1
    runaway.cancel()
    with pytest.raises(asyncio.CancelledError):
        await runaway
    # Counting to 10^12 takes hours: the worker is free only because it was interrupted.
    for _ in range(500):
        if not running:
            break
        await asyncio.sleep(0.02)
    assert not running


# --- introspection and statistics -----------------------------------------------------

CATALOG = (
    "CREATE TABLE authors (id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT NOT NULL)",
    "CREATE TABLE books (isbn TEXT PRIMARY KEY, author INTEGER REFERENCES authors, "
    "title VARCHAR(200) NOT NULL, price NUMERIC(8, 2), cover BLOB, misc)",
    "CREATE TABLE editions (isbn TEXT, number INTEGER, year INT, PRIMARY KEY (isbn, number), "
    "FOREIGN KEY (isbn) REFERENCES books (isbn))",
    "CREATE TABLE reprints (isbn TEXT, number INTEGER, "
    "FOREIGN KEY (isbn, number) REFERENCES editions)",
    "CREATE VIEW cheap AS SELECT isbn, title FROM books WHERE price < 10",
    "CREATE TABLE dropped (x)",
    "CREATE VIEW broken AS SELECT x FROM dropped",
    "DROP TABLE dropped",
    "INSERT INTO authors (name) VALUES ('Le Guin'), ('Lem')",
    "INSERT INTO books VALUES ('a', 1, 'Earthsea', 8.5, x'01', 'x'), "
    "('b', 2, 'Solaris', 12, NULL, x'02'), ('c', NULL, 'Anonymous', NULL, NULL, NULL)",
    "INSERT INTO editions VALUES ('a', 1, 1968), ('a', 2, 1970), ('b', 1, 1961)",
)


async def test_introspection_of_keys_views_and_types(host: Host, sqlite_root: Path) -> None:
    build(sqlite_root / "catalog.db", *CATALOG)
    datasource = await register(host, "catalog", "catalog.db")
    graph = await host.introspect_datasource(datasource)
    assert graph.schemas == ["main"]
    tables = {t.name: t for t in graph.tables}
    # AUTOINCREMENT's sqlite_sequence is SQLite's own, not the tenant's.
    assert sorted(tables) == ["authors", "books", "cheap", "editions", "reprints"]
    assert {t.schema for t in graph.tables} == {"main"}

    books = {c.name: c for c in tables["books"].columns}
    assert [(c.name, c.data_type, c.ordinal) for c in tables["books"].columns] == [
        ("isbn", "TEXT", 1),
        ("author", "INTEGER", 2),
        ("title", "VARCHAR(200)", 3),
        ("price", "NUMERIC(8, 2)", 4),
        ("cover", "BLOB", 5),
        ("misc", "ANY", 6),
    ]
    # SQLite lets a TEXT primary key hold NULL unless it says NOT NULL; the rowid cannot.
    assert books["isbn"].primary_key and books["isbn"].nullable
    authors_id = tables["authors"].columns[0]
    assert authors_id.primary_key and not authors_id.nullable
    assert not books["title"].nullable
    # `REFERENCES authors` without a column means the primary key.
    assert books["author"].references is not None
    assert books["author"].references.table == "authors"
    assert books["author"].references.column == "id"

    editions = {c.name: c for c in tables["editions"].columns}
    assert editions["isbn"].primary_key and editions["number"].primary_key
    assert not editions["year"].primary_key
    assert editions["isbn"].references is not None
    assert (editions["isbn"].references.table, editions["isbn"].references.column) == (
        "books",
        "isbn",
    )
    reprints = {c.name: c for c in tables["reprints"].columns}
    assert [
        (r.table, r.column)
        for r in (reprints["isbn"].references, reprints["number"].references)
        if r
    ] == [
        ("editions", "isbn"),
        ("editions", "number"),
    ]
    cheap = tables["cheap"]
    assert [c.name for c in cheap.columns] == ["isbn", "title"]
    assert not any(c.primary_key or c.references for c in cheap.columns)


async def test_statistics_skip_extremes_of_blobs(host: Host, sqlite_root: Path) -> None:
    build(sqlite_root / "catalog.db", *CATALOG)
    datasource = await register(host, "catalog", "catalog.db")
    graph = await host.introspect_datasource(datasource)
    statistics = await host.compute_statistics(datasource, graph)
    tables = {t.table: t for t in statistics.tables}
    assert {name: t.row_count for name, t in tables.items()} == {
        "authors": 2,
        "books": 3,
        "cheap": 1,
        "editions": 3,
        "reprints": 0,
    }
    books = {c.name: c for c in tables["books"].columns}
    assert (books["price"].null_count, books["price"].distinct_count) == (1, 2)
    assert (books["price"].min, books["price"].max) == (8.5, 12)
    assert (books["title"].min, books["title"].max) == ("Anonymous", "Solaris")
    assert (books["cover"].null_count, books["cover"].min, books["cover"].max) == (2, None, None)
    assert (books["misc"].null_count, books["misc"].distinct_count) == (1, 2)
    assert (books["misc"].min, books["misc"].max) == (None, None)
    empty = {c.name: c for c in tables["reprints"].columns}
    assert (empty["isbn"].null_count, empty["isbn"].min) == (0, None)


async def test_health_reports_the_root(host: Host, tmp_path: Path) -> None:
    assert (await host.check_health())["embedded_engine"].status == "up"
    (tmp_path / "a-file").write_text("")
    for root, status in [("a-file", "down"), ("not-yet", "up")]:
        settings = make_settings(tmp_path / "data", WEAVER_SQLITE_ROOT=str(tmp_path / root))
        async with running_host(settings) as other:
            check = (await other.check_health())["embedded_engine"]
            assert check.status == status
            assert check.detail is not None and "WEAVER_SQLITE_ROOT" in check.detail


async def test_a_locked_file_is_waited_for_on_a_worker_never_on_the_loop(
    host: Host, sqlite_root: Path
) -> None:
    file = build(sqlite_root / "s.db", "CREATE TABLE t (x)", "INSERT INTO t VALUES (1)")
    datasource = await register(host, "sales", "s.db")
    sql = "SELECT count(*) FROM {ds}.t"
    assert (await run_query(host, datasource, sql)).rows == [[1]]  # leaves an idle connection

    writer = sqlite3.connect(file, isolation_level=None, check_same_thread=False)
    writer.execute("BEGIN EXCLUSIVE")
    ticks = 0

    async def tick() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.01)
            ticks += 1

    async def release_later() -> None:
        await asyncio.sleep(0.3)
        writer.execute("INSERT INTO t VALUES (2)")
        writer.execute("COMMIT")

    ticker = asyncio.create_task(tick())
    releaser = asyncio.create_task(release_later())
    try:
        # The idle connection meets the lock at once; a worker waits for it, and sees the
        # writer's row once it commits.
        result = await run_query(host, datasource, sql)
    finally:
        ticker.cancel()
        await releaser
        writer.close()
    assert result.rows == [[2]]
    assert ticks >= 3  # a loop held by the lock wait would not have ticked at all


async def test_statistics_give_date_and_time_extremes_in_iso_8601(
    host: Host, sqlite_root: Path
) -> None:
    build(
        sqlite_root / "events.db",
        "CREATE TABLE events (at DATETIME, stamped TIMESTAMP, day DATE, note TEXT)",
        "INSERT INTO events VALUES ('2024-02-01 00:00:00', '2024-03-01 08:30:00.250000',"
        " '2024-02-01', '2024-02-01 00:00:00')",
        "INSERT INTO events VALUES ('2024-02-05 10:00:00', '2024-03-02 00:00:00+01:00',"
        " '2024-02-09', 'x')",
    )
    datasource = await register(host, "events", "events.db")
    graph = await host.introspect_datasource(datasource)
    (table,) = (await host.compute_statistics(datasource, graph)).tables
    columns = {c.name: (c.min, c.max) for c in table.columns}
    assert columns["at"] == ("2024-02-01T00:00:00", "2024-02-05T10:00:00")
    assert columns["stamped"] == ("2024-03-01T08:30:00.250000", "2024-03-02T00:00:00+01:00")
    assert columns["day"] == ("2024-02-01", "2024-02-09")
    # Text that looks like a timestamp is text: left as stored.
    assert columns["note"] == ("2024-02-01 00:00:00", "x")
