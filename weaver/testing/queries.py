"""Contract tests for query records and async results (``save_query`` … ``delete_results``).

Subclass `QueryStoreContract`, name your plugin in ``plugin`` and provide a ``host``
fixture: a started `weaver.host.Host` whose store of query records is the one under
test::

    class TestMyQueryStore(QueryStoreContract):
        plugin = "mystore"

        @pytest.fixture
        async def host(self, tmp_path):
            async with running_host(make_settings(tmp_path, WEAVER_MYSTORE_MODE="true")) as host:
                yield host

The kit may run against a server other gateways use at the same time, so it keeps to
records of its own. Every test works in tenants and under an owner made up for it, and
every sweep it makes is dated in the past (`SWEEP_NOW`): the leases it lets lapse and
the results it lets expire are older than anything a real gateway keeps, and whatever a
real gateway's sweep does to the kit's records meanwhile is what the kit's own sweep
would have done.
"""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from weaver.errors import Conflict, GatewayLost, NotFound, PayloadTooLarge, problem_body
from weaver.host import Host
from weaver.testing.harness import PluginContract
from weaver.types import Page, QueryMode, QueryRecord, QueryStatus, QueryVia, ResultColumn

# The moment the kit's sweeps take for "now", and what lapsed or expired before it.
SWEEP_NOW = datetime(2001, 1, 1, tzinfo=UTC)
LAPSED = SWEEP_NOW - timedelta(minutes=1)
# Records submitted before this are history a sweep deletes.
HISTORY_BEFORE = datetime(2000, 1, 1, tzinfo=UTC)
ANCIENT = HISTORY_BEFORE - timedelta(days=1)

UNFINISHED: tuple[QueryStatus, ...] = ("queued", "running")
FINISHED: tuple[QueryStatus, ...] = ("succeeded", "failed", "cancelled")


def far_future() -> datetime:
    """A lease or an expiry no sweep, the kit's or a real gateway's, reaches in a test."""
    return datetime.now(UTC) + timedelta(days=1)


def new_query_id() -> str:
    # Lower-case hex: ordered alike by every collation a store might compare text in.
    return uuid.uuid4().hex


def make_query(
    tenant_id: str,
    *,
    query_id: str | None = None,
    subject: str = "alice",
    status: QueryStatus = "running",
    submitted_at: datetime | None = None,
    mode: QueryMode = "async",
    via: QueryVia = "api",
    owner: str | None = None,
    lease_until: datetime | None = None,
    **fields: Any,
) -> QueryRecord:
    """A record as the core writes one; a running one by default, owned by ``owner``."""
    submitted_at = submitted_at or datetime.now(UTC)
    return QueryRecord(
        query_id=query_id or new_query_id(),
        tenant_id=tenant_id,
        subject=subject,
        sql="SELECT id, total FROM shop.orders WHERE total > 10",
        datasources=("shop",),
        status=status,
        mode=mode,
        via=via,
        submitted_at=submitted_at,
        limit=1000,
        timeout_seconds=30.0,
        started_at=None if status == "queued" else submitted_at + timedelta(milliseconds=5),
        owner=owner,
        lease_until=lease_until,
        **fields,
    )


def succeeded(record: QueryRecord, **fields: Any) -> QueryRecord:
    """``record`` ended well, with a stored result kept until ``result_expires_at``."""
    values: dict[str, Any] = {
        "status": "succeeded",
        "finished_at": record.submitted_at + timedelta(seconds=2),
        "row_count": 2,
        "truncated": False,
        "elapsed_ms": 1995.5,
        "bytes_sent": 64,
        "owner": None,
        "lease_until": None,
        "columns": (ResultColumn("id", "integer"), ResultColumn("total", "decimal")),
        "result_expires_at": far_future(),
    }
    values.update(fields)
    return replace(record, **values)


def chunk(size: int, fill: str = "x") -> bytes:
    """A chunk of a stored result (a JSON array of rows) exactly ``size`` bytes long."""
    assert size >= 7
    return f'[["{fill * (size - 6)}"]]'.encode()


