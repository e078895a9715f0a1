"""Bad input gets the Status a real kube-apiserver returns, and the server stays healthy (issue 2: "Bad input").

Covered:
- malformed JSON and YAML bodies (create, update, patches), non-object bodies, a kind that does not match the URL → 400;
- unknown resources, groups and versions → 404 `the server could not find the requested resource`; real kubectl
  reports an unknown kind / resource type from discovery;
- invalid label and field selectors on lists and watches → 400 (no stream is opened);
- request bodies over 3 MiB (with Content-Length and chunked) → 413 `RequestEntityTooLarge`;
- stored objects over etcd's 1.5 MiB limit → 413 `etcdserver: request is too large` (see docs/GAPS.md), ConfigMaps and
  Secrets over 1 MiB of data → 422 `Too long` as upstream validation; the object is unchanged;
- invalid names (DNS-1123 subdomain / label, length) → 422 with the upstream message;
- a body namespace differing from the URL → 400; a create in a missing namespace → 404 `namespaces "x" not found`;
- garbage on the wire (a broken request line, a client that hangs up mid-body) breaks nothing;
- after every case the server still serves reads, writes and watches.
"""

from __future__ import annotations

import base64
import contextlib
import socket
import ssl
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from tests.builders import configmap, namespace, widget
from tests.emulator.kube_http import CM, WIDGETS, Kube, WatchStream
from tests.helpers import CLI
from tests.planes import Plane, RealPlane, made_by_test

JSON = dict[str, Any]
pytestmark = pytest.mark.both_planes
MIB = 1024 * 1024
NOT_FOUND = "the server could not find the requested resource"


@pytest.fixture
def kube(plane: Plane) -> Iterator[Kube]:
    client = Kube(plane)
    client.install_crd()
    yield client
    assert_healthy(client, plane)
    client.close()


def assert_healthy(kube: Kube, plane: Plane) -> None:
    """The server still answers reads, writes and watches."""
    assert kube.get("/version").status_code == 200
    created = kube.create(CM, configmap("health-probe"))
    with WatchStream(plane, CM, {"resourceVersion": created["metadata"]["resourceVersion"]}) as watch:
        assert kube.delete(f"{CM}/health-probe").status_code == 200
        assert watch.next()["type"] == "DELETED"


def status_of(response: Any, code: int, reason: str) -> JSON:
    assert response.status_code == code, f"{response.status_code}: {response.text[:500]}"
    assert response.headers["Content-Type"] == "application/json"
    status: JSON = response.json()
    assert (status["kind"], status["apiVersion"], status["status"]) == ("Status", "v1", "Failure")
    assert (status["code"], status["reason"]) == (code, reason), status
    return status


# ---------------------------------------------------------------------------------------------- malformed bodies


TYPE_META = 'struct { APIVersion string "json:\\"apiVersion,omitempty\\""; Kind string "json:\\"kind,omitempty\\"" }'
UNRECOGNIZED = "the object provided is unrecognized (must be of type ConfigMap): "
PARSE_ERROR = "couldn't get version/kind; json parse error: "


