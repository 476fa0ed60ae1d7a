"""MindsDB statements that Weaver itself writes: CREATE/ALTER/DROP DATABASE, native queries.

Nothing here takes tenant SQL. Names are internal names (``[a-z0-9_]``) and parameter
values are checked to survive MindsDB's own parser unchanged: the statement is read back
with `mindsdb_sql_parser` (the version MindsDB 26.1 runs) and compared with what was meant.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping

from mindsdb_sql_parser import parse_sql
from mindsdb_sql_parser.ast import NativeQuery
from mindsdb_sql_parser.ast.mindsdb import AlterDatabase, CreateDatabase

_INTERNAL_NAME = re.compile(r"^[a-z0-9_]{1,128}$")


class UnrepresentableParameter(ValueError):
    """A parameter value that MindsDB's parser would not read back as written."""

    def __init__(self, key: str) -> None:
        super().__init__(
            f"connection parameter {key!r} holds characters MindsDB's SQL cannot carry "
            "(both kinds of quote, or a backslash before a quote)"
        )
        self.key = key


def quote_name(name: str) -> str:
    """A MindsDB database name, quoted. Only internal names are ever quoted here, so
    anything but ``[a-z0-9_]`` is a bug upstream and is refused rather than escaped."""
    if not _INTERNAL_NAME.fullmatch(name):
        raise ValueError(f"not an internal database name: {name!r}")
    return f"`{name}`"


class _Unreadable(ValueError):
    pass


def _string_literal(value: str) -> str:
    # MindsDB's lexer knows no escapes beyond \" and \', and un-doubles "" and '': a value
    # is written inside the quote it does not contain, untouched, and read back to prove
    # it survives (a value with both quotes, or a backslash before a quote, does not).
    quote = '"' if '"' not in value else "'"
    literal = f"{quote}{value}{quote}"
    try:
        parsed = parse_sql(f"SELECT {literal}")
        read_back = parsed.targets[0].value if len(parsed.targets) == 1 else None
    except Exception:  # the parser raises several unrelated exception types
        read_back = None
    if read_back != value:
        raise _Unreadable
    return literal


def _value_literal(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return json.dumps(value)
    if isinstance(value, str):
        return _string_literal(value)
    if isinstance(value, Mapping):
        # A handler's nested options (postgres' ``connection_parameters``).
        return _object_literal(value)
    raise TypeError(f"unsupported parameter type {type(value).__name__}")


def _object_literal(parameters: Mapping[str, object]) -> str:
    items = (
        f"{_string_literal(key)}: {_value_literal(value)}" for key, value in parameters.items()
    )
    return "{" + ", ".join(items) + "}"


def parameters_literal(parameters: Mapping[str, object]) -> str:
    """The ``PARAMETERS = {...}`` object of CREATE/ALTER DATABASE; raises
    `UnrepresentableParameter` for a value MindsDB would read differently."""
    items = []
    for key, value in parameters.items():
        try:
            items.append(f"{_string_literal(key)}: {_value_literal(value)}")
        except _Unreadable:
            raise UnrepresentableParameter(key) from None
    return "{" + ", ".join(items) + "}"


def _read_back(parsed: object, parameters: Mapping[str, object]) -> None:
    """Raise unless ``parsed`` (what MindsDB's parser made of a whole statement) carries
    exactly ``parameters``."""
    if parsed != dict(parameters):
        raise ValueError("the parameters did not read back as written")


def create_database(name: str, engine: str, parameters: Mapping[str, object]) -> str:
    """``CREATE DATABASE`` for ``name``; raises `UnrepresentableParameter` when MindsDB
    would read a value differently from how it is written."""
    statement = (
        f"CREATE DATABASE {quote_name(name)} WITH ENGINE = {_string_literal(engine)}, "
        f"PARAMETERS = {parameters_literal(parameters)}"
    )
    parsed = parse_sql(statement)
    if not isinstance(parsed, CreateDatabase) or parsed.engine != engine:
        raise ValueError("CREATE DATABASE did not read back as written")
    _read_back(parsed.parameters, parameters)
    return statement


def alter_database(name: str, parameters: Mapping[str, object]) -> str:
    """``ALTER DATABASE`` for ``name``: MindsDB tests the new parameters and keeps the old
    definition if they fail (26.1 ``IntegrationController.modify``)."""
    statement = f"ALTER DATABASE {quote_name(name)} PARAMETERS = {parameters_literal(parameters)}"
    parsed = parse_sql(statement)
    if not isinstance(parsed, AlterDatabase) or set(parsed.params) != {"parameters"}:
        raise ValueError("ALTER DATABASE did not read back as written")
    _read_back(parsed.params["parameters"], parameters)
    return statement


def drop_database(name: str) -> str:
    return f"DROP DATABASE IF EXISTS {quote_name(name)}"


def native_query(name: str, native_sql: str) -> str:
    """``SELECT * FROM <name> (<native sql>)``: ``native_sql`` runs verbatim on the source.

    Only the gateway's own catalog queries go through here, never tenant text (the
    execute path refuses this form outright). The statement is read back to prove the
    inner text reaches the source unchanged (a quoted source name MindsDB's lexer
    misreads would otherwise shift where the native text ends).
    """
    statement = f"SELECT * FROM {quote_name(name)} ({native_sql})"
    try:
        parsed = parse_sql(statement)
    except Exception:  # the parser raises several unrelated exception types
        parsed = None
    source = getattr(parsed, "from_table", None)
    if not isinstance(source, NativeQuery) or source.query != native_sql:
        raise ValueError("the native query does not read back as written")
    return statement
