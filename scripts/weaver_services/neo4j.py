"""Neo4j 5.26 Community from Maven Central, run by ``scripts/neo4j/Launcher.java``.

There is no distribution tarball on the registries reachable here: Maven copies the
embedded database's runtime jars (which carry the Bolt server) into the cache, and the
single-file launcher runs them on Java 17 (5.26 is the last line on it).
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Mapping
from pathlib import Path

from neo4j import AsyncGraphDatabase
from neo4j.exceptions import Neo4jError, ServiceUnavailable

from . import apt
from .layout import HOST, REPO_ROOT, Layout
from .process import ServiceError, failure, log, run
from .service import Daemon, Service, Status, file_digest, start_key, wait_until

# Passed to Maven as -Dneo4j.version, overriding scripts/neo4j/pom.xml's default.
VERSION = "5.26.30"
LAUNCHER = REPO_ROOT / "scripts/neo4j/Launcher.java"
POM_DIR = REPO_ROOT / "scripts/neo4j"
# Printed by the launcher once the password is set and an authenticated Bolt query ran.
READY_MARKER = "WEAVER_NEO4J_READY"


class Neo4j(Service):
    name = "neo4j"
    default_timeout = 180
    cache_glob = "neo4j-*"

    def __init__(self, layout: Layout, environ: Mapping[str, str]) -> None:
        super().__init__(layout, environ)
        self.port = int(environ.get("WEAVER_NEO4J_BOLT_PORT") or 7687)
        self.user = environ.get("NEO4J_USER") or "neo4j"
        self.password = environ.get("NEO4J_PASSWORD") or "weaver_dev_password"
        self.heap = environ.get("NEO4J_HEAP") or "768m"
        self.pagecache_mb = environ.get("NEO4J_PAGECACHE_MB") or "128"
        self.daemon = Daemon("neo4j", "Launcher.java", layout)

    @property
    def uri(self) -> str:
        return f"bolt://{HOST}:{self.port}"

    def cache_dir(self) -> Path:
        return self.layout.cache_dir / f"neo4j-{VERSION}"

    def apt_packages(self) -> list[str]:
        if shutil.which("javac") and shutil.which("mvn"):
            return []
        return ["openjdk-17-jdk-headless", "maven"]

    async def install(self) -> None:
        await apt.ensure(self.apt_packages())
        await self._check_java()
        folder = self.cache_dir()
        if (folder / ".complete").exists():
            return
        log(f"neo4j: fetching org.neo4j:neo4j:{VERSION} and its runtime dependencies")
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        # Copied into lib.tmp and marked complete at the end: an interrupted download is
        # redone rather than half-used.
        fetch_log = self.layout.log_dir / "neo4j-fetch.log"
        try:
            await run(
                [
                    "mvn",
                    "-B",
                    "-q",
                    "-Dstyle.color=never",
                    "dependency:copy-dependencies",
                    f"-Dneo4j.version={VERSION}",
                    "-DincludeScope=runtime",
                    f"-DoutputDirectory={folder / 'lib.tmp'}",
                ],
                cwd=POM_DIR,
                log_file=fetch_log,
            )
        except ServiceError:
            raise failure(self.name, fetch_log, f"mvn could not fetch neo4j {VERSION}") from None
        (folder / "lib.tmp").rename(folder / "lib")
        (folder / ".complete").touch()

    async def _check_java(self) -> None:
        out = await run(["java", "-XshowSettings:properties", "-version"])
        found = re.search(r"java\.specification\.version = (\d+)", out.stderr + out.stdout)
        if not found or int(found.group(1)) < 17:
            raise ServiceError("neo4j: Java 17+ is required as the default java")

    def start_key(self) -> str:
        # The launcher's digest as `sha256sum < file` printed it ("<hex>  -").
        return start_key(
            VERSION,
            f"{file_digest(LAUNCHER)}  -",
            str(self.port),
            self.heap,
            self.pagecache_mb,
            self.user,
            self.password,
        )

    async def running(self) -> bool:
        return self.daemon.pid() is not None

    async def start(self) -> None:
        self.check_port_free(HOST, self.port)
        if len(self.password) < 8:
            raise ServiceError("neo4j: NEO4J_PASSWORD must be at least 8 characters")
        home = self.layout.state_dir / "neo4j"
        home.mkdir(parents=True, exist_ok=True)
        log(f"neo4j: starting {VERSION}, Bolt on {HOST}:{self.port}")
        # Launcher.java runs as a single-file source program (no build step); see the file
        # for what it does before it reports ready.
        self.daemon.spawn(
            [
                "java",
                "-Xms256m",
                f"-Xmx{self.heap}",
                "-XX:+UseG1GC",
                "-XX:+ExitOnOutOfMemoryError",
                "-cp",
                f"{self.cache_dir() / 'lib'}/*",
                str(LAUNCHER),
            ],
            env={
                **self.environ,
                "NEO4J_HOME_DIR": str(home),
                "NEO4J_BOLT_HOST": HOST,
                "NEO4J_BOLT_PORT": str(self.port),
                "NEO4J_USER": self.user,
                "NEO4J_PASSWORD": self.password,
                "NEO4J_PAGECACHE_MB": self.pagecache_mb,
            },
        )

    def _launcher_ready(self) -> bool:
        try:
            log_text = self.daemon.log_file.read_text(errors="replace")
        except OSError:
            return False
        return any(line.startswith(READY_MARKER) for line in log_text.splitlines())

    async def bolt_query(self) -> bool:
        """An authenticated ``RETURN 1`` through the driver, as the gateway connects."""
        driver = AsyncGraphDatabase.driver(
            self.uri, auth=(self.user, self.password), connection_timeout=5
        )
        try:
            records, _, _ = await driver.execute_query("RETURN 1 AS one")
            return bool(records) and records[0]["one"] == 1
        except (Neo4jError, ServiceUnavailable, OSError):
            return False
        finally:
            await driver.close()

    async def ready(self) -> None:
        # Bolt only after the launcher's line: before it the password is not set yet, and
        # failed logins count towards Neo4j's lock-out.
        async def answered() -> bool:
            return self._launcher_ready() and await self.bolt_query()

        await wait_until(
            self.name,
            answered,
            seconds=self.timeout,
            log_file=self.daemon.log_file,
            what=self.uri,
            alive=lambda: self.daemon.pid() is not None,
        )

    async def stop(self) -> None:
        await self.daemon.stop(grace=60)

    async def status(self) -> Status:
        pid = self.daemon.pid()
        if pid is None or not await self.bolt_query():
            return Status(self.name, False, self.uri)
        return Status(self.name, True, self.uri, f"pid {pid} version {VERSION}")

    def env(self) -> dict[str, str]:
        return {"NEO4J_URI": self.uri, "NEO4J_USER": self.user, "NEO4J_PASSWORD": self.password}
