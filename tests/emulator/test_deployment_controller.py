"""The Deployment and ReplicaSet controllers: minimal, Recreate-style, with real-looking status.

Aspects covered:
- a Deployment gets a ReplicaSet `<name>-<pod-template-hash>` (hash label on selector and
  template, revision annotations, controller ownerReference) that creates `spec.replicas` pods;
- Deployment status replicas/updatedReplicas/readyReplicas/availableReplicas/
  unavailableReplicas/observedGeneration and the Available and Progressing conditions as pods
  become ready; `kubectl rollout status`, `kubectl wait --for=condition=available` and the
  `kubectl get deployments` columns;
- scaling up and down; a deleted pod is replaced;
- a template change rolls out Recreate-style: old pods go before new ones are created, a new
  ReplicaSet at revision 2, the old one scaled to 0;
- `kubectl delete deployment` cascades through the GC to ReplicaSets and pods;
- real `helm install --wait --wait-for-jobs` of a chart with a Deployment and a post-install hook Job
  returns once the Deployment is available and the Job Complete, and fails when the Job fails.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.builders import deployment
from tests.emulator.workloads import Cluster, condition, running_cluster
from tests.helpers import eventually

JSON = dict


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    with running_cluster(tmp_path_factory.mktemp("deployments")) as running:
        yield running


@pytest.fixture
def ns(cluster: Cluster) -> str:
    return cluster.namespace("deploy")


def deploy_path(ns: str, name: str = "") -> str:
    return f"/apis/apps/v1/namespaces/{ns}/deployments" + (f"/{name}" if name else "")


def rs_path(ns: str, name: str = "") -> str:
    return f"/apis/apps/v1/namespaces/{ns}/replicasets" + (f"/{name}" if name else "")


def app_pods(cluster: Cluster, ns: str, app: str, live_only: bool = True) -> list[JSON]:
    pods = cluster.items(cluster.pods_path(ns), f"app={app}")
    return [p for p in pods if not (live_only and p["metadata"].get("deletionTimestamp"))]


def wait_pods(cluster: Cluster, ns: str, app: str, count: int) -> list[JSON]:
    return eventually(
        lambda: app_pods(cluster, ns, app), lambda pods: len(pods) == count, describe=f"{count} pods of {app}"
    )


def wait_deployment(cluster: Cluster, ns: str, name: str, predicate: object, describe: str) -> JSON:
    return eventually(lambda: cluster.get(deploy_path(ns, name)), predicate, describe=describe)  # type: ignore[arg-type]


def make_ready(cluster: Cluster, pods: list[JSON]) -> None:
    for pod in pods:
        cluster.run_pod(pod)


def test_deployment_creates_replicaset_and_pods_and_reports_status(cluster: Cluster, ns: str) -> None:
    """A Deployment → ReplicaSet → pods; status and conditions follow the pods' readiness."""
    created = cluster.create(deploy_path(ns), deployment("web", ns, replicas=2))
    pods = wait_pods(cluster, ns, "web", 2)
    (rs,) = cluster.items(rs_path(ns))
    hash_value = rs["metadata"]["labels"]["pod-template-hash"]
    assert rs["metadata"]["name"] == f"web-{hash_value}"
    assert rs["metadata"]["ownerReferences"] == [
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "name": "web",
            "uid": created["metadata"]["uid"],
            "controller": True,
            "blockOwnerDeletion": True,
        }
    ]
    assert rs["metadata"]["annotations"]["deployment.kubernetes.io/revision"] == "1"
    assert rs["metadata"]["annotations"]["deployment.kubernetes.io/desired-replicas"] == "2"
    assert rs["spec"]["selector"]["matchLabels"] == {"app": "web", "pod-template-hash": hash_value}
    assert rs["spec"]["template"]["metadata"]["labels"] == {"app": "web", "pod-template-hash": hash_value}
    assert rs["spec"]["replicas"] == 2
    for pod in pods:
        assert pod["metadata"]["generateName"] == f"web-{hash_value}-"
        assert pod["metadata"]["ownerReferences"][0]["kind"] == "ReplicaSet"
        assert pod["metadata"]["ownerReferences"][0]["uid"] == rs["metadata"]["uid"]
        assert pod["metadata"]["labels"] == {"app": "web", "pod-template-hash": hash_value}

    pending = wait_deployment(
        cluster, ns, "web", lambda d: d.get("status", {}).get("unavailableReplicas") == 2, "unavailable=2"
    )
    status = pending["status"]
    assert (status["replicas"], status["updatedReplicas"], status["observedGeneration"]) == (2, 2, 1)
    assert "readyReplicas" not in status and "availableReplicas" not in status
    available = condition(pending, "Available")
    assert available is not None
    assert (available["status"], available["reason"], available["message"]) == (
        "False",
        "MinimumReplicasUnavailable",
        "Deployment does not have minimum availability.",
    )
    progressing = condition(pending, "Progressing")
    assert progressing is not None and progressing["status"] == "True"
    assert progressing["reason"] in ("NewReplicaSetCreated", "ReplicaSetUpdated")
    assert pending["metadata"]["annotations"]["deployment.kubernetes.io/revision"] == "1"

    make_ready(cluster, pods)
    ready = wait_deployment(cluster, ns, "web", lambda d: d["status"].get("availableReplicas") == 2, "available=2")
    status = ready["status"]
    assert (status["readyReplicas"], status["replicas"], status["updatedReplicas"]) == (2, 2, 2)
    assert "unavailableReplicas" not in status
    available = condition(ready, "Available")
    progressing = condition(ready, "Progressing")
    assert available is not None and progressing is not None
    assert (available["status"], available["reason"], available["message"]) == (
        "True",
        "MinimumReplicasAvailable",
        "Deployment has minimum availability.",
    )
    assert (progressing["status"], progressing["reason"], progressing["message"]) == (
        "True",
        "NewReplicaSetAvailable",
        f'ReplicaSet "web-{hash_value}" has successfully progressed.',
    )
    rs_status = cluster.get(rs_path(ns, rs["metadata"]["name"]))["status"]
    assert rs_status == {
        "replicas": 2,
        "fullyLabeledReplicas": 2,
        "readyReplicas": 2,
        "availableReplicas": 2,
        "observedGeneration": 1,
    }

    kubectl = cluster.kubectl()
    rollout = kubectl.run("rollout", "status", "deployment/web", "-n", ns, "--timeout=10s")
    assert 'deployment "web" successfully rolled out' in rollout.stdout
    kubectl.run("wait", "-n", ns, "--for=condition=available", "deployment/web", "--timeout=10s")
    table = kubectl.run("get", "deployments", "-n", ns).stdout.splitlines()
    assert table[0].split() == ["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"]
    assert table[1].split()[:4] == ["web", "2/2", "2", "2"]


