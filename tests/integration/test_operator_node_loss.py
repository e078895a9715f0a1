"""The operator's reaction to a lost node, end to end on the real control plane (issue 10, "a node agent killed -9").

Why here: the embedded control plane runs no node lifecycle controller (docs/GAPS.md), so only the real one shows
what a lost node does to a running worker pod, and only that is what the lost-pod rule (`PodLost`, docs/operator.md)
must recognise. The plane is the module's own: the real kube-controller-manager with a node-monitor grace period
of seconds instead of 50 s (a short grace on the session's shared plane would make its nodes flap), a healthy node
agent (`python -m dops.emulator.node`) for the module and a doomed one per test that runs the workers (with a
healthy node left the node lifecycle controller stays in its normal mode and taints the lost node `NoExecute`, as
in a cluster that lost one machine), the operator in this process (`run_operator`, admin credentials: its RBAC is
proven by tests/e2e and test_rbac_real) and the real worker (`python -m dops worker run`, the image map's process
rule) in the Job's pod, with the pod's projected ServiceAccount token.

- A node lost for good (its agent killed -9: the watchdog kills the workers with it, the Lease stops): the
  controller marks the Node `Ready=Unknown`, taints it `unreachable`, flips the pods' `Ready` to False (no reason,
  `ContainersReady` still True, phase still Running). One worker has the default 300 s toleration of that taint;
  the other tolerates it for 1 s (a target's podTemplate tolerations), so the taint eviction controller evicts it
  (`DisruptionTarget` DeletionByTaintManager, a deletionTimestamp), but nothing can end a pod on a lost node, and
  with the operator's podFailurePolicy the Job controller replaces only a Failed pod: no re-run. Both operations
  stay `running` until their pods have been marked not ready for `DOPS_LOST_POD_GRACE_SECONDS`, then fail
  `PodLost` (counted from the earliest evidence, also for the evicted pod) and their Jobs are stopped. A third
  worker, evicted too, whose target allows no disruption (`maxDisruptionRetries: 0`), fails `PodEvicted` at the
  eviction. Each worker ran once.
- The twins, a node back within the grace: (1) its agent restarted after the kill: the agent starts the worker
  afresh in the same pod (it re-adopts no process: docs/node-agent.md), which re-claims its own operation;
  (2) its agent frozen (SIGSTOP: a kubelet cut off from the API server) and thawed: the worker ran on, and the
  agent reports the node and the pod ready again (as a kubelet does, comparing with the API server's view). Either
  way the operation completes with one Job, one pod, the attempt unchanged and no disruption counted; the code
  ran twice in (1), once in (2).

Each test prints its timings (loss → node Unknown → pod not ready → operation failed or completed).
"""

from __future__ import annotations

import functools
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml

from dops.api.constants import CONDITION_SUCCEEDED, Reasons
from tests.helpers import eventually
from tests.integration.operator_env import OperatorThread, operator_settings, operator_thread
from tests.op_builders import delegation_target, operation
from tests.planes import RealPlane, install_crds
from tests.realcluster.launcher import (
    ClusterError,
    RealCluster,
    _die_with_parent,
    cert_credentials,
    kubeconfig_document,
)
from tests.realcluster.pki import ClusterPKI

REPO = Path(__file__).resolve().parents[2]
JSON = dict[str, Any]
IMAGE = "dops.test/node-loss-worker:1"  # the operator's worker image; the agents' image map runs this checkout's dops
NAMESPACE = "node-loss"
WORKER_SA = "dops-worker"
OPS = f"/apis/dops.io/v1alpha1/namespaces/{NAMESPACE}/delegatedoperations"
TARGETS = f"/apis/dops.io/v1alpha1/namespaces/{NAMESPACE}/delegationtargets"
# The node lifecycle controller marks a node whose Lease is not renewed for this long Ready=Unknown (its default:
# 50 s), checking every second; the agents renew every second.
NODE_MONITOR_GRACE = 6
# DOPS_LOST_POD_GRACE_SECONDS of this module's operator (default 120): long enough for a restarted agent to report
# again on a loaded machine (the twin), short enough for the test.
LOST_POD_GRACE = 15
UNREACHABLE = "node.kubernetes.io/unreachable"


