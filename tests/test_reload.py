"""`weaver serve --reload`: an edited source file is what the gateway serves next, as the
development Compose service relies on."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import weaver
from tests.serving import clean_environment
from weaver.testing import free_port


def served_version(base: str) -> str | None:
    try:
        with urllib.request.urlopen(f"{base}/openapi.json", timeout=2) as answer:
            return str(json.load(answer)["info"]["version"])
    except OSError:
        return None


def wait_for_version(base: str, expected: str, server: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    while served_version(base) != expected:
        assert server.poll() is None, "weaver serve --reload exited"
        assert time.monotonic() < deadline, f"version {expected} was never served"
        time.sleep(0.2)


def test_an_edit_is_served_after_the_restart(tmp_path: Path) -> None:
    # A copy of the core, imported ahead of the installed one, the way the dev image
    # puts the mounted checkout first on PYTHONPATH.
    sources = tmp_path / "src"
    shutil.copytree(Path(weaver.__file__).parent, sources / "weaver")
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "weaver", "serve", "--reload", "--port", str(port)],
        cwd=sources,
        env=clean_environment(WEAVER_DATA_DIR=str(tmp_path / "data"), PYTHONPATH=str(sources)),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for_version(base, weaver.__version__, server)
        package = sources / "weaver" / "__init__.py"
        text = package.read_text()
        assert f'__version__ = "{weaver.__version__}"' in text
        package.write_text(text.replace(weaver.__version__, "9.9.9+edited", 1))
        wait_for_version(base, "9.9.9+edited", server)
    finally:
        server.send_signal(signal.SIGINT)
        try:
            _, errors = server.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
            _, errors = server.communicate()
    log = errors.decode()
    assert "file(s) changed; restarting" in log, log
    assert "Traceback" not in log, log
