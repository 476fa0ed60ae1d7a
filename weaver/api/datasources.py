"""`/api/datasources`: register, inspect, change and remove datasources."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from aiohttp import web
from pydantic import Field, field_validator

from weaver import sql
from weaver.api.models import Answer, Body
from weaver.api.paging import ItemList, ListQuery, page_of
from weaver.host import Host
from weaver.keys import HOST, principal_of
from weaver.responses import json_response
from weaver.routing import RouteTable
from weaver.types import Datasource
from weaver.workflows import datasources as workflow

routes = RouteTable()

NAME_PATTERN = r"^[a-z][a-z0-9_]{0,62}$"


class DatasourceCreate(Body):
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


class DatasourceUpdate(Body):
    connection: dict[str, Any] | None = None
    description: str | None = Field(None, max_length=2000)


class DatasourceOut(Answer):
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
        "connection": dict(datasource.connection),
        "password_set": bool(datasource.secret_keys),
        "description": datasource.description,
        "created_at": datasource.created_at.isoformat(),
        "updated_at": datasource.updated_at.isoformat(),
    }


async def datasource_of(request: web.Request) -> tuple[Host, Datasource]:
    """The app's host and the datasource the path's ``{name}`` names: 404 unless the
    caller's tenant has one of that name."""
    host = request.app[HOST]
    tenant_id = principal_of(request).tenant_id
    return host, await workflow.require_datasource(host, tenant_id, request.match_info["name"])


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
    headers={"Location": "the datasource's URL"},
)
async def create_datasource(request: web.Request, body: DatasourceCreate) -> web.StreamResponse:
    datasource = await workflow.register(
        request.app[HOST],
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
    _, datasource = await datasource_of(request)
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
    host, stored = await datasource_of(request)
    fields = body.model_fields_set
    changes: dict[str, Any] = {}
    if "description" in fields:
        changes["description"] = body.description
    if "connection" in fields and body.connection is not None:
        changes["connection"] = body.connection
    return json_response(render(await workflow.update(host, stored, **changes)))


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
    host, datasource = await datasource_of(request)
    await workflow.remove(host, datasource)
    return web.Response(status=204)
