"""The node agent (`python -m dops.emulator.node`) as the only node of the real upstream control plane.

The agent runs as a subprocess in its own process group with a `system:node:<name>` client
certificate issued by the cluster CA (so the Node authorizer and NodeRestriction judge it as they
judge a kubelet) and a kubelet serving certificate from the same CA (so the API server's log proxy
trusts it). Pods are scheduled by the real kube-scheduler (a nodeSelector pins them to the agent's
node), Jobs are run by the real Job controller, `kubectl logs` goes through the real API server's
proxy to the agent's kubelet API.

A node lost to SIGKILL is judged by the real node lifecycle controller too: that test runs on a
control plane of its own whose `--node-monitor-grace-period` is seconds instead of 50 s, so the node
goes `Ready=Unknown` and its pods `Ready=False` within the test's time.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml

from tests.helpers import CLI, eventually, find_binary
from tests.realcluster.launcher import ClusterError, RealCluster, cert_credentials, kubeconfig_document
from tests.realcluster.pki import ClusterPKI

REPO = Path(__file__).resolve().parents[2]
IMAGE = "dops.test/runner:1"
JSON = dict[str, Any]


# --------------------------------------------------------------------------------------------- helpers
@dataclass
class Agent:
    """One node agent subprocess (its own process group) and the node it plays."""

    name: str
    proc: subprocess.Popen[bytes]
    log: Path
    work_dir: Path

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def wait_stopped(self, timeout: float) -> int:
        """The exit code of a graceful stop already asked for; AssertionError with the agent's log and what it waits
        for (SIGUSR1, see dops.emulator.node) when it is still running after `timeout`."""
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.proc.pid, signal.SIGUSR1)
            with contextlib.suppress(AssertionError):
                eventually(
                    self.output,
                    lambda text: "--- task" in text or "most recent call first" in text,
                    timeout=10,
                    describe="the dump of its tasks (event loop) or threads (interpreter exit)",
                )
            raise AssertionError(
                f"node agent {self.name} still runs {timeout} s after SIGTERM:\n{self.output()}"
            ) from None

    def stop(self, grace: float = 20.0) -> None:
        """SIGTERM the group (a graceful node shutdown), SIGKILL what is left after `grace`."""
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(grace)
            except subprocess.TimeoutExpired:
                pass
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        self.proc.wait(5)


def start_agent(cluster: RealCluster, directory: Path, name: str, *extra: str) -> Agent:
    """Issue the node's certificates, write its kubeconfig, start the agent and wait until its Node is Ready."""
    directory.mkdir(parents=True, exist_ok=True)
    client, serving = ClusterPKI.load(cluster.pki_dir).issue_node(name)
    kubeconfig = directory / f"{name}.kubeconfig"
    document = kubeconfig_document(cluster.url, cluster.ca_file, f"system:node:{name}", cert_credentials(client))
    kubeconfig.write_text(yaml.safe_dump(document))
    kubeconfig.chmod(0o600)
    log = directory / f"{name}.log"
    work_dir = directory / f"{name}-work"
    command = [
        sys.executable,
        "-m",
        "dops.emulator.node",
        "--kubeconfig",
        str(kubeconfig),
        "--name",
        name,
        "--work-dir",
        str(work_dir),
        "--tls-cert-file",
        str(serving.cert),
        "--tls-private-key-file",
        str(serving.key),
        "--client-ca-file",
        str(cluster.ca_file),
        "--image-map",
        f"{IMAGE}=process",
        "--image-map",
        "dops.test/simulated:*=simulated",
        *extra,
    ]
    with log.open("wb") as out:
        proc = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, start_new_session=True, cwd=REPO)
    agent = Agent(name, proc, log, work_dir)
    session = cluster.admin_session()
    try:
        eventually(
            lambda: session.get(f"{cluster.url}/api/v1/nodes/{name}").json(),
            lambda node: node_ready(node) == "True" and proc.poll() is None,
            timeout=30,
            describe=f"node {name} Ready (agent log: {log})",
        )
    except BaseException:
        agent.stop()
        raise AssertionError(f"the node agent did not become ready:\n{agent.output()}") from None
    return agent


def node_ready(node: JSON) -> str | None:
    for condition in (node.get("status") or {}).get("conditions") or []:
        if condition.get("type") == "Ready":
            return str(condition.get("status"))
    return None


