"""Reconciliation's retries (`weaver.external.reconcile`): an engine or store not up yet
is said once at INFO, the retries at DEBUG. The live suites of the MindsDB and Trino
plugins run reconciliation itself against their engines."""

from __future__ import annotations

import logging

import pytest

from weaver.errors import Unavailable
from weaver.external import reconcile


async def test_reconciliation_retries_say_so_once(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(reconcile, "RETRY_FIRST_SECONDS", 0.001)
    caplog.set_level(logging.DEBUG, logger=reconcile.__name__)
    failures = iter([Unavailable("the engine is unreachable: ClientConnectorError")] * 4)
    done: list[reconcile.Reconciliation] = []

    async def attempt() -> reconcile.Reconciliation:
        failure = next(failures, None)
        if failure is not None:
            raise failure
        return reconcile.Reconciliation()

    await reconcile.reconcile_until_done(attempt, done.append, "Engine")
    assert len(done) == 1
    levels = [r.levelno for r in caplog.records if "postponed" in r.getMessage()]
    assert levels == [logging.INFO] + [logging.DEBUG] * 3
