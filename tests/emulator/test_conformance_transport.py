"""Conformance, API-surface spec §9 statements 1-8: transport and discovery.

Aspects covered:
- exact `Content-Type: application/json` on every JSON answer (objects, lists, Tables, discovery,
  OpenAPI, watch streams, every error code) and the client-side consequences (pykube and the
  kubernetes client surface the Status message) — statement 1; `text/plain` pod logs where a kubelet
  serves them (the log endpoint without one answers a JSON Status);
- POST/PUT/DELETE bodies without a Content-Type read as JSON (raw HTTP, pykube, kubernetes client) — 2;
- 415 `UnsupportedMediaType` for unknown patch types and for strategic merge on a CR, also as real
  `kubectl patch` reports it — 3;
- unknown query parameters (client-go's `timeout=32s`) ignored on every verb — 4;
- discovery documents (`/api`, `/api/v1`, `/apis`, `/apis/{g}`, `/apis/{g}/{v}`) incl. `widgets/status`
  and `pods/log`, read raw, through the kubernetes client and real `kubectl api-resources` — 5;
- CRD create/delete reflected in discovery and OpenAPI by the time the CRD watch event arrives — 6;
- OpenAPI v3 index covering every served GroupVersion, per-resource `patch` operations with the GVK
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
import requests

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

JSON = dict[str, Any]
TABLE_ACCEPT = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json"


@pytest.fixture
def http(emulator: EmbeddedServer) -> Http:
    return Http(emulator)


@pytest.fixture
def widgets(http: Http) -> Http:
    """The widgets.example.com CRD installed, plus one Widget `w1`."""
    install_crd(http)
    http.ok("POST", WIDGETS, widget("w1", size=1), expect=201)
    return http


def k8s_client(server: EmbeddedServer) -> kubernetes.client.ApiClient:
    return kubernetes.config.new_client_from_config(config_file=str(server.kubeconfig))  # type: ignore[attr-defined]


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
        ("GET", "/openapi/v3", None, {}, 200),
        ("GET", "/openapi/v3/apis/example.com/v1", None, {}, 200),
        ("GET", WIDGETS, None, {}, 200),
        ("GET", WIDGETS + "/w1", None, {}, 200),
        ("GET", WIDGETS, None, {"Accept": TABLE_ACCEPT}, 200),
        ("POST", CONFIGMAPS, configmap("c1", a="1"), {}, 201),
        ("PATCH", CONFIGMAPS + "/c1", {"data": {"a": "2"}}, {"Content-Type": MERGE}, 200),
        ("DELETE", CONFIGMAPS + "/c1", None, {}, 200),
        # errors
        ("GET", WIDGETS + "/missing", None, {}, 404),
        ("GET", "/apis/nothing.example/v1", None, {}, 404),
        ("POST", WIDGETS, widget("w1", size=1), {}, 409),
        ("POST", WIDGETS, widget("w9", size=1000), {}, 422),
        ("GET", WIDGETS, None, {"params": "labelSelector=a%20in%20(", "Accept": "*/*"}, 400),
        ("PATCH", WIDGETS, {}, {"Content-Type": MERGE}, 405),
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


def test_watch_streams_are_application_json(widgets: Http) -> None:
    """S9 / statement 1: a watch stream is an HTTP 200 with `Content-Type: application/json`, one event per line."""
    response = open_watch(widgets, WIDGETS)
    try:
        assert response.headers.get("Content-Type") == "application/json"
        first = next(watch_events(response))
        assert first["type"] == "ADDED" and first["object"]["metadata"]["name"] == "w1"
    finally:
        response.close()


def test_clients_surface_status_messages(widgets: Http, emulator: EmbeddedServer) -> None:
    """S9 / statement 1: because the content type is exact, pykube's `HTTPError` and the kubernetes
    client's `ApiException` carry the Status message and code instead of a generic HTTP error."""
    api = pykube.HTTPClient(pykube.KubeConfig.from_file(str(emulator.kubeconfig)))  # type: ignore[attr-defined]
    widget_type = pykube.object_factory(api, "example.com/v1", "Widget")
    duplicate = widget_type(api, widget("w1", size=2))
    with pytest.raises(pykube.exceptions.HTTPError) as caught:
        duplicate.create()
    assert caught.value.code == 409
    assert 'widgets.example.com "w1" already exists' in str(caught.value)

    client = kubernetes.client.CustomObjectsApi(k8s_client(emulator))
    with pytest.raises(kubernetes.client.ApiException) as failure:
        client.get_namespaced_custom_object("example.com", "v1", "default", "widgets", "nope")
    assert failure.value.status == 404
    assert failure.value.headers["Content-Type"] == "application/json"
    body = json.loads(failure.value.body)
    assert body["reason"] == "NotFound" and body["message"] == 'widgets.example.com "nope" not found'


