"""The official kubernetes client (37) and pykube-ng (23.6) against the embedded API server (S9, statements 52, 54).

Covered:
- kubernetes client: `BatchV1Api.read_namespaced_job` / `list_namespaced_job` and `CoreV1Api.read_namespaced_pod`
  deserialize Jobs (pending, running, complete, failed) and Pods (Pending, Running, Succeeded, Failed) whose
  status was written through `/status` the way the Job controller and the kubelet write it, without a pydantic
  `ValidationError`; the status reads back with the right types (52);
- core/v1 Events (kopf-shaped, microsecond `+00:00` timestamps) and events.k8s.io/v1 Events deserialize in
  `CoreV1Api` / `EventsV1Api` reads and field-selected lists (52);
- `kubernetes.watch.Watch().stream` with `label_selector` and `timeout_seconds` yields typed objects for the
  selected objects only, in order, and ends after the timeout (52, P4);
- pykube-ng: `object_factory` for a CRD kind, `create`, `patch(subresource="status")`, `delete` with and without
  `propagation_policy`, `Query.watch` and `APIObject.watch`, `as_table`, `get_by_name` of a missing object →
  `ObjectDoesNotExist`, `Query.filter` with `k != v`, `a in (x,y)`, `notin` label forms and field selectors,
  `HTTPClient(dry_run=True)` validating creates and patches without persisting (its delete sends a body, whose
  options win over `?dryRun=All`: it deletes), Status errors surfaced as `HTTPError` (54).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import kubernetes.client
import kubernetes.config
import kubernetes.watch
import pykube
import pytest
import requests
from kubernetes.client.exceptions import ApiException
from pykube.exceptions import HTTPError, ObjectDoesNotExist

from dops.emulator import EmbeddedServer
from tests.builders import WidgetCRD, configmap, job, job_status, pod, pod_status, widget
from tests.emulator.kube_http import Kube, WatchStream
from tests.helpers import eventually
from tests.planes import SYSTEM_OBJECT_NAMES, Plane

JSON = dict[str, Any]
pytestmark = pytest.mark.both_planes
# Jobs whose status the tests write by hand, as an external controller would (`spec.managedBy`): the Job controller
# of either plane leaves them alone, so the status read back is exactly the one written.
HAND_WRITTEN = "example.com/hand-written"


def now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@pytest.fixture
def api_client(plane: Plane) -> Iterator[kubernetes.client.ApiClient]:
    client = kubernetes.config.new_client_from_config(config_file=str(plane.kubeconfig))
    yield client
    client.close()


@pytest.fixture
def pykube_api(plane: Plane) -> pykube.HTTPClient:
    return pykube.HTTPClient(pykube.KubeConfig.from_file(str(plane.kubeconfig)))  # type: ignore[attr-defined]


@pytest.fixture
def kube(plane: Plane) -> Iterator[Kube]:
    client = Kube(plane)
    yield client
    client.close()


# --------------------------------------------------------------------------------------- kubernetes client
@pytest.mark.parametrize("state", ["pending", "running", "complete", "failed"])
def test_job_in_every_state_deserializes_in_the_kubernetes_client(
    api_client: kubernetes.client.ApiClient, state: str
) -> None:
    """S9 / statement 52: BatchV1Api.read_namespaced_job deserializes a Job whose status was written by
    hand through /status as the Job controller writes it (pending, running, complete, failed)."""
    batch = kubernetes.client.BatchV1Api(api_client)
    created = batch.create_namespaced_job(
        "default", job("j1", command=["true"], backoff_limit=1, managedBy=HAND_WRITTEN)
    )
    assert created.metadata.generation == 1 and isinstance(created.metadata.resource_version, str)
    at = now()
    if state != "pending":
        batch.patch_namespaced_job_status("j1", "default", {"status": job_status(state, at)})

    read = batch.read_namespaced_job("j1", "default")
    listed = batch.list_namespaced_job("default").items
    via_status = batch.read_namespaced_job_status("j1", "default")
    assert [j.metadata.name for j in listed] == ["j1"]
    for obj in (read, listed[0], via_status):
        assert isinstance(obj, kubernetes.client.V1Job)
        assert obj.spec.template.spec.containers[0].name == "main"
        assert obj.spec.backoff_limit == 1
        status = obj.status
        if state == "pending":
            assert not status or not status.conditions
            continue
        assert status.start_time == datetime.fromisoformat(at)
        if state == "running":
            assert (status.active, status.ready, status.terminating) == (1, 0, 0)
            assert not status.conditions
        elif state == "complete":
            assert status.succeeded == 1
            assert status.completion_time == datetime.fromisoformat(at)
            assert [(c.type, c.status, c.reason) for c in status.conditions] == [
                ("SuccessCriteriaMet", "True", "CompletionsReached"),
                ("Complete", "True", "CompletionsReached"),
            ]
            assert all(isinstance(c.last_transition_time, datetime) for c in status.conditions)
        else:
            assert status.failed == 2
            assert [(c.type, c.status, c.reason) for c in status.conditions] == [
                ("FailureTarget", "True", "BackoffLimitExceeded"),
                ("Failed", "True", "BackoffLimitExceeded"),
            ]


@pytest.mark.parametrize("phase", ["Pending", "Running", "Succeeded", "Failed"])
def test_pod_in_every_phase_deserializes_in_the_kubernetes_client(
    api_client: kubernetes.client.ApiClient, phase: str
) -> None:
    """S9 / statement 52: CoreV1Api.read_namespaced_pod deserializes a Pod whose status was written through
    /status as the kubelet writes it (Pending, Running, Succeeded, Failed)."""
    core = kubernetes.client.CoreV1Api(api_client)
    core.create_namespaced_pod("default", pod("p1", command=["sh", "-c", "exit 3"]))
    at = now()
    core.patch_namespaced_pod_status("p1", "default", {"status": pod_status(phase, at)})

    read = core.read_namespaced_pod("p1", "default")
    listed = core.list_namespaced_pod("default", field_selector=f"status.phase={phase}").items
    assert [p.metadata.name for p in listed] == ["p1"]
    for obj in (read, listed[0], core.read_namespaced_pod_status("p1", "default")):
        assert isinstance(obj, kubernetes.client.V1Pod)
        assert obj.status.phase == phase
        assert obj.spec.containers[0].name == "main"
        (cstatus,) = obj.status.container_statuses
        assert cstatus.restart_count == 0
        assert {c.type for c in obj.status.conditions} >= {"Ready", "PodScheduled"}
        if phase == "Pending":
            assert cstatus.state.waiting.reason == "ContainerCreating"
        elif phase == "Running":
            assert cstatus.ready is True
            assert cstatus.state.running.started_at == datetime.fromisoformat(at)
            assert obj.status.pod_ip == "10.244.0.7"
        else:
            terminated = cstatus.state.terminated
            assert terminated.exit_code == (0 if phase == "Succeeded" else 3)
            assert terminated.reason == ("Completed" if phase == "Succeeded" else "Error")
            assert terminated.finished_at == datetime.fromisoformat(at)


def test_events_deserialize_in_both_event_apis(api_client: kubernetes.client.ApiClient, kube: Kube) -> None:
    """S9 / statement 52: core/v1 Events (as kopf posts them, microsecond `+00:00` timestamps) and
    events.k8s.io/v1 Events read back through the kubernetes client without a ValidationError."""
    core = kubernetes.client.CoreV1Api(api_client)
    target = core.create_namespaced_config_map("default", configmap("target", a="1"))
    stamp = datetime.now(UTC).isoformat()  # e.g. 2026-11-29T16:38:19.703782+00:00, as kopf sends it
    involved = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "name": "target",
        "uid": target.metadata.uid,
        "namespace": "default",
    }
    kopf_event = {
        "metadata": {"namespace": "default", "generateName": "kopf-event-"},
        "action": "Action?",
        "type": "Normal",
        "reason": "Hello",
        "message": "created it",
        "reportingComponent": "kopf",
        "reportingInstance": "dev",
        "source": {"component": "kopf"},
        "involvedObject": involved,
        "firstTimestamp": stamp,
        "lastTimestamp": stamp,
        "eventTime": stamp,
    }
    posted = kube.create("/api/v1/namespaces/default/events", kopf_event)
    assert posted["metadata"]["name"].startswith("kopf-event-")
    core.create_namespaced_event(
        "default",
        {
            "metadata": {"name": "target.controller"},
            "involvedObject": involved,
            "reason": "Synced",
            "message": "synced",
            "type": "Warning",
            "count": 2,
            "firstTimestamp": now(),
            "lastTimestamp": now(),
            "source": {"component": "some-controller"},
        },
    )
    events = core.list_namespaced_event("default", field_selector=f"involvedObject.uid={target.metadata.uid}").items
    assert sorted(e.reason for e in events) == ["Hello", "Synced"]
    hello = core.read_namespaced_event(posted["metadata"]["name"], "default")
    assert isinstance(hello, kubernetes.client.CoreV1Event)
    assert hello.involved_object.uid == target.metadata.uid
    assert hello.event_time == datetime.fromisoformat(stamp)
    assert hello.first_timestamp is not None and hello.reporting_component == "kopf"
    assert core.read_namespaced_event("target.controller", "default").count == 2

    events_v1 = kubernetes.client.EventsV1Api(api_client)
    events_v1.create_namespaced_event(
        "default",
        {
            "apiVersion": "events.k8s.io/v1",
            "kind": "Event",
            "metadata": {"name": "target.new"},
            "eventTime": stamp,
            "reportingController": "dops.dev/test",
            "reportingInstance": "test-1",
            "action": "Reconcile",
            "reason": "Reconciled",
            "note": "done",
            "type": "Normal",
            "regarding": involved,
        },
    )
    new = events_v1.read_namespaced_event("target.new", "default")
    assert isinstance(new, kubernetes.client.EventsV1Event)
    assert new.event_time == datetime.fromisoformat(stamp)
    assert new.regarding.uid == target.metadata.uid
    listed = events_v1.list_namespaced_event("default", field_selector="reportingController=dops.dev/test").items
    assert [e.metadata.name for e in listed] == ["target.new"]


def test_core_and_events_v1_events_are_one_resource(api_client: kubernetes.client.ApiClient, kube: Kube) -> None:
    """S9 / statement 52: an Event written through either API reads back through the other, converted field by field
    (involvedObject ↔ regarding, message ↔ note, source ↔ deprecatedSource, …); `regarding.*` field selectors match
    core Events. (So listing every events.k8s.io Event of a namespace also returns core Events without an eventTime,
    which the kubernetes client cannot deserialize: such lists need a selector.)"""
    involved = {"apiVersion": "v1", "kind": "ConfigMap", "name": "target", "namespace": "default", "uid": "u-1"}
    kube.create(
        "/api/v1/namespaces/default/events",
        {
            "metadata": {"name": "core.1"},
            "involvedObject": involved,
            "reason": "Synced",
            "message": "synced",
            "type": "Warning",
            "count": 2,
            "firstTimestamp": "2026-01-01T00:00:00Z",
            "lastTimestamp": "2026-01-01T00:00:00Z",
            "source": {"component": "some-controller"},
        },
    )
    as_new = kube.ok(kube.get("/apis/events.k8s.io/v1/namespaces/default/events/core.1"))
    assert {k: v for k, v in as_new.items() if k != "metadata"} == {
        "kind": "Event",
        "apiVersion": "events.k8s.io/v1",
        "eventTime": None,
        "reason": "Synced",
        "regarding": involved,
        "note": "synced",
        "type": "Warning",
        "deprecatedSource": {"component": "some-controller"},
        "deprecatedFirstTimestamp": "2026-01-01T00:00:00Z",
        "deprecatedLastTimestamp": "2026-01-01T00:00:00Z",
        "deprecatedCount": 2,
    }

    kube.create(  # raw: the kubernetes client would send eventTime with a `+00:00` offset (see the next test)
        "/apis/events.k8s.io/v1/namespaces/default/events",
        {
            "apiVersion": "events.k8s.io/v1",
            "kind": "Event",
            "metadata": {"name": "new.1"},
            "eventTime": "2026-01-01T00:00:00.123456Z",
            "reportingController": "dops.dev/test",
            "reportingInstance": "test-1",
            "action": "Reconcile",
            "reason": "Reconciled",
            "note": "done",
            "type": "Normal",
            "regarding": involved,
        },
    )
    as_core = kube.ok(kube.get("/api/v1/namespaces/default/events/new.1"))
    assert {k: v for k, v in as_core.items() if k != "metadata"} == {
        "kind": "Event",
        "apiVersion": "v1",
        "involvedObject": involved,
        "reason": "Reconciled",
        "message": "done",
        "source": {},
        "firstTimestamp": None,
        "lastTimestamp": None,
        "type": "Normal",
        "eventTime": "2026-01-01T00:00:00.123456Z",
        "action": "Reconcile",
        "reportingComponent": "dops.dev/test",
        "reportingInstance": "test-1",
    }
    core = kubernetes.client.CoreV1Api(api_client)
    read = core.read_namespaced_event("new.1", "default")
    assert (read.message, read.reporting_component, read.first_timestamp) == ("done", "dops.dev/test", None)

    def names(path: str, selector: str) -> list[str]:
        items = kube.ok(kube.get(path, params={"fieldSelector": selector}))["items"]
        return sorted(i["metadata"]["name"] for i in items)

    v1_events = "/apis/events.k8s.io/v1/namespaces/default/events"
    assert names(v1_events, "regarding.uid=u-1") == ["core.1", "new.1"]
    assert names(v1_events, "reportingController=dops.dev/test") == ["new.1"]
    assert names("/api/v1/namespaces/default/events", "involvedObject.uid=u-1,type=Normal") == ["new.1"]
    kube.ok(kube.delete(f"{v1_events}/core.1"))
    assert kube.get("/api/v1/namespaces/default/events/core.1").status_code == 404


@pytest.mark.gap("timestamps are stored as sent, not re-encoded in UTC")
def test_timestamps_read_back_in_the_servers_encoding(plane: Plane, kube: Kube) -> None:
    """A real server decodes metav1.Time / MicroTime fields and encodes them again: UTC, `Z`, whole seconds for
    Time, microseconds for MicroTime, whatever offset or precision the client sent. The embedded plane stores the
    strings as sent (docs/GAPS.md)."""
    sent = {
        "metadata": {"name": "stamped"},
        "involvedObject": {"apiVersion": "v1", "kind": "ConfigMap", "name": "target", "namespace": "default"},
        "reason": "Hello",
        "reportingComponent": "tests",  # required (with the two below) for an Event with an eventTime
        "reportingInstance": "t-1",
        "action": "Test",
        "eventTime": "2026-01-01T01:00:00.500000+01:00",
        "firstTimestamp": "2026-01-01T01:00:00.5+01:00",
    }
    stored = kube.create("/api/v1/namespaces/default/events", sent)
    if plane.real:
        assert (stored["eventTime"], stored["firstTimestamp"]) == (
            "2026-01-01T00:00:00.500000Z",
            "2026-01-01T00:00:00Z",
        )
    else:
        assert (stored["eventTime"], stored["firstTimestamp"]) == (sent["eventTime"], sent["firstTimestamp"])


def test_watch_stream_with_label_selector_and_timeout(api_client: kubernetes.client.ApiClient) -> None:
    """S9 / statement 52 and P4: Watch().stream(list_fn, label_selector=..., timeout_seconds=N) yields typed
    objects for matching objects only, in RV order, and ends by itself after about N seconds."""
    core = kubernetes.client.CoreV1Api(api_client)
    core.create_namespaced_config_map("default", configmap("before", labels={"app": "x"}))
    start_rv = core.list_namespaced_config_map("default").metadata.resource_version

    core.create_namespaced_config_map("default", configmap("a", labels={"app": "x"}, k="1"))
    core.create_namespaced_config_map("default", configmap("b", labels={"app": "y"}))
    core.patch_namespaced_config_map("a", "default", {"data": {"k": "2"}})
    core.patch_namespaced_config_map("b", "default", {"data": {"k": "2"}})
    core.delete_namespaced_config_map("a", "default")

    seen: list[tuple[str, str, str]] = []
    started = time.monotonic()
    for event in kubernetes.watch.Watch().stream(
        core.list_namespaced_config_map,
        "default",
        label_selector="app=x",
        timeout_seconds=1,
        resource_version=start_rv,
    ):
        obj = event["object"]
        assert isinstance(obj, kubernetes.client.V1ConfigMap)
        seen.append((event["type"], obj.metadata.name, (obj.data or {}).get("k", "")))
    elapsed = time.monotonic() - started
    assert seen == [("ADDED", "a", "1"), ("MODIFIED", "a", "2"), ("DELETED", "a", "2")]
    assert 0.8 <= elapsed < 5, f"the stream should end after timeoutSeconds=1, took {elapsed:.1f}s"

    # Without a resourceVersion the stream starts with the current matching objects.
    initial = [
        (e["type"], e["object"].metadata.name)
        for e in kubernetes.watch.Watch().stream(
            core.list_namespaced_config_map, "default", label_selector="app in (x)", timeout_seconds=1
        )
    ]
    assert initial == [("ADDED", "before")]


def test_watch_stream_from_an_expired_rv_raises_api_exception_410(
    api_client: kubernetes.client.ApiClient, emulator: EmbeddedServer
) -> None:
    """S9 / statement 52 and P4 (with 25): a watch resumed from a compacted RV gets the in-stream ERROR 410,
    which the kubernetes client raises as ApiException(410, "Expired: ...") when timeout_seconds is set."""
    core = kubernetes.client.CoreV1Api(api_client)
    old_rv = core.list_namespaced_config_map("default").metadata.resource_version
    core.create_namespaced_config_map("default", configmap("a"))
    emulator.call(emulator.api.store.compact)
    with pytest.raises(ApiException) as caught:
        list(
            kubernetes.watch.Watch().stream(
                core.list_namespaced_config_map, "default", resource_version=old_rv, timeout_seconds=5
            )
        )
    assert caught.value.status == 410
    assert caught.value.reason.startswith("Expired: ")


def test_watch_stream_of_jobs_yields_typed_jobs(api_client: kubernetes.client.ApiClient) -> None:
    """S9 / statement 52: Job watch events (creation and every status transition) deserialize as V1Job."""
    batch = kubernetes.client.BatchV1Api(api_client)
    start_rv = batch.list_namespaced_job("default").metadata.resource_version
    batch.create_namespaced_job("default", job("j1", command=["true"], managedBy=HAND_WRITTEN))
    at = now()
    for state in ("running", "complete"):  # the Job controller writes status with PUT (UpdateStatus)
        current = api_client.sanitize_for_serialization(batch.read_namespaced_job("j1", "default"))
        current["status"] = job_status(state, at)
        batch.replace_namespaced_job_status("j1", "default", current)
    seen = []
    for event in kubernetes.watch.Watch().stream(
        batch.list_namespaced_job, "default", resource_version=start_rv, timeout_seconds=1
    ):
        obj = event["object"]
        assert isinstance(obj, kubernetes.client.V1Job)
        conditions = [c.type for c in (obj.status.conditions or [])] if obj.status else []
        seen.append((event["type"], obj.status.active if obj.status else None, conditions))
    assert seen == [
        ("ADDED", None, []),
        ("MODIFIED", 1, []),
        ("MODIFIED", None, ["SuccessCriteriaMet", "Complete"]),
    ]


def test_kubernetes_client_errors_are_status_api_exceptions(api_client: kubernetes.client.ApiClient) -> None:
    """S9 / statement 52 (P7): a missing Job is ApiException(404) whose body is a NotFound Status."""
    batch = kubernetes.client.BatchV1Api(api_client)
    with pytest.raises(ApiException) as caught:
        batch.read_namespaced_job("missing", "default")
    assert caught.value.status == 404
    body = json.loads(caught.value.body)
    assert (body["kind"], body["reason"], body["code"]) == ("Status", "NotFound", 404)


# --------------------------------------------------------------------------------------- pykube-ng
@pytest.fixture
def Widget(pykube_api: pykube.HTTPClient, kube: Kube) -> type[pykube.objects.NamespacedAPIObject]:
    kube.install_crd(WidgetCRD())
    # A real server may still answer 429 for a moment after the CRD is established (its storage is starting).
    eventually(
        lambda: kube.get("/apis/example.com/v1/namespaces/default/widgets").status_code,
        lambda code: code == 200,
        describe="widgets listable",
    )
    cls = pykube.object_factory(pykube_api, "example.com/v1", "Widget")
    return cls  # type: ignore[no-any-return]


def test_pykube_object_factory_create_patch_status_and_table(pykube_api: pykube.HTTPClient, Widget: Any) -> None:
    """S9 / statement 54: object_factory builds a namespaced Widget class from discovery; create, a main
    patch, patch(subresource='status') and as_table work."""
    assert Widget.endpoint == "widgets" and Widget.kind == "Widget" and Widget.version == "example.com/v1"
    assert issubclass(Widget, pykube.objects.NamespacedAPIObject)
    w = Widget(pykube_api, widget("w1", size=3))
    w.create()
    assert w.obj["metadata"]["uid"] and w.obj["metadata"]["generation"] == 1
    assert w.obj["spec"] == {"size": 3, "color": "red"}  # defaulted by the CRD schema

    w.patch({"status": {"phase": "Ready"}}, subresource="status")
    assert w.obj["status"] == {"phase": "Ready"}
    assert w.obj["metadata"]["generation"] == 1, "a status write does not bump generation"
    w.patch({"spec": {"size": 4}, "status": {"phase": "Ignored"}})
    assert w.obj["spec"]["size"] == 4 and w.obj["metadata"]["generation"] == 2
    assert w.obj["status"] == {"phase": "Ready"}, "the main resource ignores status changes"
    w.reload()
    assert (w.obj["spec"]["size"], w.obj["status"]["phase"]) == (4, "Ready")

    table = Widget.objects(pykube_api, namespace="default").as_table()
    assert table.obj["kind"] == "Table"
    assert [c["name"] for c in table.columns] == ["Name", "Size", "Phase", "Age"]
    (row,) = table.rows
    assert row["cells"][:3] == ["w1", 4, "Ready"]
    assert row["cells"][3].endswith("s")  # HumanDuration, e.g. "0s"


@pytest.mark.parametrize(
    ("api_version", "kind", "endpoint", "namespaced"),
    [
        ("v1", "Pod", "pods", True),  # listed before pods/status, pods/log (same kind)
        ("batch/v1", "Job", "jobs", True),
        ("apps/v1", "Deployment", "deployments", True),
        ("v1", "Namespace", "namespaces", False),
        ("events.k8s.io/v1", "Event", "events", True),
        ("apiextensions.k8s.io/v1", "CustomResourceDefinition", "customresourcedefinitions", False),
    ],
)
def test_pykube_object_factory_for_built_in_kinds(
    pykube_api: pykube.HTTPClient, api_version: str, kind: str, endpoint: str, namespaced: bool
) -> None:
    """S9 / statement 54 (Y1): object_factory picks the first discovery entry of the kind, which must be the
    main resource, not one of its subresources."""
    cls = pykube.object_factory(pykube_api, api_version, kind)
    assert cls.endpoint == endpoint
    assert issubclass(cls, pykube.objects.NamespacedAPIObject) == namespaced
    listed = list(cls.objects(pykube_api, namespace=pykube.all))
    if kind == "Namespace":
        assert "default" in [ns.name for ns in listed]


def test_pykube_get_by_name_of_missing_object_and_status_errors(pykube_api: pykube.HTTPClient, Widget: Any) -> None:
    """S9 / statement 54 (and 42): get_by_name of a missing object raises ObjectDoesNotExist; a duplicate
    create raises HTTPError carrying the Status code and message."""
    query = Widget.objects(pykube_api, namespace="default")
    with pytest.raises(ObjectDoesNotExist):
        query.get_by_name("nope")
    assert query.get_or_none(name="nope") is None
    Widget(pykube_api, widget("w1", size=1)).create()
    assert query.get_by_name("w1").obj["spec"]["size"] == 1
    with pytest.raises(HTTPError) as caught:
        Widget(pykube_api, widget("w1", size=1)).create()
    assert caught.value.code == 409
    assert 'widgets.example.com "w1" already exists' in str(caught.value)
    with pytest.raises(HTTPError) as invalid:
        Widget(pykube_api, widget("w2", size=1000)).create()
    assert invalid.value.code == 422
    assert "spec.size" in str(invalid.value)


def test_pykube_delete_with_and_without_propagation_policy(
    plane: Plane, pykube_api: pykube.HTTPClient, kube: Kube
) -> None:
    """S9 / statement 54 (and 40): delete() removes the object; delete(propagation_policy=...) sends the
    policy in the body, so Foreground holds the object with the `foregroundDeletion` finalizer and Orphan
    with `orphan` (until the garbage collector releases them); deleting a missing object is ignored."""
    for name in ("plain", "fg", "orphan"):
        pykube.ConfigMap(pykube_api, configmap(name, x="1")).create()
    pykube.ConfigMap(pykube_api, configmap("plain")).delete()
    assert not pykube.ConfigMap(pykube_api, configmap("plain")).exists()
    pykube.ConfigMap(pykube_api, configmap("plain")).delete()  # a 404 is ignored by pykube

    # The garbage collector releases such an object as soon as it has no dependents (a real one at once), so the
    # held state is observed on a watch rather than by a later read.
    rv = kube.ok(kube.get("/api/v1/namespaces/default/configmaps"))["metadata"]["resourceVersion"]
    with WatchStream(plane, "/api/v1/namespaces/default/configmaps", {"resourceVersion": rv}) as watch:
        pykube.ConfigMap(pykube_api, configmap("fg")).delete(propagation_policy="Foreground")
        pykube.ConfigMap(pykube_api, configmap("orphan")).delete(propagation_policy="Orphan")

        def held(name: str) -> JSON:
            """The metadata of the first change that marks `name` as being deleted (in RV order)."""

            def marked(event: JSON) -> bool:
                meta = event["object"]["metadata"]
                return event["type"] == "MODIFIED" and meta["name"] == name and bool(meta.get("deletionTimestamp"))

            metadata: JSON = watch.until(marked)[-1]["object"]["metadata"]
            return metadata

        assert held("fg")["finalizers"] == ["foregroundDeletion"]
        assert held("orphan")["finalizers"] == ["orphan"]


def test_pykube_watch_query_and_object_watch(pykube_api: pykube.HTTPClient, Widget: Any) -> None:
    """S9 / statement 54: Query.watch(since=RV) yields typed WatchEvents for later changes in order;
    APIObject.watch() (fieldSelector=metadata.name=<name>) yields only that object's events."""
    query = Widget.objects(pykube_api, namespace="default")
    since = query.response["metadata"]["resourceVersion"]
    w1 = Widget(pykube_api, widget("w1", size=1))
    w1.create()
    w2 = Widget(pykube_api, widget("w2", size=2))
    w2.create()
    w1.patch({"spec": {"size": 5}})
    w1.delete()

    seen = []
    for event in query.watch(since=since, params={"timeoutSeconds": 1}):
        assert isinstance(event.object, Widget)
        seen.append((event.type, event.object.name, event.object.obj["spec"]["size"]))
        if len(seen) == 4:
            break
    assert seen == [("ADDED", "w1", 1), ("ADDED", "w2", 2), ("MODIFIED", "w1", 5), ("DELETED", "w1", 5)]

    own = w2.watch()
    own.params = {"timeoutSeconds": 1}
    only_w2 = [(e.type, e.object.name) for e in own]
    assert only_w2 == [("ADDED", "w2")]


