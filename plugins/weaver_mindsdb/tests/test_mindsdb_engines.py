"""Connection parameters per engine: what is forwarded, what is secret, what is refused."""

from __future__ import annotations

import pytest
from weaver_mindsdb.engines import check_connection

from weaver.errors import Unprocessable

POSTGRES = {
    "host": "db.example",
    "port": 5432,
    "database": "sales",
    "user": "reader",
    "password": "s3cret",
}


def _fields(error: Unprocessable) -> dict[str, str]:
    return {e["loc"][-1]: e["type"] for e in error.errors or []}


def test_postgres_connection_is_split_into_public_and_secret() -> None:
    spec = check_connection("postgres", {**POSTGRES, "schema": "crm", "sslmode": "require"})
    assert spec is not None
    assert spec.secret == {"password": "s3cret"}
    assert spec.public == {
        "host": "db.example",
        "port": 5432,
        "database": "sales",
        "user": "reader",
        "schema": "crm",
        "sslmode": "require",
    }
    assert spec.targets == (("db.example", 5432),)


@pytest.mark.parametrize(
    ("engine", "port"), [("postgres", 5432), ("mysql", 3306), ("mariadb", 3306)]
)
def test_the_default_port_is_filled_in_and_targeted(engine: str, port: int) -> None:
    connection = {k: v for k, v in POSTGRES.items() if k != "port"}
    spec = check_connection(engine, connection)
    assert spec is not None
    assert spec.public["port"] == port
    assert spec.targets == (("db.example", port),)


def test_a_port_written_as_text_is_read_as_a_number() -> None:
    spec = check_connection("mysql", {**POSTGRES, "port": "3307", "ssl": True})
    assert spec is not None
    assert spec.public["port"] == 3307 and spec.public["ssl"] is True


@pytest.mark.parametrize(
    ("engine", "extra"),
    [
        # Parameters that would carry their own host past the target check, or read
        # files on the MindsDB server.
        ("postgres", {"connection_parameters": {"host": "169.254.169.254"}}),
        ("mysql", {"url": "mysql://u:p@10.0.0.1/db"}),
        ("mariadb", {"ssl_ca": "/etc/shadow"}),
        ("postgres", {"sslmod": "require"}),
    ],
)
def test_undocumented_or_unsafe_parameters_are_refused(
    engine: str, extra: dict[str, object]
) -> None:
    with pytest.raises(Unprocessable) as caught:
        check_connection(engine, {**POSTGRES, **extra})
    assert _fields(caught.value) == {next(iter(extra)): "extra"}


def test_every_bad_parameter_is_reported_at_once() -> None:
    with pytest.raises(Unprocessable) as caught:
        check_connection(
            "postgres",
            {"host": "bad host/x", "port": 70000, "user": "", "password": 5, "sslmode": "yes"},
        )
    assert _fields(caught.value) == {
        "host": "value_error",
        "port": "value_error",
        "database": "missing",
        "user": "value_error",
        "password": "value_error",
        "sslmode": "value_error",
    }


@pytest.mark.parametrize("port", [True, 0, -1, 65536, "54x", 5432.0])
def test_ports_must_be_ports(port: object) -> None:
    with pytest.raises(Unprocessable):
        check_connection("postgres", {**POSTGRES, "port": port})


def test_a_password_mindsdb_cannot_read_back_is_refused_without_echoing_it() -> None:
    password = "both\"and'"
    with pytest.raises(Unprocessable) as caught:
        check_connection("postgres", {**POSTGRES, "password": password})
    assert _fields(caught.value) == {"password": "value_error"}
    assert password not in repr(caught.value.errors) and password not in caught.value.detail


def test_engines_mindsdb_does_not_serve_here_are_not_ours() -> None:
    assert check_connection("sqlite", {"path": "x.db"}) is None
