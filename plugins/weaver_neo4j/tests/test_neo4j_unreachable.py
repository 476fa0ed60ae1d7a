"""The Neo4j plugin with no Neo4j to reach: the gateway still starts, reports it down and
answers 503 for the schema graph, while what other stores own keeps working.

Needs no server (the port is closed), so it runs in every suite.
"""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
from weaver_neo4j.plugin import PLUGIN_NAME

from weaver.errors import Unavailable
from weaver.settings import Settings
from weaver.testing.harness import make_settings, running_host
from weaver.testing.store import make_datasource, shop_graph
from weaver.types import Page

PASSWORD = "not-the-password-4711"


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def neo4j_settings(tmp_path: Path, uri: str) -> Settings:
    return make_settings(
        tmp_path,
        WEAVER_METADATA_EXTERNAL_MODE="true",
        NEO4J_URI=uri,
        NEO4J_USER="neo4j",
        NEO4J_PASSWORD=PASSWORD,
    )


async def test_unreachable_neo4j_is_down_not_fatal(tmp_path: Path) -> None:
    settings = neo4j_settings(tmp_path, f"bolt://127.0.0.1:{closed_port()}")
    async with running_host(settings) as host:
        assert host.owner_of("store_metadata") == PLUGIN_NAME
        assert PLUGIN_NAME not in host.startup_errors
        checks = await host.check_health()
        assert checks[PLUGIN_NAME].status == "down"
        assert PASSWORD not in str(checks[PLUGIN_NAME].detail)
        assert checks["embedded_store"].status == "up"

        # The registry is not the plugin's: it still works.
        datasource = make_datasource("tdown", "shop")
        await host.save_datasource(datasource, create=True)
        assert await host.get_datasource("tdown", "shop") == datasource

        with pytest.raises(Unavailable) as raised:
            await host.store_metadata(datasource, shop_graph())
        assert PASSWORD not in raised.value.detail
        assert "Neo4j" in raised.value.detail
        with pytest.raises(Unavailable):
            await host.load_metadata(datasource)
        with pytest.raises(Unavailable):
            await host.search_metadata("tdown", "orders", "table", Page(10))
        # Every store forgets its part; the failing one is reported.
        with pytest.raises(Unavailable):
            await host.delete_metadata(datasource)


async def test_a_malformed_uri_marks_the_plugin_down(tmp_path: Path) -> None:
    async with running_host(neo4j_settings(tmp_path, "ftp://127.0.0.1:7687")) as host:
        assert PLUGIN_NAME in host.startup_errors
        assert (await host.check_health())[PLUGIN_NAME].status == "down"
        with pytest.raises(Unavailable):
            await host.store_metadata(make_datasource("tdown", "shop"), shop_graph())
