"""Replacing and deleting a datasource's graph in bounded transactions.

Neo4j caps the memory all open transactions may hold (``dbms.memory.transaction.total
.max``: about 537 MiB with the dev server's 768 MB heap). Replacing a graph of 50,000
columns in one transaction went over it every time, so nothing here writes or deletes
more than one batch per transaction:

1. the new graph is written as a new *version* beside the current one, in batches
   (schemas, then tables with their columns, then foreign keys): its schemas hang from
   no DataSource, so no reader reaches it;
2. one small transaction *switches*: it moves the DataSource's ``HAS_SCHEMA`` edges to
   the new schemas, records the version's ``sync_id`` and counts, links the glossary
   terms that name its columns, and retires the old version;
3. the old version is purged in batches.

A version that is not current has a ``(:GraphVersion {sync_id, tenant_id, datasource,
state, owner, touched_at, swept_at})`` node: ``state`` is ``writing`` or ``retired``,
``owner`` the operation working on it. Every batch first touches that node as its owner — a
lease: a version nobody touched for `LEASE_SECONDS` belongs to a process that died
half-way, and any later sync claims it, retires it and purges it (`sweep`). An owner
whose version was claimed stops at its next batch (`LeaseLost`); a crash therefore
leaves the old version current and the partial one to the next sync.

Locks: a switch and a deletion hold the DataSource's write lock (taken first), as does
every change of glossary links to it (`weaver_neo4j.glossary`), so a switch sees each
term's links either before or after a change, never during.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from typing import Literal, Protocol, TypeVar

from neo4j import AsyncManagedTransaction

from weaver.types import SchemaGraph
from weaver_neo4j.glossary import link_version
from weaver_neo4j.graph import (
    CREATE_REFERENCES,
    CREATE_SCHEMAS,
    CREATE_TABLES,
    ColumnKey,
    GraphChanged,
    Row,
    batches,
    reference_rows,
    schema_rows,
    table_batches,
)

# A batch takes at most a few seconds even on a loaded machine (measured: 5,000 columns
# in about 2.5 s with the load average at 11 on two cores); two minutes without one
# means the process writing is gone.
LEASE_SECONDS = 120.0
# Nodes per purge transaction, with their relationships: a few MiB of transaction state.
PURGE_ROWS = 10_000

T = TypeVar("T")
Access = Literal["read", "write"]


class Run(Protocol):
    """How work reaches Neo4j: ``work(tx, *args)`` in a managed transaction
    (`weaver_neo4j.plugin.Neo4jCatalog.run`)."""

    async def __call__(
        self, access: Access, work: Callable[..., Awaitable[T]], *args: object
    ) -> T: ...


class LeaseLost(Exception):
    """Another operation claimed this one's version: it was not touched for longer than
    the lease and was taken for abandoned."""


BEGIN_VERSION = """
CREATE (:GraphVersion {
    sync_id: $sync_id, tenant_id: $tenant_id, datasource: $datasource,
    state: 'writing', owner: $sync_id, touched_at: datetime()
})
"""

# Each in two statements: the first writes (taking the node's lock), the second reads
# what no other transaction can change any more. One statement would not do: Cypher may
# compare a property it read before taking the lock (seen in the plan as a cached
# property), and a claim and a touch could then both succeed.
TOUCH = "MATCH (v:GraphVersion {sync_id: $version}) SET v.touched_at = datetime()"
OWNER = "MATCH (v:GraphVersion {sync_id: $version}) RETURN v.owner AS owner"

STALE_VERSIONS = """
MATCH (v:GraphVersion)
WHERE v.touched_at < datetime() - duration({milliseconds: $lease_ms})
SET v.swept_at = datetime()
RETURN v.sync_id AS version
"""

CLAIM_STALE = """
MATCH (v:GraphVersion)
WHERE v.sync_id IN $versions
  AND v.touched_at < datetime() - duration({milliseconds: $lease_ms})
