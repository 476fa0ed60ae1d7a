"""The embedded metadata store: one SQLite file that every gateway process shares.

Several processes (``--workers``, or separate ``weaver serve`` commands) open the same
``<data_dir>/weaver.db``, so correctness comes from SQLite rather than from this process:
uniqueness is a constraint, every write is one ``BEGIN IMMEDIATE`` transaction that waits
(``busy_timeout``) for other writers, and WAL lets readers go on while one writes.

Graphs, snapshots and statistics are JSON documents (`weaver.codec`); the tables and
columns of the current graph are also rows of ``catalog_objects``, written in the same
transaction, so search is an indexed range scan and never sees half a sync. Glossary
links are rows of ``glossary_links`` by column path, read joined with
``catalog_objects``: a sync replaces the graph and the links follow their columns.

Where the work runs is said in `weaver.builtin.store.database`.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import orjson

from weaver import codec, hookimpl
from weaver.builtin.store.database import DB_FILE, SQLiteStore
from weaver.builtin.store.database import iso as _iso
from weaver.errors import Conflict, GatewayLost, NotFound, PayloadTooLarge, problem_body
from weaver.joins import PathSearch
from weaver.opened import Opened
from weaver.settings import Settings
from weaver.types import (
    Datasource,
    DatasourceStatistics,
    GlossaryLink,
    GlossaryTerm,
    HealthCheck,
    JoinHop,
    JoinPath,
    JoinPathRequest,
    Page,
    QueryRecord,
    QuerySweep,
    Repair,
    SchemaGraph,
    SearchHit,
    SearchKind,
    Snapshot,
    SnapshotSummary,
    TableName,
    parse_search_key,
)

Row = tuple[Any, ...]

# Joins a glossary term's searchable texts; a control character no term or synonym holds,
# so a match never spans two of them.
_SEARCH_SEPARATOR = "\x1f"

_DATASOURCE_COLUMNS = (
    "tenant_id, name, engine, internal_name, connection, sealed_secrets, secret_keys,"
    " description, created_at, updated_at"
)


def _datasource_values(datasource: Datasource) -> Row:
    return (
        datasource.tenant_id,
        datasource.name,
        datasource.engine,
        datasource.internal_name,
        json.dumps(dict(datasource.connection)),
        datasource.sealed_secrets,
        json.dumps(datasource.secret_keys),
        datasource.description,
        _iso(datasource.created_at),
        _iso(datasource.updated_at),
    )


def _datasource(row: Row) -> Datasource:
    return Datasource(
        tenant_id=row[0],
        name=row[1],
        engine=row[2],
        internal_name=row[3],
        connection=orjson.loads(row[4]),
        sealed_secrets=row[5],
        secret_keys=tuple(orjson.loads(row[6])),
        description=row[7],
        created_at=datetime.fromisoformat(row[8]),
        updated_at=datetime.fromisoformat(row[9]),
    )


def _catalog_rows(tenant_id: str, datasource: str, graph: SchemaGraph) -> Iterator[Row]:
    for table in graph.tables:
        yield (
            tenant_id,
            "table",
            datasource,
            table.schema,
            table.name,
            "",
            None,
            table.name.lower(),
        )
        for column in table.columns:
            yield (
                tenant_id,
                "column",
                datasource,
                table.schema,
                table.name,
                column.name,
                column.data_type,
                column.name.lower(),
            )


def _foreign_key_rows(tenant_id: str, datasource: str, graph: SchemaGraph) -> Iterator[Row]:
    """The graph's foreign keys, but those naming a column the graph lacks: they join
    nothing (the Neo4j store leaves them out too)."""
    columns = {(t.schema, t.name, c.name) for t in graph.tables for c in t.columns}
    for table in graph.tables:
        for column in table.columns:
            ref = column.references
            if ref is not None and (ref.schema, ref.table, ref.column) in columns:
                yield (
                    tenant_id,
                    datasource,
                    table.schema,
                    table.name,
                    column.name,
                    ref.schema,
                    ref.table,
                    ref.column,
                )


# The foreign keys with either end in one of a few tables, given as a JSON array of
# [datasource, schema, table]: two index range scans per table.
_FOREIGN_KEYS_TOUCHING = """
WITH wanted(datasource, schema_name, table_name) AS (
    SELECT json_extract(value, '$[0]'), json_extract(value, '$[1]'), json_extract(value, '$[2]')
    FROM json_each(?2)
)
SELECT fk.datasource, fk.schema_name, fk.table_name, fk.column_name,
       fk.ref_schema, fk.ref_table, fk.ref_column
