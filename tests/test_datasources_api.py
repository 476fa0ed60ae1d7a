"""`/api/datasources` on the embedded defaults, plus a recording engine for secrets."""

from __future__ import annotations

import sqlite3
from importlib.metadata import EntryPoint
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import TENANT_B, ClientFactory, assert_problem
from weaver.app import create_app
from weaver.keys import HOST
from weaver.settings import Settings


def create_body(name: str = "shop", path: str = "shop.db", **extra: Any) -> dict[str, Any]:
    return {"name": name, "engine": "sqlite", "connection": {"path": path}, **extra}


async def test_create_get_list_delete(client: Any, auth: Any, sqlite_file: Any) -> None:
    sqlite_file("shop.db", "CREATE TABLE t (id INTEGER PRIMARY KEY);")
    response = await client.post(
        "/api/datasources", json=create_body(description="Orders"), headers=auth()
    )
    assert response.status == 201
    assert response.headers["Location"] == "/api/datasources/shop"
    created = await response.json()
    assert created["name"] == "shop"
    assert created["connection"] == {"path": "shop.db"}
    assert created["password_set"] is False
    assert created["description"] == "Orders"

    assert await (await client.get("/api/datasources/shop", headers=auth())).json() == created
    listing = await (await client.get("/api/datasources", headers=auth())).json()
    assert listing == {"items": [created], "next_cursor": None}

    assert (await client.delete("/api/datasources/shop", headers=auth())).status == 204
    assert (await client.get("/api/datasources/shop", headers=auth())).status == 404
    assert (await client.delete("/api/datasources/shop", headers=auth())).status == 404


async def test_duplicate_name_is_409_and_keeps_the_first(
    client: Any, auth: Any, sqlite_file: Any
) -> None:
    sqlite_file("a.db", "CREATE TABLE a (x);")
    sqlite_file("b.db", "CREATE TABLE b (x);")
    assert (
        await client.post("/api/datasources", json=create_body(path="a.db"), headers=auth())
    ).status == 201
    response = await client.post("/api/datasources", json=create_body(path="b.db"), headers=auth())
    assert response.status == 409
    assert_problem(await response.json(), 409)
    kept = await (await client.get("/api/datasources/shop", headers=auth())).json()
    assert kept["connection"] == {"path": "a.db"}


async def test_same_name_in_two_tenants(client: Any, auth: Any, sqlite_file: Any) -> None:
    sqlite_file("shop.db", "CREATE TABLE t (x);")
    for tenant in ("tenant-a", TENANT_B):
        response = await client.post("/api/datasources", json=create_body(), headers=auth(tenant))
        assert response.status == 201


async def test_other_tenant_sees_404_everywhere(client: Any, auth: Any, shop: str) -> None:
    other = auth(TENANT_B)
    assert (await client.get("/api/datasources/shop", headers=other)).status == 404
    assert (
        await client.patch("/api/datasources/shop", json={"description": "x"}, headers=other)
    ).status == 404
    assert (await client.delete("/api/datasources/shop", headers=other)).status == 404
    listing = await (await client.get("/api/datasources", headers=other)).json()
    assert listing["items"] == []
    # Still there for its owner.
    assert (await client.get("/api/datasources/shop", headers=auth())).status == 200


@pytest.mark.parametrize(
    "body",
    [
        create_body(name="Shop"),
        create_body(name="1shop"),
        create_body(name="a" * 64),
        create_body(name="information_schema"),
        create_body(name="mindsdb"),
        {**create_body(), "engine": "no such engine"},
        {**create_body(), "connection": "not an object"},
        {**create_body(), "extra": 1},
        {"name": "shop", "engine": "sqlite"},
    ],
)
async def test_invalid_create_is_422(client: Any, auth: Any, body: dict[str, Any]) -> None:
    response = await client.post("/api/datasources", json=body, headers=auth())
    assert response.status == 422
    body = await response.json()
    assert_problem(body, 422)
    assert body["errors"]


