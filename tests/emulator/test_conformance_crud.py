"""Conformance, API-surface spec §9 statements 9-18: CRUD, metadata and patches.

Aspects covered:
- create stamps uid, string resourceVersion, `…Z` creationTimestamp and generation 1; generateName suffixes;
  409 AlreadyExists (raw, kubernetes client, real `kubectl create -f`); imperative `kubectl create
  configmap|namespace` (protobuf bodies) — statement 9;
- namespaced creates in a missing namespace (404) or with a mismatching body namespace (400) — 10;
- optimistic concurrency on PUT (stale RV → 409 Conflict, no RV → unconditional), real `kubectl replace`
  and a `kubectl get -o yaml` → edit → `replace` round trip — 11;
- JSON patch: `test` on resourceVersion as compare-and-set (422, nothing applied) and atomic multi-op
  patches (kopf's finalizer patch), also through real `kubectl patch --type=json` — 12;
- JSON-patch `~1` escapes, `-` index, `move`, `copy` — 13;
- merge patch: `null` deletes, lists replace; real `kubectl patch --type=merge`, `kubectl label`,
  `kubectl annotate` — 14;
- strategic merge on built-ins: containers by name, `$patch: delete`, `$setElementOrder`,
  `$deleteFromPrimitiveList/finalizers`; real `kubectl patch` (strategic) and client-side `kubectl apply`
  removing a container and an env var from a Deployment — 15;
- server-side apply: create-if-absent 201, re-apply 200 touching only the given fields, fieldManager
  required, managedFields; raw, the kubernetes client and real `kubectl apply --server-side` — 16;
- no-op writes keep the resourceVersion and emit no watch event — 17;
- `dryRun=All` on create/update/patch/delete (raw, kubernetes client, `kubectl --dry-run=server`):
  validated, answered, never persisted, no event — 18.

Every test runs on both control planes except those that read what kubectl sent (content types, `fieldManager`,
`dryRun` query parameters) from the embedded server's access log; what those requests cause is checked on both.
"""

from __future__ import annotations

import copy
import json
import re
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kubernetes
import pytest
import yaml

from dops.emulator import EmbeddedServer
from tests.builders import configmap, deployment, job, pod, widget
from tests.emulator._conformance import (
    APPLY,
    CONFIGMAPS,
    DEPLOYMENTS,
    JSON_PATCH,
    MERGE,
    PODS,
    STRATEGIC,
    WIDGETS,
    Http,
    install_crd,
    newest_rv,
    open_watch,
    records,
    settled,
    watch_events,
    write_manifest,
)
from tests.helpers import CLI
from tests.planes import Plane

JSON = dict[str, Any]
pytestmark = pytest.mark.both_planes
TIMESTAMP = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$")


@pytest.fixture
def http(plane: Plane) -> Http:
    return Http(plane)


@pytest.fixture
def widgets(http: Http) -> Http:
    """The widgets.example.com CRD installed, plus one Widget `w1` (size 1)."""
    install_crd(http)
    http.ok("POST", WIDGETS, widget("w1", size=1), expect=201)
    return http


def k8s_client(server: Plane | EmbeddedServer) -> kubernetes.client.ApiClient:
    return kubernetes.config.new_client_from_config(config_file=str(server.kubeconfig))


def next_events(http: Http, path: str, since: int, count: int) -> list[JSON]:
    """The next `count` non-bookmark watch events after resourceVersion `since`."""
    response = open_watch(http, path, resourceVersion=str(since), timeoutSeconds="5")
    try:
        events: Iterator[JSON] = watch_events(response)
        return [e for _, e in zip(range(count), (e for e in events if e["type"] != "BOOKMARK"), strict=False)]
    finally:
        response.close()


# ----------------------------------------------------------------------------------- statement 9
def test_create_stamps_server_metadata(widgets: Http) -> None:
    """S9 / statement 9: create assigns `uid`, a string `resourceVersion`, `creationTimestamp` (`…Z`) and
    `generation: 1`; server-owned fields sent by the client are replaced."""
    body = widget("w2", size=2)
    body["metadata"].update(
        {"uid": "client-uid", "resourceVersion": "", "generation": 7, "creationTimestamp": "2001-01-01T00:00:00Z"}
    )
    created = widgets.ok("POST", WIDGETS, body, expect=201)
    meta = created["metadata"]
    assert str(uuid.UUID(meta["uid"])) == meta["uid"] and meta["uid"] != "client-uid"
    assert isinstance(meta["resourceVersion"], str) and meta["resourceVersion"].isdigit()
    assert TIMESTAMP.match(meta["creationTimestamp"]) and meta["creationTimestamp"] != "2001-01-01T00:00:00Z"
    assert meta["generation"] == 1
    assert (created["apiVersion"], created["kind"]) == ("example.com/v1", "Widget")
    assert widgets.get(WIDGETS + "/w2") == created
    # Each write gets a fresh, higher resourceVersion.
    other = widgets.ok("POST", CONFIGMAPS, configmap("c1", a="1"), expect=201)
    assert int(other["metadata"]["resourceVersion"]) > int(meta["resourceVersion"])
    assert other["metadata"]["uid"] != meta["uid"]
    assert "generation" not in other["metadata"]  # ConfigMaps have no spec and no generation


def test_generate_name_appends_five_characters(widgets: Http) -> None:
    """S9 / statement 9: `generateName: w-` yields `w-` plus 5 characters from the apimachinery alphabet."""
    body = widget("", size=1)
    del body["metadata"]["name"]
    body["metadata"]["generateName"] = "w-"
    names = {widgets.ok("POST", WIDGETS, copy.deepcopy(body), expect=201)["metadata"]["name"] for _ in range(5)}
    assert len(names) == 5
    for name in names:
        assert re.fullmatch(r"w-[bcdfghjklmnpqrstvwxz2456789]{5}", name), name
        assert widgets.get(f"{WIDGETS}/{name}")["metadata"]["generateName"] == "w-"


def test_duplicate_create_is_409_already_exists(widgets: Http, plane: Plane) -> None:
    """S9 / statement 9: creating a name that exists → 409 `AlreadyExists`; the stored object is untouched."""
    before = widgets.get(WIDGETS + "/w1")
    code, status = widgets.status_of("POST", WIDGETS, widget("w1", size=9))
    assert (code, status["reason"]) == (409, "AlreadyExists")
    assert status["message"] == 'widgets.example.com "w1" already exists'
    assert status["details"] == {"name": "w1", "group": "example.com", "kind": "widgets"}
    assert widgets.get(WIDGETS + "/w1") == before

    core = kubernetes.client.CoreV1Api(k8s_client(plane))
    core.create_namespaced_config_map("default", configmap("c1", a="1"))
    with pytest.raises(kubernetes.client.ApiException) as caught:
        core.create_namespaced_config_map("default", configmap("c1", a="2"))
    assert caught.value.status == 409
    assert json.loads(caught.value.body)["message"] == 'configmaps "c1" already exists'


@pytest.mark.kubectl
def test_kubectl_create_from_file(widgets: Http, kubectl: CLI, tmp_path: Path) -> None:
    """S9 / statement 9 through real `kubectl create -f`: the objects are created and owned by the
    `kubectl-create` field manager; a second create of the same objects reports AlreadyExists."""
    manifest = write_manifest(tmp_path, "w.yaml", widget("w2", size=2), configmap("c2", a="1"))
    out = kubectl.run("create", "-f", str(manifest)).stdout.splitlines()
    assert out == ["widget.example.com/w2 created", "configmap/c2 created"]
    stored = widgets.get(WIDGETS + "/w2")
    assert stored["spec"] == {"size": 2, "color": "red"}
    assert [(m["manager"], m["operation"]) for m in stored["metadata"]["managedFields"]] == [
        ("kubectl-create", "Update")
    ]
    cm = widgets.get(CONFIGMAPS + "/c2")
    assert cm["data"] == {"a": "1"}
    assert [m["manager"] for m in cm["metadata"]["managedFields"]] == ["kubectl-create"]

    again = kubectl.run("create", "-f", str(manifest), check=False)
    assert again.returncode == 1
    assert 'Error from server (AlreadyExists): error when creating "' in again.stderr
    assert 'widgets.example.com "w2" already exists' in again.stderr
    assert 'configmaps "c2" already exists' in again.stderr


