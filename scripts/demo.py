"""`make demo`: run every example operation on the embedded default and show what happened.

Starts `dops dev` (embedded control plane + operator), applies examples/ with the real kubectl,
shows `kubectl get dops` until every example is terminal, prints one operation's result and one
failed operation's reason and log tail, then stops everything. Exits 0 only when every example
ended in its expected state (`@dops/examples/fail` → failed, every other example → completed).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parent.parent
TIMEOUT = 120.0


def expected_states() -> dict[str, str]:
    expected: dict[str, str] = {}
    for path in sorted((REPO / "examples").glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if isinstance(doc, dict) and doc.get("kind") == "DelegatedOperation":
                failing = doc["spec"]["operator"] == "@dops/examples/fail"
                expected[doc["metadata"]["name"]] = "failed" if failing else "completed"
    return expected


class Demo:
    def __init__(self, workdir: Path, kubectl: str) -> None:
        self.workdir = workdir
        self.kubeconfig = workdir / "kubeconfig"
        self.kubectl_binary = kubectl
        self.env = {**os.environ, "KUBECONFIG": str(self.kubeconfig), "HOME": str(workdir)}
        self.dev: subprocess.Popen[str] | None = None

    def step(self, text: str) -> None:
        print(f"\n› {text}", flush=True)

    def start(self) -> None:
        self.step("starting `dops dev` (embedded control plane + operator)")
        self.dev = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "dops",
                "dev",
                "--kubeconfig",
                str(self.kubeconfig),
                "--state-dir",
                str(self.workdir / "state"),
            ],
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env={**self.env, "PYTHONUNBUFFERED": "1"},
        )
        assert self.dev.stdout is not None
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            line = self.dev.stdout.readline()
            if not line:
                raise SystemExit(f"error: `dops dev` exited with {self.dev.wait()} before it was ready")
            print(f"  {line.rstrip()}", flush=True)
            if "Press Ctrl-C to stop." in line:
                return
        raise SystemExit("error: `dops dev` was not ready within 60 s")

    def kubectl(self, *args: str, check: bool = True) -> str:
        result = subprocess.run(
            [self.kubectl_binary, "--cache-dir", str(self.workdir / "kube-cache"), *args],
            capture_output=True,
            text=True,
            env=self.env,
            timeout=60,
        )
        if check and result.returncode != 0:
            raise SystemExit(f"error: kubectl {' '.join(args)} failed: {result.stderr.strip()}")
        return result.stdout

    def dops(self, *args: str) -> str:
        result = subprocess.run(
            [sys.executable, "-m", "dops", *args], capture_output=True, text=True, env=self.env, timeout=60
        )
        return (result.stdout + result.stderr).rstrip()

    def operations(self) -> dict[str, dict[str, Any]]:
        items = json.loads(self.kubectl("get", "dops", "-o", "json"))["items"]
        return {item["metadata"]["name"]: item for item in items}

    def stop(self) -> None:
        if self.dev is None or self.dev.poll() is not None:
            return
        self.step("stopping `dops dev`")
        self.dev.send_signal(signal.SIGTERM)
        try:
            self.dev.wait(30)
        except subprocess.TimeoutExpired:
            self.dev.kill()
            self.dev.wait(10)


def main() -> int:
    kubectl = (
        os.environ.get("KUBECTL")
        or subprocess.run(
            [sys.executable, str(REPO / "scripts" / "fetch_clients.py"), "--quiet"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        + "/kubectl"
    )
    expected = expected_states()
    with tempfile.TemporaryDirectory(prefix="dops-demo-") as tmp:
        demo = Demo(Path(tmp), kubectl)
        try:
            demo.start()
            demo.step("kubectl apply -f examples/")
            print(demo.kubectl("apply", "-f", str(REPO / "examples")).rstrip(), flush=True)
            demo.step("kubectl get dops (until every example is terminal)")
            deadline = time.monotonic() + TIMEOUT
            last = ""
            while True:
                table = demo.kubectl("get", "dops")
                if table != last:
                    print(table.rstrip() + "\n", flush=True)
                    last = table
                ops = demo.operations()
                states = {name: (ops.get(name, {}).get("status") or {}).get("runState") for name in expected}
                if all(state in ("completed", "failed") for state in states.values()):
                    break
                if time.monotonic() > deadline:
                    print(f"error: examples not terminal after {TIMEOUT:.0f}s: {states}", file=sys.stderr)
                    return 1
                time.sleep(1)
            completed = next((n for n, s in expected.items() if s == "completed" and states[n] == "completed"), None)
            if completed:
                demo.step(f"result of {completed}")
                print(json.dumps((ops[completed].get("status") or {}).get("result"), indent=2), flush=True)
            failed = next((n for n, s in expected.items() if s == "failed"), None)
            if failed:
                status = ops[failed].get("status") or {}
                demo.step(f"why {failed} failed")
                print((status.get("result") or {}).get("errorMessage") or status.get("runState"), flush=True)
                demo.step(f"dops logs {failed} (tail)")
                print("\n".join(demo.dops("logs", failed).splitlines()[-8:]), flush=True)
            wrong = {n: (states[n], want) for n, want in expected.items() if states[n] != want}
            if wrong:
                print(f"\nerror: unexpected final states (got, expected): {wrong}", file=sys.stderr)
                return 1
            print(f"\nall {len(expected)} examples ended as expected", flush=True)
            return 0
        finally:
            demo.stop()


if __name__ == "__main__":
    sys.exit(main())
