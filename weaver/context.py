"""The core context object every hook receives."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from weaver.secrets import SecretBox
from weaver.settings import Settings
from weaver.types import Datasource

if TYPE_CHECKING:
    from weaver.host import Host


def secret_binding(tenant_id: str, name: str) -> str:
    """What a datasource's sealed secrets are bound to (see `SecretBox.seal`)."""
    return f"datasource:{tenant_id}/{name}"


@dataclass
class WeaverContext:
    """Shared by all hooks of one running gateway.

    `state` is where a plugin keeps what it opened at start-up (a pool, a client),
    under its own entry-point name, so that two apps in one process stay apart.
    """

    settings: Settings
    secrets: SecretBox
    state: dict[str, Any] = field(default_factory=dict)
    # Set by the host that owns this context, so a plugin can reach hooks it does not own
    # (a query engine reconciling with the datasource registry at start-up).
    host: Host | None = None

    def reveal_connection(self, datasource: Datasource) -> dict[str, Any]:
        """The full connection, secrets included, for handing to a backend only."""
        revealed = dict(datasource.connection)
        revealed.update(
            self.secrets.open(
                datasource.sealed_secrets,
                bound_to=secret_binding(datasource.tenant_id, datasource.name),
            )
        )
        return revealed