def test_pykube_query_filter_label_and_field_selectors(pykube_api: pykube.HTTPClient) -> None:
    """S9 / statement 54 (and 31, 32): Query.filter(selector=..., field_selector=...) sends pykube's forms
    `k=v`, `k != v` (with spaces, matching objects lacking the key), `a in (x,y)` and `k notin (...)`."""
    labels = {
        "c1": {"app": "web", "tier": "a", "env": "prod"},
        "c2": {"app": "web", "tier": "b", "env": "dev"},
        "c3": {"app": "web", "tier": "c"},
        "c4": {"app": "web", "tier": "b"},
        "c5": {"app": "db", "tier": "a"},
    }
    for name, lab in labels.items():
        pykube.ConfigMap(pykube_api, configmap(name, labels=lab)).create()
    cms = pykube.ConfigMap.objects(pykube_api, namespace="default")

    def names(query: Any) -> list[str]:
        return sorted(obj.name for obj in query if obj.name not in SYSTEM_OBJECT_NAMES)

    assert names(cms.filter(selector={"app": "web", "tier__in": {"a", "b"}, "env__neq": "prod"})) == ["c2", "c4"]
    assert names(cms.filter(selector="tier in (a,b),env != prod")) == ["c2", "c4", "c5"]
    assert names(cms.filter(selector={"tier__notin": {"a", "c"}})) == ["c2", "c4"]
    assert names(cms.filter(selector={"app": "web"}, field_selector="metadata.name!=c4")) == ["c1", "c2", "c3"]
    assert names(cms.filter(field_selector={"metadata.name": "c5"})) == ["c5"]
    assert names(cms.filter(selector={"missing__neq": "x"})) == ["c1", "c2", "c3", "c4", "c5"]
    # Field selectors are not trimmed: pykube's dict form `metadata.name != c4` names the field
    # "metadata.name " and a real API server answers 400, as it does for unsupported fields (ConfigMaps have no
    # field-label conversion of their own: runtime.DefaultMetaV1FieldSelectorConversion words the error).
    for unsupported, field in (({"metadata.name__neq": "c4"}, "metadata.name "), ({"data.x": "1"}, "data.x")):
        with pytest.raises(requests.HTTPError) as bad:  # Query.execute uses requests' raise_for_status
            list(cms.filter(field_selector=unsupported))
        assert bad.value.response.status_code == 400
        assert bad.value.response.json()["message"] == (
            f'"{field}" is not a known field selector: only "metadata.name", "metadata.namespace"'
        )


