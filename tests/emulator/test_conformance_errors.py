"""Conformance: errors as Status objects, fieldValidation, CR schema validation (API-surface spec §9, statements 42-44).

Covered:
- 42: every failure is a `Status` (`kind, apiVersion, metadata, status: Failure, message, reason, code`, exact
  `application/json`) with the S8 reason/code pairs and upstream messages/details: NotFound (CR and core forms),
  AlreadyExists, Conflict, Invalid, BadRequest, UnsupportedMediaType, MethodNotAllowed, Expired, Forbidden; the
  kubernetes client's `ApiException.status` (and 410 from its watch, on the embedded plane, whose history can be
  expired on demand) and pykube's `HTTPError.code` match.
- 43: `fieldValidation=Strict` → 400 naming the unknown field (422 on the field `patch` for a PATCH, which fails
  after the patch was applied); `Warn` (also the default) → `Warning: 299 - "unknown field \\"spec.foo\\""` and
  the field dropped; `Ignore` → dropped silently; for a CR and a ConfigMap; real `kubectl apply` (Strict by
  default) fails naming the field, `--validate=warn` prints the server's warning.
- 44: CR schema violations (type, enum, required, maximum, CEL rule on create, CEL transition rule on update) → 422
  `Invalid` with `details.causes[].field`; real `kubectl apply` reports them; defaults are applied on create and
  update; unknown fields are pruned (but kept under `x-kubernetes-preserve-unknown-fields`).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kubernetes
import pykube
import pytest
import yaml

from dops.emulator import EmbeddedServer
from tests.builders import WidgetCRD, configmap, namespace, widget
from tests.emulator.kube_http import CM, CRDS, WIDGETS, Kube
from tests.helpers import CLI
from tests.planes import Plane

JSON = dict[str, Any]
pytestmark = pytest.mark.both_planes
STATUS_KEYS = {"kind", "apiVersion", "metadata", "status", "message", "reason", "code"}


@pytest.fixture
def kube(plane: Plane) -> Iterator[Kube]:
    client = Kube(plane)
    crd = WidgetCRD().build()
    # A rule on the whole spec, checked on create as well: big widgets must be red.
    crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]["x-kubernetes-validations"] = [
        {"rule": "!has(self.size) || self.size <= 10 || self.color == 'red'", "message": "big widgets must be red"}
    ]
    client.install_crd(crd)
    yield client
    client.close()


def status_of(response: Any, code: int, reason: str) -> JSON:
    """Assert `response` is a Status error with this code and reason; return the Status."""
    assert response.status_code == code, f"{response.status_code}: {response.text}"
    assert response.headers["Content-Type"] == "application/json"
    status: JSON = response.json()
    assert set(status) >= STATUS_KEYS, status
    assert (status["kind"], status["apiVersion"], status["metadata"], status["status"]) == (
        "Status",
        "v1",
        {},
        "Failure",
    )
    assert (status["code"], status["reason"]) == (code, reason), status
    return status


# ---------------------------------------------------------------------------------------------- 42


def test_status_errors_have_the_s8_reasons_codes_and_messages(kube: Kube) -> None:
    """S9 / statement 42: each failure class answers with its S8 Status (reason, code, message, details)."""
    status = status_of(kube.get(f"{WIDGETS}/missing"), 404, "NotFound")
    assert status["message"] == 'widgets.example.com "missing" not found'
    assert status["details"] == {"name": "missing", "group": "example.com", "kind": "widgets"}
    status = status_of(kube.get(f"{CM}/missing"), 404, "NotFound")
    assert status["message"] == 'configmaps "missing" not found'
    assert status["details"] == {"name": "missing", "kind": "configmaps"}

    first = kube.create(WIDGETS, widget("w1", size=1))
    status = status_of(kube.post(WIDGETS, widget("w1", size=1)), 409, "AlreadyExists")
    assert status["message"] == 'widgets.example.com "w1" already exists'
    assert status["details"]["name"] == "w1"

    kube.ok(kube.patch(f"{WIDGETS}/w1", {"spec": {"size": 2}}))
    stale = {**first, "spec": {"size": 3}}
    status = status_of(kube.put(f"{WIDGETS}/w1", stale), 409, "Conflict")
    assert status["message"] == (
        'Operation cannot be fulfilled on widgets.example.com "w1": the object has been modified; '
        "please apply your changes to the latest version and try again"
    )

    status = status_of(kube.post(WIDGETS, widget("bad", size="a")), 422, "Invalid")
    assert status["message"].startswith('Widget.example.com "bad" is invalid: ')
    assert (
        'spec.size: Invalid value: "string": spec.size in body must be of type integer: "string"' in status["message"]
    )
    assert status["details"]["causes"][0] == {
        "reason": "FieldValueTypeInvalid",
        "message": 'Invalid value: "string": spec.size in body must be of type integer: "string"',
        "field": "spec.size",
    }

    status = status_of(kube.get(CM, params={"labelSelector": "a in (x"}), 400, "BadRequest")
    assert status["message"]

    status = status_of(
        kube.patch(f"{WIDGETS}/w1", {"spec": {"size": 4}}, "application/strategic-merge-patch+json"),
        415,
        "UnsupportedMediaType",
    )
    status_of(kube.patch(f"{WIDGETS}/w1", {"spec": {}}, "text/plain"), 415, "UnsupportedMediaType")

    status = status_of(kube.patch(CM, {"data": {}}), 405, "MethodNotAllowed")
    assert status["message"] == "the server does not allow this method on the requested resource"

    kube.create("/api/v1/namespaces", namespace("doomed"))
    kube.ok(kube.delete("/api/v1/namespaces/doomed"))  # no namespace controller here: it stays Terminating
    status = status_of(
        kube.post("/api/v1/namespaces/doomed/configmaps", configmap("c", namespace="doomed")), 403, "Forbidden"
    )
    assert status["message"] == (
        'configmaps "c" is forbidden: unable to create new content in namespace doomed because it is being terminated'
    )


def _api_exception(call: Any, *args: Any, **kwargs: Any) -> tuple[int, JSON]:
    """The status and decoded Status body of the ApiException `call` raises."""
    with pytest.raises(kubernetes.client.ApiException) as info:
        call(*args, **kwargs)
    return info.value.status, json.loads(info.value.body) if info.value.body else {}


def test_kubernetes_client_api_exception_carries_status_code_and_body(plane: Plane, kube: Kube) -> None:
    """S9 / statement 42: kubernetes-client ApiException.status equals the code; the body is the Status."""
    with kubernetes.config.new_client_from_config(config_file=str(plane.kubeconfig)) as client:
        core = kubernetes.client.CoreV1Api(client)
        custom = kubernetes.client.CustomObjectsApi(client)

        code, body = _api_exception(core.read_namespaced_config_map, "missing", "default")
        assert (code, body["reason"], body["message"]) == (404, "NotFound", 'configmaps "missing" not found')
        code, body = _api_exception(
            custom.get_namespaced_custom_object, "example.com", "v1", "default", "widgets", "missing"
        )
        assert (code, body["reason"]) == (404, "NotFound")

        core.create_namespaced_config_map("default", configmap("c1"))
        code, body = _api_exception(core.create_namespaced_config_map, "default", configmap("c1"))
        assert (code, body["reason"]) == (409, "AlreadyExists")

        stale = core.read_namespaced_config_map("c1", "default")
        core.patch_namespaced_config_map("c1", "default", {"data": {"k": "v"}})
        stale.data = {"k": "stale"}
        code, body = _api_exception(core.replace_namespaced_config_map, "c1", "default", stale)
        assert (code, body["reason"]) == (409, "Conflict")

        code, body = _api_exception(
            custom.create_namespaced_custom_object, "example.com", "v1", "default", "widgets", widget("w", size="a")
        )
        assert (code, body["reason"], body["details"]["causes"][0]["field"]) == (422, "Invalid", "spec.size")


def test_kubernetes_client_watch_raises_api_exception_410(emulator: EmbeddedServer, kube: Kube) -> None:
    """S9 / statement 42: the watch helper raises ApiException(410) for an in-stream ERROR 410 when it may not
    retry. The history is expired through the emulator's hook (a real server compacts on its own schedule)."""
    with kubernetes.config.new_client_from_config(config_file=str(emulator.kubeconfig)) as client:  # type: ignore[attr-defined]
        core = kubernetes.client.CoreV1Api(client)
        core.create_namespaced_config_map("default", configmap("c1"))
        old_rv = core.list_namespaced_config_map("default").metadata.resource_version
        core.patch_namespaced_config_map("c1", "default", {"data": {"k": "w"}})
        kube.request("POST", "/__emulator/watches/expire")
        watch = kubernetes.watch.Watch()
        with pytest.raises(kubernetes.client.ApiException) as info:
            for _ in watch.stream(
                core.list_namespaced_config_map, "default", resource_version=old_rv, timeout_seconds=5
            ):
                pass
        assert info.value.status == 410
        assert "Expired" in str(info.value.reason)


