"""What text-to-SQL agents ask for beside plain queries: join paths between tables, a few
sample rows, whole answers in memory. REST (`weaver.api.agents`) and MCP
(`weaver.mcp.tools`) call these, so both answer alike.

Join paths come from the graph store's `find_join_paths`. Between datasources there are
no foreign keys; the glossary says where two of them meet: a term linking columns of
the same name and a compatible type in two datasources makes those columns a *bridge*,
a join like a foreign key. The core derives the bridges (`glossary_bridges`) and hands
them to the store, because the glossary may live in another store than the graph (the
pg plugin's, beside Neo4j's) and no graph store should read another plugin's records.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlglot import exp

from weaver.errors import Unprocessable, field_error
from weaver.host import Host
from weaver.joins import MAX_HOPS
from weaver.queries.service import QueryService
from weaver.types import (
    Datasource,
    GlossaryTerm,
    JoinHop,
    JoinPath,
    JoinPathRequest,
    Page,
    Principal,
    QueryResult,
    QueryVia,
    ResultColumn,
    SchemaGraph,
    Table,
    TableName,
)
from weaver.values import dumps, jsonable_row
from weaver.workflows.catalog import require_graph, require_table
from weaver.workflows.datasources import require_datasource

DEFAULT_MAX_HOPS = 4
# Shortest paths listed per pair of tables: more are equally short, and an agent needs one.
MAX_PATHS = 10
SAMPLE_DEFAULT_ROWS = 10
SAMPLE_MAX_ROWS = 100
# Glossary terms read per page while collecting bridges and context.
_TERMS_PAGE = 500


def out_of_range(field: str, most: int) -> Unprocessable:
    """The 422 for a count outside 1 to ``most``, shaped as the API's validation says it."""
    return Unprocessable(
        f"{field} must be between 1 and {most}",
        errors=[field_error(["query", field], f"at most {most}", "less_than_equal")],
    )


def parse_table_name(text: str, field: str) -> TableName:
    """``datasource.schema.table`` (a table name may hold dots; the first two split)."""
    parts = text.split(".", 2)
    if len(parts) != 3 or not all(parts):
        raise Unprocessable(
            f"{field} must name a table as datasource.schema.table",
            errors=[field_error(["query", field], "expected datasource.schema.table", "table")],
        )
    return TableName(*parts)


@dataclass(frozen=True, slots=True)
class CatalogTable:
    """A table of the tenant's synced catalog, with the graph it is part of."""

    datasource: Datasource
    graph: SchemaGraph
    table: Table

    @property
    def name(self) -> TableName:
        return TableName(self.datasource.name, self.table.schema, self.table.name)


async def require_catalog_table(host: Host, tenant_id: str, name: TableName) -> CatalogTable:
    """The table in the tenant's synced catalog; 404 naming what is missing."""
    datasource = await require_datasource(host, tenant_id, name.datasource)
    graph = await require_graph(host, datasource)
    return CatalogTable(datasource, graph, require_table(graph, name.schema, name.table))


async def tenant_graphs(host: Host, tenant_id: str) -> list[tuple[Datasource, SchemaGraph]]:
    """Every synced graph of the tenant, by datasource name."""
    graphs = []
    after: str | None = None
    while True:
        page = await host.list_datasources(tenant_id, Page(limit=100, after=after))
        for datasource in page:
            graph = await host.load_metadata(datasource)
            if graph is not None:
                graphs.append((datasource, graph))
        if len(page) < 100:
            return graphs
        after = page[-1].name


async def glossary_terms(host: Host, tenant_id: str) -> list[GlossaryTerm]:
    terms: list[GlossaryTerm] = []
    after: str | None = None
    while True:
        page = await host.list_glossary_terms(tenant_id, None, Page(_TERMS_PAGE, after))
        terms.extend(page)
        if len(page) < _TERMS_PAGE:
            return terms
        after = page[-1].term.lower()


