"""Conformance, API-surface spec §9 statements 1-8: transport and discovery.

Aspects covered:
- exact `Content-Type: application/json` on every JSON answer (objects, lists, Tables, discovery,
  OpenAPI documents, watch streams, every API error code) and the client-side consequences (pykube and the
  kubernetes client surface the Status message) — statement 1; the exceptions a real apiserver makes (the
  OpenAPI v3 index sniffed as `text/plain; charset=utf-8`, Go's plain-text `404 page not found` for unknown
  groups and paths); `text/plain` pod logs where a kubelet serves them, 204 No Content for a pod no node runs,
  JSON Statuses for the log endpoint's refusals;
- POST/PUT/DELETE bodies without a Content-Type read as JSON (raw HTTP, pykube, kubernetes client) — 2;
- 415 `UnsupportedMediaType` for unknown patch types and for strategic merge on a CR, also as real
  `kubectl patch` reports it — 3;
- unknown query parameters (client-go's `timeout=32s`) ignored on every verb — 4;
- discovery documents (`/api`, `/api/v1`, `/apis`, `/apis/{g}`, `/apis/{g}/{v}`) incl. `widgets/status`
  and `pods/log`, read raw, through the kubernetes client and real `kubectl api-resources` — 5;
- CRD create/delete reflected in discovery and OpenAPI by the time the CRD watch event arrives (embedded;
  a real apiserver catches up moments later) — 6;
- OpenAPI v3 index covering every served GroupVersion (plus the discovery endpoints' documents), per-resource
  `patch` operations with the GVK
  and an operation-level `fieldValidation` parameter, `hash` changing with the document, and real
  `kubectl explain` following a schema change — 7;
- real `kubectl apply` of a CRD, a CR and a modified CR printing created/created/configured with
  default (strict) validation, observed as `fieldValidation=Strict` in the captured requests — 8.
"""

from __future__ import annotations

import importlib.util
import json
import threading
from pathlib import Path
from typing import Any

import kubernetes
import pykube
import pytest

from dops.emulator import EmbeddedServer, ServerSettings
from tests.builders import WidgetCRD, configmap, pod, widget
from tests.emulator._conformance import (
    APPLY,
    CONFIGMAPS,
    CRDS,
    JSON_PATCH,
    MERGE,
    PODS,
    STRATEGIC,
    WIDGETS,
    Http,
    install_crd,
    open_watch,
    records,
    watch_events,
    write_manifest,
)
from tests.helpers import CLI, eventually
from tests.planes import Plane

JSON = dict[str, Any]
pytestmark = pytest.mark.both_planes
TABLE_ACCEPT = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json"


@pytest.fixture
def http(plane: Plane) -> Http:
    return Http(plane)


@pytest.fixture
def widgets(http: Http) -> Http:
    """The widgets.example.com CRD installed, plus one Widget `w1`."""
    install_crd(http)
    http.ok("POST", WIDGETS, widget("w1", size=1), expect=201)
    return http


def k8s_client(server: Plane | EmbeddedServer) -> kubernetes.client.ApiClient:
    return kubernetes.config.new_client_from_config(config_file=str(server.kubeconfig))


# ----------------------------------------------------------------------------------- statement 1
def test_every_json_response_has_exact_application_json_content_type(widgets: Http) -> None:
    """S9 / statement 1: every JSON response, errors included, carries `Content-Type: application/json`
    exactly — no `; charset=utf-8` (pykube compares the header string)."""
    http = widgets
    cases: list[tuple[str, str, Any, dict[str, str], int]] = [
        ("GET", "/version", None, {}, 200),
        ("GET", "/api", None, {}, 200),
        ("GET", "/api/v1", None, {}, 200),
        ("GET", "/apis", None, {}, 200),
        ("GET", "/apis/example.com", None, {}, 200),
        ("GET", "/apis/example.com/v1", None, {}, 200),
        ("GET", "/openapi/v3/apis/example.com/v1", None, {}, 200),
        ("GET", WIDGETS, None, {}, 200),
        ("GET", WIDGETS + "/w1", None, {}, 200),
        ("GET", WIDGETS, None, {"Accept": TABLE_ACCEPT}, 200),
        ("POST", CONFIGMAPS, configmap("c1", a="1"), {}, 201),
        ("PATCH", CONFIGMAPS + "/c1", {"data": {"a": "2"}}, {"Content-Type": MERGE}, 200),
        ("DELETE", CONFIGMAPS + "/c1", None, {}, 200),
        # errors
        ("GET", WIDGETS + "/missing", None, {}, 404),
        ("GET", "/apis/apps/v9", None, {}, 404),
        ("POST", WIDGETS, widget("w1", size=1), {}, 409),
        ("POST", WIDGETS, widget("w9", size=1000), {}, 422),
        ("GET", WIDGETS, None, {"params": "labelSelector=a%20in%20(", "Accept": "*/*"}, 400),
        ("PATCH", CONFIGMAPS, {}, {"Content-Type": MERGE}, 405),
        ("PATCH", WIDGETS, {}, {"Content-Type": MERGE}, 400),  # the CRD handler serves it: "name must be provided"
        ("PATCH", WIDGETS + "/w1", {}, {"Content-Type": STRATEGIC}, 415),
    ]
    seen = []
    for method, path, body, headers, expected in cases:
        params = headers.pop("params", None)
        ctype = headers.pop("Content-Type", "application/json")
        response = http.call(method, path + (f"?{params}" if params else ""), body, content_type=ctype, headers=headers)
        seen.append((method, path, response.status_code, response.headers.get("Content-Type")))
        assert response.status_code == expected, f"{method} {path}: {response.status_code} {response.text}"
        assert response.headers.get("Content-Type") == "application/json", seen[-1]
        payload = response.json()
        if expected >= 400:
            assert payload["kind"] == "Status" and payload["code"] == expected, payload


