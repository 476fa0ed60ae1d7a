"""Debian packages, installed only when missing so that a warm `up` never needs the network."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterable

from .process import log, run
from .service import as_root


def installed(package: str) -> bool:
    result = subprocess.run(
        ["dpkg-query", "-W", "-f=${Status}", package], capture_output=True, text=True, check=False
    )
    return "install ok installed" in result.stdout


async def ensure(packages: Iterable[str]) -> None:
    missing = sorted({p for p in packages if not installed(p)})
    if not missing:
        return
    log(f"apt: installing {' '.join(missing)}")
    await run(as_root(["apt-get", "update", "-qq"]))
    environ = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    await run(
        as_root(["apt-get", "install", "-y", "-qq", "--no-install-recommends", *missing]),
        env=environ,
    )
