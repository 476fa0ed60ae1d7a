"""What the query core hands a result format, and what it gets back."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from weaver.types import ResultColumn


@dataclass(frozen=True, slots=True)
class ResultSummary:
    """How a result ended, known once its last row was read.

    ``row_count`` is the number of rows passed to `ResultEncoder.rows`; ``next_cursor``
    is the cursor of the next page of a stored result (``None``: this page is the last,
    or the result is not paged). Only the JSON page shape writes it; the streamed formats
    leave it to a ``Link`` header.
    """

    query_id: str
    row_count: int
    truncated: bool
    elapsed_ms: float
    next_cursor: str | None = None


class ResultEncoder(Protocol):
    """One result written in one media type; an encoder serves one response.

    The core calls `start` once, `rows` once per batch, then `finish`, or `failure` if
    the result fails part-way; it sends each returned chunk as it comes. An encoder
    holds no rows between calls, except one that does not stream.
    """

    media_type: str
    """The ``Content-Type`` to send."""
    streams: bool
    """False: the chunks are only whole together, so the core buffers them (and may
    still answer an error with a problem response, since nothing has been sent)."""

    def start(self, columns: Sequence[ResultColumn]) -> bytes: ...

    def rows(self, batch: Sequence[Sequence[Any]]) -> bytes:
        """The chunk for ``batch``, which may be empty (``b""``)."""
        ...

    def finish(self, summary: ResultSummary) -> bytes: ...

    def failure(self, problem: Mapping[str, Any]) -> bytes | None:
        """The last chunk after ``problem`` (a problem+json body) ended the result early;
        ``None``: the format cannot say so, and the core must abort the response
        (no terminating chunk), so that no client takes a partial result for a whole."""
        ...
