"""A schema-graph store for tests of operations across backends: it keeps graphs in
memory, owns the graph hooks, and can be switched off (every call then answers as an
unreachable backend does) and on again."""

from __future__ import annotations

from weaver import hookimpl
from weaver.errors import Unavailable
from weaver.settings import Settings
from weaver.types import Datasource, SchemaGraph


class SwitchableGraph:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.up = True
        self.graphs: dict[tuple[str, str], SchemaGraph] = {}

    def _reachable(self) -> None:
        if not self.up:
            raise Unavailable("the graph store cannot be reached")

    @hookimpl
    def store_metadata(self, datasource: Datasource, graph: SchemaGraph) -> None:
        self._reachable()
        self.graphs[(datasource.tenant_id, datasource.name)] = graph

    @hookimpl
    def load_metadata(self, datasource: Datasource) -> SchemaGraph | None:
        self._reachable()
        return self.graphs.get((datasource.tenant_id, datasource.name))

    @hookimpl
    def delete_metadata(self, datasource: Datasource) -> None:
        self._reachable()
        self.graphs.pop((datasource.tenant_id, datasource.name), None)