# Type families whose values compare equal across engines: `integer` and `bigint` join,
# `integer` and `text` do not.
_TYPE_FAMILIES = (
    ("number", re.compile(r"int|serial|numeric|decimal|number|real|float|double|money")),
    ("text", re.compile(r"char|text|string|clob")),
    ("time", re.compile(r"date|time")),
    ("boolean", re.compile(r"bool|bit")),
    ("uuid", re.compile(r"uuid|uniqueidentifier")),
    ("binary", re.compile(r"blob|binary|bytea")),
)


def type_family(data_type: str) -> str:
    """The family of a column type as an engine spells it; an unknown type is its own."""
    spelled = data_type.lower().split("(", 1)[0].strip()
    for family, pattern in _TYPE_FAMILIES:
        if pattern.search(spelled):
            return family
    return spelled


def bridges_of(
    terms: Iterable[GlossaryTerm], graphs: Iterable[tuple[Datasource, SchemaGraph]]
) -> list[JoinHop]:
    """Joins between datasources that glossary terms make: two columns one term links,
    in two datasources, with the same name (ignoring case) and types of one family."""
    types: dict[tuple[str, str, str, str], str] = {
        (datasource.name, table.schema, table.name, column.name): column.data_type
        for datasource, graph in graphs
        for table in graph.tables
        for column in table.columns
    }
    bridges: set[JoinHop] = set()
    for term in terms:
        linked = []
        for path in term.columns:
            parts = path.split(".", 3)
            if len(parts) == 4 and tuple(parts) in types:
                linked.append(parts)
        for index, (ds, schema, table, column) in enumerate(linked):
            for other in linked[index + 1 :]:
                if other[0] == ds or other[3].lower() != column.lower():
                    continue
                left = (ds, schema, table, column)
                right = (other[0], other[1], other[2], other[3])
                if type_family(types[left]) != type_family(types[right]):
                    continue
                first, second = sorted([left, right])
                bridges.add(
                    JoinHop(TableName(*first[:3]), first[3], TableName(*second[:3]), second[3])
                )
    return sorted(bridges)


async def glossary_bridges(host: Host, tenant_id: str) -> list[JoinHop]:
    terms = [term for term in await glossary_terms(host, tenant_id) if len(term.columns) > 1]
    if not terms:
        return []
    named = {path.split(".", 1)[0] for term in terms for path in term.columns}
    graphs = [(d, g) for d, g in await tenant_graphs(host, tenant_id) if d.name in named]
    return bridges_of(terms, graphs)


@dataclass(frozen=True, slots=True)
class JoinAnswer:
    path: JoinPath
    sql: str


def _quoted(name: str) -> exp.Identifier:
    # Always quoted: the catalog has each name exactly as the source spells it, and an
    # unquoted `Customers` would be folded to another name by PostgreSQL.
    return exp.to_identifier(name, quoted=True)


def table_expression(name: TableName, alias: str | None = None) -> exp.Table:
    table = exp.Table(
        this=_quoted(name.table), db=_quoted(name.schema), catalog=_quoted(name.datasource)
    )
    if alias is not None:
        table.set("alias", exp.TableAlias(this=_quoted(alias)))
    return table


def from_clause(start: TableName, path: JoinPath, dialect: str | None) -> str:
    """``FROM <start> JOIN … ON …`` for ``path``, three-part names quoted for the engine's
    dialect, each table under an alias of its own (``t0`` is the start)."""
    select = exp.select(exp.Count(this=exp.Star())).from_(table_expression(start, "t0"))
    for index, hop in enumerate(path.hops, start=1):
        condition = exp.EQ(
            this=exp.column(_quoted(hop.from_column), table=_quoted(f"t{index - 1}")),
            expression=exp.column(_quoted(hop.to_column), table=_quoted(f"t{index}")),
        )
        select = select.join(table_expression(hop.to_table, f"t{index}"), on=condition)
    text = select.sql(dialect=dialect)
    # The statement is `SELECT COUNT(*) FROM …`: what follows the projection is the clause.
    return text[text.index(" FROM ") + 1 :]


