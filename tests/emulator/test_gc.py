"""The garbage collector (spec S7): ownerReference cascades, with real kubectl and plain HTTP.

Aspects covered:
- statement 39 with real kubectl: `kubectl delete job x` (Background) deletes the pods;
  `--cascade=foreground` keeps the Job (deletionTimestamp + `foregroundDeletion`) until its
  blocking pods are gone; `--cascade=orphan` leaves the pods without ownerReferences (and the
  Job controller drops their tracking finalizer);
- Background/Foreground/Orphan from the query string and from a DeleteOptions body;
- dependents with several owners lose only the dangling reference; non-blocking dependents do
  not hold a foreground deletion; a foreground chain Deployment → ReplicaSet → pods;
- ownership rules: a namespaced owner in another namespace is dangling; a cluster-scoped owner
  of namespaced dependents works; a cluster-scoped dependent naming a namespaced kind is never
  collected;
- owners disappearing by other paths: CRD deletion (its CRs go) and namespace deletion (the
  Namespace object owning a cluster-scoped dependent);
- the dependents index scales: hundreds of owners deleted at once.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from tests.builders import WidgetCRD, configmap, deployment, job, widget
from tests.emulator.workloads import JSON_PATCH, Cluster, running_cluster
from tests.helpers import eventually

JSON = dict
CRDS = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    with running_cluster(tmp_path_factory.mktemp("gc")) as running:
        yield running


@pytest.fixture
def ns(cluster: Cluster) -> str:
    return cluster.namespace("gc")


def cm_path(ns: str, name: str = "") -> str:
    return f"/api/v1/namespaces/{ns}/configmaps" + (f"/{name}" if name else "")


def ref(owner: JSON, block: bool | None = None, controller: bool | None = None) -> JSON:
    out = {
        "apiVersion": owner["apiVersion"],
        "kind": owner["kind"],
        "name": owner["metadata"]["name"],
        "uid": owner["metadata"]["uid"],
    }
    if controller is not None:
        out["controller"] = controller
    if block is not None:
        out["blockOwnerDeletion"] = block
    return out


def owned_configmap(cluster: Cluster, ns: str, name: str, *owners: JSON, block: bool | None = None) -> JSON:
    body = configmap(name, ns, k="v")
    body["metadata"]["ownerReferences"] = [ref(o, block=block) for o in owners]
    return cluster.create(cm_path(ns), body)


def gone(cluster: Cluster, path: str, timeout: float = 10) -> None:
    eventually(lambda: cluster.exists(path), lambda exists: not exists, timeout=timeout, describe=f"{path} gone")


def running_job(cluster: Cluster, ns: str, name: str, pods: int = 2) -> list[JSON]:
    cluster.create(cluster.job_path(ns), job(name, ns, command=["sleep", "100"], parallelism=pods, completions=pods))
    created = cluster.wait_pods(ns, name, pods)
    for pod in created:
        cluster.run_pod(pod)
    return created


# ---------------------------------------------------------------------------------------------- kubectl delete job


def test_kubectl_delete_job_background_deletes_pods(cluster: Cluster, ns: str) -> None:
    """S7 / statement 39: `kubectl delete job x` (Background) deletes the Job, then the GC deletes its pods."""
    running_job(cluster, ns, "bg")
    result = cluster.kubectl().run("delete", "job", "bg", "-n", ns)
    assert result.stdout.strip() == f'job.batch "bg" deleted from {ns} namespace'
    assert not cluster.exists(cluster.job_path(ns, "bg"))  # kubectl waited for the Job itself
    eventually(lambda: cluster.job_pods(ns, "bg"), lambda pods: pods == [], describe="pods deleted by the GC")


def test_kubectl_delete_job_foreground_waits_for_blocking_pods(cluster: Cluster, ns: str) -> None:
    """S7 / statement 39: Foreground keeps the Job, with foregroundDeletion, until its pods are gone."""
    pods = running_job(cluster, ns, "fg")
    held = pods[0]
    # Something else (a finalizer) keeps one pod around for a while.
    cluster.patch(
        cluster.pods_path(ns, held["metadata"]["name"]),
        [{"op": "add", "path": "/metadata/finalizers/-", "value": "example.com/hold"}],
        JSON_PATCH,
    )
    cluster.kubectl().run("delete", "job", "fg", "-n", ns, "--cascade=foreground", "--wait=false")
    deleting = cluster.job(ns, "fg")
    assert deleting["metadata"]["deletionTimestamp"]
    assert "foregroundDeletion" in deleting["metadata"]["finalizers"]
    # The free pod goes; the held one stays (being deleted), and so does the Job.
    free = pods[1]["metadata"]["name"]
    gone(cluster, cluster.pods_path(ns, free))
    held_now = cluster.get(cluster.pods_path(ns, held["metadata"]["name"]))
    assert held_now["metadata"]["deletionTimestamp"]
    assert held_now["metadata"]["finalizers"] == ["example.com/hold"]  # the Job controller dropped its own
    assert cluster.exists(cluster.job_path(ns, "fg"))
    table = cluster.kubectl().run("get", "job", "fg", "-n", ns, "--no-headers").stdout.split()
    assert table[1] == "Terminating"
    cluster.patch(cluster.pods_path(ns, held["metadata"]["name"]), {"metadata": {"finalizers": None}})
    gone(cluster, cluster.pods_path(ns, held["metadata"]["name"]))
    gone(cluster, cluster.job_path(ns, "fg"))


def test_kubectl_delete_job_orphan_leaves_pods_unowned(cluster: Cluster, ns: str) -> None:
    """S7 / statement 39: Orphan removes the Job and strips the ownerReferences from its pods."""
    pods = running_job(cluster, ns, "orph")
    cluster.kubectl().run("delete", "job", "orph", "-n", ns, "--cascade=orphan")
    assert not cluster.exists(cluster.job_path(ns, "orph"))

    def orphaned() -> list[JSON]:
        return [cluster.get(cluster.pods_path(ns, p["metadata"]["name"])) for p in pods]

    left = eventually(
        orphaned,
        lambda ps: all(not p["metadata"].get("ownerReferences") and not p["metadata"].get("finalizers") for p in ps),
        describe="pods without ownerReferences and without the tracking finalizer",
    )
    assert all(not p["metadata"].get("deletionTimestamp") for p in left)
    assert all(p["metadata"]["labels"]["job-name"] == "orph" for p in left)


# ---------------------------------------------------------------------------------------------- generic owners


@pytest.mark.parametrize("via", ["query", "body"])
def test_propagation_policies_on_configmaps(cluster: Cluster, ns: str, via: str) -> None:
    """S7 / statement 40: Background, Foreground and Orphan from the query string or a DeleteOptions body."""

    def delete(name: str, policy: str) -> None:
        if via == "query":
            response = cluster.request("DELETE", cm_path(ns, name), params={"propagationPolicy": policy})
        else:
            body = {"kind": "DeleteOptions", "apiVersion": "v1", "propagationPolicy": policy}
            response = cluster.request("DELETE", cm_path(ns, name), json=body)
        assert response.status_code in (200, 202), response.text

    for policy in ("Background", "Foreground", "Orphan"):
        owner = cluster.create(cm_path(ns), configmap(f"owner-{policy.lower()}", ns))
        child = owned_configmap(cluster, ns, f"child-{policy.lower()}", owner, block=True)
        delete(owner["metadata"]["name"], policy)
        gone(cluster, cm_path(ns, owner["metadata"]["name"]))
        child_path = cm_path(ns, child["metadata"]["name"])
        if policy == "Orphan":
            kept = cluster.get(child_path)
            assert "ownerReferences" not in kept["metadata"]
        else:
            gone(cluster, child_path)


def test_foreground_is_not_blocked_by_non_blocking_dependents(cluster: Cluster, ns: str) -> None:
    """S7: only dependents with blockOwnerDeletion hold a foreground deletion; all dependents are deleted."""
    owner = cluster.create(cm_path(ns), configmap("fg-owner", ns))
    loose = configmap("loose", ns)
    loose["metadata"]["ownerReferences"] = [ref(owner, block=False)]
    loose["metadata"]["finalizers"] = ["example.com/hold"]
    cluster.create(cm_path(ns), loose)
    cluster.delete(cm_path(ns, "fg-owner"), propagationPolicy="Foreground")
    gone(cluster, cm_path(ns, "fg-owner"))
    held = cluster.get(cm_path(ns, "loose"))
    assert held["metadata"]["deletionTimestamp"]  # deleted too, held only by its own finalizer
    cluster.patch(cm_path(ns, "loose"), {"metadata": {"finalizers": None}})
    gone(cluster, cm_path(ns, "loose"))


def test_dependent_with_another_live_owner_loses_only_the_dangling_reference(cluster: Cluster, ns: str) -> None:
    """S7: a dependent is deleted only when no owner is left; otherwise the dead owner's reference is removed."""
    first = cluster.create(cm_path(ns), configmap("first", ns))
    second = cluster.create(cm_path(ns), configmap("second", ns))
    owned_configmap(cluster, ns, "shared", first, second)
    cluster.delete(cm_path(ns, "first"))
    shared = eventually(
        lambda: cluster.get(cm_path(ns, "shared")),
        lambda cm: len(cm["metadata"].get("ownerReferences", [])) == 1,
        describe="one ownerReference left",
    )
    assert shared["metadata"]["ownerReferences"][0]["uid"] == second["metadata"]["uid"]
    cluster.delete(cm_path(ns, "second"))
    gone(cluster, cm_path(ns, "shared"))


