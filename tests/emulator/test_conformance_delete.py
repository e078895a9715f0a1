"""Conformance: deletion and finalizers (API-surface spec §9, statements 37, 38, 40, 41; 39 needs the GC controller).

Covered:
- 37: DELETE of an object with finalizers → 200 with `deletionTimestamp` (+ `deletionGracePeriodSeconds: 0`), a MODIFIED
  event, the object still readable, a second DELETE a no-op; removing the last finalizer (JSON patch as kopf does it,
  merge patch) deletes it: DELETED event, then GET → 404. For a CR and a ConfigMap.
- 38: adding a finalizer to an object being deleted → 422 with the upstream Forbidden message; removing one is fine.
- 40: `propagationPolicy` honoured from the query string, a JSON DeleteOptions body and a protobuf DeleteOptions body
  (observable without the GC: Foreground/Orphan put the `foregroundDeletion`/`orphan` finalizer on the owner,
  Background removes it at once; read from a watch, since a real plane's garbage collector then finishes the
  deletion within moments), through raw HTTP, the kubernetes client and real `kubectl delete --cascade`.
- 41: real `kubectl delete widget w1` returns only after the object is gone, when another client removes the finalizer
  about 2 s later.
"""

from __future__ import annotations

import subprocess
import threading
import time
from collections.abc import Iterator
from typing import Any

import kubernetes
import pytest

from tests.builders import configmap, widget
from tests.emulator.kube_http import CM, JSON_PATCH, WIDGETS, Kube, WatchStream, summary
from tests.helpers import CLI
from tests.planes import Plane

JSON = dict[str, Any]
pytestmark = pytest.mark.both_planes
FINALIZER = "example.com/keep"


@pytest.fixture
def kube(plane: Plane) -> Iterator[Kube]:
    client = Kube(plane)
    client.install_crd()
    yield client
    client.close()


def with_finalizers(obj: JSON, *finalizers: str) -> JSON:
    obj["metadata"]["finalizers"] = list(finalizers)
    return obj


# ---------------------------------------------------------------------------------------------- 37


def test_delete_with_finalizer_marks_then_last_finalizer_removal_deletes(plane: Plane, kube: Kube) -> None:
    """S9 / statement 37: DELETE → 200, deletionTimestamp, MODIFIED, readable; no finalizers left → DELETED, 404."""
    created = kube.create(WIDGETS, with_finalizers(widget("w1", size=1), FINALIZER, "example.com/second"))
    with WatchStream(plane, WIDGETS, {"resourceVersion": created["metadata"]["resourceVersion"]}) as watch:
        response = kube.delete(f"{WIDGETS}/w1")
        assert response.status_code == 200
        marked = response.json()
        assert marked["kind"] == "Widget"
        assert marked["metadata"]["deletionTimestamp"].endswith("Z")
        assert marked["metadata"]["deletionGracePeriodSeconds"] == 0
        assert marked["metadata"]["finalizers"] == [FINALIZER, "example.com/second"]
        assert int(marked["metadata"]["resourceVersion"]) > int(created["metadata"]["resourceVersion"])
        event = watch.next()
        assert event["type"] == "MODIFIED"
        assert event["object"]["metadata"]["deletionTimestamp"] == marked["metadata"]["deletionTimestamp"]
        assert event["object"]["metadata"]["resourceVersion"] == marked["metadata"]["resourceVersion"]

        readable = kube.ok(kube.get(f"{WIDGETS}/w1"))
        assert readable["metadata"]["deletionTimestamp"] == marked["metadata"]["deletionTimestamp"]
        again = kube.ok(kube.delete(f"{WIDGETS}/w1"))  # a second DELETE changes nothing
        assert again["metadata"]["resourceVersion"] == marked["metadata"]["resourceVersion"]

        # kopf's way: compare-and-set on the RV, remove one finalizer; the object stays while one is left.
        rv = readable["metadata"]["resourceVersion"]
        patch = [
            {"op": "test", "path": "/metadata/resourceVersion", "value": rv},
            {"op": "remove", "path": "/metadata/finalizers/0"},
        ]
        one_left = kube.ok(kube.patch(f"{WIDGETS}/w1", patch, JSON_PATCH["Content-Type"]))
        assert one_left["metadata"]["finalizers"] == ["example.com/second"]
        kube.ok(kube.patch(f"{WIDGETS}/w1", {"metadata": {"finalizers": None}}))
        events = watch.take(2)
    assert summary(events) == [("MODIFIED", "w1"), ("DELETED", "w1")]
    assert int(events[1]["object"]["metadata"]["resourceVersion"]) > int(
        events[0]["object"]["metadata"]["resourceVersion"]
    )
    gone = kube.get(f"{WIDGETS}/w1")
    assert gone.status_code == 404 and gone.json()["reason"] == "NotFound"
    assert kube.ok(kube.get(WIDGETS))["items"] == []


