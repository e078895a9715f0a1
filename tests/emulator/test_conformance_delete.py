"""Conformance: deletion and finalizers (API-surface spec §9, statements 37, 38, 40, 41; 39 needs the GC controller).

Covered:
- 37: DELETE of an object with finalizers → 200 with `deletionTimestamp` (+ `deletionGracePeriodSeconds: 0`), a MODIFIED
  event, the object still readable, a second DELETE a no-op; removing the last finalizer (JSON patch as kopf does it,
  merge patch) deletes it: DELETED event, then GET → 404. For a CR and a ConfigMap.
- 38: adding a finalizer to an object being deleted → 422 with the upstream Forbidden message; removing one is fine.
- 40: `propagationPolicy` honoured from the query string, a JSON DeleteOptions body and a protobuf DeleteOptions body
  (observable without the GC: Foreground/Orphan put the `foregroundDeletion`/`orphan` finalizer on the owner,
  Background removes it at once), through raw HTTP, the kubernetes client and real `kubectl delete --cascade`.
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

from dops.emulator import EmbeddedServer
from tests.builders import configmap, widget
from tests.emulator.kube_http import CM, JSON_PATCH, WIDGETS, Kube, WatchStream, summary
from tests.helpers import CLI

JSON = dict[str, Any]
FINALIZER = "example.com/keep"


@pytest.fixture
def kube(emulator: EmbeddedServer) -> Iterator[Kube]:
    client = Kube(emulator.url)
    client.install_crd()
    yield client
    client.close()


def with_finalizers(obj: JSON, *finalizers: str) -> JSON:
    obj["metadata"]["finalizers"] = list(finalizers)
    return obj


# ---------------------------------------------------------------------------------------------- 37


def test_delete_with_finalizer_marks_then_last_finalizer_removal_deletes(emulator: EmbeddedServer, kube: Kube) -> None:
    """S9 / statement 37: DELETE → 200, deletionTimestamp, MODIFIED, readable; no finalizers left → DELETED, 404."""
    created = kube.create(WIDGETS, with_finalizers(widget("w1", size=1), FINALIZER, "example.com/second"))
    with WatchStream(emulator.url, WIDGETS, {"resourceVersion": created["metadata"]["resourceVersion"]}) as watch:
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


def test_configmap_with_finalizer_is_kept_until_finalizer_removed(emulator: EmbeddedServer, kube: Kube) -> None:
    """S9 / statement 37: the same for a built-in kind; the delete answers 200 with the object, not a Status."""
    kube.create(CM, with_finalizers(configmap("c1", k="v"), FINALIZER))
    marked = kube.ok(kube.delete(f"{CM}/c1"))
    assert marked["kind"] == "ConfigMap" and marked["metadata"]["deletionTimestamp"]
    assert kube.ok(kube.get(f"{CM}/c1"))["data"] == {"k": "v"}
    with WatchStream(emulator.url, CM, {"resourceVersion": marked["metadata"]["resourceVersion"]}) as watch:
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


def _expect_policy(kube: Kube, response_obj: JSON, name: str, policy: str) -> None:
    if policy == "Background":
        assert kube.get(f"{CM}/{name}").status_code == 404, f"{policy}: {name} should be gone"
        return
    finalizer = {"Foreground": "foregroundDeletion", "Orphan": "orphan"}[policy]
    current = kube.ok(kube.get(f"{CM}/{name}"))
    assert current["metadata"]["deletionTimestamp"]
    assert current["metadata"]["finalizers"] == [finalizer], f"{policy}: {current['metadata']}"
    assert response_obj["metadata"]["finalizers"] == [finalizer]


@pytest.mark.parametrize("policy", ["Foreground", "Orphan", "Background"])
@pytest.mark.parametrize("carrier", ["query", "json-body", "protobuf-body"])
def test_propagation_policy_from_query_json_and_protobuf(kube: Kube, carrier: str, policy: str) -> None:
    """S9 / statement 40: propagationPolicy is honoured from the query string, a JSON body and a protobuf body."""
    kube.create(CM, configmap("owner"))
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
    _expect_policy(kube, response.json(), "owner", policy)


def test_propagation_policy_through_kubernetes_client_and_kubectl(
    emulator: EmbeddedServer, kube: Kube, kubectl: CLI
) -> None:
    """S9 / statement 40: the kubernetes client (query and body) and `kubectl delete --cascade` carry the policy."""
    for name in ("by-query", "by-body", "by-kubectl-fg", "by-kubectl-orphan"):
        kube.create(CM, configmap(name))
    client = kubernetes.config.new_client_from_config(config_file=str(emulator.kubeconfig))  # type: ignore[attr-defined]
    with client:
        api = kubernetes.client.CoreV1Api(client)
        by_query = api.delete_namespaced_config_map("by-query", "default", propagation_policy="Foreground")
        _expect_policy(kube, client.sanitize_for_serialization(by_query), "by-query", "Foreground")
        by_body = api.delete_namespaced_config_map(
            "by-body", "default", body=kubernetes.client.V1DeleteOptions(propagation_policy="Orphan")
        )
        _expect_policy(kube, client.sanitize_for_serialization(by_body), "by-body", "Orphan")
    kubectl.run("delete", "configmap", "by-kubectl-fg", "--cascade=foreground", "--wait=false")
    kubectl.run("delete", "configmap", "by-kubectl-orphan", "--cascade=orphan", "--wait=false")
    fg = kube.ok(kube.get(f"{CM}/by-kubectl-fg"))
    orphan = kube.ok(kube.get(f"{CM}/by-kubectl-orphan"))
    assert fg["metadata"]["finalizers"] == ["foregroundDeletion"]
    assert orphan["metadata"]["finalizers"] == ["orphan"]


# ---------------------------------------------------------------------------------------------- 41


def test_kubectl_delete_waits_until_finalizer_is_removed(emulator: EmbeddedServer, kube: Kube, kubectl: CLI) -> None:
    """S9 / statement 41: `kubectl delete widget w1` returns only after another client drops the finalizer 2 s later."""
    kube.create(WIDGETS, with_finalizers(widget("w1", size=1), FINALIZER))
    remover = Kube(emulator.url)
    removed_at: list[float] = []

    def remove_finalizer() -> None:
        response = remover.patch(f"{WIDGETS}/w1", {"metadata": {"finalizers": None}})
        assert response.status_code == 200, response.text
        removed_at.append(time.monotonic())

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
