"""Operations across backends that complete, or finish by themselves.

Removing a datasource touches the query engine, every metadata store and the registry;
a sync touches the snapshot store and the graph store; changing a connection touches the
engine and the registry. Any of them may be down at the wrong moment. So each such
operation writes its intent (a `Repair`) to the registry's store before its first step
that could be left half-done, and deletes it after its last. A repair left behind names
exactly what is still to do, and `run_due` — called by every gateway process every few
seconds (`Repairer`) — does it once the backend answers, with growing pauses between
attempts. Every step is idempotent (the plugin contract says so), so two processes
finishing the same repair, or a repair run after the operation did finish, do no harm.

What each operation leaves when a backend fails:

* remove: the datasource leaves the registry first (it answers 404 at once, and its
  name stays taken until the removal finished); engine and stores are emptied by the
  repair.
* sync: the snapshot is saved first; if the graph store then fails, the snapshot records
  the sync and the repair stores its graph later (the newest snapshot wins).
* connection change: if the registry cannot record the new connection after the engine
  took it, the repair puts the registry's connection back into the engine.
* glossary change: the term is saved (or deleted) in the store that owns terms first;
  if the graph store then fails, the repair makes the graph's links a copy of the term
  as that store has it (none once it is gone).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

from weaver import codec, connections
from weaver.host import Host
from weaver.types import Datasource, Page, Repair, RepairKind

log = logging.getLogger(__name__)

# Every process looks for due repairs this often; a failed attempt waits twice as long
# as the one before, up to `MAX_BACKOFF_SECONDS`.
POLL_SECONDS = 5.0
FIRST_BACKOFF_SECONDS = 2.0
MAX_BACKOFF_SECONDS = 300.0


def key_of(tenant_id: str, name: str) -> str:
    return f"{tenant_id}/{name}"


def _name_of(repair: Repair) -> str:
    return repair.key.split("/", 1)[1]


def intent(kind: RepairKind, tenant_id: str, name: str, **payload: Any) -> Repair:
    return Repair(
        kind=kind,
        key=key_of(tenant_id, name),
        tenant_id=tenant_id,
        payload=payload,
        created_at=datetime.now(UTC),
    )


async def pending(host: Host, tenant_id: str, name: str) -> list[Repair]:
    return await host.list_repairs(None, key_of(tenant_id, name))


async def attempt(host: Host, repair: Repair) -> None:
    """Do what ``repair`` says is left; raises when a backend is still failing."""
    if repair.kind == "remove_datasource":
        datasource = codec.from_jsonable(Datasource, repair.payload["datasource"])
        await host.unregister_datasource(datasource)
        await host.delete_metadata(datasource)
        return
    if repair.kind == "relink_glossary_term":
        term_id = _name_of(repair)
        term = await host.get_glossary_term(repair.tenant_id, term_id)
        if term is None:
            await host.delete_glossary_links(repair.tenant_id, term_id)
        else:
            await host.store_glossary_links(term)
        return
    current = await host.get_datasource(repair.tenant_id, _name_of(repair))
    if current is None:
        return  # removed meanwhile: its own removal cleans up
    if repair.kind == "store_graph":
        snapshot = await host.get_snapshot(current, repair.payload["snapshot_id"])
        newest = await host.list_snapshots(current, Page(1))
        if snapshot is not None and newest and newest[0].id == snapshot.id:
            await host.store_metadata(current, snapshot.graph)
        return
    # reapply_connection: the engine gets the registry's connection back.
    revealed = connections.reveal(host.context.secrets, current)
    await host.register_datasource(current, revealed, replace=True)


async def finish(host: Host, repair: Repair) -> bool:
    """Try ``repair`` now; whether it is done. A failure is recorded on the repair, with
    the time of the next attempt, for `run_due`."""
    try:
        await attempt(host, repair)
    except Exception as error:  # any failure is retried later; it is logged, never lost
        attempts = repair.attempts + 1
        pause = min(FIRST_BACKOFF_SECONDS * 2 ** (attempts - 1), MAX_BACKOFF_SECONDS)
        log.warning(
            "%s of %s is not finished (attempt %d; next in %.0fs): %s",
            repair.kind,
            repair.key,
            attempts,
            pause,
            error,
        )
        await host.save_repair(
            replace(
                repair,
                attempts=attempts,
                next_attempt_at=datetime.now(UTC) + timedelta(seconds=pause),
                last_error=str(error) or type(error).__name__,
            )
        )
        return False
    await host.delete_repair(repair.kind, repair.key)
    if repair.attempts:
        log.info("%s of %s finished after %d attempts", repair.kind, repair.key, repair.attempts)
    return True


async def run_due(host: Host, due_before: datetime | None = None) -> int:
    """Finish every repair due before ``due_before`` (now by default); how many
    finished."""
    finished = 0
    for repair in await host.list_repairs(due_before or datetime.now(UTC), None):
        finished += await finish(host, repair)
    return finished


class Repairer:
    """Runs `run_due` in the background of one app, every `POLL_SECONDS`."""

    def __init__(self, host: Host) -> None:
        self.host = host
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="weaver-repairs")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def _loop(self) -> None:
        while True:
            try:
                await run_due(self.host)
            except Exception as error:  # the registry's store itself is down: later
                log.warning("repairs postponed: %s", error)
            await asyncio.sleep(POLL_SECONDS)
