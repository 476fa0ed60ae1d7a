"""The result formats, and choosing one for a request."""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

from weaver.errors import NotAcceptable
from weaver.results.arrow_stream import ArrowEncoder
from weaver.results.csv_text import CsvEncoder
from weaver.results.json_document import JsonEncoder
from weaver.results.ndjson import NdjsonEncoder
from weaver.results.negotiation import negotiate
from weaver.results.protocol import ResultEncoder

JSON = "application/json"
NDJSON = "application/x-ndjson"
CSV = "text/csv"
ARROW = "application/vnd.apache.arrow.stream"
# In the order of preference: JSON for `*/*` and `application/*`.
MEDIA_TYPES = (JSON, NDJSON, CSV, ARROW)

_STREAMED: dict[str, Callable[[], ResultEncoder]] = {
    NDJSON: NdjsonEncoder,
    CSV: CsvEncoder,
    ARROW: ArrowEncoder,
}


def encoder_for(
    accept: str | None, *, json_shape: Literal["query", "page"] = "query"
) -> ResultEncoder:
    """A new encoder for the media type the ``Accept`` header prefers; ``json_shape``
    is the JSON document's shape. Raises `NotAcceptable` if it accepts none of them."""
    media_type = negotiate(accept, MEDIA_TYPES)
    if media_type is None:
        raise NotAcceptable(f"results can be sent as {', '.join(MEDIA_TYPES)}")
    if media_type == JSON:
        return JsonEncoder(json_shape)
    return _STREAMED[media_type]()