@pytest.mark.kubectl
def test_kubectl_create_from_file_requests(
    widgets: Http, emulator: EmbeddedServer, kubectl: CLI, tmp_path: Path
) -> None:
    """S9 / statement 9, what `kubectl create -f` sends (the embedded server's access log): one JSON POST per
    object with `fieldManager=kubectl-create&fieldValidation=Strict`."""
    emulator.http.access_log = []
    manifest = write_manifest(tmp_path, "w.yaml", widget("w2", size=2), configmap("c2", a="1"))
    kubectl.run("create", "-f", str(manifest))
    posts = records(emulator, "POST")
    assert [(r.path, r.status, r.content_type) for r in posts] == [
        (WIDGETS, 201, "application/json"),
        (CONFIGMAPS, 201, "application/json"),
    ]
    assert all(r.query == {"fieldManager": "kubectl-create", "fieldValidation": "Strict"} for r in posts)


@pytest.mark.kubectl
def test_kubectl_imperative_create(http: Http, kubectl: CLI) -> None:
    """S9 / statement 9: imperative `kubectl create configmap|namespace`; the created objects read back as
    JSON with the server-assigned metadata, and the new namespace is usable at once."""
    assert kubectl.run("create", "configmap", "imp", "--from-literal=a=b", "--from-literal=c=d").stdout.strip() == (
        "configmap/imp created"
    )
    assert kubectl.run("create", "namespace", "team-a").stdout.strip() == "namespace/team-a created"
    cm = http.get(CONFIGMAPS + "/imp")
    assert cm["data"] == {"a": "b", "c": "d"}
    assert TIMESTAMP.match(cm["metadata"]["creationTimestamp"]) and cm["metadata"]["uid"]
    ns = http.get("/api/v1/namespaces/team-a")
    assert ns["status"] == {"phase": "Active"}
    assert ns["spec"] == {"finalizers": ["kubernetes"]}
    assert ns["metadata"]["labels"] == {"kubernetes.io/metadata.name": "team-a"}
    # The new namespace is usable at once.
    kubectl.run("create", "configmap", "inside", "-n", "team-a", "--from-literal=x=y")
    assert http.get("/api/v1/namespaces/team-a/configmaps/inside")["data"] == {"x": "y"}


@pytest.mark.kubectl
def test_kubectl_imperative_create_sends_protobuf(emulator: EmbeddedServer, kubectl: CLI) -> None:
    """S9 / statement 9 (and H7), what kubectl sends (the embedded server's access log): imperative
    `kubectl create configmap|namespace` POST protobuf bodies, which the server accepts."""
    emulator.http.access_log = []
    kubectl.run("create", "configmap", "imp", "--from-literal=a=b", "--from-literal=c=d")
    kubectl.run("create", "namespace", "team-a")
    posts = records(emulator, "POST")
    assert [(r.path, r.content_type, r.status) for r in posts] == [
        (CONFIGMAPS, "application/vnd.kubernetes.protobuf", 201),
        ("/api/v1/namespaces", "application/vnd.kubernetes.protobuf", 201),
    ]


# ----------------------------------------------------------------------------------- statement 10
def test_create_in_missing_namespace_is_404(widgets: Http) -> None:
    """S9 / statement 10: a namespaced create in a nonexistent namespace → 404 `namespaces "x" not found`."""
    for path, body in (
        ("/api/v1/namespaces/nope/configmaps", configmap("c1", namespace="nope")),
        ("/apis/example.com/v1/namespaces/nope/widgets", widget("w9", namespace="nope", size=1)),
    ):
        code, status = widgets.status_of("POST", path, body)
        assert (code, status["reason"], status["message"]) == (404, "NotFound", 'namespaces "nope" not found')
        assert status["details"]["kind"] == "namespaces"


def test_body_namespace_must_match_the_url(widgets: Http) -> None:
    """S9 / statement 10: a body namespace different from the URL's → 400 BadRequest, nothing created;
    a body without a namespace takes the URL's."""
    widgets.ok("POST", "/api/v1/namespaces", {"metadata": {"name": "other"}}, expect=201)
    code, status = widgets.status_of("POST", CONFIGMAPS, configmap("c1", namespace="other"))
    assert (code, status["reason"]) == (400, "BadRequest")
    assert status["message"] == "the namespace of the provided object does not match the namespace sent on the request"
    assert widgets.call("GET", CONFIGMAPS + "/c1").status_code == 404
    assert widgets.call("GET", "/api/v1/namespaces/other/configmaps/c1").status_code == 404

    body = configmap("c1", a="1")
    del body["metadata"]["namespace"]
    assert widgets.ok("POST", CONFIGMAPS, body, expect=201)["metadata"]["namespace"] == "default"
    # The same rule holds on update.
    current = widgets.get(CONFIGMAPS + "/c1")
    current["metadata"]["namespace"] = "other"
    assert widgets.status_of("PUT", CONFIGMAPS + "/c1", current)[0] == 400


@pytest.mark.kubectl
def test_kubectl_create_in_missing_namespace(widgets: Http, kubectl: CLI, tmp_path: Path) -> None:
    """S9 / statement 10 through real kubectl: the server's NotFound for the namespace is reported."""
    manifest = write_manifest(tmp_path, "c.yaml", configmap("c1", namespace="nope", a="1"))
    result = kubectl.run("create", "-f", str(manifest), check=False)
    assert result.returncode == 1
    assert 'namespaces "nope" not found' in result.stderr


