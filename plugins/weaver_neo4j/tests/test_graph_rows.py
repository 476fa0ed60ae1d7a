"""How a schema graph becomes Cypher parameters and how read rows become a graph again.

Pure functions, no server: the live suite proves the Cypher itself.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from weaver_neo4j.graph import (
    GraphChanged,
    Row,
    assemble,
    reference_rows,
    schema_rows,
    table_batches,
)

from weaver.testing.store import shop_graph
from weaver.types import Column, ColumnRef, SchemaGraph, Table


def wide_graph(tables: int, columns: int) -> SchemaGraph:
    return SchemaGraph(
        schemas=["s"],
        tables=[
            Table("s", f"t{n}", [Column(f"c{i}", "int", True, i) for i in range(1, columns + 1)])
            for n in range(tables)
        ],
    )


def test_schemas_keep_their_order_once_each_and_gain_the_ones_tables_name() -> None:
    graph = SchemaGraph(
        schemas=["sales", "public", "sales", "empty"],
        tables=[Table("public", "a", []), Table("staging", "b", []), Table("sales", "c", [])],
    )
    assert schema_rows(graph) == [
        {"name": "sales", "position": 0},
        {"name": "public", "position": 1},
        {"name": "empty", "position": 2},
        {"name": "staging", "position": 3},
    ]


SCHEMA_IDS = {"s": "4:db:7"}


def test_table_batches_cut_by_column_count_and_keep_positions() -> None:
    batches = list(table_batches(wide_graph(tables=5, columns=3), SCHEMA_IDS, size=7))
    assert [[row["name"] for row in batch] for batch in batches] == [
        ["t0", "t1"],
        ["t2", "t3"],
        ["t4"],
    ]
    assert [row["position"] for batch in batches for row in batch] == [0, 1, 2, 3, 4]
    assert {row["schema_id"] for batch in batches for row in batch} == {"4:db:7"}
    assert batches[0][0]["columns"][2] == {
        "name": "c3",
        "data_type": "int",
        "nullable": True,
        "ordinal": 3,
        "primary_key": False,
    }


def test_a_table_wider_than_a_batch_is_a_batch_of_its_own() -> None:
    graph = SchemaGraph(["s"], [*wide_graph(1, 2).tables, *wide_graph(1, 9).tables])
    assert [len(batch) for batch in table_batches(graph, SCHEMA_IDS, size=4)] == [1, 1]
    assert list(table_batches(SchemaGraph(["s"], []), SCHEMA_IDS)) == []


def test_a_column_listed_twice_starts_one_edge() -> None:
    graph = shop_graph()
    orders = graph.tables[1]
    orders.columns.append(orders.columns[1])
    ids = {("public", "Customers", "id"): "id-1", ("sales", "orders", "customer_id"): "id-3"}
    assert reference_rows(graph, ids) == ([{"source": "id-3", "target": "id-1"}], 0)


def test_references_join_created_columns_and_count_the_dangling() -> None:
    graph = shop_graph()
    graph.tables[0].columns[1].references = ColumnRef("crm", "accounts", "id")
    ids = {
        ("public", "Customers", "id"): "id-1",
        ("public", "Customers", "Email_Address"): "id-2",
        ("sales", "orders", "customer_id"): "id-3",
    }
    rows, dangling = reference_rows(graph, ids)
    assert rows == [{"source": "id-3", "target": "id-1"}]
    assert dangling == 1


def read_rows(graph: SchemaGraph, sync_id: str = "s1") -> list[Row]:
    """What READ_GRAPH answers for ``graph``: one row per table and per empty schema,
    tables and columns in reverse order (the query promises none)."""
    positions = {name: n for n, name in enumerate(graph.schemas)}
    counts = [len(graph.schemas), len(graph.tables), graph.column_count, graph.foreign_key_count]

    def schema(name: str) -> Row:
        return {"name": name, "position": positions[name], "sync_id": sync_id}

    rows: list[Row] = [
        {"sync_id": sync_id, "counts": counts, "schema": schema(name), "table": None, "columns": []}
        for name in graph.schemas
        if name not in {table.schema for table in graph.tables}
    ]
    for position, table in reversed(list(enumerate(graph.tables))):
        columns = [
            [
                c.name,
                c.data_type,
                c.nullable,
                c.ordinal,
                c.primary_key,
                sync_id,
                [c.references.schema, c.references.table, c.references.column]
                if c.references
                else None,
            ]
            for c in reversed(table.columns)
        ]
        table_node = {
            "name": table.name,
            "position": position,
            "row_count": table.row_count,
            "sync_id": sync_id,
        }
        rows.append(
            {
                "sync_id": sync_id,
                "counts": counts,
                "schema": schema(table.schema),
                "table": table_node,
                "columns": columns,
            }
        )
    return rows


def test_rows_fold_back_into_the_graph() -> None:
    graph = shop_graph()
    graph.schemas.insert(0, "empty")
    graph.tables.insert(0, Table("sales", "no_columns", [], row_count=0))
    assert assemble(read_rows(graph)) == graph


def test_no_rows_means_never_synced() -> None:
    assert assemble([]) is None


def test_a_datasource_synced_empty_is_an_empty_graph() -> None:
    only_node = [
        {"sync_id": "s1", "counts": [0, 0, 0, 0], "schema": None, "table": None, "columns": []}
    ]
    assert assemble(only_node) == SchemaGraph([], [])


@pytest.mark.parametrize("part", ["schema", "table"])
def test_rows_of_two_syncs_are_refused(part: str) -> None:
    rows = read_rows(shop_graph())
    rows[-1][part] = {**rows[-1][part], "sync_id": "s2"}
    with pytest.raises(GraphChanged):
        assemble(rows)


def test_a_column_of_another_sync_is_refused() -> None:
    rows = read_rows(shop_graph())
    rows[-1]["columns"][0][5] = "s2"
    with pytest.raises(GraphChanged):
        assemble(rows)


def test_a_datasource_stamped_by_another_sync_is_refused() -> None:
    rows = read_rows(shop_graph())
    rows[-1]["sync_id"] = "s2"
    with pytest.raises(GraphChanged):
        assemble(rows)


def graph_with_empty_parts() -> SchemaGraph:
    graph = shop_graph()
    graph.schemas.append("empty")
    graph.tables.append(Table("sales", "no_columns", []))
    return graph


def drop_table(rows: list[Row]) -> None:
    del rows[-1]


def drop_empty_schema(rows: list[Row]) -> None:
    del rows[0]


def drop_column(rows: list[Row]) -> None:
    del rows[-1]["columns"][0]


def drop_reference(rows: list[Row]) -> None:
    for row in rows:
        for column in row["columns"]:
            column[6] = None


@pytest.mark.parametrize("damage", [drop_table, drop_empty_schema, drop_column, drop_reference])
def test_a_read_missing_part_of_its_sync_is_refused(damage: Callable[[list[Row]], None]) -> None:
    """What a read sees when a commit removes nodes it has not reached yet."""
    rows = read_rows(graph_with_empty_parts())
    assert assemble(rows) == graph_with_empty_parts()
    damage(rows)
    with pytest.raises(GraphChanged):
        assemble(rows)
