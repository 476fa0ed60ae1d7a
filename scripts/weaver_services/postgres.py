"""PostgreSQL 15 from Debian: a cluster of its own with the sample databases loaded.

A dedicated cluster (not Debian's ``main``) so that its port, settings and lifetime belong
to this package; 5433 is the host port of docker-compose.dev.yml and the E2E DSN.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from pathlib import Path

import asyncpg

from . import apt
from .layout import HOST, REPO_ROOT, Layout
from .process import ServiceError, log, run
from .service import Service, Status, as_root, file_digest, wait_until

VERSION = "15"
USER = "sample_user"
PASSWORD = "sample_password"
DB_ENTERPRISE = "sample_enterprise"
DB_CRM = "sample_crm"
DB_META = "weaver_meta"
FIXTURES = {
    DB_ENTERPRISE: REPO_ROOT / "tests/fixtures/sample_schema.sql",
    DB_CRM: REPO_ROOT / "tests/fixtures/sample_crm.sql",
}


def as_postgres(argv: list[str]) -> list[str]:
    if os.geteuid() == 0:
        return ["runuser", "-u", "postgres", "--", *argv]
    return ["sudo", "-u", "postgres", *argv]


def render_settings(port: int) -> str:
    """conf.d/weaver.conf: Debian's postgresql.conf includes it and stays untouched."""
    return f"""# Written by scripts/services.sh; edits are overwritten.
listen_addresses = '{HOST}'
port = {port}
max_connections = 200
# Throwaway dev/test data: durability is not needed, and fixture loads and
# test writes are several times faster without it.
fsync = off
synchronous_commit = off
full_page_writes = off
"""


def fixture_marker(path: Path) -> str:
    """Kept as the database comment once the load committed: a failed load is retried next
    time and an edited fixture reloaded, and introspected schemas never see it."""
    return f"weaver-fixture {path.name} sha256:{file_digest(path)}"