def test_responses_outside_the_api_handlers_are_not_application_json(widgets: Http) -> None:
    """S9 / statement 1, its exceptions: the OpenAPI v3 index is written by `http.ServeContent` without a type, so
    it goes out sniffed as `text/plain; charset=utf-8` (a JSON body all the same); a path no handler resolves (an
    unknown group, `/nonsense`, and in a group served by CRDs an unknown version, resource or scope, which the CRD
    handler passes on) is Go's plain-text `404 page not found`, not a Status."""
    index = widgets.call("GET", "/openapi/v3")
    assert index.status_code == 200
    assert index.headers.get("Content-Type") == "text/plain; charset=utf-8"
    assert "apis/example.com/v1" in index.json()["paths"]
    unresolved = (
        "/nonsense",
        "/apis/nothing.example",
        "/apis/nothing.example/v1",
        WIDGETS.replace("example.com", "nothing.example"),
        "/apis/example.com/v9",
        "/apis/example.com/v9/namespaces/default/widgets",
        "/apis/example.com/v1/namespaces/default/gadgets",
        "/apis/example.com/v1/widgets/w1",  # a namespaced kind addressed without its namespace
    )
    for path in unresolved:
        response = widgets.call("GET", path)
        assert response.status_code == 404, path
        assert response.headers.get("Content-Type") == "text/plain; charset=utf-8", path
        assert response.headers.get("X-Content-Type-Options") == "nosniff", path
        assert response.text == "404 page not found\n", path
    # A built-in group answers the same misses with a Status; so does the CRD handler for a subresource it lacks.
    for path in ("/apis/apps/v9", "/apis/apps/v1/namespaces/default/gadgets", "/api/v1/configmaps/c1"):
        response = widgets.call("GET", path)
        assert (response.status_code, response.headers.get("Content-Type")) == (404, "application/json"), path
        assert response.json()["message"] == "the server could not find the requested resource"
    response = widgets.call("GET", WIDGETS + "/w1/nosuchsubresource")
    assert (response.status_code, response.headers.get("Content-Type")) == (404, "application/json")
    assert response.json()["message"] == 'widgets.example.com "w1" not found'


def test_watch_streams_are_application_json(widgets: Http) -> None:
    """S9 / statement 1: a watch stream is an HTTP 200 with `Content-Type: application/json`, one event per line."""
    response = open_watch(widgets, WIDGETS)
    try:
        assert response.headers.get("Content-Type") == "application/json"
        first = next(watch_events(response))
        assert first["type"] == "ADDED" and first["object"]["metadata"]["name"] == "w1"
    finally:
        response.close()


def test_clients_surface_status_messages(widgets: Http, plane: Plane) -> None:
    """S9 / statement 1: because the content type is exact, pykube's `HTTPError` and the kubernetes
    client's `ApiException` carry the Status message and code instead of a generic HTTP error."""
    api = pykube.HTTPClient(pykube.KubeConfig.from_file(str(plane.kubeconfig)))  # type: ignore[attr-defined]
    widget_type = pykube.object_factory(api, "example.com/v1", "Widget")
    duplicate = widget_type(api, widget("w1", size=2))
    with pytest.raises(pykube.exceptions.HTTPError) as caught:
        duplicate.create()
    assert caught.value.code == 409
    assert 'widgets.example.com "w1" already exists' in str(caught.value)

    client = kubernetes.client.CustomObjectsApi(k8s_client(plane))
    with pytest.raises(kubernetes.client.ApiException) as failure:
        client.get_namespaced_custom_object("example.com", "v1", "default", "widgets", "nope")
    assert failure.value.status == 404
    assert failure.value.headers["Content-Type"] == "application/json"
    body = json.loads(failure.value.body)
    assert body["reason"] == "NotFound" and body["message"] == 'widgets.example.com "nope" not found'


