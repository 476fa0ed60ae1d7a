"""Query results in each media type the API sends them as: JSON, NDJSON, CSV, Arrow.

Encoders only turn rows into bytes; they know nothing of HTTP, so any caller (the API,
the CLI, an export job) writes the same bytes.
"""

from weaver.results.arrow_types import ValueDoesNotFit
from weaver.results.formats import MEDIA_TYPES, encoder_for
from weaver.results.protocol import ResultEncoder, ResultSummary

__all__ = ["MEDIA_TYPES", "ResultEncoder", "ResultSummary", "ValueDoesNotFit", "encoder_for"]
