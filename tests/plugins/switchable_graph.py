"""A schema-graph store for tests of operations across backends: it keeps graphs in
memory, owns the graph hooks (glossary links included), and can be switched off (every
call then answers as an unreachable backend does) and on again."""

from __future__ import annotations

from weaver import hookimpl
from weaver.errors import Unavailable
from weaver.settings import Settings
from weaver.types import Datasource, GlossaryLink, GlossaryTerm, SchemaGraph


class SwitchableGraph:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.up = True
        self.graphs: dict[tuple[str, str], SchemaGraph] = {}
        self.terms: dict[tuple[str, str], GlossaryTerm] = {}

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

    @hookimpl
    def store_glossary_links(self, term: GlossaryTerm) -> None:
        self._reachable()
        self.terms[(term.tenant_id, term.id)] = term

    @hookimpl
    def delete_glossary_links(self, tenant_id: str, term_id: str) -> None:
        self._reachable()
        self.terms.pop((tenant_id, term_id), None)

    @hookimpl
    def load_glossary_links(self, datasource: Datasource) -> list[GlossaryLink]:
        self._reachable()
        graph = self.graphs.get((datasource.tenant_id, datasource.name))
        present = {
            (t.schema, t.name, c.name) for t in (graph.tables if graph else []) for c in t.columns
        }
        links = [
            GlossaryLink(term.id, term.term, schema, table, column)
            for (tenant_id, _), term in self.terms.items()
            if tenant_id == datasource.tenant_id
            for name, schema, table, column in term.column_keys()
            if name == datasource.name and (schema, table, column) in present
        ]
        return sorted(links, key=lambda link: (link.schema, link.table, link.column, link.term))
