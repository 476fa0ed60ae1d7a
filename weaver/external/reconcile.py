"""Bringing an external engine in line with the datasource registry after a start.

An engine may keep its databases where they can be lost (a new MindsDB container, a
Trino coordinator whose catalog store is in memory) while Weaver's registry survives. At
start-up every registered datasource the engine lacks is created again. Databases named
like Weaver's that the registry does not know (strays: a delete that failed half-way,
another gateway's registry) are reported, never dropped: Weaver cannot tell whether it
created them.

Requests run while this does, and they change both sides; the order of reads and the
checks below keep reconciliation from undoing what a request just did.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from weaver.context import Registry, WeaverContext
from weaver.errors import Problem
from weaver.external.engine import ExternalEngine
from weaver.secrets import SecretsError
from weaver.types import Datasource, HealthCheck

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
    engine: ExternalEngine, registry: Registry, context: WeaverContext, *, started_at: datetime
) -> Reconciliation:
    """Create the registered datasources the engine lacks; report the strays.

    Only datasources last changed before ``started_at`` (this gateway's start) are
    candidates: a later one was registered by a request, which created it in the engine
    itself. The engine is read before the registry, so a datasource registered between
    the two reads is never mistaken for a stray. Creating never redefines a database (a
    request may have made a newer one meanwhile), and one whose datasource a request
    deleted meanwhile is dropped again. A datasource that cannot be created (its server is
    down, its secrets do not open) is listed in ``failed``; the others go ahead.
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
                "could not recreate datasource %s in %s: %s",
                _label(datasource),
                engine.label,
                error,
            )
            continue
        recreated.append(_label(datasource))
        log.info("recreated datasource %s in %s", _label(datasource), engine.label)
    known = {d.internal_name.lower() for d in datasources}
    strays = sorted(n for n in existing if engine.named_like_weavers(n) and n not in known)
    if strays:
        log.warning(
            "%s has %d database(s) named like Weaver's that no datasource owns (left in place): %s",
            engine.label,
            len(strays),
            ", ".join(strays),
        )
    return Reconciliation(recreated=recreated, failed=failed, strays=strays)


async def reconcile_until_done(
    attempt: Callable[[], Awaitable[Reconciliation]],
    done: Callable[[Reconciliation], None],
    label: str,
) -> None:
    """Retry until one reconciliation completes, backing off up to a minute.

    Run as a background task from start-up: neither the engine nor the registry's store
    has to be up when the gateway starts (the store's own start-up may even run after the
    engine plugin's), so a failure here is expected at first and only means "try again
    later".
    """
    delay = RETRY_FIRST_SECONDS
    while True:
        try:
            result = await attempt()
        except Exception as error:  # any failure is retried; the task must not die
            # Said once; the retries are detail (the client logs an outage and its end).
            log.log(
                logging.INFO if delay == RETRY_FIRST_SECONDS else logging.DEBUG,
                "%s reconciliation postponed %.1fs: %s",
                label,
                delay,
                error,
            )
            await asyncio.sleep(delay)
            delay = min(delay * 2, RETRY_MAX_SECONDS)
            continue
        done(result)
        return


class Reconciler:
    """The one reconciliation of a plugin's start-up, run in the background, and its
    outcome for the plugin's health check."""

    def __init__(self, engine: ExternalEngine, context: WeaverContext, plugin: str) -> None:
        """Start reconciling ``engine`` now; ``plugin`` (its entry-point name) names the task."""
        self.result: Reconciliation | None = None
        started_at = datetime.now(UTC)
        self._task = asyncio.create_task(
            reconcile_until_done(
                lambda: reconcile(engine, context.registry, context, started_at=started_at),
                self._done,
                engine.label,
            ),
            name=f"weaver-{plugin}-reconcile",
        )

    def _done(self, result: Reconciliation) -> None:
        self.result = result

    async def stop(self) -> None:
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)

    def health(self, check: HealthCheck) -> HealthCheck:
        """The engine's check with the reconciliation's counts in ``extra``."""
        result = self.result
        # Counts only: health answers without a token, and internal names stay inside.
        extra: dict[str, Any] = {**check.extra, "reconciled": result is not None}
        if result is not None:
            extra.update(
                recreated=len(result.recreated),
                failed=len(result.failed),
                strays=len(result.strays),
            )
        return HealthCheck(check.status, check.detail, check.latency_ms, extra)
