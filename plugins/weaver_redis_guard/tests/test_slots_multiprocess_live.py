"""Three OS processes sharing one Redis take one tenant's query slots at once: the limit
holds exactly across them, whatever the interleaving.

Exactness is read from what ``acquire_query_slot`` answered, never from timing: in each
round every process asks for many slots at once, and exactly ``LIMIT`` answers in all
are yes; then, in a free-for-all, a counter shared by the processes is raised only after
a yes and lowered before the release is sent, so it stays within the time the slot was
held and never exceeds ``LIMIT`` if the guard admitted no more.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import uuid
from multiprocessing.sharedctypes import Synchronized
from multiprocessing.synchronize import Barrier
from pathlib import Path
from typing import Any

import pytest
import weaver_redis_guard.plugin

from weaver.testing.harness import make_settings, running_host

pytestmark = [
    pytest.mark.live,
    pytest.mark.skipif(
        os.environ.get("WEAVER_RUN_E2E") != "1", reason="live suite: set WEAVER_RUN_E2E=1"
    ),
]

PROCESSES = 3
LIMIT = 2
ROUNDS = 5
# Concurrent requests per process and round, and workers per process in the free-for-all.
ASKS = 12
WORKERS = 4
TURNS = 15
LEASE_SECONDS = 60.0


def _take_slots(
    redis_url: str,
    key_prefix: str,
    data_dir: str,
    tenant: str,
    process: int,
    start: Barrier,
    holders: Synchronized[int],
    results: Any,
) -> None:
    """Runs in a child process with a gateway host of its own on the shared Redis."""
    weaver_redis_guard.plugin.KEY_PREFIX = key_prefix

    async def run() -> dict[str, Any]:
        outcome: dict[str, Any] = {"rounds": [], "renewed": [], "refused_again": [], "turns": 0}
        outcome.update(process=process, peak=0, errors=[])
        settings = make_settings(
            Path(data_dir), WEAVER_REQUEST_GUARD_REDIS_MODE="true", REDIS_URL=redis_url
        )
        async with running_host(settings) as host:
            if host.startup_errors:
                outcome["errors"].append(repr(host.startup_errors))
                return outcome

            async def together() -> None:
                # The loop stays free while this process waits for the others.
                await asyncio.to_thread(start.wait, 60)

            for round_ in range(ROUNDS):
                await together()
                asked = [f"r{round_}-p{process}-{n}" for n in range(ASKS)]
                answers = await asyncio.gather(
                    *(host.acquire_query_slot(tenant, q, LIMIT, LEASE_SECONDS) for q in asked)
                )
                mine = [q for q, taken in zip(asked, answers, strict=True) if taken]
                outcome["rounds"].append(mine)
                await together()
                # Every slot is held now: holders renew theirs, nobody else gets one.
                for query_id in mine:
                    renewed = await host.acquire_query_slot(tenant, query_id, LIMIT, LEASE_SECONDS)
                    outcome["renewed"].append(renewed)
                for query_id in asked[:3]:
                    again = await host.acquire_query_slot(
                        tenant, f"{query_id}-again", LIMIT, LEASE_SECONDS
                    )
                    outcome["refused_again"].append(not again)
                await together()
                for query_id in mine:
                    await host.release_query_slot(tenant, query_id)

            await together()

            async def worker(number: int) -> None:
                for turn in range(TURNS):
                    query_id = f"free-p{process}-w{number}-{turn}"
                    if not await host.acquire_query_slot(tenant, query_id, LIMIT, LEASE_SECONDS):
                        await asyncio.sleep(0.002)
                        continue
                    with holders.get_lock():
                        holders.value += 1
                        outcome["peak"] = max(outcome["peak"], holders.value)
                    outcome["turns"] += 1
                    await asyncio.sleep(0.005)
                    with holders.get_lock():
                        holders.value -= 1
                    await host.release_query_slot(tenant, query_id)

            await asyncio.gather(*(worker(n) for n in range(WORKERS)))
        return outcome

    try:
        results.put(asyncio.run(run()))
    except Exception as error:
        results.put({"process": process, "errors": [repr(error)]})


async def test_processes_sharing_redis_hold_exactly_the_limit(
    tmp_path: Path, redis_url: str, key_prefix: str
) -> None:
    spawn = multiprocessing.get_context("spawn")
    start = spawn.Barrier(PROCESSES)
    holders = spawn.Value("i", 0)
    results = spawn.Queue()
    tenant = f"tenant-{uuid.uuid4().hex}"
    processes = [
        spawn.Process(
            target=_take_slots,
            args=(
                redis_url,
                key_prefix,
                str(tmp_path / str(n)),
                tenant,
                n,
                start,
                holders,
                results,
            ),
        )
        for n in range(PROCESSES)
    ]
    for process in processes:
        process.start()
    outcomes = [await asyncio.to_thread(results.get, timeout=180) for _ in processes]
    for process in processes:
        await asyncio.to_thread(process.join, 30)
        assert process.exitcode == 0

    assert [o["errors"] for o in outcomes] == [[]] * PROCESSES
    for round_ in range(ROUNDS):
        held = [query_id for o in outcomes for query_id in o["rounds"][round_]]
        assert len(held) == LIMIT, f"round {round_}: {held}"
    assert all(renewed for o in outcomes for renewed in o["renewed"])
    assert all(refused for o in outcomes for refused in o["refused_again"])
    assert max(o["peak"] for o in outcomes) <= LIMIT
    assert sum(o["turns"] for o in outcomes) > 0
    assert holders.value == 0
