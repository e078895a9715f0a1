"""`dops ui` as a user runs it: a process that prints its URL in one line, serves on 127.0.0.1 only,
stops on SIGTERM/Ctrl-C, and reports bad input (an unusable kubeconfig, a busy port) in one line."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import requests

from tests.integration.operator_env import OperatorEnv

REPO = Path(__file__).resolve().parent.parent.parent


def argv(*args: str) -> list[str]:
    return [sys.executable, "-m", "dops", *args]


def env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(REPO / "operator"), "COLUMNS": "200"}


@contextmanager
def dops_ui(*args: str) -> Iterator[tuple[subprocess.Popen[str], str]]:
    """Start `dops ui ARGS`; yields the process and the URL it printed; always stops it."""
    proc = subprocess.Popen(argv("ui", *args), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env())
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.startswith("dops ui: http://127.0.0.1:"), (line, proc.stderr.read() if proc.stderr else "")
        yield proc, line.split()[2]
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def test_dops_ui_serves_on_loopback_and_stops_on_sigterm(operator_env: OperatorEnv, namespace: str) -> None:
    with dops_ui("--kubeconfig", str(operator_env.kubeconfig), "-n", namespace, "--port", "0") as (proc, url):
        assert url.startswith("http://127.0.0.1:")
        assert "dops" in requests.get(url, timeout=10).text
        port = int(url.rstrip("/").rsplit(":", 1)[1])
        listening = [line for line in Path("/proc/net/tcp").read_text().splitlines()[1:] if f":{port:04X} " in line]
        assert listening and all(line.split()[1].startswith("0100007F:") for line in listening)  # 127.0.0.1 only
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(15) == 0


def test_dops_ui_bad_input_is_one_line(operator_env: OperatorEnv, tmp_path: Path) -> None:
    garbage = tmp_path / "kubeconfig"
    garbage.write_text("::: not yaml [")
    result = subprocess.run(
        argv("ui", "--kubeconfig", str(garbage), "--port", "0"), capture_output=True, text=True, env=env(), timeout=60
    )
    assert result.returncode == 3 and len(result.stderr.strip().splitlines()) == 1, result.stderr
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = subprocess.run(
            argv("ui", "--kubeconfig", str(operator_env.kubeconfig), "--port", str(port)),
            capture_output=True,
            text=True,
            env=env(),
            timeout=60,
        )
    assert result.returncode == 2, result
    assert (
        result.stderr.strip()
        == f"error: port {port} on 127.0.0.1 is in use: choose another with --port (0 = any free one)"
    )