def process_alive(pid: int) -> bool:
    """True while `pid` runs (a zombie waiting for its new parent to reap it counts as dead)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False
    return state != "Z"


def pod(name: str, node: str, code: str, **spec: Any) -> JSON:
    """A pod pinned to `node` (through the scheduler: a nodeSelector) whose container runs `python -c code`."""
    container: JSON = {"name": "main", "image": IMAGE, "command": [sys.executable, "-c", code]}
    container.update(spec.pop("container", {}))
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name},
        "spec": {
            "restartPolicy": "Never",
            "nodeSelector": {"kubernetes.io/hostname": node},
            "containers": [container],
            **spec,
        },
    }


class Cluster:
    """The admin's view of the test namespace: create, read and wait for objects; run kubectl."""

    def __init__(self, cluster: RealCluster, namespace: str, kubectl: CLI) -> None:
        self.cluster = cluster
        self.namespace = namespace
        self.session = cluster.admin_session()
        self.kubectl_cli = kubectl

    def url(self, path: str) -> str:
        return f"{self.cluster.url}{path}"

    def create(self, collection: str, body: JSON) -> JSON:
        response = self.session.post(self.url(collection), json=body)
        assert response.status_code == 201, response.text
        result: JSON = response.json()
        return result

    def create_pod(self, body: JSON) -> JSON:
        return self.create(f"/api/v1/namespaces/{self.namespace}/pods", body)

    def get(self, path: str) -> JSON:
        response = self.session.get(self.url(path))
        response.raise_for_status()
        result: JSON = response.json()
        return result

    def pod(self, name: str) -> JSON:
        return self.get(f"/api/v1/namespaces/{self.namespace}/pods/{name}")

    def wait_pod(self, name: str, predicate: Any, timeout: float = 30, describe: str = "") -> JSON:
        result: JSON = eventually(lambda: self.pod(name), predicate, timeout=timeout, describe=describe or name)
        return result

    def wait_phase(self, name: str, phase: str, timeout: float = 30) -> JSON:
        return self.wait_pod(name, lambda p: p["status"].get("phase") == phase, timeout, f"pod {name} in phase {phase}")

    def kubectl(self, *args: str, check: bool = True, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return self.kubectl_cli.run("-n", self.namespace, *args, check=check, timeout=timeout)


def terminated(pod_obj: JSON) -> JSON:
    state: JSON = pod_obj["status"]["containerStatuses"][0]["state"]
    assert "terminated" in state, state
    result: JSON = state["terminated"]
    return result


# --------------------------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def agent(real_cluster: RealCluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Agent]:
    """The module's node: Lease renewed every second, ServiceAccount tokens refreshed every 2 s."""
    name = f"agent-{uuid.uuid4().hex[:6]}"
    directory = tmp_path_factory.mktemp("node-agent")
    node = start_agent(real_cluster, directory, name, "--renew-interval", "1", "--token-max-age", "2")
    try:
        yield node
    finally:
        node.stop()
        delete_node(real_cluster, name)


def delete_node(cluster: RealCluster, name: str) -> None:
    cluster.admin_session().delete(f"{cluster.url}/api/v1/nodes/{name}")


@pytest.fixture(scope="module")
def kubectl_cli(real_cluster: RealCluster, tmp_path_factory: pytest.TempPathFactory) -> CLI:
    binary = find_binary("kubectl")
    if binary is None:
        pytest.skip("kubectl binary not available: run `python scripts/fetch_clients.py` (make test does)")
    home = tmp_path_factory.mktemp("kubectl-home")
    return CLI(binary, real_cluster.kubeconfig, home, {})


@pytest.fixture(scope="module")
def ns(real_cluster: RealCluster, agent: Agent, kubectl_cli: CLI) -> Iterator[Cluster]:
    """A namespace of the module's own (its pods force-deleted at the end, then the namespace)."""
    view = open_namespace(real_cluster, kubectl_cli)
    try:
        yield view
    finally:
        view.session.delete(view.url(f"/api/v1/namespaces/{view.namespace}"))


def open_namespace(cluster: RealCluster, kubectl: CLI) -> Cluster:
    """A fresh namespace whose default ServiceAccount exists (admission rejects pods until it does)."""
    namespace = f"node-agent-{uuid.uuid4().hex[:6]}"
    view = Cluster(cluster, namespace, kubectl)
    view.create("/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}})
    eventually(
        lambda: view.session.get(view.url(f"/api/v1/namespaces/{namespace}/serviceaccounts/default")).status_code,
        lambda code: code == 200,
        timeout=30,
        describe="the default ServiceAccount",
    )
    return view


# --------------------------------------------------------------------------------------------- pods
def test_a_pod_succeeds_and_kubectl_logs_reads_it_through_the_api_server(ns: Cluster, agent: Agent) -> None:
    code = "import sys\nfor i in range(1, 6): print(f'line {i}')\nprint('to stderr', file=sys.stderr)"
    ns.create_pod(pod("hello", agent.name, code))
    done = ns.wait_phase("hello", "Succeeded")
    state = terminated(done)
    assert (state["exitCode"], state["reason"]) == (0, "Completed")
    assert done["spec"]["nodeName"] == agent.name
    assert done["status"]["hostIP"] == "127.0.0.1"
    ready = {c["type"]: c for c in done["status"]["conditions"]}
    assert (ready["Ready"]["status"], ready["Ready"].get("reason")) == ("False", "PodCompleted")

    lines = ns.kubectl("logs", "hello").stdout.splitlines()
    # stdout is a pipe, hence block-buffered: it reaches the log after stderr, as from a real container.
    assert sorted(lines) == [*(f"line {i}" for i in range(1, 6)), "to stderr"]
    assert ns.kubectl("logs", "hello", "--tail", "2").stdout.count("\n") == 2
    stamped = ns.kubectl("logs", "hello", "--timestamps", "--tail", "1").stdout
    assert stamped[:4].isdigit() and stamped[10] == "T" and "Z " in stamped, stamped
    assert ns.kubectl("logs", "hello", "--since", "1h").stdout.splitlines() == lines
    missing = ns.kubectl("logs", "hello", "--previous", check=False)
    assert missing.returncode != 0
    assert 'previous terminated container "main" in pod "hello" not found' in missing.stderr


def test_logs_follow_and_previous_across_a_restart(ns: Cluster, agent: Agent) -> None:
    code = (
        "import os, sys, time\n"
        "if not os.path.exists('ran'):\n"
        "    open('ran', 'w').close(); print('run 1', flush=True); sys.exit(3)\n"
        "print('run 2', flush=True); time.sleep(3); print('done', flush=True)\n"
    )
    ns.create_pod(pod("again", agent.name, code, restartPolicy="OnFailure"))
    ns.wait_pod(
        "again",
        lambda p: (
            (p["status"].get("containerStatuses") or [{}])[0].get("restartCount") == 1
            and "running" in p["status"]["containerStatuses"][0]["state"]
        ),
        describe="the second run of the container",
    )
    follower = ns.kubectl_cli.popen("-n", ns.namespace, "logs", "-f", "again")
    try:
        out, err = follower.communicate(timeout=30)
    finally:
        follower.kill()
    assert follower.returncode == 0, err
    assert out.splitlines() == ["run 2", "done"]  # -f ends when the container does
    assert ns.kubectl("logs", "again", "--previous").stdout == "run 1\n"
    done = ns.wait_phase("again", "Succeeded")
    status = done["status"]["containerStatuses"][0]
    assert status["lastState"]["terminated"]["exitCode"] == 3
    assert status["lastState"]["terminated"]["reason"] == "Error"


def test_a_failing_command_fails_the_pod_with_its_exit_code_and_message(ns: Cluster, agent: Agent) -> None:
    code = "import os, sys\nopen(os.environ['DOPS_TERMINATION_MESSAGE_PATH'], 'w').write('it broke')\nsys.exit(1)"
    ns.create_pod(pod("fails", agent.name, code))
    state = terminated(ns.wait_phase("fails", "Failed"))
    assert (state["exitCode"], state["reason"], state.get("message")) == (1, "Error", "it broke")


def test_a_command_that_does_not_exist_is_a_start_error_with_exit_code_128(ns: Cluster, agent: Agent) -> None:
    body = pod("nocmd", agent.name, "", container={"command": ["no-such-command-dops"]})
    ns.create_pod(body)
    state = terminated(ns.wait_phase("nocmd", "Failed"))
    assert (state["exitCode"], state["reason"]) == (128, "StartError")
    assert 'exec: "no-such-command-dops": executable file not found in $PATH' in state["message"]


def test_a_container_ignoring_sigterm_is_killed_after_the_grace_period(ns: Cluster, agent: Agent) -> None:
    code = (
        "import os, signal, time\n"
        "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
        "print(os.getpid(), flush=True)\n"
        "time.sleep(600)\n"
    )
    ns.create_pod(pod("stubborn", agent.name, code, terminationGracePeriodSeconds=3))
    ns.wait_pod("stubborn", lambda p: (p["status"].get("containerStatuses") or [{}])[0].get("ready") is True)
    pid = int(eventually(lambda: ns.kubectl("logs", "stubborn").stdout.strip(), str.isdigit, describe="its pid"))
    assert process_alive(pid)
    seen: list[JSON] = []
    watcher = threading.Thread(target=watch_pod, args=(ns, "stubborn", seen), daemon=True)
    watcher.start()
    time.sleep(0.5)  # the watch is open
    began = time.monotonic()
    ns.kubectl("delete", "pod", "stubborn", "--wait=true", timeout=60)
    elapsed = time.monotonic() - began
    watcher.join(10)
    assert 3.0 <= elapsed < 15.0, f"deleted after {elapsed:.1f}s with terminationGracePeriodSeconds=3"
    assert not process_alive(pid)
    last = [e["object"] for e in seen if e["type"] == "MODIFIED"][-1]
    state = terminated(last)
    assert (state["exitCode"], state["reason"]) == (137, "Error")  # SIGKILL, after SIGTERM was ignored
    assert seen[-1]["type"] == "DELETED"  # the agent removed it (DELETE, grace 0) once it was down


def watch_pod(ns: Cluster, name: str, seen: list[JSON]) -> None:
    params = {"watch": "true", "fieldSelector": f"metadata.name={name}", "timeoutSeconds": "60"}
    with ns.session.get(ns.url(f"/api/v1/namespaces/{ns.namespace}/pods"), params=params, stream=True) as response:
        for line in response.iter_lines():
            if line:
                event = json.loads(line)
                seen.append(event)
                if event["type"] == "DELETED":
                    return


def test_a_job_runs_to_complete_through_the_real_job_controller(ns: Cluster, agent: Agent) -> None:
    template = pod("unused", agent.name, "print('the job ran')")
    job = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": "job"},
        "spec": {"backoffLimit": 0, "template": {"spec": template["spec"]}},
    }
    ns.create(f"/apis/batch/v1/namespaces/{ns.namespace}/jobs", job)
    done = eventually(
        lambda: ns.get(f"/apis/batch/v1/namespaces/{ns.namespace}/jobs/job"),
        lambda j: any(c["type"] == "Complete" and c["status"] == "True" for c in j["status"].get("conditions") or []),
        timeout=60,
        describe="the Job Complete",
    )
    assert done["status"]["succeeded"] == 1
    assert ns.kubectl("logs", "job/job").stdout == "the job ran\n"


PROBE = """
import base64, json, os, ssl, time, urllib.error, urllib.request
directory = os.environ["DOPS_SERVICE_ACCOUNT_DIR"]
read = lambda name: open(os.path.join(directory, name)).read()
token, namespace = read("token"), read("namespace")
context = ssl.create_default_context(cafile=os.path.join(directory, "ca.crt"))
base = "https://%s:%s" % (os.environ["KUBERNETES_SERVICE_HOST"], os.environ["KUBERNETES_SERVICE_PORT"])
def call(path):
    request = urllib.request.Request(base + path, headers={"Authorization": "Bearer " + token})
    try:
        with urllib.request.urlopen(request, context=context) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code
claims = json.loads(base64.urlsafe_b64decode(token.split(".")[1] + "=="))
print(json.dumps({
    "namespace": namespace,
    "configmaps": call("/api/v1/namespaces/%s/configmaps" % namespace),
    "secrets": call("/api/v1/namespaces/%s/secrets" % namespace),
    "pod": claims["kubernetes.io"]["pod"]["name"],
    "sub": claims["sub"],
}), flush=True)
time.sleep(4)
print(json.dumps({"refreshed": read("token") != token}), flush=True)
"""


def test_the_projected_service_account_token_authenticates_the_pod(ns: Cluster, agent: Agent) -> None:
    rbac = f"/apis/rbac.authorization.k8s.io/v1/namespaces/{ns.namespace}"
    role: JSON = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "Role",
        "metadata": {"name": "read-configmaps"},
        "rules": [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["list"]}],
    }
    ns.create(f"{rbac}/roles", role)
    binding = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": {"name": "read-configmaps"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "read-configmaps"},
        "subjects": [{"kind": "ServiceAccount", "name": "default", "namespace": ns.namespace}],
    }
    ns.create(f"{rbac}/rolebindings", binding)
    ns.create_pod(pod("probe", agent.name, PROBE))
    done = ns.wait_phase("probe", "Succeeded")
    volume = [v for v in done["spec"]["volumes"] if v["name"].startswith("kube-api-access-")]
    assert volume, "the ServiceAccount admission plugin adds the projected token volume"
    first, second = [json.loads(line) for line in ns.kubectl("logs", "probe").stdout.splitlines()]
    assert first == {
        "namespace": ns.namespace,
        "configmaps": 200,  # the Role allows it
        "secrets": 403,  # RBAC forbids it
        "pod": "probe",  # a bound token: it dies with the pod
        "sub": f"system:serviceaccount:{ns.namespace}:default",
    }
    assert second == {"refreshed": True}  # --token-max-age 2: replaced while the pod ran


