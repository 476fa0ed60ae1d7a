"""Every typed key the app and requests carry."""

from __future__ import annotations

from aiohttp import web

from weaver.host import Host
from weaver.observability import Metrics
from weaver.queries.service import QueryService
from weaver.routing import RouteTable
from weaver.settings import Settings
from weaver.types import Principal

HOST = web.AppKey("host", Host)
QUERIES = web.AppKey("queries", QueryService)
SETTINGS = web.AppKey("settings", Settings)
METRICS = web.AppKey("metrics", Metrics)
ROUTES = web.AppKey("routes", RouteTable)
OPENAPI_DOCUMENT = web.AppKey("openapi_document", bytes)

REQUEST_ID = web.RequestKey("request_id", str)
PRINCIPAL = web.RequestKey("principal", Principal)
# Headers every answer to the request carries, whichever layer answers and however (a
# problem, a streamed result): set while the request passes, added as headers are sent.
RESPONSE_HEADERS = web.RequestKey("response_headers", dict)
# The request's allowed CORS origin, if it came from one.
CORS_ORIGIN = web.RequestKey("cors_origin", str)


def principal_of(request: web.Request) -> Principal:
    return request[PRINCIPAL]
