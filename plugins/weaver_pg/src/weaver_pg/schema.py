"""The plugin's tables, in their own ``weaver`` schema, and how they are brought up to date.

Migrations are numbered; ``weaver.schema_migrations`` records the ones applied. Every
gateway process runs `migrate` when it first reaches the server, so it runs under a
transaction-scoped advisory lock: concurrent starts apply each migration exactly once.
"""

from __future__ import annotations

from typing import Any

SCHEMA = "weaver"

# An arbitrary constant naming the lock every process takes around migrating.
_MIGRATION_LOCK = 0x77656176  # "weav"

# Migration N (1-based) is applied once, in order. Append, never edit.
MIGRATIONS: tuple[tuple[str, ...], ...] = (
    (
        f"""CREATE TABLE {SCHEMA}.snapshots (
            tenant_id text NOT NULL,
            datasource text NOT NULL,
            id text NOT NULL,
            created_at timestamptz NOT NULL,
            tables integer NOT NULL,
            columns integer NOT NULL,
            graph jsonb NOT NULL,
            PRIMARY KEY (tenant_id, datasource, id)
        )""",
        f"""CREATE INDEX snapshots_newest_first
            ON {SCHEMA}.snapshots (tenant_id, datasource, created_at DESC, id DESC)""",
        f"""CREATE TABLE {SCHEMA}.glossary_terms (
            tenant_id text NOT NULL,
            id text NOT NULL,
            term text NOT NULL CHECK (term <> ''),
            definition text NOT NULL,
            synonyms text[] NOT NULL,
            columns text[] NOT NULL,
            created_at timestamptz NOT NULL,
            updated_at timestamptz NOT NULL,
            PRIMARY KEY (tenant_id, id)
        )""",
        # One term per tenant whatever its case. Compared in "C" (code point) order, the
        # order the glossary is listed and paged in, so that this index serves it too.
        f"""CREATE UNIQUE INDEX glossary_terms_unique_term
            ON {SCHEMA}.glossary_terms (tenant_id, (lower(term)) COLLATE "C")""",
        f"""CREATE TABLE {SCHEMA}.statistics (
            tenant_id text NOT NULL,
            datasource text NOT NULL,
            computed_at timestamptz NOT NULL,
            statistics jsonb NOT NULL,
            PRIMARY KEY (tenant_id, datasource)
        )""",
    ),
    # Queries as resources, shared by every gateway process. The record is a document
    # (text, not jsonb: jsonb refuses the \u0000 a tenant's SQL or an engine's message
    # may hold); the columns beside it are what is searched, or changed by others than
    # the process running the query, and they are the authority over the document.
    (
        f"""CREATE TABLE {SCHEMA}.queries (
            tenant_id text NOT NULL,
            query_id text COLLATE "C" NOT NULL,
            subject text NOT NULL,
            status text NOT NULL
                CHECK (status IN ('queued', 'running', 'succeeded', 'failed', 'cancelled')),
            submitted_at timestamptz NOT NULL,
            owner text,
            lease_until timestamptz,
            cancel_requested boolean NOT NULL DEFAULT false,
            result_expires_at timestamptz,
            record text NOT NULL,
            PRIMARY KEY (tenant_id, query_id)
        )""",
        f"""CREATE INDEX queries_newest_first
            ON {SCHEMA}.queries (tenant_id, submitted_at DESC, query_id DESC)""",
        f"""CREATE INDEX queries_by_subject_newest_first
            ON {SCHEMA}.queries (tenant_id, subject, submitted_at DESC, query_id DESC)""",
        # Every gateway process polls its own unfinished queries twice a second.
        f"""CREATE INDEX queries_unfinished_by_owner ON {SCHEMA}.queries (owner)
            WHERE status IN ('queued', 'running')""",
        f"""CREATE INDEX queries_unfinished_by_lease ON {SCHEMA}.queries (lease_until)
            WHERE status IN ('queued', 'running')""",
        f"CREATE INDEX queries_by_age ON {SCHEMA}.queries (submitted_at)",
        f"""CREATE INDEX queries_by_result_expiry ON {SCHEMA}.queries (result_expires_at)
            WHERE result_expires_at IS NOT NULL""",
        f"""CREATE TABLE {SCHEMA}.query_results (
            tenant_id text NOT NULL,
            query_id text COLLATE "C" NOT NULL,
            chunk integer NOT NULL CHECK (chunk >= 0),
            stored_at timestamptz NOT NULL,
            data bytea NOT NULL,
            bytes integer GENERATED ALWAYS AS (octet_length(data)) STORED,
            PRIMARY KEY (tenant_id, query_id, chunk)
        )""",
    ),
)


async def migrate(connection: Any) -> int:
    """Apply what is missing; returns the schema version now in place."""
    async with connection.transaction():
        await connection.execute("SELECT pg_advisory_xact_lock($1)", _MIGRATION_LOCK)
        await connection.execute(f"CREATE SCHEMA IF NOT EXISTS {SCHEMA}")
        await connection.execute(
            f"CREATE TABLE IF NOT EXISTS {SCHEMA}.schema_migrations ("
            " version integer PRIMARY KEY,"
            " applied_at timestamptz NOT NULL DEFAULT now())"
        )
        version: int = await connection.fetchval(
            f"SELECT coalesce(max(version), 0) FROM {SCHEMA}.schema_migrations"
        )
        if version > len(MIGRATIONS):
            raise RuntimeError(
                f"the {SCHEMA} schema is at version {version}; this plugin knows only "
                f"{len(MIGRATIONS)}"
            )
        for number, statements in enumerate(MIGRATIONS[version:], start=version + 1):
            for statement in statements:
                await connection.execute(statement)
            await connection.execute(
                f"INSERT INTO {SCHEMA}.schema_migrations (version) VALUES ($1)", number
            )
        return len(MIGRATIONS)