def test_pod_log_endpoint_without_a_running_container_answers_a_json_status(http: Http) -> None:
    """S9 / statement 1 (error half of the log endpoint): a log request for a container that has not
    started is a JSON Status 400 `... is waiting to start: ContainerCreating`, like a real kubelet-backed apiserver."""
    http.ok("POST", PODS, pod("p1", command=["sh", "-c", "echo hi"]), expect=201)
    response = http.call("GET", PODS + "/p1/log")
    assert response.status_code == 400
    assert response.headers["Content-Type"] == "application/json"
    assert response.json()["message"] == 'container "main" in pod "p1" is waiting to start: ContainerCreating'
    missing = http.call("GET", PODS + "/nope/log")
    assert missing.status_code == 404 and missing.headers["Content-Type"] == "application/json"
    assert missing.json()["message"] == 'pods "nope" not found'


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
def test_bodies_without_content_type_are_read_as_json(widgets: Http, emulator: EmbeddedServer) -> None:
    """S9 / statement 2: POST, PUT and DELETE without a Content-Type header are parsed as JSON
    (pykube and the kubernetes client send POST/DELETE bodies that way)."""
    http = widgets
    emulator.http.access_log = []
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
    assert "Precondition failed: UID in precondition: not-the-uid" in status["message"]
    assert http.get(CONFIGMAPS + "/bare")["data"] == {"a": "2"}
    http.ok("DELETE", CONFIGMAPS + "/bare", {"preconditions": {"uid": created["metadata"]["uid"]}}, content_type=None)
    assert http.call("GET", CONFIGMAPS + "/bare").status_code == 404

    sent = records(emulator, path_part="/configmaps")
    assert [r.method for r in sent if r.method != "GET"] == ["POST", "PUT", "DELETE", "DELETE"]
    assert all(r.content_type == "" for r in sent if r.method != "GET"), sent

    # pykube create() and delete() send no Content-Type at all.
    api = pykube.HTTPClient(pykube.KubeConfig.from_file(str(emulator.kubeconfig)))  # type: ignore[attr-defined]
    emulator.http.access_log = []
    pykube.ConfigMap(api, configmap("from-pykube", b="2")).create()
    assert http.get(CONFIGMAPS + "/from-pykube")["data"] == {"b": "2"}
    pykube.ConfigMap(api, configmap("from-pykube")).delete()
    assert http.call("GET", CONFIGMAPS + "/from-pykube").status_code == 404
    assert [(r.method, r.content_type) for r in records(emulator, path_part="configmaps") if r.method != "GET"] == [
        ("POST", ""),
        ("DELETE", ""),
    ]

    # The kubernetes client's POST.
    core = kubernetes.client.CoreV1Api(k8s_client(emulator))
    made = core.create_namespaced_config_map("default", configmap("from-client", c="3"))
    assert made.data == {"c": "3"} and made.metadata.uid


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
def test_discovery_through_real_clients(widgets: Http, emulator: EmbeddedServer, kubectl: CLI) -> None:
    """S9 / statement 5 through the kubernetes client and real `kubectl api-resources` / `api-versions`."""
    client = k8s_client(emulator)
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
def test_discovery_follows_crd_before_its_watch_event(http: Http) -> None:
    """S9 / statement 6: when the CRD's ADDED watch event arrives, `/apis` already lists the group and
    `/apis/{g}/{v}` the plural (kopf re-scans discovery on that event); after the DELETED event both are gone."""
    stream = open_watch(
        http, CRDS, sendInitialEvents="true", resourceVersionMatch="NotOlderThan", allowWatchBookmarks="true"
    )
    events = watch_events(stream)
    try:
        for event in events:  # the watch is registered once the initial list has been streamed
            if event["type"] == "BOOKMARK":
                assert event["object"]["metadata"]["annotations"]["k8s.io/initial-events-end"] == "true"
                break
        assert http.call("GET", "/apis/example.com/v1").status_code == 404

        results: list[int] = []
        writer = threading.Thread(
            target=lambda: results.append(
                requests.post(http.base + CRDS, json=WidgetCRD().build(), timeout=10).status_code
            )
        )
        writer.start()
        added = next(e for e in events if e["type"] == "ADDED")
        # Look at discovery with the event in hand, before anything else is read.
        groups = {g["name"] for g in requests.get(http.base + "/apis", timeout=10).json()["groups"]}
        listing = requests.get(http.base + "/apis/example.com/v1", timeout=10)
        openapi_index = requests.get(http.base + "/openapi/v3", timeout=10).json()["paths"]
        writer.join(10)
        assert results == [201]
        assert added["object"]["metadata"]["name"] == "widgets.example.com"
        assert "example.com" in groups
        assert listing.status_code == 200
        assert "widgets" in {r["name"] for r in listing.json()["resources"]}
        assert "apis/example.com/v1" in openapi_index

        http.ok("DELETE", CRDS + "/widgets.example.com")
        deleted = next(e for e in events if e["type"] == "DELETED")
        assert deleted["object"]["metadata"]["name"] == "widgets.example.com"
        groups = {g["name"] for g in http.get("/apis")["groups"]}
        assert "example.com" not in groups
        assert http.call("GET", "/apis/example.com/v1").status_code == 404
        assert http.call("GET", "/apis/example.com").status_code == 404
        assert http.call("GET", WIDGETS).status_code == 404
        assert "apis/example.com/v1" not in http.get("/openapi/v3")["paths"]
    finally:
        stream.close()


