"""How a statement is recognised on a PostgreSQL source: ``application_name``.

MindsDB re-renders every statement, so a comment never reaches the source, and while a
statement runs ``pg_stat_activity.query`` shows only ``FETCH FORWARD 10000 FROM
"mindsdb_<n>"``, the same for every query of a pooled handler. Two names are visible:

* each datasource's MindsDB database connects with ``application_name`` =
  ``weaver:ds=<internal name>`` (`datasource_application_name`): Weaver's connections,
  per datasource, for an operator looking at the source;
* each query MindsDB pushes down whole runs ``set_config('application_name',
  'weaver:q=<query id>', true)`` once, in a scalar subquery of a wrapper around the
  statement (`tag_statement`): PostgreSQL evaluates it once, at the first FETCH, and the
  name holds until the cursor's transaction ends. That is what `weaver_mindsdb.cancel`
  looks for. The core refuses ``set_config`` in tenant SQL, so no tenant can forge it.
"""

from __future__ import annotations

import re

# PostgreSQL keeps the first 63 bytes of an application_name (NAMEDATALEN - 1).
MAX_APPLICATION_NAME = 63
QUERY_TAG_PREFIX = "weaver:q="
# Query ids are URL-safe tokens; anything else is not put into SQL text.
_QUERY_ID = re.compile(r"^[A-Za-z0-9_-]{1,48}$")
# Wrapped in a subquery, MindsDB 26.1 plans a WITH of its own instead of pushing the
# whole statement down, and evaluates the wrapper itself (it knows no set_config).
_LEADING_WITH = re.compile(r"^\s*\(*\s*WITH\b", re.IGNORECASE)


def datasource_application_name(internal_name: str) -> str:
    return f"weaver:ds={internal_name}"[:MAX_APPLICATION_NAME]


def query_tag(query_id: str) -> str | None:
    """The application_name a query's statement runs under; None for an id that is not
    a plain token (never the case for the core's ids)."""
    if not _QUERY_ID.fullmatch(query_id):
        return None
    return f"{QUERY_TAG_PREFIX}{query_id}"


def can_tag(sql: str) -> bool:
    """Whether wrapping keeps ``sql`` pushed down whole: not a statement that starts
    with WITH."""
    return _LEADING_WITH.match(sql) is None


def tag_statement(sql: str, tag: str) -> str:
    """``sql`` (one checked query) wrapped so that the source runs it under ``tag``.

    The wrapper selects every column of the statement unchanged, and the guard is a
    one-time filter (an InitPlan), so rows, their order and their names are the
    statement's own; its cost is one function call per query.
    """
    return (
        f"SELECT * FROM ({sql}) AS weaver_tagged "
        f"WHERE (SELECT set_config('application_name', '{tag}', true)) IS NOT NULL"
    )
