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
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from dops.emulator import EmbeddedServer
from tests.builders import configmap, namespace, widget
from tests.emulator.kube_http import CM, WIDGETS, Kube, WatchStream
from tests.helpers import CLI

JSON = dict[str, Any]
MIB = 1024 * 1024
NOT_FOUND = "the server could not find the requested resource"


@pytest.fixture
def kube(emulator: EmbeddedServer) -> Iterator[Kube]:
    client = Kube(emulator.url)
    client.install_crd()
    yield client
    assert_healthy(client, emulator.url)
    client.close()


def assert_healthy(kube: Kube, url: str) -> None:
    """The server still answers reads, writes and watches."""
    assert kube.get("/version").status_code == 200
    created = kube.create(CM, configmap("health-probe"))
    with WatchStream(url, CM, {"resourceVersion": created["metadata"]["resourceVersion"]}) as watch:
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


@pytest.mark.parametrize(
    ("method", "path", "data", "content_type"),
    [
        ("POST", CM, b'{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {', "application/json"),
        ("POST", CM, b"not json at all", ""),  # no Content-Type: read as JSON
        ("POST", CM, b"metadata: {name: [unclosed", "application/yaml"),
        ("POST", CM, b"[1, 2, 3]", "application/json"),
        ("POST", CM, b'"a string"', "application/json"),
        ("PUT", f"{CM}/existing", b"{,}", "application/json"),
        ("PATCH", f"{CM}/existing", b'{"data": ', "application/merge-patch+json"),
        ("PATCH", f"{CM}/existing", b'[{"op": "add", "path": ', "application/json-patch+json"),
        ("PATCH", f"{CM}/existing", b'{"data": {', "application/strategic-merge-patch+json"),
        ("POST", CM, b'{"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "x"}}', "application/json"),
        ("POST", WIDGETS, b'{"apiVersion": "other.example.com/v1", "kind": "Widget", "metadata": {"name": "x"}}', ""),
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
def test_malformed_bodies_are_bad_requests(kube: Kube, method: str, path: str, data: bytes, content_type: str) -> None:
    """Malformed or mismatched bodies → 400 BadRequest Status; nothing is stored or changed."""
    existing = kube.create(CM, configmap("existing", k="v"))
    headers = {"Content-Type": content_type} if content_type else {}
    if not content_type:
        kube.session.headers.pop("Content-Type", None)
    status = status_of(kube.request(method, path, data=data, headers=headers), 400, "BadRequest")
    assert status["message"]
    assert kube.ok(kube.get(f"{CM}/existing")) == existing
    assert [i["metadata"]["name"] for i in kube.ok(kube.get(CM))["items"]] == ["existing"]
    assert kube.ok(kube.get(WIDGETS))["items"] == []


def test_json_parse_error_message(kube: Kube) -> None:
    """A create body that is not JSON → 400 `couldn't get version/kind; json parse error: …` as the apiserver says."""
    status = status_of(
        kube.request("POST", CM, data=b"{nope", headers={"Content-Type": "application/json"}), 400, "BadRequest"
    )
    assert status["message"].startswith("couldn't get version/kind; json parse error")


# ---------------------------------------------------------------------------------------------- unknown kinds


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/api/v1/namespaces/default/gizmos"),
        ("GET", "/api/v1/namespaces/default/gizmos/g1"),
        ("POST", "/api/v1/namespaces/default/gizmos"),
        ("GET", "/api/v2/namespaces/default/configmaps"),
        ("GET", "/apis/nope.example.com/v1/namespaces/default/widgets"),
        ("GET", "/apis/nope.example.com"),
        ("GET", "/apis/nope.example.com/v1"),
        ("GET", "/apis/example.com/v2/namespaces/default/widgets"),
        ("DELETE", "/apis/example.com/v1/namespaces/default/gadgets/g1"),
        ("GET", "/api/v1/namespaces/default/configmaps/c1/nosuchsubresource"),
        ("GET", "/api/v1/configmaps/c1"),  # a namespaced resource without a namespace
        ("GET", "/api/v1/namespaces/default/namespaces"),  # a cluster-scoped resource inside a namespace
        ("GET", "/nonsense"),
    ],
)
def test_unknown_resources_are_not_found(kube: Kube, method: str, path: str) -> None:
    """Unknown resources, groups, versions and subresources → 404 NotFound `the server could not find …`."""
    kube.create(CM, configmap("c1"))
    body = {"apiVersion": "v1", "kind": "Gizmo", "metadata": {"name": "g1"}} if method == "POST" else None
    status = status_of(kube.request(method, path, json=body), 404, "NotFound")
    assert status["message"] == NOT_FOUND


def test_kubectl_reports_unknown_kinds_from_discovery(
    emulator: EmbeddedServer, kube: Kube, kubectl: CLI, tmp_path: Path
) -> None:
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
        ("labelSelector", "app in ()"),
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
    assert [i["metadata"]["name"] for i in kube.ok(kube.get(CM))["items"]] == ["small"]


def test_objects_over_etcd_limit_are_rejected(kube: Kube) -> None:
    """A stored object over 1.5 MiB is rejected as etcd rejects it; a patch growing one that far changes nothing."""
    status = status_of(kube.post(WIDGETS, widget("huge", size=1, owner="o" * (2 * MIB))), 413, "RequestEntityTooLarge")
    assert "request is too large" in status["message"]
    assert kube.get(f"{WIDGETS}/huge").status_code == 404

    created = kube.create(WIDGETS, widget("w1", size=1, owner="o" * MIB))
    grow = {"status": {"pad": "p" * (MIB // 2 + 10)}}  # status preserves unknown fields: nothing is pruned
    status_of(kube.patch(f"{WIDGETS}/w1/status", grow), 413, "RequestEntityTooLarge")
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
            f'Namespace "bad.ns" is invalid: metadata.name: Invalid value: "bad.ns": {LABEL_MESSAGE}',
        ),
        (
            WIDGETS,
            widget("UPPER", size=1),
            f'Widget.example.com "UPPER" is invalid: metadata.name: Invalid value: "UPPER": {SUBDOMAIN_MESSAGE}',
        ),
    ],
    ids=["underscore", "leading-dash", "too-long", "namespace-dot", "cr-uppercase"],
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


def _raw(url: str, payload: bytes, read: bool = True) -> bytes:
    """Send raw bytes; return what the server answers before it closes (or nothing when `read` is false)."""
    parts = urlsplit(url)
    with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 80), timeout=10) as sock:
        sock.sendall(payload)
        if not read:
            return b""
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
        return b"".join(chunks)


def test_garbage_on_the_wire_breaks_nothing(emulator: EmbeddedServer, kube: Kube) -> None:
    """A broken request line gets a 400; a client hanging up mid-body is forgotten; other clients are served."""
    for garbage in (b"THIS IS NOT HTTP\r\n\r\n", b"GET / HTTP/1.1\r\nHost x\r\n\r\n", b"\x16\x03\x01\x02\x00\x01\x00"):
        answer = _raw(emulator.url, garbage)  # the last one is a TLS ClientHello: a client configured for https
        assert answer.split(b"\r\n")[0].split()[1:2] == [b"400"], answer[:200]
    assert kube.get("/version").status_code == 200
    head = (
        f"POST {CM} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 10000\r\n\r\n"
    ).encode()
    _raw(emulator.url, head + b'{"apiVersion":', read=False)  # and hang up
    assert_healthy(kube, emulator.url)
    assert kube.ok(kube.get(CM))["items"] == []