def test_the_node_is_registered_ready_with_a_renewed_lease(ns: Cluster, agent: Agent) -> None:
    node = ns.get(f"/api/v1/nodes/{agent.name}")
    status = node["status"]
    assert node_ready(node) == "True"
    assert {"type": "InternalIP", "address": "127.0.0.1"} in status["addresses"]
    assert {"type": "Hostname", "address": agent.name} in status["addresses"]
    assert status["daemonEndpoints"]["kubeletEndpoint"]["Port"] > 0
    assert int(status["capacity"]["cpu"]) == (os.cpu_count() or 1)
    assert node["metadata"]["labels"]["kubernetes.io/hostname"] == agent.name
    lease_path = f"/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/{agent.name}"
    lease = ns.get(lease_path)
    assert lease["spec"]["holderIdentity"] == agent.name
    assert lease["metadata"]["ownerReferences"][0]["uid"] == node["metadata"]["uid"]
    first = lease["spec"]["renewTime"]
    eventually(lambda: ns.get(lease_path)["spec"]["renewTime"], lambda renewed: renewed != first, timeout=10)


def test_the_node_identity_is_held_to_its_own_node(ns: Cluster, agent: Agent, tmp_path: Path) -> None:
    """NodeRestriction applies to the agent: its credentials cannot write another node's objects."""
    kubeconfig = next(agent.log.parent.glob(f"{agent.name}.kubeconfig"))
    as_node = CLI(ns.kubectl_cli.binary, kubeconfig, tmp_path, {})
    denied = as_node.run("label", "node", agent.name, "node-role.kubernetes.io/control-plane=", check=False)
    assert denied.returncode != 0 and "forbidden" in denied.stderr.lower(), denied.stderr
    other = as_node.run("get", "secrets", "-n", ns.namespace, check=False)
    assert other.returncode != 0 and "forbidden" in other.stderr.lower(), other.stderr


