"""Conformance, API-surface spec §9 statements 19-21: the status subresource and metadata.generation.

Aspects covered:
- with a status subresource, writes to the main resource (POST, PUT, merge/JSON patch) never change
  `status` — POST drops it — and writes to `/status` (PUT, merge patch) change nothing but `status`;
  for a CR, for built-ins (Job, Deployment, Pod) and through the kubernetes client and real
  `kubectl patch/get --subresource=status` — statement 19;
- `metadata.generation` increments on spec changes only (not on metadata or status changes) with a
  status subresource, and on status changes too without one; built-ins with generation (Deployment)
  follow the same rule — 20;
- `/status` of a CR whose CRD has no status subresource → 404 for GET, PUT and PATCH (raw and real
  kubectl), and discovery lists no `<plural>/status` — 21.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import kubernetes
import pytest

from dops.emulator import EmbeddedServer
from tests.builders import WidgetCRD, deployment, job, pod, widget
from tests.emulator._conformance import (
    DEPLOYMENTS,
    JSON_PATCH,
    MERGE,
    PODS,
    WIDGETS,
    Http,
    install_crd,
    open_watch,
    settled,
    watch_events,
    write_manifest,
)
from tests.helpers import CLI
from tests.planes import Plane

JSON = dict[str, Any]
pytestmark = pytest.mark.both_planes
JOBS = "/apis/batch/v1/namespaces/default/jobs"
GADGETS = "/apis/example.com/v1/namespaces/default/gadgets"


@pytest.fixture
def http(plane: Plane) -> Http:
    return Http(plane)


@pytest.fixture
def widgets(http: Http) -> Http:
    """widgets.example.com (status subresource) with Widget `w1` whose status was set through `/status`."""
    install_crd(http)
    http.ok("POST", WIDGETS, widget("w1", size=1), expect=201)
    http.ok("PATCH", WIDGETS + "/w1/status", {"status": {"phase": "Ready"}}, content_type=MERGE)
    return http


@pytest.fixture
def gadgets(http: Http) -> Http:
    """gadgets.example.com: the same schema, no status subresource; Gadget `g1` exists."""
    install_crd(http, WidgetCRD(plural="gadgets", kind="Gadget").without_status_subresource())
    body = widget("g1", size=1)
    body["kind"] = "Gadget"
    http.ok("POST", GADGETS, body, expect=201)
    return http


def k8s_client(server: Plane | EmbeddedServer) -> kubernetes.client.ApiClient:
    return kubernetes.client.CustomObjectsApi(
        kubernetes.config.new_client_from_config(config_file=str(server.kubeconfig))
    )


def generation(http: Http, path: str) -> int:
    value: int = http.get(path)["metadata"]["generation"]
    return value


# ----------------------------------------------------------------------------------- statement 19
def test_create_drops_status(widgets: Http) -> None:
    """S9 / statement 19: with a status subresource, POST drops `status`."""
    body = widget("w2", size=2)
    body["status"] = {"phase": "Forged"}
    created = widgets.ok("POST", WIDGETS, body, expect=201)
    assert "status" not in created
    assert "status" not in widgets.get(WIDGETS + "/w2")


def test_main_resource_writes_ignore_status(widgets: Http) -> None:
    """S9 / statement 19: a PATCH (merge or JSON) or PUT to the main resource that changes `status` leaves
    status unchanged while its other changes apply; a status-only change there is a no-op."""
    before = widgets.get(WIDGETS + "/w1")
    patched = widgets.ok(
        "PATCH", WIDGETS + "/w1", {"spec": {"size": 2}, "status": {"phase": "Hacked"}}, content_type=MERGE
    )
    assert patched["spec"]["size"] == 2 and patched["status"] == {"phase": "Ready"}

    only_status = widgets.ok("PATCH", WIDGETS + "/w1", {"status": {"phase": "Hacked"}}, content_type=MERGE)
    assert only_status["status"] == {"phase": "Ready"}
    assert only_status["metadata"]["resourceVersion"] == patched["metadata"]["resourceVersion"]

    ops = [
        {"op": "replace", "path": "/status/phase", "value": "Hacked"},
        {"op": "replace", "path": "/spec/size", "value": 3},
    ]
    patched = widgets.ok("PATCH", WIDGETS + "/w1", ops, content_type=JSON_PATCH)
    assert patched["spec"]["size"] == 3 and patched["status"] == {"phase": "Ready"}

    replaced = copy.deepcopy(patched)
    replaced["spec"]["size"] = 4
    replaced["status"] = {"phase": "Hacked"}
    updated = widgets.ok("PUT", WIDGETS + "/w1", replaced)
    assert updated["spec"]["size"] == 4 and updated["status"] == {"phase": "Ready"}
    del replaced["status"]  # a PUT without status does not clear it either
    replaced["metadata"]["resourceVersion"] = updated["metadata"]["resourceVersion"]
    replaced["spec"]["size"] = 5
    assert widgets.ok("PUT", WIDGETS + "/w1", replaced)["status"] == {"phase": "Ready"}
    assert before["metadata"]["uid"] == widgets.get(WIDGETS + "/w1")["metadata"]["uid"]


def test_status_writes_ignore_everything_but_status(widgets: Http) -> None:
    """S9 / statement 19: a PATCH or PUT to `/status` that changes `spec` (or labels) leaves them unchanged
    and applies the status change."""
    before = widgets.get(WIDGETS + "/w1")
    patched = widgets.ok(
        "PATCH",
        WIDGETS + "/w1/status",
        {"spec": {"size": 50}, "metadata": {"labels": {"sneaky": "yes"}}, "status": {"phase": "Done", "ready": 1}},
        content_type=MERGE,
    )
    assert patched["spec"] == before["spec"]
    assert "labels" not in patched["metadata"]
    assert patched["status"] == {"phase": "Done", "ready": 1}

    replaced = copy.deepcopy(patched)
    replaced["spec"]["size"] = 60
    replaced["status"] = {"phase": "Again"}
    updated = widgets.ok("PUT", WIDGETS + "/w1/status", replaced)
    assert updated["spec"] == before["spec"] and updated["status"] == {"phase": "Again"}
    assert widgets.get(WIDGETS + "/w1") == updated
    # GET of /status returns the whole object.
    assert widgets.get(WIDGETS + "/w1/status") == updated


def test_status_events_carry_the_status_write(widgets: Http) -> None:
    """S9 / statement 19: a `/status` write is one MODIFIED event whose RV is the response's, and a main-resource
    write that only touched status emits nothing."""
    rv = int(widgets.get(WIDGETS + "/w1")["metadata"]["resourceVersion"])
    widgets.ok("PATCH", WIDGETS + "/w1", {"status": {"phase": "Ignored"}}, content_type=MERGE)
    written = widgets.ok("PATCH", WIDGETS + "/w1/status", {"status": {"phase": "Counted"}}, content_type=MERGE)
    response = open_watch(widgets, WIDGETS, resourceVersion=str(rv), timeoutSeconds="5")
    try:
        event = next(e for e in watch_events(response) if e["type"] != "BOOKMARK")
    finally:
        response.close()
    assert event["type"] == "MODIFIED"
    assert event["object"]["metadata"]["resourceVersion"] == written["metadata"]["resourceVersion"]
    assert event["object"]["status"] == {"phase": "Counted"}


def test_kubernetes_client_status_subresource(widgets: Http, plane: Plane) -> None:
    """S9 / statement 19 through the kubernetes client: `patch_namespaced_custom_object_status` changes only
    status; `patch_namespaced_custom_object` cannot change it."""
    api = k8s_client(plane)
    result = api.patch_namespaced_custom_object_status(
        "example.com", "v1", "default", "widgets", "w1", {"spec": {"size": 9}, "status": {"phase": "Client"}}
    )
    assert result["status"] == {"phase": "Client"} and result["spec"]["size"] == 1
    result = api.patch_namespaced_custom_object(
        "example.com", "v1", "default", "widgets", "w1", {"spec": {"size": 9}, "status": {"phase": "Nope"}}
    )
    assert result["status"] == {"phase": "Client"} and result["spec"]["size"] == 9
    assert api.get_namespaced_custom_object_status("example.com", "v1", "default", "widgets", "w1") == result


@pytest.mark.kubectl
def test_kubectl_status_subresource(widgets: Http, kubectl: CLI, tmp_path: Path) -> None:
    """S9 / statement 19 through real kubectl: `create -f` drops status, `patch --subresource=status` sets
    only status, `get --subresource=status` reads it, and a plain `patch` cannot touch status."""
    body = widget("w2", size=2)
    body["status"] = {"phase": "Forged"}
    kubectl.run("create", "-f", str(write_manifest(tmp_path, "w2.yaml", body)))
    assert "status" not in widgets.get(WIDGETS + "/w2")

    kubectl.run(
        "patch",
        "widget",
        "w2",
        "--subresource=status",
        "--type=merge",
        "-p",
        '{"status":{"phase":"Up"},"spec":{"size":7}}',
    )
    stored = widgets.get(WIDGETS + "/w2")
    assert stored["status"] == {"phase": "Up"} and stored["spec"]["size"] == 2
    shown = json.loads(kubectl.run("get", "widget", "w2", "--subresource=status", "-o", "json").stdout)
    assert shown["status"] == {"phase": "Up"}

    kubectl.run("patch", "widget", "w2", "--type=merge", "-p", '{"status":{"phase":"Down"}}')
    assert widgets.get(WIDGETS + "/w2")["status"] == {"phase": "Up"}


@pytest.mark.parametrize(
    ("collection", "body", "status", "spec_patch", "spec_probe"),
    [
        (JOBS, job("j1", command=["true"]), {"active": 3}, {"spec": {"parallelism": 4}}, ("parallelism", 1)),
        (DEPLOYMENTS, deployment("d1"), {"replicas": 7}, {"spec": {"replicas": 4}}, ("replicas", 1)),
        (PODS, pod("p1"), {"phase": "Running", "podIP": "10.0.0.9"}, {"spec": {"activeDeadlineSeconds": 5}}, None),
    ],
    ids=["job", "deployment", "pod"],
)
def test_builtin_status_subresources(
    http: Http, collection: str, body: JSON, status: JSON, spec_patch: JSON, spec_probe: tuple[str, int] | None
) -> None:
    """S9 / statement 19 on built-ins with a status subresource: POST resets status (a Pod starts Pending),
    the main resource ignores status, `/status` ignores spec."""
    name = body["metadata"]["name"]
    path = f"{collection}/{name}"
    sent = copy.deepcopy(body)
    sent["status"] = status
    created = http.ok("POST", collection, sent, expect=201)
    initial = created.get("status") or {}
    for key, value in status.items():
        assert initial.get(key) != value, initial
    if collection == PODS:
        assert initial == {"phase": "Pending", "qosClass": "BestEffort"}

    # A real plane's controllers write the status now (the scheduler, the Job and Deployment controllers);
    # what the main resource must leave alone is the status as it then stands.
    current = settled(http, collection, name)
    main = http.ok("PATCH", path, {"status": status}, content_type=MERGE)
    assert (main.get("status") or {}) == (current.get("status") or {})
    assert main["metadata"]["resourceVersion"] == current["metadata"]["resourceVersion"]

    via_status = http.ok("PATCH", path + "/status", {**spec_patch, "status": status}, content_type=MERGE)
    for key, value in status.items():
        assert via_status["status"][key] == value
    assert via_status["spec"] == created["spec"]
    if spec_probe is not None:
        field, value = spec_probe
        assert via_status["spec"][field] == value


# ----------------------------------------------------------------------------------- statement 20
def test_generation_tracks_spec_changes_only(widgets: Http) -> None:
    """S9 / statement 20: with a status subresource, `generation` increments on spec changes and not on
    metadata (labels, annotations, finalizers) or status changes."""
    assert generation(widgets, WIDGETS + "/w1") == 1
    widgets.ok("PATCH", WIDGETS + "/w1", {"spec": {"size": 2}}, content_type=MERGE)
    assert generation(widgets, WIDGETS + "/w1") == 2
    widgets.ok(
        "PATCH",
        WIDGETS + "/w1",
        {"metadata": {"labels": {"a": "b"}, "annotations": {"x": "y"}, "finalizers": ["example.com/f"]}},
        content_type=MERGE,
    )
    assert generation(widgets, WIDGETS + "/w1") == 2
    widgets.ok("PATCH", WIDGETS + "/w1/status", {"status": {"phase": "Moved"}}, content_type=MERGE)
    assert generation(widgets, WIDGETS + "/w1") == 2
    current = widgets.get(WIDGETS + "/w1")
    current["spec"]["tags"] = ["t"]
    assert widgets.ok("PUT", WIDGETS + "/w1", current)["metadata"]["generation"] == 3
    # A client cannot set generation itself.
    patched = widgets.ok("PATCH", WIDGETS + "/w1", {"metadata": {"generation": 42}}, content_type=MERGE)
    assert patched["metadata"]["generation"] == 3
    # Removing a spec field is a spec change as well.
    assert (
        widgets.ok("PATCH", WIDGETS + "/w1", {"spec": {"tags": None}}, content_type=MERGE)["metadata"]["generation"]
        == 4
    )


def test_generation_without_status_subresource_counts_status(gadgets: Http) -> None:
    """S9 / statement 20: without a status subresource, `status` is ordinary content: writing it through the main
    resource sticks and increments `generation`; metadata changes still do not."""
    assert generation(gadgets, GADGETS + "/g1") == 1
    patched = gadgets.ok("PATCH", GADGETS + "/g1", {"status": {"phase": "Set"}}, content_type=MERGE)
    assert patched["status"] == {"phase": "Set"}
    assert patched["metadata"]["generation"] == 2
    gadgets.ok("PATCH", GADGETS + "/g1", {"metadata": {"labels": {"a": "b"}}}, content_type=MERGE)
    assert generation(gadgets, GADGETS + "/g1") == 2
    gadgets.ok("PATCH", GADGETS + "/g1", {"spec": {"size": 5}}, content_type=MERGE)
    assert generation(gadgets, GADGETS + "/g1") == 3
    # And POST keeps a status when there is no subresource.
    body = widget("g2", size=1)
    body["kind"] = "Gadget"
    body["status"] = {"phase": "Born"}
    assert gadgets.ok("POST", GADGETS, body, expect=201)["status"] == {"phase": "Born"}


def test_deployment_generation(http: Http) -> None:
    """S9 / statement 20 on a built-in that tracks generation (Deployment): spec changes count, labels and
    status do not."""
    created = http.ok("POST", DEPLOYMENTS, deployment("d1"), expect=201)
    assert created["metadata"]["generation"] == 1
    http.ok("PATCH", DEPLOYMENTS + "/d1", {"spec": {"replicas": 3}}, content_type=MERGE)
    assert generation(http, DEPLOYMENTS + "/d1") == 2
    http.ok("PATCH", DEPLOYMENTS + "/d1", {"metadata": {"labels": {"x": "y"}}}, content_type=MERGE)
    http.ok(
        "PATCH", DEPLOYMENTS + "/d1/status", {"status": {"replicas": 3, "observedGeneration": 2}}, content_type=MERGE
    )
    stored = http.get(DEPLOYMENTS + "/d1")
    assert stored["metadata"]["generation"] == 2
    assert stored["status"]["observedGeneration"] == 2


# ----------------------------------------------------------------------------------- statement 21
def test_status_without_subresource_is_404(gadgets: Http) -> None:
    """S9 / statement 21: `/status` of a CR whose CRD declares no status subresource → 404 for GET, PUT and
    PATCH, and discovery lists no `gadgets/status`; nothing changes."""
    before = gadgets.get(GADGETS + "/g1")
    for method, body, ctype in (
        ("GET", None, None),
        ("PATCH", {"status": {"phase": "x"}}, MERGE),
        ("PUT", {**before, "status": {"phase": "x"}}, "application/json"),
    ):
        response = gadgets.call(method, GADGETS + "/g1/status", body, content_type=ctype)
        assert response.status_code == 404, (method, response.text)
        assert response.json()["reason"] == "NotFound"
    assert gadgets.get(GADGETS + "/g1") == before
    names = {r["name"] for r in gadgets.get("/apis/example.com/v1")["resources"]}
    assert "gadgets" in names and "gadgets/status" not in names


@pytest.mark.kubectl
def test_kubectl_status_patch_without_subresource(gadgets: Http, kubectl: CLI) -> None:
    """S9 / statement 21 through real kubectl: `patch --subresource=status` on such a CR fails with NotFound."""
    result = kubectl.run(
        "patch", "gadget", "g1", "--subresource=status", "--type=merge", "-p", '{"status":{"phase":"x"}}', check=False
    )
    assert result.returncode == 1
    assert "NotFound" in result.stderr or "not found" in result.stderr
    assert "status" not in gadgets.get(GADGETS + "/g1")
