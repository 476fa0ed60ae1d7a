#!/usr/bin/env python3
"""Fuzz the API from its own `/openapi.json` with schemathesis, against a real `weaver serve`.

Starts the gateway on the embedded defaults with the demo datasource, mints an admin token
for the demo tenant, and runs ``schemathesis run`` with the checks below; exits with its
code. Passes when no answer is a 5xx, has an undocumented status, content type or header,
or breaks its documented schema, and when what the schema forbids is refused.

    python scripts/fuzz_api.py                      # what CI runs (make fuzz)
    python scripts/fuzz_api.py --max-examples 500   # a longer run

Checks left out, and why (each was run and read; none is a defect of the contract):
- positive_data_acceptance: some refusals of schema-valid input depend on state or on
  the engine, which a schema cannot say (a cursor this API did not issue is 400, SQL the
  engine cannot parse is 400, a datasource named in a glossary column must exist, a
  results page may be larger when a streamed format is accepted).
- use_after_free: DELETE /api/query/{id} cancels a query and discards its result; the
  record stays readable, with status "cancelled", by the contract.
- allow_header_conformance: the contract's paths overlap (/api/query/status and
  /api/query/{query_id}), so aiohttp's Allow for /api/query/status truthfully names the
  DELETE that /api/query/{query_id} answers there.
"""

from __future__ import annotations

import argparse
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from weaver.auth import mint_token
from weaver.settings import Settings
from weaver.testing import free_port
from weaver.testing.harness import wait_until_live

CHECKS = (
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_headers_conformance",
    "response_schema_conformance",
    "negative_data_rejection",
    "missing_required_header",
    "unsupported_method",
    "ignored_auth",
    "ensure_resource_availability",
)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--max-examples", type=int, default=40, help="per operation and phase")
    parser.add_argument("--seed", help="replay a run (schemathesis prints the seed it used)")
    args = parser.parse_args()

    schemathesis = shutil.which("schemathesis", path=str(Path(sys.executable).parent))
    if schemathesis is None:
        raise SystemExit("schemathesis is not installed: pip install -e '.[dev]'")
    with tempfile.TemporaryDirectory(prefix="weaver-fuzz-") as scratch:
        secret = secrets.token_urlsafe(32)
        env = {k: v for k, v in os.environ.items() if not k.startswith(("WEAVER_", "JWT_"))}
        env.update(
            APP_ENV="development",
            WEAVER_DATA_DIR=scratch,
            JWT_SECRET_KEY=secret,
            # A fuzzer is not a client to rate-limit: 429s would hide every other answer.
            WEAVER_RATE_LIMIT="1000000/60s",
            WEAVER_ACCESS_LOG="false",
        )
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        log = Path(scratch) / "weaver.log"
        with log.open("wb") as output:
            server = subprocess.Popen(
                [sys.executable, "-m", "weaver", "serve", "--port", str(port), "--demo"],
                env=env,
                stdout=output,
                stderr=subprocess.STDOUT,
            )
        try:
            try:
                wait_until_live(base + "/health/live", server, seconds=60)
            except RuntimeError as error:
                raise SystemExit(str(error)) from None
            token = mint_token(
                Settings.from_env_names({"JWT_SECRET_KEY": secret}),
                tenant_id="demo",
                subject="fuzzer",
                roles=["admin"],
            )
            command = [
                schemathesis,
                "run",
                base + "/openapi.json",
                "--header",
                f"Authorization: Bearer {token}",
                "--checks",
                ",".join(CHECKS),
                "--max-examples",
                str(args.max_examples),
                # One worker: schemathesis's threads run ast.parse concurrently, which
                # CPython before 3.11.9 may fail with a spurious SystemError (gh-106905).
                "--workers",
                "1",
                *(["--seed", args.seed] if args.seed else []),
            ]
            started = time.monotonic()
            code = subprocess.call(command)
            print(f"fuzzing took {time.monotonic() - started:.0f}s", flush=True)
        finally:
            server.terminate()
            server.wait(timeout=30)
        tracebacks = log.read_text(errors="replace").count("Traceback")
        if tracebacks:
            print(f"weaver logged {tracebacks} traceback(s) while fuzzed:", file=sys.stderr)
            print(log.read_text(errors="replace")[-4000:], file=sys.stderr)
            return code or 1
        return code


if __name__ == "__main__":
    raise SystemExit(main())
