"""A tenant's statement on MindsDB, from its request to its last row or its stop.

The answer is read as ``jsonlines`` while the core pulls batches: the HTTP response is
the back-pressure, so MindsDB (a2wsgi's send queue, then its FETCH) waits for a slow
client. A statement that can return at most `WHOLE_ANSWER_ROWS` rows (the core's limit
+ 1) is answered whole instead: no more than one line of a stream would hold, and about
a millisecond less of MindsDB's time. What MindsDB cannot do, this module does around
it:

* stop at the source (`Statement.stop`): MindsDB has no cancel, so the statement is
  cancelled on its PostgreSQL source by its tag (`weaver_mindsdb.cancel`), while the
  HTTP answer is dropped so that nothing holds MindsDB back from the fetch a cancel
  can interrupt;
* say that a stopped statement was stopped: MindsDB answers a cancelled fetch with a
  clean, shorter (often empty) success, so once a stop was asked for, the stream ends
  with `QueryCancelled`, never with rows that look whole.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import aiohttp
import asyncpg
import orjson

from weaver.errors import EngineFailed, Problem, QueryCancelled
from weaver.types import PreparedQuery, ResultColumn
from weaver_mindsdb.cancel import Connect, Stopping, cancel_tagged
from weaver_mindsdb.client import MindsDBClient
from weaver_mindsdb.lines import AnswerLines, EmbeddedError, MalformedAnswer
from weaver_mindsdb.results import result_columns

log = logging.getLogger(__name__)

# How long `cancel_query` and `aclose` wait for a stop before they return; the stop
# goes on in the background for up to `STOP_SECONDS`.
AWAIT_STOP_SECONDS = 3.0
STOP_SECONDS = 30.0
# MindsDB answers once it has declared the source's cursor; the tag appears with the
# first FETCH right after. A statement not seen this long after the answer began has
# finished.
START_GRACE_SECONDS = 1.0
# A statement whose request was given up before MindsDB answered waits this long for
# `cancel_query` (which the core calls at once) before it is forgotten.
ABANDONED_SECONDS = 60.0
# MindsDB 26.1 evaluates a wrapper it does not push down in DuckDB, which has no
# set_config: the statement is then sent again untagged.
UNTAGGABLE = "Unknown function: 'set_config'"
# MindsDB fetches 10,000 rows per line of a stream (``data_stream.fetch_size``); an
# answer of no more rows than that is asked for whole. Measured on a point lookup
# (bench/bench_mindsdb.py), the stream costs MindsDB about 1 ms more.
WHOLE_ANSWER_ROWS = 10_000

ProblemFor = Callable[[str, str], Problem]


@dataclass(frozen=True, slots=True)
class Source:
    """Where a tagged statement runs, and how to reach it to cancel it."""

    tag: str
    connect: Connect


class Statement:
    """One statement sent to MindsDB, known by its query id until it is over."""

    def __init__(
        self,
        query: PreparedQuery,
        sql: str,
        source: Source | None,
        tagged_sql: str | None,
        forget: Callable[[Statement], None],
    ) -> None:
        self.query = query
        self.sql = sql
        self.source = source
        # The text actually sent: the tagged wrapper where there is one.
        self.sent = tagged_sql if source is not None and tagged_sql is not None else sql
        self.cancelled = False
        self.rows = 0
        self._forget = forget
        self._response: aiohttp.ClientResponse | None = None
        self._answered_at: float | None = None
        # Nothing of it runs at the source any more: MindsDB refused it, or its answer
        # was read to the end.
        self.settled = False
        self._stopping: asyncio.Task[bool] | None = None
        self._progress = Stopping()
        self._released = False
        self._abandoned: asyncio.TimerHandle | None = None

    @property
    def query_id(self) -> str:
        return self.query.query_id

    # --- the answer ---------------------------------------------------------------------

    def answered(self, response: aiohttp.ClientResponse) -> None:
        self._response = response
        self._answered_at = asyncio.get_running_loop().time()
        if self.cancelled or self._abandoned is not None:
            response.close()

    def untag(self) -> None:
        """Send the plain statement: MindsDB cannot push the tagged one down."""
        self.source = None
        self.sent = self.sql

    def may_still_start(self) -> bool:
        if self.settled:
            return False
        if self._answered_at is None:
            return True
        return asyncio.get_running_loop().time() - self._answered_at < START_GRACE_SECONDS

    def _drop_answer(self) -> None:
        if self._response is not None:
            self._response.close()

    # --- stopping -----------------------------------------------------------------------

    async def stop(self) -> bool:
        """Stop the statement wherever it is; whether a running statement was stopped.
        Waits `AWAIT_STOP_SECONDS` at most and then answers whether the statement was
        found at its source; the cancels go on after that (a statement reading rows can
        be interrupted only during a fetch, which on a busy MindsDB may be seconds
        apart)."""
        self.cancelled = True
        self._drop_answer()
        if self._stopping is None:
            self._stopping = asyncio.create_task(
                self._stop(), name=f"weaver-mindsdb-stop-{self.query_id}"
            )
            self._stopping.add_done_callback(lambda _: self._after_stop())
        try:
            return await asyncio.wait_for(asyncio.shield(self._stopping), AWAIT_STOP_SECONDS)
        except TimeoutError:
            return self._progress.seen

    async def _stop(self) -> bool:
        source = self.source
        if source is None or self.settled:
            # Nothing on the source tells this statement apart from others: MindsDB runs
            # it to its end (see the README).
            return False
        try:
            outcome = await cancel_tagged(
                source.connect,
                source.tag,
                self._progress,
                may_still_start=self.may_still_start,
                seconds=STOP_SECONDS,
            )
        except (
            OSError,
            TimeoutError,
            asyncpg.PostgresError,
            asyncpg.InterfaceError,
            Problem,
        ) as error:
            log.warning("could not stop query %s at its source: %s", self.query_id, error)
            return False
        if not outcome.gone:
            log.warning(
                "query %s still runs at its source after %gs of cancels",
                self.query_id,
                STOP_SECONDS,
            )
        return outcome.stopped

    def _after_stop(self) -> None:
        if self._abandoned is not None:
            self.release()
        elif self._released:
            self._forget(self)

    # --- the end ------------------------------------------------------------------------

    def abandon(self) -> None:
        """The request was given up before the stream was handed on: `cancel_query`
        follows; until it comes (or `ABANDONED_SECONDS` pass) the statement is kept."""
        if self._abandoned is None:
            self._abandoned = asyncio.get_running_loop().call_later(ABANDONED_SECONDS, self.release)
        self._drop_answer()

    def release(self) -> None:
        """Nothing reads the answer any more."""
        self._released = True
        if self._abandoned is not None:
            self._abandoned.cancel()
        self._drop_answer()
        if self._stopping is None or self._stopping.done():
            self._forget(self)

    def close(self) -> None:
        """Shutdown: stop the background search, drop the answer."""
        if self._stopping is not None:
            self._stopping.cancel()
        self.release()


class MindsDBRows:
    """The core's `RowStream` over one statement's answer: the columns and the first
    batch were read before it was handed on (types are read from values)."""

    def __init__(
        self,
        statement: Statement,
        batches: AsyncIterator[list[list[Any]]],
        columns: Sequence[ResultColumn],
        first: list[list[Any]],
        problem_for: ProblemFor,
    ) -> None:
        self._statement = statement
        self._batches = batches
        self._columns = columns
        self._first: list[list[Any]] | None = first
        self._problem_for = problem_for
        self._closed = False

    @property
    def columns(self) -> Sequence[ResultColumn]:
        return self._columns

    async def __aiter__(self) -> AsyncIterator[Sequence[Sequence[Any]]]:
        statement = self._statement
        first, self._first = self._first, None
        if first:
            yield first
        try:
            async for batch in self._batches:
                statement.rows += len(batch)
                yield batch
        except (aiohttp.ClientError, OSError, MalformedAnswer, EmbeddedError) as error:
            raise answer_failure(statement, error, self._problem_for) from None
        if statement.cancelled:
            raise QueryCancelled(f"query {statement.query_id} was cancelled")
        statement.settled = True

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        statement = self._statement
        # Closed before the answer ended and before the statement's own LIMIT (the
        # core's limit + 1) was reached: the caller went away, and MindsDB would run the
        # statement to its end. Past the limit it has nothing left to read.
        if (
            not statement.settled
            and not statement.cancelled
            and statement.rows <= statement.query.limit
        ):
            await statement.stop()
        statement.release()


def answer_failure(statement: Statement, error: Exception, problem_for: ProblemFor) -> Problem:
    """What a failure while reading the answer means for the caller."""
    if statement.cancelled:
        return QueryCancelled(f"query {statement.query_id} was cancelled")
    if isinstance(error, EmbeddedError):
        return problem_for(str(error), statement.sent)
    if isinstance(error, MalformedAnswer):
        return EngineFailed(str(error))
    # An aborted chunked answer: MindsDB failed mid-stream (the source connection died).
    return EngineFailed(
        f"the query engine's answer broke off after {statement.rows} rows ({type(error).__name__})"
    )


async def open_rows(
    client: MindsDBClient, statement: Statement, problem_for: ProblemFor
) -> MindsDBRows:
    """Send the statement and read its answer up to the first batch of rows."""
    streamed = statement.query.limit + 1 > WHOLE_ANSWER_ROWS
    while True:
        try:
            response = await client.open_answer(statement.sent, lines=streamed)
        except BaseException:
            # No answer to read (MindsDB unreachable, or its error page): nothing of the
            # statement will start on the source now.
            statement.settled = True
            raise
        statement.answered(response)
        try:
            if streamed:
                lines = AnswerLines(response.content.iter_any())
                head = await lines.first()
            else:
                head = await _whole(response)
            if head.get("type") == "error":
                message = str(head.get("error_message") or "error without a message")
                response.close()
                if (
                    statement.source is not None
                    and UNTAGGABLE in message
                    and not (statement.cancelled)
                ):
                    log.debug("query %s cannot be tagged; sent untagged", statement.query_id)
                    statement.untag()
                    continue
                statement.settled = True
                raise problem_for(message, statement.sent)
            if head.get("type") != "table":
                statement.settled = True
                raise EngineFailed("the query engine answered a query without rows")
            names = [str(name) for name in head.get("column_names") or []]
            if streamed:
                batches = lines.batches()
                first = await anext(batches, None)
            else:
                batches, first = _no_more(), _rows(head.get("data"))
                statement.settled = True
        except (aiohttp.ClientError, OSError, MalformedAnswer, EmbeddedError) as error:
            response.close()
            raise answer_failure(statement, error, problem_for) from None
        except BaseException:
            response.close()
            raise
        if statement.cancelled:
            response.close()
            raise QueryCancelled(f"query {statement.query_id} was cancelled")
        statement.rows = len(first or ())
        if first is None:
            # Read to the end already: the statement is over at the source.
            statement.settled = True
        columns = result_columns(names, first or [])
        return MindsDBRows(statement, batches, columns, first or [], problem_for)


async def _whole(response: aiohttp.ClientResponse) -> dict[str, Any]:
    """A whole answer, read; the statement is over at the source once it is."""
    raw = await response.read()
    response.release()
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise MalformedAnswer("the query engine's answer is not JSON") from None
    if not isinstance(body, dict):
        raise MalformedAnswer("the query engine's answer does not start with its type")
    return body


def _rows(data: object) -> list[list[Any]] | None:
    """A whole answer's rows (None when there are none, as at the end of a stream)."""
    if not isinstance(data, list) or not all(type(row) is list for row in data):
        raise MalformedAnswer("the query engine's answer holds no rows")
    return data or None


async def _no_more() -> AsyncIterator[list[list[Any]]]:
    """The batches after a whole answer's only one."""
    return
    yield
