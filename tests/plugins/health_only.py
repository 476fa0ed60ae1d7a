"""A plugin that owns no guard, store or engine hook: only a health check, like the
README's first example used to be."""

from __future__ import annotations

from weaver import hookimpl
from weaver.types import HealthCheck


@hookimpl
def check_health() -> HealthCheck:
    return HealthCheck("up", extra={"vendor": "acme"})