@pytest.mark.parametrize(
    ("method", "path", "data", "content_type", "message"),
    [
        (
            "POST",
            CM,
            b'{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {',
            "application/json",
            # the body's first 30 bytes as text when it starts with `{`, else as hex (summarizeData)
            f'{UNRECOGNIZED}{PARSE_ERROR}unexpected end of JSON input ({{"apiVersion": "v1", "kind": " ...)',
        ),
        (  # no Content-Type: read as JSON
            "POST",
            CM,
            b"not json at all",
            "",
            f"{UNRECOGNIZED}{PARSE_ERROR}invalid character 'o' in literal null (expecting 'u') "
            "(6e6f74206a736f6e20617420616c6c)",
        ),
        (
            "POST",
            CM,
            b"metadata: {name: [unclosed",
            "application/yaml",
            f"{UNRECOGNIZED}yaml: line 1: did not find expected ',' or ']' "
            "(6d657461646174613a207b6e616d653a205b756e636c6f736564)",
        ),
        (
            "POST",
            CM,
            b"[1, 2, 3]",
            "application/json",
            f"{UNRECOGNIZED}{PARSE_ERROR}json: cannot unmarshal array into Go value of type {TYPE_META} "
            "(5b312c20322c20335d)",
        ),
        (
            "POST",
            CM,
            b'"a string"',
            "application/json",
            f"{UNRECOGNIZED}{PARSE_ERROR}json: cannot unmarshal string into Go value of type {TYPE_META} "
            "(226120737472696e6722)",
        ),
        (
            "PUT",
            f"{CM}/existing",
            b"{,}",
            "application/json",
            f"{UNRECOGNIZED}{PARSE_ERROR}invalid character ',' looking for beginning of object key string ({{,}})",
        ),
        (
            "PATCH",
            f"{CM}/existing",
            b'{"data": ',
            "application/merge-patch+json",
            "error decoding patch: unexpected end of JSON input",
        ),
        (
            "PATCH",
            f"{CM}/existing",
            b'[{"op": "add", "path": ',
            "application/json-patch+json",
            "error decoding patch: unexpected end of JSON input",
        ),
        (  # the strategic patcher does not prefix its decoding error
            "PATCH",
            f"{CM}/existing",
            b'{"data": {',
            "application/strategic-merge-patch+json",
            "unexpected end of JSON input",
        ),
        (
            "POST",
            CM,
            b'{"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "x"}}',
            "application/json",
            'Secret in version "v1" cannot be handled as a ConfigMap: converting (v1.Secret) to (core.ConfigMap): '
            "unknown conversion",
        ),
        (
            "POST",
            WIDGETS,
            b'{"apiVersion": "other.example.com/v1", "kind": "Widget", "metadata": {"name": "x"}}',
            "",
            "the API version in the data (other.example.com/v1) does not match the expected API version "
            "(example.com/v1)",
        ),
    ],
    ids=[
        "truncated-json",
        "no-content-type-garbage",
        "broken-yaml",
        "json-array",
        "json-string",
        "put-garbage",
        "merge-patch-truncated",
        "json-patch-truncated",
        "strategic-truncated",
        "kind-mismatch",
        "group-mismatch",
    ],
)
def test_malformed_bodies_are_bad_requests(
    kube: Kube, method: str, path: str, data: bytes, content_type: str, message: str
) -> None:
    """Malformed or mismatched bodies → 400 BadRequest Status with the decoder's message; nothing changes."""
    existing = kube.create(CM, configmap("existing", k="v"))
    headers = {"Content-Type": content_type} if content_type else {}
    if not content_type:
        kube.session.headers.pop("Content-Type", None)
    status = status_of(kube.request(method, path, data=data, headers=headers), 400, "BadRequest")
    assert status["message"] == message
    assert kube.ok(kube.get(f"{CM}/existing")) == existing
    assert [i["metadata"]["name"] for i in made_by_test(kube.ok(kube.get(CM))["items"])] == ["existing"]
    assert kube.ok(kube.get(WIDGETS))["items"] == []


