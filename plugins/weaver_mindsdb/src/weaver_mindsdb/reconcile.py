"""Bringing MindsDB in line with the datasource registry after a start.

MindsDB keeps its databases in its own storage, which can be lost (a new container, a
wiped volume) while Weaver's registry survives. At start-up every registered datasource
MindsDB lacks is created again. Databases that look like Weaver's but that the registry
does not know (strays: a delete that failed half-way, another gateway's registry) are
reported, never dropped: Weaver cannot tell whether it created them.

Requests run while this does, and they change both sides; the order of reads and the
checks below keep reconciliation from undoing what a request just did.
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
from weaver_mindsdb.service import MindsDB

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
    # For logs and health: the tenant and public name, never the internal name.
    return f"{datasource.tenant_id}/{datasource.name}"


def _utc(moment: datetime) -> datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


async def reconcile(
    engine: MindsDB, registry: Registry, context: WeaverContext, *, started_at: datetime
) -> Reconciliation:
    """Create the registered datasources MindsDB lacks; report the strays.

    Only datasources last changed before ``started_at`` (this gateway's start) are
    candidates: a later one was registered by a request, which created it in MindsDB
    itself. MindsDB is read before the registry, so a datasource registered between the
    two reads is never mistaken for a stray. A datasource that cannot be created (its
    server is down, its secrets do not open) is listed in ``failed``; the others go ahead.
    """
    existing = await engine.database_names()
    datasources = await registry.all_datasources()
    recreated: list[str] = []
    failed: dict[str, str] = {}
    for datasource in datasources:
        if (
            datasource.internal_name.lower() in existing
            or _utc(datasource.updated_at) >= started_at
        ):
            continue
        try:
            connection = context.reveal_connection(datasource)
            if not await engine.create_if_missing(datasource, connection):
                continue  # created meanwhile by a request, which knows better
            if await registry.get_datasource(datasource.tenant_id, datasource.name) is None:
                # Deleted by a request while this was creating it: undo.
                await engine.unregister(datasource)
                continue
        except (Problem, SecretsError) as error:
            failed[_label(datasource)] = str(error)
            log.warning(
                "could not recreate datasource %s in MindsDB: %s", _label(datasource), error
            )
            continue
        recreated.append(_label(datasource))
        log.info("recreated datasource %s in MindsDB", _label(datasource))
    known = {d.internal_name.lower() for d in datasources}
    strays = sorted(n for n in existing if is_internal_name(n) and n not in known)
    if strays:
        log.warning(
            "MindsDB has %d database(s) named like Weaver's that no datasource owns "
            "(left in place): %s",
            len(strays),
            ", ".join(strays),
        )
    return Reconciliation(recreated=recreated, failed=failed, strays=strays)


async def reconcile_until_done(
    attempt: Callable[[], Awaitable[Reconciliation]],
    done: Callable[[Reconciliation], None],
) -> None:
    """Retry until one reconciliation completes, backing off up to a minute.

    Run as a background task from start-up: neither MindsDB nor the registry's store has
    to be up when the gateway starts (the store's own start-up may even run after this
    plugin's), so a failure here is expected at first and only means "try again later".
    """
    delay = RETRY_FIRST_SECONDS
    while True:
        try:
            result = await attempt()
        except Exception as error:  # any failure is retried; the task must not die
            # Said once; the retries are detail (the client logs an outage and its end).
            log.log(
                logging.INFO if delay == RETRY_FIRST_SECONDS else logging.DEBUG,
                "MindsDB reconciliation postponed %.1fs: %s",
                delay,
                error,
            )
            await asyncio.sleep(delay)
            delay = min(delay * 2, RETRY_MAX_SECONDS)
            continue
        done(result)
        return
