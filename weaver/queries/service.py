"""Running queries as resources: admission, records, leases, cancellation, async runs.

One `QueryService` per app. A query is recorded before it runs and when it ends; while
it runs it belongs to this process (``owner``), which renews its lease. Cancelling
reaches the query wherever it runs: in this process at once; in another through the
store, which that process polls every half second. A process that dies leaves leases
that lapse, and any process's sweep marks those queries failed.

Per tenant at most ``WEAVER_QUERY_CONCURRENCY`` queries run at once, counted by the
guard (exact across processes sharing the Redis guard): one more synchronous query is
refused with 429, one more async query waits as ``queued``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import socket
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from weaver.errors import (
    Conflict,
    Forbidden,
    GuardUnavailable,
    NotFound,
    Problem,
    QueryCancelled,
    QueryFailed,
    TooManyQueries,
    problem_body,
)
from weaver.host import Host
from weaver.observability import Metrics
from weaver.queries import results
from weaver.queries.pump import Pumped, Rows, pump
from weaver.types import (
    Page,
    PreparedQuery,
    Principal,
    QueryMode,
    QueryRecord,
    QueryStatus,
    QueryVia,
    ResultColumn,
)
from weaver.values import jsonable_row
from weaver.workflows import query as query_workflow
from weaver.workflows import suggestions

log = logging.getLogger(__name__)

# How often this process looks for cancellations others asked for (the latency of a
# DELETE that lands on another process), renews its leases, and sweeps.
POLL_SECONDS = 0.5
SWEEP_SECONDS = 15.0
# Leases (`WEAVER_QUERY_LEASE_SECONDS`) are renewed four times per lease.
RENEWALS_PER_LEASE = 4
# How often a queued async query tries for a slot.
QUEUE_POLL_SECONDS = 0.25
# A synchronous query is recorded when it ends; one still running after this long is
# recorded as running too, so that history lists it and a DELETE sent to another process
# finds it. Most queries end sooner, and are written once instead of twice.
ANNOUNCE_AFTER_SECONDS = 0.2
RETRY_AFTER_SECONDS = 1

# Why a running query was stopped, as metrics and logs name it.
CAUSE_DELETED = "deleted"
CAUSE_DISCONNECTED = "disconnected"
CAUSE_TIMEOUT = "timeout"
CAUSE_SHUTDOWN = "shutdown"


def now() -> datetime:
    return datetime.now(UTC)


@dataclass(eq=False)
class Running:
    """A query this process is running (or holding queued): what can stop it."""

    record: QueryRecord
    prepared: PreparedQuery
    principal: Principal
    task: asyncio.Task[Any] | None = None
    cause: str | None = None
    holds_slot: bool = False
    # Whether the store has the record, and the task that will put it there.
    stored: bool = False
    announcing: asyncio.Task[None] | None = None
    storing: bool = False
    # Its end is being recorded: nothing is left to stop.
    ended: bool = False

    def cancel(self, cause: str) -> bool:
        if self.ended or self.cause is not None or self.task is None or self.task.done():
            return False
        self.cause = cause
        self.task.cancel()
        return True


@dataclass
class Execution:
    """A synchronous query being answered: the handler streams it with `stream` and
    reports what it sent in ``bytes_sent``."""

    service: QueryService
    running: Running
    bytes_sent: int = 0
    pumped: Pumped | None = None
    # The problem the answer ended with after its first byte: the handler wrote it into
    # the stream instead of raising it, and the query ended by it all the same.
    ended_by: Problem | None = None

    @property
    def query_id(self) -> str:
        return self.running.record.query_id

    def client_gone(self) -> QueryCancelled:
        """The client went away while its rows were being written: what to raise."""
        if self.running.cause is None:
            self.running.cause = CAUSE_DISCONNECTED
        return QueryCancelled(f"query {self.query_id} was cancelled (its client went away)")

    async def stream(
        self,
        on_columns: Any,
        on_rows: Any,
    ) -> Pumped:
        self.running.task = asyncio.current_task()
        try:
            self.pumped = await pump(
                self.service.host,
                self.running.principal,
                self.running.prepared,
                on_columns=on_columns,
                on_rows=on_rows,
            )
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if self.running.cause is None or task is None:
                raise
            # Cancelled by a DELETE or a client that went away, not by the server: the
            # request answers 409 (when someone is still there to read it).
            task.uncancel()
            raise QueryCancelled(
                f"query {self.query_id} was cancelled ({self.running.cause})"
            ) from None
        return self.pumped


@dataclass
class ResultPage:
    columns: tuple[ResultColumn, ...]
    batches: AsyncIterator[Rows]
    next_cursor: str | None


@dataclass
class QueryService:
    host: Host
    metrics: Metrics
    node: str = field(
        default_factory=lambda: f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"
    )
    _local: dict[str, Running] = field(default_factory=dict)
    _tasks: set[asyncio.Task[Any]] = field(default_factory=set)
    _loop_task: asyncio.Task[None] | None = None

    @property
    def settings(self) -> Any:
        return self.host.context.settings

    # --- lifecycle ------------------------------------------------------------------

    async def start(self) -> None:
        self._loop_task = asyncio.create_task(self._housekeeping(), name="weaver-queries")

    async def stop(self) -> None:
        for running in list(self._local.values()):
            running.cancel(CAUSE_SHUTDOWN)
        pending = [r.task for r in self._local.values() if r.task is not None]
        if pending:
            await asyncio.wait(pending, timeout=5)
        if self._loop_task is not None:
            self._loop_task.cancel()
            await asyncio.gather(self._loop_task, return_exceptions=True)

    async def _housekeeping(self) -> None:
        """Cancellations asked elsewhere, lease renewal and sweeps, until stopped."""
        renewed = swept = 0.0
        loop = asyncio.get_running_loop()
        while True:
            try:
                moment = loop.time()
                if moment - swept >= SWEEP_SECONDS:
                    swept = moment
                    await self._sweep()
                if self._local:
                    lease_seconds = self.settings.query_lease_seconds
                    renew = moment - renewed >= lease_seconds / RENEWALS_PER_LEASE
                    if renew:
                        renewed = moment
                        await self._renew_slots()
                    lease = now() + timedelta(seconds=lease_seconds) if renew else None
                    for query_id in await self.host.poll_queries(self.node, lease):
                        running = self._local.get(query_id)
                        if running is not None and running.cancel(CAUSE_DELETED):
                            self.metrics.query_cancellations.labels(CAUSE_DELETED).inc()
            except Exception as error:  # a store or guard outage: try again next time
                log.warning("query housekeeping postponed: %s", error)
            await asyncio.sleep(POLL_SECONDS)

    async def _sweep(self) -> None:
        history_before = now() - timedelta(days=self.settings.query_history_days)
        sweep = await self.host.sweep_queries(now(), history_before)
        self.metrics.result_store_bytes.set(sweep.result_bytes)
        if sweep.failed:
            log.warning(
                "marked %d queries failed: the processes running them are gone", sweep.failed
            )

    async def _renew_slots(self) -> None:
        for running in list(self._local.values()):
            if running.holds_slot:
                await self._slot(running.record)

    async def _slot(self, record: QueryRecord) -> bool:
        try:
            return await self.host.acquire_query_slot(
                record.tenant_id,
                record.query_id,
                self.settings.query_concurrency,
                self.settings.query_lease_seconds,
            )
        except GuardUnavailable:
            if self.settings.guard_fail_open:
                self.metrics.guard_rejections.labels("guard-unavailable-open").inc()
                return True
            raise

    async def _release_slot(self, running: Running) -> None:
        if not running.holds_slot:
            return
        running.holds_slot = False
        try:
            await self.host.release_query_slot(running.record.tenant_id, running.record.query_id)
        except Exception as error:  # the lease lapses by itself
            log.warning(
                "could not release the slot of query %s: %s", running.record.query_id, error
            )

    # --- records ---------------------------------------------------------------------

    def _new_record(
        self,
        principal: Principal,
        text: str,
        *,
        mode: QueryMode,
        via: QueryVia,
        limit: int,
        timeout_seconds: float,
    ) -> QueryRecord:
        return QueryRecord(
            query_id=query_workflow.new_query_id(),
            tenant_id=principal.tenant_id,
            subject=principal.subject,
            sql=text,
            datasources=(),
            status="queued",
            mode=mode,
            via=via,
            submitted_at=now(),
            limit=limit,
            timeout_seconds=timeout_seconds,
            owner=self.node,
            lease_until=now() + timedelta(seconds=self.settings.query_lease_seconds),
        )

    async def _prepare(
        self, record: QueryRecord, principal: Principal, *, max_rows: int, max_timeout: float
    ) -> tuple[QueryRecord, PreparedQuery]:
        """The checked statement under the record's id; a refusal is recorded too."""
        try:
            prepared = await query_workflow.prepare(
                self.host,
                principal,
                record.sql,
                limit=record.limit,
                timeout_seconds=record.timeout_seconds,
                max_rows=max_rows,
                max_timeout_seconds=max_timeout,
            )
        except Problem as problem:
            await self.host.save_query(
                replace(record, status="failed", finished_at=now(), error=problem_body(problem)),
                create=True,
            )
            problem.headers.setdefault("X-Query-Id", record.query_id)
            raise
        prepared = replace(prepared, query_id=record.query_id)
        return replace(record, datasources=tuple(sorted(prepared.datasources))), prepared

    async def _announce(self, running: Running) -> None:
        await asyncio.sleep(ANNOUNCE_AFTER_SECONDS)
        running.storing = True
        await self.host.save_query(running.record, create=True)
        running.stored = True

    async def _finish(self, running: Running, status: QueryStatus, **changes: Any) -> QueryRecord:
        announcing = running.announcing
        if announcing is not None and not announcing.done():
            if running.storing:
                await asyncio.gather(announcing, return_exceptions=True)
            else:
                announcing.cancel()
        record = replace(
            running.record,
            status=status,
            finished_at=now(),
            owner=None,
            lease_until=None,
            **changes,
        )
        running.record = record
        try:
            await self.host.save_query(record, create=not running.stored)
        except Exception as error:  # the lease lapses and a sweep records it failed
            log.error("could not record the end of query %s: %s", record.query_id, error)
        return record

    async def _ended(self, running: Running, error: BaseException | None, **done: Any) -> None:
        """Record how a query ended, whatever ended it. The query stays among this
        process's running ones until its last record is stored: a GET in between would
        otherwise find it neither here nor in the store."""
        running.ended = True
        try:
            await self._release_slot(running)
            engine = self.host.query_plugin or "none"
            if running.record.started_at is not None:
                outcome = "ok" if error is None else getattr(error, "type_slug", "cancelled")
                seconds = (now() - running.record.started_at).total_seconds()
                self.metrics.observe_query(engine, outcome, seconds)
            if error is None:
                await self._finish(running, "succeeded", **done)
                return
            cause = running.cause
            if cause is None and isinstance(error, asyncio.CancelledError):
                # The server cancelled the request itself: its client went away.
                cause = running.cause = CAUSE_DISCONNECTED
            if isinstance(error, QueryCancelled) or (
                isinstance(error, asyncio.CancelledError) and cause != CAUSE_SHUTDOWN
            ):
                self.metrics.query_cancellations.labels(cause or CAUSE_DELETED).inc()
                problem = (
                    error if isinstance(error, Problem) else QueryCancelled(f"cancelled ({cause})")
                )
                await self._finish(running, "cancelled", error=problem_body(problem), **done)
                return
            if isinstance(error, Problem):
                if error.status == 504:
                    self.metrics.query_cancellations.labels(CAUSE_TIMEOUT).inc()
                await self._finish(running, "failed", error=problem_body(error), **done)
                return
            detail = "the gateway stopped while the query ran" if cause == CAUSE_SHUTDOWN else None
            log.error(
                "query %s on %s ended unexpectedly: %r", running.record.query_id, engine, error
            )
            await self._finish(
                running, "failed", error=problem_body(Problem(detail or "the query failed")), **done
            )
        finally:
            self._local.pop(running.record.query_id, None)

    # --- synchronous queries ------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def run_sync(
        self,
        principal: Principal,
        text: str,
        *,
        limit: int,
        timeout_seconds: float | None,
        max_rows: int,
        via: QueryVia = "api",
    ) -> AsyncIterator[Execution]:
        """A synchronous query, admitted and recorded; the block streams it. Raises the
        caller's problems (400, 404, 422) and 429 before anything runs."""
        record = self._new_record(
            principal,
            text,
            mode="sync",
            via=via,
            limit=limit,
            timeout_seconds=timeout_seconds or self.settings.query_timeout_seconds,
        )
        record, prepared = await self._prepare(
            record, principal, max_rows=max_rows, max_timeout=self.settings.query_timeout_seconds
        )
        running = Running(record, prepared, principal)
        if not await self._slot(record):
            # Refused before it ran: nothing of it is kept.
            raise TooManyQueries(
                f"tenant runs {self.settings.query_concurrency} queries already; try again",
                headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
            )
        running.holds_slot = True
        running.record = record = replace(record, status="running", started_at=now())
        self._local[record.query_id] = running
        execution = Execution(self, running)
        gauge = self.metrics.running_queries.labels(self.host.query_plugin or "none")
        gauge.inc()
        error: BaseException | None = None
        running.announcing = asyncio.create_task(self._announce(running))
        try:
            yield execution
        except BaseException as raised:
            error = raised
            if isinstance(raised, QueryFailed):
                await suggestions.explain(self.host, principal, raised, text)
            raise
        finally:
            gauge.dec()
            if error is None:
                error = execution.ended_by
            pumped = execution.pumped
            summary: dict[str, Any] = {"bytes_sent": execution.bytes_sent}
            if pumped is not None:
                summary.update(
                    row_count=pumped.row_count,
                    truncated=pumped.truncated,
                    elapsed_ms=pumped.elapsed_ms,
                    columns=pumped.columns,
                )
            await asyncio.shield(self._ended(running, error, **summary))

    def cancel_on_disconnect(self, execution: Execution) -> None:
        """The client of a synchronous query went away: stop it at the source."""
        if execution.running.cancel(CAUSE_DISCONNECTED):
            log.info("query %s: the client went away; cancelling", execution.query_id)

    # --- async queries --------------------------------------------------------------------

    async def submit(
        self,
        principal: Principal,
        text: str,
        *,
        limit: int,
        timeout_seconds: float | None,
        max_rows: int,
        via: QueryVia = "api",
    ) -> QueryRecord:
        """Record an async query and start it in the background; it waits ``queued`` for
        a slot, up to ``WEAVER_QUERY_QUEUE_LENGTH`` queued per tenant."""
        record = self._new_record(
            principal,
            text,
            mode="async",
            via=via,
            limit=limit,
            timeout_seconds=timeout_seconds or self.settings.query_timeout_seconds,
        )
        record, prepared = await self._prepare(
            record,
            principal,
            max_rows=max_rows,
            max_timeout=self.settings.async_query_timeout_seconds,
        )
        most = self.settings.query_queue_length
        queued = await self.host.list_queries(principal.tenant_id, None, "queued", Page(most + 1))
        if len(queued) >= most:
            raise TooManyQueries(
                f"tenant has {most} queries waiting already; try again",
                headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
            )
        await self.host.save_query(record, create=True)
        running = self._local[record.query_id] = Running(record, prepared, principal, stored=True)
        task = asyncio.create_task(self._run_async(running), name=f"weaver-query-{record.query_id}")
        running.task = task
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return record

    async def _run_async(self, running: Running) -> None:
        error: BaseException | None = None
        writer = results.ChunkWriter(
            self.host, running.record, self.settings.query_result_max_bytes
        )
        done: dict[str, Any] = {}
        gauge = self.metrics.running_queries.labels(self.host.query_plugin or "none")
        counted = False
        try:
            # Slots are freed by other processes too, through the guard's backend: there is
            # no local event to wait on, so a queued query asks again.
            while not await self._slot(running.record):  # noqa: ASYNC110
                await asyncio.sleep(QUEUE_POLL_SECONDS)
            running.holds_slot = True
            running.record = replace(running.record, status="running", started_at=now())
            await self.host.save_query(running.record, create=False)
            gauge.inc()
            counted = True
            pumped = await pump(
                self.host,
                running.principal,
                running.prepared,
                on_columns=writer.columns,
                on_rows=writer.rows,
            )
            await writer.close()
            done = {
                "row_count": pumped.row_count,
                "truncated": pumped.truncated,
                "elapsed_ms": pumped.elapsed_ms,
                "columns": pumped.columns,
                "bytes_sent": writer.bytes_written,
                "result_expires_at": now()
                + timedelta(seconds=self.settings.query_result_ttl_seconds),
            }
        except BaseException as raised:
            error = raised
            if isinstance(raised, QueryFailed):
                await suggestions.explain(self.host, running.principal, raised, running.record.sql)
            with contextlib.suppress(Exception):
                await self.host.delete_results(running.record.tenant_id, running.record.query_id)
        finally:
            if counted:
                gauge.dec()
            await asyncio.shield(self._ended(running, error, **done))
        if isinstance(error, Exception) and not isinstance(error, Problem):
            log.error("async query %s failed", running.record.query_id, exc_info=error)

    # --- reading, cancelling, paging ---------------------------------------------------------

    async def get(self, principal: Principal, query_id: str) -> QueryRecord:
        """The query, if the caller may see it: its own, or any of the tenant's for an
        admin; anything else answers like a missing one."""
        running = self._local.get(query_id)
        # A synchronous query this process runs may not be recorded yet (see
        # `ANNOUNCE_AFTER_SECONDS`): its record here is the current one.
        record = (
            running.record
            if running is not None and running.record.tenant_id == principal.tenant_id
            else await self.host.get_query(principal.tenant_id, query_id)
        )
        if record is None or not (record.subject == principal.subject or principal.can("admin")):
            raise NotFound(f"query '{query_id}' not found")
        return record

    async def history(
        self,
        principal: Principal,
        *,
        subject: str | None,
        status: str | None,
        page: Page,
    ) -> list[QueryRecord]:
        if not principal.can("admin"):
            if subject not in (None, principal.subject):
                raise Forbidden("only an admin sees other callers' queries")
            subject = principal.subject
        return await self.host.list_queries(principal.tenant_id, subject, status, page)

    async def cancel(self, principal: Principal, query_id: str) -> None:
        """Stop a queued or running query wherever it runs, and drop a stored result."""
        record = await self.get(principal, query_id)
        if record.finished:
            await self.host.delete_results(record.tenant_id, record.query_id)
            if record.result_expires_at is not None:
                await self.host.save_query(replace(record, result_expires_at=now()), create=False)
            return
        running = self._local.get(query_id)
        if running is not None:
            if running.cancel(CAUSE_DELETED):
                self.metrics.query_cancellations.labels(CAUSE_DELETED).inc()
            return
        # Another process runs it: it sees the mark within `POLL_SECONDS`.
        await self.host.request_query_cancel(record.tenant_id, record.query_id)

    async def page(
        self, principal: Principal, query_id: str, cursor: str | None, limit: int
    ) -> ResultPage:
        record = await self.get(principal, query_id)
        if record.mode == "sync":
            raise results.expired("results are kept for async queries only")
        if record.status != "succeeded":
            raise Conflict(f"query '{query_id}' has not succeeded (it is {record.status})")
        offset = results.decode_cursor(cursor, query_id)
        if record.result_expires_at is None or record.result_expires_at <= now():
            raise results.expired(f"the result of query '{query_id}' has expired")
        row_count = record.row_count or 0
        end = min(offset + limit, row_count)
        next_cursor = results.encode_cursor(query_id, end) if end < row_count else None
        batches = results.read(self.host, record, offset, end)
        return ResultPage(record.columns, batches, next_cursor)


def jsonable_rows(batch: Sequence[Sequence[Any]]) -> list[list[Any]]:
    return [jsonable_row(list(row)) for row in batch]


def dumps_rows(batch: Sequence[Sequence[Any]]) -> bytes:
    return orjson.dumps(jsonable_rows(batch))
