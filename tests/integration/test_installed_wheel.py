"""`pip install dops`, then `dops dev` in a directory that is not a checkout (issue 14 #2).

The wheel is built from a copy of what the Dockerfile builds from (pyproject.toml, README.md, operator/),
so the build writes nothing into the checkout, and installed with `--no-deps` into a fresh venv in a temp
dir that sees this environment's dependencies through a .pth line (no download of kopf & co.; the
checkout's own editable dops is not on that venv's path: the test checks `dops` imports from the venv).

Covered: the wheel carries the CRDs and the examples (dops/data); the installed `dops dev`, run where there
is no crds/ and no checkout, installs the packaged CRDs, prints its ready line with absolute paths (the
kubeconfig in the working directory, the examples inside the installed package), runs the packaged echo
example with the real kubectl (its worker is the installed dops), and on SIGINT exits 0 leaving no process.
Slow-ish (a wheel build, ~30 s on two busy cores); part of the default run.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from tests.helpers import eventually, find_binary
from tests.processes import Background, descendants, leftovers

REPO = Path(__file__).resolve().parent.parent.parent
READY = "Press Ctrl-C to stop."

pytestmark = pytest.mark.slow


def run(argv: list[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(argv, capture_output=True, text=True, timeout=180, **kwargs)  # type: ignore[call-overload]
    assert result.returncode == 0, f"{argv} exited {result.returncode}:\n{result.stdout}\n{result.stderr}"
    return result  # type: ignore[no-any-return]


def build_wheel(tmp: Path) -> Path:
    source = tmp / "src"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(REPO / name, source / name)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info")
    shutil.copytree(REPO / "operator", source / "operator", ignore=ignore)
    dist = tmp / "dist"
    run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", str(dist), str(source)])
    (wheel,) = dist.glob("dops-*.whl")
    return wheel


def install(wheel: Path, venv: Path) -> Path:
    """A fresh venv with the wheel installed (no deps) and this environment's site-packages after its own."""
    run([sys.executable, "-m", "venv", "--without-pip", str(venv)])
    python = venv / "bin" / "python"
    run(
        [
            sys.executable,
            "-m",
            "pip",
            "--python",
            str(python),
            "install",
            "--quiet",
            "--no-deps",
            "--no-index",
            str(wheel),
        ]
    )
    purelib = Path(run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"]).stdout.strip())
    # A plain path line: these dependencies become importable, their .pth files (the editable dops) are not run.
    (purelib / "zz_dops_test_dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    return python


def test_installed_dops_dev_runs_outside_a_checkout(tmp_path: Path) -> None:
    """Issue 14 #2: the wheel's `dops dev`, started in an empty directory, installs its packaged CRDs, serves,
    runs the packaged echo example, and stops on SIGINT with exit 0 leaving no process behind."""
    wheel = build_wheel(tmp_path)
    venv = tmp_path / "venv"
    python = install(wheel, venv)
    where = run([str(python), "-c", "import dops; print(dops.__file__)"], cwd=tmp_path).stdout.strip()
    assert Path(where).is_relative_to(venv), f"dops imported from {where}, not from the installed wheel"

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("DOPS_") and k not in ("KUBECONFIG", "PYTHONPATH")}
    env["PYTHONUNBUFFERED"] = "1"
    dev = Background([str(venv / "bin" / "dops"), "dev"], cwd=elsewhere, env=env)
    seen: set[int] = set()
    try:
        dev.wait_for_line(READY, timeout=90)
        kubeconfig = dev.wait_for_line("export KUBECONFIG=", 1).split("=", 1)[1].strip()
        assert kubeconfig == str(elsewhere / ".dops" / "dev" / "kubeconfig"), dev.output
        examples = Path(dev.wait_for_line("kubectl apply -f ", 1).split("kubectl apply -f ", 1)[1].strip())
        assert examples.is_relative_to(venv), dev.output
        assert sorted(p.name for p in examples.glob("*.yaml")) == sorted(
            p.name for p in (REPO / "examples").glob("*.yaml")
        )

        kubectl = find_binary("kubectl")
        if kubectl is not None:  # the operation part needs the real kubectl; the start/stop part does not
            home = tmp_path / "home"
            kenv = {**env, "HOME": str(home), "KUBECONFIG": kubeconfig}
            base = [kubectl, "--cache-dir", str(home / ".kube" / "cache")]
            run([*base, "apply", "-f", str(examples / "echo.yaml")], env=kenv, cwd=elsewhere)

            def state() -> str:
                out = run([*base, "get", "dop", "example-echo", "-o", "json"], env=kenv)
                return str((json.loads(out.stdout).get("status") or {}).get("runState") or "")

            eventually(state, lambda s: s in ("completed", "failed"), timeout=60, interval=0.5, describe="echo done")
            assert state() == "completed", dev.output
        seen = descendants(dev.proc.pid)
        assert dev.interrupt() == 0, dev.output
        eventually(
            lambda: leftovers(dev.proc, seen), lambda left: left == set(), timeout=60, describe="no process left"
        )
    finally:
        dev.close(seen)
