"""`weaver serve --workers 2`: several processes on one port, as the seed's image runs."""

from __future__ import annotations

import json
import os
import sqlite3
import time
import urllib.request
from pathlib import Path
from typing import Any

from tests.serving import Serving
from weaver.auth import mint_token
from weaver.settings import Settings
from weaver.testing import free_port
from weaver.testing.harness import wait_until_live

JWT_SECRET = "serve-test-secret-0123456789abcdef0123"


def metrics(base: str) -> str:
    with urllib.request.urlopen(base + "/metrics") as response:
        return str(response.read().decode())


def worker_memory(exposition: str) -> dict[str, float]:
    """``process_resident_memory_bytes`` by worker process id."""
    found = {}
    for line in exposition.splitlines():
        if line.startswith("process_resident_memory_bytes{"):
            labels, value = line.rsplit(" ", 1)
            pid = labels.split('pid="', 1)[1].split('"', 1)[0]
            found[pid] = float(value)
    return found


def wait_for_workers(base: str, count: int, server: Serving) -> None:
    """Until every worker serves: each reports its process metrics once it has started."""
    deadline = time.monotonic() + 60
    while len(worker_memory(metrics(base))) < count:
        assert server.poll() is None and time.monotonic() < deadline, "workers did not start"
        time.sleep(0.2)


def call(method: str, url: str, token: str, body: dict[str, object] | None = None) -> Any:
    request = urllib.request.Request(
        url,
        method=method,
        data=json.dumps(body).encode() if body is not None else None,
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    # A fresh connection each time, so that the kernel spreads them over the workers.
    with urllib.request.urlopen(request) as response:
        return json.load(response)


def test_two_workers_share_the_port_and_the_store(tmp_path: Path) -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WEAVER_", "JWT_"))}
    env.update(WEAVER_DATA_DIR=str(tmp_path / "data"), JWT_SECRET_KEY=JWT_SECRET)
    sqlite_root = tmp_path / "data" / "sqlite"
    sqlite_root.mkdir(parents=True)
    sqlite3.connect(sqlite_root / "shop.db").close()
    server = Serving(port, env, tmp_path / "weaver.log", "--workers", "2")
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until_live(base + "/health/live", server)
        wait_for_workers(base, 2, server)
        token = mint_token(
            Settings.from_env_names({"JWT_SECRET_KEY": JWT_SECRET}),
            tenant_id="acme",
            subject="alice",
            roles=["editor"],
        )
        shop = base + "/api/datasources/shop"
        body = {"name": "shop", "engine": "sqlite", "connection": {"path": "shop.db"}}
        call("POST", base + "/api/datasources", token, body)
        # Every worker reads (and remembers) the record, one of them changes it, and no
        # worker may answer with the old one afterwards.
        assert {call("GET", shop, token)["description"] for _ in range(20)} == {None}
        call("PATCH", shop, token, {"description": "changed"})
        assert {call("GET", shop, token)["description"] for _ in range(20)} == {"changed"}

        exposition = metrics(base)
        counted = [
            line
            for line in exposition.splitlines()
            if line.startswith("weaver_http_requests_total{")
            and 'route="/api/datasources/{name}"' in line
        ]
        # The metrics of both workers, added up.
        assert sum(float(line.rsplit(" ", 1)[1]) for line in counted) == 41
        # Process metrics of each worker, one series per process; one build line.
        assert len(worker_memory(exposition)) == 2
        build = [line for line in exposition.splitlines() if line.startswith("weaver_build_info")]
        assert len(build) == 1 and build[0].endswith(" 1.0"), build
    finally:
        log = server.stop()
    assert server.process.returncode == 0, log
