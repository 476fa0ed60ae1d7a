"""Choosing the result format from the Accept header."""

from __future__ import annotations

import json

import pytest

from weaver.errors import NotAcceptable
from weaver.responses import problem_response
from weaver.results import MEDIA_TYPES, encoder_for
from weaver.results.negotiation import negotiate

JSON, NDJSON, CSV, ARROW = MEDIA_TYPES


@pytest.mark.parametrize(
    ("accept", "chosen"),
    [
        (None, JSON),
        ("", JSON),
        ("application/json", JSON),
        ("application/x-ndjson", NDJSON),
        ("text/csv", CSV),
        ("application/vnd.apache.arrow.stream", ARROW),
        ("Text/CSV", CSV),
        ("text/csv;q=0.9, application/x-ndjson", NDJSON),
        ("text/csv; q=0.9 , application/x-ndjson;q=0.8", CSV),
        ("*/*", JSON),
        ("application/*", JSON),
        ("text/*", CSV),
        ("text/csv; charset=utf-8", CSV),
        ("application/json;charset=UTF-8", JSON),
        ('text/csv;header="present, quoted; too"', CSV),
        # Ties go to the range named first.
        ("text/csv, application/x-ndjson", CSV),
        ("application/x-ndjson, text/csv", NDJSON),
        # The most specific range decides a type's quality.
        ("application/*;q=0.5, application/json;q=0", NDJSON),
        ("*/*;q=0.1, text/csv;q=0", JSON),
        # What a browser sends.
        ("text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8", JSON),
        # A malformed range names nothing; the others still count.
        ("text/csv;q=abc, application/x-ndjson", NDJSON),
        ("nonsense, text/csv", CSV),
    ],
)
def test_negotiation(accept: str | None, chosen: str) -> None:
    assert encoder_for(accept).media_type.partition(";")[0] == chosen


@pytest.mark.parametrize(
    "accept",
    [
        "text/html",
        "application/xml",
        "text/csv;q=0",
        "application/vnd.apache.arrow.file",
        "image/*",
        "*/*;q=0",
        "text/csv;q=2",
        "nonsense",
    ],
)
def test_not_acceptable(accept: str) -> None:
    with pytest.raises(NotAcceptable) as raised:
        encoder_for(accept)
    body = json.loads(problem_response(raised.value, "req-1").body)
    assert body["status"] == 406
    assert body["title"] == "Not Acceptable"
    assert body["type"].endswith("/not-acceptable")
    assert body["request_id"] == "req-1"
    assert all(media_type in body["detail"] for media_type in MEDIA_TYPES)


def test_negotiation_is_general() -> None:
    assert negotiate("text/plain;q=0.5, text/*;q=0.1", ["text/csv", "text/plain"]) == "text/plain"
    assert negotiate(None, []) is None
