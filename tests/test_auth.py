"""Bearer tokens: every check API.md lists, and roles."""

from __future__ import annotations

import time
from typing import Any

import jwt
import pytest

from tests.conftest import TENANT_A, assert_problem
from weaver.settings import Settings


def encode(settings: Settings, claims: dict[str, Any], **kwargs: Any) -> str:
    key = kwargs.pop("key", settings.jwt_secret_key)
    algorithm = kwargs.pop("algorithm", "HS256")
    return jwt.encode(claims, key, algorithm=algorithm, **kwargs)


def claims(**overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    base: dict[str, Any] = {
        "sub": "alice",
        "tenant_id": TENANT_A,
        "roles": ["viewer"],
        "iat": now,
        "exp": now + 300,
    }
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not None}


async def status_of(client: Any, token: str) -> tuple[int, dict[str, Any]]:
    response = await client.get("/api/datasources", headers={"Authorization": f"Bearer {token}"})
    return response.status, await response.json()


async def test_valid_token_is_accepted(client: Any, settings: Settings) -> None:
    status, body = await status_of(client, encode(settings, claims()))
    assert status == 200
    assert body == {"items": [], "next_cursor": None}


async def test_missing_token_is_401_with_challenge(client: Any) -> None:
    response = await client.get("/api/datasources")
    assert response.status == 401
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert response.content_type == "application/problem+json"
    assert_problem(await response.json(), 401)


@pytest.mark.parametrize("header", ["Basic abc", "Bearer", "Bearer    ", "token"])
async def test_malformed_authorization_is_401(client: Any, header: str) -> None:
    response = await client.get("/api/datasources", headers={"Authorization": header})
    assert response.status == 401


@pytest.mark.parametrize(
    ("label", "make"),
    [
        ("expired", lambda s: encode(s, claims(exp=int(time.time()) - 3600))),
        ("no exp", lambda s: encode(s, claims(exp=None))),
        (
            "wrong signature",
            lambda s: encode(s, claims(), key="another-secret-of-32-bytes-length!"),
        ),
        # The server's own secret under another algorithm; PyJWT warns that 36 bytes are
        # short for HS512, which is beside the point here.
        pytest.param(
            "other alg HS512",
            lambda s: encode(s, claims(), algorithm="HS512"),
            marks=pytest.mark.filterwarnings("ignore::jwt.warnings.InsecureKeyLengthWarning"),
        ),
        ("alg none", lambda s: encode(s, claims(), key=None, algorithm="none")),
        ("no tenant_id", lambda s: encode(s, claims(tenant_id=None))),
        ("empty tenant_id", lambda s: encode(s, claims(tenant_id=""))),
        ("no sub", lambda s: encode(s, claims(sub=None))),
        ("not yet valid", lambda s: encode(s, claims(nbf=int(time.time()) + 3600))),
        ("issued in the future", lambda s: encode(s, claims(iat=int(time.time()) + 3600))),
        ("roles not a list", lambda s: encode(s, claims(roles="admin"))),
        ("garbage", lambda s: "not.a.jwt"),
    ],
)
async def test_bad_tokens_are_401(client: Any, settings: Settings, label: str, make: Any) -> None:
    status, body = await status_of(client, make(settings))
    assert status == 401, label
    assert_problem(body, 401)


class TestIssuerAndAudience:
    @pytest.fixture
    def settings_overrides(self) -> dict[str, str]:
        return {"JWT_ISSUER": "https://id.example", "JWT_AUDIENCE": "weaver"}

    async def test_matching_iss_and_aud_pass(self, client: Any, settings: Settings) -> None:
        token = encode(settings, claims(iss="https://id.example", aud="weaver"))
        assert (await status_of(client, token))[0] == 200

    @pytest.mark.parametrize(
        "overrides",
        [
            {"iss": "https://evil.example", "aud": "weaver"},
            {"aud": "weaver"},
            {"iss": "https://id.example", "aud": "other"},
            {"iss": "https://id.example"},
        ],
    )
    async def test_wrong_or_missing_iss_aud_are_401(
        self, client: Any, settings: Settings, overrides: dict[str, str]
    ) -> None:
        assert (await status_of(client, encode(settings, claims(**overrides))))[0] == 401


async def test_viewer_cannot_write(client: Any, auth: Any) -> None:
    response = await client.post(
        "/api/datasources",
        json={"name": "x", "engine": "sqlite", "connection": {"path": "x.db"}},
        headers=auth(roles=["viewer"]),
    )
    assert response.status == 403
    assert_problem(await response.json(), 403)


async def test_unknown_roles_grant_nothing(client: Any, auth: Any) -> None:
    response = await client.get("/api/datasources", headers=auth(roles=["superuser"]))
    assert response.status == 403


async def test_admin_may_do_what_editors_do(client: Any, auth: Any) -> None:
    response = await client.post(
        "/api/v1/metadata/glossary",
        json={"term": "Churn", "definition": "Customers lost"},
        headers=auth(roles=["admin"]),
    )
    assert response.status == 201


async def test_tenant_in_header_query_or_body_is_ignored(client: Any, auth: Any, shop: str) -> None:
    spoof = {**auth("tenant-b"), "X-Tenant-Id": "tenant-a"}
    response = await client.get("/api/datasources/shop?tenant_id=tenant-a", headers=spoof)
    assert response.status == 404
