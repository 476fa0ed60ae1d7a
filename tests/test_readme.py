"""The README's tour, run as written against a real `weaver serve --demo`."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from weaver.testing import free_port
from weaver.testing.harness import wait_until_live

README = Path(__file__).resolve().parent.parent / "README.md"


def tour_script() -> str:
    match = re.search(r"## A five-minute tour.*?```bash\n(.*?)```", README.read_text(), re.S)
    assert match, "the README has no tour"
    return match.group(1)


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[Path, int]]:
    # The tour calls `.venv/bin/weaver`; in the test that is this interpreter's weaver.
    launcher = tmp_path / ".venv" / "bin" / "weaver"
    launcher.parent.mkdir(parents=True)
    launcher.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m weaver "$@"\n')
    launcher.chmod(0o755)
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WEAVER_", "JWT_"))}
    # A file, not a pipe: nobody reads the log (a line per request) while the tour runs.
    with (tmp_path / "weaver.log").open("wb") as log:
        server = subprocess.Popen(
            [sys.executable, "-m", "weaver", "serve", "--demo", "--port", str(port)],
            cwd=tmp_path,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_until_live(f"http://127.0.0.1:{port}/health/live", server)
        yield tmp_path, port
    finally:
        server.terminate()
        server.wait(timeout=10)


def test_the_tour_works_as_written_and_again(served: tuple[Path, int]) -> None:
    directory, port = served
    script = "set -eu\n" + tour_script().replace("localhost:8000", f"localhost:{port}")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WEAVER_", "JWT_"))}
    # A reader who runs it twice gets the same answers the second time (no 409s).
    for _ in range(2):
        result = subprocess.run(
            ["bash", "-c", script],
            cwd=directory,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode == 0, result.stderr
        lines = result.stdout.splitlines()
        assert '"name":"demo"' in lines[0]
        assert '"columns":[{"name":"country"' in lines[1] and '"query_id":' in lines[1]
        assert lines[2].startswith('{"name":"shop"'), lines[2]
        assert '"row_count":3' in lines[3]
        assert '"status":400' in lines[4]
        assert '"snapshot_id"' in lines[5]
        assert '"tables":[' in lines[10]
        assert lines[11].startswith('{"id":') and '"term":"Order"' in lines[11], lines[11]
        assert '"status":"ready"' in result.stdout
        assert "weaver_http_requests_total" in result.stdout
        assert '"status":409' not in result.stdout
        # The two deletions answer 204: empty lines, no problem document.
        assert lines[-2:] == ["", ""], lines[-3:]
