"""Blocking SQLite work on the engine's own threads, bounded and stoppable.

The event loop never waits on SQLite, and the default executor (which aiohttp uses for
DNS) is never starved: every statement runs on one of a few threads of the engine's own.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import TypeVar

from weaver.builtin.engine.connections import open_read_only
from weaver.errors import EngineFailed, EngineTimeout

T = TypeVar("T")

# Queries are CPU-bound in SQLite (which releases the GIL while it steps); a few threads
# keep a slow query from holding up the others without oversubscribing two cores.
WORKER_THREADS = 4
# How many virtual-machine steps SQLite runs between two looks at the deadline (about a
# millisecond of work): each look takes the GIL, so not much more often than that.
PROGRESS_STEPS = 100_000


class Run:
    """One statement's (or one piece of work's) stop switch, usable from the event loop.

    Two ways stop SQLite: ``interrupt()`` from the loop, and a progress handler that
    checks the deadline itself, which also covers a deadline that passes before a worker
    has reached the connection. The deadline is armed for each step of work: a statement
    streamed over minutes to a slow client is bounded per wait on the engine, not in all.
    """

    def __init__(self, timeout: float) -> None:
        self.deadline = time.monotonic() + timeout
        self.cancelled = False
        self._lock = threading.Lock()
        self._connection: sqlite3.Connection | None = None

    def arm(self, seconds: float) -> None:
        self.deadline = time.monotonic() + seconds

    def expired(self) -> bool:
        return self.cancelled or time.monotonic() >= self.deadline

    def cancel(self) -> None:
        self.cancelled = True
        with self._lock:
            if self._connection is not None:
                self._connection.interrupt()

    def hold(self, connection: sqlite3.Connection) -> None:
        """Make ``connection`` stoppable by this run until `release`."""
        connection.set_progress_handler(self.expired, PROGRESS_STEPS)
        with self._lock:
            self._connection = connection
        if self.cancelled:
            connection.interrupt()

    def release(self) -> None:
        with self._lock:
            self._connection = None

    @contextmanager
    def interruptible(self, connection: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
        """``connection``, stoppable by this run while the block runs."""
        self.hold(connection)
        try:
            yield connection
        finally:
            self.release()

    @contextmanager
    def connect(self, uri: str) -> Iterator[sqlite3.Connection]:
        """A fresh connection to ``uri`` that this run can stop, closed afterwards."""
        connection = open_read_only(uri)
        try:
            with self.interruptible(connection):
                yield connection
        finally:
            connection.close()


class Workers:
    """The engine's threads and the runs on them now."""

    def __init__(self, name: str) -> None:
        self._name = name
        self._executor: ThreadPoolExecutor | None = None
        self.running: set[Run] = set()

    @property
    def executor(self) -> ThreadPoolExecutor:
        # Threads start with the first piece of work, so a gateway whose queries go to
        # another engine never starts them.
        if self._executor is None:
            self._executor = ThreadPoolExecutor(WORKER_THREADS, thread_name_prefix=self._name)
        return self._executor

    async def step(self, run: Run, seconds: float, work: Callable[[], T]) -> T:
        """``work()`` on an engine thread with ``run`` armed for ``seconds``. If the
        awaiting task is cancelled (a timeout, a cancel, a client gone), the run is
        interrupted and the step is waited out, so that whoever goes on never touches a
        connection a worker still uses."""
        run.arm(seconds)
        future = asyncio.get_running_loop().run_in_executor(self.executor, work)
        self.running.add(run)
        future.add_done_callback(lambda _: self.running.discard(run))
        try:
            return await asyncio.shield(future)
        except asyncio.CancelledError:
            run.cancel()
            await asyncio.wait([future])
            raise

    async def bounded(self, seconds: float, what: str, work: Callable[[Run], T]) -> T:
        """Run ``work`` (the engine's own statements: introspection, statistics) on an
        engine thread for at most ``seconds``; SQLite errors become `EngineFailed` (the
        host makes their messages name public datasource names)."""
        run = Run(seconds)
        try:
            async with asyncio.timeout(seconds):
                return await self.step(run, seconds, lambda: work(run))
        except TimeoutError:
            raise EngineTimeout(f"{what} did not finish within {seconds:g}s") from None
        except sqlite3.Error as error:
            if run.expired():
                raise EngineTimeout(f"{what} did not finish within {seconds:g}s") from None
            raise EngineFailed(str(error)) from None

    def close(self) -> None:
        for run in list(self.running):
            run.cancel()
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