def test_configmap_with_finalizer_is_kept_until_finalizer_removed(plane: Plane, kube: Kube) -> None:
    """S9 / statement 37: the same for a built-in kind; the delete answers 200 with the object, not a Status."""
    kube.create(CM, with_finalizers(configmap("c1", k="v"), FINALIZER))
    marked = kube.ok(kube.delete(f"{CM}/c1"))
    assert marked["kind"] == "ConfigMap" and marked["metadata"]["deletionTimestamp"]
    assert kube.ok(kube.get(f"{CM}/c1"))["data"] == {"k": "v"}
    with WatchStream(plane, CM, {"resourceVersion": marked["metadata"]["resourceVersion"]}) as watch:
        kube.ok(kube.patch(f"{CM}/c1", [{"op": "remove", "path": "/metadata/finalizers"}], JSON_PATCH["Content-Type"]))
        assert summary([watch.next()]) == [("DELETED", "c1")]
    assert kube.get(f"{CM}/c1").status_code == 404


# ---------------------------------------------------------------------------------------------- 38


def test_adding_a_finalizer_while_deleting_is_forbidden(kube: Kube) -> None:
    """S9 / statement 38: a new finalizer on an object being deleted → 422 Invalid (Forbidden); nothing changes."""
    kube.create(WIDGETS, with_finalizers(widget("w1", size=1), FINALIZER))
    marked = kube.ok(kube.delete(f"{WIDGETS}/w1"))
    for body, content_type in [
        ({"metadata": {"finalizers": [FINALIZER, "example.com/new"]}}, "application/merge-patch+json"),
        ([{"op": "add", "path": "/metadata/finalizers/-", "value": "example.com/new"}], JSON_PATCH["Content-Type"]),
    ]:
        response = kube.patch(f"{WIDGETS}/w1", body, content_type)
        assert response.status_code == 422, response.text
        status = response.json()
        assert (status["kind"], status["reason"], status["code"]) == ("Status", "Invalid", 422)
        assert "Forbidden: no new finalizers can be added if the object is being deleted" in status["message"]
        assert status["details"]["causes"][0]["field"] == "metadata.finalizers"
    current = kube.ok(kube.get(f"{WIDGETS}/w1"))
    assert current["metadata"]["finalizers"] == [FINALIZER]
    assert current["metadata"]["resourceVersion"] == marked["metadata"]["resourceVersion"]
    # Removing the existing one is always allowed, and completes the deletion.
    kube.ok(kube.patch(f"{WIDGETS}/w1", {"metadata": {"finalizers": []}}))
    assert kube.get(f"{WIDGETS}/w1").status_code == 404


# ---------------------------------------------------------------------------------------------- 40


def _varint(value: int) -> bytes:
    out = bytearray()
    while value >= 0x80:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _ld(number: int, payload: bytes | str) -> bytes:
    data = payload.encode() if isinstance(payload, str) else payload
    return _varint(number << 3 | 2) + _varint(len(data)) + data


def protobuf_delete_options(policy: str) -> bytes:
    """meta/v1 DeleteOptions{propagationPolicy} in the `k8s\\0` + runtime.Unknown envelope, as client-go writes it."""
    raw = _ld(4, policy)  # DeleteOptions.propagationPolicy = field 4
    return b"k8s\x00" + _ld(1, _ld(1, "v1") + _ld(2, "DeleteOptions")) + _ld(2, raw) + _ld(3, b"") + _ld(4, b"")


def _expect_policy(plane: Plane, response_obj: JSON, created: JSON, policy: str) -> None:
    """The DELETE's answer and the first change the delete made to the stored object (read from a watch resumed at
    the object's creation, so a garbage collector finishing the deletion moments later cannot hide it)."""
    name = created["metadata"]["name"]
    params = {"resourceVersion": created["metadata"]["resourceVersion"], "fieldSelector": f"metadata.name={name}"}
    with WatchStream(plane, CM, params) as watch:
        event = watch.next()
    if policy == "Background":
        assert event["type"] == "DELETED", f"{policy}: {name} should be gone at once, saw {event['type']}"
        return
    finalizer = {"Foreground": "foregroundDeletion", "Orphan": "orphan"}[policy]
    assert event["type"] == "MODIFIED", f"{policy}: {name} should be kept, saw {event['type']}"
    stored = event["object"]["metadata"]
    assert stored["deletionTimestamp"]
    assert stored["finalizers"] == [finalizer], f"{policy}: {stored}"
    assert response_obj["metadata"]["finalizers"] == [finalizer]
    assert response_obj["metadata"]["resourceVersion"] == stored["resourceVersion"]


