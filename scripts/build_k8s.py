#!/usr/bin/env python3
"""Build the upstream control plane (etcd, kube-apiserver, kube-controller-manager, kube-scheduler) from Go modules.

Why a build and not a download: this machine reaches the Go module proxy but no release bucket or
container registry, so the real control plane is compiled from `k8s.io/kubernetes` and
`go.etcd.io/etcd/server/v3` at the versions pinned in `hack/k8s/go.mod` (the one place the version
lives). The binaries go into a cache outside the checkout, `~/.cache/dops/k8s/<version>/bin`
(`$DOPS_K8S_CACHE` overrides the root), and are never committed.

A second run is a no-op that takes well under a second: a stamp file records the hash of go.mod,
go.sum and the build flags, so a change of pin rebuilds. A cold build on 2 cores takes several
minutes; progress is printed while it runs. On failure one line names the log file and the build
exits 1. `--print-bin-dir` prints the directory (building first if needed) for scripts and tests.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
MODULE_DIR = REPO / "hack" / "k8s"
# Main packages to build, and the binary name each produces.
TOOLS = {
    "etcd": "go.etcd.io/etcd/server/v3",
    "kube-apiserver": "k8s.io/kubernetes/cmd/kube-apiserver",
    "kube-controller-manager": "k8s.io/kubernetes/cmd/kube-controller-manager",
    "kube-scheduler": "k8s.io/kubernetes/cmd/kube-scheduler",
}


class BuildError(Exception):
    """A build problem worth one line to the user."""


def kubernetes_version(go_mod: Path = MODULE_DIR / "go.mod") -> str:
    """The k8s.io/kubernetes version required by hack/k8s/go.mod (the single source of the version)."""
    match = re.search(r"^\s*k8s\.io/kubernetes\s+(v\d+\.\d+\.\d+)(\s*//.*)?$", go_mod.read_text(), re.MULTILINE)
    if match is None:
        raise BuildError(f"{go_mod} does not require k8s.io/kubernetes at a release version")
    return match.group(1)


def cache_root() -> Path:
    override = os.environ.get("DOPS_K8S_CACHE")
    if override:
        return Path(override).expanduser().resolve()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "dops" / "k8s"


def ldflags(version: str) -> str:
    """Version stamps that `hack/lib/version.sh` would set, so `kubectl version` and helm's kubeVersion see v1.x."""
    major, minor = version.lstrip("v").split(".")[:2]
    stamps = []
    for package in ("k8s.io/component-base/version", "k8s.io/client-go/pkg/version"):
        stamps += [
            f"-X {package}.gitVersion={version}",
            f"-X {package}.gitMajor={major}",
            f"-X {package}.gitMinor={minor}",
            f"-X {package}.gitTreeState=clean",
            f"-X {package}.buildDate=1970-01-01T00:00:00Z",
        ]
    return " ".join(["-s", "-w", *stamps])


def build_key(version: str, module_dir: Path = MODULE_DIR) -> str:
    digest = hashlib.sha256()
    for name in ("go.mod", "go.sum"):
        digest.update((module_dir / name).read_bytes())
    digest.update(ldflags(version).encode())
    digest.update(" ".join(sorted(TOOLS.values())).encode())
    return digest.hexdigest()[:16]


def is_built(bin_dir: Path, key: str) -> bool:
    stamp = bin_dir / ".build-key"
    return stamp.exists() and stamp.read_text().strip() == key and all((bin_dir / n).is_file() for n in TOOLS)


def _report_progress(log: Path, started: float, done: threading.Event, quiet: bool) -> None:
    """Every 20 s, say the build is still running and what it last did (go -v lists packages as it compiles)."""
    while not done.wait(20):
        if quiet:
            continue
        lines = log.read_text(errors="replace").splitlines() if log.exists() else []
        compiled = sum(1 for line in lines if line and not line.startswith(("go:", "#")))
        elapsed = time.monotonic() - started
        print(f"  … {elapsed:4.0f} s, {compiled} packages compiled", file=sys.stderr, flush=True)


def build(*, quiet: bool = False, module_dir: Path = MODULE_DIR) -> Path:
    """Build (or reuse) the binaries; returns the bin directory."""
    go = shutil.which("go")
    if go is None:
        raise BuildError("the Go toolchain is not on PATH: install Go 1.25+ to build the real control plane")
    version = kubernetes_version(module_dir / "go.mod")
    bin_dir = cache_root() / version / "bin"
    key = build_key(version, module_dir)
    if is_built(bin_dir, key):
        return bin_dir
    bin_dir.mkdir(parents=True, exist_ok=True)
    log = bin_dir.parent / "build.log"
    staging = bin_dir.parent / "bin.partial"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    if not quiet:
        print(
            f"› building Kubernetes {version} control plane into {bin_dir}\n"
            f"  (etcd, kube-apiserver, kube-controller-manager, kube-scheduler; a cold build takes"
            f" 10-20 minutes on 2 cores, later runs reuse the Go build cache; log: {log})",
            file=sys.stderr,
            flush=True,
        )
    started = time.monotonic()
    env = {**os.environ, "CGO_ENABLED": "0", "GOFLAGS": "-buildvcs=false -mod=mod", "GOTOOLCHAIN": "local"}
    command = [go, "build", "-v", "-trimpath", "-ldflags", ldflags(version), "-o", str(staging) + "/", *TOOLS.values()]
    done = threading.Event()
    reporter = threading.Thread(target=_report_progress, args=(log, started, done, quiet), daemon=True)
    reporter.start()
    try:
        with log.open("w") as out:
            out.write("$ " + " ".join(command) + "\n")
            out.flush()
            result = subprocess.run(command, cwd=module_dir, stdout=out, stderr=subprocess.STDOUT, env=env)
    finally:
        done.set()
    if result.returncode != 0:
        raise BuildError(f"the control-plane build failed (go exited {result.returncode}); see {log}")
    # go build names a binary after its import path's last element, skipping a major-version suffix:
    # go.etcd.io/etcd/server/v3 becomes "server".
    produced = {"etcd": staging / "server"}
    for name in TOOLS:
        source = produced.get(name, staging / name)
        if not source.is_file():
            raise BuildError(f"the build did not produce {name} (looked for {source}); see {log}")
        os.replace(source, bin_dir / name)
    shutil.rmtree(staging, ignore_errors=True)
    (bin_dir / ".build-key").write_text(key + "\n")
    if not quiet:
        print(f"› built in {time.monotonic() - started:.0f} s: {bin_dir}", file=sys.stderr, flush=True)
    return bin_dir


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--print-bin-dir", action="store_true", help="print the bin directory on stdout")
    parser.add_argument("--print-version", action="store_true", help="print the pinned Kubernetes version and exit")
    parser.add_argument("--quiet", action="store_true", help="no progress output")
    parser.add_argument("--module-dir", type=Path, default=MODULE_DIR, help=argparse.SUPPRESS)  # for tests
    args = parser.parse_args(argv)
    try:
        if args.print_version:
            print(kubernetes_version(args.module_dir / "go.mod"))
            return 0
        started = time.monotonic()
        bin_dir = build(quiet=args.quiet, module_dir=args.module_dir.resolve())
    except BuildError as exc:
        print(f"make k8s: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("make k8s: interrupted; nothing half-built was kept", file=sys.stderr)
        return 130
    if args.print_bin_dir:
        print(bin_dir)
    elif not args.quiet:
        print(f"› Kubernetes control plane ready in {bin_dir} ({time.monotonic() - started:.1f} s)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
