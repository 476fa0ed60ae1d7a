"""The plugin conformance kit.

A store, engine or guard plugin proves it keeps the contract by subclassing the contract
classes, naming itself in ``plugin`` (its entry-point name: the kit checks that this
plugin, not an embedded default, answers the contract's hooks) and providing one
fixture, ``host``: a started `weaver.host.Host` in which the plugin under test is
enabled::

    from weaver.testing import GuardContract, running_host

    class TestMyGuard(GuardContract):
        plugin = "myguard"

        @pytest.fixture
        async def host(self, guard_settings):
            async with running_host(guard_settings, {"WEAVER_MYGUARD_MODE": "true"}) as host:
                yield host

The tests are ``async``: run them with pytest-asyncio in ``asyncio_mode = "auto"``
(``pip install 'weaver-gateway[test]'``). ``make_settings`` takes the gateway's own
settings by their environment names; a third-party plugin's flag goes to
``running_host`` as its environment. The embedded
defaults run the same classes in ``tests/test_builtin_*.py``, the first-party plugins in
their live suites.
"""

from __future__ import annotations

from weaver.testing.engine import EngineContract
from weaver.testing.guard import GuardContract
from weaver.testing.harness import PluginContract, free_port, make_settings, running_host
from weaver.testing.queries import QueryStoreContract
from weaver.testing.store import StoreContract

__all__ = [
    "EngineContract",
    "GuardContract",
    "PluginContract",
    "QueryStoreContract",
    "StoreContract",
    "free_port",
    "make_settings",
    "running_host",
]
