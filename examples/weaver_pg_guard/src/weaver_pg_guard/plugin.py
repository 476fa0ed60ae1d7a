"""The request guard in PostgreSQL, for deployments that have PostgreSQL but no Redis.

Enabled by ``WEAVER_PG_GUARD_MODE=true``; the database is ``WEAVER_PG_GUARD_DSN``, or
``POSTGRES_DSN`` when that is unset. It keeps the guarantees of the ``redis_guard``
plugin: a rate limit that holds exactly across every gateway process sharing the
database, Idempotency-Key claims, replays, conflicts and mismatches, 5xx answers not
stored, and ``WEAVER_REQUEST_GUARD_FAIL_OPEN`` deciding what happens while the database
cannot be reached.

A request costs one statement (`weaver_pg_guard.schema`'s ``admit`` function), an
idempotent write one more to settle its claim. Rows that no longer mean anything
(a TAT in the past, an expired record) are ignored at once and deleted by a sweep every
`SWEEP_SECONDS` in each gateway.

A slow or missing database must not stall requests: every call runs under one short
deadline and any failure is raised as `GuardUnavailable` for the core to apply the
fail-open setting. The pool is opened on first use and again after a failure, so the
guard resumes by itself when the database does.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import secrets
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import urlsplit

import asyncpg

from weaver import hookimpl
from weaver.context import WeaverContext
from weaver.errors import GuardUnavailable
from weaver.ratelimit import (
    IDEMPOTENT_METHODS,
    IN_FLIGHT_LEASE_SECONDS,
    MICROSECONDS,
    Gcra,
    Verdict,
    caller_key,
    enforce,
    key_in_flight,
    key_reused,
)
from weaver.settings import Settings
from weaver.types import (
    GuardDecision,
    GuardRequest,
    HealthCheck,
    IdempotencyClaim,
    StoredResponse,
)
from weaver_pg_guard.schema import ADMIT, RELEASE, STORE, SWEEP, ensure_schema

log = logging.getLogger(__name__)

PLUGIN_NAME = "pg_guard"
DSN_VARIABLE = "WEAVER_PG_GUARD_DSN"
POOL_SIZE = 10
# A request waiting on a database that is gone fails well inside any client's patience;
# the one deadline covers opening the pool, waiting for a connection and the statement.
CONNECT_TIMEOUT_SECONDS = 1.0
CALL_TIMEOUT_SECONDS = 2.0
CLOSE_TIMEOUT_SECONDS = 5.0
SWEEP_SECONDS = 60.0

# What not reaching (or not being able to use) the database looks like.
FAILURES = (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError)


def describe_target(dsn: str) -> str:
    """Where the DSN points, for the log: host, port and database, never credentials."""
    parts = urlsplit(dsn)
    if not parts.scheme.startswith("postgres") or not parts.hostname:
        return "the configured database"
    return f"{parts.hostname}:{parts.port or 5432}{parts.path}"


class PgGuard:
    def __init__(self, settings: Settings, dsn: str) -> None:
        self.policy = settings.rate_limit
        self.gcra = Gcra.from_policy(self.policy)
        self.ttl_us = settings.idempotency_ttl_seconds * MICROSECONDS
        self.dsn = dsn
        self.target = describe_target(dsn)
        self._pool: Any = None
        self._opening = asyncio.Lock()
        self._reachable = True
        self._sweeping: asyncio.Task[None] | None = None

    async def _open(self) -> Any:
        async with self._opening:
            if self._pool is None:
                pool = await asyncpg.create_pool(
                    self.dsn,
                    min_size=0,
                    max_size=POOL_SIZE,
                    timeout=CONNECT_TIMEOUT_SECONDS,
                    command_timeout=CALL_TIMEOUT_SECONDS,
                )
                try:
                    async with pool.acquire() as connection:
                        await ensure_schema(connection)
                except BaseException:
                    pool.terminate()
                    raise
                self._pool = pool
        return self._pool

    @asynccontextmanager
    async def _connection(self) -> AsyncIterator[Any]:
        """A pooled connection, or `GuardUnavailable` when the database cannot be used."""
        try:
            async with asyncio.timeout(CALL_TIMEOUT_SECONDS):
                pool = self._pool if self._pool is not None else await self._open()
                async with pool.acquire() as connection:
                    yield connection
        except FAILURES as error:
            if self._reachable:
                self._reachable = False
                log.warning(
                    "the request guard's PostgreSQL at %s cannot be used (%s); guarded "
                    "requests follow WEAVER_REQUEST_GUARD_FAIL_OPEN until it can",
                    self.target,
                    f"{type(error).__name__}: {error}" if str(error) else type(error).__name__,
                )
            # The detail reaches the caller: name the failure, never the server.
            raise GuardUnavailable(
                f"the request guard's PostgreSQL did not answer ({type(error).__name__})"
            ) from error
        if not self._reachable:
            self._reachable = True
            log.info("the request guard's PostgreSQL at %s answers again", self.target)

    async def admit(self, request: GuardRequest) -> GuardDecision:
        caller = caller_key(request.principal)
        key = request.idempotency_key if request.method in IDEMPOTENT_METHODS else None
        token = secrets.token_hex(16) if key is not None else None
        async with self._connection() as connection:
            row = await connection.fetchrow(
                ADMIT,
                caller,
                self.gcra.interval_us,
                self.gcra.limit,
                key,
                request.fingerprint if key is not None else None,
                token,
                IN_FLIGHT_LEASE_SECONDS * MICROSECONDS,
            )
        verdict = Verdict(
            row["allowed"],
            row["remaining"],
            row["reset_us"],
            row["retry_after_us"],
            row["new_tat_us"],
        )
        headers = enforce(self.policy, verdict)
        match row["outcome"]:
            case "claimed" if key is not None and token is not None:
                return GuardDecision(headers=headers, claim=IdempotencyClaim(key, token))
            case "in_flight":
                raise key_in_flight(headers)
            case "mismatch":
                raise key_reused(headers)
            case "replay":
                replay = StoredResponse(
                    row["replay_status"],
                    bytes(row["replay_body"]),
                    json.loads(row["replay_headers"]),
                )
                return GuardDecision(headers=headers, replay=replay)
        return GuardDecision(headers=headers)

    async def settle(
        self, request: GuardRequest, claim: IdempotencyClaim, response: StoredResponse | None
    ) -> None:
        caller = caller_key(request.principal)
        async with self._connection() as connection:
            if response is None:
                await connection.execute(RELEASE, caller, claim.key, claim.token)
                return
            await connection.execute(
                STORE,
                caller,
                claim.key,
                claim.token,
                response.status,
                response.body,
                json.dumps(response.headers),
                self.ttl_us,
            )

    async def sweep(self) -> None:
        """Delete the rows that no longer mean anything."""
        async with self._connection() as connection:
            for statement in SWEEP:
                await connection.execute(statement)

    async def _sweep_periodically(self) -> None:
        while True:
            await asyncio.sleep(SWEEP_SECONDS)
            # A database that is down is reported by requests and the health check.
            with contextlib.suppress(GuardUnavailable):
                await self.sweep()

    async def start(self) -> None:
        # Set the schema up before the first request if the database is there already;
        # if not, the first request that reaches it will.
        with contextlib.suppress(GuardUnavailable):
            async with self._connection():
                pass
        self._sweeping = asyncio.create_task(self._sweep_periodically())

    async def close(self) -> None:
        if self._sweeping is not None:
            self._sweeping.cancel()
        if self._pool is None:
            return
        pool, self._pool = self._pool, None
        try:
            async with asyncio.timeout(CLOSE_TIMEOUT_SECONDS):
                await pool.close()
        except TimeoutError:
            pool.terminate()

    async def health(self) -> HealthCheck:
        started = time.perf_counter()
        try:
            async with self._connection() as connection:
                await connection.fetchval("SELECT 1")
        except GuardUnavailable as error:
            return HealthCheck("down", error.detail)
        return HealthCheck("up", latency_ms=round((time.perf_counter() - started) * 1000, 2))


def _guard(context: WeaverContext) -> PgGuard:
    guard = context.state.get(PLUGIN_NAME)
    if not isinstance(guard, PgGuard):
        # Start-up failed (no DSN); the plugin is reported down.
        raise GuardUnavailable("the request guard's PostgreSQL is not configured")
    return guard


@hookimpl
async def weaver_startup(context: WeaverContext) -> None:
    dsn = os.environ.get(DSN_VARIABLE) or context.settings.postgres_dsn
    if not dsn:
        raise RuntimeError(f"set {DSN_VARIABLE} (or POSTGRES_DSN) to the guard's database")
    guard = context.state[PLUGIN_NAME] = PgGuard(context.settings, dsn)
    await guard.start()


@hookimpl
async def weaver_shutdown(context: WeaverContext) -> None:
    guard = context.state.pop(PLUGIN_NAME, None)
    if isinstance(guard, PgGuard):
        await guard.close()


@hookimpl
async def check_health(context: WeaverContext) -> HealthCheck:
    return await _guard(context).health()


@hookimpl
async def guard_request(context: WeaverContext, request: GuardRequest) -> GuardDecision:
    return await _guard(context).admit(request)


@hookimpl
async def guard_response(
    context: WeaverContext,
    request: GuardRequest,
    claim: IdempotencyClaim,
    response: StoredResponse | None,
) -> None:
    await _guard(context).settle(request, claim, response)