def test_pykube_http_error_code_matches(plane: Plane, kube: Kube) -> None:
    """S9 / statement 42: pykube raises HTTPError with `.code` = the HTTP code and the Status message."""
    api = pykube.HTTPClient(pykube.KubeConfig.from_file(str(plane.kubeconfig)))  # type: ignore[attr-defined]
    pykube.ConfigMap(api, configmap("c1")).create()
    with pytest.raises(pykube.exceptions.HTTPError) as info:
        pykube.ConfigMap(api, configmap("c1")).create()
    assert info.value.code == 409
    assert str(info.value) == 'configmaps "c1" already exists'

    Widget = pykube.object_factory(api, "example.com/v1", "Widget")
    with pytest.raises(pykube.exceptions.HTTPError) as info:
        Widget(api, widget("bad", size="a")).create()
    assert info.value.code == 422
    assert str(info.value).startswith('Widget.example.com "bad" is invalid')

    stale = pykube.ConfigMap.objects(api, namespace="default").get_by_name("c1")
    kube.ok(kube.patch(f"{CM}/c1", {"data": {"k": "v"}}))
    stale.obj["data"] = {"k": "stale"}
    with pytest.raises(pykube.exceptions.HTTPError) as info:
        stale.update()  # a merge patch carrying the old resourceVersion
    assert info.value.code == 409

    with pytest.raises(pykube.exceptions.ObjectDoesNotExist):
        pykube.ConfigMap.objects(api, namespace="default").get_by_name("missing")
    with pytest.raises(pykube.exceptions.HTTPError) as info:
        pykube.ConfigMap(api, configmap("missing")).reload()
    assert info.value.code == 404
    assert str(info.value) == 'configmaps "missing" not found'