def test_scaling_and_pod_replacement(cluster: Cluster, ns: str) -> None:
    """spec.replicas changes scale the ReplicaSet; a deleted pod is replaced."""
    cluster.create(deploy_path(ns), deployment("scale", ns, replicas=1))
    (pod,) = wait_pods(cluster, ns, "scale", 1)
    cluster.patch(deploy_path(ns, "scale"), {"spec": {"replicas": 3}})
    pods = wait_pods(cluster, ns, "scale", 3)
    make_ready(cluster, pods)
    wait_deployment(cluster, ns, "scale", lambda d: d["status"].get("availableReplicas") == 3, "available=3")
    cluster.patch(deploy_path(ns, "scale"), {"spec": {"replicas": 1}})
    wait_pods(cluster, ns, "scale", 1)
    (rs,) = cluster.items(rs_path(ns))
    assert rs["spec"]["replicas"] == 1
    (survivor,) = app_pods(cluster, ns, "scale")
    cluster.delete(cluster.pods_path(ns, survivor["metadata"]["name"]))
    replacement = eventually(
        lambda: app_pods(cluster, ns, "scale"),
        lambda ps: len(ps) == 1 and ps[0]["metadata"]["name"] != survivor["metadata"]["name"],
        describe="a replacement pod",
    )
    assert replacement[0]["metadata"]["ownerReferences"][0]["uid"] == rs["metadata"]["uid"]
    del pod


