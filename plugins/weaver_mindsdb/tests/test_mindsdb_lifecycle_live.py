"""A query's life on the real MindsDB and PostgreSQL: streamed, stopped at the source
however it is stopped, and refused with the right status.

Runs only with ``WEAVER_RUN_E2E=1``. The statements run on a database of this module's
own (created as the sample user, dropped at the end): ``ticks`` has 300 rows, so
``pg_sleep(0.1)`` per row is a 30-second statement spent inside one FETCH, and ``wide``
has a million generated rows. "Gone from the source" is read from ``pg_stat_activity``
of that database, whatever name the backend runs under.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import threading
from collections.abc import AsyncIterator, Iterator, Sequence
from typing import Any

import pytest
from weaver_mindsdb import tagging
from weaver_mindsdb.plugin import MindsDBPlugin
from weaver_mindsdb.testing import (
    TICKS,
    LiveEnv,
    Register,
    busy_backends,
    create_scratch_database,
    drop_scratch_database,
    live,
    live_env_from_environment,
    wait_for,
)

from weaver.errors import EngineTimeout, QueryCancelled, QueryFailed
from weaver.host import Host
from weaver.queries.pump import Pumped, pump
from weaver.testing.engine import prepare, principal_for
from weaver.types import Datasource, PreparedQuery, ResultColumn
from weaver.workflows import query as query_workflow

pytestmark = live

WIDE_ROWS = 1_000_000
# The deadline: the statement is gone from the source within this.
GONE_SECONDS = 2.0
# For a statement reading rows, which can be stopped only during a fetch.
READING_GONE_SECONDS = 15.0
SLOW = "SELECT id, pg_sleep(0.1) AS s FROM lab.ticks"  # 30 s


@pytest.fixture(scope="module")
def lab_database() -> Iterator[str]:
    env = live_env_from_environment()
    name = f"weaver_live_{secrets.token_hex(4)}"
    asyncio.run(create_scratch_database(env, name, rows=WIDE_ROWS))
    try:
        yield name
    finally:
        asyncio.run(drop_scratch_database(env, name))


@pytest.fixture
async def lab(live_env: LiveEnv, register: Register, tenant: str, lab_database: str) -> Datasource:
    return await register(tenant, "lab", live_env.connection(lab_database))


async def ignore(_: Any) -> None:
    return None


class Counter:
    """A sink that keeps only how many rows went by and the sum of their ids (and the
    ids themselves, when asked)."""

    def __init__(self, keep_ids: bool = False) -> None:
        self.rows = 0
        self.id_sum = 0
        self.ids: list[int] | None = [] if keep_ids else None

    async def __call__(self, batch: Sequence[Sequence[Any]]) -> None:
        self.rows += len(batch)
        ids = [int(row[0]) for row in batch]
        self.id_sum += sum(ids)
        if self.ids is not None:
            self.ids.extend(ids)


def start(host: Host, datasource: Datasource, query: PreparedQuery, sink: Any = ignore) -> Any:
    return asyncio.create_task(
        pump(host, principal_for(datasource), query, on_columns=ignore, on_rows=sink)
    )


async def running_at_source(env: LiveEnv, database: str, query: PreparedQuery) -> None:
    """Wait until the query's statement runs on the source (MindsDB has started it)."""
    tag = tagging.query_tag(query.query_id)

    async def active() -> bool:
        return any(row["state"] == "active" for row in await busy_backends(env, database, tag))

    assert await wait_for(active, 30), "the statement never reached the source"


async def gone_from_source(env: LiveEnv, database: str, seconds: float = GONE_SECONDS) -> bool:
    """Whether nothing runs on the database within ``seconds``."""

    async def idle() -> bool:
        return not await busy_backends(env, database)

    return await wait_for(idle, seconds, interval=0.01)


# --- stopping at the source -------------------------------------------------------------


async def test_cancel_query_stops_the_statement_at_the_source(
    live_env: LiveEnv, host: Host, lab: Datasource, lab_database: str
) -> None:
    query = await prepare(host, SLOW, [lab], timeout_seconds=60)
    task = start(host, lab, query)
    await running_at_source(live_env, lab_database, query)
    await asyncio.sleep(1)
    # What DELETE /api/query/{id} asks of the engine, while the pump still waits.
    assert await host.cancel_query(query) is True
    assert await gone_from_source(live_env, lab_database)
    # MindsDB answers the cancelled fetch with an empty success: never a result.
    with pytest.raises(QueryCancelled):
        await task
    assert not mindsdb_of(host).engine.statements