def test_owner_in_another_namespace_is_dangling(cluster: Cluster, ns: str) -> None:
    """S7: a namespaced owner must be in the dependent's namespace; a reference across namespaces is dangling."""
    other = cluster.namespace("gc-other")
    owner = cluster.create(cm_path(other), configmap("far-owner", other))
    owned_configmap(cluster, ns, "cross", owner)
    gone(cluster, cm_path(ns, "cross"))
    assert cluster.exists(cm_path(other, "far-owner"))


def test_cluster_scoped_owner_and_unresolvable_cluster_dependent(cluster: Cluster, ns: str) -> None:
    """S7: a cluster-scoped owner (ClusterRole) collects namespaced dependents; a cluster-scoped dependent
    naming a namespaced owner kind is unresolvable and never collected."""
    roles = "/apis/rbac.authorization.k8s.io/v1/clusterroles"
    owner_role = cluster.create(
        roles,
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "metadata": {"name": f"{ns}-owner"}},
    )
    owned_configmap(cluster, ns, "by-cluster-owner", owner_role)
    ns_owner = cluster.create(cm_path(ns), configmap("ns-owner", ns))
    unresolvable = cluster.create(
        roles,
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRole",
            "metadata": {"name": f"{ns}-unresolvable", "ownerReferences": [ref(ns_owner)]},
        },
    )
    cluster.delete(cm_path(ns, "ns-owner"))
    cluster.delete(f"{roles}/{ns}-owner")
    gone(cluster, cm_path(ns, "by-cluster-owner"))
    # Processed after the owner's deletion (the GC's queue is FIFO): the unresolvable one stays.
    sentinel_owner = cluster.create(cm_path(ns), configmap("sentinel-owner", ns))
    owned_configmap(cluster, ns, "sentinel", sentinel_owner)
    cluster.delete(cm_path(ns, "sentinel-owner"))
    gone(cluster, cm_path(ns, "sentinel"))
    kept = cluster.get(f"{roles}/{unresolvable['metadata']['name']}")
    assert kept["metadata"]["ownerReferences"][0]["uid"] == ns_owner["metadata"]["uid"]
    cluster.delete(f"{roles}/{unresolvable['metadata']['name']}")