# ----------------------------------------------------------------------------------- statement 11
def test_put_with_stale_resource_version_is_409_conflict(widgets: Http) -> None:
    """S9 / statement 11: PUT with a stale `resourceVersion` → 409 `Conflict`; PUT without one is an
    unconditional update where the kind allows it (ConfigMap) and 422 `Invalid` where it does not
    (custom resources, Leases)."""
    first = widgets.get(WIDGETS + "/w1")
    second = copy.deepcopy(first)
    first["spec"]["size"] = 2
    updated = widgets.ok("PUT", WIDGETS + "/w1", first)
    assert updated["spec"]["size"] == 2
    assert int(updated["metadata"]["resourceVersion"]) > int(second["metadata"]["resourceVersion"])

    second["spec"]["size"] = 3  # still carries the old resourceVersion
    code, status = widgets.status_of("PUT", WIDGETS + "/w1", second)
    assert (code, status["reason"]) == (409, "Conflict")
    assert status["message"] == (
        'Operation cannot be fulfilled on widgets.example.com "w1": the object has been modified; '
        "please apply your changes to the latest version and try again"
    )
    assert widgets.get(WIDGETS + "/w1")["spec"]["size"] == 2

    # Custom resources forbid unconditional updates (AllowUnconditionalUpdate() is false for them):
    # a PUT without a resourceVersion is 422 Invalid, built from the resource name.
    del second["metadata"]["resourceVersion"]
    code, status = widgets.status_of("PUT", WIDGETS + "/w1", second)
    assert (code, status["reason"]) == (422, "Invalid")
    assert status["message"] == (
        'widgets.example.com "w1" is invalid: '
        "metadata.resourceVersion: Invalid value: 0: must be specified for an update"
    )
    assert status["details"] == {
        "name": "w1",
        "group": "example.com",
        "kind": "widgets",
        "causes": [
            {
                "reason": "FieldValueInvalid",
                "message": "Invalid value: 0: must be specified for an update",
                "field": "metadata.resourceVersion",
            }
        ],
    }
    assert widgets.get(WIDGETS + "/w1")["spec"]["size"] == 2

    # So do some built-ins (Lease, PodDisruptionBudget, CustomResourceDefinition, …).
    leases = "/apis/coordination.k8s.io/v1/namespaces/default/leases"
    lease = {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "metadata": {"name": "l1"}, "spec": {}}
    widgets.ok("POST", leases, lease, expect=201)
    lease["spec"] = {"holderIdentity": "me"}
    code, status = widgets.status_of("PUT", leases + "/l1", lease)
    assert (code, status["reason"], status["details"]["kind"]) == (422, "Invalid", "leases")
    assert status["message"].startswith('leases.coordination.k8s.io "l1" is invalid: metadata.resourceVersion:')

    # Most built-ins allow it: a ConfigMap PUT without a resourceVersion is an unconditional update.
    widgets.ok("POST", CONFIGMAPS, configmap("c1", a="1"), expect=201)
    assert widgets.ok("PUT", CONFIGMAPS + "/c1", configmap("c1", a="2"))["data"] == {"a": "2"}
    assert widgets.get(CONFIGMAPS + "/c1")["data"] == {"a": "2"}


def test_kubernetes_client_replace_conflict(widgets: Http, plane: Plane) -> None:
    """S9 / statement 11 through the kubernetes client: `replace_*` with a stale object raises ApiException 409."""
    core = kubernetes.client.CoreV1Api(k8s_client(plane))
    core.create_namespaced_config_map("default", configmap("c1", a="1"))
    stale = core.read_namespaced_config_map("c1", "default")
    fresh = core.read_namespaced_config_map("c1", "default")
    fresh.data = {"a": "2"}
    core.replace_namespaced_config_map("c1", "default", fresh)
    stale.data = {"a": "3"}
    with pytest.raises(kubernetes.client.ApiException) as caught:
        core.replace_namespaced_config_map("c1", "default", stale)
    assert caught.value.status == 409 and json.loads(caught.value.body)["reason"] == "Conflict"
    assert core.read_namespaced_config_map("c1", "default").data == {"a": "2"}


@pytest.mark.kubectl
def test_kubectl_get_yaml_replace_round_trip(widgets: Http, kubectl: CLI, tmp_path: Path) -> None:
    """S9 / statement 11 through real kubectl: `get -o yaml` carries the identity fields; `replace -f` of an
    edited copy succeeds (recorded under the `kubectl-replace` field manager), the same stale copy then
    conflicts, and `replace -f` of a manifest without a resourceVersion succeeds (kubectl fills in the live
    resourceVersion, which a custom resource requires)."""
    exported = yaml.safe_load(kubectl.run("get", "widget", "w1", "-o", "yaml").stdout)
    stored = widgets.get(WIDGETS + "/w1")
    assert exported["apiVersion"] == "example.com/v1" and exported["kind"] == "Widget"
    for key in ("name", "namespace", "uid", "resourceVersion", "creationTimestamp", "generation"):
        assert exported["metadata"][key] == stored["metadata"][key], key
    assert exported["spec"] == stored["spec"] == {"size": 1, "color": "red"}

    # Replacing with the unchanged export is a no-op: same resourceVersion.
    unchanged = write_manifest(tmp_path, "same.yaml", exported)
    assert kubectl.run("replace", "-f", str(unchanged)).stdout.strip() == "widget.example.com/w1 replaced"
    assert widgets.get(WIDGETS + "/w1")["metadata"]["resourceVersion"] == stored["metadata"]["resourceVersion"]

    exported["spec"]["size"] = 5
    edited = write_manifest(tmp_path, "edited.yaml", exported)
    assert kubectl.run("replace", "-f", str(edited)).stdout.strip() == "widget.example.com/w1 replaced"
    replaced = widgets.get(WIDGETS + "/w1")
    assert replaced["spec"]["size"] == 5
    assert ("kubectl-replace", "Update") in {
        (m["manager"], m["operation"]) for m in replaced["metadata"]["managedFields"]
    }

    stale = kubectl.run("replace", "-f", str(edited), check=False)
    assert stale.returncode == 1
    assert "Error from server (Conflict)" in stale.stderr
    assert "the object has been modified" in stale.stderr

    fresh = write_manifest(tmp_path, "fresh.yaml", widget("w1", size=7))
    kubectl.run("replace", "-f", str(fresh))
    assert widgets.get(WIDGETS + "/w1")["spec"] == {"size": 7, "color": "red"}


@pytest.mark.kubectl
def test_kubectl_replace_requests(widgets: Http, emulator: EmbeddedServer, kubectl: CLI, tmp_path: Path) -> None:
    """S9 / statement 11, what `kubectl replace -f` sends (the embedded server's access log): a PUT with
    `fieldManager=kubectl-replace&fieldValidation=Strict` carrying the manifest's resourceVersion, and for a
    manifest without one, a GET of the live object first and a PUT carrying its resourceVersion."""
    exported = yaml.safe_load(kubectl.run("get", "widget", "w1", "-o", "yaml").stdout)
    exported["spec"]["size"] = 5
    emulator.http.access_log = []
    kubectl.run("replace", "-f", str(write_manifest(tmp_path, "edited.yaml", exported)))
    puts = records(emulator, "PUT")
    assert [(r.path, r.status, r.query.get("fieldManager")) for r in puts] == [
        (WIDGETS + "/w1", 200, "kubectl-replace")
    ]
    assert puts[0].query.get("fieldValidation") == "Strict"

    emulator.http.access_log = []
    kubectl.run("replace", "-f", str(write_manifest(tmp_path, "fresh.yaml", widget("w1", size=7))))
    sent = [(r.method, r.path, r.status) for r in records(emulator, path_part=WIDGETS)]
    assert sent[-2:] == [("GET", WIDGETS + "/w1", 200), ("PUT", WIDGETS + "/w1", 200)], sent


# ----------------------------------------------------------------------------------- statement 12
def test_json_patch_test_failure_is_422_and_applies_nothing(widgets: Http) -> None:
    """S9 / statement 12: a JSON patch whose `test` of `/metadata/resourceVersion` fails → 422, and no
    operation of the patch is applied (also the ones before the failing test)."""
    before = widgets.get(WIDGETS + "/w1")
    stale_rv = str(int(before["metadata"]["resourceVersion"]) - 1)
    patch = [
        {"op": "add", "path": "/metadata/labels", "value": {"touched": "yes"}},
        {"op": "test", "path": "/metadata/resourceVersion", "value": stale_rv},
        {"op": "add", "path": "/metadata/finalizers", "value": ["example.com/x"]},
    ]
    code, status = widgets.status_of("PATCH", WIDGETS + "/w1", patch, content_type=JSON_PATCH)
    assert code == 422 and status["kind"] == "Status" and status["reason"] == "Invalid", status
    # NewGenericServerResponse: a generic message and empty details; which operation failed is not said.
    assert status["message"] == "the server rejected our request due to an error in our request"
    assert status["details"] == {}
    assert widgets.get(WIDGETS + "/w1") == before


