"""scripts/run_tests.py: the two halves' counts and fidelity figures add up to one, and a run stopped by SIGTERM
still stops what its tests started."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from scripts.run_tests import counts
from tests.fidelity import EXPORT_ENV, describe, merge_exports
from tests.processes import alive

REPO = Path(__file__).resolve().parents[2]


def test_counts_read_pytest_closing_lines_quiet_or_not() -> None:
    assert counts("....\n16 passed, 10 deselected in 10.66s\n") == {"passed": 16, "deselected": 10}
    loud = "stuff\n=========== 3 failed, 2545 passed, 10 skipped, 1 error in 1122.45s (0:18:42) ============\n"
    assert counts(loud) == {"failed": 3, "passed": 2545, "skipped": 10, "errors": 1}
    assert counts("interrupted before any summary\n") == {}


def test_fidelity_merges_each_planes_outcome_from_its_half(tmp_path: Path) -> None:
    embedded, real = tmp_path / "embedded.json", tmp_path / "real.json"
    embedded.write_text(json.dumps({
        "a[]": {"outcomes": {"embedded": "passed"}, "gap": None},
        "b[]": {"outcomes": {"embedded": "passed"}, "gap": "kept on purpose"},
        "c[]": {"outcomes": {"embedded": "passed"}, "gap": None},
        "d[]": {"outcomes": {"embedded": "passed"}, "gap": None},
    }))  # fmt: skip
    real.write_text(json.dumps({
        "a[]": {"outcomes": {"real": "passed"}, "gap": None},
        "b[]": {"outcomes": {"real": "passed"}, "gap": "kept on purpose"},
        "c[]": {"outcomes": {"real": "failed"}, "gap": None},
        "d[]": {"outcomes": {"real": "skipped"}, "gap": None},
    }))  # fmt: skip
    line = describe(merge_exports([embedded, real, tmp_path / "missing.json"]))
    assert line.startswith("control-plane fidelity: 1/3 statements identical")
    assert line.endswith("1 documented differences (docs/GAPS.md), 1 failing")


# A test that starts a process in a session of its own, records its pid, and stops it in its fixture's teardown.
STARTS_A_PROCESS = """
import os, signal, subprocess, time
from pathlib import Path
import pytest

@pytest.fixture
def child():
    proc = subprocess.Popen(["sleep", "300"], start_new_session=True)
    Path(os.environ["DOPS_TEST_MARK"]).write_text(str(proc.pid))
    yield
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    Path(os.environ["DOPS_TEST_MARK"]).write_text("stopped")

def test_waits(child):
    time.sleep(120)
"""


@pytest.mark.parametrize(
    ("runner", "stopped"),
    [
        pytest.param(["scripts/run_tests.py", "-p", "tests.conftest"], True, id="make-test"),
        pytest.param(["-m", "pytest", "-p", "tests.conftest"], True, id="pytest"),
        pytest.param(["-m", "pytest"], False, id="pytest-without-the-handler"),
    ],
)
def test_sigterm_stops_the_run_after_its_teardown(tmp_path: Path, runner: list[str], stopped: bool) -> None:
    """SIGTERM (a CI timeout, `kill`) to `make test`'s runner or to one pytest: every teardown still runs, so
    nothing a test started outlives the run. Without tests/conftest.py's handler Python ends at once."""
    (tmp_path / "test_starts_a_process.py").write_text(STARTS_A_PROCESS)
    mark = tmp_path / "mark"
    # not this run's fidelity export: the inner run must not write over it
    env = {**{k: v for k, v in os.environ.items() if k != EXPORT_ENV}, "DOPS_TEST_MARK": str(mark)}
    command = [sys.executable, *runner, "-q", "-p", "no:cacheprovider", str(tmp_path / "test_starts_a_process.py")]
    run = subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    child = 0
    try:
        deadline = time.monotonic() + 60
        while not (mark.exists() and mark.read_text()) and time.monotonic() < deadline:
            time.sleep(0.1)
        child = int(mark.read_text())
        run.send_signal(signal.SIGTERM)
        output, _ = run.communicate(timeout=60)
        if stopped:
            assert mark.read_text() == "stopped", output
            assert not alive(child)
            assert "KeyboardInterrupt: signal 15 (SIGTERM)" in output
        else:
            assert mark.read_text() == str(child) and alive(child), output
    finally:
        run.kill()
        run.wait()
        if child and alive(child):
            os.killpg(child, signal.SIGKILL)
