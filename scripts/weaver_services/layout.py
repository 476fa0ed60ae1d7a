"""Where the services keep their caches and state, and the address they listen on.

The layout is the one the earlier shell script used, so caches and running servers from
it are found again:

    WEAVER_CACHE_DIR   default ${XDG_CACHE_HOME:-$HOME/.cache}/weaver   (downloads, venvs)
    WEAVER_STATE_DIR   default $WEAVER_CACHE_DIR/state                  (data, run/, logs/)
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

# Every service listens on loopback only.
HOST = "127.0.0.1"
REPO_ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Layout:
    cache_dir: Path
    state_dir: Path
    # Maven's local repository: the Neo4j jars and the Trino tarball are downloaded there.
    maven_repo: Path

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> Layout:
        home = Path(environ.get("HOME") or Path.home())
        cache_root = Path(environ.get("XDG_CACHE_HOME") or home / ".cache")
        cache_dir = Path(environ.get("WEAVER_CACHE_DIR") or cache_root / "weaver")
        state_dir = Path(environ.get("WEAVER_STATE_DIR") or cache_dir / "state")
        return cls(cache_dir, state_dir, home / ".m2" / "repository")

    @property
    def log_dir(self) -> Path:
        return self.state_dir / "logs"

    @property
    def run_dir(self) -> Path:
        return self.state_dir / "run"

    def ensure(self) -> None:
        for folder in (self.log_dir, self.run_dir):
            folder.mkdir(parents=True, exist_ok=True)
