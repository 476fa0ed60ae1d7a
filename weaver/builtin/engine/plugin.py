"""The embedded query engine's hooks: SQLite files under ``WEAVER_SQLITE_ROOT``.

A datasource is ``engine: "sqlite"`` with ``connection: {"path": "<file>"}``, the path
relative to the root and never leaving it (`weaver.builtin.engine.paths`). Nothing is
created in the engine when a datasource is registered: the file must already be a
database.

Choices worth knowing:

* ``ds.main.table`` is the only three-part name (a SQLite file has one schema, ``main``);
  another schema is refused with 400 (the core renders names by `SqlDialect`).
* Every blocking step — a query, an introspection, the statistics of one table — is
  bounded: a query by its ``timeout_seconds``, the others by ``MINDSDB_TIMEOUT``, the
  gateway's single bound on work sent to an engine.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Mapping
from datetime import UTC, datetime

from weaver import hookimpl
from weaver.builtin.engine import introspection
from weaver.builtin.engine.connections import Pool
from weaver.builtin.engine.paths import PathRefused, inside_root, read_only_uri
from weaver.builtin.engine.queries import SqliteRows, attachment_key, start
from weaver.builtin.engine.runs import Run, Workers
from weaver.errors import EngineFailed, Unprocessable, field_error
from weaver.settings import Settings
from weaver.types import (
    ConnectionSpec,
    Datasource,
    DatasourceStatistics,
    HealthCheck,
    PreparedQuery,
    RowStream,
    SchemaGraph,
    SqlDialect,
    Table,
    TableStatistics,
)

PLUGIN = "embedded_engine"
ENGINE = "sqlite"
DIALECT = SqlDialect("sqlite", schemas=False, single_schema=introspection.SCHEMA)
# Idle query connections kept with their files attached, by exactly the set they have.
IDLE_CONNECTIONS = 32


def _check_database(run: Run, file: str, shown: str) -> None:
    if not os.path.isfile(file):
        raise EngineFailed(f"{shown!r} does not exist under WEAVER_SQLITE_ROOT")
    try:
        with run.connect(read_only_uri(file)) as connection:
            connection.execute("SELECT count(*) FROM sqlite_master").fetchone()
    except sqlite3.Error:
        # SQLite's message would name the absolute path on this host.
        raise EngineFailed(f"{shown!r} is not a readable SQLite database") from None


class EmbeddedEngine:
    """One per app: its worker threads and idle connections are its own."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.root = str(settings.sqlite_root_path)
        self.workers = Workers(PLUGIN)
        self.pool = Pool(IDLE_CONNECTIONS)
        # The statements this app runs now, by query id, for `cancel_query`.
        self.runs: dict[str, Run] = {}

    def _database_file(
        self, datasource: Datasource, connection: Mapping[str, object] | None = None
    ) -> str:
        """The datasource's file (named by ``connection``, or by the stored one), checked
        again now: the tree may have changed since the connection was validated."""
        if datasource.engine != ENGINE:
            raise EngineFailed(f"datasource {datasource.name!r} is not a SQLite datasource")
        path = (datasource.connection if connection is None else connection).get("path")
        try:
            return inside_root(self.root, path)
        except PathRefused as error:
            raise EngineFailed(f"datasource {datasource.name!r}: path {error}") from None

    # --- connections and datasources ----------------------------------------------------

    @hookimpl(trylast=True)
    def sql_dialect(self) -> SqlDialect:
        return DIALECT

    @hookimpl(trylast=True)
    def validate_connection(
        self, engine: str, connection: dict[str, object]
    ) -> ConnectionSpec | None:
        if engine != ENGINE:
            return None
        errors = [
            field_error(
                ["body", "connection", key],
                "unknown parameter; a SQLite datasource takes path",
                "extra_forbidden",
            )
            for key in sorted(set(connection) - {"path"})
        ]
        if "path" not in connection:
            errors.append(field_error(["body", "connection", "path"], "required", "missing"))
        else:
            try:
                inside_root(self.root, connection["path"])
            except PathRefused as error:
                errors.append(field_error(["body", "connection", "path"], str(error), "path"))
        if errors:
            raise Unprocessable("invalid SQLite connection", errors=errors)
        return ConnectionSpec(public={"path": connection["path"]}, secret={}, targets=())

    @hookimpl(trylast=True)
    async def register_datasource(
        self, datasource: Datasource, connection: dict[str, object], replace: bool
    ) -> None:
        # Nothing is created: proving the file is a database is the whole registration.
        file = self._database_file(datasource, connection)
        await self.workers.bounded(
            self.settings.query_timeout_seconds,
            "opening the database",
            lambda run: _check_database(run, file, str(connection["path"])),
        )
        if replace:
            # Idle connections still have the previous file attached.
            self.pool.discard(datasource.internal_name)

    @hookimpl(trylast=True)
    def unregister_datasource(self, datasource: Datasource) -> None:
        # Nothing was created; only idle connections may still have the file open.
        self.pool.discard(datasource.internal_name)

    @hookimpl(trylast=True)
    def check_health(self) -> HealthCheck:
        extra = {"running_queries": len(self.workers.running), "idle_connections": len(self.pool)}
        if not os.path.exists(self.root):
            return HealthCheck("up", "WEAVER_SQLITE_ROOT does not exist yet", extra=extra)
        if not os.path.isdir(self.root) or not os.access(self.root, os.R_OK | os.X_OK):
            return HealthCheck(
                "down", "WEAVER_SQLITE_ROOT is not a readable directory", extra=extra
            )
        return HealthCheck("up", extra=extra)

    @hookimpl(trylast=True)
    def weaver_shutdown(self) -> None:
        self.workers.close()
        self.pool.close()

    # --- queries ------------------------------------------------------------------------

    @hookimpl(trylast=True)
    async def execute_query(self, query: PreparedQuery) -> RowStream | None:
        if any(d.engine != ENGINE for d in query.datasources.values()):
            return None
        key = attachment_key(self.root, query.datasources.values())
        run = self.runs[query.query_id] = Run(query.timeout_seconds)
        try:
            attached, cursor, first = await self.workers.step(
                run, query.timeout_seconds, lambda: start(run, self.pool, key, query.sql)
            )
        except BaseException:
            self.runs.pop(query.query_id, None)
            raise
        return SqliteRows(
            self.workers,
            self.pool,
            attached,
            cursor,
            run,
            first,
            query.timeout_seconds,
            on_close=lambda: self.runs.pop(query.query_id, None),
        )

    @hookimpl(trylast=True)
    def cancel_query(self, query: PreparedQuery) -> bool:
        # SQLite stops at its next VM step or progress check: interrupt is its cancel.
        run = self.runs.get(query.query_id)
        if run is None:
            return False
        run.cancel()
        return True

    # --- introspection and statistics ---------------------------------------------------

    @hookimpl(trylast=True)
    async def introspect_datasource(self, datasource: Datasource) -> SchemaGraph:
        file = self._database_file(datasource)
        return await self.workers.bounded(
            self.settings.query_timeout_seconds,
            "reading the schema",
            lambda run: introspection.introspect(run, file),
        )

    @hookimpl(trylast=True)
    async def compute_statistics(
        self, datasource: Datasource, graph: SchemaGraph
    ) -> DatasourceStatistics:
        file = self._database_file(datasource)
        tables = []
        for table in graph.tables:
            if table.schema != introspection.SCHEMA:
                continue

            def one(run: Run, table: Table = table) -> TableStatistics:
                with run.connect(read_only_uri(file)) as connection:
                    return introspection.table_statistics(connection, table)

            tables.append(
                await self.workers.bounded(
                    self.settings.query_timeout_seconds, f"statistics of table {table.name!r}", one
                )
            )
        return DatasourceStatistics(tables=tables, computed_at=datetime.now(UTC))
