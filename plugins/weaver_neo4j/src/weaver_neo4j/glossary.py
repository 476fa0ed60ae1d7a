"""Glossary links as edges of the schema graph: ``(:GlossaryTerm)-[:DESCRIBES]->(:Column)``.

The term record lives with whichever store owns glossary terms; the graph keeps what
the links need: the term's id, its name and its column paths (``columns``, written
``datasource.schema.table.column``). A path naming a column the current graph lacks is
kept on the term and becomes an edge when a sync brings that column: every switch to a
new version links the terms that name its columns (`link_version`), so links follow
their columns across syncs, and an old version's edges go with its columns.

Changing a term's links locks, first, every DataSource its old and new paths name
(making the node of one never synced, so that its first switch waits too), then the
term: the order a switch takes them in (its DataSource, then the terms it links). A
switch therefore sees each term before or after a change, never during one.
"""

from __future__ import annotations

from collections.abc import Iterable

from neo4j import AsyncManagedTransaction

from weaver.types import GlossaryLink, GlossaryTerm
from weaver_neo4j.graph import (
    ColumnKey,
    GraphChanged,
    Row,
    batches,
    current_versions,
    still_current,
)

TERM_COLUMNS = """
MATCH (g:GlossaryTerm {tenant_id: $tenant_id, id: $term_id})
RETURN g.columns AS columns
"""

LOCK_DATASOURCES = """
UNWIND $names AS name
MERGE (ds:DataSource {tenant_id: $tenant_id, name: name})
SET ds.glossary_changed_at = datetime()
"""

# The write takes the term's lock; its paths are read after it, as they are now.
LOCK_TERM = """
MERGE (g:GlossaryTerm {tenant_id: $tenant_id, id: $term_id})
SET g.changed_at = datetime()
WITH g
RETURN g.columns AS columns
"""

REPLACE_TERM = """
MATCH (g:GlossaryTerm {tenant_id: $tenant_id, id: $term_id})
SET g.term = $term, g.columns = $columns
WITH g
OPTIONAL MATCH (g)-[old:DESCRIBES]->()
DELETE old
"""

# From the tenant's DataSource down through its current version. The schema, table and
# column carry no label here on purpose: with one, the planner looks them up in the name
# indexes (every tenant's `public`, every `id` column) and joins; without, the walk
# from the DataSource is the only plan.
LINK_CURRENT = """
MATCH (g:GlossaryTerm {tenant_id: $tenant_id, id: $term_id})
UNWIND $links AS link
MATCH (ds:DataSource {tenant_id: $tenant_id, name: link[0]})
MATCH (ds)-[:HAS_SCHEMA]->(s)-[:HAS_TABLE]->(t)-[:HAS_COLUMN]->(c)
WHERE s.name = link[1] AND t.name = link[2] AND c.name = link[3]
CREATE (g)-[:DESCRIBES]->(c)
"""

DELETE_TERM = """
MATCH (g:GlossaryTerm {tenant_id: $tenant_id, id: $term_id})
DETACH DELETE g
"""

TERMS_NAMING = """
MATCH (g:GlossaryTerm) WHERE g.tenant_id = $tenant_id AND g.id IS NOT NULL
UNWIND g.columns AS path
WITH g, path WHERE path STARTS WITH $prefix
RETURN elementId(g) AS term, path
"""

LINK_BY_ID = """
UNWIND $rows AS row
MATCH (g:GlossaryTerm {tenant_id: $tenant_id}) WHERE elementId(g) = row.term
MATCH (c:Column {tenant_id: $tenant_id}) WHERE elementId(c) = row.column
CREATE (g)-[:DESCRIBES]->(c)
"""

LINKS = """
MATCH (g:GlossaryTerm)-[:DESCRIBES]->(c:Column)
WHERE g.tenant_id = $tenant_id AND g.id IS NOT NULL
  AND c.tenant_id = $tenant_id AND c.datasource = $datasource AND c.sync_id = $sync_id
RETURN g.id AS term_id, g.term AS term, c.schema AS schema, c.table AS table,
       c.name AS column
ORDER BY schema, table, column, toLower(term)
"""


def _datasources(paths: Iterable[str]) -> set[str]:
    return {path.split(".", 1)[0] for path in paths}


async def _lock(
    tx: AsyncManagedTransaction, tenant_id: str, term_id: str, paths: Iterable[str]
) -> None:
    """Lock the datasources the term's paths name, now and after the change, then the
    term; raises `GraphChanged` if its paths changed before the term was locked."""
    scope = {"tenant_id": tenant_id, "term_id": term_id}
    before = await (await tx.run(TERM_COLUMNS, scope)).single()
    names = _datasources([*((before["columns"] or []) if before else []), *paths])
    await (await tx.run(LOCK_DATASOURCES, scope, names=sorted(names))).consume()
    locked = await (await tx.run(LOCK_TERM, scope)).single()
    if locked is not None and _datasources(locked["columns"] or []) - names:
        raise GraphChanged


async def link_term(tx: AsyncManagedTransaction, term: GlossaryTerm) -> None:
    """Make ``term.columns`` the term's links: kept as paths, and edges to the columns of
    the current graphs that have them."""
    await _lock(tx, term.tenant_id, term.id, term.columns)
    scope = {"tenant_id": term.tenant_id, "term_id": term.id}
    columns = list(term.columns)
    await (await tx.run(REPLACE_TERM, scope, term=term.term, columns=columns)).consume()
    links = [list(key) for key in dict.fromkeys(term.column_keys())]
    await (await tx.run(LINK_CURRENT, scope, links=links)).consume()


async def unlink_term(tx: AsyncManagedTransaction, tenant_id: str, term_id: str) -> None:
    await _lock(tx, tenant_id, term_id, ())
    await (await tx.run(DELETE_TERM, tenant_id=tenant_id, term_id=term_id)).consume()


async def link_version(
    tx: AsyncManagedTransaction, scope: Row, columns: dict[ColumnKey, str]
) -> None:
    """Link the terms naming the datasource's columns to ``columns`` (a new version's
    column nodes by key), inside the switch to that version."""
    result = await tx.run(
        TERMS_NAMING, tenant_id=scope["tenant_id"], prefix=scope["datasource"] + "."
    )
    rows = []
    async for record in result:
        parts = record["path"].split(".")
        column = columns.get((parts[1], parts[2], parts[3])) if len(parts) == 4 else None
        if column is not None:
            rows.append({"term": record["term"], "column": column})
    for edges in batches(rows):
        await (await tx.run(LINK_BY_ID, tenant_id=scope["tenant_id"], rows=list(edges))).consume()


async def read_links(tx: AsyncManagedTransaction, scope: Row) -> list[GlossaryLink]:
    """The links to the current version's columns, read while that version stays
    current."""
    tenant_id, datasource = scope["tenant_id"], scope["datasource"]
    before = await current_versions(tx, tenant_id, datasource)
    if not before:
        return []
    result = await tx.run(LINKS, scope, sync_id=before[datasource])
    links = [
        GlossaryLink(
            record["term_id"], record["term"], record["schema"], record["table"], record["column"]
        )
        async for record in result
    ]
    await still_current(tx, tenant_id, before, datasource)
    return links
