"""What the hooks do, on one MindsDB server: datasource lifecycle, queries, catalog.

Error mapping, the same everywhere:

* MindsDB refused the statement (``type: error``) or failed with an HTTP 5xx → 502
  `EngineFailed`: it was reached and said no, so the detail is its (cleaned) message;
* no answer at all (connection refused or reset, not a MindsDB reply) → 503
  `Unavailable`: nothing was decided, a retry may work once it is back;
* no answer in time → 504 `EngineTimeout`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Mapping
from typing import Any

from weaver.context import WeaverContext
from weaver.errors import EngineFailed, EngineTimeout, Unavailable, Unprocessable
from weaver.secrets import SecretsError
from weaver.streams import RowsInMemory
from weaver.types import (
    Datasource,
    DatasourceStatistics,
    HealthCheck,
    PreparedQuery,
    SchemaGraph,
    SqlDialect,
)
from weaver_mindsdb import introspection, statements
from weaver_mindsdb.client import MindsDBClient, MindsDBError, MindsDBUnreachable, Table
from weaver_mindsdb.engines import ENGINES
from weaver_mindsdb.results import to_result
from weaver_mindsdb.scrub import clean_message
from weaver_mindsdb.verify import verify_rendered

log = logging.getLogger(__name__)

# The dialect MindsDB's SQL is closest to: backquoted names, LIMIT n, MySQL functions;
# each datasource (a MindsDB database) has schemas of its own.
DIALECT = SqlDialect("mysql")


class MindsDB:
    """One MindsDB server as Weaver's query engine."""

    def __init__(self, context: WeaverContext, client: MindsDBClient) -> None:
        self.context = context
        self.client = client

    @property
    def timeout(self) -> float:
        return self.context.settings.query_timeout_seconds

    # --- running statements -----------------------------------------------------------

    async def _run(
        self,
        statement: str,
        *,
        seconds: float,
        datasources: Iterable[Datasource] = (),
        secrets: Iterable[str] = (),
    ) -> Table | None:
        """One statement, with MindsDB's failures turned into problems whose detail names
        only public names and no credential."""
        try:
            async with asyncio.timeout(seconds):
                return await self.client.sql(statement)
        except TimeoutError:
            # Leaving the `async with` closed the HTTP request; MindsDB itself goes on
            # running the statement on the source until it finishes (it has no cancel).
            raise EngineTimeout(f"the query engine did not answer within {seconds:g}s") from None
        except MindsDBUnreachable as error:
            raise Unavailable(str(error)) from None
        except MindsDBError as error:
            datasources = list(datasources)
            secrets = [*secrets, *self._secrets_of(datasources)]
            detail = clean_message(error.message, datasources=datasources, secrets=secrets)
            raise EngineFailed(detail) from None

    def _secrets_of(self, datasources: Iterable[Datasource]) -> list[str]:
        """The datasources' secret values, to mask them should an error message quote one."""
        found: list[str] = []
        for datasource in datasources:
            try:
                connection = self.context.reveal_connection(datasource)
            except SecretsError:
                continue
            found.extend(
                str(connection[key]) for key in datasource.secret_keys if key in connection
            )
        return found

    async def _native(self, datasource: Datasource, native_sql: str) -> list[dict[str, Any]]:
        statement = statements.native_query(datasource.internal_name, native_sql)
        table = await self._run(statement, seconds=self.timeout, datasources=[datasource])
        return table.records() if table is not None else []

    # --- datasources --------------------------------------------------------------------

    async def database_names(self) -> set[str]:
        """Every data integration MindsDB has (projects and system databases excluded)."""
        table = await self._run(
            "SELECT NAME, TYPE FROM information_schema.databases", seconds=self.timeout
        )
        rows = table.records() if table is not None else []
        return {str(row["name"]).lower() for row in rows if str(row["type"]).lower() == "data"}

    def _definition(
        self, datasource: Datasource, connection: Mapping[str, object]
    ) -> tuple[str, str, list[str]]:
        """CREATE and ALTER statements for the datasource, and its secret values."""
        spec = ENGINES.get(datasource.engine)
        if spec is None:
            raise Unprocessable(f"engine {datasource.engine!r} is not supported by MindsDB here")
        parameters = {key: connection[key] for key in spec.params if key in connection}
        secrets = [str(connection[key]) for key in datasource.secret_keys if key in connection]
        name = datasource.internal_name
        create = statements.create_database(name, spec.handler, parameters)
        # ALTER DATABASE merges the new parameters into the old ones; a parameter the new
        # connection no longer has is sent as null so that it does not linger.
        alter = statements.alter_database(name, {key: parameters.get(key) for key in spec.params})
        return create, alter, secrets

    async def register(
        self, datasource: Datasource, connection: Mapping[str, object], *, replace: bool
    ) -> None:
        """Create (or redefine) the datasource's MindsDB database; MindsDB checks the
        connection first and changes nothing when it fails."""
        create, alter, secrets = self._definition(datasource, connection)
        first, second = (alter, create) if replace else (create, alter)
        try:
            await self._run(first, seconds=self.timeout, datasources=[datasource], secrets=secrets)
        except EngineFailed:
            # CREATE refused because the database is left over from an earlier run (the
            # registry has just given this tenant the name, so nothing else owns it), or
            # ALTER refused because MindsDB lost it: the other statement is the right one.
            # Otherwise the first refusal (a bad connection) is the answer.
            exists = datasource.internal_name in await self.database_names()
            if exists == replace:
                raise
            await self._run(second, seconds=self.timeout, datasources=[datasource], secrets=secrets)

    async def create_if_missing(
        self, datasource: Datasource, connection: Mapping[str, object]
    ) -> bool:
        """Create the database unless it exists; never redefine one. Whether it created.

        For reconciliation, which reads the registry and MindsDB at one moment and acts a
        moment later: by then a request may have created or changed the database, and
        that newer definition must win over the one the reconciler read.
        """
        create, _, secrets = self._definition(datasource, connection)
        try:
            await self._run(create, seconds=self.timeout, datasources=[datasource], secrets=secrets)
        except EngineFailed:
            if datasource.internal_name in await self.database_names():
                return False
            raise
        return True

    async def unregister(self, datasource: Datasource) -> None:
        await self._run(
            statements.drop_database(datasource.internal_name),
            seconds=self.timeout,
            datasources=[datasource],
        )

    # --- queries ------------------------------------------------------------------------

    async def execute(self, query: PreparedQuery) -> RowsInMemory:
        datasources = list(query.datasources.values())
        # The core rendered the statement; MindsDB's own parser reads it once more.
        verify_rendered(query.sql, [d.internal_name for d in datasources])
        table = await self._run(query.sql, seconds=query.timeout_seconds, datasources=datasources)
        if table is None:
            raise EngineFailed("the query engine answered a query without rows")
        return to_result(table)

    async def cancel(self, query: PreparedQuery) -> bool:
        """MindsDB has no cancel of its own (its 26.1 HTTP and MySQL APIs know no KILL);
        the statement is stopped at the source where the gateway can reach it."""
        return False

    # --- catalog ------------------------------------------------------------------------

    def _catalog(self, datasource: Datasource) -> introspection.Catalog:
        catalog = introspection.CATALOGS.get(datasource.engine)
        if catalog is None:
            raise Unprocessable(f"engine {datasource.engine!r} cannot be introspected here")
        return catalog

    async def introspect(self, datasource: Datasource) -> SchemaGraph:
        return await introspection.introspect(
            self._catalog(datasource), lambda native: self._native(datasource, native)
        )

    async def statistics(self, datasource: Datasource, graph: SchemaGraph) -> DatasourceStatistics:
        return await introspection.compute(
            self._catalog(datasource), lambda native: self._native(datasource, native), graph
        )

    # --- health -------------------------------------------------------------------------

    async def health(self) -> HealthCheck:
        """Up when MindsDB's web server answers and its SQL layer runs ``SELECT 1``; the
        caller (the host) bounds the time."""
        try:
            status, _ = await asyncio.gather(self.client.status(), self.client.sql("SELECT 1"))
        except MindsDBUnreachable as error:
            return HealthCheck("down", str(error))
        except MindsDBError as error:
            return HealthCheck("down", clean_message(error.message))
        return HealthCheck("up", extra={"version": status.get("mindsdb_version")})
