"""Exactly one plugin owns the query path: the real MindsDB and Trino plugins together
are both taken out, with one log line that names them and says to enable only one."""

from __future__ import annotations

import logging
from importlib.metadata import entry_points
from pathlib import Path

import pytest

from weaver.plugins import build_plugin_manager
from weaver.testing import make_settings


def test_mindsdb_and_trino_together_are_both_taken_out(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    installed = {ep.name for ep in entry_points(group="weaver")}
    assert {"mindsdb", "trino"} <= installed, installed
    settings = make_settings(tmp_path, WEAVER_EXTERNAL_MODE="true")
    caplog.set_level(logging.ERROR, logger="weaver.plugins")

    pm, infos = build_plugin_manager(settings, environ={"WEAVER_TRINO_MODE": "true"})

    assert infos["mindsdb"].load_status == infos["trino"].load_status == "down"
    assert "execute_query" in infos["trino"].conflicts
    assert pm.get_plugin("mindsdb") is None and pm.get_plugin("trino") is None
    lines = [r.getMessage() for r in caplog.records if "conflict" in r.getMessage()]
    assert len(lines) == 1, lines
    assert "mindsdb and trino" in lines[0] and "enable only one" in lines[0]


def test_trino_alone_owns_the_query_path(tmp_path: Path) -> None:
    pm, infos = build_plugin_manager(make_settings(tmp_path), environ={"WEAVER_TRINO_MODE": "true"})
    assert infos["trino"].load_status == "loaded" and infos["mindsdb"].load_status == "disabled"
    assert pm.get_plugin("trino") is not None