def test_json_patch_compare_and_set_applies_atomically(widgets: Http) -> None:
    """S9 / statement 12: kopf's finalizer patch — a passing `test` of the resourceVersion plus
    `add /metadata/finalizers` — is applied as one write (one MODIFIED event)."""
    before = widgets.get(WIDGETS + "/w1")
    rv = before["metadata"]["resourceVersion"]
    patch = [
        {"op": "test", "path": "/metadata/resourceVersion", "value": rv},
        {"op": "add", "path": "/metadata/finalizers", "value": ["kopf.zalando.org/KopfFinalizerMarker"]},
    ]
    patched = widgets.ok("PATCH", WIDGETS + "/w1", patch, content_type=JSON_PATCH)
    assert patched["metadata"]["finalizers"] == ["kopf.zalando.org/KopfFinalizerMarker"]
    assert int(patched["metadata"]["resourceVersion"]) > int(rv)
    marker = widgets.ok("PATCH", WIDGETS + "/w1", {"spec": {"size": 2}}, content_type=MERGE)
    events = next_events(widgets, WIDGETS, int(rv), 2)
    assert [(e["type"], e["object"]["metadata"]["resourceVersion"]) for e in events] == [
        ("MODIFIED", patched["metadata"]["resourceVersion"]),
        ("MODIFIED", marker["metadata"]["resourceVersion"]),
    ]
    assert events[0]["object"]["metadata"]["finalizers"] == ["kopf.zalando.org/KopfFinalizerMarker"]

    # The same test again now fails: the resourceVersion has moved on.
    code, _ = widgets.status_of("PATCH", WIDGETS + "/w1", patch, content_type=JSON_PATCH)
    assert code == 422


def test_kubernetes_client_json_patch(widgets: Http, plane: Plane) -> None:
    """S9 / statement 12 through the kubernetes client: a list body is sent as JSON patch; a failed test
    raises ApiException 422."""
    api = kubernetes.client.CustomObjectsApi(k8s_client(plane))
    rv = widgets.get(WIDGETS + "/w1")["metadata"]["resourceVersion"]
    ok = api.patch_namespaced_custom_object(
        "example.com",
        "v1",
        "default",
        "widgets",
        "w1",
        [
            {"op": "test", "path": "/metadata/resourceVersion", "value": rv},
            {"op": "replace", "path": "/spec/size", "value": 4},
        ],
        _content_type=JSON_PATCH,
    )
    assert ok["spec"]["size"] == 4
    with pytest.raises(kubernetes.client.ApiException) as caught:
        api.patch_namespaced_custom_object(
            "example.com",
            "v1",
            "default",
            "widgets",
            "w1",
            [{"op": "test", "path": "/metadata/resourceVersion", "value": rv}],
            _content_type=JSON_PATCH,
        )
    assert caught.value.status == 422


@pytest.mark.kubectl
def test_kubectl_patch_type_json(widgets: Http, kubectl: CLI) -> None:
    """S9 / statements 12-13 through real `kubectl patch --type=json`: the operations apply (`~1` escapes
    included) under the `kubectl-patch` field manager; a failing `test` leaves the object unchanged and exits 1."""
    ops = [
        {"op": "add", "path": "/metadata/annotations", "value": {}},
        {"op": "add", "path": "/metadata/annotations/example.com~1owner", "value": "team-a"},
        {"op": "replace", "path": "/spec/size", "value": 6},
    ]
    kubectl.run("patch", "widget", "w1", "--type=json", "-p", json.dumps(ops))
    stored = widgets.get(WIDGETS + "/w1")
    assert stored["metadata"]["annotations"] == {"example.com/owner": "team-a"}
    assert stored["spec"]["size"] == 6
    assert ("kubectl-patch", "Update") in {(m["manager"], m["operation"]) for m in stored["metadata"]["managedFields"]}

    failing = [{"op": "test", "path": "/spec/size", "value": 99}, {"op": "replace", "path": "/spec/size", "value": 1}]
    result = kubectl.run("patch", "widget", "w1", "--type=json", "-p", json.dumps(failing), check=False)
    assert result.returncode == 1
    assert result.stderr.strip() == (
        "The request is invalid: the server rejected our request due to an error in our request"
    )
    assert widgets.get(WIDGETS + "/w1") == stored


@pytest.mark.kubectl
def test_kubectl_patch_type_json_requests(widgets: Http, emulator: EmbeddedServer, kubectl: CLI) -> None:
    """S9 / statement 12, what `kubectl patch --type=json` sends (the embedded server's access log): one
    `application/json-patch+json` PATCH with `fieldManager=kubectl-patch`."""
    emulator.http.access_log = []
    kubectl.run("patch", "widget", "w1", "--type=json", "-p", '[{"op":"replace","path":"/spec/size","value":6}]')
    patches = records(emulator, "PATCH")
    assert [(r.content_type, r.query.get("fieldManager"), r.status) for r in patches] == [
        (JSON_PATCH, "kubectl-patch", 200)
    ]


# ----------------------------------------------------------------------------------- statement 13
def test_json_patch_escapes_append_move_and_copy(widgets: Http) -> None:
    """S9 / statement 13: `~1` addresses keys with `/`, `-` appends to an array, `move` and `copy` work."""
    ops: list[JSON] = [
        {"op": "add", "path": "/metadata/annotations", "value": {"example.com/a": "1"}},
        {"op": "add", "path": "/metadata/annotations/example.com~1b", "value": "2"},
        {"op": "replace", "path": "/metadata/annotations/example.com~1a", "value": "one"},
        {"op": "add", "path": "/spec/tags", "value": ["x"]},
        {"op": "add", "path": "/spec/tags/-", "value": "y"},
        {"op": "add", "path": "/spec/tags/0", "value": "w"},
        {"op": "add", "path": "/metadata/labels", "value": {"stage": "dev"}},
        {"op": "move", "from": "/metadata/labels/stage", "path": "/metadata/labels/env"},
        {"op": "copy", "from": "/metadata/annotations/example.com~1b", "path": "/metadata/labels/copied"},
    ]
    patched = widgets.ok("PATCH", WIDGETS + "/w1", ops, content_type=JSON_PATCH)
    assert patched["metadata"]["annotations"] == {"example.com/a": "one", "example.com/b": "2"}
    assert patched["spec"]["tags"] == ["w", "x", "y"]
    assert patched["metadata"]["labels"] == {"env": "dev", "copied": "2"}
    assert widgets.get(WIDGETS + "/w1") == patched

    removal = [
        {"op": "remove", "path": "/metadata/annotations/example.com~1a"},
        {"op": "remove", "path": "/spec/tags/1"},
    ]
    patched = widgets.ok("PATCH", WIDGETS + "/w1", removal, content_type=JSON_PATCH)
    assert patched["metadata"]["annotations"] == {"example.com/b": "2"}
    assert patched["spec"]["tags"] == ["w", "y"]

    # A path that does not exist is an error, and nothing is applied.
    bad = [{"op": "replace", "path": "/spec/size", "value": 3}, {"op": "remove", "path": "/spec/nothing"}]
    assert widgets.status_of("PATCH", WIDGETS + "/w1", bad, content_type=JSON_PATCH)[0] == 422
    missing_index = [
        {"op": "replace", "path": "/spec/size", "value": 3},
        {"op": "replace", "path": "/spec/tags/5", "value": "z"},
    ]
    assert widgets.status_of("PATCH", WIDGETS + "/w1", missing_index, content_type=JSON_PATCH)[0] == 422
    assert widgets.get(WIDGETS + "/w1")["spec"]["size"] == 1
    # …but, as in kube-apiserver's json-patch (evanphx v4), `replace` of a missing member of an object sets it.
    replaced = widgets.ok(
        "PATCH", WIDGETS + "/w1", [{"op": "replace", "path": "/spec/owner", "value": "me"}], content_type=JSON_PATCH
    )
    assert replaced["spec"]["owner"] == "me"


