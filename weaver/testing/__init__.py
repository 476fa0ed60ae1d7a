"""The plugin conformance kit.

A store, engine or guard plugin proves it keeps the contract by subclassing the contract
classes and providing one fixture, ``host``: a started `weaver.host.Host` in which the
plugin under test is enabled::

    from weaver.testing import GuardContract, make_settings, running_host

    class TestMyGuard(GuardContract):
        @pytest.fixture
        async def host(self, tmp_path):
            settings = make_settings(tmp_path, WEAVER_MYGUARD_MODE="true")
            async with running_host(settings) as host:
                yield host

The embedded defaults run the same classes in ``tests/test_conformance.py``.
"""

from __future__ import annotations

from weaver.testing.engine import EngineContract
from weaver.testing.guard import GuardContract
from weaver.testing.harness import make_settings, running_host
from weaver.testing.store import StoreContract

__all__ = ["EngineContract", "GuardContract", "StoreContract", "make_settings", "running_host"]
