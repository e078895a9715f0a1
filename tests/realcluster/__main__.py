"""`python -m tests.realcluster up|down|status`: a real control plane for trying dops by hand.

`up` builds the binaries if needed (`make k8s`), starts the cluster in the background and prints the
`export KUBECONFIG=…` line; `down` stops it (every process group) and removes its files; `status`
says whether it is running. State lives in `--dir` (default `.dops/realcluster`, resolved to an
absolute path at start-up).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

from scripts.build_k8s import BuildError, build
from tests.realcluster.launcher import ClusterError, RealCluster, stop_process_group

DEFAULT_DIR = Path(".dops/realcluster")


def _pid_alive_as(pid: int, binary: str) -> bool:
    """True when `pid` still runs `binary` (so `down` never signals a recycled pid)."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0].decode()
    except OSError:
        return False
    return cmdline == binary


def up(directory: Path, port: int | None, timeout: float) -> int:
    state = directory / "cluster.json"
    running = json.loads(state.read_text())["processes"].values() if state.exists() else []
    if any(_pid_alive_as(proc["pid"], proc["binary"]) for proc in running):
        print(f"realcluster: a cluster is already running from {directory}; `down` it first", file=sys.stderr)
        return 1
    shutil.rmtree(directory, ignore_errors=True)
    bin_dir = build()
    cluster = RealCluster.start(bin_dir, root=directory, apiserver_port=port, timeout=timeout, die_with_parent=False)
    cluster.owns_root = True  # `down` removes the directory
    state.write_text(json.dumps(cluster.describe(), indent=2))
    print(f"› control plane up in {cluster.started_seconds:.1f} s at {cluster.url}")
    print(f"  export KUBECONFIG={cluster.kubeconfig}")
    print(f"  logs: {cluster.log_dir}/; stop: python -m tests.realcluster down --dir {directory}")
    return 0


def down(directory: Path) -> int:
    state = directory / "cluster.json"
    if not state.exists():
        print(f"realcluster: no cluster state in {directory}; nothing to stop")
        return 0
    described = json.loads(state.read_text())
    for name in ("kube-scheduler", "kube-controller-manager", "kube-apiserver", "etcd"):
        proc = described["processes"].get(name)
        if proc and _pid_alive_as(proc["pid"], proc["binary"]):
            stop_process_group(proc["pid"], 10.0, lambda p=proc: not _pid_alive_as(p["pid"], p["binary"]))
    shutil.rmtree(directory, ignore_errors=True)
    print(f"› stopped the control plane in {directory}")
    return 0


def status(directory: Path) -> int:
    state = directory / "cluster.json"
    if not state.exists():
        print("not running")
        return 1
    described = json.loads(state.read_text())
    alive = {n: _pid_alive_as(p["pid"], p["binary"]) for n, p in described["processes"].items()}
    print(f"{described['url']}: " + ", ".join(f"{n} {'up' if ok else 'down'}" for n, ok in alive.items()))
    return 0 if all(alive.values()) else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.realcluster", description=__doc__.split("\n\n")[0])
    parser.add_argument("command", choices=("up", "down", "status"))
    parser.add_argument("--dir", type=Path, default=DEFAULT_DIR, help="state directory (default: %(default)s)")
    parser.add_argument("--port", type=int, default=None, help="apiserver port on 127.0.0.1 (default: random)")
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds to wait for readiness")
    args = parser.parse_args(argv)
    directory = args.dir.expanduser().resolve()
    started = time.monotonic()
    try:
        if args.command == "up":
            return up(directory, args.port, args.timeout)
        if args.command == "down":
            return down(directory)
        return status(directory)
    except (ClusterError, BuildError) as exc:
        print(f"realcluster: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(
            f"realcluster: interrupted after {time.monotonic() - started:.0f} s; everything started was stopped",
            file=sys.stderr,
        )
        return 130


if __name__ == "__main__":
    sys.exit(main())
