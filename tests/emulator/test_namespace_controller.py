"""Namespace lifecycle (spec S7): Terminating, contents deleted, then the namespace.

Aspects covered:
- `kubectl delete namespace` returns once the namespace is gone; every namespaced object in it
  (configmaps, secrets, Jobs and their pods, custom resources) is deleted;
- while it empties: `status.phase: Terminating`, creates inside it → 403 Forbidden with the real
  message, and the real status conditions (NamespaceContentRemaining,
  NamespaceFinalizersRemaining, …) naming what is left;
- content finalizers are respected: the namespace waits until they are removed;
- pods on a node terminate gracefully: the namespace waits for the kubelet to finish them;
- the namespace's own metadata.finalizers: `spec.finalizers` is emptied, the namespace stays
  until its last metadata finalizer is removed; other namespaces are untouched.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.builders import WidgetCRD, configmap, job, widget
from tests.emulator.workloads import Cluster, condition, running_cluster
from tests.helpers import eventually

JSON = dict
CRDS = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    with running_cluster(tmp_path_factory.mktemp("namespaces")) as running:
        crd = WidgetCRD(group="ns.example.com")
        running.create(CRDS, crd.build())
        eventually(
            lambda: running.get("/apis/ns.example.com/v1"),
            lambda doc: any(r["name"] == "widgets" for r in doc["resources"]),
            describe="widgets served",
        )
        yield running


def ns_path(name: str) -> str:
    return f"/api/v1/namespaces/{name}"


def cm_path(ns: str, name: str = "") -> str:
    return f"/api/v1/namespaces/{ns}/configmaps" + (f"/{name}" if name else "")


def widgets_path(ns: str, name: str = "") -> str:
    return f"/apis/ns.example.com/v1/namespaces/{ns}/widgets" + (f"/{name}" if name else "")


def gone(cluster: Cluster, path: str, timeout: float = 10) -> None:
    eventually(lambda: cluster.exists(path), lambda exists: not exists, timeout=timeout, describe=f"{path} gone")


def populate(cluster: Cluster, ns: str) -> None:
    cluster.create(cm_path(ns), configmap("settings", ns, a="1"))
    cluster.create(
        f"/api/v1/namespaces/{ns}/secrets",
        {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "token"}, "stringData": {"t": "x"}},
    )
    body = widget("w1", ns, size=1)
    body["apiVersion"] = "ns.example.com/v1"
    cluster.create(widgets_path(ns), body)
    cluster.create(cluster.job_path(ns), job("work", ns, command=["sleep", "100"]))
    (pod,) = cluster.wait_pods(ns, "work", 1)
    cluster.run_pod(pod)


def test_kubectl_delete_namespace_removes_all_content(cluster: Cluster) -> None:
    """S7: `kubectl delete namespace` empties the namespace (all kinds, CRs too) and returns once it is gone."""
    ns = cluster.namespace("ns")
    bystander = cluster.namespace("ns-keep")
    cluster.create(cm_path(bystander), configmap("stays", bystander))
    populate(cluster, ns)
    result = cluster.kubectl().run("delete", "namespace", ns, timeout=60)
    assert result.stdout.strip() == f'namespace "{ns}" deleted'
    assert not cluster.exists(ns_path(ns))
    # Everything that lived in it is gone: listing a deleted namespace returns nothing.
    for path in (cm_path(ns), f"/api/v1/namespaces/{ns}/secrets", widgets_path(ns), cluster.job_path(ns)):
        assert cluster.items(path) == []
    assert cluster.items(cluster.pods_path(ns)) == []
    assert cluster.exists(cm_path(bystander, "stays"))


def test_terminating_namespace_refuses_creates_and_reports_remaining_content(cluster: Cluster) -> None:
    """S7: a Terminating namespace answers creates with 403 and reports what is left and which finalizers hold it."""
    ns = cluster.namespace("ns-held")
    held = configmap("held", ns)
    held["metadata"]["finalizers"] = ["example.com/hold"]
    cluster.create(cm_path(ns), held)
    body = widget("wheld", ns)
    body["apiVersion"] = "ns.example.com/v1"
    body["metadata"]["finalizers"] = ["example.com/hold"]
    cluster.create(widgets_path(ns), body)
    cluster.create(cm_path(ns), configmap("free", ns))

    deleted = cluster.delete(ns_path(ns))
    assert deleted["status"]["phase"] == "Terminating" and deleted["metadata"]["deletionTimestamp"]
    response = cluster.request("POST", cm_path(ns), json=configmap("late", ns))
    assert response.status_code == 403
    status = response.json()
    assert status["reason"] == "Forbidden"
    assert status["message"] == (
        f'configmaps "late" is forbidden: unable to create new content in namespace {ns} because it is being terminated'
    )
    gone(cluster, cm_path(ns, "free"))

    def conditions_settled(obj: JSON) -> bool:
        remaining = condition(obj, "NamespaceContentRemaining")
        return remaining is not None and "configmaps." in remaining["message"] and "widgets." in remaining["message"]

    terminating = eventually(lambda: cluster.get(ns_path(ns)), conditions_settled, describe="content conditions")
    assert terminating["status"]["phase"] == "Terminating"
    remaining = condition(terminating, "NamespaceContentRemaining")
    finalizers = condition(terminating, "NamespaceFinalizersRemaining")
    content = condition(terminating, "NamespaceDeletionContentFailure")
    assert remaining is not None and finalizers is not None and content is not None
    assert (remaining["status"], remaining["reason"], remaining["message"]) == (
        "True",
        "SomeResourcesRemain",
        "Some resources are remaining: configmaps. has 1 resource instances, "
        "widgets.ns.example.com has 1 resource instances",
    )
    assert (finalizers["status"], finalizers["reason"], finalizers["message"]) == (
        "True",
        "SomeFinalizersRemain",
        "Some content in the namespace has finalizers remaining: example.com/hold in 2 resource instances",
    )
    assert (content["status"], content["reason"]) == ("False", "ContentDeleted")
    types = [c["type"] for c in terminating["status"]["conditions"]]
    assert types == [
        "NamespaceDeletionDiscoveryFailure",
        "NamespaceDeletionGroupVersionParsingFailure",
        "NamespaceDeletionContentFailure",
        "NamespaceContentRemaining",
        "NamespaceFinalizersRemaining",
    ]
    # The held objects are being deleted, not gone.
    assert cluster.get(cm_path(ns, "held"))["metadata"]["deletionTimestamp"]
    table = cluster.kubectl().run("get", "namespace", ns, "--no-headers").stdout.split()
    assert table[:2] == [ns, "Terminating"]

    cluster.patch(cm_path(ns, "held"), {"metadata": {"finalizers": None}})
    cluster.patch(widgets_path(ns, "wheld"), {"metadata": {"finalizers": None}})
    gone(cluster, ns_path(ns))


def test_namespace_waits_for_graceful_pod_termination(cluster: Cluster) -> None:
    """S7: pods on the node terminate gracefully; the namespace goes only after the kubelet removed them."""
    ns = cluster.namespace("ns-pods")
    with cluster.graceful(ns):
        cluster.create(cluster.job_path(ns), job("work", ns, command=["sleep", "100"]))
        (pod,) = cluster.wait_pods(ns, "work", 1)
        cluster.run_pod(pod)
        cluster.delete(ns_path(ns))
        terminating = eventually(
            lambda: cluster.get(cluster.pods_path(ns, pod["metadata"]["name"])),
            lambda p: bool(p["metadata"].get("deletionTimestamp")),
            describe="the pod terminating",
        )
        assert terminating["metadata"]["deletionGracePeriodSeconds"] == 30
        stuck = eventually(
            lambda: cluster.get(ns_path(ns)),
            lambda obj: "pods." in str((condition(obj, "NamespaceContentRemaining") or {}).get("message")),
            describe="pods reported as remaining",
        )
        assert stuck["status"]["phase"] == "Terminating"
        cluster.finish_pod(terminating, 143)
        cluster.remove_pod(terminating)
        gone(cluster, ns_path(ns))


def test_namespace_metadata_finalizers_hold_it_after_content_is_gone(cluster: Cluster) -> None:
    """S7: with its own metadata.finalizers the emptied namespace keeps spec.finalizers [] until they are removed."""
    ns = cluster.namespace("ns-fin")
    cluster.patch(ns_path(ns), {"metadata": {"finalizers": ["example.com/ns-hold"]}})
    cluster.create(cm_path(ns), configmap("doomed", ns))
    cluster.delete(ns_path(ns))
    gone(cluster, cm_path(ns, "doomed"))
    emptied = eventually(
        lambda: cluster.get(ns_path(ns)),
        lambda obj: not (obj.get("spec") or {}).get("finalizers"),
        describe="spec.finalizers emptied",
    )
    assert emptied["metadata"]["finalizers"] == ["example.com/ns-hold"]
    remaining = condition(emptied, "NamespaceContentRemaining")
    assert remaining is not None and (remaining["status"], remaining["reason"]) == ("False", "ContentRemoved")
    cluster.patch(ns_path(ns), {"metadata": {"finalizers": None}})
    gone(cluster, ns_path(ns))