# ----------------------------------------------------------------------------------- statement 14
def test_merge_patch_null_removes_and_lists_replace(widgets: Http) -> None:
    """S9 / statement 14: in a merge patch `null` removes a key and lists are replaced wholesale."""
    widgets.ok(
        "PATCH",
        WIDGETS + "/w1",
        {"metadata": {"labels": {"a": "1", "b": "2"}}, "spec": {"tags": ["x", "y"], "owner": "me"}},
        content_type=MERGE,
    )
    patched = widgets.ok(
        "PATCH",
        WIDGETS + "/w1",
        {"metadata": {"labels": {"a": None}}, "spec": {"tags": ["z"], "owner": "me", "size": None}},
        content_type=MERGE,
    )
    assert patched["metadata"]["labels"] == {"b": "2"}
    assert patched["spec"] == {"tags": ["z"], "owner": "me", "color": "red"}
    # On a built-in too (finalizers replaced, not merged, by a merge patch).
    widgets.ok("POST", CONFIGMAPS, configmap("c1", a="1", b="2"), expect=201)
    widgets.ok("PATCH", CONFIGMAPS + "/c1", {"metadata": {"finalizers": ["x/a", "x/b"]}}, content_type=MERGE)
    cm = widgets.ok(
        "PATCH", CONFIGMAPS + "/c1", {"metadata": {"finalizers": ["x/c"]}, "data": {"a": None}}, content_type=MERGE
    )
    assert cm["metadata"]["finalizers"] == ["x/c"] and cm["data"] == {"b": "2"}


@pytest.mark.kubectl
def test_kubectl_label_annotate_and_merge_patch(widgets: Http, kubectl: CLI) -> None:
    """S9 / statement 14 through real kubectl: `label`/`annotate` (merge patches recorded under their own
    field managers), `label key-` removal, and `patch --type=merge` with `null`."""
    assert kubectl.run("label", "widget", "w1", "tier=gold", "zone=a").stdout.strip() == "widget.example.com/w1 labeled"
    assert kubectl.run("annotate", "widget", "w1", "example.com/note=hi").stdout.strip() == (
        "widget.example.com/w1 annotated"
    )
    kubectl.run("label", "widget", "w1", "zone-")
    stored = widgets.get(WIDGETS + "/w1")
    assert stored["metadata"]["labels"] == {"tier": "gold"}
    assert stored["metadata"]["annotations"] == {"example.com/note": "hi"}
    assert {"kubectl-label", "kubectl-annotate"} <= {m["manager"] for m in stored["metadata"]["managedFields"]}
    # An existing label is not overwritten without --overwrite (kubectl checks what the server returned).
    refused = kubectl.run("label", "widget", "w1", "tier=silver", check=False)
    assert refused.returncode == 1 and "already has a value (gold)" in refused.stderr

    kubectl.run(
        "patch", "widget", "w1", "--type=merge", "-p", '{"metadata":{"labels":{"tier":null}},"spec":{"tags":["q"]}}'
    )
    stored = widgets.get(WIDGETS + "/w1")
    assert "tier" not in (stored["metadata"].get("labels") or {})
    assert stored["spec"]["tags"] == ["q"]
    managers = {m["manager"] for m in stored["metadata"]["managedFields"]}
    assert {"kubectl-annotate", "kubectl-patch"} <= managers
    # The patch removed the last field `kubectl-label` owned (`tier`): removed fields leave every manager's set,
    # and a manager left with none loses its entry.
    assert "kubectl-label" not in managers


@pytest.mark.kubectl
def test_kubectl_label_annotate_requests(widgets: Http, emulator: EmbeddedServer, kubectl: CLI) -> None:
    """S9 / statement 14, what `kubectl label`/`annotate` send (the embedded server's access log): merge
    patches with `fieldManager=kubectl-label` / `kubectl-annotate`."""
    emulator.http.access_log = []
    kubectl.run("label", "widget", "w1", "tier=gold", "zone=a")
    kubectl.run("annotate", "widget", "w1", "example.com/note=hi")
    kubectl.run("label", "widget", "w1", "zone-")
    patches = records(emulator, "PATCH")
    assert [(r.content_type, r.query.get("fieldManager")) for r in patches] == [
        (MERGE, "kubectl-label"),
        (MERGE, "kubectl-annotate"),
        (MERGE, "kubectl-label"),
    ]


# ----------------------------------------------------------------------------------- statement 15
def _two_container_pod(http: Http) -> JSON:
    """Pod `p1` with two containers, two finalizers and two owners (ConfigMaps `o1`, `o2`, created here).

    The owners exist so that a real garbage collector leaves the pod alone, and the pod names a scheduler
    nobody runs so that no scheduler (or the embedded kubelet) writes its status: the statements are about
    patching, not about either of them."""
    owners = [http.ok("POST", CONFIGMAPS, configmap(name), expect=201) for name in ("o1", "o2")]
    body = pod("p1", command=["sleep", "1000"])
    body["spec"]["schedulerName"] = "no-such-scheduler"
    body["spec"]["containers"].append({"name": "side", "image": "busybox:1.36", "command": ["sleep", "2000"]})
    body["metadata"]["finalizers"] = ["a.example.com/x", "b.example.com/y"]
    body["metadata"]["ownerReferences"] = [
        {"apiVersion": "v1", "kind": "ConfigMap", "name": o["metadata"]["name"], "uid": o["metadata"]["uid"]}
        for o in owners
    ]
    return body


def test_strategic_merge_on_a_pod(http: Http) -> None:
    """S9 / statement 15: strategic merge on a Pod merges `containers` by name, honours `$setElementOrder`,
    `$patch: delete` (ownerReferences by uid) and `$deleteFromPrimitiveList/finalizers`; finalizers merge as a set."""
    body = _two_container_pod(http)
    http.ok("POST", PODS, body, expect=201)
    first_owner = body["metadata"]["ownerReferences"][0]["uid"]
    patch = {
        "metadata": {
            "$deleteFromPrimitiveList/finalizers": ["a.example.com/x"],
            "$setElementOrder/finalizers": ["b.example.com/y", "c.example.com/z"],
            "finalizers": ["c.example.com/z"],
            "ownerReferences": [{"$patch": "delete", "uid": first_owner}],
        },
        "spec": {
            "$setElementOrder/containers": [{"name": "main"}, {"name": "side"}],
            "containers": [{"name": "side", "image": "busybox:1.37"}],
        },
    }
    patched = http.ok("PATCH", PODS + "/p1", patch, content_type=STRATEGIC)
    assert patched["metadata"]["finalizers"] == ["b.example.com/y", "c.example.com/z"]
    assert [o["name"] for o in patched["metadata"]["ownerReferences"]] == ["o2"]
    containers = patched["spec"]["containers"]
    assert [c["name"] for c in containers] == ["main", "side"]
    assert containers[0]["image"] == "busybox:1.36" and containers[0]["command"] == ["sleep", "1000"]
    assert containers[1]["image"] == "busybox:1.37" and containers[1]["command"] == ["sleep", "2000"]
    assert http.get(PODS + "/p1") == patched

    # A plain finalizers list in a strategic patch merges into the existing set; as in apimachinery's
    # mergeSortedSlice, patch items not in the live list go before the server-only items.
    merged = http.ok("PATCH", PODS + "/p1", {"metadata": {"finalizers": ["d.example.com/w"]}}, content_type=STRATEGIC)
    assert merged["metadata"]["finalizers"] == ["d.example.com/w", "b.example.com/y", "c.example.com/z"]


