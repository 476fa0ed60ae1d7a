"""The embedded request guard: rate limits and Idempotency-Key records in this process.

Every operation runs without an ``await`` between reading and writing its record, so
concurrent requests on one event loop see each other's effects exactly as a shared
backend would; the hooks are plain functions for that reason.

The guard is per process: several gateway processes each count on their own, which is
what the ``redis_guard`` plugin is for.

Memory is bounded. Both tables are least-recently-used ordered dictionaries with a cap
(`MAX_CALLERS`, `MAX_RECORDS`); each request first drops entries from the cold end that
have expired, and then, past the cap, the coldest live ones. Dropping a live limiter entry
gives that caller a fresh allowance, and dropping a live idempotency record forgets the
key — both only happen when more distinct callers or keys are active at once than the
caps allow, which the embedded guard is not meant for.
"""

from __future__ import annotations

import secrets
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from weaver import hookimpl
from weaver.ratelimit import (
    IDEMPOTENT_METHODS,
    IN_FLIGHT_LEASE_SECONDS,
    MICROSECONDS,
    Gcra,
    caller_key,
    enforce,
    key_in_flight,
    key_reused,
)
from weaver.settings import RateLimit, Settings
from weaver.types import GuardDecision, GuardRequest, IdempotencyClaim, StoredResponse

MAX_CALLERS = 100_000
MAX_RECORDS = 10_000


def monotonic_us() -> int:
    return time.monotonic_ns() // 1000


@dataclass(slots=True)
class IdempotencyRecord:
    fingerprint: str
    token: str
    expires_us: int
    # None while the first request is still running.
    response: StoredResponse | None = None


class EmbeddedGuard:
    def __init__(
        self,
        policy: RateLimit,
        idempotency_ttl_seconds: int,
        *,
        max_callers: int = MAX_CALLERS,
        max_records: int = MAX_RECORDS,
        clock: Callable[[], int] = monotonic_us,
    ) -> None:
        self.policy = policy
        self.gcra = Gcra.from_policy(policy)
        self.ttl_us = idempotency_ttl_seconds * MICROSECONDS
        self.max_callers = max_callers
        self.max_records = max_records
        self.clock = clock
        self.tats: OrderedDict[str, int] = OrderedDict()
        self.records: OrderedDict[str, IdempotencyRecord] = OrderedDict()

    def admit(self, request: GuardRequest) -> GuardDecision:
        now = self.clock()
        caller = caller_key(request.principal)
        headers = self._count(caller, now)
        key = request.idempotency_key
        if key is None or request.method not in IDEMPOTENT_METHODS:
            return GuardDecision(headers=headers)

        self._evict_records(now)
        record_key = f"{caller}:{key}"
        record = self.records.get(record_key)
        if record is not None and record.expires_us <= now:
            record = None
        if record is None:
            token = secrets.token_hex(16)
            self.records[record_key] = IdempotencyRecord(
                request.fingerprint, token, now + IN_FLIGHT_LEASE_SECONDS * MICROSECONDS
            )
            self.records.move_to_end(record_key)
            return GuardDecision(headers=headers, claim=IdempotencyClaim(key, token))
        if record.fingerprint != request.fingerprint:
            raise key_reused(headers)
        if record.response is None:
            raise key_in_flight(headers)
        return GuardDecision(headers=headers, replay=record.response)

    def settle(
        self, request: GuardRequest, claim: IdempotencyClaim, response: StoredResponse | None
    ) -> None:
        record_key = f"{caller_key(request.principal)}:{claim.key}"
        record = self.records.get(record_key)
        # A claim whose lease ran out may have been taken over by a later request.
        if record is None or record.token != claim.token or record.response is not None:
            return
        if response is None:
            del self.records[record_key]
            return
        record.response = response
        record.expires_us = self.clock() + self.ttl_us
        self.records.move_to_end(record_key)

    def _count(self, caller: str, now: int) -> dict[str, str]:
        self._evict_callers(now)
        verdict = self.gcra.check(self.tats.get(caller), now)
        if verdict.allowed:
            self.tats[caller] = verdict.tat_us
            self.tats.move_to_end(caller)
        return enforce(self.policy, verdict)

    def _evict_callers(self, now: int) -> None:
        # A TAT in the past means a full allowance, the same as no entry at all.
        while self.tats:
            caller, tat = next(iter(self.tats.items()))
            if tat > now and len(self.tats) < self.max_callers:
                return
            del self.tats[caller]

    def _evict_records(self, now: int) -> None:
        while self.records:
            key, record = next(iter(self.records.items()))
            if record.expires_us > now and len(self.records) < self.max_records:
                return
            del self.records[key]


class EmbeddedGuardPlugin:
    """The embedded guard as a plugin: one `EmbeddedGuard` per app, made on first use
    (when another plugin owns the guard hooks, this one never runs)."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._guard: EmbeddedGuard | None = None
        self.slots = QuerySlots()

    @property
    def guard(self) -> EmbeddedGuard:
        if self._guard is None:
            self._guard = EmbeddedGuard(
                self._settings.rate_limit, self._settings.idempotency_ttl_seconds
            )
        return self._guard

    @hookimpl(trylast=True)
    def guard_request(self, request: GuardRequest) -> GuardDecision:
        return self.guard.admit(request)

    @hookimpl(trylast=True)
    def guard_response(
        self, request: GuardRequest, claim: IdempotencyClaim, response: StoredResponse | None
    ) -> None:
        self.guard.settle(request, claim, response)

    @hookimpl(trylast=True)
    def acquire_query_slot(
        self, tenant_id: str, query_id: str, limit: int, lease_seconds: float
    ) -> bool:
        return self.slots.acquire(tenant_id, query_id, limit, lease_seconds)

    @hookimpl(trylast=True)
    def release_query_slot(self, tenant_id: str, query_id: str) -> None:
        self.slots.release(tenant_id, query_id)


class QuerySlots:
    """Each tenant's running queries with the moment their lease lapses, in this process
    (the Redis guard counts across processes)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._held: dict[str, dict[str, float]] = {}

    def acquire(self, tenant_id: str, query_id: str, limit: int, lease_seconds: float) -> bool:
        now = self._clock()
        held = self._held.setdefault(tenant_id, {})
        for lapsed in [q for q, until in held.items() if until <= now]:
            del held[lapsed]
        if query_id not in held and len(held) >= limit:
            return False
        held[query_id] = now + lease_seconds
        return True

    def release(self, tenant_id: str, query_id: str) -> None:
        held = self._held.get(tenant_id)
        if held is not None:
            held.pop(query_id, None)
            if not held:
                del self._held[tenant_id]
