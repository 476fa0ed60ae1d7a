"""Trino's messages as a tenant may read them."""

from __future__ import annotations

from datetime import UTC, datetime

from weaver_trino.scrub import clean_message

from weaver.naming import internal_name
from weaver.types import Datasource


def datasource(name: str) -> Datasource:
    now = datetime.now(UTC)
    return Datasource("t1", name, "postgres", internal_name("t1", name), {}, "", (), None, now, now)


def test_catalog_names_become_public_and_secrets_are_masked() -> None:
    sales = datasource("sales")
    staging = "wr_" + sales.internal_name.removeprefix("w_")
    message = (
        f"line 1:15: Table '{sales.internal_name}.public.nope' does not exist; "
        f"Error listing schemas for catalog {staging}: password 'hunter22' refused"
    )
    cleaned = clean_message(message, datasources=[sales], secrets=["hunter22"])
    assert cleaned == (
        "Table 'sales.public.nope' does not exist; Error listing schemas for catalog sales: "
        "password '***' refused"
    )


def test_another_datasources_name_is_not_revealed() -> None:
    other = internal_name("t2", "crm")
    assert clean_message(f"Catalog '{other}' not found") == "Catalog '<datasource>' not found"


def test_long_messages_are_cut() -> None:
    assert len(clean_message("x" * 2000)) == 500