# --------------------------------------------------------------------------------------------- the agent's own end
# A silent node is marked `Ready=Unknown` after this long (the controller's default: 50 s), looked at every second.
NODE_MONITOR_GRACE = 6


@pytest.fixture(scope="module")
def lossy_cluster(real_cluster: RealCluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RealCluster]:
    """A control plane of its own whose node lifecycle controller gives up on a silent node within seconds.

    (A short grace period on the shared plane would make every other node of the session flap.)"""
    flags = (f"--node-monitor-grace-period={NODE_MONITOR_GRACE}s", "--node-monitor-period=1s")
    root = tmp_path_factory.mktemp("lossy-plane")
    try:
        cluster = RealCluster.start(real_cluster.bin_dir, root=root, extra_controller_manager_flags=flags)
    except ClusterError as exc:
        pytest.fail(f"real control plane: {exc}", pytrace=False)
    try:
        yield cluster
    finally:
        cluster.stop()


def test_an_agent_killed_with_sigkill_loses_its_processes_its_node_and_its_pods_readiness(
    lossy_cluster: RealCluster, kubectl_cli: CLI, tmp_path: Path
) -> None:
    """kill -9 of the agent: the watchdog kills the pod's process group (child included); the Lease is no
    longer renewed, so the real node lifecycle controller marks the Node `Ready=Unknown` (NodeStatusUnknown)
    and unschedulable, and the pod `Ready=False` (MarkPodsNotReady) with a NodeNotReady Event."""
    name = f"doomed-{uuid.uuid4().hex[:6]}"
    doomed = start_agent(lossy_cluster, tmp_path, name, "--renew-interval", "1")
    ns = open_namespace(lossy_cluster, kubectl_cli)
    pids_file = tmp_path / "pids"
    try:
        code = (
            "import os, subprocess, sys, time\n"
            "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(600)'])\n"
            f"open({str(pids_file)!r}, 'w').write(f'{{os.getpid()}} {{child.pid}}')\n"
            "time.sleep(600)\n"
        )
        ns.create_pod(pod("orphan", name, code))
        running = ns.wait_pod("orphan", lambda p: pod_condition(p, "Ready").get("status") == "True")
        pids = [int(w) for w in eventually(lambda: pids_file.read_text().split(), lambda w: len(w) == 2)]
        assert all(process_alive(pid) for pid in pids)
        node_path = f"/api/v1/nodes/{name}"
        assert node_ready(ns.get(node_path)) == "True"

        os.kill(doomed.proc.pid, signal.SIGKILL)
        doomed.proc.wait(10)
        eventually(lambda: [pid for pid in pids if process_alive(pid)], lambda alive: not alive, timeout=60)

        node = eventually(
            lambda: ns.get(node_path),
            lambda n: node_ready(n) == "Unknown",
            timeout=NODE_MONITOR_GRACE + 60,
            describe=f"node {name} Ready=Unknown",
        )
        ready = next(c for c in node["status"]["conditions"] if c["type"] == "Ready")
        assert (ready["reason"], ready["message"]) == ("NodeStatusUnknown", "Kubelet stopped posting node status.")
        # Unschedulable from now on; no NoExecute taint (no eviction): with every node of this plane lost, the
        # controller is in its full-disruption mode and evicts nothing (a cluster with a healthy node would).
        eventually(
            lambda: {(t["key"], t["effect"]) for t in ns.get(node_path)["spec"].get("taints") or []},
            lambda taints: ("node.kubernetes.io/unreachable", "NoSchedule") in taints,
            describe="the unreachable NoSchedule taint",
        )

        lost = ns.wait_pod(
            "orphan",
            lambda p: pod_condition(p, "Ready").get("status") == "False",
            timeout=30,
            describe="the pod marked not ready by the node lifecycle controller",
        )
        # What the controller writes (MarkPodsNotReady): only the Ready condition's status flips, its reason and
        # message stay the kubelet's (none on Ready=True) -- no NodeNotReady/NodeLost reason, no phase Unknown;
        # ContainersReady, the phase and the container state stay as the agent last reported them.
        before, after = pod_condition(running, "Ready"), pod_condition(lost, "Ready")
        assert (before.get("reason"), after.get("reason"), after.get("message")) == (None, None, None), after
        assert after["lastTransitionTime"] >= before["lastTransitionTime"]
        assert pod_condition(lost, "ContainersReady").get("status") == "True"
        assert lost["status"]["phase"] == "Running"
        assert lost["status"]["containerStatuses"][0]["ready"] is True
        assert "running" in lost["status"]["containerStatuses"][0]["state"]
        events = eventually(
            lambda: ns.get(f"/api/v1/namespaces/{ns.namespace}/events")["items"],
            lambda items: any(e["reason"] == "NodeNotReady" for e in items),
            describe="the NodeNotReady event on the pod",
        )
        event = next(e for e in events if e["reason"] == "NodeNotReady")
        assert (event["type"], event["message"], event["involvedObject"]["name"]) == (
            "Warning",
            "Node is not ready",
            "orphan",
        )
    finally:
        doomed.stop()
        force_delete(ns, "orphan")
        ns.session.delete(ns.url(f"/api/v1/namespaces/{ns.namespace}"))
        delete_node(lossy_cluster, name)