SET v.owner = $owner, v.state = 'retired', v.touched_at = datetime()
RETURN v.sync_id AS version
"""

# Writing the DataSource node first takes its write lock for the rest of the
# transaction: switches, deletions and glossary changes of one datasource run one
# after the other.
LOCK_FOR_SWITCH = """
MERGE (ds:DataSource {tenant_id: $tenant_id, name: $datasource})
SET ds.synced_at = datetime()
"""

LOCK_FOR_DELETE = """
MERGE (ds:DataSource {tenant_id: $tenant_id, name: $datasource})
SET ds.deleting = true
"""

# What is current once the lock is held. No row: a deletion that held the lock first
# removed the node (MERGE had found it before waiting).
CURRENT_VERSION = """
MATCH (ds:DataSource {tenant_id: $tenant_id, name: $datasource})
RETURN ds.sync_id AS sync_id
"""

DETACH_SCHEMAS = """
MATCH (:DataSource {tenant_id: $tenant_id, name: $datasource})-[old:HAS_SCHEMA]->()
DELETE old
"""

ATTACH_SCHEMAS = """
MATCH (ds:DataSource {tenant_id: $tenant_id, name: $datasource})
SET ds.sync_id = $sync_id, ds.counts = $counts
WITH ds
MATCH (s:Schema {sync_id: $sync_id})
CREATE (ds)-[:HAS_SCHEMA]->(s)
"""

RETIRE = """
MERGE (v:GraphVersion {sync_id: $version})
ON CREATE SET v.tenant_id = $tenant_id, v.datasource = $datasource
SET v.state = 'retired', v.owner = $owner, v.touched_at = datetime()
"""

# Current: it needs no GraphVersion node any more.
ADOPT = "MATCH (v:GraphVersion {sync_id: $sync_id}) DELETE v"

DELETE_DATASOURCE = """
MATCH (ds:DataSource {tenant_id: $tenant_id, name: $datasource})
DETACH DELETE ds
"""

# Bottom up, so that whatever is left of a version always hangs from its schemas.
PURGE = {
    "columns": """
MATCH (:Schema {sync_id: $version})-[:HAS_TABLE]->(:Table)-[:HAS_COLUMN]->(c:Column)
WITH c LIMIT $limit
DETACH DELETE c
RETURN count(*) AS deleted
""",
    "tables": """
MATCH (:Schema {sync_id: $version})-[:HAS_TABLE]->(t:Table)
WITH t LIMIT $limit
DETACH DELETE t
RETURN count(*) AS deleted
""",
    "schemas": """
