"""Contract tests for the registry and metadata hooks.

Subclass `StoreContract`, name your plugin in ``plugin`` and provide a ``host`` fixture:
a started `weaver.host.Host` with your plugin enabled. The tests go through the host
facade only, so a plugin that owns some of the hooks (snapshots, say) is tested together
with whatever owns the rest; it lists the hooks it owns in ``plugin_hooks``::

    class TestMyStore(StoreContract):
        plugin = "mystore"
        plugin_hooks = ("save_snapshot", "list_snapshots", "get_snapshot")

        @pytest.fixture
        async def host(self, tmp_path):
            async with running_host(make_settings(tmp_path, WEAVER_MYSTORE_MODE="true")) as host:
                yield host

Every test works in tenants of its own (the ``tenant_a``/``tenant_b`` fixtures), so the
kit can run against a server that keeps data between runs.
"""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from weaver.errors import Conflict, NotFound
from weaver.host import Host
from weaver.testing.harness import PluginContract
from weaver.types import (
    Column,
    ColumnRef,
    ColumnStatistics,
    Datasource,
    DatasourceStatistics,
    GlossaryLink,
    GlossaryTerm,
    JoinHop,
    JoinPath,
    JoinPathRequest,
    Page,
    Repair,
    SchemaGraph,
    SearchHit,
    Snapshot,
    Table,
    TableName,
    TableStatistics,
)
from weaver.workflows import agents

EPOCH = datetime(2024, 5, 1, 12, 30, 15, 123456, tzinfo=UTC)


def make_datasource(tenant_id: str, name: str, description: str | None = None) -> Datasource:
    return Datasource(
        tenant_id=tenant_id,
        name=name,
        engine="postgres",
        internal_name=f"w_{tenant_id}_{name}",
        connection={"host": "db.internal", "port": 5432, "database": name, "user": "reader"},
        sealed_secrets=f"v1.test.sealed-{name}",
        secret_keys=("password",),
        description=description,
        created_at=EPOCH,
        updated_at=EPOCH + timedelta(seconds=1),
    )


def shop_graph() -> SchemaGraph:
    """Two schemas, a foreign key, mixed-case names."""
    return SchemaGraph(
        schemas=["public", "sales"],
        tables=[
            Table(
                "public",
                "Customers",
                [
                    Column("id", "integer", False, 1, primary_key=True),
                    Column("Email_Address", "text", True, 2),
                ],
                row_count=42,
            ),
            Table(
                "sales",
                "orders",
                [
                    Column("id", "bigint", False, 1, primary_key=True),
                    Column(
                        "customer_id",
                        "integer",
                        False,
                        2,
                        references=ColumnRef("public", "Customers", "id"),
                    ),
                    Column("total_amount", "numeric(12,2)", True, 3),
                ],
            ),
        ],
    )


def warehouse_graph() -> SchemaGraph:
    """A graph sharing no table name with `shop_graph`."""
    return SchemaGraph(
        schemas=["stock"],
        tables=[
            Table(
                "stock",
                "inventory",
                [
                    Column("sku", "text", False, 1, primary_key=True),
                    Column("quantity", "integer", False, 2),
                ],
            )
        ],
    )


def wide_graph(tables: int, columns: int) -> SchemaGraph:
    """A synthetic graph of any size: ``tables`` tables of ``columns`` columns over
    three schemas (and an empty fourth); every table but the first has a foreign key
    to the previous table's primary key."""
    schemas = ["core", "mart", "raw"]
    built: list[Table] = []
    for n in range(tables):
        schema = schemas[n % len(schemas)]
        cols = [Column("id", "bigint", False, 1, primary_key=True)]
        if n:
            previous = built[-1]
            cols.append(
                Column(
                    "parent_id",
                    "bigint",
                    True,
                    2,
                    references=ColumnRef(previous.schema, previous.name, "id"),
                )
            )
        cols += [
            Column(f"attr_{n}_{i}", "text", True, i) for i in range(len(cols) + 1, columns + 1)
        ]
        built.append(Table(schema, f"table_{n:04d}", cols, row_count=n * 10))
    return SchemaGraph(schemas=[*schemas, "empty"], tables=built)


def make_term(
    tenant_id: str,
    term: str,
    definition: str = "A business term.",
    synonyms: list[str] | None = None,
) -> GlossaryTerm:
    return GlossaryTerm(
        id=uuid.uuid4().hex,
        tenant_id=tenant_id,
        term=term,
        definition=definition,
        synonyms=tuple(synonyms or ()),
        columns=("shop.sales.orders.total_amount",),
        created_at=EPOCH,
        updated_at=EPOCH,
    )


def make_statistics(row_count: int) -> DatasourceStatistics:
    return DatasourceStatistics(
        tables=[
            TableStatistics(
                "sales",
                "orders",
                row_count,
                [
                    ColumnStatistics("id", 0, row_count, 1, row_count),
                    ColumnStatistics("total_amount", 3, 17, "0.50", "999.99"),
                    ColumnStatistics("note", row_count, 0),
                ],
            )
        ],
        computed_at=EPOCH,
    )


def search_key(hit: SearchHit) -> str:
    """The cursor `search_metadata` takes: the last hit as datasource.schema.table[.column]."""
    key = f"{hit.datasource_name}.{hit.schema}.{hit.table}"
    return key if hit.column is None else f"{key}.{hit.column}"


def _table(schema: str, name: str, *columns: Column) -> Table:
    return Table(schema, name, list(columns))


def _key(name: str, ordinal: int = 1) -> Column:
    return Column(name, "integer", False, ordinal, primary_key=True)