async def test_a_timeout_stops_the_statement_at_the_source(
    live_env: LiveEnv, host: Host, lab: Datasource, lab_database: str
) -> None:
    query = await prepare(host, SLOW, [lab], timeout_seconds=1.0)
    with pytest.raises(EngineTimeout):
        await start(host, lab, query)
    assert await gone_from_source(live_env, lab_database)


async def test_a_cancelled_request_stops_the_statement_at_the_source(
    live_env: LiveEnv, host: Host, lab: Datasource, lab_database: str
) -> None:
    # A client that went away: the task awaiting the pump is cancelled.
    query = await prepare(host, SLOW, [lab], timeout_seconds=60)
    task = start(host, lab, query)
    await running_at_source(live_env, lab_database, query)
    await asyncio.sleep(1)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert await gone_from_source(live_env, lab_database)


async def test_a_statement_reading_rows_is_stopped_between_fetches(
    live_env: LiveEnv, host: Host, lab: Datasource, lab_database: str
) -> None:
    # A plain scan: the backend is active only during each FETCH, idle between them.
    query = await prepare(host, "SELECT * FROM lab.wide", [lab], limit=WIDE_ROWS)
    seen = Counter()
    task = start(host, lab, query, seen)
    assert await wait_for(lambda: _at_least(seen, 20_000), 60)
    assert await host.cancel_query(query) is True
    # Between two fetches MindsDB spends its time turning 10,000 rows into JSON (a
    # second or more on a busy machine) while the source sits idle in transaction, where
    # no cancel lands: the statement ends at the next fetch, long before the scan would.
    assert await gone_from_source(live_env, lab_database, READING_GONE_SECONDS)
    with pytest.raises(QueryCancelled):
        await task
    assert seen.rows < WIDE_ROWS


async def _at_least(counter: Counter, rows: int) -> bool:
    return counter.rows >= rows


async def test_cancelling_one_of_two_queries_leaves_the_other_whole(
    live_env: LiveEnv, host: Host, lab: Datasource, lab_database: str
) -> None:
    cancelled = await prepare(host, SLOW, [lab], timeout_seconds=60)
    # 300 rows, 0.02 s each: still running when the other is cancelled.
    whole = await prepare(
        host,
        "SELECT id, pg_sleep(0.02) AS s FROM lab.ticks",
        [lab],
        limit=TICKS,
        timeout_seconds=60,
    )
    kept = Counter(keep_ids=True)
    first, second = start(host, lab, cancelled), start(host, lab, whole, kept)
    await running_at_source(live_env, lab_database, cancelled)
    await running_at_source(live_env, lab_database, whole)
    await asyncio.sleep(1)
    assert await host.cancel_query(cancelled) is True

    async def only_the_other_left() -> bool:
        tags = {row["application_name"] for row in await busy_backends(live_env, lab_database)}
        return tagging.query_tag(cancelled.query_id) not in tags

    assert await wait_for(only_the_other_left, GONE_SECONDS)
    assert await busy_backends(live_env, lab_database, tagging.query_tag(whole.query_id))
    with pytest.raises(QueryCancelled):
        await first
    done: Pumped = await second
    assert (done.row_count, done.truncated) == (TICKS, False)
    assert kept.ids is not None and sorted(kept.ids) == list(range(1, TICKS + 1))


# --- streaming --------------------------------------------------------------------------


def resident_bytes() -> int:
    with open(f"/proc/{os.getpid()}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS")


class PeakMemory:
    """The process' resident memory, sampled every 20 ms on a thread of its own."""

    def __init__(self) -> None:
        self.before = resident_bytes()
        self.peak = self.before
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._stop.wait(0.02):
            self.peak = max(self.peak, resident_bytes())

    def __enter__(self) -> PeakMemory:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()

    @property
    def growth(self) -> int:
        return self.peak - self.before


