"""MindsDB from PyPI in a virtual environment of its own, serving its HTTP API.

This module is the one place that pins MindsDB's version, writes its config and logs in
to its HTTP API; the live suites and ``weaver_mindsdb.testing`` use it too.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import aiohttp

from . import apt
from .layout import HOST, REPO_ROOT, Layout
from .process import ServiceError, log, reserve_port, run
from .service import Daemon, Service, StartAgain, Status, file_digest, start_key, wait_until

VERSION = "26.1.0"
CONSTRAINTS = REPO_ROOT / "scripts/mindsdb/constraints.txt"
# MindsDB reads credentials from these itself and refuses to start when only one is set;
# auth comes from the config file, so they are kept out of its environment.
OWN_CREDENTIAL_VARIABLES = ("MINDSDB_USERNAME", "MINDSDB_PASSWORD", "MINDSDB_USER")
# Logged when the HTTP API could not bind its port while the main process lives on.
BIND_FAILED = "http API cant start"
# Threads serving MindsDB's HTTP requests (its default is 10): every request holds one for
# its whole length, a streamed answer included, and the eleventh waits unseen. Sized to
# the gateway's pool (weaver_mindsdb.plugin.POOL_SIZE); the send queue is MindsDB's default.
HTTP_WORKERS = 32
SEND_QUEUE_SIZE = 10


def venv_dir(layout: Layout) -> Path:
    return layout.cache_dir / f"mindsdb-{VERSION}-venv"


def render_config(port: int, user: str = "", password: str = "") -> dict[str, Any]:
    """The ``--config`` file: loopback only, no GUI, enough HTTP workers for the gateway's
    concurrency, HTTP auth when both credentials are set."""
    config: dict[str, Any] = {
        "api": {
            "http": {
                "host": HOST,
                "port": str(port),
                "a2wsgi": {"workers": HTTP_WORKERS, "send_queue_size": SEND_QUEUE_SIZE},
            }
        },
        "gui": {"open_on_start": False, "autoupdate": False},
    }
    if user and password:
        config["auth"] = {"http_auth_enabled": True, "username": user, "password": password}
    return config


def write_config(path: Path, port: int, user: str = "", password: str = "") -> None:
    """Owner-only: the file can hold the password."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch(mode=0o600)
    path.chmod(0o600)
    config = render_config(port, user, password)
    path.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")


def server_command(python: Path, config: Path) -> list[str]:
    return [str(python), "-m", "mindsdb", "--api=http", "--no_studio", f"--config={config}"]


def server_environ(environ: Mapping[str, str], storage: Path) -> dict[str, str]:
    kept = {k: v for k, v in environ.items() if k not in OWN_CREDENTIAL_VARIABLES}
    return {**kept, "MINDSDB_STORAGE_DIR": str(storage)}


async def auth_headers(
    session: aiohttp.ClientSession, url: str, user: str, password: str
) -> dict[str, str]:
    """The headers a request to MindsDB must carry: a bearer token from ``POST /api/login``
    when credentials are given (HTTP Basic is refused), none otherwise."""
    if not (user and password):
        return {}
    credentials = {"username": user, "password": password}
    async with session.post(f"{url.rstrip('/')}/api/login", json=credentials) as response:
        body = await response.json(content_type=None)
        if response.status != 200 or not isinstance(body, dict) or "token" not in body:
            raise ServiceError(f"mindsdb: login refused (HTTP {response.status})")
    return {"Authorization": f"Bearer {body['token']}"}


async def sql(
    session: aiohttp.ClientSession, url: str, query: str, headers: Mapping[str, str]
) -> dict[str, Any]:
    """One statement through ``POST /api/sql/query``; MindsDB answers 200 for errors too."""
    async with session.post(
        f"{url.rstrip('/')}/api/sql/query", json={"query": query}, headers=dict(headers)
    ) as response:
        body: dict[str, Any] = await response.json(content_type=None)
        return body


async def answers(url: str, user: str = "", password: str = "") -> bool:
    """``/api/status`` answers and ``SELECT 1`` comes back as a table (after login when
    credentials are given): the SQL layer works, not only the web server. The first
    statement of a fresh server takes seconds; a client's short timeout would miss it."""
    timeout = aiohttp.ClientTimeout(total=60)
    try:
        async with aiohttp.ClientSession(timeout=timeout) as session:
            async with session.get(f"{url}/api/status") as response:
                if response.status != 200:
                    return False
            headers = await auth_headers(session, url, user, password)
            answer = await sql(session, url, "SELECT 1 AS one", headers)
            return answer.get("type") == "table"
    except (aiohttp.ClientError, TimeoutError, ValueError, ServiceError):
        return False