# ---------------------------------------------------------------------------------------------- 43


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        (WIDGETS, widget("w1", size=1, foo="x"), "spec.foo"),
        (CM, {**configmap("c1", k="v"), "foo": "x"}, "foo"),
    ],
    ids=["custom-resource", "configmap"],
)
def test_field_validation_strict_warn_ignore(kube: Kube, path: str, body: JSON, field: str) -> None:
    """S9 / statement 43: Strict → 400 naming the field; Warn (default) → Warning header + dropped; Ignore → dropped."""
    strict = status_of(kube.post(path, body, params={"fieldValidation": "Strict"}), 400, "BadRequest")
    assert f'unknown field "{field}"' in strict["message"]
    assert "strict decoding error" in strict["message"]
    assert kube.get(f"{path}/{body['metadata']['name']}").status_code == 404  # nothing stored

    top, _, leaf = field.rpartition(".")
    for mode in ("Warn", None, "Ignore"):
        name = f"{body['metadata']['name']}-{(mode or 'default').lower()}"
        sent = json.loads(json.dumps(body))
        sent["metadata"]["name"] = name
        response = kube.post(path, sent, params={"fieldValidation": mode} if mode else {})
        assert response.status_code == 201, response.text
        stored = kube.ok(kube.get(f"{path}/{name}"))
        container = stored[top] if top else stored
        assert leaf not in container, f"{mode}: {field} should have been dropped"
        if mode == "Ignore":
            assert "Warning" not in response.headers
        else:
            assert response.headers["Warning"] == f'299 - "unknown field \\"{field}\\""'

    bad = status_of(kube.post(path, body, params={"fieldValidation": "Loose"}), 422, "Invalid")
    assert bad["message"] == (
        'CreateOptions.meta.k8s.io "" is invalid: fieldValidation: Unsupported value: "Loose": '
        'supported values: "", "Ignore", "Strict", "Warn"'
    )
    assert bad["details"]["causes"][0]["field"] == "fieldValidation"