def test_crd_deletion_collects_dependents_of_its_custom_resources(cluster: Cluster, ns: str) -> None:
    """S7/S11: deleting a CRD removes its CRs; their dependents are then collected."""
    crd = WidgetCRD(group="gc.example.com")
    cluster.create(CRDS, crd.build())
    path = f"/apis/gc.example.com/v1/namespaces/{ns}/widgets"
    body = widget("w1", ns)
    body["apiVersion"] = "gc.example.com/v1"
    owner = eventually(lambda: cluster.create(path, body), describe="the widget created once the CRD is served")
    owned_configmap(cluster, ns, "widget-child", owner)
    cluster.delete(f"{CRDS}/{crd.name}")
    gone(cluster, cm_path(ns, "widget-child"))


def test_namespace_deletion_collects_cluster_scoped_dependents(cluster: Cluster) -> None:
    """S7: when a Namespace disappears, a cluster-scoped object owned by it is collected."""
    name = cluster.namespace("gc-owned")
    owner = cluster.get(f"/api/v1/namespaces/{name}")
    roles = "/apis/rbac.authorization.k8s.io/v1/clusterroles"
    cluster.create(
        roles,
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRole",
            "metadata": {"name": f"{name}-role", "ownerReferences": [ref(owner)]},
        },
    )
    cluster.delete(f"/api/v1/namespaces/{name}")
    gone(cluster, f"/api/v1/namespaces/{name}")
    gone(cluster, f"{roles}/{name}-role")