# ----------------------------------------------------------------------------------- statement 7
def _served_group_versions(http: Http) -> set[str]:
    served = {"api/v1"}
    for group in http.get("/apis")["groups"]:
        served |= {f"apis/{v['groupVersion']}" for v in group["versions"]}
    return served


def test_openapi_v3_documents_support_field_validation(widgets: Http) -> None:
    """S9 / statement 7: `/openapi/v3` lists every served GroupVersion; each document has, for every
    resource, a `patch` operation with the matching `x-kubernetes-group-version-kind` and an
    operation-level `fieldValidation` query parameter (kubectl's server-side validation check)."""
    index = widgets.get("/openapi/v3")["paths"]
    assert set(index) == _served_group_versions(widgets)
    for key, entry in index.items():
        url = entry["serverRelativeURL"]
        assert url.startswith(f"/openapi/v3/{key}?hash="), entry
        document = widgets.get(url)
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
            if "/" in resource["name"]:
                continue
            assert (group, version, resource["kind"]) in patch_gvks, (key, resource["name"])


def test_openapi_hash_changes_with_the_document(widgets: Http) -> None:
    """S9 / statement 7: the index `hash` changes when (and only when) its document changes."""
    before = widgets.get("/openapi/v3")["paths"]
    crd = widgets.get(CRDS + "/widgets.example.com")
    spec_schema = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    spec_schema["properties"]["weight"] = {"type": "integer", "description": "How heavy it is."}
    widgets.ok("PUT", CRDS + "/widgets.example.com", crd)
    after = widgets.get("/openapi/v3")["paths"]
    assert after["apis/example.com/v1"] != before["apis/example.com/v1"]
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
    weight = kubectl.run("explain", "widgets.spec.weight").stdout
    assert "FIELD: weight <integer>" in weight and "How heavy it is." in weight


# ----------------------------------------------------------------------------------- statement 8
@pytest.mark.kubectl
def test_kubectl_apply_create_create_configured_with_strict_validation(
    http: Http, emulator: EmbeddedServer, kubectl: CLI, tmp_path: Path
) -> None:
    """S9 / statement 8: real `kubectl apply -f crd.yaml`, `apply -f cr.yaml`, then a modified re-apply print
    `created`, `created`, `configured` under default validation, and the writes carry `fieldValidation=Strict`."""
    emulator.http.access_log = []
    crd_file = write_manifest(tmp_path, "crd.yaml", WidgetCRD().build())
    assert kubectl.run("apply", "-f", str(crd_file)).stdout.strip() == (
        "customresourcedefinition.apiextensions.k8s.io/widgets.example.com created"
    )
    cr_file = write_manifest(tmp_path, "cr.yaml", widget("w1", size=3))
    assert kubectl.run("apply", "-f", str(cr_file)).stdout.strip() == "widget.example.com/w1 created"
    cr_file = write_manifest(tmp_path, "cr.yaml", widget("w1", size=4))
    assert kubectl.run("apply", "-f", str(cr_file)).stdout.strip() == "widget.example.com/w1 configured"
    assert kubectl.run("apply", "-f", str(cr_file)).stdout.strip() == "widget.example.com/w1 unchanged"

    stored = http.get(WIDGETS + "/w1")
    assert stored["spec"] == {"size": 4, "color": "red"}
    last_applied = json.loads(stored["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"])
    assert last_applied["spec"] == {"size": 4}

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
    # Default validation went through the OpenAPI v3 documents (no v2 fallback needed for the CR).
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
