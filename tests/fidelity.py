"""The differential's score: how many statements behave identically on both control planes.

Each test of a `both_planes` module that runs on both planes is one statement. It is *identical*
when it passes on both without a `gap` marker; *documented* when it passes on both and carries
`@pytest.mark.gap(...)` (the test asserts each plane's own behaviour, and docs/GAPS.md says why the
emulator keeps its difference); *failing* when either plane fails it. Statements skipped on either
plane (no Go, no kubectl) are not counted as checked. The figure is printed at the end of the run.
"""

from __future__ import annotations

import json
import os
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from pathlib import Path

import pytest

# When set, the statements' outcomes are also written there as JSON (scripts/run_tests.py runs the embedded
# and the real half in two processes and merges their files into one figure).
EXPORT_ENV = "DOPS_FIDELITY_FILE"


@dataclass
class Statement:
    outcomes: dict[str, str] = field(default_factory=dict)  # plane → passed | failed | skipped
    gap: str | None = None


# The parametrized fixtures that carry the plane (tests/conftest.py PLANE_FIXTURES).
PLANE_PARAMS = ("plane", "dops_plane", "cli_plane")
_STATEMENTS: dict[str, Statement] = defaultdict(Statement)
_PLANE_OF: dict[str, tuple[str, str]] = {}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        callspec = getattr(item, "callspec", None)
        if callspec is None or item.get_closest_marker("both_planes") is None:
            continue
        plane = next((callspec.params[name] for name in PLANE_PARAMS if name in callspec.params), None)
        if plane is None:
            continue
        others = [part for part in callspec.id.split("-") if part != plane]
        key = f"{item.nodeid.split('[')[0]}[{'-'.join(others)}]"
        _PLANE_OF[item.nodeid] = (key, plane)
        marker = item.get_closest_marker("gap")
        if marker is not None:
            _STATEMENTS[key].gap = str(marker.args[0]) if marker.args else "documented"


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    found = _PLANE_OF.get(report.nodeid)
    if found is None:
        return
    key, plane = found
    outcomes = _STATEMENTS[key].outcomes
    if report.when == "call" or (report.when == "setup" and not report.passed):
        outcomes[plane] = "skipped" if report.skipped else ("passed" if report.passed else "failed")
    elif report.when == "teardown" and report.failed:
        outcomes[plane] = "failed"


def figure(statements: dict[str, Statement] | None = None) -> tuple[int, int, int, int]:
    """(identical, documented, failing, checked) over statements that ran on both planes."""
    identical = documented = failing = checked = 0
    for statement in (_STATEMENTS if statements is None else statements).values():
        if statement.outcomes.get("embedded") in (None, "skipped") or statement.outcomes.get("real") in (
            None,
            "skipped",
        ):
            continue
        checked += 1
        if "failed" in statement.outcomes.values():
            failing += 1
        elif statement.gap:
            documented += 1
        else:
            identical += 1
    return identical, documented, failing, checked


def describe(statements: dict[str, Statement] | None = None) -> str:
    identical, documented, failing, checked = figure(statements)
    if checked == 0:
        return "control-plane fidelity: no statement ran on both planes (real plane skipped)"
    return (
        f"control-plane fidelity: {identical}/{checked} statements identical on the embedded and the real "
        f"control plane ({100 * identical / checked:.1f}%); {documented} documented differences (docs/GAPS.md), "
        f"{failing} failing"
    )


def merge_exports(paths: list[Path]) -> dict[str, Statement]:
    """The statements of several exported runs (each plane's outcome from whichever run had it)."""
    merged: dict[str, Statement] = defaultdict(Statement)
    for path in paths:
        if not path.exists():
            continue
        for key, data in json.loads(path.read_text()).items():
            merged[key].outcomes.update(data["outcomes"])
            merged[key].gap = merged[key].gap or data["gap"]
    return merged


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    export = os.environ.get(EXPORT_ENV)
    if export:  # one half of a two-process run: scripts/run_tests.py prints the merged figure
        Path(export).write_text(json.dumps({key: asdict(st) for key, st in _STATEMENTS.items()}))
        return
    if not _PLANE_OF:
        return
    terminalreporter.write_line(describe())
