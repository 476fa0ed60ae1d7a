"""An app under test, served the way `weaver serve` serves it."""

from __future__ import annotations

from typing import Any

from aiohttp.test_utils import TestServer
from aiohttp.web_runner import BaseRunner

from weaver.server import GatewayRunner


class GatewayTestServer(TestServer):
    """aiohttp's test server through `GatewayRunner`, so that what aiohttp answers by
    itself (a request it cannot parse) is answered as in production:
    ``aiohttp_client(GatewayTestServer(create_app(settings)))``."""

    async def _make_runner(self, **kwargs: Any) -> BaseRunner:
        return GatewayRunner(self.app, **kwargs)