def test_many_owners_deleted_at_once(cluster: Cluster, ns: str) -> None:
    """S7: the GC indexes dependents by owner uid, so a burst of 200 owner deletions is collected quickly."""
    api = cluster.server.api
    cm_type = cluster.server.call(lambda: api.type_for("", "v1", "configmaps"))

    def populate() -> None:
        from dops.emulator.apiserver import WriteOptions

        for i in range(200):
            owner = api.create(cm_type, ns, configmap(f"o{i}", ns, labels={"role": "owner"}), WriteOptions()).obj
            for j in range(2):
                child = configmap(f"o{i}-c{j}", ns)
                child["metadata"]["ownerReferences"] = [ref(owner)]
                api.create(cm_type, ns, child, WriteOptions())

    cluster.server.call(populate)
    assert len(cluster.items(cm_path(ns))) == 600
    started = time.monotonic()
    cluster.delete(cm_path(ns), labelSelector="role=owner")  # deletecollection of the 200 owners only
    eventually(lambda: cluster.items(cm_path(ns)), lambda items: items == [], describe="all 400 dependents collected")
    assert time.monotonic() - started < 5


def test_foreground_cascades_through_a_chain(cluster: Cluster, ns: str) -> None:
    """S7: Foreground deletion of a Deployment deletes its ReplicaSet in the foreground too (it has dependents),
    so the Deployment goes only after the pods and the ReplicaSet are gone."""
    deploys = f"/apis/apps/v1/namespaces/{ns}/deployments"
    cluster.create(deploys, deployment("chain", ns, replicas=2))
    pods = eventually(
        lambda: cluster.items(cluster.pods_path(ns), "app=chain"), lambda ps: len(ps) == 2, describe="2 pods"
    )
    held = pods[0]["metadata"]["name"]
    cluster.patch(cluster.pods_path(ns, held), {"metadata": {"finalizers": ["example.com/hold"]}})
    cluster.delete(f"{deploys}/chain", propagationPolicy="Foreground")
    (rs,) = eventually(
        lambda: cluster.items(f"/apis/apps/v1/namespaces/{ns}/replicasets"),
        lambda sets: len(sets) == 1 and "foregroundDeletion" in (sets[0]["metadata"].get("finalizers") or []),
        describe="the ReplicaSet deleted in the foreground",
    )
    gone(cluster, cluster.pods_path(ns, pods[1]["metadata"]["name"]))
    assert "foregroundDeletion" in cluster.get(f"{deploys}/chain")["metadata"]["finalizers"]
    cluster.patch(cluster.pods_path(ns, held), {"metadata": {"finalizers": None}})
    gone(cluster, f"/apis/apps/v1/namespaces/{ns}/replicasets/{rs['metadata']['name']}")
    gone(cluster, f"{deploys}/chain")
