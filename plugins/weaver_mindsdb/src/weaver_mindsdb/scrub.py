"""Making MindsDB's error messages fit to show a tenant.

MindsDB's messages name the engine-side database, may quote the failed statement (with
its PARAMETERS) or a driver's connection string. What leaves the gateway has every
internal name turned back into the datasource's public name and every credential masked.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from weaver.naming import public_names
from weaver.types import Datasource

MASK = "***"
MAX_DETAIL = 500
# Secrets shorter than this are masked only where they stand alone, so that a password
# "ab" does not mask every "ab" in the message.
SHORT_SECRET = 4

# user:password@ in any URL-like connection string.
_URL_CREDENTIALS = re.compile(r"(?P<scheme>\b[a-z][a-z0-9+.-]*://)[^\s/@]*@", re.IGNORECASE)
# password=..., "password": "...", 'pwd': '...' and the like.
_KEYED_SECRET = re.compile(
    r"""(?P<key>\b(?:password|passwd|pwd|secret|token|api_key)\b["']?\s*[:=]\s*)"""
    r"""(?P<value>"[^"]*"|'[^']*'|[^\s,;)}]+)""",
    re.IGNORECASE,
)


def _mask_secret(text: str, secret: str) -> str:
    if len(secret) >= SHORT_SECRET:
        return text.replace(secret, MASK)
    return re.sub(rf"(?<![A-Za-z0-9]){re.escape(secret)}(?![A-Za-z0-9])", MASK, text)


def clean_message(
    message: str,
    *,
    datasources: Iterable[Datasource] = (),
    secrets: Iterable[str] = (),
) -> str:
    """``message`` with credentials masked and internal names made public.

    ``secrets`` are exact values to mask (the revealed connection's secret parameters).
    """
    text = message
    for secret in sorted({s for s in secrets if s}, key=len, reverse=True):
        text = _mask_secret(text, secret)
    text = _URL_CREDENTIALS.sub(lambda m: f"{m['scheme']}{MASK}@", text)
    text = _KEYED_SECRET.sub(lambda m: f"{m['key']}{MASK}", text)
    text = public_names(text, datasources)
    text = " ".join(text.split())
    if len(text) > MAX_DETAIL:
        text = text[: MAX_DETAIL - 1] + "…"
    return text or "the query engine failed without a message"
