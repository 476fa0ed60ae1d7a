"""Bringing Trino's catalogs in line with the datasource registry.

With ``catalog.store=memory`` (the store that keeps passwords off the coordinator's disk)
a restarted coordinator has no catalog at all, while Weaver's registry keeps every
datasource. At start-up every registered datasource whose catalog Trino lacks is created
again; a catalog that Trino loses while the gateway runs is recreated by the first query
that misses it (`Trino.execute`). Catalogs named like Weaver's that the registry does not
know (a delete or a replacement that died half-way, another gateway's registry) are
reported, never dropped: Weaver cannot tell whether they are its own.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from weaver.context import Registry, WeaverContext
from weaver.errors import Problem
from weaver.naming import is_internal_name
from weaver.secrets import SecretsError
from weaver.types import Datasource
from weaver_trino.service import Trino
from weaver_trino.statements import internal_name_of_staging

log = logging.getLogger(__name__)

RETRY_FIRST_SECONDS = 0.5
RETRY_MAX_SECONDS = 60.0


@dataclass(frozen=True)
class Reconciliation:
    recreated: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    strays: list[str] = field(default_factory=list)
    finished_at: datetime = field(default_factory=lambda: datetime.now(UTC))


def _label(datasource: Datasource) -> str:
    # For logs and health: tenant and public name, never the internal name.
    return f"{datasource.tenant_id}/{datasource.name}"


def _weavers(catalog: str) -> bool:
    return is_internal_name(catalog) or internal_name_of_staging(catalog) is not None


async def reconcile(
    engine: Trino, registry: Registry, context: WeaverContext, *, started_at: datetime
) -> Reconciliation:
    """Create the registered datasources' missing catalogs; report the strays.

    Only datasources last changed before ``started_at`` (this gateway's start) are
    candidates: a later one belongs to a request of this gateway, which makes (or, on a
    refused connection, removes) its catalog itself. Trino is read before the registry,
    so a datasource registered between the two reads
    is never taken for a stray. Creating never redefines a catalog (a request may have
    made a newer one meanwhile), and one whose datasource a request deleted meanwhile is
    dropped again. A datasource that cannot be created (its secrets do not open, its
    record does not fit a catalog) is listed in ``failed``; the others go ahead.
    """
    existing = await engine.catalog_names()
    datasources = await registry.all_datasources()
    recreated: list[str] = []
    failed: dict[str, str] = {}
    for datasource in datasources:
        changed = datasource.updated_at
        if changed.tzinfo is None:
            changed = changed.replace(tzinfo=UTC)
        if datasource.internal_name.lower() in existing or changed >= started_at:
            continue
        try:
            connection = context.reveal_connection(datasource)
            created = await engine.create_if_missing(datasource, connection)
            if created and not await registry.get_datasource(datasource.tenant_id, datasource.name):
                # Deleted by a request while this was creating it: undo.
                await engine.unregister(datasource)
                continue
        except (Problem, SecretsError) as error:
            failed[_label(datasource)] = str(error)
            log.warning("could not recreate datasource %s in Trino: %s", _label(datasource), error)
            continue
        if created:
            recreated.append(_label(datasource))
            log.info("recreated datasource %s in Trino", _label(datasource))
    known = {d.internal_name.lower() for d in datasources}
    strays = sorted(name for name in existing if _weavers(name) and name not in known)
    if strays:
        log.warning(
            "Trino has %d catalog(s) named like Weaver's that no datasource owns (left in "
            "place): %s",
            len(strays),
            ", ".join(strays),
        )
    return Reconciliation(recreated=recreated, failed=failed, strays=strays)


async def reconcile_until_done(
    attempt: Callable[[], Awaitable[Reconciliation]],
    done: Callable[[Reconciliation], None],
) -> None:
    """Retry until one reconciliation completes, backing off up to a minute: neither
    Trino nor the registry's store has to be up when the gateway starts."""
    delay = RETRY_FIRST_SECONDS
    while True:
        try:
            result = await attempt()
        except Exception as error:  # any failure is retried; the task must not die
            log.log(
                logging.INFO if delay == RETRY_FIRST_SECONDS else logging.DEBUG,
                "Trino reconciliation postponed %.1fs: %s",
                delay,
                error,
            )
            await asyncio.sleep(delay)
            delay = min(delay * 2, RETRY_MAX_SECONDS)
            continue
        done(result)
        return
