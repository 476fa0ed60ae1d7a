#!/usr/bin/env python3
"""Exit gate for external mode (deployment document §6.3).

Runs ``tests/integration/test_external_modes_e2e.py`` against the real MindsDB, Neo4j and
PostgreSQL ``--loops`` times and passes only when every loop ran tests and none of them
failed, errored or was skipped: a skipped live test proves nothing, so here it fails.

    WEAVER_RUN_E2E=1 MINDSDB_URL=... POSTGRES_DSN=... NEO4J_URI=... NEO4J_USER=... \\
    NEO4J_PASSWORD=... python scripts/weaver_external_exit_gate.py --loops 2
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SUITE = "tests/integration/test_external_modes_e2e.py"
# §6.1: without these the suite cannot reach the real services.
REQUIRED_ENV = (
    "MINDSDB_URL",
    "POSTGRES_DSN",
    "NEO4J_URI",
    "NEO4J_USER",
    "NEO4J_PASSWORD",
)


@dataclass
class LoopOutcome:
    returncode: int
    tests: int
    failures: int
    errors: int
    skipped: list[str]

    @property
    def passed(self) -> int:
        return self.tests - self.failures - self.errors - len(self.skipped)

    @property
    def problems(self) -> int:
        """Failures, errors and skips; a loop that is not ok for another reason (no test
        ran, pytest itself failed) counts as one."""
        counted = self.failures + self.errors + len(self.skipped)
        return counted or (0 if self.ok else 1)

    @property
    def ok(self) -> bool:
        return (
            self.returncode == 0
            and self.tests > 0
            and not self.failures
            and not self.errors
            and not self.skipped
        )


def missing_environment(environ: dict[str, str]) -> list[str]:
    missing = [] if environ.get("WEAVER_RUN_E2E", "").strip() == "1" else ["WEAVER_RUN_E2E=1"]
    return missing + [name for name in REQUIRED_ENV if not environ.get(name, "").strip()]


def read_report(path: Path, returncode: int) -> LoopOutcome:
    """Counts from pytest's JUnit XML; a missing report (pytest crashed) counts as a
    failure of the loop."""
    if not path.exists():
        return LoopOutcome(returncode or 1, 0, 0, 1, [])
    root = ET.parse(path).getroot()
    suites = [root] if root.tag == "testsuite" else list(root.iter("testsuite"))
    tests = sum(int(s.get("tests", 0)) for s in suites)
    failures = sum(int(s.get("failures", 0)) for s in suites)
    errors = sum(int(s.get("errors", 0)) for s in suites)
    skipped = []
    for case in root.iter("testcase"):
        skip = case.find("skipped")
        if skip is not None:
            reason = skip.get("message") or "no reason given"
            skipped.append(f"{case.get('classname')}::{case.get('name')}: {reason}")
    return LoopOutcome(returncode, tests, failures, errors, skipped)


def run_loop(index: int, report_dir: Path, pytest_args: list[str]) -> LoopOutcome:
    report = report_dir / f"loop-{index}.xml"
    command = [
        sys.executable,
        "-m",
        "pytest",
        SUITE,
        "-q",
        "-rs",
        "-p",
        "no:cacheprovider",
        f"--junitxml={report}",
        *pytest_args,
    ]
    print(f"[exit-gate] loop {index}: {' '.join(command[2:])}", flush=True)
    completed = subprocess.run(command, cwd=REPO, check=False)
    return read_report(report, completed.returncode)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[1])
    parser.add_argument("--loops", type=int, default=2, help="how many times to run the suite")
    parser.add_argument("pytest_args", nargs="*", help="extra arguments for pytest")
    args = parser.parse_args(argv)
    if args.loops < 1:
        parser.error("--loops must be at least 1")

    missing = missing_environment(dict(os.environ))
    if missing:
        print("[exit-gate] FAILED: required environment missing: " + ", ".join(missing))
        return 2

    outcomes = []
    with tempfile.TemporaryDirectory(prefix="weaver-exit-gate-") as tmp:
        for index in range(1, args.loops + 1):
            outcome = run_loop(index, Path(tmp), args.pytest_args)
            outcomes.append(outcome)
            print(
                f"[exit-gate] loop {index}: {outcome.passed} passed, {outcome.failures} failed, "
                f"{outcome.errors} errors, {len(outcome.skipped)} skipped",
                flush=True,
            )
            for skip in outcome.skipped:
                print(f"[exit-gate]   skipped (not allowed): {skip}")

    passed = sum(o.passed for o in outcomes)
    failed = sum(o.problems for o in outcomes)
    verdict = "PASSED" if all(o.ok for o in outcomes) else "FAILED"
    print(f"[exit-gate] {verdict} after {len(outcomes)} loop(s)")
    print(f"{passed} passed, {failed} failed")
    return 0 if verdict == "PASSED" else 1


if __name__ == "__main__":
    sys.exit(main())