class Postgres(Service):
    name = "postgres"
    default_timeout = 60

    def __init__(self, layout: Layout, environ: Mapping[str, str]) -> None:
        super().__init__(layout, environ)
        self.cluster = self.environ.get("WEAVER_PG_CLUSTER") or "weaver"
        self.port = int(self.environ.get("WEAVER_PG_PORT") or 5433)
        self._settings_changed = False

    @property
    def conf_dir(self) -> Path:
        return Path(f"/etc/postgresql/{VERSION}/{self.cluster}")

    @property
    def server_log(self) -> Path:
        return Path(f"/var/log/postgresql/postgresql-{VERSION}-{self.cluster}.log")

    def ctl(self, *args: str) -> list[str]:
        return as_root(["pg_ctlcluster", "--skip-systemctl-redirect", VERSION, self.cluster, *args])

    def apt_packages(self) -> list[str]:
        return [f"postgresql-{VERSION}", f"postgresql-client-{VERSION}"]

    async def install(self) -> None:
        await apt.ensure(self.apt_packages())
        if not (self.conf_dir / "postgresql.conf").exists():
            log(f"postgres: creating cluster {VERSION}/{self.cluster} on port {self.port}")
            # --start-conf=manual: only this package starts it, never an init script.
            await run(
                as_root(
                    [
                        "pg_createcluster",
                        VERSION,
                        self.cluster,
                        "-p",
                        str(self.port),
                        "--start-conf=manual",
                        "--",
                        "--auth-local=peer",
                        "--auth-host=scram-sha-256",
                    ]
                ),
                log_file=self.layout.log_dir / "postgres-create.log",
            )
        settings = self.conf_dir / "conf.d" / "weaver.conf"
        wanted = render_settings(self.port)
        if not settings.exists() or settings.read_text() != wanted:
            await run(as_root(["tee", str(settings)]), stdin=wanted.encode())
            await run(as_root(["chown", "postgres:postgres", str(settings)]))
            self._settings_changed = True

    def needs_restart(self) -> bool:
        return self._settings_changed

    async def running(self) -> bool:
        if not (self.conf_dir / "postgresql.conf").exists():
            return False
        return (await run(self.ctl("status"), check=False)).returncode == 0

    async def start(self) -> None:
        self.check_port_free(HOST, self.port)
        # The socket directory lives in /run, which does not survive a reboot.
        await run(
            as_root(
                [
                    "install",
                    "-d",
                    "-o",
                    "postgres",
                    "-g",
                    "postgres",
                    "-m",
                    "2775",
                    "/var/run/postgresql",
                ]
            )
        )
        log(f"postgres: starting cluster {VERSION}/{self.cluster}")
        await run(self.ctl("start"), log_file=self.layout.log_dir / "postgres-ctl.log")

    async def stop(self) -> None:
        if await self.running():
            log(f"postgres: stopping cluster {VERSION}/{self.cluster}")
            await run(self.ctl("stop", "-m", "fast"))
        (self.layout.run_dir / "postgres.pid").unlink(missing_ok=True)

    async def ready(self) -> None:
        await wait_until(
            self.name,
            self._admin_answers,
            seconds=self.timeout,
            log_file=self.server_log,
            what=f"{HOST}:{self.port}",
            interval=0.3,
        )
        await self.provision()
        for database in (DB_META, *FIXTURES):
            if await self._app_query(database) != 1:
                raise ServiceError(f"postgres: {USER} cannot query {database}")
        link = self.layout.log_dir / "postgres.log"
        link.unlink(missing_ok=True)
        link.symlink_to(self.server_log)
        # postmaster.pid's first line is the server pid; kept for status output.
        postmaster = Path(f"/var/lib/postgresql/{VERSION}/{self.cluster}/postmaster.pid")
        pid = (await run(as_root(["head", "-1", str(postmaster)]))).stdout.strip()
        (self.layout.run_dir / "postgres.pid").write_text(f"{pid}\n")

    async def admin_sql(self, sql: str, database: str = "postgres") -> str:
        """psql as the superuser over the cluster's socket (peer auth); rows as text."""
        result = await run(
            [
                *as_postgres(["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-At"]),
                "-p",
                str(self.port),
                "-d",
                database,
            ],
            stdin=sql.encode(),
        )
        return result.stdout.strip()

    async def _admin_answers(self) -> bool:
        try:
            return await self.admin_sql("select 1") == "1"
        except ServiceError:
            return False

    async def _app_query(self, database: str) -> int | None:
        """``SELECT 1`` as the application user over TCP, as clients connect."""
        try:
            connection = await asyncpg.connect(
                host=HOST,
                port=self.port,
                user=USER,
                password=PASSWORD,
                database=database,
                timeout=5,
            )
        except (OSError, asyncpg.PostgresError):
            return None
        try:
            value: int = await connection.fetchval("SELECT 1")
            return value
        finally:
            await connection.close()

    async def provision(self) -> None:
        """Role and databases: idempotent statements, cheap enough to run every time."""
        await self.admin_sql(
            f"""DO $$
BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{USER}') THEN
    CREATE ROLE {USER} LOGIN CREATEDB PASSWORD '{PASSWORD}';
  ELSE
    ALTER ROLE {USER} LOGIN CREATEDB PASSWORD '{PASSWORD}';
  END IF;
END
$$;"""
        )
        if not await self._database_exists(DB_META):
            log(f"postgres: creating database {DB_META}")
            await self.admin_sql(f"CREATE DATABASE {DB_META} OWNER {USER}")
        for database, fixture in FIXTURES.items():
            await self.load_fixture(database, fixture)

    async def _database_exists(self, database: str) -> bool:
        found = await self.admin_sql(f"select 1 from pg_database where datname = '{database}'")
        return found == "1"

    async def load_fixture(self, database: str, fixture: Path) -> None:
        """(Re)create ``database`` from ``fixture`` unless it already holds exactly that file."""
        try:
            marker = fixture_marker(fixture)
        except OSError as error:
            raise ServiceError(f"postgres: fixture {fixture} unreadable: {error}") from None
        current = await self.admin_sql(
            "select coalesce(shobj_description(oid, 'pg_database'), '') "
            f"from pg_database where datname = '{database}'"
        )
        if current == marker:
            return
        started = time.monotonic()
        if await self._database_exists(database):
            log(f"postgres: {database} holds another fixture version, reloading")
            # FORCE: a MindsDB integration or a test may still hold a connection.
            await self.admin_sql(f"DROP DATABASE {database} WITH (FORCE)")
        else:
            log(f"postgres: loading {database} from {fixture.name}")
        await self.admin_sql(f"CREATE DATABASE {database} OWNER {USER}")
        # As the application user so that it owns every object, in one transaction so that
        # a failure leaves no half-loaded schema behind.
        await run(
            [
                "psql",
                "-X",
                "-q",
                "-v",
                "ON_ERROR_STOP=1",
                "-h",
                HOST,
                "-p",
                str(self.port),
                "-U",
                USER,
                "-d",
                database,
                "-1",
                "-f",
                str(fixture),
            ],
            env={
                **os.environ,
                "PGPASSWORD": PASSWORD,
                "PGOPTIONS": "--client-min-messages=warning",
            },
        )
        await self.admin_sql(f"COMMENT ON DATABASE {database} IS '{marker}'")
        log(f"postgres: {database} loaded in {time.monotonic() - started:.1f}s")

    async def status(self) -> Status:
        address = f"{HOST}:{self.port}"
        if await self._app_query("postgres") != 1:
            return Status(self.name, False, address)
        try:
            pid = (self.layout.run_dir / "postgres.pid").read_text().strip()
        except OSError:
            pid = "?"
        return Status(self.name, True, address, f"pid {pid} cluster {VERSION}/{self.cluster}")

    def env(self) -> dict[str, str]:
        return {
            "POSTGRES_DSN": f"postgresql://{USER}:{PASSWORD}@{HOST}:{self.port}/{DB_META}",
            "WEAVER_E2E_DS_HOST": HOST,
            "WEAVER_E2E_DS_PORT": str(self.port),
            "WEAVER_E2E_DS_DATABASE": DB_ENTERPRISE,
            "WEAVER_E2E_DS_USER": USER,
            "WEAVER_E2E_DS_PASSWORD": PASSWORD,
            "WEAVER_E2E_CRM_DATABASE": DB_CRM,
        }