def test_json_parse_error_message(kube: Kube) -> None:
    """A create body that is not JSON → 400 with Go's JSON syntax error, wrapped as transformDecodeError does."""
    status = status_of(
        kube.request("POST", CM, data=b"{nope", headers={"Content-Type": "application/json"}), 400, "BadRequest"
    )
    assert status["message"] == (
        f"{UNRECOGNIZED}{PARSE_ERROR}invalid character 'n' looking for beginning of object key string ({{nope)"
    )


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", f"{UNRECOGNIZED}{PARSE_ERROR}unexpected end of JSON input (<empty>)"),
        (b"1", f"{UNRECOGNIZED}{PARSE_ERROR}json: cannot unmarshal number into Go value of type {TYPE_META} (31)"),
        (
            b'{"apiVersion": 1}',
            f"{UNRECOGNIZED}{PARSE_ERROR}json: cannot unmarshal number into Go struct field .apiVersion of type "
            'string ({"apiVersion": 1})',
        ),
        (
            b'{"apiVersion": "v1", "kind": "ConfigMap", "metadata": "x"}',
            'ConfigMap in version "v1" cannot be handled as a ConfigMap: json: cannot unmarshal string into Go struct '
            "field ConfigMap.metadata of type v1.ObjectMeta",
        ),
        (
            b'{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"}, "data": 5}',
            'ConfigMap in version "v1" cannot be handled as a ConfigMap: json: cannot unmarshal number into Go struct '
            "field ConfigMap.data of type map[string]string",
        ),
        (
            b'{"apiVersion": "apps/v1", "kind": "Gizmo", "metadata": {"name": "x"}}',
            'Gizmo in version "v1" cannot be handled as a ConfigMap: no kind "Gizmo" is registered for version '
            '"apps/v1" in scheme "pkg/runtime/scheme.go:111"',
        ),
    ],
    ids=["empty", "number", "api-version-number", "metadata-string", "data-number", "unknown-kind"],
)
def test_undecodable_bodies_get_the_decoders_message(kube: Kube, data: bytes, message: str) -> None:
    """Bodies that are JSON but no decodable ConfigMap → 400 with the typed decoder's message; nothing is stored."""
    status = status_of(
        kube.request("POST", CM, data=data, headers={"Content-Type": "application/json"}), 400, "BadRequest"
    )
    assert status["message"] == message
    assert made_by_test(kube.ok(kube.get(CM))["items"]) == []


def test_null_body_is_an_empty_object(kube: Kube) -> None:
    """A JSON `null` body decodes into an empty ConfigMap: 422 because it has no name."""
    response = kube.request("POST", CM, data=b"null", headers={"Content-Type": "application/json"})
    status = status_of(response, 422, "Invalid")
    assert (
        status["message"] == 'ConfigMap "" is invalid: metadata.name: Required value: name or generateName is required'
    )
    assert status["details"] == {
        "kind": "ConfigMap",
        "causes": [
            {
                "reason": "FieldValueRequired",
                "message": "Required value: name or generateName is required",
                "field": "metadata.name",
            }
        ],
    }


def test_patch_producing_a_wrongly_typed_object_is_invalid(kube: Kube) -> None:
    """A merge patch whose result cannot be decoded → 422 on `patch` naming the decoding error; nothing changes."""
    existing = kube.create(CM, configmap("existing", k="v"))
    status = status_of(kube.patch(f"{CM}/existing", {"data": 5}), 422, "Invalid")
    (cause,) = status["details"]["causes"]
    assert (cause["reason"], cause["field"]) == ("FieldValueInvalid", "patch")
    assert cause["message"].startswith('Invalid value: "{')
    suffix = ": json: cannot unmarshal number into Go struct field ConfigMap.data of type map[string]string"
    assert cause["message"].endswith(suffix)
    assert status["message"] == ' "" is invalid: patch: ' + cause["message"]
    assert kube.ok(kube.get(f"{CM}/existing")) == existing


