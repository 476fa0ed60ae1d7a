"""Fixtures for the services package's tests: a layout of their own under tmp_path."""

from __future__ import annotations

from pathlib import Path

import pytest
from weaver_services.layout import Layout


@pytest.fixture
def layout(tmp_path: Path) -> Layout:
    layout = Layout(tmp_path / "cache", tmp_path / "state", tmp_path / "m2")
    layout.ensure()
    return layout