MATCH (s:Schema {sync_id: $version})
WITH s LIMIT $limit
DETACH DELETE s
RETURN count(*) AS deleted
""",
}

FORGET_VERSION = "MATCH (v:GraphVersion {sync_id: $version, owner: $owner}) DELETE v"


async def touch(tx: AsyncManagedTransaction, version: str, owner: str) -> None:
    """Renew ``owner``'s lease on ``version`` for this transaction, or raise `LeaseLost`
    (which rolls the renewal back with the rest)."""
    await (await tx.run(TOUCH, version=version)).consume()
    record = await (await tx.run(OWNER, version=version)).single()
    if record is None or record["owner"] != owner:
        raise LeaseLost


# --- the transactions ---------------------------------------------------------------


async def _begin(tx: AsyncManagedTransaction, stamped: Row) -> None:
    await (await tx.run(BEGIN_VERSION, stamped)).consume()


async def _write_schemas(
    tx: AsyncManagedTransaction, stamped: Row, rows: list[Row]
) -> dict[str, str]:
    await touch(tx, stamped["sync_id"], stamped["sync_id"])
    result = await tx.run(CREATE_SCHEMAS, stamped, rows=rows)
    return {record["name"]: record["id"] async for record in result}


async def _write_tables(
    tx: AsyncManagedTransaction, stamped: Row, rows: list[Row]
) -> list[tuple[int, list[list[str]]]]:
    await touch(tx, stamped["sync_id"], stamped["sync_id"])
    result = await tx.run(CREATE_TABLES, stamped, rows=rows)
    return [(record["position"], record["columns"]) async for record in result]


async def _write_references(tx: AsyncManagedTransaction, stamped: Row, rows: list[Row]) -> None:
    await touch(tx, stamped["sync_id"], stamped["sync_id"])
    await (await tx.run(CREATE_REFERENCES, stamped, rows=rows)).consume()


async def _switch(
    tx: AsyncManagedTransaction, stamped: Row, counts: list[int], columns: dict[ColumnKey, str]
) -> str | None:
    """Make the written version current; returns the version it replaced, now retired
    and owned by this sync."""
    scope = {"tenant_id": stamped["tenant_id"], "datasource": stamped["datasource"]}
    sync_id = stamped["sync_id"]
    await (await tx.run(LOCK_FOR_SWITCH, scope)).consume()
    current = await (await tx.run(CURRENT_VERSION, scope)).single()
    if current is None:
        raise GraphChanged
    await touch(tx, sync_id, sync_id)
    await (await tx.run(DETACH_SCHEMAS, scope)).consume()
    await (await tx.run(ATTACH_SCHEMAS, scope, sync_id=sync_id, counts=counts)).consume()
    previous: str | None = current["sync_id"]
    if previous is not None:
        await (await tx.run(RETIRE, scope, version=previous, owner=sync_id)).consume()
    await (await tx.run(ADOPT, sync_id=sync_id)).consume()
    await link_version(tx, scope, columns)
    return previous


async def _retire_current(tx: AsyncManagedTransaction, scope: Row, owner: str) -> str | None:
    await (await tx.run(LOCK_FOR_DELETE, scope)).consume()
    current = await (await tx.run(CURRENT_VERSION, scope)).single()
    if current is None:
        return None  # another deletion came first
    previous: str | None = current["sync_id"]
    if previous is not None:
        await (await tx.run(RETIRE, scope, version=previous, owner=owner)).consume()
    await (await tx.run(DELETE_DATASOURCE, scope)).consume()
    return previous


async def _purge_batch(tx: AsyncManagedTransaction, part: str, version: str, owner: str) -> int:
    await touch(tx, version, owner)
    record = await (await tx.run(PURGE[part], version=version, limit=PURGE_ROWS)).single()
    return int(record["deleted"]) if record is not None else 0


async def _forget(tx: AsyncManagedTransaction, version: str, owner: str) -> None:
    await (await tx.run(FORGET_VERSION, version=version, owner=owner)).consume()


async def _claim_abandoned(
    tx: AsyncManagedTransaction, owner: str, lease_seconds: float
) -> list[str]:
    lease_ms = int(lease_seconds * 1000)
    result = await tx.run(STALE_VERSIONS, lease_ms=lease_ms)
    stale = [record["version"] async for record in result]
    if not stale:
        return []
    result = await tx.run(CLAIM_STALE, versions=stale, owner=owner, lease_ms=lease_ms)
    return [record["version"] async for record in result]


# --- the operations -----------------------------------------------------------------


async def replace_graph(run: Run, scope: Row, graph: SchemaGraph) -> int:
    """Write ``graph`` as a new version, make it current, purge the one it replaced.
    Returns how many foreign keys named a column outside the graph (left out). Raises
    `LeaseLost` if the new version was taken for abandoned before the switch."""
    sync_id = uuid.uuid4().hex
    stamped = {**scope, "sync_id": sync_id}
    await run("write", _begin, stamped)
    schema_ids = await run("write", _write_schemas, stamped, schema_rows(graph))
    ids: dict[ColumnKey, str] = {}
    for rows in table_batches(graph, schema_ids):
        for position, created in await run("write", _write_tables, stamped, rows):
            table = graph.tables[position]
            for name, element_id in created:
                # An engine listing a column twice: its foreign key starts at the first.
                ids.setdefault((table.schema, table.name, name), element_id)
    references, dangling = reference_rows(graph, ids)
    for edges in batches(references):
        await run("write", _write_references, stamped, list(edges))
    counts = [len(schema_ids), len(graph.tables), graph.column_count, len(references)]
    previous = await run("write", _switch, stamped, counts, ids)
    if previous is not None:
        # The switch made this sync the owner of the version it retired.
        await purge(run, previous, owner=sync_id)
    return dangling


async def delete_graph(run: Run, scope: Row) -> None:
    """Remove the datasource from the graph at once (readers see no graph from then on),
    then purge its version."""
    owner = uuid.uuid4().hex
    previous = await run("write", _retire_current, scope, owner)
    if previous is not None:
        await purge(run, previous, owner)


async def purge(run: Run, version: str, owner: str) -> None:
    """Delete a retired version, batch by batch, while ``owner`` holds its lease; one
    that lost it leaves the rest to the operation that claimed the version."""
    try:
        for part in PURGE:
            while await run("write", _purge_batch, part, version, owner) == PURGE_ROWS:
                pass
    except LeaseLost:
        return
    await run("write", _forget, version, owner)


async def sweep(run: Run, lease_seconds: float) -> int:
    """Claim and purge every version left behind by an operation that stopped half-way
    (any tenant's: whoever syncs next cleans up). Returns how many were claimed."""
    owner = uuid.uuid4().hex
    abandoned = await run("write", _claim_abandoned, owner, lease_seconds)
    for version in abandoned:
        await purge(run, version, owner)
    return len(abandoned)