def test_pod_log_of_a_pod_no_node_runs_is_204_and_errors_are_json(http: Http) -> None:
    """S9 / statement 1 (the log endpoint without a kubelet): a pod no node runs yet has an empty log, 204 No Content
    without a Content-Type (the apiserver has no location to stream from); the apiserver's own refusals (unknown
    container, missing pod, a node that does not exist) are JSON Statuses."""
    http.ok("POST", PODS, pod("p1", command=["sh", "-c", "echo hi"]), expect=201)
    response = http.call("GET", PODS + "/p1/log")
    assert (response.status_code, response.content, response.headers.get("Content-Type")) == (204, b"", None)
    wrong = http.call("GET", PODS + "/p1/log", params={"container": "nope"})
    assert (wrong.status_code, wrong.headers["Content-Type"]) == (400, "application/json")
    assert wrong.json()["message"] == "container nope is not valid for pod p1"
    missing = http.call("GET", PODS + "/nope/log")
    assert missing.status_code == 404 and missing.headers["Content-Type"] == "application/json"
    assert missing.json()["message"] == 'pods "nope" not found'
    # Bound to a node that does not exist: the node lookup's NotFound, named after pods as upstream words it.
    bound = pod("p2", command=["sh", "-c", "echo hi"])
    bound["spec"]["nodeName"] = "no-such-node"
    http.ok("POST", PODS, bound, expect=201)
    orphan = http.call("GET", PODS + "/p2/log")
    assert (orphan.status_code, orphan.headers["Content-Type"]) == (404, "application/json")
    assert orphan.json()["message"] == 'pods "no-such-node" not found'
    assert orphan.json()["details"] == {"name": "no-such-node", "kind": "pods"}


