"""Error messages from MindsDB, made fit for a tenant."""

from __future__ import annotations

from datetime import UTC, datetime

from weaver_mindsdb.scrub import MAX_DETAIL, clean_message

from weaver.types import Datasource


def _datasource(name: str, internal: str) -> Datasource:
    now = datetime.now(UTC)
    return Datasource("t1", name, "postgres", internal, {}, "", ["password"], None, now, now)


SALES = _datasource("sales", "w_0123456789ab_sales")


def test_internal_names_become_public_names() -> None:
    message = "Table 'orders' not found in database W_0123456789AB_SALES (w_0123456789ab_sales)"
    cleaned = clean_message(message, datasources=[SALES])
    assert "w_0123456789ab" not in cleaned.lower()
    assert cleaned.count("sales") == 2


def test_internal_names_of_no_known_datasource_are_hidden() -> None:
    cleaned = clean_message("conflict with w_fedcba987654_other", datasources=[SALES])
    assert "w_fedcba987654" not in cleaned and "<datasource>" in cleaned


def test_known_secrets_are_masked_wherever_they_appear() -> None:
    message = "Can't connect to db: {'user': 'reader', 'pass': 'Tr0ub4dor&3'} Tr0ub4dor&3"
    cleaned = clean_message(message, secrets=["Tr0ub4dor&3"])
    assert "Tr0ub4dor" not in cleaned and cleaned.count("***") == 2


def test_short_secrets_are_masked_only_where_they_stand_alone() -> None:
    cleaned = clean_message("password ab rejected for table abc", secrets=["ab"])
    assert cleaned == "password *** rejected for table abc"


def test_credentials_in_urls_and_keyed_values_are_masked() -> None:
    message = (
        'postgresql://reader:hunter2@db:5432/x failed; "password": "hunter3", pwd=hunter4 '
        "token: abc.def"
    )
    cleaned = clean_message(message)
    for secret in ("hunter2", "hunter3", "hunter4", "abc.def"):
        assert secret not in cleaned
    assert "postgresql://***@db:5432/x" in cleaned


def test_long_messages_are_cut_and_whitespace_folded() -> None:
    cleaned = clean_message("Traceback\n   line\n" + "x" * 2000)
    assert len(cleaned) == MAX_DETAIL and cleaned.startswith("Traceback line ")
    assert clean_message("  ") == "the query engine failed without a message"
