"""The request guard in Redis, shared by every gateway process that uses the same server.

Enabled by ``WEAVER_REQUEST_GUARD_REDIS_MODE=true``; the server is ``REDIS_URL`` (its db
number, user, password and a ``rediss://`` scheme for TLS all honoured).

Each guarded request is one atomic Lua script (``admit.lua``): the GCRA rate limit of
`weaver.ratelimit` on Redis's own clock, plus, for a write with an Idempotency-Key, the
look-up or claim of the key. So a read costs one command and an idempotent write two
(the second, ``settle.lua``, stores the answer or releases the key — only for the claim's
holder); concurrent requests send theirs together (`weaver_redis_guard.batching`).
Every key expires by itself. Keys carry the caller in a hash tag, so one caller's keys
share a Redis Cluster slot and a script may touch them together.

Query slots (``WEAVER_QUERY_CONCURRENCY`` per tenant) are a sorted set per tenant of the
query ids holding one, scored by when their lease lapses on Redis's clock;
``acquire.lua`` drops lapsed leases, renews a held one or takes a free one in one atomic
step, and releasing is one ``ZREM``.

Redis being slow or gone must not stall requests: every call runs under short socket
timeouts with no client-side retries, inside an overall deadline, and any failure is
raised as `GuardUnavailable` for the core to apply ``WEAVER_REQUEST_GUARD_FAIL_OPEN``.
The client reconnects on the next call, so service resumes by itself when Redis does.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import math
import secrets
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from importlib.resources import files
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from weaver import hookimpl
from weaver.errors import GuardUnavailable
from weaver.opened import Opened
from weaver.ratelimit import (
    IDEMPOTENT_METHODS,
    IN_FLIGHT_LEASE_SECONDS,
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
from weaver_redis_guard.batching import ScriptPipeline

PLUGIN_NAME = "redis_guard"
KEY_PREFIX = "weaver:guard:"
# Long enough for a loaded server on the same network, short enough that a request
# waiting on a dead one fails well inside any client's patience.
SOCKET_TIMEOUT_SECONDS = 0.5
# One deadline around a whole call: connecting, the pool, sending and reading.
CALL_TIMEOUT_SECONDS = 1.0


def redis_client(url: str) -> Redis:
    """A client for ``REDIS_URL`` that fails fast instead of retrying."""
    return Redis.from_url(
        url,
        socket_timeout=SOCKET_TIMEOUT_SECONDS,
        socket_connect_timeout=SOCKET_TIMEOUT_SECONDS,
        # redis-py retries with backoff by default; a retry would only stretch the wait
        # of a request that the core can answer (or let through) right away.
        retry=Retry(NoBackoff(), 0),
    )


def _script(name: str) -> str:
    return files(__package__).joinpath(name).read_text()


def rate_key(caller: str) -> str:
    return f"{KEY_PREFIX}{{{caller}}}:rate"


def idempotency_key(caller: str, key: str) -> str:
    return f"{KEY_PREFIX}{{{caller}}}:idem:{key}"


def slots_key(tenant_id: str) -> str:
    # Hashed, as callers are (`weaver.ratelimit.caller_key`): a fixed length whatever the
    # token carried, and no brace in a tenant id can move the hash tag.
    tenant = hashlib.sha256(tenant_id.encode()).hexdigest()[:32]
    return f"{KEY_PREFIX}{{tenant:{tenant}}}:slots"


class RedisGuard:
    def __init__(self, settings: Settings) -> None:
        self.policy = settings.rate_limit
        self.gcra = Gcra.from_policy(self.policy)
        self.ttl_ms = settings.idempotency_ttl_seconds * 1000
        self.redis = redis_client(settings.redis_url)
        self.admit_script = self.redis.register_script(_script("admit.lua"))
        self.settle_script = self.redis.register_script(_script("settle.lua"))
        self.acquire_script = self.redis.register_script(_script("acquire.lua"))
        self.scripts = ScriptPipeline(self.redis, CALL_TIMEOUT_SECONDS)

    @asynccontextmanager
    async def _reaching_redis(self) -> AsyncIterator[None]:
        try:
            async with asyncio.timeout(CALL_TIMEOUT_SECONDS):
                yield
        except (RedisError, OSError, TimeoutError) as error:
            # The detail reaches the caller: name the failure, never the server.
            raise GuardUnavailable(
                f"the request guard's Redis did not answer ({type(error).__name__})"
            ) from error

    async def admit(self, request: GuardRequest) -> GuardDecision:
        caller = caller_key(request.principal)
        keys = [rate_key(caller)]
        args: list[str | int] = [self.gcra.interval_us, self.gcra.limit]
        claim = None
        if request.idempotency_key is not None and request.method in IDEMPOTENT_METHODS:
            claim = IdempotencyClaim(request.idempotency_key, secrets.token_hex(16))
            keys.append(idempotency_key(caller, claim.key))
            args += [request.fingerprint, claim.token, IN_FLIGHT_LEASE_SECONDS * 1000]
        async with self._reaching_redis():
            reply: Sequence[Any] = await self.scripts.run(self.admit_script, keys, args)

        allowed, remaining, reset_us, retry_after_us, tat_us, outcome, *stored = reply
        verdict = Verdict(bool(allowed), remaining, reset_us, retry_after_us, tat_us)
        headers = enforce(self.policy, verdict)
        match outcome:
            case b"claimed" if claim is not None:
                return GuardDecision(headers=headers, claim=claim)
            case b"in_flight":
                raise key_in_flight(headers)
            case b"mismatch":
                raise key_reused(headers)
            case b"replay":
                status, body, stored_headers = stored
                replay = StoredResponse(int(status), body, json.loads(stored_headers))
                return GuardDecision(headers=headers, replay=replay)
        return GuardDecision(headers=headers)

    async def settle(
        self, request: GuardRequest, claim: IdempotencyClaim, response: StoredResponse | None
    ) -> None:
        keys = [idempotency_key(caller_key(request.principal), claim.key)]
        args: list[str | int | bytes]
        if response is None:
            args = [claim.token, "release"]
        else:
            headers = json.dumps(response.headers)
            args = [claim.token, "store", self.ttl_ms, response.status, response.body, headers]
        async with self._reaching_redis():
            await self.scripts.run(self.settle_script, keys, args)

    async def acquire_slot(
        self, tenant_id: str, query_id: str, limit: int, lease_seconds: float
    ) -> bool:
        lease_ms = max(1, math.ceil(lease_seconds * 1000))
        async with self._reaching_redis():
            taken = await self.scripts.run(
                self.acquire_script, [slots_key(tenant_id)], [query_id, limit, lease_ms]
            )
        return bool(taken)

    async def release_slot(self, tenant_id: str, query_id: str) -> None:
        async with self._reaching_redis():
            await self.redis.zrem(slots_key(tenant_id), query_id)

    async def health(self) -> HealthCheck:
        started = time.perf_counter()
        try:
            async with self._reaching_redis():
                await self.redis.ping()
        except GuardUnavailable as error:
            return HealthCheck("down", error.detail)
        return HealthCheck("up", latency_ms=round((time.perf_counter() - started) * 1000, 2))


class RedisGuardPlugin:
    """The hooks, one instance per app, with its own Redis client (made at start-up)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        # Empty when start-up failed (a malformed REDIS_URL); the plugin is reported down.
        self._guard = Opened[RedisGuard]("the request guard's Redis client", GuardUnavailable)

    @property
    def guard(self) -> RedisGuard:
        return self._guard.get()

    @hookimpl
    def weaver_startup(self) -> None:
        # No round trip here: a Redis that is down at start-up is reported by
        # check_health and used as soon as it answers.
        self._guard.open(RedisGuard(self.settings))

    @hookimpl
    async def weaver_shutdown(self) -> None:
        guard = self._guard.take()
        if guard is not None:
            await guard.redis.aclose()

    @hookimpl
    async def check_health(self) -> HealthCheck:
        return await self.guard.health()

    @hookimpl
    async def guard_request(self, request: GuardRequest) -> GuardDecision:
        return await self.guard.admit(request)

    @hookimpl
    async def guard_response(
        self, request: GuardRequest, claim: IdempotencyClaim, response: StoredResponse | None
    ) -> None:
        await self.guard.settle(request, claim, response)

    @hookimpl
    async def acquire_query_slot(
        self, tenant_id: str, query_id: str, limit: int, lease_seconds: float
    ) -> bool:
        return await self.guard.acquire_slot(tenant_id, query_id, limit, lease_seconds)

    @hookimpl
    async def release_query_slot(self, tenant_id: str, query_id: str) -> None:
        await self.guard.release_slot(tenant_id, query_id)
