"""The embedded guard against the guard contract, its memory bound, and the shared GCRA."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from weaver.builtin.guard import EmbeddedGuard
from weaver.errors import RateLimited
from weaver.host import Host
from weaver.ratelimit import MICROSECONDS, Gcra, caller_key, enforce, rate_limit_headers
from weaver.settings import RateLimit, Settings
from weaver.testing.guard import GuardContract, new_principal, stored, write
from weaver.testing.harness import running_host
from weaver.types import Principal


class TestEmbeddedGuard(GuardContract):
    plugin = "embedded_guard"

    @pytest.fixture
    async def host(self, guard_settings: Settings) -> AsyncIterator[Host]:
        async with running_host(guard_settings) as host:
            assert host.owner_of("guard_request") == "embedded_guard"
            yield host


class FakeClock:
    def __init__(self) -> None:
        self.now_us = 1_000 * MICROSECONDS

    def __call__(self) -> int:
        return self.now_us

    def advance(self, seconds: float) -> None:
        self.now_us += int(seconds * MICROSECONDS)


def test_memory_stays_bounded_under_many_callers_and_keys() -> None:
    guard = EmbeddedGuard(RateLimit(5, 60), 600, max_callers=50, max_records=20)
    for n in range(1_000):
        principal = new_principal(f"tenant-{n}")
        request = write(principal, f"key-{n}")
        decision = guard.admit(request)
        assert decision.claim is not None
        guard.settle(request, decision.claim, stored())
        assert len(guard.tats) <= 50
        assert len(guard.records) <= 20
    # The most recent caller and key survive eviction.
    assert guard.admit(request).replay == stored()


def test_expired_entries_are_dropped_before_the_cap_is_reached() -> None:
    clock = FakeClock()
    guard = EmbeddedGuard(RateLimit(5, 60), 10, clock=clock)
    for n in range(100):
        request = write(new_principal(f"tenant-{n}"), "key")
        decision = guard.admit(request)
        assert decision.claim is not None
        guard.settle(request, decision.claim, stored())
    clock.advance(61)
    guard.admit(write(new_principal("latecomer"), "key"))
    assert len(guard.tats) == 1
    assert len(guard.records) == 1


def test_an_abandoned_claim_expires_with_its_lease() -> None:
    clock = FakeClock()
    guard = EmbeddedGuard(RateLimit(100, 1), 600, clock=clock)
    request = write(new_principal(), "key")
    assert guard.admit(request).claim is not None
    clock.advance(61)
    assert guard.admit(request).claim is not None


def test_gcra_admits_a_full_burst_then_one_per_interval() -> None:
    gcra = Gcra.from_policy(RateLimit(3, 60))
    now = 5 * MICROSECONDS
    tat = None
    for remaining in (2, 1, 0):
        verdict = gcra.check(tat, now)
        assert verdict.allowed
        assert verdict.remaining == remaining
        tat = verdict.tat_us
    refused = gcra.check(tat, now)
    assert not refused.allowed
    assert refused.retry_after_us == 20 * MICROSECONDS
    assert refused.reset_us == 60 * MICROSECONDS

    later = gcra.check(tat, now + 20 * MICROSECONDS)
    assert later.allowed
    assert later.remaining == 0


def test_gcra_burst_is_exact_when_the_interval_is_not_whole() -> None:
    gcra = Gcra.from_policy(RateLimit(7, 1))
    tat = None
    admitted = 0
    while (verdict := gcra.check(tat, 0)).allowed:
        tat = verdict.tat_us
        admitted += 1
    assert admitted == 7


def test_headers_use_the_structured_field_form() -> None:
    policy = RateLimit(600, 60)
    verdict = Gcra.from_policy(policy).check(None, 0)
    assert rate_limit_headers(policy, verdict) == {
        "RateLimit-Policy": '"default";q=600;w=60',
        "RateLimit": '"default";r=599;t=1',
    }


def test_refusal_carries_retry_after_in_whole_seconds() -> None:
    policy = RateLimit(1, 60)
    gcra = Gcra.from_policy(policy)
    tat = gcra.check(None, 0).tat_us
    with pytest.raises(RateLimited) as refused:
        enforce(policy, gcra.check(tat, 1))
    assert refused.value.headers["Retry-After"] == "60"
    assert refused.value.headers["RateLimit"] == '"default";r=0;t=60'


def test_a_refusal_says_the_same_wait_in_retry_after_and_t() -> None:
    # 600/60s: once the burst is spent one request comes back every 0.1 s, not in 60 s.
    policy = RateLimit(600, 60)
    gcra = Gcra.from_policy(policy)
    tat = None
    for _ in range(600):
        tat = gcra.check(tat, 0).tat_us
    with pytest.raises(RateLimited) as refused:
        enforce(policy, gcra.check(tat, 0))
    assert refused.value.headers["Retry-After"] == "1"
    assert refused.value.headers["RateLimit"] == '"default";r=0;t=1'
    assert refused.value.type_uri.endswith("/rate-limited")


def test_t_is_the_time_until_the_allowance_grows() -> None:
    # 3/60s: one request's worth comes back every 20 s after it was spent.
    policy = RateLimit(3, 60)
    gcra = Gcra.from_policy(policy)
    first = gcra.check(None, 0)
    assert rate_limit_headers(policy, first)["RateLimit"] == '"default";r=2;t=20'
    second = gcra.check(first.tat_us, 5 * MICROSECONDS)
    # Spent at 0 s and at 5 s: the first comes back at 20 s, 15 s from now.
    assert rate_limit_headers(policy, second)["RateLimit"] == '"default";r=1;t=15'


def test_caller_key_cannot_be_forged_with_separators() -> None:
    editor = frozenset({"editor"})
    assert caller_key(Principal("c", "a:b", editor)) != caller_key(Principal("b:c", "a", editor))
    assert caller_key(Principal("s", "t", editor)) == caller_key(Principal("s", "t", editor))