def test_field_validation_on_updates_and_patches(kube: Kube) -> None:
    """S9 / statement 43: the same on PUT and PATCH; a Strict patch with an unknown field changes nothing. A patch
    fails after it was applied: 422 Invalid on the field `patch`, whose bad value is the patched object's JSON."""
    created = kube.create(WIDGETS, widget("w1", size=1))
    response = kube.patch(f"{WIDGETS}/w1", {"spec": {"size": 2, "foo": 1}}, params={"fieldValidation": "Strict"})
    status = status_of(response, 422, "Invalid")
    (cause,) = status["details"]["causes"]
    assert status["details"] == {"causes": [cause]}  # NewInvalid(GroupKind{}, "", …): no kind, no name
    assert (cause["reason"], cause["field"]) == ("FieldValueInvalid", "patch")
    assert status["message"] == ' "" is invalid: patch: ' + cause["message"]
    prefix = "Invalid value: "
    assert cause["message"].startswith(prefix)
    text, end = json.JSONDecoder().raw_decode(cause["message"], len(prefix))
    assert cause["message"][end:] == ': strict decoding error: unknown field "spec.foo"'
    patched = json.loads(text)  # the merge-patched object, re-encoded with sorted keys
    assert list(patched) == sorted(patched) and patched["spec"] == {"color": "red", "foo": 1, "size": 2}
    assert patched["metadata"]["uid"] == created["metadata"]["uid"]
    assert kube.ok(kube.get(f"{WIDGETS}/w1"))["metadata"]["resourceVersion"] == created["metadata"]["resourceVersion"]
    response = kube.patch(f"{WIDGETS}/w1", {"spec": {"size": 2, "foo": 1}})
    assert response.status_code == 200 and response.headers["Warning"] == '299 - "unknown field \\"spec.foo\\""'
    current = response.json()
    assert current["spec"] == {"size": 2, "color": "red"}
    current["spec"]["bar"] = True
    response = kube.put(f"{WIDGETS}/w1", current, params={"fieldValidation": "Warn"})
    assert response.status_code == 200 and 'unknown field \\"spec.bar\\"' in response.headers["Warning"]


def test_strict_strategic_patch_reports_the_patch_map(kube: Kube) -> None:
    """S9 / statement 43: a Strict strategic merge patch (kubectl's kind) with an unknown field → 422 on `patch`
    whose bad value is the patch as Go prints a map; the object is unchanged."""
    kube.create(CM, configmap("c1", k="v"))
    patch = {"data": {"a": "b"}, "foo": {"x": [1, 2.5, True, None]}}
    response = kube.patch(
        f"{CM}/c1", patch, "application/strategic-merge-patch+json", params={"fieldValidation": "Strict"}
    )
    status = status_of(response, 422, "Invalid")
    body = (
        'Invalid value: "map[data:map[a:b] foo:map[x:[1 2.5 true <nil>]]]": strict decoding error: unknown field "foo"'
    )
    assert status["message"] == ' "" is invalid: patch: ' + body
    assert status["details"] == {"causes": [{"reason": "FieldValueInvalid", "message": body, "field": "patch"}]}
    assert kube.ok(kube.get(f"{CM}/c1"))["data"] == {"k": "v"}


def _write_manifest(tmp_path: Path, name: str, obj: JSON) -> str:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(obj))
    return str(path)


def test_kubectl_apply_strict_by_default_and_warn_on_request(kube: Kube, kubectl: CLI, tmp_path: Path) -> None:
    """S9 / statement 43: real kubectl apply (fieldValidation=Strict) fails naming the field; --validate=warn warns."""
    manifest = _write_manifest(tmp_path, "w.yaml", widget("w1", size=1, foo="x"))
    failed = kubectl.run("apply", "-f", manifest, check=False)
    assert failed.returncode != 0
    assert 'unknown field "spec.foo"' in failed.stderr
    assert kube.get(f"{WIDGETS}/w1").status_code == 404
    warned = kubectl.run("apply", "--validate=warn", "-f", manifest)
    assert "widget.example.com/w1 created" in warned.stdout
    assert 'Warning: unknown field "spec.foo"' in warned.stderr
    assert "foo" not in kube.ok(kube.get(f"{WIDGETS}/w1"))["spec"]


# ---------------------------------------------------------------------------------------------- 44


@pytest.mark.parametrize(
    ("spec", "field", "reason", "message"),
    [
        (
            {"size": "a"},
            "spec.size",
            "FieldValueTypeInvalid",
            'Invalid value: "string": spec.size in body must be of type integer: "string"',
        ),
        (
            {"size": 1, "color": "purple"},
            "spec.color",
            "FieldValueNotSupported",
            'Unsupported value: "purple": supported values: "red", "green", "blue"',
        ),
        (
            {"size": 101},
            "spec.size",
            "FieldValueInvalid",
            "Invalid value: 101: spec.size in body should be less than or equal to 100",
        ),
        (
            {"size": 50, "color": "blue"},
            "spec",
            "FieldValueInvalid",
            "Invalid value: big widgets must be red",  # an object's value is omitted (field.OmitValueType)
        ),
        ({"tags": ["a", "a"]}, "spec.tags[1]", "FieldValueDuplicate", 'Duplicate value: "a"'),
    ],
    ids=["type", "enum", "maximum", "cel", "list-set"],
)
def test_schema_violations_are_422_with_causes(kube: Kube, spec: JSON, field: str, reason: str, message: str) -> None:
    """S9 / statement 44: schema and CEL violations → 422 Invalid with details.causes[].field; nothing is stored."""
    status = status_of(kube.post(WIDGETS, widget("w1", **spec)), 422, "Invalid")
    assert status["details"]["name"] == "w1" and status["details"]["kind"] == "Widget"
    assert {"reason": reason, "message": message, "field": field} in status["details"]["causes"]
    assert f"{field}: {message}" in status["message"]
    assert kube.get(f"{WIDGETS}/w1").status_code == 404


