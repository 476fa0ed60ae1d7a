"""What the benchmarks share: the benchmarked gateway's keys, a token for a tenant, the
servers they start and wait for, the percentile and latency row every report uses, and
the services' defaults for a run without ``eval "$(scripts/services.sh env)"``."""

from __future__ import annotations

import asyncio
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager

import aiohttp

from weaver.settings import Settings
from weaver.testing.live import tenant_headers

JWT_SECRET = "bench-jwt-secret-0123456789abcdef0123"
ENCRYPTION_KEY = "bench-encryption-key-0123456789abcdef"
# Where scripts/services.sh runs its services and loads the sample databases.
SERVICES_DEFAULTS = {
    "MINDSDB_URL": "http://127.0.0.1:47334",
    "TRINO_URL": "http://127.0.0.1:18080",
    "TRINO_USER": "weaver",
    "WEAVER_E2E_DS_HOST": "127.0.0.1",
    "WEAVER_E2E_DS_PORT": "5433",
    "WEAVER_E2E_DS_DATABASE": "sample_enterprise",
    "WEAVER_E2E_DS_USER": "sample_user",
    "WEAVER_E2E_DS_PASSWORD": "sample_password",
    "WEAVER_E2E_CRM_DATABASE": "sample_crm",
}


def services_environ() -> dict[str, str]:
    """This process's environment over the services' defaults."""
    return {**SERVICES_DEFAULTS, **os.environ}


def bench_headers(tenant_id: str, secret: str = JWT_SECRET) -> dict[str, str]:
    """Headers carrying an editor token for ``tenant_id``, signed with ``secret``."""
    return tenant_headers(Settings.from_env_names({"JWT_SECRET_KEY": secret}), tenant_id)


def percentile(samples: Sequence[float], fraction: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(len(ordered) * fraction))]


def report(label: str, latencies: Sequence[float]) -> None:
    """One row of a latency table: median, p99 and max in milliseconds, and the runs."""
    print(
        f"{label:<32} p50 {statistics.median(latencies):8.1f} ms"
        f"   p99 {percentile(latencies, 0.99):8.1f} ms   max {max(latencies):8.1f} ms"
        f"   ({len(latencies)} runs)",
        flush=True,
    )


@contextmanager
def process(args: list[str], env: dict[str, str]) -> Iterator[subprocess.Popen[bytes]]:
    """``args`` running with ``env`` until the block ends, then stopped as Ctrl+C would."""
    # Never a pipe nobody reads: the access log (a line per request) would fill it and
    # stall the gateway mid-run.
    child = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        yield child
    finally:
        child.terminate()
        child.wait(timeout=15)


def weaver_serve(port: int, env: dict[str, str]) -> AbstractContextManager[subprocess.Popen[bytes]]:
    """``weaver serve`` on loopback ``port`` with ``env``, until the block ends."""
    return process([sys.executable, "-m", "weaver", "serve", "--port", str(port)], env)


async def wait_until_up(url: str, seconds: float = 30) -> None:
    """Until ``url`` answers with anything but a server error."""
    deadline = time.monotonic() + seconds
    async with aiohttp.ClientSession() as session:
        while time.monotonic() < deadline:
            try:
                async with session.get(url) as response:
                    if response.status < 500:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.05)
    raise RuntimeError(f"{url} did not come up")