# --------------------------------------------------------------------------------------------- the plane
@dataclass
class NodeAgent:
    """One node agent subprocess (its own process group, killed with this process) and the node it plays."""

    name: str
    command: list[str]
    log: Path
    proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                self.command,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=REPO,
                start_new_session=True,
                preexec_fn=_die_with_parent,
            )

    def kill(self) -> None:
        """kill -9 of the agent's process group: no goodbye, the Lease just stops (its watchdog ends the pods)."""
        assert self.proc is not None
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        """Stop it whatever state it is in (SIGTERM, SIGKILL after a grace), reaping the leader."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                pass
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        self.proc.wait(5)

    def output(self) -> str:
        return self.log.read_text(errors="replace")[-4000:] if self.log.exists() else "(no log)"


@dataclass
class NodeLossPlane:
    cluster: RealCluster
    root: Path
    session: requests.Session
    agents: list[NodeAgent] = field(default_factory=list)

    def url(self, path: str) -> str:
        return self.cluster.url + path

    def get(self, path: str) -> JSON:
        response = self.session.get(self.url(path), timeout=30)
        response.raise_for_status()
        result: JSON = response.json()
        return result

    def create(self, path: str, body: JSON) -> JSON:
        response = self.session.post(self.url(path), json=body, timeout=30)
        assert response.status_code in (200, 201), response.text
        result: JSON = response.json()
        return result

    def agent(self, name: str) -> NodeAgent:
        """Issue the node's certificates, start its agent and wait until its Node is Ready (also for a restart)."""
        directory = self.root / name
        directory.mkdir(exist_ok=True)
        client, serving = ClusterPKI.load(self.cluster.pki_dir).issue_node(name)
        kubeconfig = directory / "kubeconfig"
        identity = f"system:node:{name}"
        document = kubeconfig_document(self.cluster.url, self.cluster.ca_file, identity, cert_credentials(client))
        kubeconfig.write_text(yaml.safe_dump(document))
        kubeconfig.chmod(0o600)
        config = directory / "kubelet.yaml"
        rule = {
            "mode": "process",
            "command": [sys.executable, "-m", "dops"],  # the image's ENTRYPOINT; the Job gives the args
            "env": {"PYTHONPATH": os.pathsep.join([str(REPO / "operator"), str(REPO)]), "PYTHONUNBUFFERED": "1"},
        }
        config.write_text(yaml.safe_dump({"image_map": {IMAGE: rule}, "mode": "missing"}))
        command = [
            sys.executable, "-m", "dops.emulator.node",
            "--kubeconfig", str(kubeconfig),
            "--name", name,
            "--config", str(config),
            "--work-dir", str(directory / "work"),
            "--tls-cert-file", str(serving.cert),
            "--tls-private-key-file", str(serving.key),
            "--client-ca-file", str(self.cluster.ca_file),
            "--renew-interval", "1",
            "--status-update-interval", "1",
        ]  # fmt: skip
        agent = NodeAgent(name, command, directory / "agent.log")
        self.agents.append(agent)
        self.start(agent)
        return agent

    def start(self, agent: NodeAgent) -> None:
        agent.start()
        eventually(
            lambda: (agent.proc is not None and agent.proc.poll() is None) and node_ready(self.node(agent.name)),
            lambda ready: ready == "True",
            timeout=60,
            interval=0.2,
            describe=f"node {agent.name} Ready; agent log:\n{agent.output()}",
        )

    def node(self, name: str) -> JSON:
        return self.get(f"/api/v1/nodes/{name}")

    def op(self, name: str) -> JSON:
        return self.get(f"{OPS}/{name}")

    def jobs_of(self, name: str) -> list[JSON]:
        items = self.get(f"/apis/batch/v1/namespaces/{NAMESPACE}/jobs")["items"]
        return [j for j in items if any(r["name"] == name for r in j["metadata"].get("ownerReferences") or [])]

    def jobs_deleting(self, name: str) -> JSON:
        """{"deleting": the deletionTimestamp of each Job of operation `name`}."""
        return {"deleting": [j["metadata"].get("deletionTimestamp") for j in self.jobs_of(name)]}

    def pods_of(self, job: str) -> list[JSON]:
        query = f"?labelSelector=batch.kubernetes.io/job-name={job}"
        items: list[JSON] = self.get(f"/api/v1/namespaces/{NAMESPACE}/pods{query}")["items"]
        return items

    def force_delete_pods(self) -> None:
        """Pods left on a lost node never end by themselves: remove them (as an admin would after a node loss)."""
        for pod in self.get(f"/api/v1/namespaces/{NAMESPACE}/pods")["items"]:
            self.session.delete(
                self.url(f"/api/v1/namespaces/{NAMESPACE}/pods/{pod['metadata']['name']}"),
                json={"kind": "DeleteOptions", "gracePeriodSeconds": 0},
                timeout=30,
            )


