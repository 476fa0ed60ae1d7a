"""The Trino statements Weaver writes itself: catalogs, and queries over a catalog's own
metadata. Nothing here takes tenant SQL.

Catalog names are internal names (``[a-z0-9_]``), refused otherwise rather than escaped;
property values and pass-through queries are string literals, whose only escape in
Trino is the doubled quote.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from weaver.naming import INTERNAL_NAME_PREFIX

_CATALOG_NAME = re.compile(r"[a-z0-9_]{1,128}")
# The name a changed definition is proven under before it replaces the datasource's
# catalog: no datasource name gives it (internal names start with `w_`).
STAGING_PREFIX = "wr_"


def quote_catalog(name: str) -> str:
    if not _CATALOG_NAME.fullmatch(name):
        raise ValueError(f"not a catalog name Weaver makes: {name!r}")
    return f'"{name}"'


def quote_name(name: str) -> str:
    """A schema, table or column name read from a catalog, as a Trino identifier."""
    return '"' + name.replace('"', '""') + '"'


def literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def staging_name(internal_name: str) -> str:
    return STAGING_PREFIX + internal_name.removeprefix(INTERNAL_NAME_PREFIX)


def internal_name_of_staging(name: str) -> str | None:
    """The internal name a staging catalog stands in for; None for any other name."""
    if name.startswith(STAGING_PREFIX):
        return INTERNAL_NAME_PREFIX + name.removeprefix(STAGING_PREFIX)
    return None


def create_catalog(name: str, connector: str, properties: Mapping[str, str]) -> str:
    items = ", ".join(f"{quote_name(key)} = {literal(value)}" for key, value in properties.items())
    return f"CREATE CATALOG {quote_catalog(name)} USING {connector} WITH ({items})"


def drop_catalog(name: str) -> str:
    return f"DROP CATALOG IF EXISTS {quote_catalog(name)}"


def pass_through(catalog: str, native_sql: str) -> str:
    """``native_sql`` run as it is on the catalog's source (the connector's ``query``
    table function); the native query must give every output column its own name."""
    return (
        f"SELECT * FROM TABLE({quote_catalog(catalog)}.system.query("
        f"query => {literal(native_sql)}))"
    )
