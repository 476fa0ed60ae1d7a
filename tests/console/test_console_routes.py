"""The console's server side: the page, its files, their caching and the dev token."""

from __future__ import annotations

import gzip
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import pytest

from weaver.console import routes as console
from weaver.keys import ROUTES

ROOT = Path(__file__).resolve().parents[2]
STATIC = ROOT / "weaver" / "console" / "static"


def asset_paths(html: str) -> list[str]:
    return re.findall(r'(?:src|href)="(/console/static/[^"]+)"', html)


async def test_the_page_is_served_with_a_strict_policy(client: Any) -> None:
    response = await client.get("/")
    assert response.status == 200
    assert response.content_type == "text/html"
    policy = response.headers["Content-Security-Policy"]
    assert "default-src 'self'" in policy
    assert "script-src 'self'" in policy and "unsafe-inline" not in policy
    assert "frame-ancestors 'none'" in policy
    assert response.headers["Cache-Control"] == "no-cache"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    html = await response.text()
    # No inline script or style in the page itself.
    assert not re.search(r"<script(?![^>]*\ssrc=)", html)
    assert " style=" not in html and "<style" not in html
    assert len(asset_paths(html)) >= 10


async def test_every_file_the_page_names_is_served_and_cached_for_good(client: Any) -> None:
    html = await (await client.get("/")).text()
    for path in asset_paths(html):
        response = await client.get(path)
        assert response.status == 200, path
        assert response.headers["Cache-Control"] == "public, max-age=31536000, immutable"
        again = await client.get(path, headers={"If-None-Match": response.headers["ETag"]})
        assert again.status == 304


async def test_scripts_import_only_files_that_exist(client: Any) -> None:
    for script in (STATIC / "js").glob("*.js"):
        for imported in re.findall(r'from "\./([^"]+)"', script.read_text()):
            assert (STATIC / "js" / imported).exists(), f"{script.name} imports {imported}"


async def test_files_go_compressed_to_who_accepts_gzip(client: Any) -> None:
    html = await (await client.get("/")).text()
    path = next(p for p in asset_paths(html) if p.endswith("codemirror.js"))
    response = await client.get(path, headers={"Accept-Encoding": "gzip"}, auto_decompress=False)
    assert response.headers["Content-Encoding"] == "gzip"
    assert response.headers["Vary"] == "Accept-Encoding"
    original = (STATIC / "vendor" / "codemirror" / "lib" / "codemirror.js").read_bytes()
    assert gzip.decompress(await response.read()) == original


async def test_another_build_and_unknown_files_are_not_found(client: Any) -> None:
    build = console.bundle().build
    for path in (
        f"/console/static/{'0' * 16}/js/main.js",
        f"/console/static/{build}/js/nothing.js",
        f"/console/static/{build}/../routes.py",
        f"/console/static/{build}/%2e%2e/routes.py",
        f"/console/static/{build}/index.html",
    ):
        response = await client.get(path)
        assert response.status == 404, path
        assert response.content_type == "application/problem+json"


class TestDevToken:
    @pytest.fixture
    def settings_overrides(self) -> dict[str, str]:
        return {"APP_ENV": "development"}

    async def test_mints_a_demo_editor_token_that_the_api_accepts(self, client: Any) -> None:
        response = await client.post("/console/dev-token")
        assert response.status == 200
        assert response.headers["Cache-Control"] == "no-store"
        body = await response.json()
        assert (body["tenant_id"], body["sub"], body["roles"]) == ("demo", "demo", ["editor"])
        headers = {"Authorization": f"Bearer {body['token']}"}
        assert (await client.get("/api/datasources", headers=headers)).status == 200

    async def test_the_page_offers_it(self, client: Any) -> None:
        assert 'data-dev-token="available"' in await (await client.get("/")).text()


class TestNoDevTokenOutsideDevelopment:
    @pytest.fixture(params=["test", "staging", "production"])
    def settings_overrides(self, request: pytest.FixtureRequest) -> dict[str, str]:
        return {"APP_ENV": request.param}

    async def test_answers_404_and_the_page_does_not_offer_it(self, client: Any) -> None:
        response = await client.post("/console/dev-token")
        assert response.status == 404
        assert response.content_type == "application/problem+json"
        assert 'data-dev-token="unavailable"' in await (await client.get("/")).text()


async def test_openapi_documents_the_dev_token_but_not_the_files(client: Any) -> None:
    document = await (await client.get("/openapi.json")).json()
    assert "404" in document["paths"]["/console/dev-token"]["post"]["responses"]
    assert "/" not in document["paths"]
    assert not any(path.startswith("/console/static") for path in document["paths"])
    assert any(r.path == "/" for r in client.app[ROUTES].routes)


def test_the_wheel_carries_the_console(tmp_path: Path) -> None:
    # Built the way pip builds it (isolated, the declared backend), from a copy, so that
    # the build leaves nothing in the checkout.
    source = tmp_path / "source"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    shutil.copytree(
        ROOT / "weaver", source / "weaver", ignore=shutil.ignore_patterns("__pycache__")
    )
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path), str(source)],
        check=True,
        capture_output=True,
    )
    (wheel_path,) = tmp_path.glob("weaver_gateway-*.whl")
    with zipfile.ZipFile(wheel_path) as wheel:
        names = set(wheel.namelist())
    expected = {
        "weaver/console/static/" + str(path.relative_to(STATIC))
        for path in STATIC.rglob("*")
        if path.is_file()
    }
    assert expected <= names, sorted(expected - names)[:5]


def test_the_readme_tour_opens_the_console_with_a_picture() -> None:
    tour = (ROOT / "README.md").read_text().split("## A five-minute tour", 1)[1]
    assert "open http://127.0.0.1:8000" in tour.split("```", 1)[0]
    picture = re.search(r"!\[[^\]]+\]\((docs/[^)]+\.png)\)", tour)
    assert picture is not None
    png = (ROOT / picture.group(1)).read_bytes()
    assert png.startswith(b"\x89PNG") and len(png) < 300_000
