"""Operators used by the worker/executor tests through `py:tests.worker_ops:<name>` URIs (import paths allowed).

Each one does something the built-in examples cannot: return an oversized result, crash the process,
record its PID so a test can check that the process tree was stopped, report what `ctx.delegated` was.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path
from typing import Any


def huge_result(ctx: Any) -> str:
    """A 10 MiB result: more than the status can hold."""
    return "x" * (10 * 1024 * 1024)


def pid_then_sleep(ctx: Any) -> dict[str, Any]:
    """Write this process's PID (and a grandchild's) to params.pid_file, then sleep params.seconds."""
    import subprocess
    import sys

    grandchild = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    Path(ctx.params["pid_file"]).write_text(f"{os.getpid()} {grandchild.pid}")
    ctx.set_progress(0.1, "sleeping")
    time.sleep(float(ctx.params.get("seconds", 60)))
    grandchild.kill()
    return {"slept": True}


def crash(ctx: Any) -> None:
    """Leave without a terminal state: exit the process (params.code) or kill it (params.signal)."""
    ctx.set_progress(0.5, "about to crash")
    time.sleep(0.6)  # let the progress write go out
    if ctx.params.get("signal"):
        os.kill(os.getpid(), getattr(signal, ctx.params["signal"]))
    os._exit(int(ctx.params.get("code", 1)))  # 1: what Python exits with on an unhandled error


def sleep_then_echo(ctx: Any) -> dict[str, Any]:
    time.sleep(float(ctx.params.get("seconds", 0.5)))
    return {"echo": ctx.params.get("value")}


def report_delegated(ctx: Any) -> dict[str, Any]:
    """Return what the operator saw as `ctx.delegated` (FiftyOne: the request's `delegated` flag)."""
    return {"delegated": ctx.delegated}


def handshake(ctx: Any) -> dict[str, Any]:
    """Write params.ready, then wait (≤ 120 s) for params.go to exist before returning: lets a test act (arm a
    fault, re-queue the operation) at a known point of the run, between the claim and the outcome write."""
    Path(ctx.params["ready"]).write_text("ready")
    go = Path(ctx.params["go"])
    deadline = time.monotonic() + 120
    while not go.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    if ctx.params.get("progress"):
        ctx.set_progress(0.9, "after the handshake")
        time.sleep(float(ctx.params.get("linger", 0)))
    return {"handshake": ctx.params.get("value", "done")}


def logged_run(ctx: Any) -> dict[str, Any]:
    """Append this run's pod and pid to params.runs (one line per run, so a test counts the runs of an operation
    across pods and restarts), then wait (≤ 120 s) for params.go to exist and return the number of runs."""
    runs = Path(ctx.params["runs"])
    with runs.open("a") as out:
        out.write(f"{os.environ.get('DOPS_POD_NAME', '?')} {os.getpid()}\n")
    go = Path(ctx.params["go"])
    deadline = time.monotonic() + 120
    while not go.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    return {"runs": len(runs.read_text().splitlines())}


def report_fast(ctx: Any) -> dict[str, Any]:
    """Report progress as fast as possible for params.seconds (default 1), then report 1.0 "done", wait
    params.linger seconds (default 0) and return: the progress coalescing tests count what reaches the API server
    (issue 15)."""
    seconds = float(ctx.params.get("seconds", 1.0))
    start = time.monotonic()
    reports = 0
    while time.monotonic() - start < seconds:
        reports += 1
        ctx.set_progress(min(0.99, (time.monotonic() - start) / seconds), f"report {reports}")
        time.sleep(0.001)
    ctx.set_progress(1.0, "done")
    time.sleep(float(ctx.params.get("linger", 0)))
    return {"reports": reports + 1}