def test_strategic_merge_delete_and_reorder_in_a_pod_template(http: Http) -> None:
    """S9 / statement 15 on a Deployment's pod template (mutable, unlike a Pod's containers):
    `$patch: delete` removes a container and an env entry by name, `$setElementOrder` reorders."""
    containers = [
        {"name": "a", "image": "busybox:1.36", "env": [{"name": "KEEP", "value": "1"}, {"name": "DROP", "value": "2"}]},
        {"name": "b", "image": "busybox:1.36"},
        {"name": "c", "image": "busybox:1.36"},
    ]
    http.ok("POST", DEPLOYMENTS, deployment("d1", containers=containers), expect=201)
    patch = {
        "spec": {
            "template": {
                "spec": {
                    "$setElementOrder/containers": [{"name": "c"}, {"name": "a"}],
                    "containers": [
                        {"name": "a", "env": [{"$patch": "delete", "name": "DROP"}]},
                        {"$patch": "delete", "name": "b"},
                    ],
                }
            }
        }
    }
    patched = http.ok("PATCH", DEPLOYMENTS + "/d1", patch, content_type=STRATEGIC)
    result = patched["spec"]["template"]["spec"]["containers"]
    assert [c["name"] for c in result] == ["c", "a"]
    assert result[1]["env"] == [{"name": "KEEP", "value": "1"}]
    assert patched["metadata"]["generation"] == 2


@pytest.mark.kubectl
def test_kubectl_patch_strategic_on_a_pod(http: Http, kubectl: CLI) -> None:
    """S9 / statement 15 through real `kubectl patch` (strategic by default on built-ins): a container named
    in the patch is merged by name, the other one is kept."""
    http.ok("POST", PODS, _two_container_pod(http), expect=201)
    kubectl.run("patch", "pod", "p1", "-p", '{"spec":{"containers":[{"name":"main","image":"busybox:1.37"}]}}')
    containers = http.get(PODS + "/p1")["spec"]["containers"]
    assert [(c["name"], c["image"]) for c in containers] == [("main", "busybox:1.37"), ("side", "busybox:1.36")]


@pytest.mark.kubectl
def test_kubectl_patch_on_a_builtin_is_strategic(http: Http, emulator: EmbeddedServer, kubectl: CLI) -> None:
    """S9 / statement 15, what `kubectl patch` sends for a built-in (the embedded server's access log):
    a strategic merge patch."""
    http.ok("POST", PODS, _two_container_pod(http), expect=201)
    emulator.http.access_log = []
    kubectl.run("patch", "pod", "p1", "-p", '{"spec":{"containers":[{"name":"main","image":"busybox:1.37"}]}}')
    assert [r.content_type for r in records(emulator, "PATCH")] == [STRATEGIC]


@pytest.mark.kubectl
def test_kubectl_apply_removes_list_items_from_a_builtin(http: Http, kubectl: CLI, tmp_path: Path) -> None:
    """S9 / statement 15 through real client-side `kubectl apply`: dropping a container and an env var from a
    Deployment manifest removes them (kubectl derives `$patch: delete` / `$setElementOrder` from the
    served OpenAPI patch metadata, the server applies them)."""
    containers = [
        {"name": "a", "image": "busybox:1.36", "env": [{"name": "KEEP", "value": "1"}, {"name": "DROP", "value": "2"}]},
        {"name": "b", "image": "busybox:1.36"},
    ]
    manifest = write_manifest(tmp_path, "d.yaml", deployment("d1", containers=containers))
    assert kubectl.run("apply", "-f", str(manifest)).stdout.strip() == "deployment.apps/d1 created"
    http.ok(  # another writer adds an env var kubectl never applied: it must survive
        "PATCH",
        DEPLOYMENTS + "/d1",
        {"spec": {"template": {"spec": {"containers": [{"name": "a", "env": [{"name": "OTHER", "value": "x"}]}]}}}},
        content_type=STRATEGIC,
    )
    trimmed = [{"name": "a", "image": "busybox:1.37", "env": [{"name": "KEEP", "value": "1"}]}]
    manifest = write_manifest(tmp_path, "d.yaml", deployment("d1", containers=trimmed))
    assert kubectl.run("apply", "-f", str(manifest)).stdout.strip() == "deployment.apps/d1 configured"
    result = http.get(DEPLOYMENTS + "/d1")["spec"]["template"]["spec"]["containers"]
    assert [c["name"] for c in result] == ["a"]
    assert result[0]["image"] == "busybox:1.37"
    assert {e["name"] for e in result[0]["env"]} == {"KEEP", "OTHER"}


@pytest.mark.kubectl
def test_kubectl_apply_to_a_builtin_requests(emulator: EmbeddedServer, kubectl: CLI, tmp_path: Path) -> None:
    """S9 / statement 15, what client-side `kubectl apply` sends to change a built-in (the embedded server's
    access log): one strategic merge patch."""
    containers = [{"name": "a", "image": "busybox:1.36"}, {"name": "b", "image": "busybox:1.36"}]
    manifest = write_manifest(tmp_path, "d.yaml", deployment("d1", containers=containers))
    kubectl.run("apply", "-f", str(manifest))
    emulator.http.access_log = []
    manifest = write_manifest(tmp_path, "d.yaml", deployment("d1", containers=containers[:1]))
    kubectl.run("apply", "-f", str(manifest))
    assert [(r.path, r.content_type, r.status) for r in records(emulator, "PATCH")] == [
        (DEPLOYMENTS + "/d1", STRATEGIC, 200)
    ]


# ----------------------------------------------------------------------------------- statement 16
def test_apply_patch_creates_then_updates_only_given_fields(widgets: Http) -> None:
    """S9 / statement 16: an apply-patch on an absent object creates it (201); re-applying changes only the
    fields in the configuration (200), keeps fields other writers set, and records an Apply managedFields entry."""
    config = {"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w2"}, "spec": {"size": 3}}
    created = widgets.call("PATCH", WIDGETS + "/w2", config, content_type=APPLY, params={"fieldManager": "deployer"})
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["spec"] == {"size": 3, "color": "red"}
    assert body["metadata"]["generation"] == 1 and body["metadata"]["uid"]
    entries = [(m["manager"], m["operation"]) for m in body["metadata"]["managedFields"]]
    assert entries == [("deployer", "Apply")]

    widgets.ok("PATCH", WIDGETS + "/w2", {"spec": {"owner": "ops"}}, content_type=MERGE, params={"fieldManager": "ops"})
    config["spec"] = {"size": 4}
    config["metadata"]["labels"] = {"app": "w"}
    updated = widgets.call("PATCH", WIDGETS + "/w2", config, content_type=APPLY, params={"fieldManager": "deployer"})
    assert updated.status_code == 200, updated.text
    body = updated.json()
    assert body["spec"] == {"size": 4, "color": "red", "owner": "ops"}
    assert body["metadata"]["labels"] == {"app": "w"}
    assert body["metadata"]["uid"] == created.json()["metadata"]["uid"]
    managers = {(m["manager"], m["operation"]) for m in body["metadata"]["managedFields"]}
    assert {("deployer", "Apply"), ("ops", "Update")} <= managers
    apply_entry = next(m for m in body["metadata"]["managedFields"] if m["manager"] == "deployer")
    assert apply_entry["fieldsType"] == "FieldsV1" and "f:size" in apply_entry["fieldsV1"]["f:spec"]

    # managedFields are sorted as apimachinery sorts them: by operation (Apply before Update), then time, manager.
    labels = {"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w1", "labels": {"x": "y"}}}
    labelled = widgets.call("PATCH", WIDGETS + "/w1", labels, content_type=APPLY, params={"fieldManager": "labeler"})
    assert labelled.status_code == 200, labelled.text
    assert [(m["manager"], m["operation"]) for m in labelled.json()["metadata"]["managedFields"]] == [
        ("labeler", "Apply"),
        ("python-requests", "Update"),
    ]


