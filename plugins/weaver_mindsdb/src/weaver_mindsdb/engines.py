"""Connection parameters per MindsDB handler: which are forwarded, which are secret.

The lists follow each handler's ``connection_args`` in MindsDB 26.1, minus the parameters
that would let a tenant step around the gateway's checks:

* ``connection_parameters`` (postgres) and ``url`` (mysql, mariadb) carry their own host,
  which the target allow-list would never see;
* ``ssl_ca``/``ssl_cert``/``ssl_key`` (mysql, mariadb) are paths on the MindsDB server, so
  a tenant could make it read any file there.

Unknown parameters are refused rather than dropped: a misspelt ``sslmode`` silently
ignored would connect without TLS.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from weaver.errors import Unprocessable
from weaver.types import ConnectionSpec
from weaver_mindsdb.statements import UnrepresentableParameter, parameters_literal

Checker = Callable[[object], object]

MAX_TEXT = 1024
SSL_MODES = ("disable", "allow", "prefer", "require", "verify-ca", "verify-full")


class _Invalid(ValueError):
    pass


def _text(value: object) -> str:
    if not isinstance(value, str):
        raise _Invalid("must be a string")
    if len(value) > MAX_TEXT:
        raise _Invalid(f"must be at most {MAX_TEXT} characters")
    if any(ord(ch) < 32 for ch in value):
        raise _Invalid("must not contain control characters")
    return value


def _name(value: object) -> str:
    text = _text(value)
    if not text.strip():
        raise _Invalid("must not be empty")
    return text


def _host(value: object) -> str:
    host = _name(value).strip()
    if len(host) > 253 or any(ch.isspace() or ch in "/@?#" for ch in host):
        raise _Invalid("must be a host name or an IP address")
    return host


def _port(value: object) -> int:
    # A port written as a string ("5432") is common in forms; anything else is not a port.
    if isinstance(value, str) and value.isdigit():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 65535:
        raise _Invalid("must be an integer between 1 and 65535")
    return value


def _flag(value: object) -> bool:
    if not isinstance(value, bool):
        raise _Invalid("must be true or false")
    return value


def _sslmode(value: object) -> str:
    if value not in SSL_MODES:
        raise _Invalid("must be one of " + ", ".join(SSL_MODES))
    return str(value)


@dataclass(frozen=True)
class Param:
    check: Checker
    required: bool = False
    secret: bool = False
    default: object = None


@dataclass(frozen=True)
class EngineSpec:
    """What one MindsDB handler accepts."""

    handler: str
    params: Mapping[str, Param]

    def check(self, connection: Mapping[str, object]) -> ConnectionSpec:
        """The connection split into public and secret parameters, with its target;
        raises `Unprocessable` listing every bad parameter."""
        errors: list[dict[str, Any]] = []
        values: dict[str, object] = {}
        for key in connection:
            if key not in self.params:
                errors.append(_error(key, f"not a parameter of engine {self.handler!r}", "extra"))
        for key, param in self.params.items():
            raw = connection.get(key, param.default)
            if raw is None:
                if param.required:
                    errors.append(_error(key, "is required", "missing"))
                continue
            try:
                values[key] = param.check(raw)
            except _Invalid as invalid:
                errors.append(_error(key, str(invalid), "value_error"))
        if not errors:
            try:
                # Proves now, before anything is stored, that MindsDB will read the values
                # exactly as given.
                parameters_literal(values)
            except UnrepresentableParameter as bad:
                errors.append(_error(bad.key, str(bad), "value_error"))
        if errors:
            raise Unprocessable(f"invalid connection for engine {self.handler!r}", errors=errors)
        public = {k: v for k, v in values.items() if not self.params[k].secret}
        secret = {k: v for k, v in values.items() if self.params[k].secret}
        port = values.get("port")
        return ConnectionSpec(
            public=public,
            secret=secret,
            targets=((str(values["host"]), port if isinstance(port, int) else None),),
        )


def _error(key: str, message: str, kind: str) -> dict[str, Any]:
    return {"loc": ["body", "connection", key], "msg": message, "type": kind}


def _server_params(default_port: int) -> dict[str, Param]:
    """What every client-server SQL handler takes."""
    return {
        "host": Param(_host, required=True),
        "port": Param(_port, required=True, default=default_port),
        "database": Param(_name, required=True),
        "user": Param(_name, required=True),
        "password": Param(_text, required=True, secret=True),
    }


ENGINES: dict[str, EngineSpec] = {
    "postgres": EngineSpec(
        "postgres",
        {**_server_params(5432), "schema": Param(_name), "sslmode": Param(_sslmode)},
    ),
    "mysql": EngineSpec("mysql", {**_server_params(3306), "ssl": Param(_flag)}),
    "mariadb": EngineSpec("mariadb", {**_server_params(3306), "ssl": Param(_flag)}),
}


def check_connection(engine: str, connection: Mapping[str, object]) -> ConnectionSpec | None:
    """The checked connection, or None when ``engine`` is not one this plugin serves."""
    spec = ENGINES.get(engine)
    return spec.check(connection) if spec is not None else None
