"""Checking and rewriting tenant SQL for the query path.

Every statement that reaches a query engine went through here: parsed with sqlglot (never
matched with regular expressions), proven to be one read, its datasource qualifiers
collected so the core can check the tenant owns them, and rewritten to the engines'
internal names. The engines' own guards (a read-only connection, an authorizer, database
privileges) stay in place behind this: it is the first line, not the only one.
"""

from __future__ import annotations

import re
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator, Mapping

import sqlglot
from sqlglot import exp
from sqlglot.errors import ParseError, SqlglotError

from weaver.errors import InvalidQuery, NotFound
from weaver.types import Datasource, PreparedQuery

# Names of engine catalogs and projects, refused wherever a datasource name can appear:
# MindsDB's projects and virtual databases, the SQL standard's and the servers' own
# catalogs, and SQLite's schema tables and database aliases.
SYSTEM_DATABASES: frozenset[str] = frozenset(
    {
        "information_schema",
        "mindsdb",
        "files",
        "log",
        "models",
        "predictors",
        "jobs",
        "pg_catalog",
        "pg_toast",
        "pg_temp",
        "sqlite_master",
        "sqlite_schema",
        "sqlite_temp_master",
        "sqlite_temp_schema",
        "sqlite_sequence",
        "performance_schema",
        "mysql",
        "sys",
        "temp",
        "main",
    }
)

# Statement kinds that write, change state or leave the SQL sandbox; any of them anywhere
# in the tree (a data-modifying CTE included) refuses the statement.
_FORBIDDEN_NODES: tuple[type, ...] = (
    exp.DML,
    exp.DDL,
    exp.Command,
    exp.Pragma,
    exp.Set,
    exp.Into,
    exp.Lock,
    exp.Attach,
    exp.Detach,
    exp.TruncateTable,
    exp.Transaction,
    exp.Commit,
    exp.Rollback,
    exp.Use,
    exp.LoadData,
    exp.Merge,
    exp.Drop,
    exp.Alter,
    exp.Analyze,
    exp.Grant,
    exp.Revoke,
    exp.Show,
    exp.Describe,
    exp.Kill,
    exp.Cache,
    exp.Uncache,
    exp.Refresh,
    exp.Declare,
    exp.Export,
    exp.Values,
    # MySQL's optimizer hints include SET_VAR, which changes session settings.
    exp.Hint,
)

# Table sources that are not a datasource's table: they read files, generate rows or reach
# outside the named datasources (MindsDB parses `ds (native sql)` as a function call).
_NON_TABLE_SOURCES: tuple[type, ...] = (exp.Lateral, exp.Unnest)

# Functions that read or write the server's files, load code, change settings or
# sequences. Engines keep their own guards; this names the well-known ones early.
_FORBIDDEN_FUNCTIONS: frozenset[str] = frozenset(
    {
        "load_extension",
        "readfile",
        "writefile",
        "edit",
        "fts3_tokenizer",
        "load_file",
        "pg_read_file",
        "pg_read_binary_file",
        "pg_ls_dir",
        "pg_stat_file",
        "pg_reload_conf",
        "pg_terminate_backend",
        "pg_cancel_backend",
        "lo_import",
        "lo_export",
        "dblink",
        "dblink_exec",
        "set_config",
        "setval",
        "nextval",
    }
)

EXCERPT_CHARS = 40