def pod_condition(pod_obj: JSON, kind: str) -> JSON:
    return next((c for c in pod_obj["status"].get("conditions") or [] if c["type"] == kind), {})


def test_a_graceful_stop_fails_the_pods_and_marks_the_node_not_ready(
    ns: Cluster, real_cluster: RealCluster, tmp_path: Path
) -> None:
    name = f"leaving-{uuid.uuid4().hex[:6]}"
    leaving = start_agent(real_cluster, tmp_path, name)
    try:
        ns.create_pod(pod("evicted", name, "import time\nprint('up', flush=True)\ntime.sleep(600)"))
        ns.wait_pod("evicted", lambda p: (p["status"].get("containerStatuses") or [{}])[0].get("ready") is True)
        os.killpg(leaving.proc.pid, signal.SIGTERM)
        assert leaving.wait_stopped(90) == 0, leaving.output()
        node = ns.get(f"/api/v1/nodes/{name}")
        assert node_ready(node) == "False"
        failed = ns.pod("evicted")
        assert failed["status"]["phase"] == "Failed"
        assert failed["status"]["reason"] == "Terminated"
        assert terminated(failed)["exitCode"] == 143  # SIGTERM
    finally:
        leaving.stop()
        force_delete(ns, "evicted")
        delete_node(real_cluster, name)