def test_apply_patch_requires_a_field_manager(widgets: Http) -> None:
    """S9 / statement 16: an apply-patch without `fieldManager` is rejected, and nothing is created.

    The real apiserver answers through `ValidatePatchOptions`: 422 `Invalid` on kind PatchOptions
    (the spec's "400" is from memory; upstream patch.go uses `errors.NewInvalid`)."""
    config = {"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w2"}, "spec": {"size": 3}}
    code, status = widgets.status_of("PATCH", WIDGETS + "/w2", config, content_type=APPLY)
    assert code == 422 and status["reason"] == "Invalid", status
    assert status["message"] == (
        'PatchOptions.meta.k8s.io "" is invalid: fieldManager: Required value: is required for apply patch'
    )
    assert status["details"]["causes"] == [
        {
            "reason": "FieldValueRequired",
            "message": "Required value: is required for apply patch",
            "field": "fieldManager",
        }
    ]
    assert widgets.call("GET", WIDGETS + "/w2").status_code == 404
    # Other patch types default the manager from the User-Agent instead.
    patched = widgets.ok("PATCH", WIDGETS + "/w1", {"spec": {"size": 2}}, content_type=MERGE)
    assert "python-requests" in {m["manager"] for m in patched["metadata"]["managedFields"]}


def test_kubernetes_client_server_side_apply(widgets: Http, plane: Plane) -> None:
    """S9 / statement 16 through the kubernetes client (`_content_type='application/apply-patch+yaml'`),
    on a CR and on a ConfigMap."""
    client = k8s_client(plane)
    custom = kubernetes.client.CustomObjectsApi(client)
    config = {"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w3"}, "spec": {"size": 5}}
    _, status, _ = custom.patch_namespaced_custom_object_with_http_info(
        "example.com", "v1", "default", "widgets", "w3", config, field_manager="pyclient", _content_type=APPLY
    )
    # 201 Created; this client maps only 200 to a body for custom objects, so read it back.
    assert status == 201
    assert widgets.get(WIDGETS + "/w3")["spec"] == {"size": 5, "color": "red"}
    config["spec"]["color"] = "blue"
    again = custom.patch_namespaced_custom_object(
        "example.com", "v1", "default", "widgets", "w3", config, field_manager="pyclient", _content_type=APPLY
    )
    assert again["spec"] == {"size": 5, "color": "blue"}

    core = kubernetes.client.CoreV1Api(client)
    cm = core.patch_namespaced_config_map(
        "applied", "default", configmap("applied", a="1"), field_manager="pyclient", _content_type=APPLY
    )
    assert cm.data == {"a": "1"}
    assert [(m.manager, m.operation) for m in cm.metadata.managed_fields] == [("pyclient", "Apply")]
    cm = core.patch_namespaced_config_map(
        "applied", "default", configmap("applied", a="2", b="3"), field_manager="pyclient", _content_type=APPLY
    )
    assert cm.data == {"a": "2", "b": "3"}


@pytest.mark.kubectl
def test_kubectl_apply_server_side(widgets: Http, kubectl: CLI, tmp_path: Path) -> None:
    """S9 / statement 16 through real `kubectl apply --server-side` (C4): creates, then updates, with one
    Apply managedFields entry for the `kubectl` manager and no last-applied annotation."""
    first = write_manifest(tmp_path, "w.yaml", widget("w2", size=2), configmap("c2", a="1"))
    assert kubectl.run("apply", "--server-side", "-f", str(first)).stdout.splitlines() == [
        "widget.example.com/w2 serverside-applied",
        "configmap/c2 serverside-applied",
    ]
    second = write_manifest(tmp_path, "w.yaml", widget("w2", size=3), configmap("c2", a="2"))
    kubectl.run("apply", "--server-side", "-f", str(second))
    stored = widgets.get(WIDGETS + "/w2")
    assert stored["spec"] == {"size": 3, "color": "red"}
    assert "kubectl.kubernetes.io/last-applied-configuration" not in (stored["metadata"].get("annotations") or {})
    assert [(m["manager"], m["operation"]) for m in stored["metadata"]["managedFields"]] == [("kubectl", "Apply")]
    assert widgets.get(CONFIGMAPS + "/c2")["data"] == {"a": "2"}


@pytest.mark.kubectl
def test_kubectl_apply_server_side_requests(
    widgets: Http, emulator: EmbeddedServer, kubectl: CLI, tmp_path: Path
) -> None:
    """S9 / statement 16, what `kubectl apply --server-side` sends (the embedded server's access log): an
    apply PATCH with `fieldManager=kubectl&force=false`, answered 201 on create and 200 on update."""
    emulator.http.access_log = []
    first = write_manifest(tmp_path, "w.yaml", widget("w2", size=2), configmap("c2", a="1"))
    kubectl.run("apply", "--server-side", "-f", str(first))
    second = write_manifest(tmp_path, "w.yaml", widget("w2", size=3), configmap("c2", a="2"))
    kubectl.run("apply", "--server-side", "-f", str(second))
    patches = records(emulator, "PATCH")
    assert [(r.path, r.status) for r in patches] == [
        (WIDGETS + "/w2", 201),
        (CONFIGMAPS + "/c2", 201),
        (WIDGETS + "/w2", 200),
        (CONFIGMAPS + "/c2", 200),
    ]
    for record in patches:
        assert record.content_type == APPLY
        assert record.query == {"fieldManager": "kubectl", "fieldValidation": "Strict", "force": "false"}


# ----------------------------------------------------------------------------------- statement 17
def test_no_op_writes_keep_resource_version_and_emit_no_event(widgets: Http) -> None:
    """S9 / statement 17: a patch (merge, JSON, apply) or PUT that changes nothing returns the same
    resourceVersion and produces no watch event."""
    current = widgets.get(WIDGETS + "/w1")
    rv = current["metadata"]["resourceVersion"]
    same = [
        widgets.ok("PATCH", WIDGETS + "/w1", {"spec": {"size": 1}}, content_type=MERGE),
        widgets.ok(
            "PATCH", WIDGETS + "/w1", [{"op": "replace", "path": "/spec/size", "value": 1}], content_type=JSON_PATCH
        ),
        widgets.ok("PATCH", WIDGETS + "/w1", {"metadata": {"labels": None}}, content_type=MERGE),
        widgets.ok("PUT", WIDGETS + "/w1", copy.deepcopy(current)),
    ]
    assert [o["metadata"]["resourceVersion"] for o in same] == [rv] * 4
    assert widgets.get(WIDGETS + "/w1") == current
    assert newest_rv(widgets, WIDGETS) == int(rv)

    marker = widgets.ok("PATCH", WIDGETS + "/w1", {"spec": {"size": 2}}, content_type=MERGE)
    events = next_events(widgets, WIDGETS, int(rv), 1)
    assert [(e["type"], e["object"]["metadata"]["resourceVersion"]) for e in events] == [
        ("MODIFIED", marker["metadata"]["resourceVersion"])
    ]


