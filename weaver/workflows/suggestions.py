"""``did you mean …``: close names for the tables and columns a failed statement names
that the tenant's catalog does not have.

Engines word an unknown name each in their own way, so the names come from the
statement, not from the message: every table it reads is looked up in the synced graph
of its datasource, every column among the columns of those tables (and the aliases the
statement defines). Candidates are only the tenant's own datasources' names — the
datasources the statement named, which the core has already checked belong to the
tenant — so no name of another tenant can be suggested.
"""

from __future__ import annotations

import difflib
import logging

from sqlglot import exp

from weaver import sql
from weaver.errors import QueryFailed
from weaver.host import Host
from weaver.types import Principal, SchemaGraph, Table

log = logging.getLogger(__name__)

MAX_SUGGESTIONS = 3
# difflib's ratio below which a name is not "close"; 0.6 is its default, a little
# generous for short names, which is what a typo in `nme` needs.
CUTOFF = 0.6


def _close(name: str, candidates: dict[str, str]) -> list[str]:
    """Up to three candidates (by lower-cased name, as written) close to ``name``."""
    matches = difflib.get_close_matches(name.lower(), sorted(candidates), MAX_SUGGESTIONS, CUTOFF)
    return [candidates[match] for match in matches]


def hints(text: str, dialect: str | None, graphs: dict[str, SchemaGraph]) -> list[str]:
    """For each name of ``text`` missing from ``graphs`` (by lower-cased datasource
    name), ``'<name>': did you mean '<close>', …?``; none when nothing close exists."""
    try:
        statement = sql.check(text, dialect).tree
    except Exception:  # not parseable after all: nothing to say
        return []
    found: list[str] = []
    tables: list[Table] = []
    for node in statement.find_all(exp.Table):
        datasource = (node.catalog or node.db).lower()
        graph = graphs.get(datasource)
        if graph is None:
            continue
        schema = node.db if node.catalog else None
        match = [
            t
            for t in graph.tables
            if t.name.lower() == node.name.lower()
            and (schema is None or t.schema.lower() == schema.lower())
        ]
        if match:
            tables.extend(match)
            continue
        written = ".".join(part for part in (schema, node.name) if part)
        names = {f"{t.schema}.{t.name}" if schema else t.name: t for t in graph.tables}
        close = _close(written, {key.lower(): key for key in names})
        if close:
            found.append(_sentence(written, close))
    columns = {c.name.lower(): c.name for t in tables for c in t.columns}
    defined = {a.alias.lower() for a in statement.find_all(exp.Alias)}
    defined |= {c.alias_or_name.lower() for c in statement.find_all(exp.CTE)}
    seen = set()
    for column in statement.find_all(exp.Column):
        if isinstance(column.this, exp.Star):
            continue
        name = column.name
        key = name.lower()
        if not name or key in columns or key in defined or key in seen or not tables:
            continue
        seen.add(key)
        close = _close(name, columns)
        if close:
            found.append(_sentence(name, close))
    return found


def _sentence(name: str, close: list[str]) -> str:
    return f"'{name}': did you mean {', '.join(repr(c) for c in close)}?"


async def explain(host: Host, principal: Principal, failure: QueryFailed, text: str) -> None:
    """Add close names from the tenant's catalog to ``failure``'s detail. Never fails:
    a hint that cannot be made leaves the engine's message as it was."""
    try:
        graphs: dict[str, SchemaGraph] = {}
        checked = sql.check(text, host.sql_dialect().name)
        for name in checked.datasources:
            datasource = await host.get_datasource(principal.tenant_id, name)
            graph = await host.load_metadata(datasource) if datasource is not None else None
            if graph is not None:
                graphs[name] = graph
        found = hints(text, host.sql_dialect().name, graphs)
    except Exception as error:
        log.warning("could not look for close names: %s", error)
        return
    if found:
        failure.detail = f"{failure.detail.rstrip('.')}; {' '.join(found)}"