def test_required_field_and_transition_rule(kube: Kube) -> None:
    """S9 / statement 44: a missing required field → FieldValueRequired; a CEL transition rule rejects an update."""
    required = WidgetCRD(group="strict.example.com").requiring("size")
    kube.install_crd(required)
    path = "/apis/strict.example.com/v1/namespaces/default/widgets"
    body = {**widget("w1"), "apiVersion": "strict.example.com/v1"}
    status = status_of(kube.post(path, body), 422, "Invalid")
    assert {"reason": "FieldValueRequired", "message": "Required value", "field": "spec.size"} in status["details"][
        "causes"
    ]

    kube.create(WIDGETS, widget("w1", size=1, owner="alice"))
    status = status_of(kube.patch(f"{WIDGETS}/w1", {"spec": {"owner": "bob"}}), 422, "Invalid")
    # A scalar's own value is the bad value.
    assert (
        status["message"] == 'Widget.example.com "w1" is invalid: spec.owner: Invalid value: "bob": owner is immutable'
    )
    assert status["details"]["causes"] == [
        {"reason": "FieldValueInvalid", "message": 'Invalid value: "bob": owner is immutable', "field": "spec.owner"}
    ]
    assert kube.ok(kube.get(f"{WIDGETS}/w1"))["spec"]["owner"] == "alice"


def test_kubectl_apply_reports_schema_violation(kube: Kube, kubectl: CLI, tmp_path: Path) -> None:
    """S9 / statement 44: real `kubectl apply` of an invalid CR fails with the server's Invalid message."""
    manifest = _write_manifest(tmp_path, "w.yaml", widget("w1", size=1, color="purple"))
    failed = kubectl.run("apply", "-f", manifest, check=False)
    assert failed.returncode != 0
    assert 'The Widget "w1" is invalid: ' in failed.stderr
    assert '* spec.color: Unsupported value: "purple": supported values: "red", "green", "blue"' in failed.stderr


def test_defaults_applied_and_unknown_fields_pruned(kube: Kube) -> None:
    """S9 / statement 44: `default:` fills missing fields on create and update; unknown fields are pruned."""
    body = widget("w1", size=1, mystery={"deep": 1})
    body["topLevelJunk"] = "x"
    body["status"] = {"anything": {"goes": True}}  # dropped on create: status subresource
    created = kube.ok(kube.post(WIDGETS, body, params={"fieldValidation": "Ignore"}), 201)
    assert created["spec"] == {"size": 1, "color": "red"}
    assert "topLevelJunk" not in created and "status" not in created
    updated = kube.ok(kube.patch(f"{WIDGETS}/w1", {"spec": {"color": None}}))
    assert updated["spec"]["color"] == "red"  # defaulted again after removal
    # Under x-kubernetes-preserve-unknown-fields (status here) nothing is pruned.
    status = kube.ok(kube.patch(f"{WIDGETS}/w1/status", {"status": {"anything": {"goes": True}, "phase": "Ready"}}))
    assert status["status"] == {"anything": {"goes": True}, "phase": "Ready"}
    assert kube.ok(kube.get(f"{WIDGETS}/w1")) == status


def test_crd_that_describes_the_root_metadata_is_refused(kube: Kube) -> None:
    """A CRD schema may not say anything about the root `metadata` beyond `type: object` (the server supplies
    ObjectMeta): kube-apiserver answers 422 with the field and reason below. (dops' own CRDs once did; only
    the real server caught it.)"""
    manifest = WidgetCRD(plural="gizmos", kind="Gizmo").build()
    schema = manifest["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    schema.setdefault("properties", {})["metadata"] = {"type": "object", "description": "standard metadata"}
    response = kube.post(CRDS, manifest)
    assert response.status_code == 422, response.text
    status = response.json()
    assert status["reason"] == "Invalid"
    causes = [(c["field"], c["reason"]) for c in status["details"]["causes"]]
    # One version: the server validates its schema as the CRD's shared `spec.validation` and names it so.
    assert ("spec.validation.openAPIV3Schema.properties[metadata]", "FieldValueForbidden") in causes
    assert "must not specify anything other than name and generateName" in status["message"]
