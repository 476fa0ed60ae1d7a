"""`/health/ready` tells a probe the statuses; what each check found beyond its status
(versions, errors, counts) is shown in production only to a caller with a token."""

from __future__ import annotations

from typing import Any

import pytest


async def ready_checks(client: Any, headers: dict[str, str] | None = None) -> dict[str, Any]:
    response = await client.get("/health/ready", headers=headers or {})
    assert response.status == 200
    body = await response.json()
    assert body["status"] == "ready"
    checks: dict[str, Any] = body["checks"]
    return checks


async def test_development_shows_the_details(client: Any) -> None:
    checks = await ready_checks(client)
    assert "running_queries" in checks["embedded_engine"]


class TestProduction:
    @pytest.fixture
    def settings_overrides(self) -> dict[str, str]:
        return {"APP_ENV": "production"}

    async def test_without_a_token_only_statuses(self, client: Any) -> None:
        checks = await ready_checks(client)
        assert checks["embedded_engine"] == {"status": "up"}
        assert checks["mindsdb"] == {"status": "disabled"}
        assert all(check.keys() == {"status"} for check in checks.values())

    async def test_a_bad_token_sees_only_statuses(self, client: Any) -> None:
        checks = await ready_checks(client, {"Authorization": "Bearer not-a-token"})
        assert all(check.keys() == {"status"} for check in checks.values())

    async def test_a_token_sees_the_details(self, client: Any, auth: Any) -> None:
        checks = await ready_checks(client, auth(roles=["viewer"]))
        assert "running_queries" in checks["embedded_engine"]