# ---------------------------------------------------------------------------------------------- unknown kinds


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/api/v1/namespaces/default/gizmos"),
        ("GET", "/api/v1/namespaces/default/gizmos/g1"),
        ("POST", "/api/v1/namespaces/default/gizmos"),
        ("GET", "/api/v2/namespaces/default/configmaps"),
        ("GET", "/apis/apps/v1/namespaces/default/gizmos"),
        ("GET", "/apis/apps/v9"),
        ("GET", "/api/v1/namespaces/default/configmaps/c1/nosuchsubresource"),
        ("GET", "/api/v1/configmaps/c1"),  # a namespaced resource without a namespace
        ("GET", "/api/v1/namespaces/default/namespaces"),  # a cluster-scoped resource inside a namespace
    ],
)
def test_unknown_resources_of_served_groups_are_not_found(kube: Kube, method: str, path: str) -> None:
    """Under the core group and the built-in groups, unknown resources, versions and subresources → 404 NotFound
    Status `the server could not find the requested resource`."""
    kube.create(CM, configmap("c1"))
    body = {"apiVersion": "v1", "kind": "Gizmo", "metadata": {"name": "g1"}} if method == "POST" else None
    status = status_of(kube.request(method, path, json=body), 404, "NotFound")
    assert status["message"] == NOT_FOUND
    assert status["details"] == {}


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/apis/nope.example.com/v1/namespaces/default/widgets"),
        ("GET", "/apis/nope.example.com"),
        ("GET", "/apis/nope.example.com/v1"),
        ("GET", "/apis/example.com/v2"),
        ("GET", "/apis/example.com/v2/namespaces/default/widgets"),
        ("DELETE", "/apis/example.com/v1/namespaces/default/gadgets/g1"),
        ("GET", "/apis/example.com/v1/widgets/w1"),  # a namespaced custom resource without a namespace
        ("GET", "/nonsense"),
        ("POST", "/nonsense"),
    ],
)
def test_paths_no_handler_serves_are_plain_404(kube: Kube, method: str, path: str) -> None:
    """Unknown API groups, versions and resources of CRD groups, and unknown paths fall through every API handler to
    the mux's NotFound: 404 `404 page not found` in plain text, not a Status."""
    kube.create(WIDGETS, widget("w1", size=1))
    response = kube.request(method, path, json={} if method == "POST" else None)
    assert response.status_code == 404
    assert response.headers["Content-Type"] == "text/plain; charset=utf-8"
    assert response.text == "404 page not found\n"


def test_unknown_subresource_of_a_custom_resource_names_the_object(kube: Kube) -> None:
    """The CRD handler answers a subresource it does not serve with the object's NotFound."""
    kube.create(WIDGETS, widget("w1", size=1))
    status = status_of(kube.get(f"{WIDGETS}/w1/nosuch"), 404, "NotFound")
    assert status["message"] == 'widgets.example.com "w1" not found'
    assert status["details"] == {"name": "w1", "group": "example.com", "kind": "widgets"}


def test_kubectl_reports_unknown_kinds_from_discovery(plane: Plane, kube: Kube, kubectl: CLI, tmp_path: Path) -> None:
    """Real kubectl: applying an unknown kind and getting an unknown resource fail cleanly; the server is unharmed."""
    manifest = tmp_path / "gizmo.yaml"
    manifest.write_text(yaml.safe_dump({"apiVersion": "example.com/v1", "kind": "Gizmo", "metadata": {"name": "g1"}}))
    applied = kubectl.run("apply", "-f", str(manifest), check=False)
    assert applied.returncode != 0
    assert 'no matches for kind "Gizmo" in version "example.com/v1"' in applied.stderr
    got = kubectl.run("get", "gizmos", check=False)
    assert got.returncode != 0
    assert 'the server doesn\'t have a resource type "gizmos"' in got.stderr
    assert kubectl.run("get", "widgets", "-o", "name").returncode == 0


# ---------------------------------------------------------------------------------------------- selectors


