"""Datasource connections as Trino catalogs: which parameters each engine takes, which
are secret, and the catalog properties they become.

Engines keep the names Weaver's MindsDB plugin uses (``postgres``, ``mysql``,
``mariadb``), so that a registry moves from one query engine to the other. Only the
parameters below are accepted, and unknown ones are refused rather than dropped (a
misspelt ``sslmode`` silently ignored would connect without TLS). The JDBC URL is built
here from checked parts, never taken from the tenant: a URL written by the tenant could
carry driver options (``socketFactory`` loads a class on the Trino nodes) or a host the
target checks never saw.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated, Any, Literal
from urllib.parse import quote

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError

from weaver.errors import Unprocessable, field_error
from weaver.types import ConnectionSpec

MAX_TEXT = 1024
_HOST_NAME = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9.-]{0,251}[A-Za-z0-9])?")
_IPV6 = re.compile(r"[0-9A-Fa-f:.]*:[0-9A-Fa-f:.]*")


def _text(value: str) -> str:
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in value):
        raise ValueError("must not contain control characters")
    return value


def _host(value: str) -> str:
    host = value.strip()
    if not (_HOST_NAME.fullmatch(host) or _IPV6.fullmatch(host)):
        raise ValueError("must be a host name or an IP address")
    return host


Text = Annotated[str, Field(min_length=1, max_length=MAX_TEXT), AfterValidator(_text)]
Host = Annotated[str, Field(min_length=1, max_length=253), AfterValidator(_host)]
# A port written as a string ("5432") is common in forms; pydantic's lax mode takes it.
Port = Annotated[int, Field(ge=1, le=65535)]


class _ServerConnection(BaseModel):
    """What every client-server engine takes."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    host: Host
    port: Port
    database: Text
    user: Text
    password: Annotated[str, Field(max_length=MAX_TEXT), AfterValidator(_text)]


class PostgresConnection(_ServerConnection):
    port: Port = 5432
    sslmode: Literal["disable", "allow", "prefer", "require", "verify-ca", "verify-full"] | None = (
        None
    )


class MySQLConnection(_ServerConnection):
    port: Port = 3306


SECRET_KEYS = frozenset({"password"})


@dataclass(frozen=True)
class Engine:
    """One kind of datasource: the Trino connector that reads it and how its catalog is
    defined."""

    connector: str
    model: type[_ServerConnection]
    url_scheme: str
    # Whether the JDBC URL names the database (PostgreSQL's catalog is one database;
    # Trino's MySQL connector refuses one and shows every database as a schema).
    database_in_url: bool
    # Catalog properties beyond the connection, each a string (Trino's CREATE CATALOG
    # takes only string literals).
    extra_properties: Mapping[str, str]

    def jdbc_url(self, connection: _ServerConnection) -> str:
        host = f"[{connection.host}]" if ":" in connection.host else connection.host
        port = connection.port
        url = f"jdbc:{self.url_scheme}://{host}:{port}"
        if not self.database_in_url:
            return url
        # Percent-encoded whole: a `?` or `&` in the name cannot add driver options.
        url += f"/{quote(connection.database, safe='')}?ApplicationName=weaver"
        sslmode = getattr(connection, "sslmode", None)
        return url + (f"&sslmode={sslmode}" if sslmode else "")


# Unsupported column types become varchar instead of vanishing from the catalog, as
# unbounded PostgreSQL numerics (decimal(38,2) here) and arrays would by default.
_NO_SILENT_DROPS = {"unsupported-type-handling": "CONVERT_TO_VARCHAR"}

ENGINES: dict[str, Engine] = {
    "postgres": Engine(
        "postgresql",
        PostgresConnection,
        "postgresql",
        database_in_url=True,
        extra_properties={
            "decimal-mapping": "ALLOW_OVERFLOW",
            "decimal-default-scale": "2",
            # 12.345 in decimal(38,2) is 12.35, not a failed query.
            "decimal-rounding-mode": "HALF_UP",
            "postgresql.array-mapping": "AS_ARRAY",
            **_NO_SILENT_DROPS,
        },
    ),
    "mysql": Engine("mysql", MySQLConnection, "mysql", False, _NO_SILENT_DROPS),
    "mariadb": Engine("mariadb", MySQLConnection, "mariadb", False, _NO_SILENT_DROPS),
}


def _parse(engine: Engine, name: str, connection: Mapping[str, object]) -> _ServerConnection:
    try:
        return engine.model.model_validate(dict(connection))
    except ValidationError as error:
        raise Unprocessable(
            f"invalid connection for engine {name!r}",
            errors=[
                field_error(
                    ["body", "connection", *item["loc"]],
                    "not a parameter of this engine"
                    if item["type"] == "extra_forbidden"
                    else item["msg"],
                    item["type"],
                )
                for item in error.errors(include_url=False, include_input=False)
            ],
        ) from None


def check_connection(name: str, connection: Mapping[str, object]) -> ConnectionSpec | None:
    """The connection split into public and secret parameters, with its target; None when
    ``name`` is not an engine served here. Raises `Unprocessable` listing every bad
    parameter."""
    engine = ENGINES.get(name)
    if engine is None:
        return None
    parsed = _parse(engine, name, connection)
    values = parsed.model_dump(exclude_none=True)
    return ConnectionSpec(
        public={k: v for k, v in values.items() if k not in SECRET_KEYS},
        secret={k: v for k, v in values.items() if k in SECRET_KEYS},
        targets=((parsed.host, parsed.port),),
    )


@dataclass(frozen=True)
class CatalogDefinition:
    connector: str
    properties: dict[str, str]
    # The schema introspection reads for an engine whose catalog spans a server's
    # databases (MySQL); None when the catalog is the datasource (PostgreSQL).
    only_schema: str | None

    @property
    def secrets(self) -> list[str]:
        return [self.properties["connection-password"]]


def catalog_definition(name: str, connection: Mapping[str, Any]) -> CatalogDefinition:
    """The catalog for a datasource of engine ``name`` with every parameter of its
    ``connection`` (secrets included); raises `Unprocessable` for one that does not
    check (a record written by another query engine's plugin, say)."""
    engine = ENGINES.get(name)
    if engine is None:
        raise Unprocessable(f"engine {name!r} is not supported by the Trino plugin")
    parsed = _parse(engine, name, connection)
    properties = {
        "connection-url": engine.jdbc_url(parsed),
        "connection-user": parsed.user,
        "connection-password": parsed.password,
        **engine.extra_properties,
    }
    return CatalogDefinition(
        engine.connector, properties, None if engine.database_in_url else parsed.database
    )
