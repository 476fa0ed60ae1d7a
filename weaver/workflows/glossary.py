"""Glossary terms, whose column links must name the tenant's own datasources.

A term lives in the store that owns glossary terms; its links to columns are edges of the
schema graph, in whichever store owns that (`store_glossary_links`). The term is written
first and its links second, from the term as saved, so the links are always a copy of a
term that exists. The two stores may be two servers: a repair (`relink_glossary_term`)
is recorded before the term changes, so links the graph store could not take are
finished once it is back, while the caller is answered from the term's store.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from typing import TypeVar

from weaver.errors import NotFound, Unprocessable, field_error, found
from weaver.host import Host
from weaver.types import GlossaryTerm
from weaver.workflows import repairs

T = TypeVar("T")


async def _then_relinked(
    host: Host, tenant_id: str, term_id: str, change: Callable[[], Awaitable[T]]
) -> T:
    """``change()`` to the term record, then the graph's links made a copy of the term as
    it now is (none if it is gone): now, or by the repair if the graph store fails. Also
    when ``change`` fails, since it may have reached the store before failing."""
    repair = repairs.intent("relink_glossary_term", tenant_id, term_id)
    await host.save_repair(repair)
    try:
        return await change()
    finally:
        await repairs.finish(host, repair)


async def _linked_datasources_exist(host: Host, tenant_id: str, columns: Sequence[str]) -> None:
    for name in sorted({column.split(".", 1)[0] for column in columns}):
        if await host.get_datasource(tenant_id, name) is None:
            raise Unprocessable(
                f"datasource '{name}' named in columns does not exist",
                errors=[
                    field_error(["body", "columns"], f"unknown datasource '{name}'", "datasource")
                ],
            )


async def create_term(
    host: Host,
    tenant_id: str,
    *,
    term: str,
    definition: str,
    synonyms: Sequence[str],
    columns: Sequence[str],
) -> GlossaryTerm:
    await _linked_datasources_exist(host, tenant_id, columns)
    now = datetime.now(UTC)
    record = GlossaryTerm(
        id=uuid.uuid4().hex,
        tenant_id=tenant_id,
        term=term,
        definition=definition,
        synonyms=tuple(synonyms),
        columns=tuple(columns),
        created_at=now,
        updated_at=now,
    )
    await _then_relinked(
        host, tenant_id, record.id, lambda: host.save_glossary_term(record, create=True)
    )
    return record


async def require_term(host: Host, tenant_id: str, term_id: str) -> GlossaryTerm:
    return found(
        await host.get_glossary_term(tenant_id, term_id), f"glossary term '{term_id}' not found"
    )


async def replace_term(
    host: Host,
    current: GlossaryTerm,
    *,
    term: str,
    definition: str,
    synonyms: Sequence[str],
    columns: Sequence[str],
) -> GlossaryTerm:
    await _linked_datasources_exist(host, current.tenant_id, columns)
    record = replace(
        current,
        term=term,
        definition=definition,
        synonyms=tuple(synonyms),
        columns=tuple(columns),
        updated_at=datetime.now(UTC),
    )
    await _then_relinked(
        host, current.tenant_id, current.id, lambda: host.save_glossary_term(record, create=False)
    )
    return record


async def delete_term(host: Host, tenant_id: str, term_id: str) -> None:
    if not await _then_relinked(
        host, tenant_id, term_id, lambda: host.delete_glossary_term(tenant_id, term_id)
    ):
        raise NotFound(f"glossary term '{term_id}' not found")