FROM wanted JOIN foreign_keys AS fk
  ON fk.tenant_id = ?1 AND fk.datasource = wanted.datasource
 AND fk.schema_name = wanted.schema_name AND fk.table_name = wanted.table_name
UNION
SELECT fk.datasource, fk.schema_name, fk.table_name, fk.column_name,
       fk.ref_schema, fk.ref_table, fk.ref_column
FROM wanted JOIN foreign_keys AS fk INDEXED BY foreign_keys_by_target
  ON fk.tenant_id = ?1 AND fk.datasource = wanted.datasource
 AND fk.ref_schema = wanted.schema_name AND fk.ref_table = wanted.table_name
"""


def _foreign_keys_touching(
    db: sqlite3.Connection, tenant_id: str, tables: list[TableName]
) -> list[JoinHop]:
    wanted = json.dumps([[t.datasource, t.schema, t.table] for t in tables])
    return [
        JoinHop(TableName(ds, schema, table), column, TableName(ds, ref_schema, ref_table), ref)
        for ds, schema, table, column, ref_schema, ref_table, ref in db.execute(
            _FOREIGN_KEYS_TOUCHING, (tenant_id, wanted)
        )
    ]


_TERM_COLUMNS = "tenant_id, id, term, definition, synonyms, columns, created_at, updated_at"


def _term(row: Row) -> GlossaryTerm:
    return GlossaryTerm(
        tenant_id=row[0],
        id=row[1],
        term=row[2],
        definition=row[3],
        synonyms=tuple(json.loads(row[4])),
        columns=tuple(json.loads(row[5])),
        created_at=datetime.fromisoformat(row[6]),
        updated_at=datetime.fromisoformat(row[7]),
    )


class EmbeddedStore:
    """One per app: the connections to ``<data_dir>/weaver.db`` are its own."""

    def __init__(self, settings: Settings) -> None:
        self.path = settings.data_dir / DB_FILE
        self._store = Opened[SQLiteStore]("the embedded store")

    @property
    def store(self) -> SQLiteStore:
        return self._store.get()

    @hookimpl(trylast=True)
    async def weaver_startup(self) -> None:
        self._store.open(await asyncio.to_thread(SQLiteStore, self.path))

    @hookimpl(trylast=True)
    async def weaver_shutdown(self) -> None:
        store = self._store.take()
        if store is not None:
            # In a thread: closing may wait for a statement a cancelled request left running.
            await asyncio.to_thread(store.close)

    @hookimpl(trylast=True)
    async def check_health(self) -> HealthCheck:
        await self.store.read(lambda db: db.execute("SELECT 1").fetchone())
        return HealthCheck("up")

    @hookimpl(trylast=True)
    async def save_datasource(self, datasource: Datasource, create: bool) -> None:
        values = _datasource_values(datasource)

        def insert(db: sqlite3.Connection) -> None:
            try:
                db.execute(
                    f"INSERT INTO datasources ({_DATASOURCE_COLUMNS}) VALUES ({'?, ' * 9}?)", values
                )
            except sqlite3.IntegrityError:
                raise Conflict(f"datasource {datasource.name!r} already exists") from None

        def replace(db: sqlite3.Connection) -> None:
            updated = db.execute(
                "UPDATE datasources SET engine = ?, internal_name = ?, connection = ?,"
                " sealed_secrets = ?, secret_keys = ?, description = ?, created_at = ?,"
                " updated_at = ? WHERE tenant_id = ? AND name = ?",
                (*values[2:], *values[:2]),
            )
            if updated.rowcount == 0:
                raise NotFound(f"datasource {datasource.name!r} not found")

        await self.store.write(insert if create else replace)

    @hookimpl(trylast=True)
    async def get_datasource(self, tenant_id: str, name: str) -> Datasource | None:
        def read(db: sqlite3.Connection) -> Datasource | None:
            row = db.execute(
                f"SELECT {_DATASOURCE_COLUMNS} FROM datasources WHERE tenant_id = ? AND name = ?",
                (tenant_id, name),
            ).fetchone()
            return _datasource(row) if row is not None else None

        return await self.store.remembered(("datasource", tenant_id, name), read)

    @hookimpl(trylast=True)
    async def list_datasources(self, tenant_id: str, page: Page) -> list[Datasource]:
        # Names are never empty, so '' precedes them all when there is no cursor.
        rows = await self.store.lookup(
            lambda db: db.execute(
                f"SELECT {_DATASOURCE_COLUMNS} FROM datasources"
                " WHERE tenant_id = ? AND name > ? ORDER BY name LIMIT ?",
                (tenant_id, page.after or "", page.limit),
            ).fetchall()
        )
        return [_datasource(row) for row in rows]

    @hookimpl(trylast=True)
    async def all_datasources(self) -> list[Datasource]:
        rows = await self.store.read(
            lambda db: db.execute(
                f"SELECT {_DATASOURCE_COLUMNS} FROM datasources ORDER BY tenant_id, name"
            ).fetchall()
        )
        return [_datasource(row) for row in rows]

    @hookimpl(trylast=True)
    async def delete_datasource(self, tenant_id: str, name: str) -> bool:
        def delete(db: sqlite3.Connection) -> bool:
            return (
                db.execute(
                    "DELETE FROM datasources WHERE tenant_id = ? AND name = ?", (tenant_id, name)
                ).rowcount
                > 0
            )

        return await self.store.write(delete)

    @hookimpl(trylast=True)
    async def store_metadata(self, datasource: Datasource, graph: SchemaGraph) -> None:
        key = (datasource.tenant_id, datasource.name)
        document = codec.dumps(graph)
        rows = list(_catalog_rows(*key, graph))
        foreign_keys = list(_foreign_key_rows(*key, graph))

        def replace(db: sqlite3.Connection) -> None:
            db.execute(
                "INSERT INTO graphs (tenant_id, datasource, document) VALUES (?, ?, ?)"
                " ON CONFLICT (tenant_id, datasource) DO UPDATE SET document = excluded.document",
                (*key, document),
            )
            db.execute("DELETE FROM catalog_objects WHERE tenant_id = ? AND datasource = ?", key)
            # OR IGNORE: an engine listing a column twice must not fail the whole sync.
            db.executemany(
                "INSERT OR IGNORE INTO catalog_objects VALUES (?, ?, ?, ?, ?, ?, ?, ?)", rows
            )
            db.execute("DELETE FROM foreign_keys WHERE tenant_id = ? AND datasource = ?", key)
            db.executemany(
                "INSERT OR IGNORE INTO foreign_keys VALUES (?, ?, ?, ?, ?, ?, ?, ?)", foreign_keys
            )

        await self.store.write(replace)

    @hookimpl(trylast=True)
    async def load_metadata(self, datasource: Datasource) -> SchemaGraph | None:
        row = await self.store.read(
            lambda db: db.execute(
                "SELECT document FROM graphs WHERE tenant_id = ? AND datasource = ?",
                (datasource.tenant_id, datasource.name),
            ).fetchone()
        )
        return codec.loads(SchemaGraph, row[0]) if row is not None else None

    @hookimpl(trylast=True)
    async def search_metadata(
        self, tenant_id: str, text: str, kind: SearchKind, page: Page
    ) -> list[SearchHit]:
        cursor = parse_search_key(kind, page.after)
        rows = await self.store.read(
            lambda db: db.execute(
                "SELECT datasource, schema_name, table_name, column_name, data_type"
                " FROM catalog_objects"
                " WHERE tenant_id = ? AND kind = ? AND instr(name_lower, ?) > 0"
                " AND (datasource, schema_name, table_name, column_name) > (?, ?, ?, ?)"
                " ORDER BY datasource, schema_name, table_name, column_name LIMIT ?",
                (tenant_id, kind, text.lower(), *cursor, page.limit),
            ).fetchall()
        )
        if kind == "table":
            return [SearchHit("table", row[0], row[1], row[2]) for row in rows]
        return [SearchHit("column", row[0], row[1], row[2], row[3], row[4]) for row in rows]

    @hookimpl(trylast=True)
    async def find_join_paths(self, request: JoinPathRequest) -> list[JoinPath]:
        def walk(db: sqlite3.Connection) -> list[JoinPath]:
            search = PathSearch.asked(request)
            # One read transaction: every level sees the same graphs, even while a sync
            # commits meanwhile (WAL keeps the snapshot).
            db.execute("BEGIN")
            try:
                while frontier := search.frontier():
                    search.expand(_foreign_keys_touching(db, request.tenant_id, frontier))
            finally:
                db.execute("COMMIT")
            return search.paths(request.limit)

        return await self.store.read(walk)

    @hookimpl(trylast=True)
    async def delete_metadata(self, datasource: Datasource) -> None:
        key = (datasource.tenant_id, datasource.name)

        def delete(db: sqlite3.Connection) -> None:
            for table in ("graphs", "catalog_objects", "foreign_keys", "snapshots", "statistics"):
                db.execute(f"DELETE FROM {table} WHERE tenant_id = ? AND datasource = ?", key)

        await self.store.write(delete)

    @hookimpl(trylast=True)
    async def save_snapshot(self, snapshot: Snapshot) -> None:
        values = (
            snapshot.tenant_id,
            snapshot.datasource_name,
            snapshot.id,
            _iso(snapshot.created_at),
            len(snapshot.graph.tables),
            snapshot.graph.column_count,
            codec.dumps(snapshot.graph),
        )

        def insert(db: sqlite3.Connection) -> None:
            try:
                db.execute("INSERT INTO snapshots VALUES (?, ?, ?, ?, ?, ?, ?)", values)
            except sqlite3.IntegrityError:
                raise Conflict(f"snapshot {snapshot.id!r} already exists") from None

        await self.store.write(insert)

    @hookimpl(trylast=True)
    async def list_snapshots(self, datasource: Datasource, page: Page) -> list[SnapshotSummary]:
        key = (datasource.tenant_id, datasource.name)
        select = (
            "SELECT id, created_at, tables, columns FROM snapshots"
            " WHERE tenant_id = ? AND datasource = ?"
        )
        values: tuple[str, ...] = key
        if page.after is None:
            query = select
        else:
            # An unknown cursor compares as NULL, so it yields an empty page.
            query = (
                select + " AND (created_at, id) < (SELECT created_at, id FROM snapshots"
                " WHERE tenant_id = ? AND datasource = ? AND id = ?)"
            )
            values = (*key, *key, page.after)
        rows = await self.store.lookup(
            lambda db: db.execute(
                query + " ORDER BY created_at DESC, id DESC LIMIT ?", (*values, page.limit)
            ).fetchall()
        )
        return [
            SnapshotSummary(row[0], datetime.fromisoformat(row[1]), row[2], row[3]) for row in rows
        ]

    @hookimpl(trylast=True)
    async def get_snapshot(self, datasource: Datasource, snapshot_id: str) -> Snapshot | None:
        row = await self.store.read(
            lambda db: db.execute(
                "SELECT created_at, document FROM snapshots"
                " WHERE tenant_id = ? AND datasource = ? AND id = ?",
                (datasource.tenant_id, datasource.name, snapshot_id),
            ).fetchone()
        )
        if row is None:
            return None
        return Snapshot(
            id=snapshot_id,
            tenant_id=datasource.tenant_id,
            datasource_name=datasource.name,
            created_at=datetime.fromisoformat(row[0]),
            graph=codec.loads(SchemaGraph, row[1]),
        )

    @hookimpl(trylast=True)
    async def save_glossary_term(self, term: GlossaryTerm, create: bool) -> None:
        fields = {
            "term": term.term,
            "term_lower": term.term.lower(),
            "definition": term.definition,
            "synonyms": json.dumps(term.synonyms),
            "columns": json.dumps(term.columns),
            "search_text": _SEARCH_SEPARATOR.join(
                [term.term, *term.synonyms, term.definition]
            ).lower(),
            "created_at": _iso(term.created_at),
            "updated_at": _iso(term.updated_at),
        }
        duplicate = Conflict(f"glossary term {term.term!r} already exists")

        def insert(db: sqlite3.Connection) -> None:
            names = ["tenant_id", "id", *fields]
            try:
                db.execute(
                    f"INSERT INTO glossary_terms ({', '.join(names)})"
                    f" VALUES ({', '.join('?' * len(names))})",
                    (term.tenant_id, term.id, *fields.values()),
                )
            except sqlite3.IntegrityError:
                raise duplicate from None

        def replace(db: sqlite3.Connection) -> None:
            try:
                updated = db.execute(
                    f"UPDATE glossary_terms SET {', '.join(f'{name} = ?' for name in fields)}"
                    " WHERE tenant_id = ? AND id = ?",
                    (*fields.values(), term.tenant_id, term.id),
                )
            except sqlite3.IntegrityError:
                raise duplicate from None
            if updated.rowcount == 0:
                raise NotFound(f"glossary term {term.id!r} not found")

        await self.store.write(insert if create else replace)

    @hookimpl(trylast=True)
    async def get_glossary_term(self, tenant_id: str, term_id: str) -> GlossaryTerm | None:
        row = await self.store.lookup(
            lambda db: db.execute(
                f"SELECT {_TERM_COLUMNS} FROM glossary_terms WHERE tenant_id = ? AND id = ?",
                (tenant_id, term_id),
            ).fetchone()
        )
        return _term(row) if row is not None else None

    @hookimpl(trylast=True)
    async def list_glossary_terms(
        self, tenant_id: str, text: str | None, page: Page
    ) -> list[GlossaryTerm]:
        # The empty string is contained in every text and precedes every lower-cased term.
        rows = await self.store.read(
            lambda db: db.execute(
                f"SELECT {_TERM_COLUMNS} FROM glossary_terms"
                " WHERE tenant_id = ? AND term_lower > ? AND instr(search_text, ?) > 0"
                " ORDER BY term_lower LIMIT ?",
                (tenant_id, page.after or "", (text or "").lower(), page.limit),
            ).fetchall()
        )
        return [_term(row) for row in rows]

    @hookimpl(trylast=True)
    async def delete_glossary_term(self, tenant_id: str, term_id: str) -> bool:
        def delete(db: sqlite3.Connection) -> bool:
            return (
                db.execute(
                    "DELETE FROM glossary_terms WHERE tenant_id = ? AND id = ?",
                    (tenant_id, term_id),
                ).rowcount
                > 0
            )

        return await self.store.write(delete)

    @hookimpl(trylast=True)
    async def store_glossary_links(self, term: GlossaryTerm) -> None:
        rows = [
            (term.tenant_id, term.id, *key, term.term, term.term.lower())
            for key in dict.fromkeys(term.column_keys())
        ]

        def replace(db: sqlite3.Connection) -> None:
            db.execute(
                "DELETE FROM glossary_links WHERE tenant_id = ? AND term_id = ?",
                (term.tenant_id, term.id),
            )
            db.executemany("INSERT INTO glossary_links VALUES (?, ?, ?, ?, ?, ?, ?, ?)", rows)

        await self.store.write(replace)

    @hookimpl(trylast=True)
    async def delete_glossary_links(self, tenant_id: str, term_id: str) -> None:
        await self.store.write(
            lambda db: db.execute(
                "DELETE FROM glossary_links WHERE tenant_id = ? AND term_id = ?",
                (tenant_id, term_id),
            )
        )

    @hookimpl(trylast=True)
    async def load_glossary_links(self, datasource: Datasource) -> list[GlossaryLink]:
        # One statement, so one snapshot of the file: never links of two syncs.
        rows = await self.store.read(
            lambda db: db.execute(
                "SELECT l.term_id, l.term, l.schema_name, l.table_name, l.column_name"
                " FROM glossary_links AS l JOIN catalog_objects AS c"
                " ON c.tenant_id = l.tenant_id AND c.kind = 'column'"
                " AND c.datasource = l.datasource AND c.schema_name = l.schema_name"
                " AND c.table_name = l.table_name AND c.column_name = l.column_name"
                " WHERE l.tenant_id = ? AND l.datasource = ?"
                " ORDER BY l.schema_name, l.table_name, l.column_name, l.term_lower",
                (datasource.tenant_id, datasource.name),
            ).fetchall()
        )
        return [GlossaryLink(*row) for row in rows]

    @hookimpl(trylast=True)
    async def save_statistics(
        self, datasource: Datasource, statistics: DatasourceStatistics
    ) -> None:
        values = (datasource.tenant_id, datasource.name, codec.dumps(statistics))
        await self.store.write(
            lambda db: db.execute(
                "INSERT INTO statistics (tenant_id, datasource, document) VALUES (?, ?, ?)"
                " ON CONFLICT (tenant_id, datasource) DO UPDATE SET document = excluded.document",
                values,
            )
        )

    @hookimpl(trylast=True)
    async def load_statistics(self, datasource: Datasource) -> DatasourceStatistics | None:
        row = await self.store.read(
            lambda db: db.execute(
                "SELECT document FROM statistics WHERE tenant_id = ? AND datasource = ?",
                (datasource.tenant_id, datasource.name),
            ).fetchone()
        )
        return codec.loads(DatasourceStatistics, row[0]) if row is not None else None

    # --- query records and results -----------------------------------------------------

    @hookimpl(trylast=True)
    async def save_query(self, record: QueryRecord, create: bool) -> None:
        values = (
            record.subject,
            record.status,
            _iso(record.submitted_at),
            record.owner,
            _optional_iso(record.lease_until),
            _optional_iso(record.result_expires_at),
            codec.dumps(record),
            record.tenant_id,
            record.query_id,
        )

        def insert(db: sqlite3.Connection) -> None:
            try:
                db.execute(
                    "INSERT INTO queries (subject, status, submitted_at, owner, lease_until,"
                    " result_expires_at, document, tenant_id, query_id, cancel_requested)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (*values, int(record.cancel_requested)),
                )
            except sqlite3.IntegrityError:
                raise Conflict(f"query {record.query_id!r} already exists") from None

        def update(db: sqlite3.Connection) -> None:
            # cancel_requested is left as it is: another process may have set it.
            changed = db.execute(
                "UPDATE queries SET subject = ?, status = ?, submitted_at = ?, owner = ?,"
                " lease_until = ?, result_expires_at = ?, document = ?"
                " WHERE tenant_id = ? AND query_id = ?",
                values,
            )
            if changed.rowcount == 0:
                raise NotFound(f"query {record.query_id!r} not found")

        await self.store.write(insert if create else update)

    @hookimpl(trylast=True)
    async def get_query(self, tenant_id: str, query_id: str) -> QueryRecord | None:
        row = await self.store.lookup(
            lambda db: db.execute(
                f"SELECT {_QUERY_COLUMNS} FROM queries WHERE tenant_id = ? AND query_id = ?",
                (tenant_id, query_id),
            ).fetchone()
        )
        return _query(row) if row is not None else None

    @hookimpl(trylast=True)
    async def list_queries(
        self, tenant_id: str, subject: str | None, status: str | None, page: Page
    ) -> list[QueryRecord]:
        where = ["tenant_id = ?"]
        values: list[Any] = [tenant_id]
        if subject is not None:
            where.append("subject = ?")
            values.append(subject)
        if status is not None:
            where.append("status = ?")
            values.append(status)
        if page.after is not None:
            # An unknown cursor compares as NULL, so it yields an empty page.
            where.append(
                "(submitted_at, query_id) < (SELECT submitted_at, query_id FROM queries"
                " WHERE tenant_id = ? AND query_id = ?)"
            )
            values.extend([tenant_id, page.after])
        sql = (
            f"SELECT {_QUERY_COLUMNS} FROM queries WHERE {' AND '.join(where)}"
            " ORDER BY submitted_at DESC, query_id DESC LIMIT ?"
        )
        rows = await self.store.read(lambda db: db.execute(sql, (*values, page.limit)).fetchall())
        return [_query(row) for row in rows]

    @hookimpl(trylast=True)
    async def request_query_cancel(self, tenant_id: str, query_id: str) -> bool:
        def mark(db: sqlite3.Connection) -> bool:
            changed = db.execute(
                "UPDATE queries SET cancel_requested = 1 WHERE tenant_id = ? AND query_id = ?"
                " AND status IN ('queued', 'running')",
                (tenant_id, query_id),
            )
            return changed.rowcount > 0

        return await self.store.write(mark)

    @hookimpl(trylast=True)
    async def poll_queries(self, owner: str, lease_until: datetime | None) -> list[str]:
        unfinished = "owner = ? AND status IN ('queued', 'running')"
        if lease_until is not None:
            await self.store.write(
                lambda db: db.execute(
                    f"UPDATE queries SET lease_until = ? WHERE {unfinished}",
                    (_iso(lease_until), owner),
                )
            )
        rows = await self.store.lookup(
            lambda db: db.execute(
                f"SELECT query_id FROM queries WHERE {unfinished} AND cancel_requested = 1",
                (owner,),
            ).fetchall()
        )
        return [row[0] for row in rows]

    @hookimpl(trylast=True)
    async def sweep_queries(self, now: datetime, history_before: datetime) -> QuerySweep:
        lost = json.dumps(problem_body(GatewayLost()))

        def sweep(db: sqlite3.Connection) -> QuerySweep:
            failed = db.execute(
                "UPDATE queries SET status = 'failed', owner = NULL, lease_until = NULL,"
                " document = json_set(document, '$.error', json(?), '$.finished_at', ?)"
                " WHERE status IN ('queued', 'running') AND lease_until < ?",
                (lost, now.isoformat(), _iso(now)),
            ).rowcount
            expired = "result_expires_at IS NOT NULL AND result_expires_at < ?"
            db.execute(
                "DELETE FROM query_results WHERE (tenant_id, query_id) IN"
                f" (SELECT tenant_id, query_id FROM queries WHERE {expired}"
                " OR submitted_at < ?)",
                (_iso(now), _iso(history_before)),
            )
            deleted = db.execute(
                "DELETE FROM queries WHERE submitted_at < ?", (_iso(history_before),)
            ).rowcount
            (stored,) = db.execute("SELECT coalesce(sum(bytes), 0) FROM query_results").fetchone()
            return QuerySweep(failed, deleted, stored)

        return await self.store.write(sweep)

    @hookimpl(trylast=True)
    async def save_result_chunk(
        self, tenant_id: str, query_id: str, index: int, rows: bytes, max_tenant_bytes: int
    ) -> None:
        stored_at = _iso(datetime.now(UTC))

        def save(db: sqlite3.Connection) -> None:
            db.execute(
                "INSERT OR REPLACE INTO query_results VALUES (?, ?, ?, ?, ?, ?)",
                (tenant_id, query_id, index, stored_at, len(rows), rows),
            )
            (total,) = db.execute(
                "SELECT coalesce(sum(bytes), 0) FROM query_results WHERE tenant_id = ?",
                (tenant_id,),
            ).fetchone()
            while total > max_tenant_bytes:
                oldest = db.execute(
                    "SELECT query_id, sum(bytes) FROM query_results"
                    " WHERE tenant_id = ? AND query_id != ? GROUP BY query_id"
                    " ORDER BY min(stored_at) LIMIT 1",
                    (tenant_id, query_id),
                ).fetchone()
                if oldest is None:
                    raise PayloadTooLarge(
                        f"the result is larger than the {max_tenant_bytes} bytes a tenant"
                        " may keep; ask for fewer rows"
                    )
                _drop_result(db, tenant_id, oldest[0], stored_at)
                total -= oldest[1]

        await self.store.write(save)

    @hookimpl(trylast=True)
    async def load_result_chunks(
        self, tenant_id: str, query_id: str, first: int, last: int
    ) -> list[bytes]:
        rows = await self.store.read(
            lambda db: db.execute(
                "SELECT data FROM query_results WHERE tenant_id = ? AND query_id = ?"
                " AND chunk BETWEEN ? AND ? ORDER BY chunk",
                (tenant_id, query_id, first, last),
            ).fetchall()
        )
        return [bytes(row[0]) for row in rows]

    @hookimpl(trylast=True)
    async def delete_results(self, tenant_id: str, query_id: str) -> None:
        await self.store.write(
            lambda db: db.execute(
                "DELETE FROM query_results WHERE tenant_id = ? AND query_id = ?",
                (tenant_id, query_id),
            )
        )

    # --- operations across backends ------------------------------------------------------

    @hookimpl(trylast=True)
    async def save_repair(self, repair: Repair) -> None:
        values = (
            repair.kind,
            repair.key,
            _iso(repair.created_at),
            _optional_iso(repair.next_attempt_at),
            codec.dumps(repair),
        )
        await self.store.write(
            lambda db: db.execute("INSERT OR REPLACE INTO repairs VALUES (?, ?, ?, ?, ?)", values)
        )

    @hookimpl(trylast=True)
    async def list_repairs(self, due_before: datetime | None, key: str | None) -> list[Repair]:
        where, values = ["1 = 1"], []
        if due_before is not None:
            where.append("(next_attempt_at IS NULL OR next_attempt_at < ?)")
            values.append(_iso(due_before))
        if key is not None:
            where.append("key = ?")
            values.append(key)
        sql = f"SELECT document FROM repairs WHERE {' AND '.join(where)} ORDER BY created_at"
        rows = await self.store.read(lambda db: db.execute(sql, values).fetchall())
        return [codec.loads(Repair, row[0]) for row in rows]

    @hookimpl(trylast=True)
    async def delete_repair(self, kind: str, key: str) -> None:
        await self.store.write(
            lambda db: db.execute("DELETE FROM repairs WHERE kind = ? AND key = ?", (kind, key))
        )


_QUERY_COLUMNS = "document, status, owner, lease_until, cancel_requested, result_expires_at"


def _optional_iso(moment: datetime | None) -> str | None:
    return _iso(moment) if moment is not None else None


def _query(row: Row) -> QueryRecord:
    # The columns beside the document are the authority for what others change.
    record = codec.loads(QueryRecord, row[0])
    return replace(
        record,
        status=row[1],
        owner=row[2],
        lease_until=datetime.fromisoformat(row[3]) if row[3] else None,
        cancel_requested=bool(row[4]),
        result_expires_at=datetime.fromisoformat(row[5]) if row[5] else None,
    )


def _drop_result(db: sqlite3.Connection, tenant_id: str, query_id: str, at: str) -> None:
    """Evict one query's stored result: it answers 410 from now on."""
    db.execute(
        "DELETE FROM query_results WHERE tenant_id = ? AND query_id = ?", (tenant_id, query_id)
    )
    db.execute(
        "UPDATE queries SET result_expires_at = ? WHERE tenant_id = ? AND query_id = ?",
        (at, tenant_id, query_id),
    )