@pytest.mark.parametrize(
    ("param", "selector"),
    [
        ("labelSelector", "app in (a"),
        ("labelSelector", "app notin"),
        ("labelSelector", "app=b c"),
        ("labelSelector", "(app)"),
        ("labelSelector", "app=-bad-"),
        ("labelSelector", "a/b/c=1"),
        ("labelSelector", "app=" + "v" * 64),
        ("fieldSelector", "metadata.name"),
        ("fieldSelector", "metadata.name in (a)"),
        ("fieldSelector", "spec.nothing=x"),
    ],
)
@pytest.mark.parametrize("watch", [False, True], ids=["list", "watch"])
def test_invalid_selectors_are_bad_requests(kube: Kube, param: str, selector: str, watch: bool) -> None:
    """Invalid label/field selectors → 400 BadRequest, for lists and for watches (no stream is opened)."""
    params = {param: selector}
    if watch:
        params["watch"] = "true"
    status = status_of(kube.get(CM, params=params), 400, "BadRequest")
    assert status["message"]


def test_an_empty_value_set_selects_the_empty_value(kube: Kube) -> None:
    """`k in ()` is no error: the parser reads `()` as the set {""}, so it selects objects whose label k is the empty
    string, and `k notin ()` the others (objects without the label included)."""
    kube.create(CM, configmap("empty", labels={"app": ""}))
    kube.create(CM, configmap("set", labels={"app": "x"}))
    kube.create(CM, configmap("none"))

    def selected(selector: str) -> list[str]:
        items = kube.ok(kube.get(CM, params={"labelSelector": selector}))["items"]
        return sorted(i["metadata"]["name"] for i in made_by_test(items))

    assert selected("app in ()") == ["empty"]
    assert selected("app notin ()") == ["none", "set"]


# ---------------------------------------------------------------------------------------------- sizes


def test_request_bodies_over_3_mib_are_rejected_with_413(kube: Kube) -> None:
    """A request body over 3 MiB → 413 RequestEntityTooLarge (Content-Length or chunked); nothing is stored."""
    big = configmap("big", blob="x" * (3 * MIB + 100))
    status = status_of(kube.post(CM, big), 413, "RequestEntityTooLarge")
    assert status["message"] == "Request entity too large: limit is 3145728"

    def chunks() -> Iterator[bytes]:
        yield b'{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"big"},"data":{"blob":"'
        for _ in range(4):
            yield b"x" * MIB
        yield b'"}}'

    chunked = kube.request("POST", CM, data=chunks(), headers={"Content-Type": "application/json"})
    status_of(chunked, 413, "RequestEntityTooLarge")
    kube.create(CM, configmap("small"))
    patch = kube.patch(f"{CM}/small", {"data": {"blob": "x" * (3 * MIB + 100)}})
    status_of(patch, 413, "RequestEntityTooLarge")
    assert [i["metadata"]["name"] for i in made_by_test(kube.ok(kube.get(CM))["items"])] == ["small"]