def force_delete(ns: Cluster, name: str) -> None:
    ns.session.delete(
        ns.url(f"/api/v1/namespaces/{ns.namespace}/pods/{name}"),
        json={"kind": "DeleteOptions", "gracePeriodSeconds": 0},
    )


def test_kubelet_api_refuses_clients_without_a_certificate(agent: Agent, real_cluster: RealCluster) -> None:
    node = real_cluster.admin_session().get(f"{real_cluster.url}/api/v1/nodes/{agent.name}").json()
    port = node["status"]["daemonEndpoints"]["kubeletEndpoint"]["Port"]
    session = requests.Session()
    session.trust_env = False
    session.verify = str(real_cluster.ca_file)
    assert session.get(f"https://127.0.0.1:{port}/pods").status_code == 401
    assert session.get(f"https://127.0.0.1:{port}/healthz").text.strip() == "ok"
    # A client certificate of a user RBAC does not allow nodes/proxy: 403 from the agent's SubjectAccessReview.
    user = ClusterPKI.load(real_cluster.pki_dir).issue("node-agent-nobody", "nobody")
    session.cert = (str(user.cert), str(user.key))
    assert session.get(f"https://127.0.0.1:{port}/pods").status_code == 403
    session.cert = (str(real_cluster.admin.cert), str(real_cluster.admin.key))
    assert session.get(f"https://127.0.0.1:{port}/pods").status_code == 200


