"""The shape of an engine that keeps one database per datasource, named by the
datasource's internal name (what reconciliation calls), and the hooks of its plugin that
only hand the call to it.

A plugin subclasses `ExternalEngineHooks`, provides ``engine`` (open from its
``weaver_startup`` to its ``weaver_shutdown``), and writes the hooks that are its own:
start-up, shutdown, health (the engine's check through its
`weaver.external.reconcile.Reconciler`), ``sql_dialect``, ``validate_connection``. pluggy finds
the inherited hook implementations on the instance like its own.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from typing import Protocol

from weaver import hookimpl
from weaver.types import (
    Datasource,
    DatasourceStatistics,
    HealthCheck,
    PreparedQuery,
    RowStream,
    SchemaGraph,
)


class ExternalEngine(Protocol):
    """One external engine (a server or cluster) as Weaver's query engine."""

    # How logs name the engine ("MindsDB", "Trino").
    label: str

    async def database_names(self) -> set[str]:
        """Every database the engine has now, lower case (Weaver's and any other)."""

    def named_like_weavers(self, name: str) -> bool:
        """Whether ``name`` is one Weaver gives its databases (for reporting strays)."""

    async def register(
        self, datasource: Datasource, connection: Mapping[str, object], *, replace: bool
    ) -> None:
        """Create (or, with ``replace``, redefine) the datasource's database."""

    async def create_if_missing(
        self, datasource: Datasource, connection: Mapping[str, object]
    ) -> bool:
        """Create the database unless it exists, never redefine one; whether it created."""

    async def unregister(self, datasource: Datasource) -> None:
        """Drop the datasource's database."""

    async def execute(self, query: PreparedQuery) -> RowStream:
        """Start the statement; its rows."""

    async def cancel(self, query: PreparedQuery) -> bool:
        """Stop the query's statement; whether one was running."""

    async def introspect(self, datasource: Datasource) -> SchemaGraph:
        """The datasource's tables, columns and keys, read through the engine."""

    async def statistics(self, datasource: Datasource, graph: SchemaGraph) -> DatasourceStatistics:
        """Row counts and column statistics of the tables in ``graph``."""

    async def health(self) -> HealthCheck:
        """Whether the engine answers, and how fast."""


class ExternalEngineHooks(ABC):
    """Datasource, query and catalog hooks, each one call on ``engine``."""

    @property
    @abstractmethod
    def engine(self) -> ExternalEngine: ...

    @hookimpl
    async def register_datasource(
        self, datasource: Datasource, connection: dict[str, object], replace: bool
    ) -> None:
        await self.engine.register(datasource, connection, replace=replace)

    @hookimpl
    async def unregister_datasource(self, datasource: Datasource) -> None:
        await self.engine.unregister(datasource)

    @hookimpl
    async def execute_query(self, query: PreparedQuery) -> RowStream:
        return await self.engine.execute(query)

    @hookimpl
    async def cancel_query(self, query: PreparedQuery) -> bool:
        return await self.engine.cancel(query)

    @hookimpl
    async def introspect_datasource(self, datasource: Datasource) -> SchemaGraph:
        return await self.engine.introspect(datasource)

    @hookimpl
    async def compute_statistics(
        self, datasource: Datasource, graph: SchemaGraph
    ) -> DatasourceStatistics:
        return await self.engine.statistics(datasource, graph)
