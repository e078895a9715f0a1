"""`python -m dops.emulator`: start-up line, kubeconfig, loopback binding, clean shutdown, bad arguments."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import requests
import yaml

from tests.helpers import CLI, find_binary


def start(tmp_path: Path, *extra: str) -> tuple[subprocess.Popen[str], str]:
    kubeconfig = tmp_path / "kubeconfig"
    proc = subprocess.Popen(
        [sys.executable, "-m", "dops.emulator", "--port", "0", "--kubeconfig", str(kubeconfig), *extra],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert line.startswith("dops emulator serving at http://127.0.0.1:"), line + proc.stderr.read()
    return proc, line.strip().rsplit(" ", 1)[-1]


def test_prints_url_writes_kubeconfig_and_stops_on_sigterm(tmp_path: Path) -> None:
    proc, url = start(tmp_path, "--controllers", "none")
    try:
        config = yaml.safe_load((tmp_path / "kubeconfig").read_text())
        assert config["clusters"][0]["cluster"]["server"] == url
        assert config["contexts"][0]["context"]["namespace"] == "default"
        assert requests.get(url + "/version", timeout=5).json()["gitVersion"].startswith("v1.35")
        kubectl = find_binary("kubectl")
        if kubectl:
            home = tmp_path / "home"
            home.mkdir()
            out = CLI(kubectl, tmp_path / "kubeconfig", home, {}).run("get", "namespaces", "-o", "name").stdout
            assert "namespace/default" in out.split()
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(10) == 0


def test_binds_loopback_only(tmp_path: Path) -> None:
    proc, url = start(tmp_path, "--controllers", "none")
    try:
        port = url.rsplit(":", 1)[-1]
        listening = Path("/proc/net/tcp").read_text().splitlines()[1:]
        local = [row.split()[1] for row in listening if row.split()[3] == "0A"]  # 0A = LISTEN
        ours = [addr for addr in local if int(addr.split(":")[1], 16) == int(port)]
        assert ours == ["0100007F:" + format(int(port), "04X")], ours
    finally:
        proc.terminate()
        proc.wait(10)


def test_unknown_controller_is_a_one_line_error(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "dops.emulator", "--controllers", "job,bogus"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 1
    assert (
        result.stderr.strip()
        == "error: unknown controllers: bogus (choose from namespace, gc, job, deployment, kubelet)"
    )