# --------------------------------------------------------------------------------------------- any API server
def test_the_agent_runs_pods_for_the_embedded_api_server_too(tmp_path: Path) -> None:
    """Plain HTTP and a bearer token instead of TLS and a certificate; no scheduler (the pod names its node)."""
    from dops.emulator import EmbeddedServer, ServerSettings

    with EmbeddedServer.run_in_thread(ServerSettings()) as server:  # the API server alone: no embedded kubelet
        kubeconfig = server.write_kubeconfig(tmp_path / "kubeconfig")
        url = yaml.safe_load(kubeconfig.read_text())["clusters"][0]["cluster"]["server"]
        log = tmp_path / "agent.log"
        command = [sys.executable, "-m", "dops.emulator.node", "--kubeconfig", str(kubeconfig), "--name", "solo"]
        with log.open("wb") as out:
            proc = subprocess.Popen(
                [*command, "--image-map", f"{IMAGE}=process"],
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                cwd=REPO,
            )
        agent = Agent("solo", proc, log, tmp_path)
        session = requests.Session()
        session.trust_env = False
        try:
            eventually(lambda: session.get(f"{url}/api/v1/nodes/solo").json(), lambda n: node_ready(n) == "True")
            body = pod("solo-pod", "solo", "import os; print(os.environ['KUBERNETES_SERVICE_HOST'])")
            body["spec"]["nodeName"] = "solo"
            assert session.post(f"{url}/api/v1/namespaces/default/pods", json=body).status_code == 201
            done = eventually(
                lambda: session.get(f"{url}/api/v1/namespaces/default/pods/solo-pod").json(),
                lambda p: (p.get("status") or {}).get("phase") == "Succeeded",
                timeout=30,
            )
            assert terminated(done)["reason"] == "Completed"
            lease = session.get(f"{url}/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/solo")
            assert lease.json()["spec"]["holderIdentity"] == "solo"
        finally:
            agent.stop()
        assert agent.proc.returncode == 0, agent.output()
