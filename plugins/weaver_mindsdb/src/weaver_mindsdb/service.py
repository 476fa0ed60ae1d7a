"""What the hooks do, on one MindsDB server: datasource lifecycle, queries, catalog.

Error mapping, the same everywhere:

* MindsDB refused a tenant's query for a reason the caller can fix (an unknown table or
  column, a type mismatch: `weaver_mindsdb.problems`) → 400 `QueryFailed`;
* MindsDB refused a statement otherwise (``type: error``), failed with an HTTP 5xx or
  broke its answer off → 502 `EngineFailed`: it was reached and said no, so the detail
  is its (cleaned) message;
* no answer at all (connection refused or reset, not a MindsDB reply) → 503
  `Unavailable`: nothing was decided, a retry may work once it is back;
* no answer in time → 504 `EngineTimeout` (for queries, the core's pump keeps the time
  and asks `cancel` to stop the statement).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Mapping
from typing import Any

from weaver.context import WeaverContext
from weaver.errors import EngineFailed, EngineTimeout, Problem, Unavailable, Unprocessable
from weaver.naming import is_internal_name
from weaver.netpolicy import check_targets
from weaver.secrets import SecretsError
from weaver.types import (
    Datasource,
    DatasourceStatistics,
    HealthCheck,
    PreparedQuery,
    SchemaGraph,
    SqlDialect,
)
from weaver_mindsdb import introspection, statements, tagging
from weaver_mindsdb.cancel import postgres_connector
from weaver_mindsdb.client import MindsDBClient, MindsDBError, MindsDBUnreachable, Table
from weaver_mindsdb.engines import ENGINES
from weaver_mindsdb.problems import query_problem
from weaver_mindsdb.running import MindsDBRows, ProblemFor, Source, Statement, open_rows
from weaver_mindsdb.scrub import clean_message
from weaver_mindsdb.verify import verify_rendered

log = logging.getLogger(__name__)

# The dialect MindsDB's SQL is closest to: backquoted names, LIMIT n, MySQL functions;
# each datasource (a MindsDB database) has schemas of its own.
DIALECT = SqlDialect("mysql")
# Datasource engines whose statements can be tagged and stopped at the source.
STOPPABLE_ENGINES = ("postgres",)
# Of the health check's time, what the SQL round trip may take: past it, MindsDB is up
# (it answered its ping) but every worker is busy.
HEALTH_SQL_SHARE = 0.5


class MindsDB:
    """One MindsDB server as Weaver's query engine (a `weaver.external.engine.ExternalEngine`)."""

    label = "MindsDB"

    def __init__(self, context: WeaverContext, client: MindsDBClient) -> None:
        self.context = context
        self.client = client
        # The statements of this process that may still run, by query id.
        self.statements: dict[str, Statement] = {}

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

    def named_like_weavers(self, name: str) -> bool:
        return is_internal_name(name)

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
        own = self._own_parameters(datasource)
        create = statements.create_database(name, spec.handler, {**parameters, **own})
        # ALTER DATABASE merges the new parameters into the old ones; a parameter the new
        # connection no longer has is sent as null so that it does not linger.
        changed = {key: parameters.get(key) for key in spec.params}
        alter = statements.alter_database(name, {**changed, **own})
        return create, alter, secrets

    @staticmethod
    def _own_parameters(datasource: Datasource) -> dict[str, object]:
        """What the gateway adds to a tenant's connection (tenants may not send these):
        PostgreSQL connections named for the datasource (`weaver_mindsdb.tagging`)."""
        if datasource.engine != "postgres":
            return {}
        application_name = tagging.datasource_application_name(datasource.internal_name)
        return {"connection_parameters": {"application_name": application_name}}

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

    async def execute(self, query: PreparedQuery) -> MindsDBRows:
        """Start the statement and hand on its rows once the first batch is read. No
        deadline here: the core bounds every wait and calls `cancel` when one passes."""
        datasources = list(query.datasources.values())
        # The core rendered the statement; MindsDB's own parser reads it once more.
        verify_rendered(query.sql, [d.internal_name for d in datasources])
        statement = self._start(query, datasources)
        problem_for = self._problem_for(datasources)
        # Shielded: a request given up while MindsDB plans leaves the opening running,
        # so that `cancel` still learns when the statement reaches the source.
        opening = asyncio.create_task(
            open_rows(self.client, statement, problem_for),
            name=f"weaver-mindsdb-open-{query.query_id}",
        )
        opening.add_done_callback(_retrieve)
        try:
            return await asyncio.shield(opening)
        except asyncio.CancelledError:
            statement.abandon()
            raise
        except MindsDBUnreachable as error:
            statement.release()
            raise Unavailable(str(error)) from None
        except MindsDBError as error:
            statement.release()
            raise problem_for(error.message, statement.sent) from None
        except BaseException:
            statement.release()
            raise

    def _start(self, query: PreparedQuery, datasources: list[Datasource]) -> Statement:
        source = self._source(query, datasources)
        tagged = tagging.tag_statement(query.sql, source.tag) if source is not None else None
        statement = Statement(query, query.sql, source, tagged, self._forget)
        self.statements[query.query_id] = statement
        return statement

    def _forget(self, statement: Statement) -> None:
        if self.statements.get(statement.query_id) is statement:
            del self.statements[statement.query_id]

    def _source(self, query: PreparedQuery, datasources: list[Datasource]) -> Source | None:
        """Where the statement can be found to stop it: a statement of one PostgreSQL
        datasource that MindsDB pushes down whole. A join across datasources is planned
        by MindsDB into one fetch per datasource, none of which can carry the tag."""
        if not self.context.settings.mindsdb_tag_queries:
            return None
        if len(datasources) != 1 or datasources[0].engine not in STOPPABLE_ENGINES:
            return None
        tag = tagging.query_tag(query.query_id)
        if tag is None or not tagging.can_tag(query.sql):
            return None
        datasource = datasources[0]

        async def connect() -> object:
            # Revealed only when needed; the target is checked again, as on registration,
            # since the gateway itself now connects to it.
            try:
                connection = self.context.reveal_connection(datasource)
            except SecretsError:
                raise EngineFailed("the datasource's credentials cannot be opened") from None
            port = connection.get("port")
            targets = ((str(connection["host"]), port if isinstance(port, int) else None),)
            await check_targets(targets, self.context.settings)
            return await postgres_connector(connection)()

        return Source(tag, connect)

    def _problem_for(self, datasources: list[Datasource]) -> ProblemFor:
        def problem(message: str, sent: str) -> Problem:
            return query_problem(
                message,
                statement=sent,
                datasources=datasources,
                secrets=self._secrets_of(datasources),
            )

        return problem

    async def cancel(self, query: PreparedQuery) -> bool:
        """Stop the query's statement: MindsDB has none of its own (its 26.1 HTTP and
        MySQL APIs know no KILL), so a tagged statement is cancelled on its PostgreSQL
        source; any other is only dropped here, and MindsDB runs it to its end."""
        statement = self.statements.get(query.query_id)
        if statement is None:
            return False
        return await statement.stop()

    def close(self) -> None:
        for statement in list(self.statements.values()):
            statement.close()

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
        """Up when MindsDB answers its ping and its SQL layer runs ``SELECT 1``, or is
        too busy to within part of the check's time; the caller (the host) bounds it.

        Every SQL request waits for one of MindsDB's HTTP workers, so while long queries
        hold them all, ``SELECT 1`` waits too; the ping does not, and is the liveness.
        """
        try:
            await self.client.ping()
        except MindsDBUnreachable as error:
            return HealthCheck("down", str(error))
        seconds = self.context.settings.health_check_timeout * HEALTH_SQL_SHARE
        try:
            async with asyncio.timeout(seconds):
                status, _ = await asyncio.gather(self.client.status(), self.client.sql("SELECT 1"))
        except TimeoutError:
            return HealthCheck(
                "up", "MindsDB answers, but its SQL workers are all busy", extra={"sql": "busy"}
            )
        except MindsDBUnreachable as error:
            return HealthCheck("down", str(error))
        except MindsDBError as error:
            return HealthCheck("down", clean_message(error.message))
        return HealthCheck("up", extra={"version": status.get("mindsdb_version"), "sql": "up"})


def _retrieve(task: asyncio.Task[MindsDBRows]) -> None:
    """An opening whose request was given up ends unawaited: its failure is expected."""
    if not task.cancelled():
        task.exception()
