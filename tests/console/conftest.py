"""The console's browser tests: a real `weaver serve --demo`, Debian's headless Chromium
driven by Playwright, screenshots of each screen and an axe-core check of each.

Without Chromium (or Playwright) the tests skip, unless ``WEAVER_RUN_E2E=1``: then they
fail, so that a run meant to be complete cannot pass without them.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.test_readme import free_port
from weaver.auth import mint_token
from weaver.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts" / "console"
AXE = Path(__file__).resolve().parent / "vendor" / "axe-core" / "axe.min.js"
CHROMIUM = os.environ.get("WEAVER_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
JWT_SECRET = "console-test-secret-0123456789abcdef0123"
VIEWPORT = {"width": 1280, "height": 800}
# Impacts that fail a screen; "minor" and "moderate" findings are reported, not fatal.
AXE_FATAL = {"serious", "critical"}


def _unavailable(reason: str) -> None:
    if os.environ.get("WEAVER_RUN_E2E") == "1":
        pytest.fail(f"WEAVER_RUN_E2E=1 needs the browser tests to run: {reason}", pytrace=False)
    pytest.skip(reason)


@dataclass
class Server:
    base: str
    data_dir: Path
    settings: Settings

    @property
    def sqlite_root(self) -> Path:
        return self.data_dir / "sqlite"

    def token(
        self, tenant: str = "demo", roles: tuple[str, ...] = ("editor",), sub: str = "demo"
    ) -> str:
        return mint_token(self.settings, tenant_id=tenant, subject=sub, roles=roles)

    def call(
        self,
        method: str,
        path: str,
        token: str,
        body: Any = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, dict[str, str], bytes]:
        sent = {"Authorization": f"Bearer {token}", **(headers or {})}
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            sent["Content-Type"] = "application/json"
        request = urllib.request.Request(self.base + path, data=data, method=method, headers=sent)
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                return response.status, dict(response.headers), response.read()
        except urllib.error.HTTPError as error:
            return error.code, dict(error.headers), error.read()

    def json(self, method: str, path: str, token: str, body: Any = None) -> Any:
        status, _, payload = self.call(method, path, token, body)
        assert status < 300, f"{method} {path}: {status} {payload[:300]!r}"
        return json.loads(payload) if payload else None


@contextmanager
def serve_demo(directory: Path, **settings: str) -> Iterator[Server]:
    """`weaver serve --demo` on a free port, with its own data directory in `directory`."""
    data_dir = directory / "data"
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WEAVER_", "JWT_", "APP_"))}
    env.update(WEAVER_DATA_DIR=str(data_dir), JWT_SECRET_KEY=JWT_SECRET, APP_ENV="development")
    env.update(settings)
    log = (directory / "server.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "weaver", "serve", "--demo", "--port", str(port)],
        cwd=directory,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            with urllib.request.urlopen(base + "/health/live"):
                break
        except OSError:
            if time.monotonic() > deadline or process.poll() is not None:
                process.kill()
                raise RuntimeError("weaver serve --demo did not come up") from None
            time.sleep(0.1)
    try:
        yield Server(base, data_dir, Settings.from_env_names({"JWT_SECRET_KEY": JWT_SECRET}))
    finally:
        process.terminate()
        process.wait(timeout=15)
        log.close()


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with serve_demo(tmp_path_factory.mktemp("console-server")) as running:
        yield running


# Per module: Playwright's sync API keeps an event loop running while it is open, and
# the async tests of other modules need none to be.
@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not Path(CHROMIUM).exists():
        _unavailable(f"no Chromium at {CHROMIUM} (apt-get install chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _unavailable("the playwright package is not installed (pip install -e '.[dev]')")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


@dataclass
class Console:
    """One tab on the console, with what it logged and the requests it sent."""

    page: Any
    server: Server
    name: str
    problems: list[str] = field(default_factory=list)
    requests: list[Any] = field(default_factory=list)

    def open(self, route: str = "") -> None:
        self.page.goto(self.server.base + "/" + (f"#/{route}" if route else ""))

    def go(self, route: str) -> None:
        self.page.evaluate("route => { location.hash = route }", "#/" + route)

    def sign_in(self, token: str) -> None:
        self.page.fill("#token-input", token)
        self.page.click("#signin-form button[type=submit]")
        self.page.wait_for_selector("#main .page")

    def set_sql(self, sql: str) -> None:
        self.page.wait_for_selector(".CodeMirror")
        self.page.evaluate("s => document.querySelector('.CodeMirror').CodeMirror.setValue(s)", sql)

    def status(self) -> str:
        return str(self.page.get_attribute("#query-status .badge.status", "data-status"))

    def screenshot(self, screen: str, *, full_page: bool = False, element: Any = None) -> Path:
        """The viewport (or the whole page, or one element) as a PNG artifact."""
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        path = ARTIFACTS / f"{self.name}--{screen}.png"
        if element is not None:
            element.screenshot(path=str(path))
        else:
            self.page.screenshot(path=str(path), full_page=full_page)
        return path

    def check_accessibility(self, screen: str) -> list[dict[str, Any]]:
        """axe-core on the screen as it is; serious and critical findings fail the test."""
        # Evaluated through the DevTools protocol: the page's CSP does not apply to it.
        if not self.page.evaluate("() => typeof window.axe === 'object'"):
            self.page.evaluate(AXE.read_text())
        result = self.page.evaluate(
            "() => axe.run(document, {resultTypes: ['violations']})"
            ".then(r => r.violations.map(v => ({id: v.id, impact: v.impact, help: v.help,"
            " nodes: v.nodes.slice(0, 3).map(n => n.target.join(' '))})))"
        )
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        (ARTIFACTS / f"{self.name}--{screen}.axe.json").write_text(json.dumps(result, indent=2))
        fatal = [v for v in result if v["impact"] in AXE_FATAL]
        assert not fatal, f"{screen}: {json.dumps(fatal, indent=2)}"
        return list(result)


@contextmanager
def open_console(browser: Any, server: Server, name: str) -> Iterator[Console]:
    """A fresh browser context on `server`'s console."""
    context = browser.new_context(viewport=VIEWPORT, accept_downloads=True)
    page = context.new_page()
    page.set_default_timeout(15_000)
    tab = Console(page, server, name)
    # A refused inline script or style, and any uncaught error, fail the test.
    page.on(
        "console",
        lambda message: (
            tab.problems.append(message.text)
            if message.type == "error" and "Content Security Policy" in message.text
            else None
        ),
    )
    page.on("pageerror", lambda error: tab.problems.append(f"uncaught: {error}"))
    page.on("request", lambda sent: tab.requests.append(sent))
    yield tab
    context.close()
    assert not tab.problems, tab.problems


@pytest.fixture
def console(browser: Any, server: Server, request: pytest.FixtureRequest) -> Iterator[Console]:
    with open_console(browser, server, request.node.name.replace("[", "-").rstrip("]")) as tab:
        yield tab


def copy_demo(server: Server, name: str) -> Path:
    """A copy of the demo file under the server's SQLite root."""
    target = server.sqlite_root / name
    shutil.copy(server.sqlite_root / "demo.db", target)
    return target
