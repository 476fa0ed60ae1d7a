"""What the hooks do, on one Trino cluster: catalogs for datasources, queries, catalog
reading.

Error mapping, the same everywhere:

* Trino's ``USER_ERROR`` (syntax, an unknown table or column, a type mismatch) → 400
  `QueryFailed`: the tenant can fix the statement; except for the few user errors that
  are not the tenant's (a catalog Trino lost, Weaver's own user refused, a query killed
  in Trino) → 502;
* any other failure (``INTERNAL_ERROR``, ``EXTERNAL`` such as a refused source login,
  ``INSUFFICIENT_RESOURCES``, a worker gone) → 502 `EngineFailed`, its message cleaned;
* no answer at all → 503 `Unavailable`; no answer in time → 504 `EngineTimeout`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from weaver.context import WeaverContext
from weaver.errors import EngineFailed, EngineTimeout, Problem, QueryFailed, Unavailable
from weaver.naming import is_internal_name
from weaver.secrets import SecretsError
from weaver.types import (
    Datasource,
    DatasourceStatistics,
    HealthCheck,
    PreparedQuery,
    SchemaGraph,
    SqlDialect,
)
from weaver_trino import introspection, statements
from weaver_trino.client import Statement, TrinoClient, TrinoQueryError, TrinoUnreachable
from weaver_trino.connections import CatalogDefinition, catalog_definition
from weaver_trino.rows import TrinoRows
from weaver_trino.scrub import clean_message
from weaver_trino.values import RowReader

log = logging.getLogger(__name__)

# Trino reads `a.b` as schema.table of the session's catalog, which Weaver never sets: a
# two-part `ds.table` of a PostgreSQL datasource means its `public` schema; other
# engines' datasources are named with their schema (a MySQL catalog shows every database
# of the server as a schema, so there is no one default).
DIALECT = SqlDialect("trino", default_schemas=(("postgres", "public"),))
# Every statement of Weaver's carries this client tag (and tenant queries their query id
# as client info), so Trino's query list tells them apart.
STATEMENT_TAG = "weaver"
# User errors that are not the tenant's to fix.
_NOT_THE_CALLERS = frozenset(
    {"CATALOG_NOT_FOUND", "PERMISSION_DENIED", "USER_CANCELED", "ALREADY_EXISTS", "NOT_SUPPORTED"}
)


class Trino:
    """One Trino cluster as Weaver's query engine (a `weaver.external.engine.ExternalEngine`),
    a catalog per datasource."""

    label = "Trino"

    def __init__(self, context: WeaverContext, client: TrinoClient) -> None:
        self.context = context
        self.client = client
        # Statements of this process that may still run, by the core's query id.
        self._running: dict[str, Statement] = {}
        # One change at a time per catalog name within this process: a replacement and
        # the repair of a lost catalog must not interleave their DROP and CREATE.
        self._catalog_locks: dict[str, asyncio.Lock] = {}

    @property
    def timeout(self) -> float:
        return self.context.settings.query_timeout_seconds

    # --- running the gateway's own statements ---------------------------------------------

    async def _send(self, sql: str, seconds: float | None = None) -> tuple[Any, list[list[Any]]]:
        """``sql`` run to the end; Trino's own refusal is raised as `TrinoQueryError` for
        the caller to judge, the rest mapped already."""
        try:
            async with asyncio.timeout(seconds or self.timeout):
                return await self.client.execute(sql)
        except TimeoutError:
            raise EngineTimeout(
                f"the query engine did not answer within {seconds or self.timeout:g}s"
            ) from None
        except TrinoUnreachable as error:
            raise Unavailable(str(error)) from None

    async def _run(
        self,
        sql: str,
        *,
        datasources: Iterable[Datasource] = (),
        secrets: Iterable[str] = (),
    ) -> list[dict[str, Any]]:
        """``sql``'s rows keyed by lower-cased column name, values typed; every failure a
        problem whose detail names only public names and no secret."""
        try:
            columns, rows = await self._send(sql)
        except TrinoQueryError as error:
            raise self._problem(error, datasources, secrets) from None
        reader = RowReader(columns)
        names = [column.name.lower() for column in columns]
        return [dict(zip(names, row, strict=True)) for row in reader.read(rows)]

    def _problem(
        self, error: TrinoQueryError, datasources: Iterable[Datasource], secrets: Iterable[str]
    ) -> Problem:
        datasources = list(datasources)
        detail = clean_message(
            error.message,
            datasources=datasources,
            secrets=[*secrets, *self._secrets_of(datasources)],
        )
        if error.name == "EXCEEDED_TIME_LIMIT":
            return EngineTimeout(detail)
        if error.kind == "USER_ERROR" and error.name not in _NOT_THE_CALLERS:
            return QueryFailed(detail)
        return EngineFailed(detail)

    def _secrets_of(self, datasources: Iterable[Datasource]) -> list[str]:
        """The datasources' secret values, to mask them should a message quote one."""
        found: list[str] = []
        for datasource in datasources:
            try:
                connection = self.context.reveal_connection(datasource)
            except SecretsError:
                continue
            found.extend(str(connection[k]) for k in datasource.secret_keys if k in connection)
        return found

    # --- catalogs ----------------------------------------------------------------------

    def _lock(self, catalog: str) -> asyncio.Lock:
        return self._catalog_locks.setdefault(catalog, asyncio.Lock())

    async def database_names(self) -> set[str]:
        """Every catalog Trino has, lower case."""
        _, rows = await self._checked_send("SHOW CATALOGS")
        return {str(row[0]).lower() for row in rows}

    def named_like_weavers(self, name: str) -> bool:
        # A staging catalog is Weaver's too: a replacement that died half-way leaves one.
        return is_internal_name(name) or statements.internal_name_of_staging(name) is not None

    async def _checked_send(self, sql: str) -> tuple[Any, list[list[Any]]]:
        try:
            return await self._send(sql)
        except TrinoQueryError as error:
            raise self._problem(error, (), ()) from None

    async def _define(
        self, catalog: str, definition: CatalogDefinition, datasource: Datasource
    ) -> bool:
        """CREATE CATALOG; False when one of that name exists already."""
        sql = statements.create_catalog(catalog, definition.connector, definition.properties)
        try:
            await self._send(sql)
        except TrinoQueryError as error:
            if error.name == "ALREADY_EXISTS":
                return False
            raise self._problem(error, [datasource], definition.secrets) from None
        return True

    async def _drop(self, catalog: str) -> None:
        await self._checked_send(statements.drop_catalog(catalog))

    async def _prove(
        self, catalog: str, definition: CatalogDefinition, datasource: Datasource
    ) -> None:
        """A real round trip to the source: CREATE CATALOG accepts a wrong password."""
        await self._run(
            f"SHOW SCHEMAS FROM {statements.quote_catalog(catalog)}",
            datasources=[datasource],
            secrets=definition.secrets,
        )

    async def register(
        self, datasource: Datasource, connection: Mapping[str, object], *, replace: bool
    ) -> None:
        """Create the datasource's catalog, or replace its definition, once the source
        answers through it; on a refusal nothing changes."""
        definition = catalog_definition(datasource.engine, connection)
        catalog = datasource.internal_name
        async with self._lock(catalog):
            if not replace and await self._define(catalog, definition, datasource):
                try:
                    await self._prove(catalog, definition, datasource)
                except BaseException:
                    await asyncio.shield(self._drop(catalog))
                    raise
                return
            # A changed connection, or a catalog of this name left from an earlier run
            # (the registry has just given the name to this datasource, so it is ours).
            await self._replace(catalog, definition, datasource)

    async def _replace(
        self, catalog: str, definition: CatalogDefinition, datasource: Datasource
    ) -> None:
        """Prove the new definition under a staging name first: Trino cannot change a
        catalog in place, and the old one must keep working if the new one is refused."""
        staging = statements.staging_name(catalog)
        await self._drop(staging)  # a leftover of a replacement that died half-way
        await self._define(staging, definition, datasource)
        try:
            await self._prove(staging, definition, datasource)
            await self._drop(catalog)
            try:
                if not await self._define(catalog, definition, datasource):
                    # Made meanwhile by another gateway process; this definition wins.
                    await self._drop(catalog)
                    await self._define(catalog, definition, datasource)
            except BaseException:
                await asyncio.shield(self._restore_previous(datasource))
                raise
        finally:
            await asyncio.shield(self._drop(staging))

    async def _restore_previous(self, datasource: Datasource) -> None:
        """Put back the definition the registry still holds (the record changes only once
        the engine accepted the new one)."""
        try:
            previous = await self.context.registry.get_datasource(
                datasource.tenant_id, datasource.name
            )
            if previous is not None:
                definition = catalog_definition(
                    previous.engine, self.context.reveal_connection(previous)
                )
                await self._define(previous.internal_name, definition, previous)
        except (Problem, SecretsError) as error:
            log.warning(
                "could not restore datasource %s/%s in Trino: %s",
                datasource.tenant_id,
                datasource.name,
                error,
            )

    async def create_if_missing(
        self, datasource: Datasource, connection: Mapping[str, object]
    ) -> bool:
        """Create the catalog unless it exists, never redefine one; whether it created.

        For reconciliation and for a catalog lost while the gateway ran (the memory
        catalog store forgets every catalog when the coordinator restarts). Not proven:
        a source that is down now works through the catalog once it is back.
        """
        definition = catalog_definition(datasource.engine, connection)
        async with self._lock(datasource.internal_name):
            return await self._define(datasource.internal_name, definition, datasource)

    async def unregister(self, datasource: Datasource) -> None:
        async with self._lock(datasource.internal_name):
            await self._drop(datasource.internal_name)

    async def _restore_lost(self, datasources: Sequence[Datasource], message: str) -> bool:
        """Recreate those of ``datasources`` whose catalog Trino says it does not have;
        whether any was."""
        lost = [d for d in datasources if d.internal_name.lower() in message.lower()]
        for datasource in lost:
            try:
                connection = self.context.reveal_connection(datasource)
            except SecretsError:
                return False
            if await self.create_if_missing(datasource, connection):
                log.info(
                    "recreated the lost catalog of datasource %s/%s in Trino",
                    datasource.tenant_id,
                    datasource.name,
                )
        return bool(lost)

    # --- queries ------------------------------------------------------------------------

    async def execute(self, query: PreparedQuery) -> TrinoRows:
        """Post the statement and follow it until Trino knows its columns."""
        datasources = list(query.datasources.values())
        for attempt in range(2):
            statement = self.client.statement(
                query.sql, client_info=query.query_id, tags=(STATEMENT_TAG,)
            )
            self._running[query.query_id] = statement
            try:
                rows = await statement.start()
                while statement.columns is None and not statement.finished:
                    rows.extend(await statement.advance())
            except TrinoQueryError as error:
                self._forget(query.query_id, statement)
                if (
                    attempt == 0
                    and error.name == "CATALOG_NOT_FOUND"
                    and await self._restore_lost(datasources, error.message)
                ):
                    continue  # lost with a coordinator restart, recreated: once more
                raise self._problem(error, datasources, ()) from None
            except TrinoUnreachable as error:
                self._forget(query.query_id, statement)
                raise Unavailable(str(error)) from None
            except BaseException:
                # Cancelled or timed out while Trino was still queuing or planning.
                self._forget(query.query_id, statement)
                await asyncio.shield(statement.cancel())
                raise
            if statement.columns is None:
                self._forget(query.query_id, statement)
                raise EngineFailed("the query engine answered a query without columns")

            async def next_page(running: Statement) -> list[list[Any]]:
                try:
                    return await running.advance()
                except TrinoQueryError as error:
                    raise self._problem(error, datasources, ()) from None
                except TrinoUnreachable as error:
                    raise Unavailable(str(error)) from None

            def forget(started: Statement = statement) -> None:
                self._forget(query.query_id, started)

            return TrinoRows(statement, rows, next_page, forget)
        raise AssertionError("unreachable")  # the loop returns or raises

    def _forget(self, query_id: str, statement: Statement) -> None:
        if self._running.get(query_id) is statement:
            del self._running[query_id]

    async def cancel(self, query: PreparedQuery) -> bool:
        """DELETE the statement's next page: Trino ends the query (``USER_CANCELED``)
        and the connector closes its statement on the source."""
        statement = self._running.get(query.query_id)
        if statement is None:
            return False
        return await statement.cancel()

    # --- catalog reading ----------------------------------------------------------------

    def _runner(self, datasource: Datasource) -> introspection.Runner:
        async def run(sql: str) -> list[dict[str, Any]]:
            return await self._run(sql, datasources=[datasource])

        return run

    def _only_schema(self, datasource: Datasource) -> str | None:
        if datasource.engine == "postgres":
            return None
        database = datasource.connection.get("database")
        return str(database) if database else None

    async def introspect(self, datasource: Datasource) -> SchemaGraph:
        return await introspection.introspect(
            self._runner(datasource),
            datasource.internal_name,
            datasource.engine,
            self._only_schema(datasource),
        )

    async def statistics(self, datasource: Datasource, graph: SchemaGraph) -> DatasourceStatistics:
        return await introspection.compute(
            self._runner(datasource), datasource.internal_name, datasource.engine, graph
        )

    # --- health -------------------------------------------------------------------------

    async def health(self) -> HealthCheck:
        """Up when the coordinator has started; the workers it sees are reported (the
        caller, the host, bounds the time)."""
        try:
            info, nodes = await asyncio.gather(
                self.client.get_json("/v1/info"), self.client.get_json("/v1/node")
            )
        except TrinoUnreachable as error:
            return HealthCheck("down", str(error))
        if not isinstance(info, dict) or info.get("starting", True):
            return HealthCheck("down", "Trino is starting")
        version = (info.get("nodeVersion") or {}).get("version")
        workers = len(nodes) if isinstance(nodes, list) else None
        return HealthCheck("up", extra={"version": version, "workers": workers})