async def test_unsupported_engine_is_422(client: Any, auth: Any) -> None:
    body = {"name": "pg", "engine": "postgres", "connection": {"host": "db"}}
    response = await client.post("/api/datasources", json=body, headers=auth())
    assert response.status == 422
    assert "postgres" in (await response.json())["detail"]


@pytest.mark.parametrize("path", ["../outside.db", "/etc/passwd", "sub/../../x.db"])
async def test_sqlite_path_may_not_escape_the_root(client: Any, auth: Any, path: str) -> None:
    response = await client.post("/api/datasources", json=create_body(path=path), headers=auth())
    assert response.status == 422


async def test_sqlite_symlink_out_of_the_root_is_422(
    client: Any, auth: Any, settings: Settings, tmp_path: Path
) -> None:
    outside = tmp_path / "outside.db"
    sqlite3.connect(outside).close()
    settings.sqlite_root_path.mkdir(parents=True, exist_ok=True)
    (settings.sqlite_root_path / "link.db").symlink_to(outside)
    response = await client.post(
        "/api/datasources", json=create_body(path="link.db"), headers=auth()
    )
    assert response.status == 422


async def test_engine_refusal_is_502_and_leaves_nothing(
    client: Any, auth: Any, settings: Settings
) -> None:
    settings.sqlite_root_path.mkdir(parents=True, exist_ok=True)
    (settings.sqlite_root_path / "junk.db").write_bytes(b"this is not a database" * 100)
    response = await client.post(
        "/api/datasources", json=create_body(path="junk.db"), headers=auth()
    )
    assert response.status == 502
    body = await response.json()
    assert_problem(body, 502)
    assert str(settings.sqlite_root_path) not in body["detail"]
    assert (await client.get("/api/datasources/shop", headers=auth())).status == 404


async def test_missing_file_is_502(client: Any, auth: Any) -> None:
    response = await client.post(
        "/api/datasources", json=create_body(path="nope.db"), headers=auth()
    )
    assert response.status == 502


async def test_patch_description_and_connection(
    client: Any, auth: Any, shop: str, sqlite_file: Any
) -> None:
    sqlite_file("moved.db", "CREATE TABLE t (x);")
    response = await client.patch(
        "/api/datasources/shop",
        json={"description": "moved", "connection": {"path": "moved.db"}},
        headers=auth(),
    )
    assert response.status == 200
    body = await response.json()
    assert body["description"] == "moved"
    assert body["connection"] == {"path": "moved.db"}
    assert body["updated_at"] >= body["created_at"]


async def test_patch_with_bad_connection_keeps_the_old_one(
    client: Any, auth: Any, shop: str
) -> None:
    for connection, status in (({"path": "../x.db"}, 422), ({"path": "missing.db"}, 502)):
        response = await client.patch(
            "/api/datasources/shop", json={"connection": connection}, headers=auth()
        )
        assert response.status == status
    kept = await (await client.get("/api/datasources/shop", headers=auth())).json()
    assert kept["connection"] == {"path": "shop.db"}


async def test_paging(client: Any, auth: Any, sqlite_file: Any) -> None:
    sqlite_file("x.db", "CREATE TABLE t (x);")
    names = [f"ds_{i:02d}" for i in range(7)]
    for name in reversed(names):
        await client.post(
            "/api/datasources", json=create_body(name=name, path="x.db"), headers=auth()
        )
    seen: list[str] = []
    url = "/api/datasources?limit=3"
    while True:
        page = await (await client.get(url, headers=auth())).json()
        seen += [item["name"] for item in page["items"]]
        if page["next_cursor"] is None:
            break
        url = f"/api/datasources?limit=3&cursor={page['next_cursor']}"
    assert seen == names


