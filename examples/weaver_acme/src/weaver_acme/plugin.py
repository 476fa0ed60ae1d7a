"""An example plugin, enabled with ``WEAVER_ACME_MODE=true`` once installed.

It owns no records; it only reports health. Copy it as the start of a real plugin, then
implement the hooks of `weaver.hookspecs` you want to take over.
"""

from __future__ import annotations

from weaver import __version__, hookimpl
from weaver.context import WeaverContext
from weaver.types import HealthCheck


@hookimpl
async def weaver_startup(context: WeaverContext) -> None:
    context.state["acme"] = {"started_with": __version__}


@hookimpl
async def check_health(context: WeaverContext) -> HealthCheck:
    return HealthCheck("up", extra={"vendor": "acme", **context.state.get("acme", {})})