def test_template_change_recreates_pods(cluster: Cluster, ns: str) -> None:
    """A template change: old pods are deleted before new ones exist; a new ReplicaSet at revision 2."""
    cluster.create(deploy_path(ns), deployment("roll", ns, replicas=2))
    old_pods = wait_pods(cluster, ns, "roll", 2)
    make_ready(cluster, old_pods)
    wait_deployment(cluster, ns, "roll", lambda d: d["status"].get("availableReplicas") == 2, "available=2")
    (old_rs,) = cluster.items(rs_path(ns))
    with cluster.graceful(ns):
        patch = {"spec": {"template": {"spec": {"containers": [{"name": "main", "image": "busybox:1.37"}]}}}}
        cluster.patch(deploy_path(ns, "roll"), patch)
        # Recreate: the old pods are told to stop; while they terminate no new pod exists.
        eventually(
            lambda: app_pods(cluster, ns, "roll", live_only=False),
            lambda ps: len(ps) == 2 and all(p["metadata"].get("deletionTimestamp") for p in ps),
            describe="old pods terminating",
        )
        sets = eventually(lambda: cluster.items(rs_path(ns)), lambda s: len(s) == 1, describe="no new ReplicaSet yet")
        assert sets[0]["spec"]["replicas"] == 0
        for pod in old_pods:
            cluster.finish_pod(pod, 143)
            cluster.remove_pod(pod)
    new_pods = wait_pods(cluster, ns, "roll", 2)
    assert all(p["spec"]["containers"][0]["image"] == "busybox:1.37" for p in new_pods)
    sets = {rs["metadata"]["name"]: rs for rs in cluster.items(rs_path(ns))}
    assert len(sets) == 2
    new_rs = next(rs for name, rs in sets.items() if name != old_rs["metadata"]["name"])
    assert new_rs["metadata"]["annotations"]["deployment.kubernetes.io/revision"] == "2"
    assert sets[old_rs["metadata"]["name"]]["spec"]["replicas"] == 0
    make_ready(cluster, new_pods)
    done = wait_deployment(
        cluster,
        ns,
        "roll",
        lambda d: (
            (condition(d, "Progressing") or {}).get("reason") == "NewReplicaSetAvailable"
            and d["status"].get("availableReplicas") == 2
        ),
        "rolled out",
    )
    assert done["status"]["observedGeneration"] == 2
    assert done["status"]["updatedReplicas"] == 2
    assert done["metadata"]["annotations"]["deployment.kubernetes.io/revision"] == "2"
    assert (condition(done, "Progressing") or {}).get("message") == (
        f'ReplicaSet "{new_rs["metadata"]["name"]}" has successfully progressed.'
    )


def test_kubectl_delete_deployment_cascades(cluster: Cluster, ns: str) -> None:
    """S7: deleting a Deployment removes its ReplicaSets and their pods (GC, Background)."""
    cluster.create(deploy_path(ns), deployment("gone", ns, replicas=2))
    wait_pods(cluster, ns, "gone", 2)
    cluster.kubectl().run("delete", "deployment", "gone", "-n", ns)
    eventually(lambda: cluster.items(rs_path(ns)), lambda s: s == [], describe="ReplicaSets deleted")
    eventually(lambda: app_pods(cluster, ns, "gone", live_only=False), lambda p: p == [], describe="pods deleted")


CHART_DEPLOYMENT = """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ .Release.Name }}-app
spec:
  replicas: 1
  selector:
    matchLabels: {app: {{ .Release.Name }}-app}
  template:
    metadata:
      labels: {app: {{ .Release.Name }}-app}
    spec:
      containers:
      - name: main
        image: example.com/operator:1.0
"""
CHART_HOOK = """\
apiVersion: batch/v1
kind: Job
metadata:
  name: {{ .Release.Name }}-migrate
  annotations:
    helm.sh/hook: post-install
spec:
  backoffLimit: 0
  template:
    spec:
      restartPolicy: Never
      containers:
      - name: main
        image: example.com/operator:1.0
        command: [migrate]
"""


def write_chart(root: Path) -> Path:
    chart = root / "opchart"
    (chart / "templates").mkdir(parents=True)
    (chart / "Chart.yaml").write_text("apiVersion: v2\nname: opchart\nversion: 0.1.0\n")
    (chart / "templates" / "deployment.yaml").write_text(CHART_DEPLOYMENT)
    (chart / "templates" / "hook.yaml").write_text(CHART_HOOK)
    return chart


@pytest.mark.parametrize("hook_exit", [0, 1], ids=["hook-succeeds", "hook-fails"])
def test_helm_install_wait_for_deployment_and_hook_job(
    cluster: Cluster, ns: str, tmp_path: Path, hook_exit: int
) -> None:
    """Statement 63 (controller half): `helm install --wait --wait-for-jobs` returns once the Deployment is
    available and the hook Job Complete; with a failing hook Job it fails."""
    chart = write_chart(tmp_path)
    helm = cluster.helm()
    process = helm.popen("install", "rel", str(chart), "-n", ns, "--wait", "--wait-for-jobs", "--timeout", "60s")
    try:
        (pod,) = wait_pods(cluster, ns, "rel-app", 1)
        # Helm waits: the Deployment is not available yet.
        assert process.poll() is None
        cluster.run_pod(pod)
        wait_deployment(cluster, ns, "rel-app", lambda d: d["status"].get("availableReplicas") == 1, "available")
        (hook_pod,) = cluster.wait_pods(ns, "rel-migrate", 1, timeout=30)
        cluster.finish_pod(hook_pod, hook_exit)
        stdout, stderr = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    if hook_exit == 0:
        assert process.returncode == 0, stderr
        assert "STATUS: deployed" in stdout
        assert "Complete" in [c["type"] for c in cluster.job(ns, "rel-migrate")["status"]["conditions"]]
    else:
        assert process.returncode != 0
        assert f"failed post-install: resource Job/{ns}/rel-migrate not ready. status: Failed" in stderr, stderr
