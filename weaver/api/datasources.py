"""`/api/datasources`: register, inspect, change and remove datasources."""

from __future__ import annotations

import logging
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, field_validator

from weaver import sql
from weaver.api.paging import ItemList, ListQuery, page_of
from weaver.context import secret_binding
from weaver.errors import Conflict, NotFound, Unprocessable
from weaver.host import Host
from weaver.keys import HOST, SETTINGS, principal_of
from weaver.naming import internal_name
from weaver.netpolicy import check_targets
from weaver.responses import json_response
from weaver.routing import RouteTable
from weaver.settings import Settings
from weaver.types import ConnectionSpec, Datasource

log = logging.getLogger(__name__)
routes = RouteTable()

NAME_PATTERN = r"^[a-z][a-z0-9_]{0,62}$"


class DatasourceCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=NAME_PATTERN)
    engine: str = Field(min_length=1, max_length=64, pattern=r"^[a-z][a-z0-9_]*$")
    connection: dict[str, Any]
    description: str | None = Field(None, max_length=2000)

    @field_validator("name")
    @classmethod
    def _not_reserved(cls, value: str) -> str:
        if value in sql.SYSTEM_DATABASES:
            raise ValueError(f"'{value}' is reserved by the query engine")
        return value


class DatasourceUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    connection: dict[str, Any] | None = None
    description: str | None = Field(None, max_length=2000)


class DatasourceOut(BaseModel):
    name: str
    engine: str
    connection: dict[str, Any]
    password_set: bool
    description: str | None
    created_at: datetime
    updated_at: datetime


def render(datasource: Datasource) -> dict[str, Any]:
    return {
        "name": datasource.name,
        "engine": datasource.engine,
        "connection": datasource.connection,
        "password_set": bool(datasource.secret_keys),
        "description": datasource.description,
        "created_at": datasource.created_at.isoformat(),
        "updated_at": datasource.updated_at.isoformat(),
    }


async def datasource_or_404(host: Host, tenant_id: str, name: str) -> Datasource:
    """The tenant's datasource; another tenant's answers exactly like a missing one."""
    datasource = await host.get_datasource(tenant_id, name)
    if datasource is None:
        raise NotFound(f"datasource '{name}' not found")
    return datasource


async def checked_connection(
    host: Host, settings: Settings, engine: str, connection: dict[str, Any]
) -> ConnectionSpec:
    """The engine's reading of a connection, refused when it points where it may not."""
    spec = await host.validate_connection(engine, connection)
    if spec is None:
        raise Unprocessable(
            f"engine '{engine}' is not supported by this gateway",
            errors=[{"loc": ["body", "engine"], "msg": "unsupported engine", "type": "engine"}],
        )
    await check_targets(spec.targets, settings)
    return spec


async def register(
    host: Host,
    settings: Settings,
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
    spec = await checked_connection(host, settings, engine, connection)
    now = datetime.now(UTC)
    datasource = Datasource(
        tenant_id=tenant_id,
        name=name,
        engine=engine,
        internal_name=internal_name(tenant_id, name),
        connection=spec.public,
        sealed_secrets=host.context.secrets.seal(
            spec.secret, bound_to=secret_binding(tenant_id, name)
        ),
        secret_keys=sorted(spec.secret),
        description=description,
        created_at=now,
        updated_at=now,
    )
    # The record claims the name first (atomically, across processes); the engine is
    # asked second, and a refusal removes the claim, so nothing is left half-created.
    await host.save_datasource(datasource, create=True)
    try:
        await host.register_datasource(datasource, {**spec.public, **spec.secret}, replace=False)
    except BaseException:
        await host.delete_datasource(tenant_id, name)
        raise
    return datasource


@routes.route(
    "POST",
    "/api/datasources",
    summary="Register a datasource",
    tag="datasources",
    role="editor",
    body=DatasourceCreate,
    response=DatasourceOut,
    status=201,
    errors=(409, 422, 502),
)
async def create_datasource(request: web.Request, body: DatasourceCreate) -> web.StreamResponse:
    datasource = await register(
        request.app[HOST],
        request.app[SETTINGS],
        tenant_id=principal_of(request).tenant_id,
        name=body.name,
        engine=body.engine,
        connection=body.connection,
        description=body.description,
    )
    return json_response(
        render(datasource),
        status=201,
        headers={"Location": f"/api/datasources/{datasource.name}"},
    )


@routes.route(
    "GET",
    "/api/datasources",
    summary="List datasources",
    tag="datasources",
    role="viewer",
    query=ListQuery,
    response=ItemList[DatasourceOut],
)
async def list_datasources(request: web.Request, query: ListQuery) -> web.StreamResponse:
    host, principal = request.app[HOST], principal_of(request)
    rows = await host.list_datasources(principal.tenant_id, query.page())
    return json_response(page_of(rows, query, lambda d: d.name, render))


@routes.route(
    "GET",
    "/api/datasources/{name}",
    summary="One datasource",
    tag="datasources",
    role="viewer",
    response=DatasourceOut,
    errors=(404,),
)
async def get_datasource(request: web.Request) -> web.StreamResponse:
    host, principal = request.app[HOST], principal_of(request)
    datasource = await datasource_or_404(host, principal.tenant_id, request.match_info["name"])
    return json_response(render(datasource))


@routes.route(
    "PATCH",
    "/api/datasources/{name}",
    summary="Change description or connection",
    tag="datasources",
    role="editor",
    body=DatasourceUpdate,
    response=DatasourceOut,
    errors=(404, 422, 502),
)
async def update_datasource(request: web.Request, body: DatasourceUpdate) -> web.StreamResponse:
    host, principal = request.app[HOST], principal_of(request)
    stored = await datasource_or_404(host, principal.tenant_id, request.match_info["name"])
    # A changed copy: the stored record may be shared (see the `get_datasource` hook).
    datasource = replace(stored, updated_at=datetime.now(UTC))
    fields = body.model_fields_set
    if "description" in fields:
        datasource.description = body.description
    if "connection" in fields and body.connection is not None:
        settings = request.app[SETTINGS]
        spec = await checked_connection(host, settings, datasource.engine, body.connection)
        datasource.connection = spec.public
        datasource.sealed_secrets = host.context.secrets.seal(
            spec.secret, bound_to=secret_binding(principal.tenant_id, datasource.name)
        )
        datasource.secret_keys = sorted(spec.secret)
        # The engine must accept the new connection before the record changes.
        await host.register_datasource(datasource, {**spec.public, **spec.secret}, replace=True)
    await host.save_datasource(datasource, create=False)
    return json_response(render(datasource))


@routes.route(
    "DELETE",
    "/api/datasources/{name}",
    summary="Remove a datasource",
    tag="datasources",
    role="editor",
    status=204,
    errors=(404,),
)
async def delete_datasource(request: web.Request) -> web.StreamResponse:
    host, principal = request.app[HOST], principal_of(request)
    datasource = await datasource_or_404(host, principal.tenant_id, request.match_info["name"])
    # The record goes last: if the engine or a store fails, the delete can be retried.
    await host.unregister_datasource(datasource)
    await host.delete_metadata(datasource)
    await host.delete_datasource(principal.tenant_id, datasource.name)
    return web.Response(status=204)
