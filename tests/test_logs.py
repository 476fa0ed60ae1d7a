"""What `weaver serve` writes to its log, read back as an operator's collector would."""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from tests.serving import (
    STRONG_SECRET,
    Serving,
    clean_environment,
    production_environment,
)
from weaver.auth import mint_token
from weaver.settings import Settings
from weaver.testing import free_port
from weaver.testing.harness import wait_until_live

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
TRACEPARENT = f"00-{TRACE_ID}-00f067aa0ba902b7-01"


def token(tenant: str = "acme") -> str:
    settings = Settings.from_env_names({"JWT_SECRET_KEY": STRONG_SECRET})
    return mint_token(settings, tenant_id=tenant, subject="ada", roles=["viewer"])


def get(base: str, path: str, headers: dict[str, str]) -> int:
    request = urllib.request.Request(base + path, headers=headers)
    try:
        with urllib.request.urlopen(request) as answer:
            return int(answer.status)
    except urllib.error.HTTPError as refused:
        return int(refused.code)


def serve_and_log(env: dict[str, str], calls: list[tuple[str, dict[str, str]]]) -> str:
    """Serve, make ``calls`` (path, headers), stop; what the gateway logged."""
    port = free_port()
    server = Serving(port, env, Path(env["WEAVER_DATA_DIR"]) / "weaver.log")
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until_live(base + "/health/live", server)
        for path, headers in calls:
            get(base, path, headers)
    finally:
        log = server.stop()
    return log


def traced_call(request_id: str) -> tuple[str, dict[str, str]]:
    headers = {
        "Authorization": f"Bearer {token()}",
        "X-Request-Id": request_id,
        "traceparent": TRACEPARENT,
    }
    return "/api/datasources/missing", headers


def test_production_log_is_one_json_object_per_line(tmp_path: Path) -> None:
    log = serve_and_log(production_environment(tmp_path), [traced_call("req-json-1")])
    entries: list[dict[str, Any]] = [json.loads(line) for line in log.splitlines()]
    (started,) = [e for e in entries if e["message"].startswith("serving on ")]
    assert started["message"] == started["message"].strip()
    assert "\n" not in started["message"]

    (access,) = [e for e in entries if e.get("request_id") == "req-json-1"]
    assert access["logger"] == "weaver.access"
    assert access["level"] == "INFO"
    assert access["method"] == "GET"
    assert access["route"] == "/api/datasources/{name}"
    assert access["status"] == 404
    assert access["tenant_id"] == "acme"
    assert access["request_id"] == "req-json-1"
    # No exporter is configured: the trace id is still the caller's.
    assert access["trace_id"] == TRACE_ID
    assert isinstance(access["duration_ms"], float) and access["duration_ms"] >= 0


def test_every_request_gets_an_access_line_even_without_a_token(tmp_path: Path) -> None:
    paths = ["/health/live", "/api/datasources", "/no/such/path"]
    calls = [(path, {"X-Request-Id": f"call-{n}"}) for n, path in enumerate(paths)]
    log = serve_and_log(production_environment(tmp_path), calls)
    entries = [json.loads(line) for line in log.splitlines()]
    access = [e for e in entries if e.get("request_id", "").startswith("call-")]
    assert all(a["logger"] == "weaver.access" for a in access)
    assert [(a["route"], a["status"]) for a in access] == [
        ("/health/live", 200),
        ("/api/datasources", 401),
        ("unmatched", 404),
    ]
    assert all("tenant_id" not in a for a in access)
    # The gateway's own ids for the requests that came without one (the start-up waits).
    others = [e for e in entries if e.get("route") == "/health/live" and e not in access]
    assert others and all(len(e["request_id"]) == 32 for e in others)


def test_development_lines_name_the_request_and_trace(tmp_path: Path) -> None:
    env = clean_environment(WEAVER_DATA_DIR=str(tmp_path), JWT_SECRET_KEY=STRONG_SECRET)
    log = serve_and_log(env, [traced_call("req-text-1")])
    (line,) = [line for line in log.splitlines() if "request_id=req-text-1" in line]
    assert " INFO weaver.access: GET /api/datasources/{name} 404 " in line
    assert "request_id=req-text-1" in line
    assert f"trace_id={TRACE_ID}" in line
    assert "tenant_id=acme" in line


@pytest.mark.parametrize("setting", ["false", "0"])
def test_the_access_log_can_be_turned_off(tmp_path: Path, setting: str) -> None:
    env = production_environment(tmp_path, WEAVER_ACCESS_LOG=setting)
    log = serve_and_log(env, [traced_call("req-off"), ("/health/live", {})])
    assert log  # the start-up line is still there
    assert "weaver.access" not in log
