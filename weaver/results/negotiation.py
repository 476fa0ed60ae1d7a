"""Choosing a media type from an ``Accept`` header (RFC 9110, section 12.5.1)."""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

# A quoted string (which may hold commas and semicolons), or a run of anything else.
_TOKEN = re.compile(r'"(?:[^"\\]|\\.)*"?|[^",;]+|[,;]')
_QVALUE = re.compile(r"0(?:\.\d{0,3})?|1(?:\.0{0,3})?")


@dataclass(frozen=True, slots=True)
class MediaRange:
    type: str
    subtype: str
    quality: float
    position: int

    def specificity(self, media_type: str) -> int | None:
        """How closely this range names ``media_type`` (2: exactly, 1: ``type/*``,
        0: ``*/*``), or ``None`` if it does not cover it."""
        kind, _, subtype = media_type.partition("/")
        if self.type == "*":
            return 0
        if self.type != kind:
            return None
        if self.subtype == "*":
            return 1
        return 2 if self.subtype == subtype else None


def _elements(header: str) -> Iterator[list[str]]:
    """Each comma-separated element as its semicolon-separated parts."""
    parts, current = [], ""
    for match in _TOKEN.finditer(header):
        token = match.group()
        if token in ",;":
            parts.append(current.strip())
            current = ""
            if token == ",":
                yield parts
                parts = []
        else:
            current += token
    parts.append(current.strip())
    yield parts


def media_ranges(header: str) -> list[MediaRange]:
    """The well-formed ranges of ``header``; a malformed one names nothing."""
    ranges = []
    for position, (media, *parameters) in enumerate(_elements(header)):
        kind, slash, subtype = media.lower().partition("/")
        if not (kind and slash and subtype) or (kind == "*" and subtype != "*"):
            continue
        quality = 1.0
        for parameter in parameters:
            name, _, value = parameter.partition("=")
            # Parameters other than q (charset, ...) do not narrow the choice.
            if name.strip().lower() == "q":
                value = value.strip()
                quality = float(value) if _QVALUE.fullmatch(value) else -1.0
        if quality >= 0:
            ranges.append(MediaRange(kind, subtype, quality, position))
    return ranges


def negotiate(header: str | None, offered: Sequence[str]) -> str | None:
    """The media type of ``offered`` (in the server's order of preference) the caller
    accepts most, or ``None`` if it accepts none. A missing or blank header accepts
    anything. Each offered type takes the quality of the most specific range that
    covers it; ties go to the range the caller named first, then to the server's order."""
    if header is None or not header.strip():
        return offered[0] if offered else None
    ranges = media_ranges(header)
    best: tuple[float, int, int] | None = None
    chosen = None
    for preference, media_type in enumerate(offered):
        covering = [(r.specificity(media_type), r) for r in ranges]
        matched = [(specificity, r) for specificity, r in covering if specificity is not None]
        if not matched:
            continue
        _, decisive = max(matched, key=lambda pair: (pair[0], -pair[1].position))
        if decisive.quality <= 0:
            continue
        rank = (decisive.quality, -decisive.position, -preference)
        if best is None or rank > best:
            best, chosen = rank, media_type
    return chosen
