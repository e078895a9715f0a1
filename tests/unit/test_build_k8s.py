"""`make k8s` (scripts/build_k8s.py): the pin in hack/k8s/go.mod, idempotence, and its one-line failures.

The build itself takes minutes cold, so these tests never start one from scratch: they check the pin,
that a built cache is reused without running `go`, and that a missing toolchain or a broken module
gives one readable line naming the log.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from scripts import build_k8s

REPO = Path(__file__).resolve().parents[2]
GO_MOD = REPO / "hack" / "k8s" / "go.mod"


def run_build(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(REPO / "scripts" / "build_k8s.py"), *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        cwd=REPO,
    )


def test_the_pin_matches_kubectl_and_every_staging_module() -> None:
    """One version: k8s.io/kubernetes v1.35.x (our kubectl's minor), each k8s.io staging module at v0.35.x of it."""
    version = build_k8s.kubernetes_version(GO_MOD)
    assert re.fullmatch(r"v1\.35\.\d+", version), version
    staging = f"v0{version[2:]}"
    text = GO_MOD.read_text()
    replaces = re.findall(r"^\s*(k8s\.io/[\w.-]+) => (k8s\.io/[\w.-]+) (v\S+)$", text, re.MULTILINE)
    assert len(replaces) >= 30
    assert all(old == new and pinned == staging for old, new, pinned in replaces), replaces
    assert re.search(r"^\s*go\.etcd\.io/etcd/server/v3 v3\.6\.\d+", text, re.MULTILINE)
    assert all(f"\t{package}\n" in text for package in build_k8s.TOOLS.values())  # every binary is a `tool`


def test_version_stamps_make_the_server_report_its_release() -> None:
    flags = build_k8s.ldflags("v1.35.4")
    assert "-X k8s.io/component-base/version.gitVersion=v1.35.4" in flags
    assert "-X k8s.io/component-base/version.gitMinor=35" in flags


def test_without_go_on_path_the_build_says_so_in_one_line(tmp_path: Path) -> None:
    env = {"PATH": str(tmp_path), "HOME": str(tmp_path), "DOPS_K8S_CACHE": str(tmp_path / "cache")}
    result = run_build(env=env)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        "make k8s: the Go toolchain is not on PATH: install Go 1.25+ to build the real control plane"
    ]


@pytest.mark.skipif(shutil.which("go") is None, reason="no Go toolchain on PATH")
def test_a_failed_build_names_its_log_in_one_line(tmp_path: Path) -> None:
    module = tmp_path / "module"
    module.mkdir()
    broken = GO_MOD.read_text().replace("k8s.io/kubernetes v1.35.4", "k8s.io/kubernetes v1.35.4\n\tnot a module line")
    (module / "go.mod").write_text(broken)
    (module / "go.sum").write_text("")
    env = {**os.environ, "DOPS_K8S_CACHE": str(tmp_path / "cache"), "GOFLAGS": "-mod=mod"}
    result = run_build("--module-dir", str(module), env=env)
    assert result.returncode == 1
    last = result.stderr.strip().splitlines()[-1]
    log = tmp_path / "cache" / build_k8s.kubernetes_version(GO_MOD) / "build.log"
    assert last == f"make k8s: the control-plane build failed (go exited 1); see {log}"
    assert log.exists() and "go.mod" in log.read_text()
    assert not (log.parent / "bin" / ".build-key").exists()


def test_a_built_cache_is_reused_without_running_go(tmp_path: Path) -> None:
    """Idempotence: with the stamp in place the build returns at once and never calls `go`."""
    version = build_k8s.kubernetes_version(GO_MOD)
    bin_dir = tmp_path / "cache" / version / "bin"
    bin_dir.mkdir(parents=True)
    for name in build_k8s.TOOLS:
        (bin_dir / name).write_text("#!/bin/sh\n")
    (bin_dir / ".build-key").write_text(build_k8s.build_key(version) + "\n")
    fake_go = tmp_path / "path" / "go"
    fake_go.parent.mkdir()
    marker = tmp_path / "go-was-run"
    fake_go.write_text(f"#!/bin/sh\ntouch {marker}\nexit 3\n")
    fake_go.chmod(0o755)
    env = {"PATH": f"{fake_go.parent}:/usr/bin:/bin", "HOME": str(tmp_path), "DOPS_K8S_CACHE": str(tmp_path / "cache")}
    result = run_build("--print-bin-dir", env=env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == str(bin_dir) and not marker.exists()
    # A changed pin (another go.sum) invalidates the stamp: now `go` runs (and this fake one fails).
    (bin_dir / ".build-key").write_text("stale\n")
    rebuilt = run_build(env=env)
    assert rebuilt.returncode == 1 and marker.exists()
    assert rebuilt.stderr.strip().splitlines()[-1].startswith("make k8s: the control-plane build failed (go exited 3)")
