"""A third-party query engine for tests: it keeps what it was sent instead of a server.

It owns the connection hooks for an engine named ``recording`` with network parameters
and a password, which the embedded SQLite engine has none of, so the core's handling of
secrets, connection targets and engine refusals can be seen from outside.
"""

from __future__ import annotations

from typing import Any

from weaver import hookimpl
from weaver.context import WeaverContext
from weaver.errors import EngineFailed, Unprocessable
from weaver.types import ConnectionSpec, Datasource

NAME = "recording"
ALLOWED = {"host", "port", "user", "password"}


def registered(context: WeaverContext) -> dict[str, dict[str, Any]]:
    state: dict[str, dict[str, Any]] = context.state.setdefault(NAME, {})
    return state


@hookimpl
def validate_connection(engine: str, connection: dict[str, Any]) -> ConnectionSpec | None:
    if engine != NAME:
        return None
    unknown = set(connection) - ALLOWED
    if unknown or "host" not in connection:
        raise Unprocessable("host is required; only host, port, user, password are known")
    public = {k: v for k, v in connection.items() if k != "password"}
    secret = {"password": connection["password"]} if "password" in connection else {}
    return ConnectionSpec(public, secret, ((str(connection["host"]), connection.get("port")),))


@hookimpl
def register_datasource(
    context: WeaverContext, datasource: Datasource, connection: dict[str, Any], replace: bool
) -> None:
    if connection.get("password") == "wrong":
        raise EngineFailed(f"Can't connect to db {datasource.internal_name}: bad password")
    registered(context)[datasource.internal_name] = dict(connection)


@hookimpl
def unregister_datasource(context: WeaverContext, datasource: Datasource) -> None:
    registered(context).pop(datasource.internal_name, None)