def node_ready(node: JSON) -> str | None:
    return next((c["status"] for c in node["status"].get("conditions") or [] if c["type"] == "Ready"), None)


def condition(obj: JSON, kind: str) -> JSON:
    return next((c for c in (obj.get("status") or {}).get("conditions") or [] if c["type"] == kind), {})


@pytest.fixture(scope="module")
def lossy_plane(real_binaries: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[NodeLossPlane]:
    """The module's control plane (short node-monitor grace), the healthy node, the CRDs, the worker's namespace and
    ServiceAccount, and the operator (lost-pod grace LOST_POD_GRACE); everything stopped afterwards."""
    root = tmp_path_factory.mktemp("node-loss")
    flags = (f"--node-monitor-grace-period={NODE_MONITOR_GRACE}s", "--node-monitor-period=1s")
    try:
        cluster = RealCluster.start(real_binaries, root=root / "plane", extra_controller_manager_flags=flags)
    except ClusterError as exc:
        pytest.fail(f"real control plane: {exc}", pytrace=False)
    # The operator's first log archive imports the official client's CoreV1Api (lazily built models: 3-9 s on a
    # loaded 2-core machine) before its first failure write; import it here, so that the timings are the node loss's.
    import kubernetes.client

    assert kubernetes.client.CoreV1Api is not None

    running: OperatorThread | None = None
    lossy = NodeLossPlane(cluster, root, cluster.admin_session())
    try:
        install_crds(RealPlane(cluster), sorted((REPO / "crds").glob("*.yaml")))
        lossy.agent("healthy")
        lossy.create("/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}})
        sa = {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": WORKER_SA}}
        lossy.create(f"/api/v1/namespaces/{NAMESPACE}/serviceaccounts", sa)
        # The worker's permissions are not what this module is about (test_rbac_real, the e2e suite prove the
        # chart's); bind the worker's account to everything in its own namespace.
        binding = {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": {"name": "worker-all"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "cluster-admin"},
            "subjects": [{"kind": "ServiceAccount", "name": WORKER_SA, "namespace": NAMESPACE}],
        }
        lossy.create(f"/apis/rbac.authorization.k8s.io/v1/namespaces/{NAMESPACE}/rolebindings", binding)
        settings = operator_settings(
            root / "archive",
            worker_image=IMAGE,
            worker_service_account=WORKER_SA,
            lost_pod_grace_seconds=LOST_POD_GRACE,
            reconcile_interval_seconds=5,
        )
        running = operator_thread(settings, cluster.kubeconfig, "dops-operator-node-loss")
        assert running.ready.wait(30) and not running.errors, running.errors
        yield lossy
    finally:
        if running is not None:
            running.stop()
        for agent in lossy.agents:
            agent.stop()
        lossy.session.close()
        cluster.stop()
    assert running is None or not running.errors, f"the operator crashed: {running.errors!r}"


# --------------------------------------------------------------------------------------------- scenarios
@dataclass
class Run:
    """One operation pinned to a node, with the files its worker (tests.worker_ops.logged_run) uses."""

    name: str
    runs: Path
    go: Path

    def count(self) -> int:
        return len(self.runs.read_text().splitlines()) if self.runs.exists() else 0


def start_on(
    plane: NodeLossPlane, node: str, directory: Path, name: str, tolerations: list[JSON] | None = None, **spec: Any
) -> Run:
    """A target `name` pinned to `node` (more target `spec` fields as keywords) and one operation `name` on it (not
    waited for)."""
    template: JSON = {"nodeSelector": {"kubernetes.io/hostname": node}}
    if tolerations:
        template["tolerations"] = tolerations
    target = delegation_target(name, allowImportPaths=True, retries=0, podTemplate=template, **spec)
    plane.create(TARGETS, target)
    directory.mkdir(parents=True, exist_ok=True)
    run = Run(name, directory / "runs", directory / "go")
    body = (
        operation(run.name)
        .operator("py:tests.worker_ops:logged_run")
        .target(name)
        .params(runs=str(run.runs), go=str(run.go))
        .build()
    )
    plane.create(OPS, body)
    return run


def wait_running(plane: NodeLossPlane, run: Run) -> JSON:
    """The operation once its worker runs (claimed: `running`)."""
    eventually(run.count, lambda n: n == 1, timeout=90, interval=0.2, describe=f"the worker of {run.name} running")
    op = plane.op(run.name)
    assert op["status"]["runState"] == "running", op["status"]
    return op


def timed(probe: Callable[[], JSON], predicate: Callable[[JSON], bool], timeout: float, describe: str) -> JSON:
    return eventually(probe, predicate, timeout=timeout, interval=0.2, describe=describe)


def doomed_name(kind: str) -> str:
    return f"{kind}-{uuid.uuid4().hex[:5]}"


def test_a_node_lost_for_good_fails_its_operations_pod_lost(lossy_plane: NodeLossPlane, tmp_path: Path) -> None:
    """Three operations run on the doomed node: `stays` with the default 300 s toleration of the unreachable taint
    (the pod is only marked not ready), `evicted` tolerating it for 1 s (the taint eviction controller evicts it
    soon after the node is lost), and `once` like `evicted` with maxDisruptionRetries 0. `once` fails PodEvicted at
    the eviction; the other two fail PodLost once marked not ready for the grace; none is run again:
    the evicted pod cannot end on the lost node (it stays Terminating, still "running") and the Job controller
    replaces only a Failed pod (podFailurePolicy ⇒ podReplacementPolicy Failed)."""
    doomed = lossy_plane.agent(doomed_name("lost"))
    toleration = {"key": UNREACHABLE, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 1}
    stays = start_on(lossy_plane, doomed.name, tmp_path / "stays", "stays")
    evicted = start_on(lossy_plane, doomed.name, tmp_path / "evicted", "evicted", tolerations=[toleration])
    once = start_on(
        lossy_plane, doomed.name, tmp_path / "once", "once", tolerations=[toleration], maxDisruptionRetries=0
    )
    jobs = {run.name: wait_running(lossy_plane, run)["status"]["jobName"] for run in (stays, evicted, once)}
    lost_at = time.monotonic()
    doomed.kill()

    timed(lambda: lossy_plane.node(doomed.name), lambda n: node_ready(n) == "Unknown", 60, "the node Ready=Unknown")
    unknown_at = time.monotonic()
    timed(
        lambda: {
            "taints": [(t["key"], t["effect"]) for t in lossy_plane.node(doomed.name)["spec"].get("taints") or []]
        },
        lambda found: (UNREACHABLE, "NoExecute") in found["taints"],
        30,
        "the unreachable NoExecute taint (the controller's normal mode: a healthy node is left)",
    )
    marked = timed(
        lambda: lossy_plane.pods_of(jobs["stays"])[0],
        lambda p: condition(p, "Ready").get("status") == "False",
        30,
        "the pod marked not ready",
    )
    not_ready_at = time.monotonic()
    # What v1.35's controller writes, and what the lost-pod rule recognises: Ready=False without a reason,
    # ContainersReady and the phase as the agent last reported them.
    assert condition(marked, "Ready").get("reason") is None, condition(marked, "Ready")
    assert condition(marked, "ContainersReady")["status"] == "True"
    assert marked["status"]["phase"] == "Running"
    assert lossy_plane.op(stays.name)["status"]["runState"] == "running"  # within the grace: still running
    gone = timed(
        lambda: lossy_plane.pods_of(jobs["evicted"])[0],
        lambda p: (
            bool(p["metadata"].get("deletionTimestamp")) and condition(p, "DisruptionTarget").get("status") == "True"
        ),
        30,
        "the pod evicted by the taint eviction controller",
    )
    evicted_at = time.monotonic()
    assert condition(gone, "DisruptionTarget")["reason"] == "DeletionByTaintManager", condition(
        gone, "DisruptionTarget"
    )
    assert condition(gone, "Ready")["status"] == "False" and gone["status"]["phase"] == "Running", gone["status"]

    # maxDisruptionRetries: 0 (at most once): the operator fails it PodEvicted at the eviction, not PodLost after the
    # grace (the Job's own FailJob rule would need the pod to end, which it cannot on a lost node).
    failed = timed(
        functools.partial(lossy_plane.op, once.name),
        lambda o: o["status"]["runState"] == "failed",
        30,
        "the at-most-once operation failed",
    )
    once_failed_at = time.monotonic()
    succeeded = condition(failed, CONDITION_SUCCEEDED)
    assert succeeded["reason"] == Reasons.POD_EVICTED, succeeded
    assert "maxDisruptionRetries: 0" in succeeded["message"], succeeded
    timed(
        functools.partial(lossy_plane.jobs_deleting, once.name),
        lambda found: all(found["deleting"]),
        30,
        "the Job of the at-most-once operation stopped",
    )
    assert once.count() == 1

    failed_at = {}
    for run in (stays, evicted):
        failed = timed(
            functools.partial(lossy_plane.op, run.name),
            lambda o: o["status"]["runState"] == "failed",
            LOST_POD_GRACE + 60,
            f"{run.name} failed",
        )
        failed_at[run.name] = time.monotonic()
        succeeded = condition(failed, CONDITION_SUCCEEDED)
        assert succeeded["reason"] == Reasons.POD_LOST, succeeded
        # Lost since it was marked not ready (the earliest evidence), also the evicted one, whose deletionTimestamp
        # is its 30 s termination grace period ahead.
        assert "marked not ready" in succeeded["message"] and doomed.name in succeeded["message"], succeeded
        assert failed["status"].get("logUploadError"), failed["status"]  # its kubelet, gone, cannot serve the log
        # Its Job is stopped (deleted), the worker ran once and no pod replaced the lost one.
        job = jobs[run.name]
        timed(
            functools.partial(lossy_plane.jobs_deleting, run.name),
            lambda found: all(found["deleting"]),
            30,
            f"the Job of {run.name} stopped",
        )
        assert len(lossy_plane.pods_of(job)) == 1
        assert run.count() == 1
    assert min(failed_at.values()) - not_ready_at >= LOST_POD_GRACE - 2  # the grace was waited for (less the lag)
    assert lossy_plane.op(evicted.name)["status"].get("disruptions") == 1  # counted (maxDisruptionRetries: 3)
    print(
        f"\nnode lost for good: node Unknown after {unknown_at - lost_at:.1f} s, pod not ready after "
        f"{not_ready_at - lost_at:.1f} s, evicted after {evicted_at - lost_at:.1f} s; failed PodLost after "
        f"{failed_at['stays'] - lost_at:.1f} s (marked only) and {failed_at['evicted'] - lost_at:.1f} s (evicted); "
        f"the at-most-once one failed PodEvicted after {once_failed_at - lost_at:.1f} s "
        f"(node-monitor grace {NODE_MONITOR_GRACE} s, lost-pod grace {LOST_POD_GRACE} s)"
    )
    lossy_plane.force_delete_pods()


def finished_in_the_same_job_and_pod(lossy_plane: NodeLossPlane, run: Run, before: JSON, pod: JSON) -> JSON:
    """Let `run` finish; it completed in the attempt, Job and pod it had before the node went away (no disruption
    counted, no second Job or pod). Returns its status."""
    job = before["status"]["jobName"]
    run.go.write_text("go")
    done = timed(
        lambda: lossy_plane.op(run.name),
        lambda o: o["status"]["runState"] in ("completed", "failed"),
        60,
        "the operation finished",
    )
    status: JSON = done["status"]
    assert status["runState"] == "completed", condition(done, CONDITION_SUCCEEDED)
    assert status["attempt"] == before["status"]["attempt"] and status["jobName"] == job
    assert status["podName"] == pod["metadata"]["name"]
    assert not status.get("disruptions")
    assert [j["metadata"]["name"] for j in lossy_plane.jobs_of(run.name)] == [job]
    assert [p["metadata"]["uid"] for p in lossy_plane.pods_of(job)] == [pod["metadata"]["uid"]]
    return status


def test_a_node_back_within_the_grace_completes_the_operation_in_the_same_pod(
    lossy_plane: NodeLossPlane, tmp_path: Path
) -> None:
    """The twin: the node's agent is killed, the pod marked not ready, and the agent restarted before the lost-pod
    grace ends. The agent starts the worker afresh in the same pod, which re-claims its own operation (running for
    this pod) and completes it: one Job, one pod, the attempt unchanged, no disruption."""
    doomed = lossy_plane.agent(doomed_name("back"))
    run = start_on(lossy_plane, doomed.name, tmp_path, "back")
    before = wait_running(lossy_plane, run)
    job = before["status"]["jobName"]
    (pod,) = lossy_plane.pods_of(job)
    lost_at = time.monotonic()
    doomed.kill()
    timed(
        lambda: lossy_plane.pods_of(job)[0],
        lambda p: condition(p, "Ready").get("status") == "False",
        NODE_MONITOR_GRACE + 60,
        "the pod marked not ready",
    )
    not_ready_at = time.monotonic()
    lossy_plane.start(doomed)  # the same node, its agent restarted
    back_at = time.monotonic()
    eventually(run.count, lambda n: n == 2, timeout=60, interval=0.2, describe="the worker started afresh")
    timed(
        lambda: lossy_plane.pods_of(job)[0],
        lambda p: condition(p, "Ready").get("status") == "True",
        60,
        "the pod reported ready again",
    )
    ready_at = time.monotonic()
    assert ready_at - not_ready_at < LOST_POD_GRACE, "ready again within the grace (else the test proves nothing)"
    status = finished_in_the_same_job_and_pod(lossy_plane, run, before, pod)
    done_at = time.monotonic()
    assert status["result"]["result"] == {"runs": 2}  # the killed run and the one after the restart, in the same pod
    print(
        f"\nnode back within the grace: pod not ready after {not_ready_at - lost_at:.1f} s, agent back after "
        f"{back_at - lost_at:.1f} s, operation completed after {done_at - lost_at:.1f} s"
    )


def test_a_node_cut_off_within_the_grace_completes_the_operation_once(
    lossy_plane: NodeLossPlane, tmp_path: Path
) -> None:
    """The other twin: the node stops reporting (its agent frozen with SIGSTOP: a kubelet cut off from the API
    server) while the worker goes on. The pod is marked not ready; the node reports again within the grace (SIGCONT)
    and its kubelet reports the pod ready again; the operation completes, its code run once."""
    doomed = lossy_plane.agent(doomed_name("cut"))
    run = start_on(lossy_plane, doomed.name, tmp_path, "cut")
    before = wait_running(lossy_plane, run)
    job = before["status"]["jobName"]
    (pod,) = lossy_plane.pods_of(job)
    assert doomed.proc is not None
    cut_at = time.monotonic()
    os.killpg(doomed.proc.pid, signal.SIGSTOP)
    try:
        timed(
            lambda: lossy_plane.pods_of(job)[0],
            lambda p: condition(p, "Ready").get("status") == "False",
            NODE_MONITOR_GRACE + 60,
            "the pod marked not ready",
        )
        not_ready_at = time.monotonic()
    finally:
        os.killpg(doomed.proc.pid, signal.SIGCONT)
    timed(lambda: lossy_plane.node(doomed.name), lambda n: node_ready(n) == "True", 30, "the node Ready again")
    timed(
        lambda: lossy_plane.pods_of(job)[0],
        lambda p: condition(p, "Ready").get("status") == "True",
        LOST_POD_GRACE,
        "the pod reported ready again by its kubelet",
    )
    ready_at = time.monotonic()
    status = finished_in_the_same_job_and_pod(lossy_plane, run, before, pod)
    done_at = time.monotonic()
    assert status["result"]["result"] == {"runs": 1} and run.count() == 1  # the code ran once
    print(
        f"\nnode cut off within the grace: pod not ready after {not_ready_at - cut_at:.1f} s, ready again after "
        f"{ready_at - cut_at:.1f} s, operation completed after {done_at - cut_at:.1f} s"
    )
