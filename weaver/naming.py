"""How a datasource is named inside the query engine.

The engine-side name is derived from tenant and datasource, so that two tenants can both
own `sales`, and is never typed or seen by users. Engines use the pattern to recognise
names Weaver created (reconciliation) and to scrub them from messages.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping

from weaver.types import Datasource

INTERNAL_NAME_PREFIX = "w_"
# Anywhere in a text: `w_`, twelve hex digits of the tenant's digest, `_`, the name.
INTERNAL_NAME_PATTERN = re.compile(r"\bw_[0-9a-f]{12}_[a-z0-9_]+\b", re.IGNORECASE)


def internal_name(tenant_id: str, name: str) -> str:
    digest = hashlib.sha256(tenant_id.encode()).hexdigest()[:12]
    return f"{INTERNAL_NAME_PREFIX}{digest}_{name}"


def is_internal_name(text: str) -> bool:
    """Whether ``text`` is shaped like a name `internal_name` made."""
    return INTERNAL_NAME_PATTERN.fullmatch(text) is not None


def public_names(text: str, datasources: Iterable[Datasource]) -> str:
    """``text`` (an engine's message, a result column's name) with every internal name of
    ``datasources`` replaced by the public one, and any other internal name — it belongs
    to no datasource of this request — by ``<datasource>``. The one place where internal
    names are scrubbed before anything reaches a caller."""
    if not INTERNAL_NAME_PATTERN.search(text):
        return text
    return replace_internal_names(text, {d.internal_name.lower(): d.name for d in datasources})


def replace_internal_names(text: str, public_by_internal: Mapping[str, str]) -> str:
    """`public_names` with the names given as lower-cased internal name → public name."""
    return INTERNAL_NAME_PATTERN.sub(
        lambda match: public_by_internal.get(match[0].lower(), "<datasource>"), text
    )