_BUILTINS: dict[str, JSON] = {
    PODS: pod("p1"),
    "/apis/batch/v1/namespaces/default/jobs": job("j1", command=["true"]),
    "/apis/batch/v1/namespaces/default/cronjobs": {
        "apiVersion": "batch/v1",
        "kind": "CronJob",
        "metadata": {"name": "cj1"},
        # suspended: a real CronJob controller would otherwise write its status at every minute boundary
        "spec": {"schedule": "* * * * *", "suspend": True, "jobTemplate": {"spec": job("x", command=["true"])["spec"]}},
    },
    DEPLOYMENTS: deployment("d1"),
    "/api/v1/namespaces/default/services": {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "svc1"},
        "spec": {"ports": [{"port": 80}], "selector": {"app": "a"}},
    },
    "/api/v1/namespaces/default/secrets": {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "s1"},
        "stringData": {"k": "v"},
    },
    "/api/v1/namespaces": {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "ns1"}},
}


@pytest.mark.parametrize("collection", list(_BUILTINS), ids=[c.rsplit("/", 1)[-1] for c in _BUILTINS])
def test_no_op_writes_of_defaulted_builtins(http: Http, collection: str) -> None:
    """S9 / statement 17 for built-ins whose server-side defaulting fills many fields: writing back what was
    read (PUT with or without the resourceVersion, an empty merge patch) changes nothing."""
    name = http.ok("POST", collection, copy.deepcopy(_BUILTINS[collection]), expect=201)["metadata"]["name"]
    path = f"{collection}/{name}"
    read = settled(http, collection, name)  # after the real plane's controllers have had their say
    unversioned = copy.deepcopy(read)
    del unversioned["metadata"]["resourceVersion"]
    results = [
        http.ok("PUT", path, copy.deepcopy(read)),
        http.ok("PATCH", path, {}, content_type=MERGE),
        http.ok("PUT", path, unversioned),
    ]
    assert [r["metadata"]["resourceVersion"] for r in results] == [read["metadata"]["resourceVersion"]] * 3
    assert http.get(path) == read


# ----------------------------------------------------------------------------------- statement 18
def test_dry_run_persists_nothing(widgets: Http) -> None:
    """S9 / statement 18: `dryRun=All` returns the would-be object for create, update, patch and delete,
    validates as usual, and persists nothing (no RV bump, no event)."""
    dry = {"dryRun": "All"}
    before = widgets.get(WIDGETS + "/w1")
    list_rv = widgets.list_rv(WIDGETS)
    newest = newest_rv(widgets, WIDGETS)

    would_be = widgets.ok("POST", WIDGETS, widget("w2", size=2), params=dry, expect=201)
    assert would_be["metadata"]["name"] == "w2" and would_be["spec"] == {"size": 2, "color": "red"}
    assert would_be["metadata"]["uid"] and TIMESTAMP.match(would_be["metadata"]["creationTimestamp"])
    assert widgets.call("GET", WIDGETS + "/w2").status_code == 404

    invalid = widgets.call("POST", WIDGETS, widget("w3", size=1000), params=dry)
    assert invalid.status_code == 422 and invalid.json()["reason"] == "Invalid"

    patched = widgets.ok("PATCH", WIDGETS + "/w1", {"spec": {"size": 9}}, content_type=MERGE, params=dry)
    assert patched["spec"]["size"] == 9 and patched["metadata"]["generation"] == 2
    applied = widgets.ok(  # forced: `spec.size` belongs to the creator's manager (a real server reports the conflict)
        "PATCH",
        WIDGETS + "/w1",
        {"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w1"}, "spec": {"size": 8}},
        content_type=APPLY,
        params={**dry, "fieldManager": "dry", "force": "true"},
    )
    assert applied["spec"]["size"] == 8
    replaced = copy.deepcopy(before)
    replaced["spec"]["size"] = 7
    assert widgets.ok("PUT", WIDGETS + "/w1", replaced, params=dry)["spec"]["size"] == 7

    widgets.ok("DELETE", WIDGETS + "/w1", params=dry)
    widgets.ok("DELETE", WIDGETS + "/w1", {"dryRun": ["All"]})  # DeleteOptions body form

    assert widgets.get(WIDGETS + "/w1") == before
    assert newest_rv(widgets, WIDGETS) == newest
    marker = widgets.ok("PATCH", WIDGETS + "/w1", {"spec": {"size": 2}}, content_type=MERGE)
    events = next_events(widgets, WIDGETS, list_rv, 1)
    assert [(e["type"], e["object"]["metadata"]["resourceVersion"]) for e in events] == [
        ("MODIFIED", marker["metadata"]["resourceVersion"])
    ]


def test_kubernetes_client_dry_run(widgets: Http, plane: Plane) -> None:
    """S9 / statement 18 through the kubernetes client's `dry_run='All'` on create, patch and delete."""
    core = kubernetes.client.CoreV1Api(k8s_client(plane))
    made = core.create_namespaced_config_map("default", configmap("c1", a="1"), dry_run="All")
    assert made.data == {"a": "1"}
    assert widgets.call("GET", CONFIGMAPS + "/c1").status_code == 404
    core.create_namespaced_config_map("default", configmap("c1", a="1"))
    patched = core.patch_namespaced_config_map("c1", "default", {"data": {"a": "2"}}, dry_run="All")
    assert patched.data == {"a": "2"}
    core.delete_namespaced_config_map("c1", "default", dry_run="All")
    assert core.read_namespaced_config_map("c1", "default").data == {"a": "1"}


@pytest.mark.kubectl
def test_kubectl_server_dry_run(widgets: Http, kubectl: CLI, tmp_path: Path) -> None:
    """S9 / statement 18 through real kubectl `--dry-run=server` for create, apply, patch and delete: the
    server's answers are shown, nothing is persisted."""
    rv = newest_rv(widgets, WIDGETS)
    manifest = write_manifest(tmp_path, "w.yaml", widget("w2", size=2))
    out = kubectl.run("create", "-f", str(manifest), "--dry-run=server", "-o", "json").stdout
    assert json.loads(out)["spec"] == {"size": 2, "color": "red"}
    assert kubectl.run("apply", "-f", str(manifest), "--dry-run=server").stdout.strip() == (
        "widget.example.com/w2 created (server dry run)"
    )
    patched = kubectl.run(
        "patch", "widget", "w1", "--type=merge", "-p", '{"spec":{"size":5}}', "--dry-run=server", "-o", "json"
    ).stdout
    assert json.loads(patched)["spec"]["size"] == 5
    assert kubectl.run("delete", "widget", "w1", "--dry-run=server").stdout.strip() == (
        'widget.example.com "w1" deleted from default namespace (server dry run)'
    )
    assert widgets.call("GET", WIDGETS + "/w2").status_code == 404
    assert widgets.get(WIDGETS + "/w1")["spec"]["size"] == 1
    assert newest_rv(widgets, WIDGETS) == rv


@pytest.mark.kubectl
def test_kubectl_server_dry_run_requests(widgets: Http, emulator: EmbeddedServer, kubectl: CLI, tmp_path: Path) -> None:
    """S9 / statement 18, what kubectl `--dry-run=server` sends (the embedded server's access log): the
    writes carry `dryRun=All` (the DELETE in its DeleteOptions body)."""
    emulator.http.access_log = []
    manifest = write_manifest(tmp_path, "w.yaml", widget("w2", size=2))
    kubectl.run("create", "-f", str(manifest), "--dry-run=server")
    kubectl.run("apply", "-f", str(manifest), "--dry-run=server")
    kubectl.run("patch", "widget", "w1", "--type=merge", "-p", '{"spec":{"size":5}}', "--dry-run=server")
    kubectl.run("delete", "widget", "w1", "--dry-run=server")
    writes = [r for r in records(emulator) if r.method != "GET"]
    assert [r.method for r in writes] == ["POST", "POST", "PATCH", "DELETE"]
    assert all(r.query.get("dryRun") == "All" for r in writes if r.method != "DELETE"), writes