@pytest.mark.parametrize("query", ["limit=0", "limit=1001", "limit=x", "cursor=%%%", "bogus=1"])
async def test_bad_list_parameters(client: Any, auth: Any, query: str) -> None:
    response = await client.get(f"/api/datasources?{query}", headers=auth())
    assert response.status in (400, 422)
    assert_problem(await response.json(), response.status)


class TestWithSecrets:
    """A third-party engine with passwords: never echoed, stored sealed, targets checked."""

    @pytest.fixture
    def settings_overrides(self) -> dict[str, str]:
        return {"WEAVER_DATASOURCE_ALLOWED_HOSTS": "db.internal.example,10.20.0.0/16"}

    @pytest.fixture
    async def client(self, aiohttp_client: ClientFactory, settings: Settings) -> Any:
        entry = EntryPoint("recording", "tests.plugins.recording_engine", "weaver")
        app = create_app(settings, environ={"WEAVER_RECORDING_MODE": "true"}, discovered=[entry])
        return await aiohttp_client(app)

    @staticmethod
    def body(**connection: Any) -> dict[str, Any]:
        params = {"host": "db.internal.example", "port": 5432, "user": "u", "password": "s3cr3t-pw"}
        params.update(connection)
        return {"name": "crm", "engine": "recording", "connection": params}

    async def test_password_is_never_echoed_and_is_sealed_at_rest(
        self, client: Any, auth: Any, settings: Settings
    ) -> None:
        response = await client.post("/api/datasources", json=self.body(), headers=auth())
        assert response.status == 201
        text = await response.text()
        assert "s3cr3t-pw" not in text
        body = await response.json()
        assert body["password_set"] is True
        assert "password" not in body["connection"]
        for url in ("/api/datasources/crm", "/api/datasources"):
            assert "s3cr3t-pw" not in await (await client.get(url, headers=auth())).text()
        for stored in settings.data_dir.rglob("*"):
            if stored.is_file():
                assert b"s3cr3t-pw" not in stored.read_bytes()
        # The engine itself was given the password.
        host = client.app[HOST]
        (sent,) = host.context.state["recording"].values()
        assert sent["password"] == "s3cr3t-pw"

    async def test_refused_connection_is_502_cleaned_and_nothing_kept(
        self, client: Any, auth: Any
    ) -> None:
        response = await client.post(
            "/api/datasources", json=self.body(password="wrong"), headers=auth()
        )
        assert response.status == 502
        detail = (await response.json())["detail"]
        assert "w_" not in detail and "wrong" not in detail
        assert (await client.get("/api/datasources/crm", headers=auth())).status == 404
        assert client.app[HOST].context.state.get("recording", {}) == {}

    @pytest.mark.parametrize("host", ["169.254.169.254", "127.0.0.1", "evil.example", "10.30.0.1"])
    async def test_targets_outside_the_allow_list_are_422(
        self, client: Any, auth: Any, host: str
    ) -> None:
        response = await client.post("/api/datasources", json=self.body(host=host), headers=auth())
        assert response.status == 422

    async def test_cidr_entry_admits_an_address_in_it(self, client: Any, auth: Any) -> None:
        response = await client.post(
            "/api/datasources", json=self.body(host="10.20.3.4"), headers=auth()
        )
        assert response.status == 201

    async def test_update_path_is_checked_too(self, client: Any, auth: Any) -> None:
        assert (
            await client.post("/api/datasources", json=self.body(), headers=auth())
        ).status == 201
        response = await client.patch(
            "/api/datasources/crm",
            json={"connection": self.body(host="169.254.169.254")["connection"]},
            headers=auth(),
        )
        assert response.status == 422


def test_recording_engine_is_discoverable(settings: Settings) -> None:
    # A guard against the secrets tests silently running without their engine.
    entry = EntryPoint("recording", "tests.plugins.recording_engine", "weaver")
    app = create_app(settings, environ={"WEAVER_RECORDING_MODE": "true"}, discovered=[entry])
    assert app[HOST].owner_of("validate_connection") == "recording"
