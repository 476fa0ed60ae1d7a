"""What the benchmarks share: the benchmarked gateway's keys, a token for a tenant, the
percentile and latency row every report uses, and the services' defaults for a run without
``eval "$(scripts/services.sh env)"``."""

from __future__ import annotations

import os
import statistics
from collections.abc import Sequence

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
