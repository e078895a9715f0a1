"""What scripts/bench_progress.py and scripts/bench_scale.py share: the processes they start and measure.

The operator always runs as its own process (`dops.handlers.run_operator`), so its CPU time and RSS are its own
(read from /proc). The embedded control plane runs in the benchmark's process (`EmbeddedServer.run_in_thread`)
when a benchmark needs its store (bulk seeding, stored-bytes accounting) and in a process of its own otherwise.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
JSON = dict[str, Any]
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def die_with_parent() -> None:
    """In the child before exec: SIGKILL it when the benchmark process dies, however it dies (Linux)."""
    import ctypes

    ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def stop_on_sigterm() -> None:
    """SIGTERM (a `timeout`, a CI cancel) unwinds like Ctrl-C, so every `finally` stops what it started."""

    def interrupt(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, interrupt)


def wait(probe: Callable[[], bool], timeout: float, what: str, interval: float = 0.1) -> None:
    deadline = time.monotonic() + timeout
    while not probe():
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


def url_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return bool(response.status == 200)
    except OSError:
        return False


def emulator_stats(url: str) -> JSON:
    with urllib.request.urlopen(url + "/__emulator/stats", timeout=30) as response:
        result: JSON = json.loads(response.read())
        return result


def process_cpu_seconds(pid: int) -> float:
    """User + system CPU time of one process (all its threads) so far; 0 once it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # utime, stime (fields 14 and 15 of stat)


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]  # nearest rank


def verdict(ok: bool) -> str:
    return "ok" if ok else "MISSED"


class Proc:
    """A child process with its output in a log file; CPU seconds and RSS from /proc."""

    def __init__(self, argv: list[str], env: dict[str, str], log: Path) -> None:
        self.log = log
        self.handle = log.open("w")
        self.popen = subprocess.Popen(
            argv,
            env=env,
            stdout=self.handle,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=die_with_parent,  # a benchmark killed -9 leaves nothing behind
        )
        self.started = time.monotonic()

    @property
    def pid(self) -> int:
        return self.popen.pid

    def rss_mib(self) -> float:
        try:
            for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
        except OSError:
            pass
        return 0.0

    def cpu_seconds(self) -> float:
        """User + system CPU time of the process (all its threads) so far."""
        return process_cpu_seconds(self.pid)

    def stop(self) -> None:
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.popen.pid, signal.SIGKILL)
                self.popen.wait(10)
        self.handle.close()


def start_emulator(
    work: Path, controllers: str = "none", history_size: int = 200000, *extra: str
) -> tuple[Proc, Path, str]:
    """`python -m dops.emulator` with the dops CRDs; no controllers by default (the benchmarks play the workers),
    `controllers="all"` with a simulated kubelet for the operator benchmark."""
    kubeconfig = work / "kubeconfig"
    port = free_port()
    argv = [
        sys.executable,
        "-m",
        "dops.emulator",
        "--port",
        str(port),
        "--kubeconfig",
        str(kubeconfig),
        "--crds",
        str(REPO / "crds"),
        "--controllers",
        controllers,
        *(["--kubelet-mode", "simulated"] if controllers != "none" else []),
        "--history-size",
        str(history_size),
        "--bookmark-interval",
        "5",
        *extra,
    ]
    env = dict(os.environ, PYTHONPATH=str(REPO / "operator"))
    proc = Proc(argv, env, work / "emulator.log")
    url = f"http://127.0.0.1:{port}"
    wait(lambda: url_ok(url + "/version"), 60, "the emulator to start")
    wait(kubeconfig.exists, 10, "the kubeconfig")
    return proc, kubeconfig, url


def create_namespace(kube: Any, namespace: str) -> None:
    kube.request(
        "POST", "/api/v1/namespaces", body={"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}}
    )


def create_target(kube: Any, namespace: str, name: str, spec: JSON) -> None:
    """A DelegationTarget `name` in `namespace` (`kube`: a dops.k8s.KubeClient)."""
    kube.request(
        "POST",
        f"/apis/dops.io/v1alpha1/namespaces/{namespace}/delegationtargets",
        body={"apiVersion": "dops.io/v1alpha1", "kind": "DelegationTarget", "metadata": {"name": name}, "spec": spec},
    )


OPERATOR_MAIN = """
import sys
from dops.handlers import run_operator
run_operator(all_namespaces=True, kubeconfig=sys.argv[1])
"""


def start_operator(work: Path, kubeconfig: Path, metrics_port: int, **env_extra: str) -> Proc:
    env = dict(
        os.environ,
        PYTHONPATH=str(REPO / "operator"),
        KUBECONFIG=str(kubeconfig),
        DOPS_LOG_ARCHIVE=str(work / "archive"),
        DOPS_METRICS_PORT=str(metrics_port),
        DOPS_HEALTH_PORT="0",
        DOPS_BIND_ADDRESS="127.0.0.1",
        **env_extra,
    )
    return Proc([sys.executable, "-c", OPERATOR_MAIN, str(kubeconfig)], env, work / "operator.log")


def kubectl_binary() -> str | None:
    """The kubectl `scripts/fetch_clients.py` fetched (None when it cannot: the figure is then skipped)."""
    try:
        out = subprocess.run(
            [sys.executable, str(REPO / "scripts" / "fetch_clients.py"), "--quiet"],
            capture_output=True,
            text=True,
            timeout=300,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    binary = Path(out) / "kubectl"
    return str(binary) if binary.exists() else None