def test_pod_log_of_a_bound_pod_without_kubelet_is_a_waiting_status(emulator: EmbeddedServer) -> None:
    """Embedded only (a real apiserver would dial the Node's kubelet): without the kubelet controller, a pod bound to
    an existing Node answers the kubelet's JSON 400 `... is waiting to start: ContainerCreating`."""
    http = Http(emulator)
    http.ok("POST", "/api/v1/nodes", {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n1"}}, expect=201)
    bound = pod("p1", command=["sh", "-c", "echo hi"])
    bound["spec"]["nodeName"] = "n1"
    http.ok("POST", PODS, bound, expect=201)
    response = http.call("GET", PODS + "/p1/log")
    assert (response.status_code, response.headers["Content-Type"]) == (400, "application/json")
    assert response.json()["message"] == 'container "main" in pod "p1" is waiting to start: ContainerCreating'


def _kubelet_available() -> bool:
    if importlib.util.find_spec("dops.emulator.controllers.kubelet") is None:
        return False
    return hasattr(importlib.import_module("dops.emulator.controllers.kubelet"), "Kubelet")


def test_pod_logs_are_text_plain() -> None:
    """S9 / statement 1 (log half): pod log responses are `text/plain`, not JSON (the kubernetes client
    would otherwise `json.loads` them). Uses a simulated container, so no process or image is involved."""
    if not _kubelet_available():
        pytest.skip("the process kubelet (runtime issue) serves pod logs")
    with EmbeddedServer.run_in_thread(ServerSettings(controllers=("kubelet",))) as server:
        http = Http(server)
        body = pod("p1", command=["sh", "-c", "echo hello"])
        body["metadata"]["annotations"] = {"dops.emulator/simulate": "true", "dops.emulator/simulate-logs": "hello\n"}
        http.ok("POST", PODS, body, expect=201)
        response = eventually(
            lambda: http.call("GET", PODS + "/p1/log"),
            lambda r: r.status_code == 200 and "hello" in r.text,
            timeout=20,
            describe="pod p1 logs",
        )
        assert response.headers["Content-Type"].split(";")[0] == "text/plain"


# ----------------------------------------------------------------------------------- statement 2
def test_bodies_without_content_type_are_read_as_json(widgets: Http, plane: Plane) -> None:
    """S9 / statement 2: POST, PUT and DELETE without a Content-Type header are parsed as JSON
    (pykube and the kubernetes client send POST/DELETE bodies that way)."""
    http = widgets
    created = http.ok("POST", CONFIGMAPS, configmap("bare", a="1"), content_type=None, expect=201)
    assert created["data"] == {"a": "1"}

    created["data"] = {"a": "2"}
    replaced = http.ok("PUT", CONFIGMAPS + "/bare", created, content_type=None)
    assert replaced["data"] == {"a": "2"}

    # A DeleteOptions body is honoured: a wrong uid precondition is refused, a right one deletes.
    code, status = http.status_of(
        "DELETE", CONFIGMAPS + "/bare", {"preconditions": {"uid": "not-the-uid"}}, content_type=None
    )
    assert (code, status["reason"]) == (409, "Conflict"), status
    assert status["message"] == (
        'Operation cannot be fulfilled on ConfigMap "bare": the UID in the precondition (not-the-uid) does not match'
        f" the UID in record ({created['metadata']['uid']}). The object might have been deleted and then recreated"
    )
    assert status["details"] == {"name": "bare", "kind": "ConfigMap"}
    assert http.get(CONFIGMAPS + "/bare")["data"] == {"a": "2"}
    http.ok("DELETE", CONFIGMAPS + "/bare", {"preconditions": {"uid": created["metadata"]["uid"]}}, content_type=None)
    assert http.call("GET", CONFIGMAPS + "/bare").status_code == 404

    # pykube create() and delete() send no Content-Type at all.
    api = pykube.HTTPClient(pykube.KubeConfig.from_file(str(plane.kubeconfig)))  # type: ignore[attr-defined]
    pykube.ConfigMap(api, configmap("from-pykube", b="2")).create()
    assert http.get(CONFIGMAPS + "/from-pykube")["data"] == {"b": "2"}
    pykube.ConfigMap(api, configmap("from-pykube")).delete()
    assert http.call("GET", CONFIGMAPS + "/from-pykube").status_code == 404

    # The kubernetes client's POST.
    core = kubernetes.client.CoreV1Api(k8s_client(plane))
    made = core.create_namespaced_config_map("default", configmap("from-client", c="3"))
    assert made.data == {"c": "3"} and made.metadata.uid


def test_bodies_above_really_carry_no_content_type(emulator: EmbeddedServer) -> None:
    """S9 / statement 2, the premise (embedded only: it reads the server's access log): the raw requests with
    `content_type=None` and pykube's create()/delete() reach the server without any Content-Type header."""
    http = Http(emulator)
    emulator.http.access_log = []
    created = http.ok("POST", CONFIGMAPS, configmap("bare", a="1"), content_type=None, expect=201)
    http.ok("PUT", CONFIGMAPS + "/bare", created, content_type=None)
    http.ok("DELETE", CONFIGMAPS + "/bare", {"preconditions": {"uid": created["metadata"]["uid"]}}, content_type=None)
    sent = [r for r in records(emulator, path_part="/configmaps") if r.method != "GET"]
    assert [(r.method, r.content_type) for r in sent] == [("POST", ""), ("PUT", ""), ("DELETE", "")]

    api = pykube.HTTPClient(pykube.KubeConfig.from_file(str(emulator.kubeconfig)))  # type: ignore[attr-defined]
    emulator.http.access_log = []
    pykube.ConfigMap(api, configmap("from-pykube", b="2")).create()
    pykube.ConfigMap(api, configmap("from-pykube")).delete()
    assert [(r.method, r.content_type) for r in records(emulator, path_part="configmaps") if r.method != "GET"] == [
        ("POST", ""),
        ("DELETE", ""),
    ]


# ----------------------------------------------------------------------------------- statement 3
@pytest.mark.parametrize("content_type", ["application/xml", "text/plain", "application/json", None])
def test_unsupported_patch_content_type_is_415(widgets: Http, content_type: str | None) -> None:
    """S9 / statement 3: a PATCH with an unsupported (or missing) Content-Type → 415 `UnsupportedMediaType`."""
    before = widgets.get(WIDGETS + "/w1")
    code, status = widgets.status_of("PATCH", WIDGETS + "/w1", {"spec": {"size": 5}}, content_type=content_type)
    assert (code, status["reason"]) == (415, "UnsupportedMediaType"), status
    assert widgets.get(WIDGETS + "/w1") == before


def test_strategic_merge_patch_on_a_custom_resource_is_415(widgets: Http) -> None:
    """S9 / statement 3: strategic-merge-patch is for built-in kinds; on a CR it is 415 and nothing changes,
    and the message does not offer strategic merge as an accepted type."""
    before = widgets.get(WIDGETS + "/w1")
    code, status = widgets.status_of("PATCH", WIDGETS + "/w1", {"spec": {"size": 5}}, content_type=STRATEGIC)
    assert (code, status["reason"]) == (415, "UnsupportedMediaType"), status
    accepted = status["message"].split("accepted media types include:")[1].split(";")[0]
    assert JSON_PATCH in accepted and MERGE in accepted and APPLY in accepted
    assert STRATEGIC not in accepted, status["message"]
    assert widgets.get(WIDGETS + "/w1") == before
    # ... while strategic merge on a built-in works.
    widgets.ok("POST", CONFIGMAPS, configmap("c1", a="1"), expect=201)
    assert widgets.ok("PATCH", CONFIGMAPS + "/c1", {"data": {"b": "2"}}, content_type=STRATEGIC)["data"] == {
        "a": "1",
        "b": "2",
    }


@pytest.mark.kubectl
def test_kubectl_patch_default_strategic_on_a_cr_reports_unsupported_media_type(widgets: Http, kubectl: CLI) -> None:
    """S9 / statement 3 through real kubectl: `kubectl patch` (strategic by default) on a CR fails
    with the server's 415 message; `--type=merge` works."""
    result = kubectl.run("patch", "widget", "w1", "-p", '{"spec":{"size":2}}', check=False)
    assert result.returncode == 1
    assert "application/strategic-merge-patch+json is not supported by example.com/v1, Kind=Widget" in result.stderr
    assert "the body of the request was in an unknown format" in result.stderr
    assert widgets.get(WIDGETS + "/w1")["spec"]["size"] == 1
    kubectl.run("patch", "widget", "w1", "--type=merge", "-p", '{"spec":{"size":2}}')
    assert widgets.get(WIDGETS + "/w1")["spec"]["size"] == 2


# ----------------------------------------------------------------------------------- statement 4
def test_unknown_query_parameters_are_ignored(widgets: Http) -> None:
    """S9 / statement 4: unknown query parameters (client-go's `timeout=32s`, anything else) do not fail a request."""
    extra = {"timeout": "32s", "someFutureOption": "x"}
    for path in ("/api", "/api/v1", "/apis", "/apis/example.com/v1", "/version", "/openapi/v3", WIDGETS):
        response = widgets.call("GET", path, params=extra)
        assert response.status_code == 200, (path, response.text)
    assert widgets.ok("GET", WIDGETS + "/w1", params=extra)["metadata"]["name"] == "w1"
    widgets.ok("POST", WIDGETS, widget("w2", size=2), params=extra, expect=201)
    assert (
        widgets.ok("PATCH", WIDGETS + "/w2", {"spec": {"size": 3}}, content_type=MERGE, params=extra)["spec"]["size"]
        == 3
    )
    current = widgets.get(WIDGETS + "/w2")
    widgets.ok("PUT", WIDGETS + "/w2", current, params=extra)
    widgets.ok("DELETE", WIDGETS + "/w2", params=extra)
    assert widgets.call("GET", WIDGETS + "/w2").status_code == 404


# ----------------------------------------------------------------------------------- statement 5
def test_discovery_documents(widgets: Http) -> None:
    """S9 / statement 5: `/api` → APIVersions, `/apis` → APIGroupList, `/apis/{g}` → APIGroup,
    `/api/v1` and `/apis/{g}/{v}` → APIResourceList with `widgets/status` and `pods/log` entries."""
    api = widgets.get("/api")
    assert api["kind"] == "APIVersions" and api["versions"] == ["v1"]

    groups = widgets.get("/apis")
    assert groups["kind"] == "APIGroupList"
    by_name = {g["name"]: g for g in groups["groups"]}
    for required in ("apps", "batch", "apiextensions.k8s.io", "coordination.k8s.io", "example.com"):
        assert required in by_name, sorted(by_name)
    example = by_name["example.com"]
    assert example["versions"] == [{"groupVersion": "example.com/v1", "version": "v1"}]
    assert example["preferredVersion"] == {"groupVersion": "example.com/v1", "version": "v1"}

    group = widgets.get("/apis/example.com")
    assert group["kind"] == "APIGroup" and group["name"] == "example.com"

    core = widgets.get("/api/v1")
    assert core["kind"] == "APIResourceList" and core["groupVersion"] == "v1"
    core_by_name = {r["name"]: r for r in core["resources"]}
    for plural in ("namespaces", "pods", "configmaps", "secrets", "events", "serviceaccounts", "services"):
        assert plural in core_by_name, sorted(core_by_name)
    assert core_by_name["pods/log"]["verbs"] == ["get"]
    assert core_by_name["pods/status"]["verbs"] == ["get", "patch", "update"]
    assert core_by_name["pods"]["namespaced"] is True and core_by_name["namespaces"]["namespaced"] is False
    assert set(core_by_name["pods"]["verbs"]) >= {"create", "delete", "get", "list", "patch", "update", "watch"}

    batch = {r["name"]: r for r in widgets.get("/apis/batch/v1")["resources"]}
    assert "jobs" in batch and batch["jobs/status"]["verbs"] == ["get", "patch", "update"]

    resources = widgets.get("/apis/example.com/v1")
    assert resources["kind"] == "APIResourceList" and resources["groupVersion"] == "example.com/v1"
    entries = {r["name"]: r for r in resources["resources"]}
    assert entries["widgets"]["kind"] == "Widget"
    assert entries["widgets"]["singularName"] == "widget"
    assert entries["widgets"]["namespaced"] is True
    assert entries["widgets"]["shortNames"] == ["wd"]
    assert entries["widgets/status"]["verbs"] == ["get", "patch", "update"]
    assert entries["widgets/status"]["kind"] == "Widget"


@pytest.mark.kubectl
def test_discovery_through_real_clients(widgets: Http, plane: Plane, kubectl: CLI) -> None:
    """S9 / statement 5 through the kubernetes client and real `kubectl api-resources` / `api-versions`."""
    client = k8s_client(plane)
    assert kubernetes.client.CoreApi(client).get_api_versions().versions == ["v1"]
    groups = {g.name for g in kubernetes.client.ApisApi(client).get_api_versions().groups}
    assert {"example.com", "batch", "apiextensions.k8s.io"} <= groups

    versions = kubectl.run("api-versions").stdout.split()
    assert {"v1", "batch/v1", "example.com/v1", "apiextensions.k8s.io/v1"} <= set(versions)
    rows = [line.split() for line in kubectl.run("api-resources", "--no-headers").stdout.splitlines()]
    widgets_row = next(row for row in rows if row[0] == "widgets")
    assert widgets_row == ["widgets", "wd", "example.com/v1", "true", "Widget"]
    assert any(row[0] == "pods" and row[-1] == "Pod" for row in rows)


# ----------------------------------------------------------------------------------- statement 6
def _crd_visibility(http: Http) -> tuple[bool, bool, bool]:
    """(group in /apis, widgets in /apis/example.com/v1, document in the OpenAPI v3 index)."""
    groups = {g["name"] for g in http.get("/apis")["groups"]}
    listing = http.call("GET", "/apis/example.com/v1")
    listed = listing.status_code == 200 and "widgets" in {r["name"] for r in listing.json()["resources"]}
    indexed = "apis/example.com/v1" in http.call("GET", "/openapi/v3").json()["paths"]
    return "example.com" in groups, listed, indexed


@pytest.mark.gap("discovery and OpenAPI follow a CRD synchronously (real: controllers, within about a second)")
def test_discovery_follows_crd_before_its_watch_event(http: Http, plane: Plane) -> None:
    """S9 / statement 6: when the CRD's ADDED watch event arrives, the embedded plane's `/apis` already lists the
    group, `/apis/{g}/{v}` the plural and the OpenAPI index the document (kopf re-scans discovery on that event);
    after the DELETED event all are gone. A real apiserver updates discovery and OpenAPI from controllers that
    watch CRDs too, so there they catch up shortly after the event (typically well under a second)."""
    stream = open_watch(
        http, CRDS, sendInitialEvents="true", resourceVersionMatch="NotOlderThan", allowWatchBookmarks="true"
    )
    events = watch_events(stream)
    writer_http = Http(plane)  # a session of its own: the writer runs in another thread
    try:
        for event in events:  # the watch is registered once the initial list has been streamed
            if event["type"] == "BOOKMARK":
                assert event["object"]["metadata"]["annotations"]["k8s.io/initial-events-end"] == "true"
                break
        assert http.call("GET", "/apis/example.com/v1").status_code == 404

        results: list[int] = []
        writer = threading.Thread(
            target=lambda: results.append(writer_http.call("POST", CRDS, WidgetCRD().build()).status_code)
        )
        writer.start()
        added = next(e for e in events if e["type"] == "ADDED")
        # Look at discovery with the event in hand, before anything else is read.
        at_event = _crd_visibility(http)
        writer.join(10)
        assert results == [201]
        assert added["object"]["metadata"]["name"] == "widgets.example.com"
        if plane.real:
            eventually(lambda: _crd_visibility(http), lambda seen: seen == (True, True, True), timeout=60)
        else:
            assert at_event == (True, True, True)

        http.ok("DELETE", CRDS + "/widgets.example.com")
        if plane.real:
            # The CRD goes once its cleanup finalizer is done, which under load can outlast this stream's read
            # timeout; what this statement says of the real plane is that discovery follows, so poll for it.
            eventually(lambda: http.call("GET", CRDS + "/widgets.example.com").status_code, lambda c: c == 404,
                       timeout=60, describe="the CRD gone")  # fmt: skip
            eventually(lambda: _crd_visibility(http), lambda seen: seen == (False, False, False), timeout=60)
        else:
            deleted = next(e for e in events if e["type"] == "DELETED")
            assert deleted["object"]["metadata"]["name"] == "widgets.example.com"
            assert _crd_visibility(http) == (False, False, False)
        assert http.call("GET", "/apis/example.com/v1").status_code == 404
        assert http.call("GET", "/apis/example.com").status_code == 404
        assert http.call("GET", WIDGETS).status_code == 404
    finally:
        stream.close()
        writer_http.session.close()


# ----------------------------------------------------------------------------------- statement 7
def _served_group_versions(http: Http) -> set[str]:
    served = {"api/v1"}
    for group in http.get("/apis")["groups"]:
        served |= {f"apis/{v['groupVersion']}" for v in group["versions"]}
    return served


def _indexed_endpoint_documents(http: Http) -> set[str]:
    """The other documents the index lists: the discovery endpoints (`/api`, `/apis`, `/version`, and `/apis/{g}` of
    the built-in groups; a CRD's group gets none) and the service-account issuer endpoints where they are served."""
    crd_groups = {crd["spec"]["group"] for crd in http.get(CRDS)["items"]}
    groups = {g["name"] for g in http.get("/apis")["groups"]} - crd_groups
    expected = {"api", "apis", "version"} | {f"apis/{group}" for group in groups}
    if http.call("GET", "/.well-known/openid-configuration").status_code == 200:
        expected |= {".well-known/openid-configuration", "openid/v1/jwks"}
    return expected


def test_openapi_v3_documents_support_field_validation(widgets: Http) -> None:
    """S9 / statement 7: `/openapi/v3` lists every served GroupVersion; each document has, for every
    resource, a `patch` operation with the matching `x-kubernetes-group-version-kind` and an
    operation-level `fieldValidation` query parameter (kubectl's server-side validation check)."""
    index = widgets.get("/openapi/v3")["paths"]
    served = _served_group_versions(widgets)
    assert set(index) == served | _indexed_endpoint_documents(widgets)
    for key, entry in index.items():
        url = entry["serverRelativeURL"]
        assert url.startswith(f"/openapi/v3/{key}?hash="), entry
        document = widgets.get(url)
        assert document["openapi"] == "3.0.0" and document["paths"], key
        if key not in served:
            continue
        group_version = key.removeprefix("api/").removeprefix("apis/")
        group, _, version = group_version.rpartition("/")
        resources = widgets.get("/" + key)["resources"]
        patch_gvks = []
        for path_item in document["paths"].values():
            operation = path_item.get("patch")
            if operation is None:
                continue
            gvk = operation.get("x-kubernetes-group-version-kind")
            params = {(p.get("name"), p.get("in")) for p in operation.get("parameters", [])}
            if ("fieldValidation", "query") in params:
                patch_gvks.append((gvk["group"], gvk["version"], gvk["kind"]))
        for resource in resources:
            if "/" in resource["name"] or "patch" not in resource["verbs"]:
                continue
            assert (group, version, resource["kind"]) in patch_gvks, (key, resource["name"])


def test_openapi_hash_changes_with_the_document(widgets: Http) -> None:
    """S9 / statement 7: the index `hash` changes when (and only when) its document changes."""
    before = widgets.get("/openapi/v3")["paths"]
    crd = widgets.get(CRDS + "/widgets.example.com")
    spec_schema = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    spec_schema["properties"]["weight"] = {"type": "integer", "description": "How heavy it is."}
    widgets.ok("PUT", CRDS + "/widgets.example.com", crd)
    # The embedded plane rebuilds the document with the write; a real one from a CRD controller moments later.
    after = eventually(
        lambda: widgets.get("/openapi/v3")["paths"],
        lambda paths: paths["apis/example.com/v1"] != before["apis/example.com/v1"],
        timeout=60,
        describe="a new hash for apis/example.com/v1",
    )
    assert after["api/v1"] == before["api/v1"]
    assert after["apis/batch/v1"] == before["apis/batch/v1"]
    document = widgets.get(after["apis/example.com/v1"]["serverRelativeURL"])
    assert "How heavy it is." in json.dumps(document)


@pytest.mark.kubectl
def test_kubectl_explain_reads_crd_schemas_and_follows_changes(widgets: Http, kubectl: CLI) -> None:
    """S9 / statement 7 through real `kubectl explain`: it shows CRD field schemas, and a schema change
    (new `hash`) is picked up despite kubectl's OpenAPI cache."""
    size = kubectl.run("explain", "widgets.spec.size").stdout
    assert "FIELD: size <integer>" in size and "Number of parts." in size
    spec = kubectl.run("explain", "widgets.spec").stdout
    assert "enum: red, green, blue" in spec and "Colour of the widget." in spec

    missing = kubectl.run("explain", "widgets.spec.weight", check=False)
    assert missing.returncode != 0 and 'field "weight" does not exist' in missing.stderr

    crd = widgets.get(CRDS + "/widgets.example.com")
    crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]["weight"] = {
        "type": "integer",
        "description": "How heavy it is.",
    }
    widgets.ok("PUT", CRDS + "/widgets.example.com", crd)
    # A real server publishes the new schema from a CRD controller moments after the write: ask until it is there.
    weight = eventually(
        lambda: kubectl.run("explain", "widgets.spec.weight", check=False),
        lambda result: result.returncode == 0,
        timeout=60,
        describe="kubectl explain widgets.spec.weight",
    ).stdout
    assert "FIELD: weight <integer>" in weight and "How heavy it is." in weight


# ----------------------------------------------------------------------------------- statement 8
def _apply_crd_then_cr_twice(kubectl: CLI, tmp_path: Path) -> None:
    """`kubectl apply` of the CRD, a CR, the CR modified and again: created, created, configured, unchanged."""
    crd_file = write_manifest(tmp_path, "crd.yaml", WidgetCRD().build())
    assert kubectl.run("apply", "-f", str(crd_file)).stdout.strip() == (
        "customresourcedefinition.apiextensions.k8s.io/widgets.example.com created"
    )
    cr_file = write_manifest(tmp_path, "cr.yaml", widget("w1", size=3))
    # A real server serves the new kind a moment after the CRD is created; kubectl would report "no matches" before.
    eventually(
        lambda: kubectl.run("api-resources", "--api-group=example.com", "--no-headers").stdout,
        lambda out: "widgets" in out,
        describe="widgets in kubectl's discovery",
    )
    assert kubectl.run("apply", "-f", str(cr_file)).stdout.strip() == "widget.example.com/w1 created"
    cr_file = write_manifest(tmp_path, "cr.yaml", widget("w1", size=4))
    assert kubectl.run("apply", "-f", str(cr_file)).stdout.strip() == "widget.example.com/w1 configured"
    assert kubectl.run("apply", "-f", str(cr_file)).stdout.strip() == "widget.example.com/w1 unchanged"


@pytest.mark.kubectl
def test_kubectl_apply_create_create_configured_with_strict_validation(
    http: Http, kubectl: CLI, tmp_path: Path
) -> None:
    """S9 / statement 8: real `kubectl apply -f crd.yaml`, `apply -f cr.yaml`, then a modified re-apply print
    `created`, `created`, `configured` (then `unchanged`) under default validation; the stored object and its
    last-applied annotation are what was applied."""
    _apply_crd_then_cr_twice(kubectl, tmp_path)
    stored = http.get(WIDGETS + "/w1")
    assert stored["spec"] == {"size": 4, "color": "red"}
    last_applied = json.loads(stored["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"])
    assert last_applied["spec"] == {"size": 4}


@pytest.mark.kubectl
def test_kubectl_apply_requests_carry_strict_field_validation(
    emulator: EmbeddedServer, kubectl: CLI, tmp_path: Path
) -> None:
    """S9 / statement 8, the requests (embedded only: it reads the server's access log): kubectl's writes carry
    `fieldValidation=Strict` and its field manager, the update is a merge patch, and default validation read the
    OpenAPI v3 documents (no v2 fallback needed for the CR)."""
    emulator.http.access_log = []
    _apply_crd_then_cr_twice(kubectl, tmp_path)
    writes = [r for r in records(emulator) if r.method in ("POST", "PATCH", "PUT")]
    assert [(r.method, r.path, r.status) for r in writes] == [
        ("POST", CRDS, 201),
        ("POST", WIDGETS, 201),
        ("PATCH", WIDGETS + "/w1", 200),
    ]
    for record in writes:
        assert record.query.get("fieldValidation") == "Strict", record
        assert record.query.get("fieldManager") == "kubectl-client-side-apply", record
    assert writes[2].content_type == MERGE
    fetched = {r.path for r in records(emulator, "GET", "/openapi/")}
    assert {"/openapi/v3", "/openapi/v3/apis/example.com/v1"} <= fetched


@pytest.mark.kubectl
def test_kubectl_apply_strict_validation_rejects_unknown_fields(widgets: Http, kubectl: CLI, tmp_path: Path) -> None:
    """S9 / statement 8 (and S8): with kubectl's default strict validation, an unknown field is
    rejected by the server and nothing is written."""
    bad = widget("w2", size=3)
    bad["spec"]["bogus"] = True
    result = kubectl.run("apply", "-f", str(write_manifest(tmp_path, "bad.yaml", bad)), check=False)
    assert result.returncode == 1
    assert 'unknown field "spec.bogus"' in result.stderr
    assert widgets.call("GET", WIDGETS + "/w2").status_code == 404
    # --validate=false sends fieldValidation=Ignore: the field is dropped and the object created.
    kubectl.run("apply", "--validate=false", "-f", str(write_manifest(tmp_path, "bad.yaml", bad)))
    assert widgets.get(WIDGETS + "/w2")["spec"] == {"size": 3, "color": "red"}
