"""Stopping a tagged statement on its PostgreSQL source, as the datasource's own role.

MindsDB 26.1 cannot stop a statement (no KILL, no cancel for a plain SELECT), and one
keeps running on the source after its HTTP client is gone. The gateway holds the
datasource's credentials, so it connects to the source itself and cancels the backend
whose ``application_name`` is the query's tag (`weaver_mindsdb.tagging`), filtered by
``usename = current_user``: a cancel can reach no other role's statement, and a role may
cancel its own backends without any grant.

``pg_cancel_backend`` only stops a backend that is executing: MindsDB reads the source
with a cursor, ``FETCH FORWARD 10000`` at a time, and between fetches the backend sits
``idle in transaction``, where a cancel is dropped. So the cancel is repeated every few
milliseconds until the tag is gone; the fetch it interrupts fails, and MindsDB ends
the cursor's transaction. ``pg_terminate_backend`` is never used: it would leave MindsDB
a dead pooled connection that fails every query of the datasource for a minute.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

import asyncpg

log = logging.getLogger(__name__)

# One round: signal the tagged backends that are executing, and count what is left.
# CASE keeps an idle backend from being signalled at all (the signal would be dropped).
CANCEL_ROUND = """
SELECT count(*) FILTER (
           WHERE CASE WHEN state = 'active' THEN pg_cancel_backend(pid) ELSE false END
       ) AS signalled,
       count(*) AS present
FROM pg_stat_activity
WHERE application_name = $1 AND usename = current_user AND pid <> pg_backend_pid()
"""
# Between rounds: a fetch of a plain scan takes a few milliseconds, so a round must land
# inside one; a round costs the source a scan of its few hundred backend slots.
POLL_SECONDS = 0.004
CONNECT_SECONDS = 5.0
CANCELLER_NAME = "weaver:cancel"


@dataclass(slots=True)
class Stopping:
    """How a cancel goes, updated every round: whether the statement was seen on the
    source, how many cancels reached it while it executed, and whether it is gone."""

    seen: bool = False
    signalled: int = 0
    gone: bool = False
    rounds: int = 0

    @property
    def stopped(self) -> bool:
        return self.gone and self.signalled > 0


Connect = Callable[[], Awaitable[Any]]


def postgres_connector(connection: Mapping[str, Any]) -> Connect:
    """A connection to the datasource's database as its own role (a revealed connection,
    secrets included), named so that it is recognisable on the source."""

    async def connect() -> Any:
        return await asyncpg.connect(
            host=connection["host"],
            port=connection.get("port", 5432),
            user=connection["user"],
            password=connection.get("password"),
            database=connection["database"],
            ssl=connection.get("sslmode"),
            timeout=CONNECT_SECONDS,
            statement_cache_size=0,
            server_settings={"application_name": CANCELLER_NAME},
        )

    return connect


async def cancel_tagged(
    connect: Connect,
    tag: str,
    progress: Stopping,
    *,
    may_still_start: Callable[[], bool],
    seconds: float,
) -> Stopping:
    """Cancel the statement running under ``tag`` until it is gone, for at most
    ``seconds``, keeping ``progress``. ``may_still_start`` says whether a statement not
    seen yet may still appear (MindsDB has not yet started it on the source)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    connection = await connect()
    try:
        while True:
            row = await connection.fetchrow(CANCEL_ROUND, tag)
            progress.rounds += 1
            progress.signalled += int(row["signalled"])
            if row["present"]:
                progress.seen = True
            elif progress.seen or not may_still_start():
                progress.gone = True
                return progress
            if loop.time() >= deadline:
                return progress
            await asyncio.sleep(POLL_SECONDS)
    finally:
        try:
            await connection.close(timeout=CONNECT_SECONDS)
        except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError):
            connection.terminate()
