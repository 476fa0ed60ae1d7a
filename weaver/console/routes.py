"""`GET /`, the console's files and, in development, `POST /console/dev-token`.

The files are read once from the package and kept in memory with their gzip form. They
are served under a path that carries a hash of them all, so they can be cached forever:
a new release has a new path, and the page that names it is never cached.
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import mimetypes
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import resources
from importlib.resources.abc import Traversable

import jwt
from aiohttp import web
from pydantic import BaseModel

from weaver.auth import mint_token
from weaver.demo import DEMO_ROLES, DEMO_SUBJECT, DEMO_TENANT
from weaver.errors import NotFound
from weaver.keys import SETTINGS
from weaver.responses import json_response
from weaver.routing import RouteTable

routes = RouteTable()

STATIC_PREFIX = "/console/static"
DEV_TOKEN_TTL_SECONDS = 8 * 3600
# Below this a gzip member costs more than it saves.
GZIP_MIN_BYTES = 1024

# No inline script or style anywhere, nothing from another origin, no framing.
CONTENT_SECURITY_POLICY = "; ".join(
    (
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "connect-src 'self'",
        "font-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    )
)
_SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Opener-Policy": "same-origin",
}
_TEXT_TYPES = {".js": "text/javascript", ".css": "text/css", ".html": "text/html"}


@dataclass(frozen=True)
class Asset:
    body: bytes
    gzipped: bytes | None
    content_type: str
    etag: str


@dataclass(frozen=True)
class Bundle:
    build: str
    assets: dict[str, Asset]
    page_template: str


def _asset(body: bytes, name: str) -> Asset:
    suffix = name[name.rfind(".") :] if "." in name else ""
    content_type = _TEXT_TYPES.get(suffix) or mimetypes.guess_type(name)[0] or "text/plain"
    if content_type.startswith("text/") or content_type in ("image/svg+xml", "application/json"):
        content_type += "; charset=utf-8"
    compressible = not content_type.startswith(("image/png", "image/jpeg"))
    gzipped = gzip.compress(body, mtime=0) if compressible and len(body) >= GZIP_MIN_BYTES else None
    etag = '"' + hashlib.sha256(body).hexdigest()[:24] + '"'
    return Asset(body, gzipped, content_type, etag)


def _walk(folder: Traversable, prefix: str = "") -> dict[str, bytes]:
    files: dict[str, bytes] = {}
    for entry in folder.iterdir():
        if entry.is_dir():
            files.update(_walk(entry, f"{prefix}{entry.name}/"))
        elif not entry.name.startswith("."):
            files[prefix + entry.name] = entry.read_bytes()
    return files


@functools.cache
def bundle() -> Bundle:
    """The packaged files; `index.html` is the page template, the rest are assets."""
    files = _walk(resources.files("weaver.console") / "static")
    page_template = files.pop("index.html").decode()
    digest = hashlib.sha256()
    for name in sorted(files):
        digest.update(name.encode() + b"\0" + files[name] + b"\0")
    assets = {name: _asset(body, name) for name, body in files.items()}
    return Bundle(digest.hexdigest()[:16], assets, page_template)


@functools.cache
def _page(dev_token: bool) -> Asset:
    current = bundle()
    html = current.page_template.replace("{{asset_base}}", f"{STATIC_PREFIX}/{current.build}")
    html = html.replace("{{dev_token}}", "available" if dev_token else "unavailable")
    return _asset(html.encode(), "index.html")


def _serve(request: web.Request, asset: Asset, cache_control: str) -> web.Response:
    headers = {**_SECURITY_HEADERS, "Cache-Control": cache_control, "ETag": asset.etag}
    if asset.gzipped is not None:
        headers["Vary"] = "Accept-Encoding"
    if asset.etag in request.headers.get("If-None-Match", ""):
        return web.Response(status=304, headers=headers)
    body = asset.body
    if asset.gzipped is not None and "gzip" in request.headers.get("Accept-Encoding", ""):
        body = asset.gzipped
        headers["Content-Encoding"] = "gzip"
    headers["Content-Type"] = asset.content_type
    return web.Response(body=body, headers=headers)


@routes.route("GET", "/", summary="The web console", tag="console", documented=False)
async def console_page(request: web.Request) -> web.StreamResponse:
    settings = request.app[SETTINGS]
    response = _serve(request, _page(settings.app_env == "development"), "no-cache")
    response.headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
    return response


@routes.route(
    "GET",
    STATIC_PREFIX + "/{build}/{path:.+}",
    summary="A file of the web console",
    tag="console",
    documented=False,
)
async def console_asset(request: web.Request) -> web.StreamResponse:
    current = bundle()
    asset = current.assets.get(request.match_info["path"])
    # Files of another build are not these files: a stale page must not cache them.
    if request.match_info["build"] != current.build or asset is None:
        raise NotFound("no such console file")
    return _serve(request, asset, "public, max-age=31536000, immutable")


class DevTokenOut(BaseModel):
    token: str
    tenant_id: str
    sub: str
    roles: list[str]
    expires_at: datetime


@routes.route(
    "POST",
    "/console/dev-token",
    summary="Mint an editor token for the demo tenant (development only)",
    tag="console",
    response=DevTokenOut,
    errors=(404,),
)
async def dev_token(request: web.Request) -> web.StreamResponse:
    settings = request.app[SETTINGS]
    # Anyone who can reach the port gets a token: only a development server may do that.
    if settings.app_env != "development":
        raise NotFound("Not Found")
    # The token `weaver serve --demo` prints: same tenant, caller and role.
    token = mint_token(
        settings,
        tenant_id=DEMO_TENANT,
        subject=DEMO_SUBJECT,
        roles=DEMO_ROLES,
        ttl_seconds=DEV_TOKEN_TTL_SECONDS,
    )
    expires = jwt.decode(token, options={"verify_signature": False})["exp"]
    return json_response(
        {
            "token": token,
            "tenant_id": DEMO_TENANT,
            "sub": DEMO_SUBJECT,
            "roles": list(DEMO_ROLES),
            "expires_at": datetime.fromtimestamp(expires, UTC).isoformat(),
        },
        headers={"Cache-Control": "no-store"},
    )
