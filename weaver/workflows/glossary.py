"""Glossary terms, whose column links must name the tenant's own datasources.

A term lives in the store that owns glossary terms; its links to columns are edges of the
schema graph, in whichever store owns that (`store_glossary_links`). The term is written
first and its links second, from the term as saved, so the links are always a copy of a
term that exists.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime

from weaver.errors import NotFound, Unprocessable, field_error, found
from weaver.host import Host
from weaver.types import GlossaryTerm


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
    await host.save_glossary_term(record, create=True)
    await host.store_glossary_links(record)
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
    await host.save_glossary_term(record, create=False)
    await host.store_glossary_links(record)
    return record


async def delete_term(host: Host, tenant_id: str, term_id: str) -> None:
    if not await host.delete_glossary_term(tenant_id, term_id):
        raise NotFound(f"glossary term '{term_id}' not found")
    await host.delete_glossary_links(tenant_id, term_id)