def _fk(name: str, ordinal: int, schema: str, table: str, column: str = "id") -> Column:
    return Column(name, "integer", False, ordinal, references=ColumnRef(schema, table, column))


def joins_graph() -> SchemaGraph:
    """A shop whose tables are one, two and three hops apart, with two foreign keys
    between one pair of tables, a key referring to its own table, a table without keys
    and a foreign key into another schema."""
    return SchemaGraph(
        schemas=["sales", "catalog"],
        tables=[
            _table("sales", "customers", _key("id")),
            _table(
                "sales",
                "orders",
                _key("id"),
                _fk("customer_id", 2, "sales", "customers"),
                _fk("billing_address_id", 3, "sales", "addresses"),
                _fk("shipping_address_id", 4, "sales", "addresses"),
            ),
            _table("sales", "addresses", _key("id")),
            _table(
                "sales",
                "order_items",
                _key("id"),
                _fk("order_id", 2, "sales", "orders"),
                _fk("product_id", 3, "catalog", "products"),
            ),
            _table(
                "catalog", "products", _key("id"), _fk("category_id", 2, "catalog", "categories")
            ),
            _table("catalog", "categories", _key("id")),
            _table("sales", "employees", _key("id"), _fk("manager_id", 2, "sales", "employees")),
            _table("sales", "lonely", _key("id")),
        ],
    )


def crm_graph() -> SchemaGraph:
    """A second datasource meeting `joins_graph` only where the glossary says so."""
    return SchemaGraph(
        schemas=["public"],
        tables=[
            _table(
                "public",
                "accounts",
                _key("id"),
                Column("customer_id", "bigint", True, 2),
                Column("account_ref", "integer", True, 3),
                Column("email", "text", True, 4),
            )
        ],
    )


def table_name(path: str) -> TableName:
    return TableName(*path.split("."))


def hop(start: str, end: str) -> JoinHop:
    """A hop between two ``datasource.schema.table.column`` paths."""
    left, right = start.rsplit(".", 1), end.rsplit(".", 1)
    return JoinHop(table_name(left[0]), left[1], table_name(right[0]), right[1])