async def test_a_million_rows_stream_through_in_bounded_memory(host: Host, lab: Datasource) -> None:
    query = await prepare(host, "SELECT * FROM lab.wide", [lab], limit=WIDE_ROWS)
    columns: list[ResultColumn] = []
    seen = Counter()

    async def keep_columns(found: Sequence[ResultColumn]) -> None:
        columns.extend(found)

    loop = asyncio.get_running_loop()
    with PeakMemory() as memory:
        started = loop.time()
        done = await pump(host, principal_for(lab), query, on_columns=keep_columns, on_rows=seen)
        seconds = loop.time() - started
    assert (done.row_count, done.truncated) == (WIDE_ROWS, False)
    assert (seen.rows, seen.id_sum) == (WIDE_ROWS, WIDE_ROWS * (WIDE_ROWS + 1) // 2)
    assert [c.name for c in columns] == ["id", "qty", "label", "amount", "created", "note"]
    print(
        f"\n{WIDE_ROWS} rows in {seconds:.1f}s ({WIDE_ROWS / seconds:,.0f} rows/s), "
        f"resident memory +{memory.growth / 2**20:.1f} MiB"
    )
    # Held whole, a million rows of six columns take about 400 MiB of Python objects;
    # a stream holds a line (10,000 rows) or two at a time.
    assert memory.growth < 200 * 2**20


# --- the caller's mistakes --------------------------------------------------------------


@pytest.mark.parametrize(
    ("sql", "named"),
    [
        ("SELECT * FROM lab.no_such_table", "no_such_table"),
        ("SELECT no_such_column FROM lab.ticks", "no_such_column"),
        ("SELECT id FROM lab.ticks WHERE id = 'abc'", "abc"),
        ("SELECT id FROM lab.ticks WHERE id = $1", "$1"),
    ],
)
async def test_mistakes_the_source_sees_are_the_callers(
    host: Host, lab: Datasource, sql: str, named: str
) -> None:
    query = await prepare(host, sql, [lab])
    with pytest.raises(QueryFailed) as caught:
        await query_workflow.execute(host, principal_for(lab), query)
    detail = caught.value.detail
    assert caught.value.status == 400
    assert named in detail and detail.startswith("lab (postgres): ")
    assert lab.internal_name not in detail
    for leak in ("derived query", "Failed Query", "mindsdb_", "CURSOR", "weaver_tagged"):
        assert leak not in detail, detail


# --- what the source sees ---------------------------------------------------------------


async def test_datasource_connections_carry_their_name_through_changes(
    live_env: LiveEnv, host: Host, lab: Datasource, lab_database: str
) -> None:
    expected = tagging.datasource_application_name(lab.internal_name)

    async def connection_data() -> str:
        body = await live_env.mindsdb_sql(
            "SELECT CONNECTION_DATA FROM information_schema.databases "
            f"WHERE NAME = '{lab.internal_name}'"
        )
        return str(body["data"][0][0])

    assert expected in await connection_data()
    # ALTER DATABASE (a changed connection) keeps it.
    await host.register_datasource(lab, live_env.connection(lab_database), replace=True)
    assert expected in await connection_data()
    query = await prepare(host, "SELECT count(*) FROM lab.ticks", [lab])
    assert (await query_workflow.execute(host, principal_for(lab), query)).rows == [[TICKS]]
    names = await application_names(live_env, lab_database)
    assert expected in names, names
    # So does creating it again, as reconciliation does.
    await live_env.mindsdb_sql(f"DROP DATABASE `{lab.internal_name}`")
    engine = mindsdb_of(host).engine
    assert await engine.create_if_missing(lab, host.context.reveal_connection(lab))
    assert expected in await connection_data()


async def application_names(env: LiveEnv, database: str) -> set[str]:
    rows = await env.fetch(
        env.database,
        "SELECT application_name FROM pg_stat_activity WHERE datname = $1",
        database,
    )
    return {row[0] for row in rows}


def mindsdb_of(host: Host) -> MindsDBPlugin:
    plugin = host.pm.get_plugin("mindsdb")
    assert isinstance(plugin, MindsDBPlugin)
    return plugin


@pytest.fixture(autouse=True)
async def nothing_left_running(live_env: LiveEnv, lab_database: str) -> AsyncIterator[None]:
    """Each test starts and ends with nothing of its own on the source."""
    yield
    assert await wait_for(lambda: _idle(live_env, lab_database), 30)


async def _idle(env: LiveEnv, database: str) -> bool:
    return not await busy_backends(env, database)