def _excerpt(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= EXCERPT_CHARS else text[: EXCERPT_CHARS - 1] + "…"


def _parse_failure(error: SqlglotError) -> InvalidQuery:
    if isinstance(error, ParseError) and error.errors:
        first = error.errors[0]
        near = _excerpt(str(first.get("highlight") or ""))
        where = f" at line {first.get('line')}, column {first.get('col')}"
        reason = str(first.get("description") or "syntax error")
        return InvalidQuery(f"could not parse SQL{where} near {near!r}: {reason}")
    return InvalidQuery("could not parse SQL")


def _kind(node: object) -> str:
    return str(getattr(node, "key", type(node).__name__)).upper()


def _function_name(node: exp.Func) -> str:
    return str(node.this if isinstance(node, exp.Anonymous) else node.sql_name()).lower()


def parse_read_only(sql: str, dialect: str | None) -> exp.Expression:
    """The single read statement in ``sql``; raises `InvalidQuery` for anything else."""
    if not sql.strip():
        raise InvalidQuery("the query is empty")
    try:
        parsed = sqlglot.parse(sql, read=dialect)
    except SqlglotError as error:
        raise _parse_failure(error) from None
    except RecursionError:
        raise InvalidQuery("the query is nested too deeply") from None
    statements = [statement for statement in parsed if statement is not None]
    if not statements:
        raise InvalidQuery("the query is empty")
    if len(statements) > 1:
        raise InvalidQuery(f"send exactly one statement, got {len(statements)}")
    candidate = statements[0]
    # `(SELECT ...)` alone is the same read; engines reject the bare parentheses.
    while isinstance(candidate, exp.Subquery) and not any(
        value for key, value in candidate.args.items() if key != "this"
    ):
        candidate = candidate.this
    if not isinstance(candidate, exp.Select | exp.SetOperation):
        raise InvalidQuery(f"only SELECT statements may be run, not {_kind(candidate)}")
    statement = candidate
    for node in statement.walk():
        # Comments are dropped so that none reaches an engine whose parser might read one
        # differently (MySQL runs the text of `/*! ... */`).
        node.comments = None
        if isinstance(node, _FORBIDDEN_NODES):
            what = "SELECT ... INTO" if isinstance(node, exp.Into) else _kind(node)
            if isinstance(node, exp.Lock):
                what = "locking reads (FOR UPDATE/SHARE)"
            raise InvalidQuery(f"only reads may be run: {what} is not allowed")
        if isinstance(node, exp.Placeholder | exp.Parameter):
            raise InvalidQuery("query parameters are not supported: write the values inline")
        if isinstance(node, exp.Func) and _function_name(node) in _FORBIDDEN_FUNCTIONS:
            raise InvalidQuery(f"function {_function_name(node)}() is not allowed")
    return statement


def _cte_names_in_scope(table: exp.Table) -> Iterator[str]:
    """CTE names visible from ``table``.

    Inside a CTE's body only the CTEs before it are (and itself, under RECURSIVE);
    elsewhere in a query, all of its CTEs are. Anything else unqualified would be looked
    up by the engine in its default database, so the scope must be exact.
    """
    child: object = table
    node = table.parent
    while node is not None:
        if isinstance(node, exp.With):
            position = next(i for i, cte in enumerate(node.expressions) if cte is child)
            visible = node.expressions[: position + 1 if node.recursive else position]
            yield from (cte.alias_or_name.lower() for cte in visible)
        elif isinstance(node, exp.Query) and not isinstance(child, exp.With):
            yield from (cte.alias_or_name.lower() for cte in node.ctes)
        child, node = node, node.parent


def _table_datasource(table: exp.Table) -> str | None:
    """The datasource part of a table reference; None for an unqualified name."""
    if not isinstance(table.this, exp.Identifier):
        if isinstance(table.this, exp.Dot):
            raise InvalidQuery(
                "name tables as <datasource>.<table> or <datasource>.<schema>.<table>"
            )
        raise InvalidQuery(f"only datasource tables may be read, not {_excerpt(table.sql())!r}")
    if table.catalog:
        return table.catalog.lower()
    if table.db:
        return table.db.lower()
    return None


def _column_datasource(column: exp.Column) -> str | None:
    """The datasource part of ``ds.table.col`` or ``ds.schema.table.col``."""
    if column.catalog:
        return column.catalog.lower()
    if column.db:
        return column.db.lower()
    return None


def _check_name(name: str) -> str:
    if name in SYSTEM_DATABASES:
        raise InvalidQuery(f"system database {name!r} is not queryable")
    return name


def referenced_datasources(statement: exp.Expression) -> set[str]:
    """Every datasource the statement names, lower-cased; refuses unqualified tables,
    system databases and table sources that are not tables."""
    names: set[str] = set()
    for node in statement.walk():
        if isinstance(node, exp.From | exp.Join) and not isinstance(
            node.this, exp.Table | exp.Subquery
        ):
            raise InvalidQuery(f"only datasource tables may be read, not {_kind(node.this)}")
        if isinstance(node, _NON_TABLE_SOURCES):
            raise InvalidQuery(f"only datasource tables may be read, not {_kind(node)}")
        if isinstance(node, exp.Table):
            datasource = _table_datasource(node)
            if datasource is None:
                if node.name.lower() in _cte_names_in_scope(node):
                    continue
                raise InvalidQuery(
                    f"name tables as <datasource>.<table>: {_excerpt(node.name)!r} has no "
                    "datasource"
                )
            names.add(_check_name(datasource))
        elif isinstance(node, exp.Column):
            datasource = _column_datasource(node)
            if datasource is not None:
                names.add(_check_name(datasource))
    return names


def _internal(name: str, datasources: Mapping[str, Datasource]) -> exp.Identifier:
    datasource = datasources.get(name.lower())
    if datasource is None:
        raise NotFound(f"datasource {name.lower()!r} not found")
    return exp.to_identifier(datasource.internal_name)


def _collapse_schema(schema: str, single_schema: str) -> None:
    if schema.lower() != single_schema:
        raise InvalidQuery(
            f"schema {_excerpt(schema)!r} does not exist; this engine's only schema is "
            f"{single_schema!r}"
        )


def _rewrite_qualifiers(
    node: exp.Table | exp.Column,
    datasources: Mapping[str, Datasource],
    schema_as_catalog: bool,
    single_schema: str,
) -> None:
    """Replace the datasource part of a Table or Column node in place.

    Tables keep their parts in (catalog, db) and columns in (catalog, db) too, so one
    rule serves both: a three-part name has the datasource as catalog, a two-part one
    as db.
    """
    catalog, db = node.args.get("catalog"), node.args.get("db")
    if catalog is not None:
        internal = _internal(catalog.name, datasources)
        if schema_as_catalog:
            node.set("catalog", internal)
        else:
            _collapse_schema(node.text("db"), single_schema)
            node.set("catalog", None)
            node.set("db", internal)
    elif db is not None:
        node.set("db", _internal(db.name, datasources))


def to_internal_names(
    statement: exp.Expression,
    datasources: Mapping[str, Datasource],
    *,
    schema_as_catalog: bool = True,
    single_schema: str = "main",
) -> exp.Expression:
    """A copy of ``statement`` with every datasource qualifier replaced by the
    datasource's ``internal_name``.

    ``datasources`` is keyed by lower-cased public name. With ``schema_as_catalog`` (the
    default, for engines with schemas) ``ds.schema.table`` becomes
    ``internal.schema.table``. Without it, for an engine that has one schema per
    datasource (SQLite's ``main``), ``ds.<single_schema>.table`` becomes
    ``internal.table`` and any other schema is refused with `InvalidQuery`. Column
    qualifiers (``ds.table.col``) are rewritten the same way.
    """
    rewritten = statement.copy()
    for node in list(rewritten.walk()):
        if isinstance(node, exp.Table) and not isinstance(node.this, exp.Identifier):
            continue
        if isinstance(node, exp.Table | exp.Column):
            _rewrite_qualifiers(node, datasources, schema_as_catalog, single_schema)
    return rewritten


def with_limit(statement: exp.Expression, limit: int, *, copy: bool = True) -> exp.Expression:
    """``statement`` returning at most ``limit`` rows (a copy, unless ``copy=False``).

    A smaller literal LIMIT the tenant wrote is kept, a larger one is lowered (its OFFSET
    stays); any other row limit (FETCH, a computed LIMIT) is wrapped in an outer query.
    """
    limited = statement.copy() if copy else statement
    existing = limited.args.get("limit")
    if existing is None:
        limited.set("limit", exp.Limit(expression=exp.Literal.number(limit)))
        return limited
    count = existing.expression if isinstance(existing, exp.Limit) else None
    if isinstance(count, exp.Literal) and not count.is_string and count.this.isdigit():
        if int(count.this) > limit:
            existing.set("expression", exp.Literal.number(limit))
        return limited
    wrapped = exp.Subquery(this=limited, alias=exp.TableAlias(this=exp.to_identifier("limited")))
    return exp.select("*").from_(wrapped, copy=False).limit(limit, copy=False)


def internal_to_public(text: str, datasources: Iterable[Datasource]) -> str:
    """``text`` (an engine's error message) with every internal name replaced by the
    public one, so a 502 detail never reveals how the engine names a datasource."""
    public_by_internal = {d.internal_name.lower(): d.name for d in datasources}
    if not public_by_internal:
        return text
    # Longest first, so an internal name that prefixes another is not replaced inside it.
    alternatives = sorted(public_by_internal, key=len, reverse=True)
    pattern = re.compile("|".join(re.escape(name) for name in alternatives), re.IGNORECASE)
    return pattern.sub(lambda match: public_by_internal[match[0].lower()], text)


_RenderKey = tuple[int, tuple[tuple[str, str], ...], int]


class RenderCache:
    """An engine's text of recent statements, rendered by ``render`` once each.

    The core hands engines one shared, checked tree per distinct SQL text, so a query a
    dashboard repeats need not be rewritten and rendered again. Entries are found by the
    tree's identity (never by sqlglot's equality, which compares hashes), together with
    the internal names it was rewritten to and the row limit. Each entry holds its tree,
    so the identity cannot be reused by another tree while the entry lives (compiled
    sqlglot trees take no weak references). Used from the event loop only.
    """

    def __init__(self, size: int, render: Callable[[PreparedQuery], str]) -> None:
        self._size = size
        self._render = render
        self._entries: OrderedDict[_RenderKey, tuple[exp.Expression, str]] = OrderedDict()

    def sql(self, query: PreparedQuery) -> str:
        names = tuple(sorted((n, d.internal_name) for n, d in query.datasources.items()))
        key = (id(query.statement), names, query.limit)
        entry = self._entries.get(key)
        if entry is not None and entry[0] is query.statement:
            self._entries.move_to_end(key)
            return entry[1]
        text = self._render(query)
        self._entries[key] = (query.statement, text)
        if len(self._entries) > self._size:
            self._entries.popitem(last=False)
        return text
