"""Every typed key the app and requests carry."""

from __future__ import annotations

from aiohttp import web

from weaver.host import Host
from weaver.observability import Metrics
from weaver.routing import RouteTable
from weaver.settings import Settings
from weaver.types import Principal

HOST = web.AppKey("host", Host)
SETTINGS = web.AppKey("settings", Settings)
METRICS = web.AppKey("metrics", Metrics)
ROUTES = web.AppKey("routes", RouteTable)
OPENAPI_DOCUMENT = web.AppKey("openapi_document", bytes)

REQUEST_ID = web.RequestKey("request_id", str)
PRINCIPAL = web.RequestKey("principal", Principal)


def principal_of(request: web.Request) -> Principal:
    return request[PRINCIPAL]
