"""`dops dev`, the embedded default, as a user runs it: a real subprocess, the real kubectl and helm.

Aspects:
- `dops dev` serves a kubeconfig on which `kubectl apply -f examples/echo.yaml` completes, and
  SIGTERM stops it with exit 0 leaving none of its processes (operator, pods) behind;
- `dops dev --no-operator` + real `helm install dops helm/dops`: the chart's Deployment runs the
  operator as a process from the chart's own command/args/env; an example completes; `helm upgrade`
  and `helm uninstall` work and leave no operator process;
- bad input: a port in use is one readable error line and exit 1.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import CLI, eventually, find_binary

REPO = Path(__file__).resolve().parent.parent.parent


def descendants(pid: int) -> set[int]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    found: set[int] = set()
    stack = [pid]
    while stack:
        for child in children.get(stack.pop(), []):
            if child not in found:
                found.add(child)
                stack.append(child)
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def operator_processes(marker: str) -> list[int]:
    """PIDs of `python -m dops operator` processes whose environment carries `marker`."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().split(b"\0")
            environ = (entry / "environ").read_bytes()
        except OSError:
            continue
        if b"dops" in cmdline and b"operator" in cmdline and marker.encode() in environ and alive(int(entry.name)):
            found.append(int(entry.name))
    return found


class Dev:
    def __init__(self, tmp: Path, *extra: str) -> None:
        self.kubeconfig = tmp / "kubeconfig"
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "dops",
                "dev",
                "--kubeconfig",
                str(self.kubeconfig),
                "--state-dir",
                str(tmp / "state"),
                *extra,
            ],
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        self.output: list[str] = []
        assert self.proc.stdout is not None
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if not line:
                raise AssertionError("dops dev exited early:\n" + "".join(self.output))
            self.output.append(line)
            if "Press Ctrl-C to stop." in line:
                return
        raise AssertionError("dops dev not ready:\n" + "".join(self.output))

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(45)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()


@pytest.fixture
def tools(tmp_path: Path) -> tuple[str, str]:
    kubectl, helm = find_binary("kubectl"), find_binary("helm")
    if not kubectl or not helm:
        pytest.skip("kubectl/helm not available: run `python scripts/fetch_clients.py` (make test does)")
    return kubectl, helm


@pytest.fixture
def dev(tmp_path: Path, tools: tuple[str, str]) -> Iterator[Dev]:
    server = Dev(tmp_path)
    yield server
    server.stop()


def op_state(kubectl: CLI, name: str) -> str:
    out = kubectl.run("get", "dop", name, "-o", "json", check=False)
    if out.returncode != 0:
        return ""
    return str((json.loads(out.stdout).get("status") or {}).get("runState") or "")


def test_dev_runs_an_example_and_stops_cleanly(dev: Dev, tools: tuple[str, str], tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    kubectl = CLI(tools[0], dev.kubeconfig, home, {})
    assert f"export KUBECONFIG={dev.kubeconfig}" in "".join(dev.output)
    kubectl.run("apply", "-f", str(REPO / "examples" / "echo.yaml"))
    eventually(
        lambda: op_state(kubectl, "example-echo"),
        lambda s: s == "completed",
        timeout=60,
        describe="example-echo completed",
    )
    # A long operation is running when dev stops: its worker process must go with it.
    long_sleep = (REPO / "examples" / "sleep.yaml").read_text().replace("example-sleep", "long-sleep")
    long_sleep = long_sleep.replace("seconds: 2", "seconds: 300")
    assert "seconds: 300" in long_sleep
    kubectl.run("apply", "-f", "-", input=long_sleep)
    eventually(
        lambda: op_state(kubectl, "long-sleep"), lambda s: s == "running", timeout=60, describe="long-sleep running"
    )
    started = eventually(lambda: descendants(dev.proc.pid), bool, describe="the worker process under dops dev")
    assert dev.stop() == 0
    eventually(
        lambda: [p for p in started if alive(p)],
        lambda left: left == [],
        timeout=10,
        describe="no process of dops dev left",
    )


def test_helm_chart_runs_the_operator_inside_dev(tools: tuple[str, str], tmp_path: Path) -> None:
    kubectl_bin, helm_bin = tools
    server = Dev(tmp_path, "--no-operator")
    try:
        home = tmp_path / "home"
        home.mkdir()
        marker = f"DOPS_TEST_MARKER={tmp_path.name}"
        kubectl = CLI(kubectl_bin, server.kubeconfig, home, {})
        helm = CLI(helm_bin, server.kubeconfig, home, {})
        common = [
            "--set",
            f"logArchive.type=url,logArchive.url=file://{tmp_path / 'archive'}",
            "--set",
            f"metrics.port={free_port()},health.port={free_port()}",
            "--set",
            f"extraEnv[0].name=DOPS_TEST_MARKER,extraEnv[0].value={tmp_path.name}",
            "--wait",
            "--timeout",
            "90s",
        ]
        helm.run("install", "dops", str(REPO / "helm" / "dops"), *common, timeout=120)
        eventually(
            lambda: operator_processes(marker),
            lambda pids: len(pids) == 1,
            timeout=30,
            describe="the chart's operator Deployment running as one local process",
        )
        kubectl.run("apply", "-f", str(REPO / "examples" / "echo.yaml"))
        eventually(
            lambda: op_state(kubectl, "example-echo"),
            lambda s: s == "completed",
            timeout=60,
            describe="example-echo completed by the chart's operator",
        )
        helm.run("upgrade", "dops", str(REPO / "helm" / "dops"), *common, "--set", "globalMaxConcurrent=7", timeout=120)
        env = json.loads(kubectl.run("get", "deploy", "dops", "-o", "json").stdout)["spec"]["template"]["spec"][
            "containers"
        ][0]["env"]
        assert {"name": "DOPS_GLOBAL_MAX_CONCURRENT", "value": "7"} in env
        eventually(
            lambda: operator_processes(marker),
            lambda pids: len(pids) == 1,
            timeout=60,
            describe="exactly one operator process after the upgrade",
        )
        helm.run("uninstall", "dops", "--wait", timeout=120)
        eventually(
            lambda: operator_processes(marker),
            lambda pids: pids == [],
            timeout=45,
            describe="no operator process after helm uninstall",
        )
    finally:
        assert server.stop() == 0


def test_port_in_use_is_one_line_error(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "dops",
                "dev",
                "--port",
                str(port),
                "--state-dir",
                str(tmp_path / "s"),
                "--kubeconfig",
                str(tmp_path / "kc"),
            ],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: cannot start the embedded API server on 127.0.0.1:"), (
        result.stderr
    )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
