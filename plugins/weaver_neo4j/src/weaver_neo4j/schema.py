"""Constraints and indexes of the metadata graph, created idempotently.

The deployment document creates them by hand once (``ds_name_unique`` and three name
indexes); the plugin does it at start-up instead, or on first use when Neo4j was not
reachable then. Its ``ds_name_unique`` was unique on ``name`` alone, which would let only
one tenant own ``sales``: here the constraint is on ``(tenant_id, name)``, and a
single-property constraint left by that manual step is replaced.
"""

from __future__ import annotations

from neo4j import AsyncDriver

DATASOURCE_CONSTRAINT = "ds_name_unique"
DATASOURCE_KEY = ["tenant_id", "name"]

STATEMENTS = [
    # Community edition has composite uniqueness (not node keys); the constraint's own
    # index is what every query uses to find a tenant's datasource.
    f"CREATE CONSTRAINT {DATASOURCE_CONSTRAINT} IF NOT EXISTS"
    " FOR (ds:DataSource) REQUIRE (ds.tenant_id, ds.name) IS UNIQUE",
    "CREATE INDEX schema_name_idx IF NOT EXISTS FOR (s:Schema) ON (s.name)",
    "CREATE INDEX table_name_idx IF NOT EXISTS FOR (t:Table) ON (t.name)",
    "CREATE INDEX column_name_idx IF NOT EXISTS FOR (c:Column) ON (c.name)",
    # A version's schemas are where its purge starts (`weaver_neo4j.versions`); the
    # tables and columns hang from them, so they need no index of their own.
    "CREATE INDEX schema_sync_idx IF NOT EXISTS FOR (s:Schema) ON (s.sync_id)",
    "CREATE CONSTRAINT graph_version_unique IF NOT EXISTS"
    " FOR (v:GraphVersion) REQUIRE v.sync_id IS UNIQUE",
    "CREATE CONSTRAINT glossary_term_unique IF NOT EXISTS"
    " FOR (g:GlossaryTerm) REQUIRE (g.tenant_id, g.id) IS UNIQUE",
]


async def ensure_schema(driver: AsyncDriver) -> None:
    """Create what is missing; safe to run any number of times, from several processes."""
    async with driver.session() as session:
        result = await session.run(
            "SHOW CONSTRAINTS YIELD name, properties WHERE name = $name RETURN properties",
            name=DATASOURCE_CONSTRAINT,
        )
        existing = await result.single()
        if existing is not None and existing["properties"] != DATASOURCE_KEY:
            # `IF NOT EXISTS` goes by name, so the tenant-blind one must go first.
            await (await session.run(f"DROP CONSTRAINT {DATASOURCE_CONSTRAINT}")).consume()
        for statement in STATEMENTS:
            await (await session.run(statement)).consume()
