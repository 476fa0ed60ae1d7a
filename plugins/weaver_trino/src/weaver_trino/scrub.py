"""Making Trino's error messages fit to show a tenant.

Trino's messages name catalogs (internal names, or the staging name of a definition
being proven), point at a line and column of the rendered statement, which the tenant
never wrote, and a connector's message may quote what its driver was given. What leaves
the plugin has every secret of the datasources involved masked and every catalog name
made public.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from weaver.naming import public_names
from weaver.types import Datasource
from weaver_trino.statements import STAGING_PREFIX, internal_name_of_staging

MASK = "***"
MAX_DETAIL = 500
# Secrets shorter than this are masked only where they stand alone, so that a password
# "ab" does not mask every "ab" in the message.
SHORT_SECRET = 4
_LOCATION = re.compile(r"^line \d+:\d+: ")
_STAGING = re.compile(rf"\b{STAGING_PREFIX}[0-9a-f]{{12}}_[a-z0-9_]+\b")


def _mask(text: str, secret: str) -> str:
    if len(secret) >= SHORT_SECRET:
        return text.replace(secret, MASK)
    return re.sub(rf"(?<![A-Za-z0-9]){re.escape(secret)}(?![A-Za-z0-9])", MASK, text)


def clean_message(
    message: str, *, datasources: Iterable[Datasource] = (), secrets: Iterable[str] = ()
) -> str:
    text = message
    for secret in sorted({s for s in secrets if s}, key=len, reverse=True):
        text = _mask(text, secret)
    text = _LOCATION.sub("", text)
    text = _STAGING.sub(lambda found: internal_name_of_staging(found[0]) or found[0], text)
    text = public_names(text, datasources)
    text = " ".join(text.split())
    if len(text) > MAX_DETAIL:
        text = text[: MAX_DETAIL - 1] + "…"
    return text or "the query engine failed without a message"