class QueryStoreContract(PluginContract):
    """Conformance tests for query records, cancellation marks, leases, sweeps and the
    chunks of async results."""

    contract_hooks = (
        "save_query",
        "get_query",
        "list_queries",
        "request_query_cancel",
        "poll_queries",
        "sweep_queries",
        "save_result_chunk",
        "load_result_chunks",
        "delete_results",
    )

    @pytest.fixture
    def tenant_a(self) -> str:
        return f"qa{uuid.uuid4().hex[:12]}"

    @pytest.fixture
    def tenant_b(self) -> str:
        return f"qb{uuid.uuid4().hex[:12]}"

    @pytest.fixture
    def owner(self) -> str:
        """The gateway process this test plays."""
        return f"kit-node:{uuid.uuid4().hex[:12]}"

    async def saved(self, host: Host, record: QueryRecord) -> QueryRecord:
        await host.save_query(record, create=True)
        return record

    async def settle(self, host: Host) -> None:
        """Sweep with the kit's dates, so that what earlier runs left behind does not count
        in the next sweep's numbers."""
        await host.sweep_queries(SWEEP_NOW, HISTORY_BEFORE)

    async def stored_bytes(self, host: Host, tenant_id: str, *query_ids: str) -> int:
        total = 0
        for query_id in query_ids:
            total += sum(map(len, await host.load_result_chunks(tenant_id, query_id, 0, 1000)))
        return total

    # --- records -----------------------------------------------------------------------

    async def test_query_round_trip(self, host: Host, tenant_a: str) -> None:
        running = await self.saved(
            host, make_query(tenant_a, owner="node-1", lease_until=far_future())
        )
        assert await host.get_query(tenant_a, running.query_id) == running
        failed = make_query(
            tenant_a,
            status="failed",
            mode="sync",
            via="mcp",
            finished_at=datetime.now(UTC),
            elapsed_ms=12.25,
            error=problem_body(GatewayLost()),
        )
        await host.save_query(failed, create=True)
        assert await host.get_query(tenant_a, failed.query_id) == failed
        done = await self.saved(host, succeeded(make_query(tenant_a)))
        assert await host.get_query(tenant_a, done.query_id) == done

    async def test_missing_query_is_none(self, host: Host, tenant_a: str) -> None:
        assert await host.get_query(tenant_a, new_query_id()) is None

    async def test_creating_an_existing_id_conflicts(self, host: Host, tenant_a: str) -> None:
        original = await self.saved(host, make_query(tenant_a))
        with pytest.raises(Conflict):
            await host.save_query(replace(original, sql="SELECT 2"), create=True)
        assert await host.get_query(tenant_a, original.query_id) == original

    async def test_replace_changes_the_record(self, host: Host, tenant_a: str, owner: str) -> None:
        queued = await self.saved(
            host, make_query(tenant_a, status="queued", owner=owner, lease_until=far_future())
        )
        running = replace(queued, status="running", started_at=datetime.now(UTC))
        await host.save_query(running, create=False)
        assert await host.get_query(tenant_a, queued.query_id) == running
        done = succeeded(running)
        await host.save_query(done, create=False)
        assert await host.get_query(tenant_a, queued.query_id) == done

    async def test_replacing_a_missing_query_is_not_found(self, host: Host, tenant_a: str) -> None:
        ghost = make_query(tenant_a)
        with pytest.raises(NotFound):
            await host.save_query(ghost, create=False)
        assert await host.get_query(tenant_a, ghost.query_id) is None

    # --- cancellation marks --------------------------------------------------------------

    async def test_get_reports_the_current_cancel_mark(
        self, host: Host, tenant_a: str, owner: str
    ) -> None:
        record = await self.saved(host, make_query(tenant_a, owner=owner))
        assert (await host.get_query(tenant_a, record.query_id)) == record
        assert await host.request_query_cancel(tenant_a, record.query_id) is True
        assert await host.get_query(tenant_a, record.query_id) == replace(
            record, cancel_requested=True
        )

    async def test_a_replace_never_clears_the_cancel_mark(
        self, host: Host, tenant_a: str, owner: str
    ) -> None:
        record = await self.saved(host, make_query(tenant_a, owner=owner))
        assert await host.request_query_cancel(tenant_a, record.query_id) is True
        # The process running the query writes what it knew before the mark arrived.
        progressed = replace(record, lease_until=far_future(), cancel_requested=False)
        await host.save_query(progressed, create=False)
        assert await host.get_query(tenant_a, record.query_id) == replace(
            progressed, cancel_requested=True
        )
        ended = replace(progressed, status="cancelled", finished_at=datetime.now(UTC))
        await host.save_query(ended, create=False)
        stored = await host.get_query(tenant_a, record.query_id)
        assert stored == replace(ended, cancel_requested=True)

    @pytest.mark.parametrize("status", UNFINISHED)
    async def test_an_unfinished_query_may_be_marked(
        self, host: Host, tenant_a: str, owner: str, status: QueryStatus
    ) -> None:
        record = await self.saved(host, make_query(tenant_a, status=status, owner=owner))
        assert await host.request_query_cancel(tenant_a, record.query_id) is True
        # Marking twice is no error: the query still has not finished.
        assert await host.request_query_cancel(tenant_a, record.query_id) is True
        stored = await host.get_query(tenant_a, record.query_id)
        assert stored is not None and stored.cancel_requested

    @pytest.mark.parametrize("status", FINISHED)
    async def test_a_finished_query_is_not_marked(
        self, host: Host, tenant_a: str, status: QueryStatus
    ) -> None:
        record = await self.saved(
            host, make_query(tenant_a, status=status, finished_at=datetime.now(UTC))
        )
        assert await host.request_query_cancel(tenant_a, record.query_id) is False
        assert await host.get_query(tenant_a, record.query_id) == record

    async def test_marking_a_missing_query_is_false(self, host: Host, tenant_a: str) -> None:
        assert await host.request_query_cancel(tenant_a, new_query_id()) is False

    # --- history -------------------------------------------------------------------------

    async def test_list_is_newest_first_and_paged(self, host: Host, tenant_a: str) -> None:
        base = datetime.now(UTC) - timedelta(hours=1)
        records = [
            await self.saved(host, make_query(tenant_a, submitted_at=base + timedelta(seconds=n)))
            for n in (3, 1, 4, 0, 2)
        ]
        # Two submitted at the same moment are ordered by query_id, the greater first.
        tied = [
            await self.saved(
                host,
                make_query(
                    tenant_a,
                    query_id=f"{prefix}{new_query_id()}",
                    submitted_at=base + timedelta(seconds=9),
                ),
            )
            for prefix in ("a", "b")
        ]
        expected = sorted(
            [*records, *tied], key=lambda r: (r.submitted_at, r.query_id), reverse=True
        )

        collected: list[QueryRecord] = []
        page = Page(limit=3)
        while listed := await host.list_queries(tenant_a, None, None, page):
            assert len(listed) <= 3
            collected.extend(listed)
            page = Page(limit=3, after=listed[-1].query_id)
        assert collected == expected
        assert await host.list_queries(tenant_a, None, None, Page(3, new_query_id())) == []

    async def test_list_filters_by_subject_and_status(self, host: Host, tenant_a: str) -> None:
        base = datetime.now(UTC) - timedelta(hours=1)
        mix: list[tuple[str, QueryStatus]] = [
            ("alice", "running"),
            ("bob", "running"),
            ("alice", "queued"),
            ("alice", "failed"),
            ("bob", "queued"),
            ("alice", "queued"),
        ]
        records = [
            await self.saved(
                host,
                make_query(
                    tenant_a,
                    subject=subject,
                    status=status,
                    submitted_at=base + timedelta(seconds=n),
                ),
            )
            for n, (subject, status) in enumerate(mix)
        ]
        newest_first = records[::-1]

        async def listed(subject: str | None, status: str | None, page: Page) -> list[str]:
            return [r.query_id for r in await host.list_queries(tenant_a, subject, status, page)]

        def expected(subject: str | None, status: str | None) -> list[str]:
            return [
                r.query_id
                for r in newest_first
                if subject in (None, r.subject) and status in (None, r.status)
            ]

        for subject in (None, "alice", "bob", "carol"):
            for status in (None, "queued", "running", "failed", "succeeded"):
                assert await listed(subject, status, Page(100)) == expected(subject, status)
        # The cursor pages within the filter.
        alice_queued = expected("alice", "queued")
        assert await listed("alice", "queued", Page(1)) == alice_queued[:1]
        assert await listed("alice", "queued", Page(5, alice_queued[0])) == alice_queued[1:]

    # --- tenancy -------------------------------------------------------------------------

    async def test_queries_are_tenant_scoped(
        self, host: Host, tenant_a: str, tenant_b: str, owner: str
    ) -> None:
        mine = await self.saved(host, make_query(tenant_a, owner=owner))
        await host.save_result_chunk(tenant_a, mine.query_id, 0, chunk(100), 10_000)

        assert await host.get_query(tenant_b, mine.query_id) is None
        assert await host.list_queries(tenant_b, None, None, Page(10)) == []
        assert await host.list_queries(tenant_b, None, None, Page(10, mine.query_id)) == []
        assert await host.request_query_cancel(tenant_b, mine.query_id) is False
        with pytest.raises(NotFound):
            await host.save_query(replace(mine, tenant_id=tenant_b, sql="SELECT 2"), create=False)
        assert await host.load_result_chunks(tenant_b, mine.query_id, 0, 10) == []
        await host.delete_results(tenant_b, mine.query_id)

        assert await host.get_query(tenant_a, mine.query_id) == mine
        assert await host.list_queries(tenant_a, None, None, Page(10)) == [mine]
        assert await host.poll_queries(owner, None) == []
        assert await host.load_result_chunks(tenant_a, mine.query_id, 0, 10) == [chunk(100)]

    # --- polling -------------------------------------------------------------------------

    async def test_poll_finds_the_owners_marked_unfinished_queries(
        self, host: Host, tenant_a: str, tenant_b: str, owner: str
    ) -> None:
        other_owner = f"{owner}-other"

        async def marked(record: QueryRecord) -> QueryRecord:
            await self.saved(host, record)
            assert await host.request_query_cancel(record.tenant_id, record.query_id)
            return record

        running = await marked(make_query(tenant_a, owner=owner))
        queued = await marked(make_query(tenant_b, status="queued", owner=owner))
        await self.saved(host, make_query(tenant_a, owner=owner))  # not marked
        await marked(make_query(tenant_a, owner=other_owner))
        ended = await marked(make_query(tenant_a, owner=owner))
        await host.save_query(
            replace(ended, status="cancelled", finished_at=datetime.now(UTC)), create=False
        )

        assert sorted(await host.poll_queries(owner, None)) == sorted(
            [running.query_id, queued.query_id]
        )
        assert len(await host.poll_queries(other_owner, None)) == 1
        assert await host.poll_queries(f"{owner}-nobody", None) == []

    async def test_poll_with_a_lease_extends_only_the_owners_unfinished_queries(
        self, host: Host, tenant_a: str, owner: str
    ) -> None:
        before = datetime.now(UTC) + timedelta(minutes=1)
        extended = before + timedelta(minutes=10)
        running = await self.saved(host, make_query(tenant_a, owner=owner, lease_until=before))
        queued = await self.saved(
            host, make_query(tenant_a, status="queued", owner=owner, lease_until=before)
        )
        ended = await self.saved(
            host,
            make_query(
                tenant_a,
                status="failed",
                finished_at=datetime.now(UTC),
                owner=owner,
                lease_until=before,
            ),
        )
        others = await self.saved(
            host, make_query(tenant_a, owner=f"{owner}-other", lease_until=before)
        )

        # Without a lease, polling changes nothing.
        assert await host.poll_queries(owner, None) == []
        assert await host.get_query(tenant_a, running.query_id) == running

        assert await host.poll_queries(owner, extended) == []
        for record in (running, queued):
            assert await host.get_query(tenant_a, record.query_id) == replace(
                record, lease_until=extended
            )
        for record in (ended, others):
            assert await host.get_query(tenant_a, record.query_id) == record

        # The renewal reports marks as the plain poll does.
        assert await host.request_query_cancel(tenant_a, queued.query_id)
        assert await host.poll_queries(owner, extended + timedelta(minutes=1)) == [queued.query_id]

    # --- sweeps --------------------------------------------------------------------------

    async def test_sweep_fails_queries_whose_lease_lapsed(
        self, host: Host, tenant_a: str, owner: str
    ) -> None:
        await self.settle(host)
        lapsed = [
            await self.saved(host, make_query(tenant_a, owner=owner, lease_until=LAPSED)),
            await self.saved(
                host, make_query(tenant_a, status="queued", owner=owner, lease_until=LAPSED)
            ),
        ]
        assert await host.request_query_cancel(tenant_a, lapsed[0].query_id)
        live = await self.saved(host, make_query(tenant_a, owner=owner, lease_until=far_future()))
        ended = await self.saved(
            host,
            make_query(
                tenant_a,
                status="succeeded",
                finished_at=datetime.now(UTC),
                owner=owner,
                lease_until=LAPSED,
            ),
        )

        sweep = await host.sweep_queries(SWEEP_NOW, HISTORY_BEFORE)

        assert sweep.failed == len(lapsed)
        lost = problem_body(GatewayLost())
        for record in lapsed:
            swept = await host.get_query(tenant_a, record.query_id)
            assert swept is not None
            assert swept.status == "failed"
            assert swept.error == lost
            assert swept.finished_at == SWEEP_NOW
            # Nothing else about the query changes.
            assert swept == replace(
                record,
                status="failed",
                error=lost,
                finished_at=SWEEP_NOW,
                owner=swept.owner,
                lease_until=swept.lease_until,
                cancel_requested=swept.cancel_requested,
            )
        marked = await host.get_query(tenant_a, lapsed[0].query_id)
        assert marked is not None and marked.cancel_requested
        assert await host.get_query(tenant_a, live.query_id) == live
        assert await host.get_query(tenant_a, ended.query_id) == ended
        # A failed query is finished: no longer marked, polled or renewed.
        assert await host.request_query_cancel(tenant_a, lapsed[1].query_id) is False
        assert await host.poll_queries(owner, far_future()) == []

        again = await host.sweep_queries(SWEEP_NOW, HISTORY_BEFORE)
        assert again.failed == 0

    async def test_sweep_drops_expired_results_and_old_history(
        self, host: Host, tenant_a: str, tenant_b: str
    ) -> None:
        await self.settle(host)
        expired = await self.saved(host, succeeded(make_query(tenant_a), result_expires_at=LAPSED))
        kept = await self.saved(host, succeeded(make_query(tenant_a)))
        old = await self.saved(host, succeeded(make_query(tenant_b, submitted_at=ANCIENT)))
        old_running = await self.saved(
            host, make_query(tenant_b, submitted_at=ANCIENT, lease_until=far_future())
        )
        for record in (expired, kept, old):
            for index in range(2):
                await host.save_result_chunk(
                    record.tenant_id, record.query_id, index, chunk(50), 1_000_000
                )

        sweep = await host.sweep_queries(SWEEP_NOW, HISTORY_BEFORE)

        assert sweep.deleted == 2
        assert sweep.failed == 0
        # An expired result is gone; its record stays and still says when it expired.
        assert await host.load_result_chunks(tenant_a, expired.query_id, 0, 10) == []
        assert await host.get_query(tenant_a, expired.query_id) == expired
        assert await host.load_result_chunks(tenant_a, kept.query_id, 0, 10) == [chunk(50)] * 2
        assert await host.get_query(tenant_a, kept.query_id) == kept
        # History before the cut is deleted, running or not, results and all.
        for record in (old, old_running):
            assert await host.get_query(tenant_b, record.query_id) is None
        assert await host.load_result_chunks(tenant_b, old.query_id, 0, 10) == []
        assert await host.list_queries(tenant_b, None, None, Page(10)) == []
        # The bytes still stored, in every tenant: at least the result that is kept.
        assert sweep.result_bytes >= 100

        again = await host.sweep_queries(SWEEP_NOW, HISTORY_BEFORE)
        assert (again.failed, again.deleted) == (0, 0)

    async def test_concurrent_sweeps_agree(self, host: Host, tenant_a: str, owner: str) -> None:
        await self.settle(host)
        lapsed = [
            await self.saved(host, make_query(tenant_a, owner=owner, lease_until=LAPSED))
            for _ in range(40)
        ]
        old = [await self.saved(host, make_query(tenant_a, submitted_at=ANCIENT)) for _ in range(5)]

        # Concurrent reads first, so that a store with a pool of connections has one ready
        # for each sweeper and the sweeps really overlap.
        await asyncio.gather(*(host.get_query(tenant_a, new_query_id()) for _ in range(6)))
        sweeps = await asyncio.gather(
            *(host.sweep_queries(SWEEP_NOW, HISTORY_BEFORE) for _ in range(6))
        )

        assert sum(s.failed for s in sweeps) == len(lapsed)
        assert sum(s.deleted for s in sweeps) == len(old)
        for record in lapsed:
            swept = await host.get_query(tenant_a, record.query_id)
            assert swept is not None
            assert (swept.status, swept.error, swept.finished_at) == (
                "failed",
                problem_body(GatewayLost()),
                SWEEP_NOW,
            )
        listed = await host.list_queries(tenant_a, None, None, Page(100))
        assert sorted(r.query_id for r in listed) == sorted(r.query_id for r in lapsed)

    # --- result chunks -------------------------------------------------------------------

    async def test_result_chunks_round_trip_in_order(self, host: Host, tenant_a: str) -> None:
        query = await self.saved(host, succeeded(make_query(tenant_a)))
        chunks = [f'[[{n}, "h\\u00e9llo \\ud83d\\ude00", null, "{n}"]]'.encode() for n in range(5)]
        chunks[3] = '[["naïve 漢字", 1.5e300, -0.0]]'.encode()
        for index, data in enumerate(chunks):
            await host.save_result_chunk(tenant_a, query.query_id, index, data, 1_000_000)

        assert await host.load_result_chunks(tenant_a, query.query_id, 0, 4) == chunks
        assert await host.load_result_chunks(tenant_a, query.query_id, 1, 3) == chunks[1:4]
        assert await host.load_result_chunks(tenant_a, query.query_id, 2, 2) == [chunks[2]]
        # Only the chunks that exist.
        assert await host.load_result_chunks(tenant_a, query.query_id, 3, 20) == chunks[3:]
        assert await host.load_result_chunks(tenant_a, query.query_id, 5, 9) == []
        assert await host.load_result_chunks(tenant_a, new_query_id(), 0, 4) == []

    async def test_delete_results_drops_only_that_result(self, host: Host, tenant_a: str) -> None:
        gone = await self.saved(host, succeeded(make_query(tenant_a)))
        kept = await self.saved(host, succeeded(make_query(tenant_a)))
        for record in (gone, kept):
            for index in range(3):
                await host.save_result_chunk(tenant_a, record.query_id, index, chunk(40), 10_000)

        await host.delete_results(tenant_a, gone.query_id)
        assert await host.load_result_chunks(tenant_a, gone.query_id, 0, 10) == []
        assert await host.load_result_chunks(tenant_a, kept.query_id, 0, 10) == [chunk(40)] * 3
        # The record stays; deleting what is gone is no error.
        assert await host.get_query(tenant_a, gone.query_id) == gone
        await host.delete_results(tenant_a, gone.query_id)
        await host.delete_results(tenant_a, new_query_id())

    # --- the per-tenant bound ------------------------------------------------------------

    async def test_the_bound_evicts_other_results_oldest_first(
        self, host: Host, tenant_a: str, tenant_b: str
    ) -> None:
        bound = 1000
        base = datetime.now(UTC) - timedelta(hours=1)
        theirs = await self.saved(host, succeeded(make_query(tenant_b, submitted_at=base)))
        await host.save_result_chunk(tenant_b, theirs.query_id, 0, chunk(900), bound)
        first, second, third = [
            await self.saved(
                host, succeeded(make_query(tenant_a, submitted_at=base + timedelta(seconds=n)))
            )
            for n in (1, 2, 3)
        ]
        await host.save_result_chunk(tenant_a, first.query_id, 0, chunk(200), bound)
        await host.save_result_chunk(tenant_a, first.query_id, 1, chunk(200), bound)
        await host.save_result_chunk(tenant_a, second.query_id, 0, chunk(300), bound)
        # Exactly the bound is within it: nothing is evicted.
        await host.save_result_chunk(tenant_a, third.query_id, 0, chunk(300), bound)
        assert await self.stored_bytes(host, tenant_a, first.query_id) == 400

        # One more chunk of the third: the oldest other result goes, whole, and only it.
        evicting = datetime.now(UTC)
        await host.save_result_chunk(tenant_a, third.query_id, 1, chunk(300), bound)
        evicted = datetime.now(UTC)

        assert await host.load_result_chunks(tenant_a, first.query_id, 0, 10) == []
        record = await host.get_query(tenant_a, first.query_id)
        assert record is not None and record.result_expires_at is not None
        assert evicting <= record.result_expires_at <= evicted
        assert record == replace(first, result_expires_at=record.result_expires_at)
        assert await host.load_result_chunks(tenant_a, second.query_id, 0, 10) == [chunk(300)]
        assert await host.get_query(tenant_a, second.query_id) == second
        assert await host.load_result_chunks(tenant_a, third.query_id, 0, 10) == [chunk(300)] * 2
        # Another tenant's older result is never evicted for this one.
        assert await host.load_result_chunks(tenant_b, theirs.query_id, 0, 10) == [chunk(900)]
        assert await host.get_query(tenant_b, theirs.query_id) == theirs

        # Evicting a result may take several, oldest first, until the new chunk fits.
        await host.save_result_chunk(tenant_a, third.query_id, 2, chunk(350), bound)
        assert await host.load_result_chunks(tenant_a, second.query_id, 0, 10) == []
        assert await self.stored_bytes(host, tenant_a, third.query_id) == 950

    async def test_a_result_larger_than_the_bound_is_refused(
        self, host: Host, tenant_a: str
    ) -> None:
        bound = 1000
        other = await self.saved(host, succeeded(make_query(tenant_a)))
        await host.save_result_chunk(tenant_a, other.query_id, 0, chunk(300), bound)
        big = await self.saved(host, make_query(tenant_a))
        with pytest.raises(PayloadTooLarge):
            await host.save_result_chunk(tenant_a, big.query_id, 0, chunk(bound + 1), bound)

        growing = await self.saved(host, make_query(tenant_a))
        await host.save_result_chunk(tenant_a, growing.query_id, 0, chunk(600), bound)
        with pytest.raises(PayloadTooLarge):
            await host.save_result_chunk(tenant_a, growing.query_id, 1, chunk(600), bound)
        ids = (other.query_id, big.query_id, growing.query_id)
        assert await self.stored_bytes(host, tenant_a, *ids) <= bound

    async def test_concurrent_writers_never_overshoot_the_bound(
        self, host: Host, tenant_a: str
    ) -> None:
        bound = 1000
        for _ in range(3):
            records = [await self.saved(host, succeeded(make_query(tenant_a))) for _ in range(8)]
            await asyncio.gather(
                *(
                    host.save_result_chunk(tenant_a, r.query_id, index, chunk(180), bound)
                    for index in range(2)
                    for r in records
                )
            )
            ids = [r.query_id for r in records]
            assert await self.stored_bytes(host, tenant_a, *ids) <= bound
            # A result that lost chunks was evicted, and its record says so.
            for record in records:
                stored = await host.load_result_chunks(tenant_a, record.query_id, 0, 10)
                current = await host.get_query(tenant_a, record.query_id)
                assert current is not None
                if len(stored) < 2:
                    assert current.result_expires_at is not None
                    assert current.result_expires_at <= datetime.now(UTC)
            for record in records:
                await host.delete_results(tenant_a, record.query_id)
