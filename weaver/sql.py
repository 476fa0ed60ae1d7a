"""Checking and rendering tenant SQL for the query path, once, in the core.

Every statement that reaches a query engine went through here: parsed with sqlglot (never
matched with regular expressions), proven to be one read, its datasource qualifiers
collected so the core can check the tenant owns them, then rendered as the engine's text:
its dialect, the datasources' internal names, a row limit. Engines run that text and never
rewrite trees. The engines' own guards (a read-only connection, an authorizer, database
privileges, MindsDB's second parse) stay in place behind this: it is the first line, not
the only one.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

import sqlglot
from sqlglot import exp
from sqlglot.errors import ParseError, SqlglotError

from weaver.errors import InvalidQuery, NotFound
from weaver.types import SqlDialect

# Names of engine catalogs and projects, refused wherever a datasource name can appear:
# MindsDB's projects and virtual databases, Trino's built-in and generated-data catalogs
# (`system` lists every query, with the text of each, and every node), the SQL standard's
# and the servers' own catalogs, and SQLite's schema tables and database aliases.
SYSTEM_DATABASES: frozenset[str] = frozenset(
    {
        "information_schema",
        "mindsdb",
        "files",
        "log",
        "models",
        "predictors",
        "jobs",
        "system",
        "tpch",
        "tpcds",
        "jmx",
        "memory",
        "blackhole",
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
        if isinstance(node, exp.Dot) and isinstance(node.expression, exp.Func):
            # `catalog.schema.f()`: the qualifier names no datasource the core checks or
            # renames, so it could reach any catalog of the engine (Trino resolves
            # functions stored in catalogs, and its `system` catalog's).
            raise InvalidQuery(f"call functions by their bare name, not {_excerpt(node.sql())!r}")
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


def _internal(name: str, internal_names: Mapping[str, str]) -> exp.Identifier:
    internal = internal_names.get(name.lower())
    if internal is None:
        raise NotFound(f"datasource {name.lower()!r} not found")
    return exp.to_identifier(internal)


def _collapse_schema(schema: str, single_schema: str) -> None:
    if schema.lower() != single_schema:
        raise InvalidQuery(
            f"schema {_excerpt(schema)!r} does not exist; this engine's only schema is "
            f"{single_schema!r}"
        )


def _default_schema(name: str, default_schemas: Mapping[str, str | None]) -> exp.Identifier:
    schema = default_schemas.get(name.lower())
    if schema is None:
        raise InvalidQuery(
            f"name the schema too: {name.lower()}.<schema>.<table> (this datasource has "
            "no default schema)"
        )
    return exp.to_identifier(schema)


def _rewrite_qualifiers(
    node: exp.Table | exp.Column,
    internal_names: Mapping[str, str],
    schema_as_catalog: bool,
    single_schema: str,
    default_schemas: Mapping[str, str | None] | None,
) -> None:
    """Replace the datasource part of a Table or Column node in place.

    Tables keep their parts in (catalog, db) and columns in (catalog, db) too, so one
    rule serves both: a three-part name has the datasource as catalog, a two-part one
    as db.
    """
    catalog, db = node.args.get("catalog"), node.args.get("db")
    if catalog is not None:
        internal = _internal(catalog.name, internal_names)
        if schema_as_catalog:
            node.set("catalog", internal)
        else:
            _collapse_schema(node.text("db"), single_schema)
            node.set("catalog", None)
            node.set("db", internal)
    elif db is not None:
        internal = _internal(db.name, internal_names)
        if default_schemas is None:
            node.set("db", internal)
        else:
            node.set("db", _default_schema(db.name, default_schemas))
            node.set("catalog", internal)


def to_internal_names(
    statement: exp.Expression,
    internal_names: Mapping[str, str],
    *,
    schema_as_catalog: bool = True,
    single_schema: str = "main",
    default_schemas: Mapping[str, str | None] | None = None,
) -> exp.Expression:
    """A copy of ``statement`` with every datasource qualifier replaced by the
    datasource's internal name.

    ``internal_names`` maps lower-cased public names to internal ones. With
    ``schema_as_catalog`` (the default, for engines with schemas) ``ds.schema.table`` becomes
    ``internal.schema.table``. Without it, for an engine that has one schema per
    datasource (SQLite's ``main``), ``ds.<single_schema>.table`` becomes
    ``internal.table`` and any other schema is refused with `InvalidQuery`. Column
    qualifiers (``ds.table.col``) are rewritten the same way.

    With ``default_schemas`` (lower-cased public name → schema, for an engine that
    reads a two-part name as ``schema.table``: `SqlDialect.default_schemas`), a two-part
    ``ds.table`` becomes ``internal.<schema>.table``, and is refused with `InvalidQuery`
    for a datasource without a default schema.
    """
    rewritten = statement.copy()
    for node in list(rewritten.walk()):
        if isinstance(node, exp.Table) and not isinstance(node.this, exp.Identifier):
            continue
        if isinstance(node, exp.Table | exp.Column):
            _rewrite_qualifiers(
                node, internal_names, schema_as_catalog, single_schema, default_schemas
            )
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


# Statements longer than this are checked and rendered every time: the caches' memory
# must not depend on what tenants choose to send.
CACHED_STATEMENT_CHARS = 4096
CACHED_STATEMENTS = 1024


@dataclass(frozen=True, slots=True)
class CheckedStatement:
    """A tenant statement proven to be one read, and the datasources it names."""

    tree: exp.Expression
    datasources: tuple[str, ...]


def check(text: str, dialect: str | None) -> CheckedStatement:
    """The parsed, checked statement. Short statements are remembered, because dashboards
    send the same SQL again and again and parsing costs more than a small query. The tree
    is shared: whoever changes it must copy it (`to_internal_names` does)."""
    if len(text) > CACHED_STATEMENT_CHARS:
        return _check(text, dialect)
    return _cached_check(text, dialect)


def _check(text: str, dialect: str | None) -> CheckedStatement:
    statement = parse_read_only(text, dialect)
    return CheckedStatement(statement, tuple(sorted(referenced_datasources(statement))))


_cached_check = functools.lru_cache(maxsize=CACHED_STATEMENTS)(_check)


def render(
    text: str,
    dialect: SqlDialect,
    internal_names: tuple[tuple[str, str], ...],
    limit: int,
    engines: tuple[tuple[str, str], ...] = (),
) -> str:
    """The engine's text of tenant statement ``text``: ``dialect``, every datasource
    renamed by ``internal_names`` (sorted ``(public, internal)`` pairs), at most ``limit``
    rows. ``engines`` (sorted ``(public, datasource engine)`` pairs) choose each
    datasource's default schema when the dialect has `SqlDialect.default_schemas`.
    Remembered by value for short statements, so a repeated query is neither rewritten
    nor rendered again."""
    if len(text) > CACHED_STATEMENT_CHARS:
        return _render(text, dialect, internal_names, limit, engines)
    return _cached_render(text, dialect, internal_names, limit, engines)


def _render(
    text: str,
    dialect: SqlDialect,
    internal_names: tuple[tuple[str, str], ...],
    limit: int,
    engines: tuple[tuple[str, str], ...],
) -> str:
    default_schemas = None
    if dialect.default_schemas is not None:
        by_engine = dict(dialect.default_schemas)
        default_schemas = {name: by_engine.get(engine) for name, engine in engines}
    statement = to_internal_names(
        check(text, dialect.name).tree,
        dict(internal_names),
        schema_as_catalog=dialect.schemas,
        single_schema=dialect.single_schema,
        default_schemas=default_schemas,
    )
    # One copy of the tenant's tree, made by the rewrite; the rest works on that copy.
    return with_limit(statement, limit, copy=False).sql(dialect=dialect.name, copy=False)


_cached_render = functools.lru_cache(maxsize=CACHED_STATEMENTS)(_render)
