"""A datasource's connection, from the request to the backend, in one shape.

The query engine splits a connection into public and secret parameters
(`ConnectionSpec`). The public ones are stored as they are; the secret ones are sealed,
bound to the datasource's tenant and name. Whoever hands a connection to a backend gets
the same flat mapping of every parameter, whether it comes from a request (`full`) or
from a stored record (`reveal`). Sealing and merging happen here and nowhere else.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from weaver.secrets import SecretBox
from weaver.types import ConnectionSpec, Datasource


@dataclass(frozen=True, slots=True)
class SealedConnection:
    """What a datasource record keeps of a connection."""

    public: dict[str, Any]
    sealed_secrets: str
    secret_keys: tuple[str, ...]


def binding(tenant_id: str, name: str) -> str:
    """What a datasource's sealed secrets are bound to (see `SecretBox.seal`): copied onto
    another record, they do not open."""
    return f"datasource:{tenant_id}/{name}"


def seal(box: SecretBox, tenant_id: str, name: str, spec: ConnectionSpec) -> SealedConnection:
    return SealedConnection(
        public=dict(spec.public),
        sealed_secrets=box.seal(dict(spec.secret), bound_to=binding(tenant_id, name)),
        secret_keys=tuple(sorted(spec.secret)),
    )


def full(spec: ConnectionSpec) -> dict[str, Any]:
    """Every parameter of a checked connection, for the backend only: never log it."""
    return {**spec.public, **spec.secret}


def reveal(box: SecretBox, datasource: Datasource) -> dict[str, Any]:
    """`full` for a stored datasource: its public parameters and its opened secrets."""
    opened = box.open(
        datasource.sealed_secrets, bound_to=binding(datasource.tenant_id, datasource.name)
    )
    return {**datasource.connection, **opened}
