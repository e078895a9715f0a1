"""The real-plane implementation of the e2e suite's cluster (tests/e2e/common.E2ECluster): the upstream control
plane built from source (tests/realcluster: etcd, kube-apiserver with Node,RBAC authorization and PodSecurity,
kube-controller-manager, kube-scheduler) with the process node agent (`python -m dops.emulator.node`) as its only
node. No Docker: this is the kind scenario on machines without a container runtime, part of the default run.

- `create`: starts the control plane (its controllers plus the PersistentVolume binder and protection controllers:
  the chart's default log archive is a PVC) and offers one hostPath PersistentVolume that the chart's PVC binds
  to — what kind's default StorageClass provisions there;
- `load_image(image)`: the node agent has no images, it has an image map. Loading an image (re)starts the agent with
  a rule mapping it to mode `process` with this checkout's dops as the image's entrypoint (tests/e2e/entrypoint.py;
  the Dockerfile's ENTRYPOINT is `dops`, the chart and the operator give only args). The agent runs with a
  `system:node:<name>` client certificate (Node authorizer, NodeRestriction) and a kubelet serving certificate from
  the cluster CA, so `kubectl logs` works through the API server;
- `delete`: stops the agent (a graceful node shutdown, SIGKILL after a grace) and the control plane, each by its
  process group. Both also die with the test process (parent-death signal; the agent's watchdog kills containers).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from tests.e2e.common import (
    IMAGE,
    REPO,
    E2ECluster,
    E2ECommandError,
    find_client,
    tail,
)
from tests.e2e.entrypoint import MOUNTS_ENV, PORTS_ENV
from tests.realcluster.launcher import (
    CONTROLLERS,
    ClusterError,
    RealCluster,
    _die_with_parent,
    cert_credentials,
    kubeconfig_document,
)
from tests.realcluster.pki import ClusterPKI

NODE_NAME = "dops-e2e-node"
LOG_VOLUME = "dops-e2e-logs"
# The chart's mount path of the log-archive volume (helm/dops/templates/deployment.yaml, DOPS_LOG_ARCHIVE).
ARCHIVE_MOUNT = "/var/lib/dops/logs"
# The launcher's controllers plus the PersistentVolume ones the chart's log PVC needs: the binder (the PVC binds to
# the PV `create` offers) and the protection controllers (they remove the `kubernetes.io/pvc-protection` and
# `kubernetes.io/pv-protection` finalizers the API server's admission adds; without them `helm uninstall` waits
# forever for the PVC). kube-controller-manager appends a repeated --controllers to the first.
EXTRA_CONTROLLERS = (
    "persistentvolume-binder-controller",
    "persistentvolumeclaim-protection-controller",
    "persistentvolume-protection-controller",
)
# The chart's fixed ports (values.yaml metrics.port, health.port; the dashboard's ui.port), given free host ports by
# the entrypoint.
PORT_VARIABLES = ("DOPS_METRICS_PORT", "DOPS_HEALTH_PORT", "DOPS_UI_PORT")
AGENT_READY_TIMEOUT = 60.0
AGENT_STOP_GRACE = 20.0


@dataclass(frozen=True)
class ClientBinaries:
    """kubectl and helm (absolute paths): all the real plane needs besides the control plane's binaries."""

    kubectl: str
    helm: str


def find_clients(env: Mapping[str, str] | None = None) -> tuple[ClientBinaries | None, str | None]:
    """(binaries, None), or (None, why not) when kubectl or helm cannot be found (KUBECTL/HELM, cache, PATH)."""
    env = os.environ if env is None else env
    kubectl, kubectl_problem = find_client("kubectl", env)
    helm, helm_problem = find_client("helm", env)
    if kubectl is None or helm is None:
        return None, "; ".join(p for p in (kubectl_problem, helm_problem) if p)
    return ClientBinaries(kubectl=kubectl, helm=helm), None


