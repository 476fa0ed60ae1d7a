"""The plugin conformance kit.

A store, engine or guard plugin proves it keeps the contract by subclassing the contract
classes and providing one fixture, ``host``: a started `weaver.host.Host` in which the
plugin under test is enabled::

    from weaver.testing import GuardContract, make_settings, running_host

    class TestMyGuard(GuardContract):
        @pytest.fixture
        async def host(self, tmp_path):
            settings = make_settings(tmp_path, WEAVER_RATE_LIMIT="5/60s")
            async with running_host(settings, {"WEAVER_MYGUARD_MODE": "true"}) as host:
                yield host

``make_settings`` takes the gateway's own settings by their environment names; a
third-party plugin's flag goes to ``running_host`` as its environment. The embedded
defaults run the same classes in ``tests/test_builtin_*.py``, the first-party plugins in
their live suites.
"""

from __future__ import annotations

from weaver.testing.engine import EngineContract
from weaver.testing.guard import GuardContract
from weaver.testing.harness import free_port, make_settings, running_host
from weaver.testing.store import StoreContract

__all__ = [
    "EngineContract",
    "GuardContract",
    "StoreContract",
    "free_port",
    "make_settings",
    "running_host",
]
