"""Which connection parameters reach Trino, which are secret, and the catalog they make."""

from __future__ import annotations

import pytest
from weaver_trino.connections import catalog_definition, check_connection
from weaver_trino.statements import create_catalog, literal, staging_name

from weaver.errors import Unprocessable

CONNECTION = {
    "host": "db.example.com",
    "database": "sales",
    "user": "reader",
    "password": "s3cret'pw",
}


def test_the_password_is_split_off_and_the_target_named() -> None:
    spec = check_connection("postgres", {**CONNECTION, "port": "6432", "sslmode": "require"})
    assert spec is not None
    assert spec.secret == {"password": "s3cret'pw"}
    assert spec.public == {
        "host": "db.example.com",
        "port": 6432,
        "database": "sales",
        "user": "reader",
        "sslmode": "require",
    }
    assert spec.targets == (("db.example.com", 6432),)


def test_engines_not_served_here_answer_none() -> None:
    assert check_connection("sqlite", {"path": "x.db"}) is None


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"url": "jdbc:postgresql://evil/x"}, "url"),
        ({"socketFactory": "org.example.Evil"}, "socketFactory"),
        ({"host": "db/evil?x=1"}, "host"),
        ({"host": "a@b"}, "host"),
        ({"port": 70000}, "port"),
        ({"sslmode": "sometimes"}, "sslmode"),
        ({"user": "line\nbreak"}, "user"),
        ({"database": ""}, "database"),
    ],
)
def test_bad_or_undocumented_parameters_are_refused_by_name(
    change: dict[str, object], field: str
) -> None:
    with pytest.raises(Unprocessable) as caught:
        check_connection("postgres", {**CONNECTION, **change})
    assert ["body", "connection", field] in [error["loc"] for error in caught.value.errors or []]


def test_a_missing_parameter_is_named() -> None:
    with pytest.raises(Unprocessable) as caught:
        check_connection("mysql", {"host": "h", "user": "u", "password": "p"})
    assert [e["loc"] for e in caught.value.errors or []] == [["body", "connection", "database"]]


def test_the_postgres_catalog_keeps_every_column_and_cannot_be_given_driver_options() -> None:
    definition = catalog_definition("postgres", {**CONNECTION, "database": "a?socketFactory=x&b"})
    assert definition.connector == "postgresql"
    url = definition.properties["connection-url"]
    # The database is percent-encoded whole: it adds no option to the URL.
    assert (
        url
        == "jdbc:postgresql://db.example.com:5432/a%3FsocketFactory%3Dx%26b?ApplicationName=weaver"
    )
    assert definition.properties["connection-password"] == "s3cret'pw"
    assert definition.properties["decimal-mapping"] == "ALLOW_OVERFLOW"
    assert definition.properties["decimal-default-scale"] == "2"
    assert definition.secrets == ["s3cret'pw"]
    assert definition.only_schema is None


def test_mysql_catalogs_name_no_database_and_introspect_only_theirs() -> None:
    definition = catalog_definition("mysql", {**CONNECTION, "host": "::1"})
    assert definition.properties["connection-url"] == "jdbc:mysql://[::1]:3306"
    assert definition.only_schema == "sales"


def test_create_catalog_quotes_every_value_as_a_string_literal() -> None:
    definition = catalog_definition("postgres", CONNECTION)
    statement = create_catalog("w_0123456789ab_sales", definition.connector, definition.properties)
    assert statement.startswith('CREATE CATALOG "w_0123456789ab_sales" USING postgresql WITH (')
    assert "\"connection-password\" = 's3cret''pw'" in statement
    assert "\"decimal-default-scale\" = '2'" in statement
    assert literal("it's") == "'it''s'"


def test_only_internal_names_are_catalog_names() -> None:
    with pytest.raises(ValueError, match="not a catalog name"):
        create_catalog('x"; DROP CATALOG y; --', "postgresql", {})


def test_the_staging_name_is_one_no_datasource_can_have() -> None:
    staging = staging_name("w_0123456789ab_sales")
    assert staging == "wr_0123456789ab_sales"
    assert not staging.startswith("w_")
