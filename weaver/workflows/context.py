"""Schema context for a question: the tables a text-to-SQL agent most likely needs, with
their columns, keys and glossary terms and the joins among them, in a bounded size.

The score is simple and explainable. The question is cut into words (letters and digits,
lower-cased, a plural ``s``/``es``/``ies`` taken off, a few filler words dropped); so are
table and column names (at ``_``, ``-``, spaces and camelCase) and glossary terms and
synonyms. For each distinct word of the question a table earns

* ``TABLE_WEIGHT`` (5) when the word is a word of the table's name,
* ``COLUMN_WEIGHT`` (2) when it is a word of one of its columns' names,
* ``GLOSSARY_WEIGHT`` (3) when it is a word of a glossary term or synonym linked to one
  of its columns,

each at most once per word. Tables scoring nothing are left out; the rest are ranked by
score, ties by ``datasource.schema.table``. So "revenue by customer country" ranks
``customers`` (customer in the name, country a column) above ``orders`` (a
``customer_id`` column), and a ``Revenue`` term linked to ``orders.amount`` adds 3 to
``orders``.

The answer is built in rank order — the first table, the second, the joins between them,
the third, its joins with the two before it, … — and stops before the first piece that
would make the body longer than ``max_chars`` characters, so what is dropped is always
the lowest-ranked content. When not even the first table fits whole, it comes with as
many of its columns as fit (in ordinal order). The same catalog and question give the
same bytes: every list is sorted, and nothing depends on time or chance.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from weaver.host import Host
from weaver.types import Datasource, GlossaryTerm, JoinHop, SchemaGraph, Table, TableName
from weaver.values import dumps
from weaver.workflows.agents import (
    DEFAULT_MAX_HOPS,
    bridges_of,
    glossary_terms,
    paths_between,
    render_join,
    tenant_graphs,
)

TABLE_WEIGHT = 5
COLUMN_WEIGHT = 2
GLOSSARY_WEIGHT = 3
DEFAULT_MAX_TABLES = 8
MAX_TABLES = 20
DEFAULT_MAX_CHARS = 12_000
# Words that say how to ask, not what about.
STOP_WORDS = frozenset(
    (
        *("a", "an", "and", "are", "as", "at", "be", "by", "each", "for", "from", "how"),
        *("i", "in", "is", "it", "me", "many", "much", "of", "on", "or", "per", "show"),
        *("than", "that", "the", "their", "there", "to", "what", "when", "where", "which"),
        *("who", "with"),
    )
)
_WORDS = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|\d+")


def words(text: str) -> set[str]:
    """The words of a name or a question, lower-cased and singular."""
    found = set()
    for word in _WORDS.findall(text):
        word = word.lower()
        if word in STOP_WORDS:
            continue
        if word.endswith("ies") and len(word) > 4:
            word = word[:-3] + "y"
        elif word.endswith(("ses", "xes", "zes", "ches", "shes")):
            word = word[:-2]
        elif word.endswith("s") and not word.endswith("ss") and len(word) > 3:
            word = word[:-1]
        found.add(word)
    return found


@dataclass
class Candidate:
    datasource: Datasource
    table: Table
    terms: dict[str, list[GlossaryTerm]]  # by column name
    score: int = 0
    matched: list[str] = field(default_factory=list)

    @property
    def name(self) -> TableName:
        return TableName(self.datasource.name, self.table.schema, self.table.name)


def score(candidate: Candidate, question: set[str]) -> None:
    table_words = words(candidate.table.name)
    column_words = {c.name: words(c.name) for c in candidate.table.columns}
    term_words = {
        term.term: set().union(words(term.term), *(words(s) for s in term.synonyms))
        for linked in candidate.terms.values()
        for term in linked
    }
    for word in sorted(question):
        if word in table_words:
            candidate.score += TABLE_WEIGHT
            candidate.matched.append(f"{word}: table name")
        columns = sorted(name for name, found in column_words.items() if word in found)
        if columns:
            candidate.score += COLUMN_WEIGHT
            candidate.matched.append(f"{word}: column {columns[0]}")
        terms = sorted(term for term, found in term_words.items() if word in found)
        if terms:
            candidate.score += GLOSSARY_WEIGHT
            candidate.matched.append(f"{word}: glossary term {terms[0]}")


def rank(
    question: str,
    graphs: Iterable[tuple[Datasource, SchemaGraph]],
    terms: Sequence[GlossaryTerm],
    max_tables: int,
) -> list[Candidate]:
    asked = words(question)
    linked: dict[tuple[str, str, str], dict[str, list[GlossaryTerm]]] = {}
    for term in terms:
        for path in term.columns:
            parts = path.split(".", 3)
            if len(parts) == 4:
                by_column = linked.setdefault((parts[0], parts[1], parts[2]), {})
                by_column.setdefault(parts[3], []).append(term)
    candidates = []
    for datasource, graph in graphs:
        for table in graph.tables:
            key = (datasource.name, table.schema, table.name)
            candidate = Candidate(datasource, table, linked.get(key, {}))
            score(candidate, asked)
            if candidate.score > 0:
                candidates.append(candidate)
    candidates.sort(key=lambda c: (-c.score, c.name))
    return candidates[:max_tables]


def render_table(candidate: Candidate, column_count: int | None = None) -> dict[str, Any]:
    table = candidate.table
    columns = sorted(table.columns, key=lambda c: c.ordinal)
    shown = columns if column_count is None else columns[:column_count]
    terms = sorted(
        {term.term: term for linked in candidate.terms.values() for term in linked}.values(),
        key=lambda term: term.term.lower(),
    )
    body: dict[str, Any] = {
        "table": str(candidate.name),
        "score": candidate.score,
        "matched": candidate.matched,
        "columns": [
            {
                "name": column.name,
                "data_type": column.data_type,
                "nullable": column.nullable,
                "primary_key": column.primary_key,
                "references": (
                    f"{candidate.datasource.name}.{ref.schema}.{ref.table}.{ref.column}"
                    if (ref := column.references) is not None
                    else None
                ),
                "glossary": sorted(t.term for t in candidate.terms.get(column.name, ())),
            }
            for column in shown
        ],
        "glossary": [{"term": t.term, "definition": t.definition} for t in terms],
    }
    if table.row_count is not None:
        body["row_count"] = table.row_count
    if candidate.datasource.description:
        body["datasource_description"] = candidate.datasource.description
    if column_count is not None and column_count < len(columns):
        body["columns_omitted"] = len(columns) - column_count
    return body


def _document(tables: list[dict[str, Any]], joins: list[dict[str, Any]], cut: bool) -> bytes:
    return dumps({"tables": tables, "join_paths": joins, "truncated": cut})


def _fits(document: bytes, max_chars: int) -> bool:
    # Characters, not bytes: a name in Hangul is one character in three bytes.
    return len(document) <= max_chars or len(document.decode()) <= max_chars


async def context(
    host: Host,
    tenant_id: str,
    question: str,
    *,
    max_tables: int = DEFAULT_MAX_TABLES,
    max_chars: int = DEFAULT_MAX_CHARS,
) -> bytes:
    """The context document for ``question`` as JSON bytes, at most ``max_chars``
    characters: ``{"tables": [...], "join_paths": [...], "truncated": bool}``."""
    graphs = await tenant_graphs(host, tenant_id)
    terms = await glossary_terms(host, tenant_id)
    chosen = rank(question, graphs, terms, max_tables)
    bridges: list[JoinHop] = bridges_of(terms, graphs)
    tables: list[dict[str, Any]] = []
    joins: list[dict[str, Any]] = []
    document = _document(tables, joins, False)
    for index, candidate in enumerate(chosen):
        rendered = render_table(candidate)
        attempt = _document([*tables, rendered], joins, False)
        if not _fits(attempt, max_chars):
            if not tables:
                return _first_table_cut(candidate, max_chars)
            return _document(tables, joins, True)
        tables.append(rendered)
        document = attempt
        for earlier in chosen[:index]:
            answers = await paths_between(
                host,
                tenant_id,
                earlier.name,
                candidate.name,
                max_hops=DEFAULT_MAX_HOPS,
                bridges=bridges,
            )
            for answer in answers[:1]:
                found = {
                    "from": str(earlier.name),
                    "to": str(candidate.name),
                    **render_join(answer),
                }
                attempt = _document(tables, [*joins, found], False)
                if not _fits(attempt, max_chars):
                    return _document(tables, joins, True)
                joins.append(found)
                document = attempt
    return document


def _first_table_cut(candidate: Candidate, max_chars: int) -> bytes:
    """The best-ranked table with as many columns as fit (none fit: no table)."""
    low, high = 0, len(candidate.table.columns)
    best = _document([], [], True)
    while low <= high:
        middle = (low + high) // 2
        document = _document([render_table(candidate, middle)], [], True)
        if _fits(document, max_chars):
            best, low = document, middle + 1
        else:
            high = middle - 1
    return best