def image_rule(volume_dir: Path) -> dict[str, Any]:
    """The node agent's image-map rule for the test image: process mode, this checkout's dops as its entrypoint.

    The rule's env is the image's ENV (the pod's own env overrides it): the Dockerfile's PYTHONUNBUFFERED and
    PYTHONDONTWRITEBYTECODE, PYTHONPATH so that this checkout's operator/ (and the entrypoint) are imported, the
    bind address of dops' metrics and health servers (a pod's 0.0.0.0 is its own; here it would be the host's),
    and the entrypoint's sandbox: the log volume's mount and the ports to remap.
    """
    return {
        "mode": "process",
        "command": [sys.executable, "-m", "tests.e2e.entrypoint"],
        "env": {
            "PYTHONPATH": os.pathsep.join([str(REPO / "operator"), str(REPO)]),
            "PYTHONUNBUFFERED": "1",
            "PYTHONDONTWRITEBYTECODE": "1",
            "DOPS_BIND_ADDRESS": "127.0.0.1",
            MOUNTS_ENV: json.dumps({ARCHIVE_MOUNT: str(volume_dir)}),
            PORTS_ENV: ",".join(PORT_VARIABLES),
        },
    }


def agent_config(images: list[str], volume_dir: Path) -> dict[str, Any]:
    """The agent's --config: every loaded image maps to the rule above; anything else cannot be pulled."""
    return {"image_map": {image: image_rule(volume_dir) for image in images}, "mode": "missing"}


def persistent_volume(name: str, path: Path, size: str = "1Gi") -> dict[str, Any]:
    """A hostPath PV without a storage class: the chart's default PVC (no class; the cluster has no default class)
    binds to it, as it binds to what kind's default StorageClass provisions."""
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolume",
        "metadata": {"name": name},
        "spec": {
            "capacity": {"storage": size},
            "accessModes": ["ReadWriteOnce"],
            "persistentVolumeReclaimPolicy": "Retain",
            "storageClassName": "",
            "hostPath": {"path": str(path), "type": "DirectoryOrCreate"},
        },
    }


def node_ready(node: Mapping[str, Any]) -> bool:
    for cond in (node.get("status") or {}).get("conditions") or []:
        if cond.get("type") == "Ready":
            return bool(cond.get("status") == "True")
    return False


def stop_group(proc: subprocess.Popen[bytes], grace: float) -> None:
    """SIGTERM the process group of `proc`, SIGKILL what is left after `grace`, reap the leader."""
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        try:
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            pass
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    try:
        proc.wait(5)
    except subprocess.TimeoutExpired:
        pass


