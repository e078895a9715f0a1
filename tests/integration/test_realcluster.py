"""The real control plane launcher (tests/realcluster): configured like a real cluster, and no leftovers ever.

- two clusters run at once (parallel tests), each with TLS, client-certificate identities, RBAC enforced for a
  ServiceAccount token, PodSecurity admission and the controllers (default ServiceAccount, root CA ConfigMap);
- a port clash, a control plane that never gets ready, and Ctrl-C during `up` each give one clear line (log tails
  for the never-ready case) and leave no process and no temp dir behind;
- `python -m tests.realcluster up|status|down` as the README tells a user to run it.
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
import requests

from tests.conftest import real_plane_unavailable
from tests.helpers import eventually
from tests.realcluster.launcher import ClusterError, RealCluster

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def bin_dir() -> Path:
    reason = real_plane_unavailable()
    if reason:
        pytest.skip(f"real control plane skipped: {reason}")
    from scripts.build_k8s import build

    return build(quiet=True)


def processes_mentioning(text: str) -> list[str]:
    """Command lines of live processes that mention `text` (every component's flags name its root dir)."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) == os.getpid():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if text in cmdline and "pytest" not in cmdline:
            found.append(cmdline)
    return found


@pytest.fixture
def two_clusters(bin_dir: Path) -> Iterator[tuple[RealCluster, RealCluster]]:
    first = RealCluster.start(bin_dir)
    try:
        second = RealCluster.start(bin_dir)
    except BaseException:
        first.stop()
        raise
    try:
        yield first, second
    finally:
        first.stop()
        second.stop()


def test_two_clusters_run_at_once_configured_like_real_ones(two_clusters: tuple[RealCluster, RealCluster]) -> None:
    first, second = two_clusters
    assert first.url != second.url and first.root != second.root
    for cluster in (first, second):
        admin = cluster.admin_session()
        assert admin.get(f"{cluster.url}/readyz", timeout=10).text == "ok"
        # Anonymous requests are refused: TLS with client certificates is the way in.
        anonymous = requests.Session()
        anonymous.trust_env = False
        anonymous.verify = str(cluster.ca_file)
        assert anonymous.get(f"{cluster.url}/api/v1/namespaces/default/pods", timeout=10).status_code in (401, 403)
        # The controllers did their part: the default ServiceAccount and the root CA ConfigMap exist.
        root_ca = f"{cluster.url}/api/v1/namespaces/default/configmaps/kube-root-ca.crt"
        eventually(
            lambda url=root_ca, a=admin: a.get(url, timeout=10).status_code,  # type: ignore[misc]
            lambda code: code == 200,
            timeout=30,
            describe="kube-root-ca.crt published",
        )
        # RBAC is enforced: a ServiceAccount token (TokenRequest API, the cluster's own issuer) may not list pods.
        token = admin.post(
            f"{cluster.url}/api/v1/namespaces/default/serviceaccounts/default/token",
            json={"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": {"expirationSeconds": 600}},
            timeout=10,
        ).json()["status"]["token"]
        account = requests.Session()
        account.trust_env = False
        account.verify = str(cluster.ca_file)
        account.headers["Authorization"] = f"Bearer {token}"
        denied = account.get(f"{cluster.url}/api/v1/namespaces/default/pods", timeout=10)
        assert denied.status_code == 403 and "system:serviceaccount:default:default" in denied.json()["message"]
        # PodSecurity admission is on: a namespace labelled restricted refuses a privileged pod.
        admin.post(
            f"{cluster.url}/api/v1/namespaces",
            json={"metadata": {"name": "locked", "labels": {"pod-security.kubernetes.io/enforce": "restricted"}}},
            timeout=10,
        ).raise_for_status()
        privileged = {
            "metadata": {"name": "p"},
            "spec": {"containers": [{"name": "c", "image": "x", "securityContext": {"privileged": True}}]},
        }
        refused = admin.post(f"{cluster.url}/api/v1/namespaces/locked/pods", json=privileged, timeout=10)
        assert refused.status_code == 403 and "violates PodSecurity" in refused.json()["message"]
    roots = [first.root, second.root]
    first.stop()
    second.stop()
    for root in roots:
        assert not root.exists() and processes_mentioning(str(root)) == []


def test_a_port_clash_is_one_line_and_starts_nothing(bin_dir: Path, tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(ClusterError) as caught:
            RealCluster.start(bin_dir, root=tmp_path / "c", apiserver_port=port)
    assert str(caught.value) == f"port {port} on 127.0.0.1 is already in use: choose another or omit --port"
    assert processes_mentioning(str(tmp_path)) == []


def test_a_control_plane_that_never_gets_ready_shows_each_log_tail_and_leaves_nothing(
    bin_dir: Path, tmp_path: Path
) -> None:
    root = tmp_path / "never-ready"
    with pytest.raises(ClusterError) as caught:
        RealCluster.start(bin_dir, root=root, timeout=0.5)
    message = str(caught.value)
    first_line = message.splitlines()[0]
    assert first_line.startswith("the control plane was not ready in time (waiting for ")
    assert "--- last lines of etcd.log ---" in message
    assert processes_mentioning(str(root)) == []


def realcluster(*args: str, cwd: Path) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.Popen(
        [sys.executable, "-m", "tests.realcluster", *args],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


def test_cli_up_status_down_as_the_readme_says(bin_dir: Path, tmp_path: Path) -> None:
    """`python -m tests.realcluster up` (default --dir, relative to the cwd), then status, kubectl-ready, down."""
    up = realcluster("up", cwd=tmp_path)
    out, err = up.communicate(timeout=180)
    assert up.returncode == 0, err
    state_dir = tmp_path / ".dops" / "realcluster"
    assert f"export KUBECONFIG={state_dir / 'kubeconfig'}" in out
    described = json.loads((state_dir / "cluster.json").read_text())
    try:
        status = realcluster("status", cwd=tmp_path)
        assert status.communicate(timeout=30)[0].count(" up") == 4 and status.returncode == 0
    finally:
        down = realcluster("down", cwd=tmp_path)
        down_out, _ = down.communicate(timeout=60)
    assert down.returncode == 0 and "stopped the control plane" in down_out
    assert not state_dir.exists()
    for proc in described["processes"].values():
        assert not Path(f"/proc/{proc['pid']}").exists() or processes_mentioning(str(state_dir)) == []


def test_ctrl_c_during_up_is_one_line_and_leaves_nothing(bin_dir: Path, tmp_path: Path) -> None:
    up = realcluster("up", "--dir", "cluster", cwd=tmp_path)
    etcd_log = tmp_path / "cluster" / "logs" / "etcd.log"
    eventually(etcd_log.exists, timeout=60, describe="etcd started by `up`")
    time.sleep(0.2)
    try:
        os.killpg(up.pid, signal.SIGINT)
        _, err = up.communicate(timeout=60)
        assert up.returncode == 130
        assert err.strip().splitlines()[-1].startswith("realcluster: interrupted after ")
        eventually(lambda: processes_mentioning(str(tmp_path / "cluster")), lambda left: left == [], timeout=60)
    finally:
        if up.returncode == 0:  # the Ctrl-C did not land (this test fails): stop the cluster `up` left running
            realcluster("down", "--dir", "cluster", cwd=tmp_path).communicate(timeout=60)
