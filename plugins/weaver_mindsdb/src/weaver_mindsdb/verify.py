"""The last check before a tenant's statement is sent: read it as MindsDB will.

The core has already parsed the tenant's SQL with sqlglot, refused writes, and rewritten
the datasource names. Two parsers can disagree, though, and MindsDB has forms of its own
that sqlglot knows nothing about — above all ``SELECT * FROM db (native sql)``, which runs
its inner text on the source unchecked. So the rendered text is parsed again with
MindsDB's own parser and has to be one query, built only from ordinary expression nodes,
reading only the tables of the datasources the core resolved.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator
from functools import lru_cache

from mindsdb_sql_parser import ast, parse_sql
from mindsdb_sql_parser.ast import ASTNode, Identifier, Join
from mindsdb_sql_parser.ast.select.union import CombiningQuery

from weaver.errors import InvalidQuery

# Every node a read may be made of. Anything else (a native query, a variable, a
# parameter, MindsDB's LAST/LATEST, a nested statement) refuses the statement.
_QUERY_NODES = (ast.Select, CombiningQuery)
_ALLOWED_NODES = (
    *_QUERY_NODES,
    ast.BetweenOperation,
    ast.BinaryOperation,
    ast.Case,
    ast.CommonTableExpression,
    ast.Constant,
    ast.Exists,
    ast.Function,
    ast.Identifier,
    ast.Interval,
    ast.Join,
    ast.NotExists,
    ast.OrderBy,
    ast.Star,
    ast.Tuple,
    ast.TypeCast,
    ast.UnaryOperation,
    ast.WindowFunction,
)
# MindsDB's LAST is a Constant subclass with its own meaning (the previous run of a job).
_REFUSED_CONSTANTS = ("Last",)
# Reading a statement with MindsDB's parser costs about a millisecond per hundred
# characters, most of the plugin's own overhead; dashboards send the same statements
# again and again, so accepted ones are remembered (short ones only, to bound memory).
_CACHED_STATEMENTS = 4096
_CACHEABLE_LENGTH = 4096


def _children(value: object) -> Iterator[object]:
    if isinstance(value, ASTNode):
        yield from vars(value).values()
    elif isinstance(value, list | tuple):
        yield from value
    elif isinstance(value, dict):
        yield from value.values()


def _walk(root: ASTNode) -> Iterator[ASTNode]:
    stack: list[object] = [root]
    while stack:
        value = stack.pop()
        if isinstance(value, ASTNode):
            yield value
        stack.extend(_children(value))


def _refuse(reason: str) -> InvalidQuery:
    return InvalidQuery(f"the query engine would not read this as a plain query: {reason}")


def _check_source(source: object, internal_names: Collection[str], cte_names: set[str]) -> None:
    """A FROM item: a datasource table, a CTE, a subquery, or a join of those."""
    if isinstance(source, Join):
        _check_source(source.left, internal_names, cte_names)
        _check_source(source.right, internal_names, cte_names)
    elif isinstance(source, _QUERY_NODES):
        return  # a subquery is checked as a query of its own
    elif isinstance(source, Identifier):
        parts = [str(part).lower() for part in source.parts]
        if len(parts) == 1 and parts[0] in cte_names:
            return
        if len(parts) < 2 or parts[0] not in internal_names:
            raise _refuse("it reads a table outside the named datasources")
    else:
        raise _refuse(f"{type(source).__name__} is not a table")


def verify_rendered(sql: str, internal_names: Collection[str]) -> None:
    """Raise `InvalidQuery` unless MindsDB reads ``sql`` as one plain query over tables
    whose first name part is one of ``internal_names``."""
    allowed = frozenset(name.lower() for name in internal_names)
    if len(sql) <= _CACHEABLE_LENGTH:
        _verify_remembered(sql, allowed)
    else:
        _verify(sql, allowed)


@lru_cache(maxsize=_CACHED_STATEMENTS)
def _verify_remembered(sql: str, allowed_tables: frozenset[str]) -> None:
    # A refusal raises, and lru_cache keeps only what returned: refused statements are
    # checked afresh every time.
    _verify(sql, allowed_tables)


def _verify(sql: str, allowed_tables: frozenset[str]) -> None:
    try:
        tree = parse_sql(sql)
    except Exception:  # the parser raises several unrelated exception types
        raise _refuse("MindsDB's parser does not accept it") from None
    if not isinstance(tree, _QUERY_NODES):
        raise _refuse(f"it is a {type(tree).__name__}, not a query")
    nodes = list(_walk(tree))
    cte_names = {
        str(node.name.parts[-1]).lower()
        for node in nodes
        if isinstance(node, ast.CommonTableExpression)
    }
    for node in nodes:
        if not isinstance(node, _ALLOWED_NODES) or type(node).__name__ in _REFUSED_CONSTANTS:
            raise _refuse(f"{type(node).__name__} is not allowed")
        if isinstance(node, ast.Select):
            if node.using or node.mode:
                raise _refuse("USING and locking clauses are not allowed")
            if node.from_table is not None:
                _check_source(node.from_table, allowed_tables, cte_names)