class StoreContract(PluginContract):
    """Conformance tests for the datasource registry and the metadata catalog."""

    contract_hooks = (
        "save_datasource",
        "get_datasource",
        "list_datasources",
        "all_datasources",
        "delete_datasource",
        "store_metadata",
        "load_metadata",
        "search_metadata",
        "save_snapshot",
        "list_snapshots",
        "get_snapshot",
        "save_glossary_term",
        "get_glossary_term",
        "list_glossary_terms",
        "delete_glossary_term",
        "store_glossary_links",
        "delete_glossary_links",
        "load_glossary_links",
        "save_statistics",
        "load_statistics",
        "find_join_paths",
        "save_repair",
        "list_repairs",
        "delete_repair",
    )

    @pytest.fixture
    def tenant_a(self) -> str:
        return f"ta{uuid.uuid4().hex[:12]}"

    @pytest.fixture
    def tenant_b(self) -> str:
        return f"tb{uuid.uuid4().hex[:12]}"

    async def registered(self, host: Host, tenant_id: str, name: str) -> Datasource:
        datasource = make_datasource(tenant_id, name)
        await host.save_datasource(datasource, create=True)
        return datasource

    # --- datasource registry -------------------------------------------------------

    async def test_datasource_round_trip(self, host: Host, tenant_a: str) -> None:
        datasource = make_datasource(tenant_a, "sales", description="Sales mart")
        await host.save_datasource(datasource, create=True)
        assert await host.get_datasource(tenant_a, "sales") == datasource

    async def test_missing_datasource_is_none(self, host: Host, tenant_a: str) -> None:
        assert await host.get_datasource(tenant_a, "nothing_here") is None

    async def test_creating_an_existing_name_conflicts(self, host: Host, tenant_a: str) -> None:
        original = await self.registered(host, tenant_a, "sales")
        with pytest.raises(Conflict):
            await host.save_datasource(
                make_datasource(tenant_a, "sales", description="again"), create=True
            )
        assert await host.get_datasource(tenant_a, "sales") == original

    async def test_concurrent_creates_of_one_name_let_exactly_one_win(
        self, host: Host, tenant_a: str
    ) -> None:
        contenders = [make_datasource(tenant_a, "sales", description=str(n)) for n in range(4)]
        outcomes = await asyncio.gather(
            *(host.save_datasource(d, create=True) for d in contenders), return_exceptions=True
        )
        assert sum(o is None for o in outcomes) == 1
        assert all(isinstance(o, Conflict) for o in outcomes if o is not None)
        winner = contenders[outcomes.index(None)]
        assert await host.get_datasource(tenant_a, "sales") == winner

    async def test_replace_changes_the_record(self, host: Host, tenant_a: str) -> None:
        original = await self.registered(host, tenant_a, "sales")
        changed = replace(
            original,
            description="now described",
            connection={**original.connection, "port": 6543},
            sealed_secrets="v1.test.resealed",
            updated_at=EPOCH + timedelta(days=1),
        )
        await host.save_datasource(changed, create=False)
        assert await host.get_datasource(tenant_a, "sales") == changed

    async def test_replacing_a_missing_datasource_is_not_found(
        self, host: Host, tenant_a: str
    ) -> None:
        with pytest.raises(NotFound):
            await host.save_datasource(make_datasource(tenant_a, "ghost"), create=False)
        assert await host.get_datasource(tenant_a, "ghost") is None

    async def test_list_is_ordered_by_name_and_paged(self, host: Host, tenant_a: str) -> None:
        for name in ["orders", "billing", "zeta", "crm"]:
            await self.registered(host, tenant_a, name)
        first = await host.list_datasources(tenant_a, Page(limit=3))
        assert [d.name for d in first] == ["billing", "crm", "orders"]
        second = await host.list_datasources(tenant_a, Page(limit=3, after="orders"))
        assert [d.name for d in second] == ["zeta"]
        assert await host.list_datasources(tenant_a, Page(limit=3, after="zeta")) == []
        assert first[0] == await host.get_datasource(tenant_a, "billing")

    async def test_all_datasources_spans_tenants(
        self, host: Host, tenant_a: str, tenant_b: str
    ) -> None:
        mine = await self.registered(host, tenant_a, "sales")
        theirs = await self.registered(host, tenant_b, "sales")
        everything = await host.all_datasources()
        assert mine in everything
        assert theirs in everything

    async def test_delete_reports_whether_it_existed(self, host: Host, tenant_a: str) -> None:
        await self.registered(host, tenant_a, "sales")
        assert await host.delete_datasource(tenant_a, "sales") is True
        assert await host.get_datasource(tenant_a, "sales") is None
        assert await host.delete_datasource(tenant_a, "sales") is False

    async def test_datasources_are_tenant_scoped(
        self, host: Host, tenant_a: str, tenant_b: str
    ) -> None:
        mine = await self.registered(host, tenant_a, "sales")
        assert await host.get_datasource(tenant_b, "sales") is None
        assert await host.list_datasources(tenant_b, Page(limit=10)) == []
        assert await host.delete_datasource(tenant_b, "sales") is False
        with pytest.raises(NotFound):
            await host.save_datasource(make_datasource(tenant_b, "sales"), create=False)
        # The same name is free in another tenant, and removing it there leaves ours.
        theirs = await self.registered(host, tenant_b, "sales")
        assert await host.delete_datasource(tenant_b, "sales") is True
        assert await host.get_datasource(tenant_a, "sales") == mine
        assert theirs != mine

    # --- schema graph ----------------------------------------------------------------

    async def test_never_synced_graph_is_none(self, host: Host, tenant_a: str) -> None:
        datasource = await self.registered(host, tenant_a, "shop")
        assert await host.load_metadata(datasource) is None

    async def test_graph_round_trip_keeps_foreign_keys(self, host: Host, tenant_a: str) -> None:
        datasource = await self.registered(host, tenant_a, "shop")
        await host.store_metadata(datasource, shop_graph())
        loaded = await host.load_metadata(datasource)
        assert loaded == shop_graph()
        assert loaded is not None
        assert loaded.foreign_key_count == 1
        orders = next(t for t in loaded.tables if t.name == "orders")
        assert orders.columns[1].references == ColumnRef("public", "Customers", "id")

    async def test_store_metadata_replaces_the_graph(self, host: Host, tenant_a: str) -> None:
        datasource = await self.registered(host, tenant_a, "shop")
        await host.store_metadata(datasource, shop_graph())
        await host.store_metadata(datasource, warehouse_graph())
        assert await host.load_metadata(datasource) == warehouse_graph()
        assert await host.search_metadata(tenant_a, "orders", "table", Page(10)) == []
        hits = await host.search_metadata(tenant_a, "invent", "table", Page(10))
        assert hits == [SearchHit("table", "shop", "stock", "inventory")]

    async def test_graph_is_tenant_scoped(self, host: Host, tenant_a: str, tenant_b: str) -> None:
        mine = await self.registered(host, tenant_a, "shop")
        theirs = await self.registered(host, tenant_b, "shop")
        await host.store_metadata(mine, shop_graph())
        assert await host.load_metadata(theirs) is None
        await host.store_metadata(theirs, warehouse_graph())
        assert await host.load_metadata(mine) == shop_graph()

    # --- search ----------------------------------------------------------------------

    async def test_search_tables_by_case_insensitive_substring(
        self, host: Host, tenant_a: str
    ) -> None:
        datasource = await self.registered(host, tenant_a, "shop")
        await host.store_metadata(datasource, shop_graph())
        assert await host.search_metadata(tenant_a, "CUSTOM", "table", Page(10)) == [
            SearchHit("table", "shop", "public", "Customers")
        ]
        assert await host.search_metadata(tenant_a, "rDe", "table", Page(10)) == [
            SearchHit("table", "shop", "sales", "orders")
        ]
        assert await host.search_metadata(tenant_a, "absent", "table", Page(10)) == []

    async def test_search_columns_report_their_type(self, host: Host, tenant_a: str) -> None:
        datasource = await self.registered(host, tenant_a, "shop")
        await host.store_metadata(datasource, shop_graph())
        assert await host.search_metadata(tenant_a, "email", "column", Page(10)) == [
            SearchHit("column", "shop", "public", "Customers", "Email_Address", "text")
        ]
        # Table names are not column matches.
        assert await host.search_metadata(tenant_a, "orders", "column", Page(10)) == []

    async def test_search_is_ordered_across_datasources_and_paged(
        self, host: Host, tenant_a: str
    ) -> None:
        for name in ["shop", "archive"]:
            await host.store_metadata(await self.registered(host, tenant_a, name), shop_graph())
        expected = [
            SearchHit("column", ds, schema, table, column, data_type)
            for ds in ["archive", "shop"]
            for schema, table, column, data_type in [
                ("public", "Customers", "id", "integer"),
                ("sales", "orders", "customer_id", "integer"),
                ("sales", "orders", "id", "bigint"),
            ]
        ]
        collected: list[SearchHit] = []
        page = Page(limit=4)
        while hits := await host.search_metadata(tenant_a, "ID", "column", page):
            assert len(hits) <= 4
            collected.extend(hits)
            page = Page(limit=4, after=search_key(hits[-1]))
        assert collected == expected
        tables = await host.search_metadata(tenant_a, "s", "table", Page(limit=2))
        assert [search_key(h) for h in tables] == [
            "archive.public.Customers",
            "archive.sales.orders",
        ]
        rest = await host.search_metadata(tenant_a, "s", "table", Page(2, search_key(tables[-1])))
        assert [search_key(h) for h in rest] == ["shop.public.Customers", "shop.sales.orders"]

    async def test_search_is_tenant_scoped(self, host: Host, tenant_a: str, tenant_b: str) -> None:
        await host.store_metadata(await self.registered(host, tenant_a, "shop"), shop_graph())
        assert await host.search_metadata(tenant_b, "orders", "table", Page(10)) == []
        assert await host.search_metadata(tenant_b, "id", "column", Page(10)) == []

    # --- snapshots -------------------------------------------------------------------

    def snapshot(self, datasource: Datasource, minutes: int, graph: SchemaGraph) -> Snapshot:
        return Snapshot(
            id=uuid.uuid4().hex,
            tenant_id=datasource.tenant_id,
            datasource_name=datasource.name,
            created_at=EPOCH + timedelta(minutes=minutes),
            graph=graph,
        )

    async def test_snapshots_are_listed_newest_first_and_paged(
        self, host: Host, tenant_a: str
    ) -> None:
        datasource = await self.registered(host, tenant_a, "shop")
        saved = [
            self.snapshot(datasource, 5, shop_graph()),
            self.snapshot(datasource, 1, warehouse_graph()),
            self.snapshot(datasource, 9, shop_graph()),
        ]
        for snapshot in saved:
            await host.save_snapshot(snapshot)
        newest_first = sorted(saved, key=lambda s: s.created_at, reverse=True)
        first = await host.list_snapshots(datasource, Page(limit=2))
        assert [s.id for s in first] == [s.id for s in newest_first[:2]]
        assert first[0].created_at == newest_first[0].created_at
        assert (first[1].tables, first[1].columns) == (2, 5)
        rest = await host.list_snapshots(datasource, Page(limit=2, after=first[-1].id))
        assert [s.id for s in rest] == [newest_first[2].id]
        assert (rest[0].tables, rest[0].columns) == (1, 2)
        assert await host.list_snapshots(datasource, Page(limit=2, after=rest[-1].id)) == []

    async def test_get_snapshot_returns_the_graph_as_it_was(
        self, host: Host, tenant_a: str
    ) -> None:
        datasource = await self.registered(host, tenant_a, "shop")
        snapshot = self.snapshot(datasource, 0, shop_graph())
        await host.save_snapshot(snapshot)
        await host.store_metadata(datasource, warehouse_graph())
        assert await host.get_snapshot(datasource, snapshot.id) == snapshot
        assert await host.get_snapshot(datasource, uuid.uuid4().hex) is None

    async def test_snapshots_are_scoped_to_their_datasource_and_tenant(
        self, host: Host, tenant_a: str, tenant_b: str
    ) -> None:
        mine = await self.registered(host, tenant_a, "shop")
        other = await self.registered(host, tenant_a, "other")
        theirs = await self.registered(host, tenant_b, "shop")
        snapshot = self.snapshot(mine, 0, shop_graph())
        await host.save_snapshot(snapshot)
        for datasource in [other, theirs]:
            assert await host.list_snapshots(datasource, Page(limit=10)) == []
            assert await host.get_snapshot(datasource, snapshot.id) is None
        assert [s.id for s in await host.list_snapshots(mine, Page(limit=10))] == [snapshot.id]

    # --- glossary --------------------------------------------------------------------

    async def test_glossary_term_round_trip(self, host: Host, tenant_a: str) -> None:
        term = make_term(tenant_a, "Revenue", "Money earned.", ["Turnover", "Sales"])
        await host.save_glossary_term(term, create=True)
        assert await host.get_glossary_term(tenant_a, term.id) == term
        assert await host.get_glossary_term(tenant_a, uuid.uuid4().hex) is None

    async def test_duplicate_term_conflicts_ignoring_case(self, host: Host, tenant_a: str) -> None:
        await host.save_glossary_term(make_term(tenant_a, "Revenue"), create=True)
        duplicate = make_term(tenant_a, "REVENUE")
        with pytest.raises(Conflict):
            await host.save_glossary_term(duplicate, create=True)
        assert await host.get_glossary_term(tenant_a, duplicate.id) is None

    async def test_concurrent_creates_of_one_term_let_exactly_one_win(
        self, host: Host, tenant_a: str
    ) -> None:
        contenders = [make_term(tenant_a, spelling) for spelling in ["ARR", "arr", "Arr", "aRR"]]
        outcomes = await asyncio.gather(
            *(host.save_glossary_term(t, create=True) for t in contenders), return_exceptions=True
        )
        assert sum(o is None for o in outcomes) == 1
        assert all(isinstance(o, Conflict) for o in outcomes if o is not None)
        winner = contenders[outcomes.index(None)]
        assert await host.list_glossary_terms(tenant_a, None, Page(10)) == [winner]

    async def test_replace_term(self, host: Host, tenant_a: str) -> None:
        term = make_term(tenant_a, "Revenue")
        other = make_term(tenant_a, "Margin")
        for t in [term, other]:
            await host.save_glossary_term(t, create=True)
        changed = replace(
            term,
            term="revenue",
            definition="Income before costs.",
            synonyms=("Turnover",),
            updated_at=EPOCH + timedelta(hours=1),
        )
        await host.save_glossary_term(changed, create=False)
        assert await host.get_glossary_term(tenant_a, term.id) == changed
        with pytest.raises(Conflict):
            await host.save_glossary_term(replace(other, term="REVENUE"), create=False)
        assert await host.get_glossary_term(tenant_a, other.id) == other
        with pytest.raises(NotFound):
            await host.save_glossary_term(make_term(tenant_a, "Ghost"), create=False)

    async def test_terms_are_listed_by_lower_cased_term_and_paged(
        self, host: Host, tenant_a: str
    ) -> None:
        for word in ["margin", "Churn", "revenue", "ARPU"]:
            await host.save_glossary_term(make_term(tenant_a, word), create=True)
        first = await host.list_glossary_terms(tenant_a, None, Page(limit=3))
        assert [t.term for t in first] == ["ARPU", "Churn", "margin"]
        rest = await host.list_glossary_terms(tenant_a, None, Page(limit=3, after="margin"))
        assert [t.term for t in rest] == ["revenue"]

    async def test_terms_filter_by_term_synonym_or_definition(
        self, host: Host, tenant_a: str
    ) -> None:
        terms = [
            make_term(tenant_a, "Revenue", "Money earned from sales.", ["Turnover"]),
            make_term(tenant_a, "Churn", "Customers lost in a period."),
            make_term(tenant_a, "Net Revenue Retention", "Kept income.", ["NRR"]),
        ]
        for term in terms:
            await host.save_glossary_term(term, create=True)

        async def matching(text: str, after: str | None = None) -> list[str]:
            page = Page(limit=10 if after is None else 1, after=after)
            return [t.term for t in await host.list_glossary_terms(tenant_a, text, page)]

        assert await matching("REVENUE") == ["Net Revenue Retention", "Revenue"]
        assert await matching("turnover") == ["Revenue"]
        assert await matching("customers LOST") == ["Churn"]
        assert await matching("nrr") == ["Net Revenue Retention"]
        assert await matching("nothing like it") == []
        assert await matching("revenue", after="net revenue retention") == ["Revenue"]

    async def test_delete_term_reports_whether_it_existed(self, host: Host, tenant_a: str) -> None:
        term = make_term(tenant_a, "Revenue")
        await host.save_glossary_term(term, create=True)
        assert await host.delete_glossary_term(tenant_a, term.id) is True
        assert await host.get_glossary_term(tenant_a, term.id) is None
        assert await host.delete_glossary_term(tenant_a, term.id) is False
        # The term is free again.
        await host.save_glossary_term(make_term(tenant_a, "revenue"), create=True)

    async def test_glossary_is_tenant_scoped(
        self, host: Host, tenant_a: str, tenant_b: str
    ) -> None:
        mine = make_term(tenant_a, "Revenue")
        await host.save_glossary_term(mine, create=True)
        assert await host.get_glossary_term(tenant_b, mine.id) is None
        assert await host.list_glossary_terms(tenant_b, None, Page(10)) == []
        assert await host.list_glossary_terms(tenant_b, "revenue", Page(10)) == []
        assert await host.delete_glossary_term(tenant_b, mine.id) is False
        with pytest.raises(NotFound):
            await host.save_glossary_term(replace(mine, tenant_id=tenant_b), create=False)
        # The same term is free in another tenant.
        theirs = make_term(tenant_b, "REVENUE")
        await host.save_glossary_term(theirs, create=True)
        assert await host.list_glossary_terms(tenant_b, None, Page(10)) == [theirs]
        assert await host.get_glossary_term(tenant_a, mine.id) == mine

    # --- glossary links --------------------------------------------------------------

    async def linked(self, host: Host, tenant_id: str, term: str, *columns: str) -> GlossaryTerm:
        """A term linked to ``columns``, saved and its links stored, as the workflow does."""
        record = replace(make_term(tenant_id, term), columns=columns)
        await host.save_glossary_term(record, create=True)
        await host.store_glossary_links(record)
        return record

    async def test_glossary_links_are_the_current_graphs_columns(
        self, host: Host, tenant_a: str
    ) -> None:
        datasource = await self.registered(host, tenant_a, "shop")
        await host.store_metadata(datasource, shop_graph())
        revenue = await self.linked(
            host,
            tenant_a,
            "Revenue",
            "shop.sales.orders.total_amount",
            "shop.public.Customers.id",
            "shop.sales.orders.not_synced_yet",
            "archive.sales.orders.id",
        )
        churn = await self.linked(host, tenant_a, "churn", "shop.public.Customers.id")
        assert await host.load_glossary_links(datasource) == [
            GlossaryLink(churn.id, "churn", "public", "Customers", "id"),
            GlossaryLink(revenue.id, "Revenue", "public", "Customers", "id"),
            GlossaryLink(revenue.id, "Revenue", "sales", "orders", "total_amount"),
        ]
        never_synced = await self.registered(host, tenant_a, "archive")
        assert await host.load_glossary_links(never_synced) == []

    async def test_glossary_links_follow_their_columns_across_syncs(
        self, host: Host, tenant_a: str
    ) -> None:
        datasource = await self.registered(host, tenant_a, "shop")
        revenue = await self.linked(
            host, tenant_a, "Revenue", "shop.sales.orders.total_amount", "shop.sales.orders.tax"
        )
        # Linked before the first sync: the links appear with their columns.
        assert await host.load_glossary_links(datasource) == []
        await host.store_metadata(datasource, shop_graph())
        amount = GlossaryLink(revenue.id, "Revenue", "sales", "orders", "total_amount")
        assert await host.load_glossary_links(datasource) == [amount]

        await host.store_metadata(datasource, shop_graph())
        assert await host.load_glossary_links(datasource) == [amount]

        # A sync without the column drops the link from view; one that brings it back,
        # or brings a column the term named all along, links it again.
        await host.store_metadata(datasource, warehouse_graph())
        assert await host.load_glossary_links(datasource) == []
        grown = shop_graph()
        grown.tables[1].columns.append(Column("tax", "numeric(12,2)", True, 4))
        await host.store_metadata(datasource, grown)
        assert await host.load_glossary_links(datasource) == [
            GlossaryLink(revenue.id, "Revenue", "sales", "orders", "tax"),
            amount,
        ]

    async def test_storing_a_terms_links_replaces_them(self, host: Host, tenant_a: str) -> None:
        datasource = await self.registered(host, tenant_a, "shop")
        await host.store_metadata(datasource, shop_graph())
        term = await self.linked(host, tenant_a, "Revenue", "shop.sales.orders.total_amount")
        renamed = replace(term, term="Net revenue", columns=("shop.sales.orders.id",))
        await host.save_glossary_term(renamed, create=False)
        await host.store_glossary_links(renamed)
        assert await host.load_glossary_links(datasource) == [
            GlossaryLink(term.id, "Net revenue", "sales", "orders", "id")
        ]
        unlinked = replace(renamed, columns=())
        await host.store_glossary_links(unlinked)
        assert await host.load_glossary_links(datasource) == []

    async def test_deleting_a_terms_links_leaves_the_others(
        self, host: Host, tenant_a: str
    ) -> None:
        datasource = await self.registered(host, tenant_a, "shop")
        await host.store_metadata(datasource, shop_graph())
        gone = await self.linked(host, tenant_a, "Revenue", "shop.sales.orders.total_amount")
        kept = await self.linked(host, tenant_a, "Order", "shop.sales.orders.id")
        await host.delete_glossary_links(tenant_a, gone.id)
        assert await host.load_glossary_links(datasource) == [
            GlossaryLink(kept.id, "Order", "sales", "orders", "id")
        ]
        # Nothing to forget is not an error.
        await host.delete_glossary_links(tenant_a, gone.id)
        await host.delete_glossary_links(tenant_a, uuid.uuid4().hex)

    async def test_glossary_links_are_tenant_scoped(
        self, host: Host, tenant_a: str, tenant_b: str
    ) -> None:
        mine = await self.registered(host, tenant_a, "shop")
        theirs = await self.registered(host, tenant_b, "shop")
        for datasource in (mine, theirs):
            await host.store_metadata(datasource, shop_graph())
        term = await self.linked(host, tenant_a, "Revenue", "shop.sales.orders.total_amount")
        assert await host.load_glossary_links(theirs) == []
        # Another tenant's term of the same id is another term.
        await host.delete_glossary_links(tenant_b, term.id)
        assert [link.term_id for link in await host.load_glossary_links(mine)] == [term.id]

    async def test_glossary_links_outlive_a_forgotten_datasource(
        self, host: Host, tenant_a: str
    ) -> None:
        """Deleting a datasource's metadata takes its columns, not the terms' links: the
        terms still name those columns, so a datasource of that name synced again is
        linked again."""
        datasource = await self.registered(host, tenant_a, "shop")
        await host.store_metadata(datasource, shop_graph())
        term = await self.linked(host, tenant_a, "Revenue", "shop.sales.orders.total_amount")
        await host.delete_metadata(datasource)
        assert await host.load_glossary_links(datasource) == []
        await host.store_metadata(datasource, shop_graph())
        assert await host.load_glossary_links(datasource) == [
            GlossaryLink(term.id, "Revenue", "sales", "orders", "total_amount")
        ]

    # --- statistics ------------------------------------------------------------------

    async def test_statistics_round_trip_and_replace(self, host: Host, tenant_a: str) -> None:
        datasource = await self.registered(host, tenant_a, "shop")
        assert await host.load_statistics(datasource) is None
        await host.save_statistics(datasource, make_statistics(100))
        assert await host.load_statistics(datasource) == make_statistics(100)
        await host.save_statistics(datasource, make_statistics(250))
        assert await host.load_statistics(datasource) == make_statistics(250)

    async def test_statistics_are_tenant_scoped(
        self, host: Host, tenant_a: str, tenant_b: str
    ) -> None:
        mine = await self.registered(host, tenant_a, "shop")
        theirs = await self.registered(host, tenant_b, "shop")
        await host.save_statistics(mine, make_statistics(100))
        assert await host.load_statistics(theirs) is None

    # --- forgetting a datasource -----------------------------------------------------

    async def test_delete_metadata_forgets_only_that_datasource(
        self, host: Host, tenant_a: str, tenant_b: str
    ) -> None:
        gone = await self.registered(host, tenant_a, "shop")
        kept = [
            await self.registered(host, tenant_a, "archive"),
            await self.registered(host, tenant_b, "shop"),
        ]
        snapshots = {}
        for datasource in [gone, *kept]:
            await host.store_metadata(datasource, shop_graph())
            snapshots[datasource.tenant_id, datasource.name] = self.snapshot(
                datasource, 0, shop_graph()
            )
            await host.save_snapshot(snapshots[datasource.tenant_id, datasource.name])
            await host.save_statistics(datasource, make_statistics(7))

        await host.delete_metadata(gone)

        assert await host.load_metadata(gone) is None
        assert await host.list_snapshots(gone, Page(10)) == []
        assert await host.get_snapshot(gone, snapshots[tenant_a, "shop"].id) is None
        assert await host.load_statistics(gone) is None
        hits = await host.search_metadata(tenant_a, "orders", "table", Page(10))
        assert [h.datasource_name for h in hits] == ["archive"]
        for datasource in kept:
            snapshot = snapshots[datasource.tenant_id, datasource.name]
            assert await host.load_metadata(datasource) == shop_graph()
            assert await host.get_snapshot(datasource, snapshot.id) == snapshot
            assert await host.load_statistics(datasource) == make_statistics(7)

    # --- join paths ------------------------------------------------------------------

    async def join_paths(
        self,
        host: Host,
        tenant_id: str,
        start: str,
        end: str,
        max_hops: int = 4,
        bridges: tuple[JoinHop, ...] = (),
    ) -> list[list[JoinHop]]:
        found = await host.find_join_paths(
            JoinPathRequest(tenant_id, table_name(start), table_name(end), max_hops, bridges)
        )
        return [list(path.hops) for path in found]

    async def test_tables_one_two_and_three_hops_apart(self, host: Host, tenant_a: str) -> None:
        await host.store_metadata(await self.registered(host, tenant_a, "shop"), joins_graph())
        assert await self.join_paths(
            host, tenant_a, "shop.sales.orders", "shop.sales.customers"
        ) == [[hop("shop.sales.orders.customer_id", "shop.sales.customers.id")]]
        assert await self.join_paths(
            host, tenant_a, "shop.sales.customers", "shop.sales.order_items"
        ) == [
            [
                hop("shop.sales.customers.id", "shop.sales.orders.customer_id"),
                hop("shop.sales.orders.id", "shop.sales.order_items.order_id"),
            ]
        ]
        assert await self.join_paths(
            host, tenant_a, "shop.sales.customers", "shop.catalog.products"
        ) == [
            [
                hop("shop.sales.customers.id", "shop.sales.orders.customer_id"),
                hop("shop.sales.orders.id", "shop.sales.order_items.order_id"),
                hop("shop.sales.order_items.product_id", "shop.catalog.products.id"),
            ]
        ]

    async def test_hops_go_either_way_along_a_foreign_key(self, host: Host, tenant_a: str) -> None:
        await host.store_metadata(await self.registered(host, tenant_a, "shop"), joins_graph())
        # Walking against the key: `from` is still the side nearer the start.
        assert await self.join_paths(
            host, tenant_a, "shop.catalog.categories", "shop.sales.order_items"
        ) == [
            [
                hop("shop.catalog.categories.id", "shop.catalog.products.category_id"),
                hop("shop.catalog.products.id", "shop.sales.order_items.product_id"),
            ]
        ]
        assert await self.join_paths(
            host, tenant_a, "shop.sales.customers", "shop.sales.orders"
        ) == [[hop("shop.sales.customers.id", "shop.sales.orders.customer_id")]]

    async def test_every_shortest_path_and_only_those(self, host: Host, tenant_a: str) -> None:
        await host.store_metadata(await self.registered(host, tenant_a, "shop"), joins_graph())
        assert await self.join_paths(
            host, tenant_a, "shop.sales.orders", "shop.sales.addresses"
        ) == [
            [hop("shop.sales.orders.billing_address_id", "shop.sales.addresses.id")],
            [hop("shop.sales.orders.shipping_address_id", "shop.sales.addresses.id")],
        ]
        assert await self.join_paths(
            host, tenant_a, "shop.sales.addresses", "shop.sales.customers"
        ) == [
            [
                hop("shop.sales.addresses.id", "shop.sales.orders.billing_address_id"),
                hop("shop.sales.orders.customer_id", "shop.sales.customers.id"),
            ],
            [
                hop("shop.sales.addresses.id", "shop.sales.orders.shipping_address_id"),
                hop("shop.sales.orders.customer_id", "shop.sales.customers.id"),
            ],
        ]
        found = await host.find_join_paths(
            JoinPathRequest(
                tenant_a,
                table_name("shop.sales.addresses"),
                table_name("shop.sales.customers"),
                max_hops=4,
                limit=1,
            )
        )
        # At most `limit`, and the first ones: through the billing address.
        assert [path.hops[0].to_column for path in found] == ["billing_address_id"]

    async def test_nothing_within_max_hops_is_no_path(self, host: Host, tenant_a: str) -> None:
        await host.store_metadata(await self.registered(host, tenant_a, "shop"), joins_graph())
        customers, products = "shop.sales.customers", "shop.catalog.products"
        assert await self.join_paths(host, tenant_a, customers, products, max_hops=2) == []
        assert len(await self.join_paths(host, tenant_a, customers, products, max_hops=3)) == 1
        assert await self.join_paths(host, tenant_a, customers, "shop.sales.lonely", 6) == []
        assert await self.join_paths(host, tenant_a, "shop.sales.employees", customers, 6) == []
        assert await self.join_paths(host, tenant_a, customers, "shop.sales.ghost") == []
        assert await self.join_paths(host, tenant_a, customers, customers) == [[]]

    async def test_join_paths_are_tenant_scoped(
        self, host: Host, tenant_a: str, tenant_b: str
    ) -> None:
        await host.store_metadata(await self.registered(host, tenant_a, "shop"), joins_graph())
        orders, customers = "shop.sales.orders", "shop.sales.customers"
        assert await self.join_paths(host, tenant_b, orders, customers) == []
        # Tenant B's own shop joins customers to products directly; A's paths stay A's.
        shortcut = joins_graph()
        shortcut.tables[0].columns.append(_fk("favourite_id", 2, "catalog", "products"))
        await host.store_metadata(await self.registered(host, tenant_b, "shop"), shortcut)
        assert await self.join_paths(host, tenant_b, customers, "shop.catalog.products") == [
            [hop("shop.sales.customers.favourite_id", "shop.catalog.products.id")]
        ]
        assert (
            len((await self.join_paths(host, tenant_a, customers, "shop.catalog.products"))[0]) == 3
        )

    async def test_datasources_join_only_through_a_bridge(self, host: Host, tenant_a: str) -> None:
        await host.store_metadata(await self.registered(host, tenant_a, "shop"), joins_graph())
        await host.store_metadata(await self.registered(host, tenant_a, "crm"), crm_graph())
        accounts, customers = "crm.public.accounts", "shop.sales.customers"
        assert await self.join_paths(host, tenant_a, accounts, customers, 6) == []
        bridge = hop("crm.public.accounts.customer_id", "shop.sales.orders.customer_id")
        assert await self.join_paths(host, tenant_a, accounts, customers, bridges=(bridge,)) == [
            [bridge, hop("shop.sales.orders.customer_id", "shop.sales.customers.id")]
        ]
        assert await self.join_paths(host, tenant_a, customers, accounts, bridges=(bridge,)) == [
            [hop("shop.sales.customers.id", "shop.sales.orders.customer_id"), bridge.reversed()]
        ]

    async def test_the_glossary_bridges_datasources_through_same_named_columns(
        self, host: Host, tenant_a: str
    ) -> None:
        await host.store_metadata(await self.registered(host, tenant_a, "shop"), joins_graph())
        await host.store_metadata(await self.registered(host, tenant_a, "crm"), crm_graph())
        start, end = table_name("crm.public.accounts"), table_name("shop.sales.customers")

        async def link(term: str, *columns: str) -> None:
            await host.save_glossary_term(
                replace(make_term(tenant_a, term), columns=columns), create=True
            )

        # Different names, or types that do not compare, make no bridge.
        await link("Account", "crm.public.accounts.account_ref", "shop.sales.customers.id")
        await link("Contact", "crm.public.accounts.email", "shop.sales.customers.id")
        assert await agents.join_paths(host, tenant_a, start, end) == []
        await link("Customer", "crm.public.accounts.customer_id", "shop.sales.orders.customer_id")
        (answer,) = await agents.join_paths(host, tenant_a, start, end)
        assert answer.path == JoinPath(
            (
                hop("crm.public.accounts.customer_id", "shop.sales.orders.customer_id"),
                hop("shop.sales.orders.customer_id", "shop.sales.customers.id"),
            )
        )
        assert answer.sql.startswith('FROM "crm"."public"."accounts" AS "t0" JOIN')

    # --- operations across backends ------------------------------------------------

    def repair(self, tenant_id: str, name: str, minutes: int = 0, **changes: Any) -> Repair:
        return replace(
            Repair(
                kind="remove_datasource",
                key=f"{tenant_id}/{name}",
                tenant_id=tenant_id,
                payload={"datasource": {"name": name, "nested": [1, "two"]}},
                created_at=EPOCH + timedelta(minutes=minutes),
            ),
            **changes,
        )

    async def test_repairs_round_trip_oldest_first_one_per_kind_and_key(
        self, host: Host, tenant_a: str
    ) -> None:
        first = self.repair(tenant_a, "a")
        second = self.repair(tenant_a, "b", minutes=1)
        await host.save_repair(second)
        await host.save_repair(first)
        mine = [r for r in await host.list_repairs(None, None) if r.tenant_id == tenant_a]
        assert mine == [first, second]
        # A newer intent for the same kind and key replaces the older one.
        retried = replace(first, attempts=2, last_error="the engine is down")
        await host.save_repair(retried)
        assert await host.list_repairs(None, first.key) == [retried]
        other = replace(first, kind="store_graph", payload={"snapshot_id": "s1"})
        await host.save_repair(other)
        assert {r.kind for r in await host.list_repairs(None, first.key)} == {
            "remove_datasource",
            "store_graph",
        }

    async def test_only_due_repairs_are_listed_when_asked(self, host: Host, tenant_a: str) -> None:
        now = datetime.now(UTC)
        due = self.repair(tenant_a, "due", next_attempt_at=now - timedelta(seconds=1))
        never_tried = self.repair(tenant_a, "new")
        later = self.repair(tenant_a, "later", next_attempt_at=now + timedelta(hours=1))
        for repair in (due, never_tried, later):
            await host.save_repair(repair)
        listed = {r.key for r in await host.list_repairs(now, None)}
        assert {due.key, never_tried.key} <= listed and later.key not in listed
        assert later.key in {r.key for r in await host.list_repairs(None, None)}

    async def test_a_deleted_repair_is_gone_and_deleting_twice_is_fine(
        self, host: Host, tenant_a: str
    ) -> None:
        repair = self.repair(tenant_a, "x")
        await host.save_repair(repair)
        await host.delete_repair(repair.kind, repair.key)
        await host.delete_repair(repair.kind, repair.key)
        assert await host.list_repairs(None, repair.key) == []

    # --- health ----------------------------------------------------------------------

    async def test_store_plugins_report_up(self, host: Host) -> None:
        checks = await host.check_health()
        for hook in ["save_datasource", "store_metadata", "save_snapshot", "save_glossary_term"]:
            owner = host.owner_of(hook)
            assert owner is not None
            assert checks[owner].status == "up", checks[owner]
