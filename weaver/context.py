"""The core context object every hook receives, and what it lets a plugin reach.

This module is part of the plugin contract, so it imports no implementation: what the
context holds is typed by the protocols below, which the core's host satisfies.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from weaver.connections import reveal
from weaver.secrets import SecretBox
from weaver.settings import Settings
from weaver.types import Datasource


class Registry(Protocol):
    """The datasource registry, whichever plugin owns it, as another plugin may read it
    (a query engine reconciling with the registry at start-up, say)."""

    async def all_datasources(self) -> list[Datasource]: ...

    async def get_datasource(self, tenant_id: str, name: str) -> Datasource | None: ...


@dataclass(frozen=True)
class WeaverContext:
    """Shared by all hooks of one running gateway.

    ``registry`` answers through the plugins that own the registry hooks. ``state`` is
    for *module* plugins, which have no ``self``: they keep what they open under their
    own entry-point name, so that two apps in one process stay apart. A plugin written
    as a class keeps its state on its instance (one per app) instead.
    """

    settings: Settings
    secrets: SecretBox
    registry: Registry
    state: dict[str, Any] = field(default_factory=dict)

    def reveal_connection(self, datasource: Datasource) -> dict[str, Any]:
        """The full connection, secrets included, for handing to a backend only."""
        return reveal(self.secrets, datasource)
