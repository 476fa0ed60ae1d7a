"""Trino 476 from Maven Central: a coordinator and one worker on loopback, on Java 25.

Trino 47x needs Java 24+, Neo4j 5.26 needs 17: ``JAVA_HOME`` and ``PATH`` name the newer
JDK for Trino's processes only. The coordinator schedules no work itself, so a query that
runs proves the worker. Catalogs are created at run time (``CREATE CATALOG``) and kept in
memory only: the default file store would write their passwords into ``etc/catalog``.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

from .layout import HOST, Layout
from .process import ServiceError, failure, log, run
from .service import Daemon, Service, Status, start_key, wait_until

VERSION = "476"
ARTIFACT = f"io.trino:trino-server:{VERSION}:tar.gz"
MIN_JAVA = 24
ENVIRONMENT = "weaver_dev"
# The catalog the readiness query uses: generated data, no connection, no secret.
PROBE_CATALOG = "tpch"
PROBE_QUERY = "SELECT count(*) FROM tpch.tiny.nation"
# The plugins loaded, of the ~60 the tarball ships: each costs start time and resident
# memory in both JVMs. tpch serves the readiness query; postgresql, mysql and mariadb are
# the engines Weaver registers datasources for; the postgresql connector needs the
# Geometry type of geospatial.
PLUGINS = ("tpch", "postgresql", "mysql", "mariadb", "geospatial")


class TrinoError(Exception):
    """A statement that Trino answered with an error."""


@dataclass(frozen=True)
class Node:
    role: str  # "coordinator" or "worker"
    port: int

    @property
    def node_id(self) -> str:
        return f"weaver-{self.role}"

    @property
    def coordinator(self) -> bool:
        return self.role == "coordinator"


def render_node_properties(node: Node, data_dir: Path) -> str:
    return (
        f"node.environment={ENVIRONMENT}\n"
        f"node.id={node.node_id}\n"
        f"node.data-dir={data_dir}\n"
        # Announce and bind loopback only: the dev cluster is not reachable from outside.
        f"node.internal-address={HOST}\n"
        f"node.bind-ip={HOST}\n"
    )


def render_jvm_config(heap: str) -> str:
    options = [
        "-server",
        f"-Xmx{heap}",
        "-XX:+UseG1GC",
        "-XX:+ExplicitGCInvokesConcurrent",
        "-XX:+ExitOnOutOfMemoryError",
        "-XX:-OmitStackTraceInFastThrow",
        "-XX:ReservedCodeCacheSize=256M",
        "-XX:+EnableDynamicAgentLoading",
        "-Djdk.attach.allowAttachSelf=true",
        "-Dfile.encoding=UTF-8",
    ]
    return "\n".join(options) + "\n"


def render_config_properties(node: Node, coordinator_port: int, plugin_dir: Path) -> str:
    lines = [
        f"coordinator={str(node.coordinator).lower()}",
        f"http-server.http.port={node.port}",
        f"discovery.uri=http://{HOST}:{coordinator_port}",
        "catalog.management=dynamic",
        f"plugin.dir={plugin_dir}",
    ]
    if node.coordinator:
        # Work must go to a worker; catalogs live in memory (the store is the coordinator's).
        lines += ["node-scheduler.include-coordinator=false", "catalog.store=memory"]
    return "\n".join(lines) + "\n"


def render_rules(admin_user: str) -> dict[str, Any]:
    """File-based access control: the admin user owns catalogs and sees every query; any
    other user reads catalogs and sees its own queries only (``GET /v1/query`` and
    ``system.runtime.queries`` otherwise show everyone's statements, passwords included).
    Only the admin may run a catalog's pass-through ``system.query`` table function
    (Weaver reads keys through it; it runs its text on the source unchecked); built-in
    functions stay everyone's."""
    admin = re.escape(admin_user)
    return {
        "catalogs": [{"user": admin, "allow": "owner"}, {"allow": "read-only"}],
        "queries": [{"user": admin, "allow": ["execute", "view", "kill"]}, {"allow": ["execute"]}],
        "system_information": [{"user": admin, "allow": ["read", "write"]}],
        "functions": [
            {"user": admin, "schema": "system", "function": "query", "privileges": ["EXECUTE"]},
            {"catalog": "system", "schema": "builtin", "privileges": ["EXECUTE"]},
        ],
    }


def render_access_control(rules_file: Path) -> str:
    return f"access-control.name=file\nsecurity.config-file={rules_file}\n"


def java_major(java_home: Path) -> int:
    """The major version from a JDK's ``release`` file (``JAVA_VERSION="25.0.1"``); 0 if none."""
    try:
        found = re.search(r'^JAVA_VERSION="(\d+)', (java_home / "release").read_text(), re.M)
    except OSError:
        return 0
    return int(found.group(1)) if found else 0


def find_java_home(environ: Mapping[str, str], jvm_root: Path = Path("/usr/lib/jvm")) -> Path:
    """``WEAVER_TRINO_JAVA_HOME``, else the newest JDK under ``jvm_root`` that Trino accepts."""
    if environ.get("WEAVER_TRINO_JAVA_HOME"):
        return Path(environ["WEAVER_TRINO_JAVA_HOME"])
    candidates = [home for home in jvm_root.glob("*") if (home / "bin/java").exists()]
    usable = sorted((java_major(h), str(h)) for h in candidates if java_major(h) >= MIN_JAVA)
    if not usable:
        raise ServiceError(f"trino: no JDK {MIN_JAVA}+ under {jvm_root} (Temurin 25 expected)")
    return Path(usable[-1][1])


def stage_nodes(stage: Mapping[str, Any]) -> set[str]:
    """The node ids that ran a stage of ``/v1/query/{id}``'s ``outputStage``, sub-stages too."""
    nodes = {task["taskStatus"]["nodeId"] for task in stage.get("tasks", [])}
    for child in stage.get("subStages", []):
        nodes |= stage_nodes(child)
    return nodes


@dataclass(frozen=True)
class Statement:
    query_id: str
    columns: list[str]
    rows: list[list[Any]]


async def statement(session: aiohttp.ClientSession, url: str, user: str, sql: str) -> Statement:
    """Run ``sql`` through the client protocol: ``POST /v1/statement``, then follow
    ``nextUri`` until the answer has none; rows arrive in pages on the way."""
    headers = {"X-Trino-User": user}
    async with session.post(f"{url}/v1/statement", data=sql.encode(), headers=headers) as reply:
        reply.raise_for_status()
        page: dict[str, Any] = await reply.json()
    columns: list[str] = []
    rows: list[list[Any]] = []
    while True:
        columns = columns or [c["name"] for c in page.get("columns", [])]
        rows.extend(page.get("data", []))
        if "nextUri" not in page:
            break
        async with session.get(page["nextUri"], headers=headers) as reply:
            reply.raise_for_status()
            page = await reply.json()
    if "error" in page:
        error = page["error"]
        raise TrinoError(f"{error.get('errorName')}: {error.get('message')}")
    return Statement(page["id"], columns, rows)


class Trino(Service):
    name = "trino"
    default_timeout = 240
    cache_glob = "trino-server-*"

    def __init__(self, layout: Layout, environ: Mapping[str, str]) -> None:
        super().__init__(layout, environ)
        port = int(environ.get("WEAVER_TRINO_PORT") or 18080)
        worker_port = int(environ.get("WEAVER_TRINO_WORKER_PORT") or port + 1)
        self.coordinator = Node("coordinator", port)
        self.worker = Node("worker", worker_port)
        self.heap = environ.get("WEAVER_TRINO_HEAP") or "1G"
        self.user = environ.get("TRINO_USER") or "weaver"
        # The etc path is in the launcher's command line and in the JVM's it execs.
        self.daemons = {
            node.role: Daemon(f"trino-{node.role}", str(self.node_dir(node) / "etc"), layout)
            for node in self.nodes
        }

    @property
    def nodes(self) -> tuple[Node, Node]:
        return self.coordinator, self.worker

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.coordinator.port}"

    @property
    def tarball(self) -> Path:
        folder = self.layout.maven_repo / "io/trino/trino-server" / VERSION
        return folder / f"trino-server-{VERSION}.tar.gz"

    def cache_dir(self) -> Path:
        return self.layout.cache_dir / f"trino-server-{VERSION}"

    def node_dir(self, node: Node) -> Path:
        return self.layout.state_dir / "trino" / node.role

    @property
    def plugin_dir(self) -> Path:
        """Links to the `PLUGINS` of the unpacked tree, shared by both nodes."""
        return self.layout.state_dir / "trino" / "plugin"

    def apt_packages(self) -> list[str]:
        return [] if shutil.which("mvn") else ["maven"]

    async def install(self) -> None:
        folder = self.cache_dir()
        if (folder / ".complete").exists():
            return
        fetch_log = self.layout.log_dir / "trino-fetch.log"
        if not self.tarball.exists():
            log(f"trino: fetching {ARTIFACT} (about 820 MB)")
            try:
                await run(
                    [
                        "mvn",
                        "-B",
                        "-q",
                        "-Dstyle.color=never",
                        "dependency:get",
                        f"-Dartifact={ARTIFACT}",
                        "-Dtransitive=false",
                    ],
                    log_file=fetch_log,
                )
            except ServiceError:
                raise failure(self.name, fetch_log, f"mvn could not fetch {ARTIFACT}") from None
        log(f"trino: unpacking {self.tarball.name} into {folder}")
        # Unpacked beside the target and renamed at the end: a half-unpacked tree is redone.
        partial = folder.with_name(folder.name + ".tmp")
        shutil.rmtree(partial, ignore_errors=True)
        shutil.rmtree(folder, ignore_errors=True)
        partial.mkdir(parents=True)
        await run(["tar", "-xzf", str(self.tarball), "-C", str(partial)], log_file=fetch_log)
        (partial / f"trino-server-{VERSION}").rename(folder)
        partial.rmdir()
        (folder / ".complete").touch()

    def rendered(self) -> dict[Node, dict[str, str]]:
        """Every file of each node's ``etc``, by name."""
        files: dict[Node, dict[str, str]] = {}
        for node in self.nodes:
            etc = self.node_dir(node) / "etc"
            files[node] = {
                "node.properties": render_node_properties(node, self.node_dir(node) / "data"),
                "jvm.config": render_jvm_config(self.heap),
                "config.properties": render_config_properties(
                    node, self.coordinator.port, self.plugin_dir
                ),
            }
            if node.coordinator:
                files[node]["rules.json"] = json.dumps(render_rules(self.user), indent=2) + "\n"
                files[node]["access-control.properties"] = render_access_control(etc / "rules.json")
        return files

    def start_key(self) -> str:
        java_home = find_java_home(self.environ)
        texts = [text for node_files in self.rendered().values() for text in node_files.values()]
        return start_key(f"trino-server-{VERSION}", str(java_home), " ".join(PLUGINS), *texts)

    async def running(self) -> bool:
        return any(daemon.pid() is not None for daemon in self.daemons.values())

    def _java_environ(self) -> dict[str, str]:
        java_home = find_java_home(self.environ)
        return {
            **self.environ,
            "JAVA_HOME": str(java_home),
            "PATH": f"{java_home / 'bin'}:{self.environ.get('PATH', '')}",
        }

    def _spawn(self, node: Node, environ: Mapping[str, str]) -> None:
        etc = self.node_dir(node) / "etc"
        log(f"trino: starting the {node.role} on {HOST}:{node.port}")
        # `launcher run` execs the JVM in the foreground: the recorded pid is Trino's.
        self.daemons[node.role].spawn(
            [str(self.cache_dir() / "bin/launcher"), "run", f"--etc-dir={etc}"],
            env=environ,
            cwd=self.node_dir(node),
        )

    async def start(self) -> None:
        environ = self._java_environ()
        for node in self.nodes:
            self.check_port_free(HOST, node.port)
        shutil.rmtree(self.plugin_dir, ignore_errors=True)
        self.plugin_dir.mkdir(parents=True)
        for plugin in PLUGINS:
            (self.plugin_dir / plugin).symlink_to(self.cache_dir() / "plugin" / plugin)
        for node, files in self.rendered().items():
            etc = self.node_dir(node) / "etc"
            # Rewritten whole: no catalog file from an earlier layout may linger.
            shutil.rmtree(etc, ignore_errors=True)
            etc.mkdir(parents=True)
            (self.node_dir(node) / "data").mkdir(exist_ok=True)
            for filename, text in files.items():
                (etc / filename).write_text(text)
            self._spawn(node, environ)

    # --- the worker alone, for tests of a cluster that loses a node ---

    def kill_worker(self) -> bool:
        """SIGKILL the worker, as a crash would; whether one was running."""
        pid = self.daemons["worker"].pid()
        if pid is None:
            return False
        os.kill(pid, signal.SIGKILL)
        return True

    async def start_worker(self) -> None:
        """Start the worker again (with the files `start` wrote) unless it runs, and wait
        until the coordinator lists it and a query runs on it."""
        if self.daemons["worker"].pid() is None:
            self.check_port_free(HOST, self.worker.port)
            self._spawn(self.worker, self._java_environ())
        worker_url = f"http://{HOST}:{self.worker.port}/v1/info"
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session:

            async def started() -> bool:
                # The coordinator may still list the killed worker: ask the new one.
                try:
                    async with session.get(worker_url) as reply:
                        return reply.status == 200 and not (await reply.json())["starting"]
                except (aiohttp.ClientError, TimeoutError, ValueError, KeyError):
                    return False

            await wait_until(
                self.name,
                started,
                seconds=self.timeout,
                log_file=self.daemons["worker"].log_file,
                what=worker_url,
                alive=lambda: self.daemons["worker"].pid() is not None,
            )
        await self.ready()

    async def _get(self, session: aiohttp.ClientSession, path: str) -> Any:
        async with session.get(f"{self.url}{path}", headers={"X-Trino-User": self.user}) as reply:
            reply.raise_for_status()
            return await reply.json()

    async def worker_announced(self, session: aiohttp.ClientSession) -> bool:
        """The coordinator has started and lists the worker (``/v1/node`` lists workers)."""
        try:
            info = await self._get(session, "/v1/info")
            if info.get("starting", True):
                return False
            nodes = await self._get(session, "/v1/node")
        except (aiohttp.ClientError, TimeoutError, ValueError):
            return False
        worker_uri = f"http://{HOST}:{self.worker.port}/"
        return any(str(node.get("uri", "")).startswith(worker_uri) for node in nodes)

    async def query_ran_on_worker(self, session: aiohttp.ClientSession) -> None:
        """The probe query answers right, and ``/v1/query/{id}`` says the worker ran it."""
        await statement(
            session, self.url, self.user, f"CREATE CATALOG IF NOT EXISTS {PROBE_CATALOG} USING tpch"
        )
        probe = await statement(session, self.url, self.user, PROBE_QUERY)
        if probe.rows != [[25]]:
            raise ServiceError(f"trino: {PROBE_QUERY} answered {probe.rows}")
        info = await self._get(session, f"/v1/query/{probe.query_id}")
        ran_on = stage_nodes(info["outputStage"])
        if self.worker.node_id not in ran_on:
            raise ServiceError(f"trino: the probe query ran on {sorted(ran_on)}, not the worker")

    def _alive(self) -> bool:
        return all(daemon.pid() is not None for daemon in self.daemons.values())

    async def ready(self) -> None:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as session:

            async def announced() -> bool:
                return await self.worker_announced(session)

            began = time.monotonic()
            await wait_until(
                self.name,
                announced,
                seconds=self.timeout,
                log_file=self.daemons["coordinator"].log_file,
                what=self.url,
                alive=self._alive,
            )
            listed = time.monotonic()
            try:
                await self.query_ran_on_worker(session)
            except (TrinoError, aiohttp.ClientError) as error:
                raise failure(self.name, self.daemons["worker"].log_file, str(error)) from None
            # Where a slow start went: JVM and plugin loading, or the first query.
            log(
                f"trino: worker listed after {listed - began:.1f}s, "
                f"probe query on it in {time.monotonic() - listed:.1f}s"
            )

    async def stop(self) -> None:
        # The worker first: a coordinator gone first leaves it announcing to nobody.
        for node in reversed(self.nodes):
            await self.daemons[node.role].stop(grace=30)

    async def status(self) -> Status:
        pids = {role: daemon.pid() for role, daemon in self.daemons.items()}
        if None in pids.values():
            return Status(self.name, False, self.url)
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session:
            if not await self.worker_announced(session):
                return Status(self.name, False, self.url)
        detail = f"pid {pids['coordinator']} worker pid {pids['worker']} version {VERSION}"
        return Status(self.name, True, self.url, detail)

    def env(self) -> dict[str, str]:
        return {"TRINO_URL": self.url, "TRINO_USER": self.user}