@dataclass
class RealPlaneCluster(E2ECluster):
    """The real control plane and one node agent, owned by the test session; everything lives in `workdir`."""

    name: str
    tools: ClientBinaries
    workdir: Path
    bin_dir: Path
    node_name: str = NODE_NAME
    control_plane: RealCluster | None = None
    agent: subprocess.Popen[bytes] | None = None
    images: list[str] = field(default_factory=list)
    controller_manager_flags: tuple[str, ...] = ()  # beyond the launcher's (e.g. the benchmark's --kube-api-qps)

    @property
    def volume_dir(self) -> Path:
        return self.workdir / "volumes" / LOG_VOLUME

    @property
    def agent_dir(self) -> Path:
        return self.workdir / "node"

    @property
    def agent_log(self) -> Path:
        return self.agent_dir / "agent.log"

    # -- lifecycle
    def create(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        flags = tuple(f"--controllers={name}" for name in EXTRA_CONTROLLERS if name not in CONTROLLERS)
        flags += self.controller_manager_flags
        try:
            self.control_plane = RealCluster.start(
                self.bin_dir, root=self.workdir / "control-plane", extra_controller_manager_flags=flags
            )
        except ClusterError as exc:
            raise E2ECommandError(f"the real control plane did not start: {exc}") from None
        shutil.copyfile(self.control_plane.kubeconfig, self.kubeconfig)
        self.kubeconfig.chmod(0o600)
        self.volume_dir.mkdir(parents=True, exist_ok=True)
        self.apply(persistent_volume(LOG_VOLUME, self.volume_dir))

    def load_image(self, image: str = IMAGE) -> None:
        """Make `image` runnable: (re)start the node agent with an image map that includes it."""
        if image not in self.images:
            self.images.append(image)
        self.start_node()

    def start_node(self) -> None:
        """(Re)start the node agent with the current image map and wait until its Node is Ready.

        Pods annotated `dops.emulator/simulate: "true"` run on it whatever their image (the benchmarks use that).
        """
        self._stop_agent()
        self._start_agent()

    def export_logs(self, directory: Path) -> None:
        """Copy the control plane's component logs and the node agent's log to `directory`."""
        directory.mkdir(parents=True, exist_ok=True)
        if self.control_plane is not None and self.control_plane.log_dir.is_dir():
            shutil.copytree(self.control_plane.log_dir, directory / "control-plane", dirs_exist_ok=True)
        if self.agent_log.exists():
            shutil.copyfile(self.agent_log, directory / "node-agent.log")

    def delete(self) -> None:
        """Stop the node agent (its containers go with it), then the control plane. Safe after a partial create."""
        try:
            self._stop_agent()
        finally:
            if self.control_plane is not None:
                self.control_plane.stop()
                self.control_plane = None

    # -- the node agent
    def _start_agent(self) -> None:
        assert self.control_plane is not None, "create() first"
        cluster = self.control_plane
        self.agent_dir.mkdir(parents=True, exist_ok=True)
        client, serving = ClusterPKI.load(cluster.pki_dir).issue_node(self.node_name)
        kubeconfig = self.agent_dir / "node.kubeconfig"
        document = kubeconfig_document(
            cluster.url, cluster.ca_file, f"system:node:{self.node_name}", cert_credentials(client)
        )
        kubeconfig.write_text(yaml.safe_dump(document))
        kubeconfig.chmod(0o600)
        config = self.agent_dir / "kubelet.yaml"
        config.write_text(yaml.safe_dump(agent_config(self.images, self.volume_dir)))
        command = [
            sys.executable, "-m", "dops.emulator.node",
            "--kubeconfig", str(kubeconfig),
            "--name", self.node_name,
            "--config", str(config),
            "--work-dir", str(self.agent_dir / "work"),
            "--tls-cert-file", str(serving.cert),
            "--tls-private-key-file", str(serving.key),
            "--client-ca-file", str(cluster.ca_file),
        ]  # fmt: skip
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO / "operator"), env.get("PYTHONPATH", "")) if p)
        with self.agent_log.open("ab") as out:
            self.agent = subprocess.Popen(
                command,
                env=env,  # this checkout's node agent, whatever the interpreter has installed
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=self.agent_dir,
                start_new_session=True,  # its own process group: _stop_agent ends it and what it started
                preexec_fn=_die_with_parent,
            )
        self._wait_node_ready()

    def _wait_node_ready(self) -> None:
        deadline = time.monotonic() + AGENT_READY_TIMEOUT
        while time.monotonic() < deadline:
            assert self.agent is not None
            if self.agent.poll() is not None:
                raise E2ECommandError(
                    f"the node agent exited with code {self.agent.returncode}:\n{self.agent_output()}"
                )
            found = self.kubectl("get", "node", self.node_name, "--output", "json", check=False, timeout=30)
            if found.returncode == 0 and node_ready(json.loads(found.stdout)):
                return
            time.sleep(0.5)
        raise E2ECommandError(
            f"node {self.node_name} was not Ready within {AGENT_READY_TIMEOUT:.0f}s:\n{self.agent_output()}"
        )

    def _stop_agent(self) -> None:
        if self.agent is not None:
            stop_group(self.agent, AGENT_STOP_GRACE)
            self.agent = None

    def agent_output(self, lines: int = 60) -> str:
        return tail(self.agent_log.read_text(errors="replace"), lines) if self.agent_log.exists() else "(no log)"

    # -- diagnostics
    def diagnose(self, namespace: str | None, resource: str | None = None) -> str:
        return f"{super().diagnose(namespace, resource)}\n--- node agent log\n{self.agent_output(40)}"


def control_plane_binaries() -> Path:
    """The control plane's bin directory: built (or reused) by scripts/build_k8s.py when Go is on PATH, else the
    cache it built earlier. tests/conftest.real_plane_unavailable decides beforehand whether either is possible."""
    from scripts.build_k8s import BuildError, build, cache_root, kubernetes_version

    if shutil.which("go") is None:
        return cache_root() / kubernetes_version() / "bin"
    try:
        return build(quiet=True)
    except BuildError as exc:
        raise E2ECommandError(f"the real control plane could not be built: {exc}") from None
