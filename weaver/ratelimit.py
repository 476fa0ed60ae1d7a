"""What every request guard shares: the rate-limit math, the IETF RateLimit fields, the
key a caller is counted under, and the idempotency rules that are not storage.

The algorithm is GCRA (the generic cell rate algorithm, a token bucket kept as a single
timestamp). We chose it over a sliding window because it needs one value per caller — the
*theoretical arrival time* (TAT) — so memory is O(1) per caller, a shared backend updates
it with one atomic read-modify-write, and the admission decision is exact: from a full
allowance exactly ``limit`` requests pass at once, then one more every
``window / limit``. The trade-off, stated honestly: ``600/60s`` means "a burst of 600,
refilled at 10 per second", so a caller who keeps pace with the refill can be admitted
up to ``2 * limit - 1`` times within some 60-second span; a sliding log would bound every
span to ``limit`` but costs one entry per request.

All times are integer microseconds, so the arithmetic is exact in Python and in the
doubles of Redis's Lua (which are exact below 2**53, far above microseconds since 1970).
The emission interval is rounded *up* to a whole microsecond — the sustained rate can
only err below the policy — and the burst bound is ``limit * interval``, which makes the
burst exactly ``limit`` whatever the rounding.
"""

from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass, field
from typing import NamedTuple

from weaver.errors import Conflict, RateLimited, Unprocessable
from weaver.settings import RateLimit
from weaver.types import Principal

MICROSECONDS = 1_000_000

# The name the RateLimit-Policy and RateLimit fields give our single quota policy.
POLICY_NAME = "default"

# Only writes may carry an Idempotency-Key that the guard honours.
IDEMPOTENT_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})

# How long a claimed key stays "in flight" without an answer. A gateway that crashed
# while holding a claim blocks the key (409) at most this long; a handler that runs
# longer than this may see a repeat run beside it (and its own answer is then not
# stored, since its claim token no longer matches).
IN_FLIGHT_LEASE_SECONDS = 60


@dataclass(frozen=True, slots=True)
class Gcra:
    """One rate-limit policy in the units the algorithm works in."""

    limit: int
    window_us: int
    # Derived once: every request of every caller needs them.
    interval_us: int = field(init=False)
    burst_us: int = field(init=False)

    def __post_init__(self) -> None:
        # Time one request costs: the window divided by the limit, rounded up.
        object.__setattr__(self, "interval_us", -(-self.window_us // self.limit))
        # How far the TAT may run ahead of now: exactly ``limit`` requests' worth.
        object.__setattr__(self, "burst_us", self.limit * self.interval_us)

    @classmethod
    def from_policy(cls, policy: RateLimit) -> Gcra:
        return cls(policy.requests, policy.window_seconds * MICROSECONDS)

    def check(self, tat_us: int | None, now_us: int) -> Verdict:
        """Admit or refuse one request given the caller's stored TAT (``None``: none)."""
        base = now_us if tat_us is None else max(tat_us, now_us)
        new_tat = base + self.interval_us
        debt = new_tat - now_us
        if debt > self.burst_us:
            return Verdict(False, 0, base - now_us, debt - self.burst_us, base)
        return Verdict(True, (self.burst_us - debt) // self.interval_us, debt, 0, new_tat)


class Verdict(NamedTuple):
    """The outcome of one check (a tuple: one is made on every request).

    ``reset_us`` is how long until the full allowance is back; ``retry_after_us`` how long
    a refused caller must wait for one request; ``tat_us`` the TAT to keep (it expires by
    itself ``tat_us - now`` from now, when it would mean the same as no record).
    """

    allowed: bool
    remaining: int
    reset_us: int
    retry_after_us: int
    tat_us: int


def whole_seconds(microseconds: int) -> int:
    """Delta-seconds rounded up, so a client that waits that long is never early."""
    return -(-microseconds // MICROSECONDS)


def rate_limit_headers(policy: RateLimit, verdict: Verdict) -> dict[str, str]:
    """The IETF httpapi ratelimit-headers fields, in their structured-field form:
    ``RateLimit-Policy: "default";q=600;w=60`` and ``RateLimit: "default";r=599;t=1``.

    ``t`` is what draft 11 calls the effective window: the seconds within which the
    caller can use no more than ``r`` (draft 10: until more quota is made available).
    Under GCRA that is until the allowance grows by one, or, for a refused request, until
    one request will be admitted — the `Retry-After` of the 429, which the draft says may
    not be earlier than ``t``. (The time until the whole allowance is back, ``reset_us``,
    is not it: more than ``r`` may be used well before then.)"""
    return {
        "RateLimit-Policy": _policy_field(policy.requests, policy.window_seconds),
        "RateLimit": f'"{POLICY_NAME}";r={verdict.remaining};t={_window(policy, verdict)}',
    }


def _window(policy: RateLimit, verdict: Verdict) -> int:
    if not verdict.allowed:
        return _retry_after(verdict)
    interval_us = _interval_us(policy.requests, policy.window_seconds)
    # The allowance grows by one each interval, counted from when the debt started.
    return whole_seconds(verdict.reset_us % interval_us or interval_us)


def _retry_after(verdict: Verdict) -> int:
    """A refused caller's wait for one request, in whole seconds (at least one)."""
    return max(1, whole_seconds(verdict.retry_after_us))


@functools.lru_cache(maxsize=16)
def _interval_us(requests: int, window_seconds: int) -> int:
    return Gcra(requests, window_seconds * MICROSECONDS).interval_us


@functools.lru_cache(maxsize=16)
def _policy_field(requests: int, window_seconds: int) -> str:
    return f'"{POLICY_NAME}";q={requests};w={window_seconds}'


def enforce(policy: RateLimit, verdict: Verdict) -> dict[str, str]:
    """The headers for an admitted request; raise `RateLimited` for a refused one."""
    headers = rate_limit_headers(policy, verdict)
    if not verdict.allowed:
        retry_after = _retry_after(verdict)
        raise RateLimited(
            f"rate limit of {policy.requests} requests per {policy.window_seconds}s exceeded; "
            f"retry in {retry_after}s",
            headers={**headers, "Retry-After": str(retry_after)},
        )
    return headers


def caller_key(principal: Principal) -> str:
    """The key a caller is counted and scoped under, the same in every guard.

    Hashed so that no separator inside a tenant id or subject can make two callers
    collide (``a:b``/``c`` against ``a``/``b:c``), and so that backend keys have a fixed
    length whatever the token carried.
    """
    return _caller_key(principal.tenant_id, principal.subject)


# Every request of a caller needs the same key; hashing it each time showed in profiles.
@functools.lru_cache(maxsize=4096)
def _caller_key(tenant_id: str, subject: str) -> str:
    digest = hashlib.sha256()
    for part in (tenant_id, subject):
        encoded = part.encode()
        digest.update(len(encoded).to_bytes(8, "big"))
        digest.update(encoded)
    return digest.hexdigest()[:32]


def key_in_flight(headers: dict[str, str]) -> Conflict:
    """The answer to a repeat whose first request is still running."""
    return Conflict("a request with this Idempotency-Key is still in progress", headers=headers)


def key_reused(headers: dict[str, str]) -> Unprocessable:
    """The answer to an Idempotency-Key already used for a different request."""
    return Unprocessable(
        "this Idempotency-Key was already used for a different request", headers=headers
    )
