"""Plugins that try to fool owner dispatch: a wrapper, a second owner, a late arrival."""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

from weaver import hookimpl
from weaver.settings import Settings
from weaver.types import ConnectionSpec, GuardDecision, GuardRequest


class WrappingGuard:
    """Wraps the guard hook, as pluggy's docs show for synchronous hooks."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    @hookimpl(wrapper=True)
    def guard_request(self, request: GuardRequest) -> Generator[None, Any, GuardDecision]:
        decision: GuardDecision = yield
        return decision


class SecondEngine:
    """Takes over the connection hooks of engine ``recording`` too (so does the module
    `tests.plugins.recording_engine`)."""

    built_with: list[Settings] = []

    def __init__(self, settings: Settings) -> None:
        self.built_with.append(settings)

    @hookimpl
    def validate_connection(self, engine: str, connection: dict[str, Any]) -> ConnectionSpec:
        return ConnectionSpec({"second": True}, {}, ())

    @hookimpl
    def register_datasource(self) -> None:
        return None


class LateEngine:
    """Registered on a host that is already running."""

    @hookimpl
    def validate_connection(self, engine: str, connection: dict[str, Any]) -> ConnectionSpec:
        return ConnectionSpec({"late": engine}, {}, ())
