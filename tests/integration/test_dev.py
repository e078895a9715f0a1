"""`dops dev`, the embedded default, as a user runs it: a real subprocess, the real kubectl and helm.

Aspects:
- exactly as the README says (issue 14): `dops dev` with no option in a directory holding examples/,
  then the printed `export KUBECONFIG=…` and `kubectl apply -f examples/` there: every example ends as
  it says it does (fail → failed, the rest → completed); the usage text prints absolute paths; a
  second `dops dev` on the same state dir exits 2 with one line naming the dir and the first one's pid,
  leaving the first one's kubeconfig alone and the first one serving; Ctrl-C (SIGINT) stops it with
  exit 0 and nothing left behind;
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
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from tests.helpers import CLI, eventually, find_binary, free_port
from tests.processes import Background, alive, descendants, leftovers

REPO = Path(__file__).resolve().parent.parent.parent
READY = "Press Ctrl-C to stop."


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


# --------------------------------------------------------------------------------------------- as the README says


def dops_command() -> list[str]:
    """`dops`, the console script a user types (next to this interpreter), else `python -m dops`."""
    script = Path(sys.executable).parent / "dops"
    return [str(script)] if script.exists() else [sys.executable, "-m", "dops"]


def user_env() -> dict[str, str]:
    """The environment of a user's shell, less what would point dops or kubectl elsewhere."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("DOPS_") and k != "KUBECONFIG"}
    env["PYTHONUNBUFFERED"] = "1"
    return env


def expected_states(examples: Path) -> dict[str, str]:
    """What each example says it ends as: the `fail` operator fails, every other example completes."""
    expected = {}
    for path in sorted(examples.glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if isinstance(doc, dict) and doc.get("kind") == "DelegatedOperation":
                failing = doc["spec"]["operator"] == "@dops/examples/fail"
                expected[doc["metadata"]["name"]] = "failed" if failing else "completed"
    return expected


@dataclass
class ReadmeDev:
    """`dops dev` started with no option in `cwd` (which holds a copy of examples/), and the user's kubectl."""

    cwd: Path
    server: Background
    kubectl_binary: str
    home: Path

    @property
    def exported_kubeconfig(self) -> str:
        """The value of the `export KUBECONFIG=…` line dev printed (what a user copies)."""
        line = self.server.wait_for_line("export KUBECONFIG=", timeout=1)
        return line.split("export KUBECONFIG=", 1)[1].strip()

    def kubectl(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """kubectl run in `cwd` after the printed `export KUBECONFIG=…`."""
        env = {**user_env(), "HOME": str(self.home), "KUBECONFIG": self.exported_kubeconfig}
        argv = [self.kubectl_binary, "--cache-dir", str(self.home / ".kube" / "cache"), *args]
        result = subprocess.run(argv, cwd=self.cwd, env=env, capture_output=True, text=True, timeout=60)
        if check and result.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} exited {result.returncode}:\n{result.stderr}")
        return result


@pytest.fixture(scope="module")
def readme_dev(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ReadmeDev]:
    kubectl = find_binary("kubectl")
    if not kubectl:
        pytest.skip("kubectl not available: run `python scripts/fetch_clients.py` (make test does)")
    cwd = tmp_path_factory.mktemp("user-project")
    shutil.copytree(REPO / "examples", cwd / "examples")
    home = tmp_path_factory.mktemp("user-home")
    server = Background([*dops_command(), "dev"], cwd=cwd, env=user_env())
    try:
        server.wait_for_line(READY, timeout=90)
        yield ReadmeDev(cwd, server, kubectl, home)
    finally:
        server.close()


def test_readme_dev_runs_every_example_as_it_says(readme_dev: ReadmeDev) -> None:
    """Issue 14 #1: `dops dev` with its defaults, the printed export, `kubectl apply -f examples/`: each example
    ends as it says (before, the kubelet's relative work dir gave pods a KUBECONFIG that did not exist where they
    ran, and all four failed). The usage text names absolute paths."""
    applied = readme_dev.kubectl("apply", "-f", "examples/")
    assert "delegatedoperation.dops.io/example-echo created" in applied.stdout
    expected = expected_states(readme_dev.cwd / "examples")
    assert len(expected) == 4

    def states() -> dict[str, str]:
        items = json.loads(readme_dev.kubectl("get", "dops", "-o", "json").stdout)["items"]
        return {o["metadata"]["name"]: (o.get("status") or {}).get("runState", "") for o in items}

    final = eventually(
        states,
        lambda now: set(now) == set(expected) and all(s in ("completed", "failed") for s in now.values()),
        timeout=120,
        interval=0.5,
        describe="every example to finish",
    )
    if final != expected:
        details = readme_dev.kubectl("get", "dops", "-o", "yaml").stdout
        raise AssertionError(f"examples ended {final}, expected {expected}:\n{details}")
    kubeconfig = readme_dev.exported_kubeconfig
    assert kubeconfig == str(readme_dev.cwd / ".dops" / "dev" / "kubeconfig"), readme_dev.server.output
    assert f"kubectl apply -f {REPO / 'examples'}/" in readme_dev.server.output  # absolute: works from anywhere


def test_a_second_dev_on_the_same_state_dir_is_refused(readme_dev: ReadmeDev) -> None:
    """Issue 14 #3: a second `dops dev` in the same directory (so the same state dir) exits 2 with one line
    naming the state dir and the first one's pid; the first one's kubeconfig is untouched and it keeps serving."""
    state_dir = readme_dev.cwd / ".dops" / "dev"
    kubeconfig = readme_dev.cwd / readme_dev.exported_kubeconfig
    before = kubeconfig.read_bytes()
    second = Background([*dops_command(), "dev"], cwd=readme_dev.cwd, env=user_env())
    try:
        try:
            code = second.proc.wait(60)
        except subprocess.TimeoutExpired:
            raise AssertionError("the second dops dev kept running:\n" + second.output) from None
    finally:
        second.close()
    lines = [line for line in second.lines if line.strip()]
    assert code == 2, second.output
    assert len(lines) == 1, second.output
    assert lines[0].startswith(f"error: the state dir {state_dir} is in use by another dops dev ")
    assert f"(pid {readme_dev.server.proc.pid})" in lines[0]
    assert kubeconfig.read_bytes() == before
    assert readme_dev.server.proc.poll() is None
    assert readme_dev.kubectl("get", "dops").returncode == 0


def test_readme_dev_stops_on_ctrl_c_leaving_nothing(readme_dev: ReadmeDev) -> None:
    """Issue 14: Ctrl-C (SIGINT) stops `dops dev` with exit 0, and no process of it is left."""
    seen = descendants(readme_dev.server.proc.pid)
    assert readme_dev.server.interrupt() == 0, readme_dev.server.output
    eventually(
        lambda: leftovers(readme_dev.server.proc, seen),
        lambda left: left == set(),
        timeout=60,
        describe="no process of dops dev left",
    )


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
        timeout=60,
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