async def join_paths(
    host: Host,
    tenant_id: str,
    start: TableName,
    end: TableName,
    *,
    max_hops: int = DEFAULT_MAX_HOPS,
    bridges: Sequence[JoinHop] | None = None,
) -> list[JoinAnswer]:
    """The shortest join paths from ``start`` to ``end`` (both in the tenant's synced
    catalog, else 404), each with the FROM clause that joins them."""
    if not 1 <= max_hops <= MAX_HOPS:
        raise out_of_range("max_hops", MAX_HOPS)
    for name in (start, end):
        await require_catalog_table(host, tenant_id, name)
    if bridges is None:
        bridges = await glossary_bridges(host, tenant_id)
    return await paths_between(host, tenant_id, start, end, max_hops=max_hops, bridges=bridges)


async def paths_between(
    host: Host,
    tenant_id: str,
    start: TableName,
    end: TableName,
    *,
    max_hops: int,
    bridges: Sequence[JoinHop],
) -> list[JoinAnswer]:
    """`join_paths` for tables known to be in the catalog, with the bridges at hand."""
    paths = await host.find_join_paths(
        JoinPathRequest(tenant_id, start, end, max_hops, tuple(bridges), MAX_PATHS)
    )
    dialect = host.sql_dialect().name
    return [JoinAnswer(path, from_clause(start, path, dialect)) for path in sorted(paths)]


def render_join(answer: JoinAnswer) -> dict[str, Any]:
    return {
        "hops": [
            {"from": f"{hop.from_table}.{hop.from_column}", "to": f"{hop.to_table}.{hop.to_column}"}
            for hop in answer.path.hops
        ],
        "sql": answer.sql,
    }


# --- rows -------------------------------------------------------------------------------


async def collect(
    queries: QueryService,
    principal: Principal,
    text: str,
    *,
    limit: int,
    timeout_seconds: float | None = None,
    via: QueryVia,
) -> QueryResult:
    """A synchronous query through the whole query path (checks, limits, slots, history
    as ``via``), its rows kept in memory: for answers of a few rows."""
    rows: list[list[Any]] = []
    columns: list[ResultColumn] = []

    async def on_columns(names: Sequence[ResultColumn]) -> None:
        columns.extend(names)

    async def on_rows(batch: Sequence[Sequence[Any]]) -> None:
        rows.extend(jsonable_row(list(row)) for row in batch)

    async with queries.run_sync(
        principal,
        text,
        limit=limit,
        timeout_seconds=timeout_seconds,
        max_rows=queries.settings.query_max_rows,
        via=via,
    ) as execution:
        pumped = await execution.stream(on_columns, on_rows)
        # What the answer's rows weigh as JSON, for the history's `bytes`.
        execution.bytes_sent = len(dumps(rows))
    return QueryResult(execution.query_id, columns, rows, pumped.truncated, pumped.elapsed_ms)


def sample_statement(name: TableName, limit: int, dialect: str | None) -> str:
    """``SELECT * FROM <table> LIMIT n``, the name quoted for the engine's dialect."""
    return exp.select(exp.Star()).from_(table_expression(name)).limit(limit).sql(dialect=dialect)


async def sample(
    host: Host,
    queries: QueryService,
    principal: Principal,
    name: TableName,
    *,
    limit: int = SAMPLE_DEFAULT_ROWS,
    via: QueryVia,
) -> QueryResult:
    """Up to ``limit`` rows of a table of the synced catalog (404 for any other), run as
    the tenant's own query would be."""
    if not 1 <= limit <= SAMPLE_MAX_ROWS:
        raise out_of_range("limit", SAMPLE_MAX_ROWS)
    await require_catalog_table(host, principal.tenant_id, name)
    text = sample_statement(name, limit, host.sql_dialect().name)
    return await collect(queries, principal, text, limit=limit, via=via)
