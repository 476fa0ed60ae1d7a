"""Routes declared once, with the models that validate them and document them.

A handler is registered with its role, request body model, query model and response
model. The same declaration validates requests (422 with field errors) and produces the
OpenAPI document, so the two cannot drift apart.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

import orjson
from aiohttp import web
from pydantic import BaseModel, TypeAdapter, ValidationError

from weaver.errors import BadRequest, Forbidden, Unprocessable, UnsupportedMediaType
from weaver.types import Principal, Role

ModelT = TypeVar("ModelT", bound=BaseModel)
Handler = Callable[..., Awaitable[web.StreamResponse]]


@dataclass(frozen=True)
class Route:
    method: str
    path: str
    handler: Handler
    summary: str
    tag: str
    role: Role | None = None
    body: type[BaseModel] | None = None
    query: type[BaseModel] | None = None
    response: Any = None
    status: int = 200
    errors: tuple[int, ...] = ()
    # Response headers this operation sets, beyond those every answer carries.
    headers: Mapping[str, str] = field(default_factory=dict)
    # Media types the success may also be sent as (content negotiation on Accept).
    media_types: tuple[str, ...] = ()
    # Other successes: status -> (response model, the headers that answer sets).
    alternatives: Mapping[int, tuple[type[BaseModel], Mapping[str, str]]] = field(
        default_factory=dict
    )
    # False for what is not API (the console's page and files): served, not documented.
    documented: bool = True


@dataclass
class RouteTable:
    routes: list[Route] = field(default_factory=list)

    def route(
        self,
        method: str,
        path: str,
        *,
        summary: str,
        tag: str,
        role: Role | None = None,
        body: type[BaseModel] | None = None,
        query: type[BaseModel] | None = None,
        response: Any = None,
        status: int = 200,
        errors: tuple[int, ...] = (),
        headers: Mapping[str, str] | None = None,
        media_types: tuple[str, ...] = (),
        alternatives: Mapping[int, tuple[type[BaseModel], Mapping[str, str]]] | None = None,
        documented: bool = True,
    ) -> Callable[[Handler], Handler]:
        def register(handler: Handler) -> Handler:
            self.routes.append(
                Route(
                    method,
                    path,
                    handler,
                    summary,
                    tag,
                    role=role,
                    body=body,
                    query=query,
                    response=response,
                    status=status,
                    errors=errors,
                    headers=dict(headers or {}),
                    media_types=media_types,
                    alternatives=dict(alternatives or {}),
                    documented=documented,
                )
            )
            return handler

        return register

    def extend(self, other: RouteTable) -> None:
        self.routes.extend(other.routes)

    def install(
        self,
        app: web.Application,
        principal_key: web.RequestKey[Principal],
        *,
        check_responses: bool = False,
    ) -> None:
        """Add every route to ``app``. With ``check_responses`` (the test settings), every
        successful JSON answer is validated against its route's response model, so a
        handler cannot answer what ``/openapi.json`` does not describe."""
        for route in self.routes:
            bound = _bind(route, principal_key)
            if check_responses and route.response is not None:
                bound = _checked(route, bound)
            app.router.add_route(route.method, route.path, bound)


class ResponseMismatch(RuntimeError):
    """A handler answered something its route's response model does not allow."""


def _checked(route: Route, handler: Handler) -> Handler:
    adapter: TypeAdapter[Any] = TypeAdapter(route.response)

    async def checked(request: web.Request) -> web.StreamResponse:
        response = await handler(request)
        if (
            isinstance(response, web.Response)
            and response.status == route.status
            and response.content_type == "application/json"
            and isinstance(response.body, bytes)
        ):
            try:
                adapter.validate_json(response.body)
            except ValidationError as error:
                raise ResponseMismatch(
                    f"{route.method} {route.path} answered outside its model: {error}"
                ) from None
        return response

    checked.__name__ = handler.__name__
    return checked


def _bind(route: Route, principal_key: web.RequestKey[Principal]) -> Handler:
    async def handler(request: web.Request) -> web.StreamResponse:
        kwargs: dict[str, Any] = {}
        if route.role is not None:
            principal = request[principal_key]
            if not principal.can(route.role):
                raise Forbidden(f"this action needs the '{route.role}' role")
        if route.query is not None:
            kwargs["query"] = validate(route.query, dict(request.query), location="query")
        if route.body is not None:
            kwargs["body"] = validate(route.body, await read_json(request), location="body")
        return await route.handler(request, **kwargs)

    handler.__name__ = route.handler.__name__
    return handler


async def read_json(request: web.Request) -> Any:
    if request.content_type not in ("application/json", "") and not request.content_type.endswith(
        "+json"
    ):
        raise UnsupportedMediaType("send the body as application/json")
    raw = await request.read()
    if not raw.strip():
        raise BadRequest("a JSON body is required")
    try:
        return orjson.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise BadRequest("the body is not valid JSON") from None


def validate(model: type[ModelT], data: Any, *, location: str) -> ModelT:
    try:
        return model.model_validate(data)
    except ValidationError as error:
        raise Unprocessable(
            f"the {location} is invalid",
            errors=[
                {"loc": [location, *item["loc"]], "msg": item["msg"], "type": item["type"]}
                for item in error.errors(include_url=False, include_input=False)
            ],
        ) from None
