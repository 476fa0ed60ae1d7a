"""A guard whose backend is always unreachable, to see the core's fail-open/closed rule."""

from __future__ import annotations

from weaver import hookimpl
from weaver.errors import GuardUnavailable
from weaver.types import GuardDecision, GuardRequest


@hookimpl
def guard_request(request: GuardRequest) -> GuardDecision:
    raise GuardUnavailable("the rate-limit store is unreachable")