def test_pykube_dry_run_client_validates_without_persisting(pykube_api: pykube.HTTPClient, plane: Plane) -> None:
    """S9 / statement 54 (and 18, Y10): HTTPClient(dry_run=True) adds dryRun=All: creates and patches are validated
    and answered with the would-be object, and nothing is persisted. Its delete is not dry: pykube sends its
    DeleteOptions as a body (`{}`), and a request body's options win over the query's `dryRun=All`."""
    dry = pykube.HTTPClient(pykube.KubeConfig.from_file(str(plane.kubeconfig)), dry_run=True)  # type: ignore[attr-defined]
    would_be = pykube.ConfigMap(dry, configmap("dry", x="1"))
    would_be.create()
    assert would_be.obj["data"] == {"x": "1"}
    with pytest.raises(ObjectDoesNotExist):
        pykube.ConfigMap.objects(pykube_api, namespace="default").get_by_name("dry")

    real = pykube.ConfigMap(pykube_api, configmap("real", x="1"))
    real.create()
    rv = real.obj["metadata"]["resourceVersion"]
    patched = pykube.ConfigMap(dry, real.obj)
    patched.patch({"data": {"x": "2"}})
    assert patched.obj["data"] == {"x": "2"}
    real.reload()
    assert real.obj["data"] == {"x": "1"} and real.obj["metadata"]["resourceVersion"] == rv
    pykube.ConfigMap(dry, real.obj).delete()
    assert not real.exists()

    with pytest.raises(HTTPError) as invalid:
        pykube.ConfigMap(dry, configmap("Bad_Name")).create()
    assert invalid.value.code == 422
