"""Conformance tests for request guards: rate limits and Idempotency-Keys
(``guard_request`` / ``guard_response``) and query slots (``acquire_query_slot`` /
``release_query_slot``).

Subclass `GuardContract` and provide a ``host`` fixture: a started host whose guard is
the one under test, built from the ``guard_settings`` fixture (a small rate limit and a
short idempotency TTL, so the whole class runs in seconds)::

    class TestMyGuard(GuardContract):
        plugin = "redis_guard"

        @pytest.fixture
        def guard_overrides(self) -> dict[str, str]:
            return {"WEAVER_REQUEST_GUARD_REDIS_MODE": "true"}

        @pytest.fixture
        async def host(self, guard_settings):
            async with running_host(guard_settings) as host:
                yield host

A plugin enabled by its own ``WEAVER_<NAME>_MODE`` flag passes the flag to the host
instead: ``running_host(guard_settings, environ={"WEAVER_MYGUARD_MODE": "true"})``. A guard
that leaves query slots to the embedded one says so:
``plugin_hooks = ("guard_request", "guard_response")``.

Every test uses callers of a tenant made up for it, so a guard whose backend outlives
the test (a shared Redis) still starts each test from a clean slate.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
import uuid
from pathlib import Path

import pytest

from weaver.errors import Conflict, RateLimited, Unprocessable
from weaver.host import Host
from weaver.settings import Settings
from weaver.testing.harness import IDEMPOTENCY_TTL_SECONDS, PluginContract, make_settings
from weaver.types import GuardDecision, GuardRequest, IdempotencyClaim, Principal, StoredResponse

RATE_LIMIT = "5/60s"
# Query slots: a lease the slot tests wait out, and one no test outlives.
SHORT_LEASE_SECONDS = 0.5
LONG_LEASE_SECONDS = 60.0

_ITEM = re.compile(r'^\s*"(?P<name>[^"]*)"(?P<params>(?:;[a-z*][a-z0-9_.*-]*=[^;,]+)*)\s*$')


def structured_item(headers: dict[str, str], name: str) -> tuple[str, dict[str, str]]:
    """The one item of a structured-field list header such as ``"default";r=4;t=12``:
    its string and its parameters. Header names are matched case-insensitively."""
    values = [v for k, v in headers.items() if k.lower() == name.lower()]
    assert len(values) == 1, f"expected one {name} header, got {headers}"
    match = _ITEM.match(values[0])
    assert match, f"{name} is not a structured-field item: {values[0]!r}"
    params = dict(p.split("=", 1) for p in match["params"].split(";")[1:])
    return match["name"], params


def new_tenant() -> str:
    return f"tenant-{uuid.uuid4().hex}"


def new_principal(tenant_id: str | None = None, subject: str = "alice") -> Principal:
    return Principal(subject, tenant_id or new_tenant(), frozenset({"editor"}))


def guard_request(
    principal: Principal,
    method: str = "GET",
    path: str = "/api/datasources",
    body: bytes = b"",
    idempotency_key: str | None = None,
) -> GuardRequest:
    fingerprint = hashlib.sha256(f"{method} {path}\n".encode() + body).hexdigest()
    return GuardRequest(principal, method, path, idempotency_key, fingerprint)


def write(principal: Principal, key: str, body: bytes = b'{"name": "sales"}') -> GuardRequest:
    return guard_request(principal, "POST", "/api/datasources", body, key)


def stored(body: bytes = b'{"name": "sales"}') -> StoredResponse:
    return StoredResponse(201, body, {"Content-Type": "application/json"})


async def claim(host: Host, request: GuardRequest) -> IdempotencyClaim:
    decision = await host.guard_request(request)
    assert decision.replay is None
    assert decision.claim is not None, "the first write with a key must claim it"
    return decision.claim


class GuardContract(PluginContract):
    contract_hooks = (
        "guard_request",
        "guard_response",
        "acquire_query_slot",
        "release_query_slot",
    )

    @pytest.fixture
    def guard_overrides(self) -> dict[str, str]:
        """Extra settings (environment names) that enable the guard under test."""
        return {}

    @pytest.fixture
    def guard_settings(self, tmp_path: Path, guard_overrides: dict[str, str]) -> Settings:
        return make_settings(
            tmp_path,
            WEAVER_RATE_LIMIT=RATE_LIMIT,
            WEAVER_REQUEST_GUARD_IDEMPOTENCY_TTL_SECONDS=str(IDEMPOTENCY_TTL_SECONDS),
            **guard_overrides,
        )

    # --- rate limit ----------------------------------------------------------------

    async def test_admits_exactly_the_limit_then_refuses(self, host: Host) -> None:
        policy = host.context.settings.rate_limit
        principal = new_principal()
        for admitted in range(1, policy.requests + 1):
            decision = await host.guard_request(guard_request(principal))
            _, quota = structured_item(decision.headers, "RateLimit-Policy")
            assert quota["q"] == str(policy.requests)
            assert quota["w"] == str(policy.window_seconds)
            _, current = structured_item(decision.headers, "RateLimit")
            assert current["r"] == str(policy.requests - admitted)
            assert int(current["t"]) >= 0

        with pytest.raises(RateLimited) as refused:
            await host.guard_request(guard_request(principal))
        headers = refused.value.headers
        assert 1 <= int(headers["Retry-After"]) <= policy.window_seconds
        assert structured_item(headers, "RateLimit")[1]["r"] == "0"
        structured_item(headers, "RateLimit-Policy")

    async def test_callers_and_tenants_are_counted_apart(self, host: Host) -> None:
        limit = host.context.settings.rate_limit.requests
        alice = new_principal()
        for _ in range(limit):
            await host.guard_request(guard_request(alice))
        with pytest.raises(RateLimited):
            await host.guard_request(guard_request(alice))

        bob_same_tenant = new_principal(alice.tenant_id, "bob")
        alice_other_tenant = new_principal(subject=alice.subject)
        for other in (bob_same_tenant, alice_other_tenant):
            decision = await host.guard_request(guard_request(other))
            assert structured_item(decision.headers, "RateLimit")[1]["r"] == str(limit - 1)

    async def test_concurrent_requests_admit_exactly_the_limit(self, host: Host) -> None:
        limit = host.context.settings.rate_limit.requests
        principal = new_principal()
        extra = 2 * limit + 3
        outcomes = await asyncio.gather(
            *(host.guard_request(guard_request(principal)) for _ in range(limit + extra)),
            return_exceptions=True,
        )
        admitted = [o for o in outcomes if isinstance(o, GuardDecision)]
        refused = [o for o in outcomes if isinstance(o, RateLimited)]
        assert len(admitted) == limit
        assert len(refused) == extra

    async def test_replays_count_against_the_limit(self, host: Host) -> None:
        limit = host.context.settings.rate_limit.requests
        principal = new_principal()
        request = write(principal, "key-1")
        await host.guard_response(request, await claim(host, request), stored())
        for _ in range(limit - 1):
            assert (await host.guard_request(request)).replay == stored()
        with pytest.raises(RateLimited):
            await host.guard_request(request)

    # --- idempotency ---------------------------------------------------------------

    async def test_reads_and_writes_without_a_key_are_not_claimed(self, host: Host) -> None:
        principal = new_principal()
        for request in (
            guard_request(principal, "GET", idempotency_key="key-1"),
            guard_request(principal, "POST", body=b"{}"),
        ):
            decision = await host.guard_request(request)
            assert decision.claim is None
            assert decision.replay is None

    async def test_completed_write_is_replayed(self, host: Host) -> None:
        request = write(new_principal(), "key-1")
        response = StoredResponse(201, b'{"name": "sales"}', {"Location": "/api/datasources/s"})
        await host.guard_response(request, await claim(host, request), response)

        decision = await host.guard_request(request)
        assert decision.replay == response
        assert decision.claim is None
        structured_item(decision.headers, "RateLimit")

    async def test_repeat_while_in_flight_conflicts(self, host: Host) -> None:
        request = write(new_principal(), "key-1")
        await claim(host, request)
        with pytest.raises(Conflict):
            await host.guard_request(request)

    async def test_concurrent_repeats_claim_once(self, host: Host) -> None:
        limit = host.context.settings.rate_limit.requests
        request = write(new_principal(), "key-1")
        outcomes = await asyncio.gather(
            *(host.guard_request(request) for _ in range(limit)), return_exceptions=True
        )
        claims = [o for o in outcomes if isinstance(o, GuardDecision) and o.claim is not None]
        conflicts = [o for o in outcomes if isinstance(o, Conflict)]
        assert len(claims) == 1
        assert len(conflicts) == limit - 1

    async def test_same_key_for_another_request_is_unprocessable(self, host: Host) -> None:
        principal = new_principal()
        first = write(principal, "key-1", b'{"name": "sales"}')
        other = write(principal, "key-1", b'{"name": "crm"}')
        first_claim = await claim(host, first)
        with pytest.raises(Unprocessable):
            await host.guard_request(other)
        await host.guard_response(first, first_claim, stored())
        with pytest.raises(Unprocessable):
            await host.guard_request(other)

    async def test_released_key_may_be_retried(self, host: Host) -> None:
        request = write(new_principal(), "key-1")
        first = await claim(host, request)
        await host.guard_response(request, first, None)
        second = await claim(host, request)
        assert second.token != first.token

    async def test_only_the_claim_holder_settles(self, host: Host) -> None:
        request = write(new_principal(), "key-1")
        real = await claim(host, request)
        forged = IdempotencyClaim(real.key, real.token + "-forged")
        await host.guard_response(request, forged, stored(b'{"forged": true}'))
        await host.guard_response(request, forged, None)
        with pytest.raises(Conflict):
            await host.guard_request(request)

        await host.guard_response(request, real, stored())
        assert (await host.guard_request(request)).replay == stored()

    async def test_stored_response_expires_after_the_ttl(self, host: Host) -> None:
        ttl = host.context.settings.idempotency_ttl_seconds
        if ttl > IDEMPOTENCY_TTL_SECONDS:
            pytest.fail(
                f"the host keeps idempotency records {ttl}s and this test would wait that "
                "long: build it from the guard_settings fixture or make_settings, whose TTL "
                f"is {IDEMPOTENCY_TTL_SECONDS}s"
            )
        request = write(new_principal(), "key-1")
        await host.guard_response(request, await claim(host, request), stored())
        assert (await host.guard_request(request)).replay == stored()

        await asyncio.sleep(host.context.settings.idempotency_ttl_seconds + 1)
        await claim(host, request)

    async def test_tenants_do_not_share_keys(self, host: Host) -> None:
        tenant_a = new_principal()
        tenant_b = new_principal(subject=tenant_a.subject)
        request_a = write(tenant_a, "shared-key")
        request_b = write(tenant_b, "shared-key")
        claim_a = await claim(host, request_a)
        claim_b = await claim(host, request_b)

        await host.guard_response(request_b, claim_b, stored(b'{"tenant": "b"}'))
        with pytest.raises(Conflict):
            await host.guard_request(request_a)
        await host.guard_response(request_a, claim_a, stored(b'{"tenant": "a"}'))
        assert (await host.guard_request(request_a)).replay == stored(b'{"tenant": "a"}')
        assert (await host.guard_request(request_b)).replay == stored(b'{"tenant": "b"}')

    # --- query slots ---------------------------------------------------------------

    async def test_query_slots_admit_at_most_the_limit(self, host: Host) -> None:
        tenant = new_tenant()
        for query_id in ("q0", "q1", "q2"):
            assert await host.acquire_query_slot(tenant, query_id, 3, LONG_LEASE_SECONDS)
        assert not await host.acquire_query_slot(tenant, "q3", 3, LONG_LEASE_SECONDS)
        # A larger limit on a later call leaves room for more.
        assert await host.acquire_query_slot(tenant, "q3", 4, LONG_LEASE_SECONDS)
        for query_id in ("q0", "q1", "q2", "q3"):
            await host.release_query_slot(tenant, query_id)

    async def test_concurrent_acquires_take_exactly_the_limit(self, host: Host) -> None:
        tenant = new_tenant()
        outcomes = await asyncio.gather(
            *(host.acquire_query_slot(tenant, f"q{n}", 3, LONG_LEASE_SECONDS) for n in range(12))
        )
        assert sum(outcomes) == 3
        for n in range(12):
            await host.release_query_slot(tenant, f"q{n}")

    async def test_acquiring_a_held_slot_renews_it(self, host: Host) -> None:
        tenant = new_tenant()
        assert await host.acquire_query_slot(tenant, "q0", 1, SHORT_LEASE_SECONDS)
        # The holder, at the limit, is still admitted: it renews what it holds.
        assert await host.acquire_query_slot(tenant, "q0", 1, LONG_LEASE_SECONDS)
        await asyncio.sleep(SHORT_LEASE_SECONDS + 0.5)
        assert not await host.acquire_query_slot(tenant, "q1", 1, LONG_LEASE_SECONDS)
        assert await host.acquire_query_slot(tenant, "q0", 1, LONG_LEASE_SECONDS)
        await host.release_query_slot(tenant, "q0")

    async def test_a_lapsed_slot_is_free_again(self, host: Host) -> None:
        tenant = new_tenant()
        assert await host.acquire_query_slot(tenant, "gone", 1, SHORT_LEASE_SECONDS)
        assert not await host.acquire_query_slot(tenant, "next", 1, LONG_LEASE_SECONDS)
        await asyncio.sleep(SHORT_LEASE_SECONDS + 0.5)
        assert await host.acquire_query_slot(tenant, "next", 1, LONG_LEASE_SECONDS)
        # The query whose lease lapsed does not get its slot back while it is taken.
        assert not await host.acquire_query_slot(tenant, "gone", 1, LONG_LEASE_SECONDS)
        await host.release_query_slot(tenant, "next")

    async def test_a_released_slot_is_free_again(self, host: Host) -> None:
        tenant = new_tenant()
        assert await host.acquire_query_slot(tenant, "q0", 2, LONG_LEASE_SECONDS)
        assert await host.acquire_query_slot(tenant, "q1", 2, LONG_LEASE_SECONDS)
        assert not await host.acquire_query_slot(tenant, "q2", 2, LONG_LEASE_SECONDS)
        await host.release_query_slot(tenant, "q0")
        assert await host.acquire_query_slot(tenant, "q2", 2, LONG_LEASE_SECONDS)
        assert not await host.acquire_query_slot(tenant, "q0", 2, LONG_LEASE_SECONDS)
        # Releasing a slot not held, or twice, is no error and frees nothing else.
        await host.release_query_slot(tenant, "q0")
        await host.release_query_slot(tenant, "never-held")
        await host.release_query_slot(new_tenant(), "q1")
        assert not await host.acquire_query_slot(tenant, "q3", 2, LONG_LEASE_SECONDS)
        for query_id in ("q1", "q2"):
            await host.release_query_slot(tenant, query_id)
        assert await host.acquire_query_slot(tenant, "q3", 1, LONG_LEASE_SECONDS)
        await host.release_query_slot(tenant, "q3")

    async def test_tenants_have_slots_of_their_own(self, host: Host) -> None:
        first, second = new_tenant(), new_tenant()
        assert await host.acquire_query_slot(first, "q0", 1, LONG_LEASE_SECONDS)
        # The same query id in another tenant is another query.
        assert await host.acquire_query_slot(second, "q0", 1, LONG_LEASE_SECONDS)
        assert not await host.acquire_query_slot(second, "q1", 1, LONG_LEASE_SECONDS)
        await host.release_query_slot(second, "q0")
        assert not await host.acquire_query_slot(first, "q1", 1, LONG_LEASE_SECONDS)
        assert await host.acquire_query_slot(second, "q1", 1, LONG_LEASE_SECONDS)
        for tenant, query_id in ((first, "q0"), (second, "q1")):
            await host.release_query_slot(tenant, query_id)