@pytest.mark.parametrize("policy", ["Foreground", "Orphan", "Background"])
@pytest.mark.parametrize("carrier", ["query", "json-body", "protobuf-body"])
def test_propagation_policy_from_query_json_and_protobuf(plane: Plane, kube: Kube, carrier: str, policy: str) -> None:
    """S9 / statement 40: propagationPolicy is honoured from the query string, a JSON body and a protobuf body."""
    created = kube.create(CM, configmap("owner"))
    if carrier == "query":
        response = kube.delete(f"{CM}/owner", params={"propagationPolicy": policy})
    elif carrier == "json-body":
        body = {"kind": "DeleteOptions", "apiVersion": "v1", "propagationPolicy": policy}
        response = kube.delete(f"{CM}/owner", json=body)
    else:
        response = kube.delete(
            f"{CM}/owner",
            data=protobuf_delete_options(policy),
            headers={"Content-Type": "application/vnd.kubernetes.protobuf"},
        )
    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"] == "application/json"
    _expect_policy(plane, response.json(), created, policy)


def test_propagation_policy_through_kubernetes_client_and_kubectl(plane: Plane, kube: Kube, kubectl: CLI) -> None:
    """S9 / statement 40: the kubernetes client (query and body) and `kubectl delete --cascade` carry the policy."""
    created = {
        name: kube.create(CM, configmap(name)) for name in ("by-query", "by-body", "by-kubectl-fg", "by-kubectl-orphan")
    }
    client = kubernetes.config.new_client_from_config(config_file=str(plane.kubeconfig))
    with client:
        api = kubernetes.client.CoreV1Api(client)
        by_query = api.delete_namespaced_config_map("by-query", "default", propagation_policy="Foreground")
        _expect_policy(plane, client.sanitize_for_serialization(by_query), created["by-query"], "Foreground")
        by_body = api.delete_namespaced_config_map(
            "by-body", "default", body=kubernetes.client.V1DeleteOptions(propagation_policy="Orphan")
        )
        _expect_policy(plane, client.sanitize_for_serialization(by_body), created["by-body"], "Orphan")
    for name, cascade, finalizer in [
        ("by-kubectl-fg", "foreground", "foregroundDeletion"),
        ("by-kubectl-orphan", "orphan", "orphan"),
    ]:
        kubectl.run("delete", "configmap", name, f"--cascade={cascade}", "--wait=false")
        params = {
            "resourceVersion": created[name]["metadata"]["resourceVersion"],
            "fieldSelector": f"metadata.name={name}",
        }
        with WatchStream(plane, CM, params) as watch:
            event = watch.next()
        assert event["type"] == "MODIFIED", (name, event["type"])
        assert event["object"]["metadata"]["finalizers"] == [finalizer]
        assert event["object"]["metadata"]["deletionTimestamp"]


# ---------------------------------------------------------------------------------------------- 41


def test_kubectl_delete_waits_until_finalizer_is_removed(plane: Plane, kube: Kube, kubectl: CLI) -> None:
    """S9 / statement 41: `kubectl delete widget w1` returns only after another client drops the finalizer 2 s later."""
    kube.create(WIDGETS, with_finalizers(widget("w1", size=1), FINALIZER))
    remover = Kube(plane)
    removed_at: list[float] = []  # when the removal was sent: the server deletes w1 while answering it, so kubectl
    # may see the deletion before this thread sees the answer (a busy machine showed it 0.12 s sooner)

    def remove_finalizer() -> None:
        sent = time.monotonic()
        response = remover.patch(f"{WIDGETS}/w1", {"metadata": {"finalizers": None}})
        assert response.status_code == 200, response.text
        removed_at.append(sent)

    timer = threading.Timer(2.0, remove_finalizer)
    started = time.monotonic()
    timer.start()
    try:
        result: subprocess.CompletedProcess[str] = kubectl.run("delete", "widget", "w1", timeout=30)
        finished = time.monotonic()
    finally:
        timer.join(10)
        remover.close()
    assert result.stdout.strip().startswith('widget.example.com "w1" deleted')
    assert removed_at, "the finalizer was never removed"
    assert finished >= removed_at[0], "kubectl returned before the finalizer was removed"
    assert finished - started >= 1.9
    assert finished - removed_at[0] < 5, "kubectl noticed the deletion late"
    assert kube.get(f"{WIDGETS}/w1").status_code == 404