class MindsDB(Service):
    name = "mindsdb"
    default_timeout = 300
    cache_glob = "mindsdb-*-venv"
    # The venv is rebuilt where it is (its path names only the version).
    installs_in_place = True

    def __init__(self, layout: Layout, environ: Mapping[str, str]) -> None:
        super().__init__(layout, environ)
        self.port = int(environ.get("WEAVER_MINDSDB_PORT") or 47334)
        self.user = environ.get("MINDSDB_USER", "")
        self.password = environ.get("MINDSDB_PASSWORD", "")
        self.daemon = Daemon("mindsdb", "mindsdb --api=http", layout)

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    @property
    def home(self) -> Path:
        return self.layout.state_dir / "mindsdb"

    def cache_dir(self) -> Path:
        return venv_dir(self.layout)

    @property
    def python(self) -> Path:
        return self.cache_dir() / "bin" / "python"

    def venv_wanted(self) -> str:
        """The venv is reused only if it was completed for this very constraints file."""
        return f"mindsdb=={VERSION} constraints:{file_digest(CONSTRAINTS)}"

    def apt_packages(self) -> list[str]:
        return [] if shutil.which("python3.11") else ["python3.11", "python3.11-venv"]

    async def install(self) -> None:
        venv = self.cache_dir()
        marker = venv / ".weaver-complete"
        if marker.exists() and marker.read_text().strip() == self.venv_wanted():
            return
        await apt.ensure(self.apt_packages())
        log(f"mindsdb: installing mindsdb=={VERSION} into {venv} (about 1 GB)")
        shutil.rmtree(venv, ignore_errors=True)
        await run(["python3.11", "-m", "venv", str(venv)])
        pip = [str(venv / "bin/pip"), "install", "-q", "--disable-pip-version-check"]
        wanted = ["-c", str(CONSTRAINTS), f"mindsdb=={VERSION}"]
        # uv fetches and installs the ~200 packages in parallel: about a minute on a cold
        # cache where pip took 3 to 9. pip stays the fallback.
        if (await run([*pip, "uv"], check=False)).returncode == 0:
            uv = [str(venv / "bin/uv"), "pip", "install", "-q", "--compile-bytecode"]
            await run([*uv, "--python", str(self.python), *wanted])
        else:
            await run([*pip, *wanted])
        # The postgres handler imports psycopg (v3), which mindsdb pulls in today; fail
        # here, not at the first CREATE DATABASE, if that ever changes.
        await run(
            [
                str(self.python),
                "-c",
                "import psycopg; psycopg.pq.version()\n"
                "import mindsdb.integrations.handlers.postgres_handler.postgres_handler",
            ]
        )
        marker.write_text(self.venv_wanted() + "\n")

    def start_key(self) -> str:
        # The config is part of the key: a server started with another one is restarted.
        config = json.dumps(render_config(self.port, self.user, self.password), sort_keys=True)
        return start_key(self.venv_wanted(), str(self.port), self.user, self.password, config)

    async def running(self) -> bool:
        return self.daemon.pid() is not None

    async def start(self) -> None:
        if bool(self.user) != bool(self.password):
            raise ServiceError("mindsdb: set both MINDSDB_USER and MINDSDB_PASSWORD, or neither")
        self.check_port_free(HOST, self.port)
        reserve_port(self.port)
        config = self.home / "config.json"
        write_config(config, self.port, self.user, self.password)
        storage = self.home / "storage"
        storage.mkdir(parents=True, exist_ok=True)
        log(f"mindsdb: starting {VERSION} on {self.url}")
        self.daemon.spawn(
            server_command(self.python, config),
            env=server_environ(self.environ, storage),
            cwd=self.home,
        )

    async def answers(self) -> bool:
        return await answers(self.url, self.user, self.password)

    async def ready(self) -> None:
        async def answered() -> bool:
            if BIND_FAILED in self._log_text():
                # The process lives on without its API: waiting longer would not help.
                raise StartAgain(f"its HTTP API could not bind port {self.port}")
            return await self.answers()

        await wait_until(
            self.name,
            answered,
            seconds=self.timeout,
            log_file=self.daemon.log_file,
            what=self.url,
            alive=lambda: self.daemon.pid() is not None,
            interval=1.0,
        )

    def _log_text(self) -> str:
        try:
            return self.daemon.log_file.read_text(errors="replace")
        except OSError:
            return ""

    async def after_ready(self, peers: Mapping[str, Service]) -> None:
        """Once per venv: the postgres handler really connects (a real CREATE DATABASE on
        sample_enterprise, a query through it, then DROP)."""
        postgres = peers.get("postgres")
        marker = self.cache_dir() / ".weaver-pg-handler-ok"
        if postgres is None or marker.exists():
            return
        pg = postgres.env()
        name = f"weaver_probe_{os.getpid()}"
        parameters = {
            "host": pg["WEAVER_E2E_DS_HOST"],
            "port": int(pg["WEAVER_E2E_DS_PORT"]),
            "database": pg["WEAVER_E2E_DS_DATABASE"],
            "user": pg["WEAVER_E2E_DS_USER"],
            "password": pg["WEAVER_E2E_DS_PASSWORD"],
        }
        log(f"mindsdb: checking the postgres handler against {parameters['database']}")
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=120)) as session:
            headers = await auth_headers(session, self.url, self.user, self.password)
            created = await sql(
                session,
                self.url,
                f'CREATE DATABASE {name} WITH ENGINE = "postgres", '
                f"PARAMETERS = {json.dumps(parameters)}",
                headers,
            )
            if created.get("type") != "ok":
                raise ServiceError(f"mindsdb: postgres handler check failed: {created}")
            try:
                counted = await sql(
                    session,
                    self.url,
                    f"SELECT * FROM {name} (SELECT count(*) AS n FROM information_schema.tables"
                    " WHERE table_schema = 'sales')",
                    headers,
                )
            finally:
                await sql(session, self.url, f"DROP DATABASE {name}", headers)
        if counted.get("type") != "table":
            raise ServiceError(f"mindsdb: query through the postgres handler failed: {counted}")
        marker.touch()

    async def stop(self) -> None:
        await self.daemon.stop(grace=30)

    async def status(self) -> Status:
        pid = self.daemon.pid()
        if pid is None or not await self.answers():
            return Status(self.name, False, self.url)
        auth = " (http auth)" if self.user else ""
        return Status(self.name, True, self.url, f"pid {pid} version {VERSION}{auth}")

    def env(self) -> dict[str, str]:
        variables = {"MINDSDB_URL": self.url}
        if self.user and self.password:
            variables.update(MINDSDB_USER=self.user, MINDSDB_PASSWORD=self.password)
        return variables