@pytest.mark.gap("objects over etcd's limit: a 500 without reason upstream, 413 RequestEntityTooLarge here")
def test_objects_over_etcd_limit_are_rejected(plane: Plane, kube: Kube) -> None:
    """A stored object over 1.5 MiB is rejected as etcd rejects it; a patch growing one that far changes nothing.

    kube-apiserver passes etcd's error on as a 500 with no reason (kubernetes#112152); over 2 MiB the request does not
    even reach etcd: its gRPC client refuses to send it. The embedded plane answers 413 RequestEntityTooLarge with
    etcd's message, the client error upstream means it to be (docs/GAPS.md, "Object size").
    """

    def rejected(response: Any) -> JSON:
        if plane.real:
            assert response.status_code == 500, response.text[:500]
            status: JSON = response.json()
            assert (status["kind"], status["status"], status["code"]) == ("Status", "Failure", 500)
            assert "reason" not in status, status
            return status
        return status_of(response, 413, "RequestEntityTooLarge")

    status = rejected(kube.post(WIDGETS, widget("huge", size=1, owner="o" * (2 * MIB))))
    if plane.real:
        grpc_limit = "rpc error: code = ResourceExhausted desc = trying to send message larger than max ("
        assert status["message"].startswith(grpc_limit) and status["message"].endswith(" vs. 2097152)")
    else:
        assert status["message"] == "etcdserver: request is too large"
    assert kube.get(f"{WIDGETS}/huge").status_code == 404

    created = kube.create(WIDGETS, widget("w1", size=1, owner="o" * MIB))
    grow = {"status": {"pad": "p" * (MIB // 2 + 10)}}  # status preserves unknown fields: nothing is pruned
    assert rejected(kube.patch(f"{WIDGETS}/w1/status", grow))["message"] == "etcdserver: request is too large"
    assert kube.ok(kube.get(f"{WIDGETS}/w1"))["metadata"]["resourceVersion"] == created["metadata"]["resourceVersion"]


def test_configmap_and_secret_data_over_1_mib_are_invalid(kube: Kube) -> None:
    """ConfigMap/Secret data over 1 MiB → 422 Invalid `Too long: may not be more than 1048576 bytes` (upstream)."""
    status = status_of(kube.post(CM, configmap("big", a="x" * (MIB // 2), b="y" * (MIB // 2 + 1))), 422, "Invalid")
    assert status["message"] == 'ConfigMap "big" is invalid: []: Too long: may not be more than 1048576 bytes'
    assert status["details"]["causes"][0]["reason"] == "FieldValueTooLong"
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "big"},
        "data": {"blob": base64.b64encode(b"z" * (MIB + 1)).decode()},
    }
    status = status_of(kube.post("/api/v1/namespaces/default/secrets", secret), 422, "Invalid")
    assert status["message"] == 'Secret "big" is invalid: data: Too long: may not be more than 1048576 bytes'
    exactly = configmap("fits", a="x" * MIB)
    assert kube.post(CM, exactly).status_code == 201


# ---------------------------------------------------------------------------------------------- names, namespaces

SUBDOMAIN_MESSAGE = (
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start "
    "and end with an alphanumeric character (e.g. 'example.com', regex used for validation is "
    "'[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
)
LABEL_MESSAGE = (
    "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end "
    "with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is "
    "'[a-z0-9]([-a-z0-9]*[a-z0-9])?')"
)


@pytest.mark.parametrize(
    ("path", "body", "message"),
    [
        (
            CM,
            configmap("Bad_Name"),
            f'ConfigMap "Bad_Name" is invalid: metadata.name: Invalid value: "Bad_Name": {SUBDOMAIN_MESSAGE}',
        ),
        (
            CM,
            configmap("-dash"),
            f'ConfigMap "-dash" is invalid: metadata.name: Invalid value: "-dash": {SUBDOMAIN_MESSAGE}',
        ),
        (
            CM,
            configmap("a" * 254),
            f'ConfigMap "{"a" * 254}" is invalid: metadata.name: Invalid value: "{"a" * 254}": '
            "must be no more than 253 characters",
        ),
        (
            "/api/v1/namespaces",
            namespace("bad.ns"),
            'Namespace "bad.ns" is invalid: metadata.name: Invalid value: "bad.ns": must not contain dots',
        ),
        (
            "/api/v1/namespaces",
            namespace("Bad_NS"),
            f'Namespace "Bad_NS" is invalid: metadata.name: Invalid value: "Bad_NS": {LABEL_MESSAGE}',
        ),
        (
            WIDGETS,
            widget("UPPER", size=1),
            f'Widget.example.com "UPPER" is invalid: metadata.name: Invalid value: "UPPER": {SUBDOMAIN_MESSAGE}',
        ),
    ],
    ids=["underscore", "leading-dash", "too-long", "namespace-dot", "namespace-underscore", "cr-uppercase"],
)
def test_invalid_names_are_422_with_the_upstream_message(kube: Kube, path: str, body: JSON, message: str) -> None:
    """Names that are not DNS-1123 subdomains (labels for namespaces) → 422 Invalid with the real message."""
    status = status_of(kube.post(path, body), 422, "Invalid")
    assert status["message"] == message
    assert status["details"]["causes"][0]["field"] == "metadata.name"
    assert kube.get(f"{path}/{body['metadata']['name']}").status_code == 404


def test_body_namespace_must_match_url(kube: Kube) -> None:
    """A body namespace differing from the URL's → 400 BadRequest, on create and update."""
    kube.create("/api/v1/namespaces", namespace("other"))
    status = status_of(kube.post(CM, configmap("c1", namespace="other")), 400, "BadRequest")
    assert status["message"] == "the namespace of the provided object does not match the namespace sent on the request"
    existing = kube.create(CM, configmap("c1"))
    moved = {**existing, "metadata": {**existing["metadata"], "namespace": "other"}}
    status_of(kube.put(f"{CM}/c1", moved), 400, "BadRequest")
    assert kube.get("/api/v1/namespaces/other/configmaps/c1").status_code == 404


def test_create_in_missing_namespace_is_not_found(kube: Kube) -> None:
    """A namespaced create in a namespace that does not exist → 404 `namespaces "nowhere" not found`."""
    path = "/api/v1/namespaces/nowhere/configmaps"
    status = status_of(kube.post(path, configmap("c1", namespace="nowhere")), 404, "NotFound")
    assert status["message"] == 'namespaces "nowhere" not found'
    assert status["details"] == {"name": "nowhere", "kind": "namespaces"}
    status = status_of(
        kube.post("/apis/example.com/v1/namespaces/nowhere/widgets", widget("w1", namespace="")), 404, "NotFound"
    )
    assert status["message"] == 'namespaces "nowhere" not found'


# ---------------------------------------------------------------------------------------------- the wire


def _raw(plane: Plane, payload: bytes, read: bool = True, tls: bool | None = None) -> bytes:
    """Send raw bytes (over TLS to the real plane unless `tls` says otherwise); return what the server answers
    before it closes (or nothing when `read` is false)."""
    parts = urlsplit(plane.url)
    host = parts.hostname or "127.0.0.1"
    with socket.create_connection((host, parts.port or 80), timeout=10) as raw_sock:
        sock = raw_sock
        if plane.real if tls is None else tls:
            assert isinstance(plane, RealPlane)
            sock = plane.cluster.ssl_context().wrap_socket(raw_sock, server_hostname=host)
        sock.sendall(payload)
        if not read:
            return b""
        chunks = []
        with contextlib.suppress(ssl.SSLError):  # a TLS peer may end without close_notify
            while chunk := sock.recv(65536):
                chunks.append(chunk)
        return b"".join(chunks)


def _status_code(answer: bytes) -> bytes:
    return answer.split(b"\r\n")[0].split(b" ")[1] if answer.startswith(b"HTTP/") else b""


def test_garbage_on_the_wire_breaks_nothing(plane: Plane, kube: Kube) -> None:
    """A broken request line or header gets a 400, and so does a client speaking the other protocol (TLS to the
    embedded plain-HTTP server, plain HTTP to the real TLS port); a client hanging up mid-body is forgotten; other
    clients are served."""
    for garbage in (b"THIS IS NOT HTTP\r\n\r\n", b"GET / HTTP/1.1\r\nHost x\r\n\r\n"):
        answer = _raw(plane, garbage)
        assert _status_code(answer) == b"400", answer[:200]
    # A TLS ClientHello to a plain-HTTP server, or a plain request to a TLS server.
    other = b"GET /version HTTP/1.1\r\nHost: x\r\n\r\n" if plane.real else b"\x16\x03\x01\x02\x00\x01\x00"
    answer = _raw(plane, other, tls=False)
    assert _status_code(answer) == b"400", answer[:200]
    assert kube.get("/version").status_code == 200
    head = (
        f"POST {CM} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 10000\r\n\r\n"
    ).encode()
    _raw(plane, head + b'{"apiVersion":', read=False)  # and hang up
    assert_healthy(kube, plane)
    assert made_by_test(kube.ok(kube.get(CM))["items"]) == []
