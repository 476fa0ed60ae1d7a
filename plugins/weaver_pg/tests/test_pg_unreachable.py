"""The pg plugin with no PostgreSQL to reach: the gateway still starts and reports it.

Needs no server (the port is closed), so it runs in every suite.
"""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
from weaver_pg.plugin import PLUGIN_NAME

from weaver.errors import Unavailable
from weaver.testing.harness import make_settings, running_host
from weaver.testing.store import make_datasource, make_term, shop_graph
from weaver.types import Page


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


async def test_unreachable_postgres_is_down_not_fatal(tmp_path: Path) -> None:
    dsn = f"postgresql://weaver:secret-password@127.0.0.1:{closed_port()}/weaver_meta"
    settings = make_settings(tmp_path, WEAVER_METADATA_PG_MODE="true", POSTGRES_DSN=dsn)
    async with running_host(settings) as host:
        assert PLUGIN_NAME not in host.startup_errors
        checks = await host.check_health()
        assert checks[PLUGIN_NAME].status == "down"
        assert "secret-password" not in str(checks[PLUGIN_NAME].detail)
        # What the plugin does not own still works.
        assert checks["embedded_store"].status == "up"
        datasource = make_datasource("tdown", "shop")
        await host.save_datasource(datasource, create=True)
        await host.store_metadata(datasource, shop_graph())

        with pytest.raises(Unavailable) as raised:
            await host.save_glossary_term(make_term("tdown", "Revenue"), create=True)
        assert "secret-password" not in raised.value.detail
        with pytest.raises(Unavailable):
            await host.list_snapshots(datasource, Page(10))
        with pytest.raises(Unavailable):
            await host.get_query("tdown", "q1")
        with pytest.raises(Unavailable):
            await host.poll_queries("node-1", None)
        # delete_metadata is every store's: the embedded one still forgets its part.
        with pytest.raises(Unavailable):
            await host.delete_metadata(datasource)
        assert await host.load_metadata(datasource) is None


async def test_missing_dsn_marks_the_plugin_down(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, WEAVER_METADATA_PG_MODE="true", POSTGRES_DSN="")
    async with running_host(settings) as host:
        assert "POSTGRES_DSN" in host.startup_errors[PLUGIN_NAME]
        assert (await host.check_health())[PLUGIN_NAME].status == "down"
