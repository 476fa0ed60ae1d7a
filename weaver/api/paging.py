"""List parameters and opaque cursors shared by every list endpoint."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable, Sequence
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from weaver.api.models import Answer
from weaver.errors import BadRequest
from weaver.types import Page

T = TypeVar("T")
ItemT = TypeVar("ItemT")

DEFAULT_LIMIT = 100
MAX_LIMIT = 1000


class ListQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    limit: int = Field(DEFAULT_LIMIT, ge=1, le=MAX_LIMIT)
    cursor: str | None = Field(None, max_length=2048)

    def page(self) -> Page:
        """Ask the store for one more than the limit, to know whether a next page exists."""
        return Page(limit=self.limit + 1, after=decode_cursor(self.cursor))


class ItemList(Answer, Generic[ItemT]):
    items: list[ItemT]
    next_cursor: str | None


def encode_cursor(key: str) -> str:
    return base64.urlsafe_b64encode(key.encode()).decode().rstrip("=")


def decode_cursor(cursor: str | None) -> str | None:
    if cursor is None:
        return None
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        return base64.b64decode(padded, altchars=b"-_", validate=True).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise BadRequest("the cursor is not one this API issued") from None


def page_of(
    rows: Sequence[T], query: ListQuery, key: Callable[[T], str], render: Callable[[T], Any]
) -> dict[str, Any]:
    """The list body for `rows` fetched with `query.page()` (one extra row = more exist)."""
    shown = rows[: query.limit]
    more = len(rows) > query.limit
    return {
        "items": [render(row) for row in shown],
        "next_cursor": encode_cursor(key(shown[-1])) if more and shown else None,
    }


def page_in_memory(
    rows: Sequence[T], query: ListQuery, key: Callable[[T], str], render: Callable[[T], Any]
) -> dict[str, Any]:
    """Paging for lists the core already holds whole (sorted by `key`)."""
    after = decode_cursor(query.cursor)
    remaining = [row for row in rows if after is None or key(row) > after]
    return page_of(remaining[: query.limit + 1], query, key, render)
