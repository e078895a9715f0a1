"""The Job container's command line starts the worker without the CLI (issue 15: worker start-up), no cluster.

Aspects covered:
- `dops worker run NS/NAME` (exactly what dops.domain.jobs puts in the Job) imports neither Typer nor Rich and
  behaves as the worker: a bad kubeconfig is one `dops worker run:` line and exit code 2;
- any other `dops worker run` form (options, a bare name) still goes through the CLI;
- the progress interval from the Job's env: unset, a number, a bad value (one warning, the default).
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent.parent


def run_dops(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = dict(
        os.environ,
        PYTHONPATH=str(REPO / "operator"),
        KUBECONFIG=str(tmp_path / "missing-kubeconfig"),
        DOPS_TERMINATION_MESSAGE_PATH=str(tmp_path / "termination-log"),
    )
    for name in ("KUBERNETES_SERVICE_HOST", "KUBERNETES_SERVICE_PORT", "DOPS_POD_NAME"):
        env.pop(name, None)
    return subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "dops", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )


def imported(stderr: str) -> set[str]:
    return {line.rsplit("|", 1)[-1].strip() for line in stderr.splitlines() if line.startswith("import time:")}


def test_the_job_command_line_skips_the_cli(tmp_path: Path) -> None:
    out = run_dops(tmp_path, "worker", "run", "ns/op")
    modules = imported(out.stderr)
    assert out.returncode == 2, out.stderr[-2000:]
    assert "dops.worker.run" in modules
    assert not {"typer", "rich", "dops.cli.command"} & modules, sorted(m for m in modules if "typer" in m)
    errors = [line for line in out.stderr.splitlines() if line.startswith("dops worker run:")]
    assert len(errors) == 1, out.stderr[-2000:]


def test_other_worker_command_lines_go_through_the_cli(tmp_path: Path) -> None:
    out = run_dops(tmp_path, "worker", "run", "op", "-n", "ns")
    assert "typer" in imported(out.stderr)


def test_the_progress_interval_comes_from_the_jobs_env(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """issue 15: `$DOPS_PROGRESS_INTERVAL_SECONDS` (the target's progressIntervalSeconds) sets the worker's
    coalescing; unset (run by hand) leaves the engine's 0.5 s; a bad value is one warning and the default 10 s."""
    from dops.worker.run import progress_interval

    monkeypatch.delenv("DOPS_PROGRESS_INTERVAL_SECONDS", raising=False)
    assert progress_interval() is None
    monkeypatch.setenv("DOPS_PROGRESS_INTERVAL_SECONDS", "2")
    assert progress_interval() == 2.0
    monkeypatch.setenv("DOPS_PROGRESS_INTERVAL_SECONDS", "soon")
    with caplog.at_level(logging.WARNING, logger="dops.worker"):
        assert progress_interval() == 10.0
    assert [r.getMessage() for r in caplog.records] == [
        "DOPS_PROGRESS_INTERVAL_SECONDS must be a number of seconds, got 'soon'; progress is written every 10 s"
    ]
