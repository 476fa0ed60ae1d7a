"""Registering, changing and removing datasources: the registry and the query engine
kept in step."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from weaver import codec, connections
from weaver.errors import Conflict, Unprocessable, field_error, found
from weaver.host import Host
from weaver.naming import internal_name
from weaver.netpolicy import check_targets
from weaver.types import ConnectionSpec, Datasource, Repair
from weaver.workflows import repairs

# Kept unless the request says otherwise (`update`).
_UNCHANGED: Any = object()


async def require_datasource(host: Host, tenant_id: str, name: str) -> Datasource:
    """The tenant's datasource; another tenant's answers exactly like a missing one."""
    return found(await host.get_datasource(tenant_id, name), f"datasource '{name}' not found")


async def checked_connection(host: Host, engine: str, connection: dict[str, Any]) -> ConnectionSpec:
    """The query engine's reading of a connection, refused when it points where it may
    not (`WEAVER_DATASOURCE_ALLOWED_HOSTS`, production's address rules)."""
    spec = await host.validate_connection(engine, connection)
    if spec is None:
        raise Unprocessable(
            f"engine '{engine}' is not supported by this gateway",
            errors=[field_error(["body", "engine"], "unsupported engine", "engine")],
        )
    await check_targets(spec.targets, host.context.settings)
    return spec


async def register(
    host: Host,
    *,
    tenant_id: str,
    name: str,
    engine: str,
    connection: dict[str, Any],
    description: str | None,
) -> Datasource:
    """Create a datasource in the registry and the query engine, or in neither."""
    if await host.get_datasource(tenant_id, name) is not None:
        raise Conflict(f"datasource '{name}' already exists")
    if any(r.kind == "remove_datasource" for r in await repairs.pending(host, tenant_id, name)):
        # Its engine database may still exist under the same internal name.
        raise Conflict(f"datasource '{name}' is still being removed; try again shortly")
    spec = await checked_connection(host, engine, connection)
    sealed = connections.seal(host.context.secrets, tenant_id, name, spec)
    now = datetime.now(UTC)
    datasource = Datasource(
        tenant_id=tenant_id,
        name=name,
        engine=engine,
        internal_name=internal_name(tenant_id, name),
        connection=sealed.public,
        sealed_secrets=sealed.sealed_secrets,
        secret_keys=sealed.secret_keys,
        description=description,
        created_at=now,
        updated_at=now,
    )
    # The record claims the name first (atomically, across processes); the engine is
    # asked second, and a refusal removes the claim, so nothing is left half-created.
    await host.save_datasource(datasource, create=True)
    try:
        await host.register_datasource(datasource, connections.full(spec), replace=False)
    except BaseException:
        # The engine refused (or did not answer): undo the claim, and if even that
        # fails, leave the undoing to a repair — a record must not outlive its engine.
        try:
            await host.delete_datasource(tenant_id, name)
        except Exception:
            await _remove_later(host, datasource)
        raise
    return datasource


async def update(
    host: Host,
    datasource: Datasource,
    *,
    description: str | None = _UNCHANGED,
    connection: dict[str, Any] | None = None,
) -> Datasource:
    """Change a datasource's description and/or connection (checked again, and accepted
    by the engine before the record changes)."""
    changed = replace(datasource, updated_at=datetime.now(UTC))
    if description is not _UNCHANGED:
        changed = replace(changed, description=description)
    if connection is not None:
        spec = await checked_connection(host, datasource.engine, connection)
        sealed = connections.seal(host.context.secrets, datasource.tenant_id, datasource.name, spec)
        changed = replace(
            changed,
            connection=sealed.public,
            sealed_secrets=sealed.sealed_secrets,
            secret_keys=sealed.secret_keys,
        )
        await host.register_datasource(changed, connections.full(spec), replace=True)
    await host.save_datasource(changed, create=False)
    return changed


async def remove(host: Host, datasource: Datasource) -> None:
    """Remove a datasource from the registry at once (it answers 404 from now on), then
    from the query engine and every store — now, or, if a backend is down, by a repair
    once it is back."""
    repair = await _remove_later(host, datasource)
    await host.delete_datasource(datasource.tenant_id, datasource.name)
    await repairs.finish(host, repair)


async def _remove_later(host: Host, datasource: Datasource) -> Repair:
    repair = repairs.intent(
        "remove_datasource",
        datasource.tenant_id,
        datasource.name,
        datasource=codec.to_jsonable(datasource),
    )
    await host.save_repair(repair)
    return repair
