"""Kubernetes protobuf request bodies (helm 4 release Secrets, DeleteOptions, `kubectl create ns|configmap|job`).

The reference bodies are built byte by byte here, independently of the module's encoder, following the Go
(gogo-protobuf) marshaller: magic `k8s\\0`, `runtime.Unknown`, non-pointer fields always written, map keys sorted.
"""

from __future__ import annotations

import base64
from typing import Any

import pytest

from dops.emulator.protobuf import ProtobufError, decode_object, encode_object


def _varint(value: int) -> bytes:
    value &= (1 << 64) - 1
    out = bytearray()
    while value >= 0x80:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _ld(number: int, payload: bytes | str) -> bytes:
    data = payload.encode() if isinstance(payload, str) else payload
    return _varint(number << 3 | 2) + _varint(len(data)) + data


def _vi(number: int, value: int) -> bytes:
    return _varint(number << 3) + _varint(value)


def _envelope(api_version: str, kind: str, raw: bytes) -> bytes:
    return b"k8s\x00" + _ld(1, _ld(1, api_version) + _ld(2, kind)) + _ld(2, raw) + _ld(3, b"") + _ld(4, b"")


def _entry(key: str, value: bytes | str) -> bytes:
    return _ld(1, key) + _ld(2, value)


# --- helm's release Secret, as helm 4 POSTs it ----------------------------------------------------------------

RELEASE_PAYLOAD = base64.b64encode(b"\x1f\x8b\x08\x00gzipped-release-json")  # helm stores base64(gzip(json))
HELM_LABELS = {"createdAt": "1700000000", "name": "r1", "owner": "helm", "status": "pending-install", "version": "1"}

HELM_SECRET_BODY = _envelope(
    "v1",
    "Secret",
    _ld(
        1,
        # ObjectMeta: name, generateName, namespace, selfLink, uid, resourceVersion, generation, creationTimestamp
        _ld(1, "sh.helm.release.v1.r1.v1")
        + _ld(2, "")
        + _ld(3, "")
        + _ld(4, "")
        + _ld(5, "")
        + _ld(6, "")
        + _vi(7, 0)
        + _ld(8, b"")
        + b"".join(_ld(11, _entry(k, v)) for k, v in sorted(HELM_LABELS.items())),
    )
    + _ld(2, _entry("release", RELEASE_PAYLOAD))
    + _ld(3, "helm.sh/release.v1"),
)

HELM_SECRET: dict[str, Any] = {
    "apiVersion": "v1",
    "kind": "Secret",
    "metadata": {"name": "sh.helm.release.v1.r1.v1", "labels": HELM_LABELS},
    "data": {"release": base64.b64encode(RELEASE_PAYLOAD).decode()},
    "type": "helm.sh/release.v1",
}


def test_helm_release_secret_decodes_like_its_json_form() -> None:
    decoded = decode_object(HELM_SECRET_BODY)
    assert decoded == HELM_SECRET
    # The empty namespace/uid/resourceVersion helm sends mean "unset", not "".
    assert "namespace" not in decoded["metadata"] and "resourceVersion" not in decoded["metadata"]
    assert base64.b64decode(decoded["data"]["release"]) == RELEASE_PAYLOAD


EMPTY_META = _ld(2, "") + _ld(3, "") + _ld(4, "") + _ld(5, "") + _ld(6, "") + _vi(7, 0) + _ld(8, b"")


@pytest.mark.parametrize(
    ("obj", "body"),
    [
        (HELM_SECRET, HELM_SECRET_BODY),
        # Non-pointer fields (Secret.type, every ObjectMeta string) are written even when empty; pointers are not.
        (
            {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "x"}},
            _envelope("v1", "Secret", _ld(1, _ld(1, "x") + EMPTY_META) + _ld(3, "")),
        ),
        (
            {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"}, "immutable": False},
            _envelope("v1", "ConfigMap", _ld(1, _ld(1, "x") + EMPTY_META) + _vi(4, 0)),
        ),
        (
            {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "x"}},
            _envelope("v1", "Namespace", _ld(1, _ld(1, "x") + EMPTY_META) + _ld(2, b"") + _ld(3, _ld(1, ""))),
        ),
    ],
)
def test_encoder_writes_what_go_writes(obj: dict[str, Any], body: bytes) -> None:
    assert encode_object(obj) == body


# --- DeleteOptions ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("api_version", "raw", "expected"),
    [
        ("v1", _ld(4, "Background"), {"propagationPolicy": "Background"}),
        ("meta.k8s.io/v1", _ld(4, "Foreground"), {"propagationPolicy": "Foreground"}),
        ("batch/v1", _vi(3, 1), {"orphanDependents": True}),
        ("v1", b"", {}),  # helm's release-secret delete: DeleteOptions{}
        # Pointer fields keep an explicit zero: gracePeriodSeconds=0 means "delete now".
        ("v1", _vi(1, 0) + _vi(3, 0), {"gracePeriodSeconds": 0, "orphanDependents": False}),
        ("v1", _vi(1, -1), {"gracePeriodSeconds": -1}),
        (
            "v1",
            _ld(2, _ld(1, "u-1") + _ld(2, "42")) + _ld(5, "All"),
            {"preconditions": {"uid": "u-1", "resourceVersion": "42"}, "dryRun": ["All"]},
        ),
    ],
)
def test_delete_options(api_version: str, raw: bytes, expected: dict[str, Any]) -> None:
    body = _envelope(api_version, "DeleteOptions", raw)
    assert decode_object(body) == {"apiVersion": api_version, "kind": "DeleteOptions", **expected}
    assert encode_object(decode_object(body)) == body


# --- Round trips ------------------------------------------------------------------------------------------------

ROUND_TRIPS: list[dict[str, Any]] = [
    HELM_SECRET,
    {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {
            "name": "s",
            "namespace": "ns1",
            "uid": "0b7c",
            "resourceVersion": "17",
            "generation": 3,
            "creationTimestamp": "2024-05-06T07:08:09Z",
            "deletionTimestamp": "2024-05-06T07:09:09Z",
            "deletionGracePeriodSeconds": 0,
            "annotations": {"a": "", "b/c": "ü"},
            "ownerReferences": [
                {"apiVersion": "example.com/v1", "kind": "Widget", "name": "w1", "uid": "u1", "controller": True},
                {"apiVersion": "v1", "kind": "ConfigMap", "name": "c", "uid": "u2", "blockOwnerDeletion": False},
            ],
            "finalizers": ["example.com/x", "example.com/y"],
        },
        "data": {"empty": "", "bin": base64.b64encode(bytes(range(256))).decode()},
        "stringData": {"plain": "text"},
        "type": "Opaque",
        "immutable": False,
    },
    {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "cfg", "labels": {"app": "x"}},
        "data": {"size": "3", "blank": ""},
        "binaryData": {"blob": base64.b64encode(b"\x00\xff").decode()},
        "immutable": True,
    },
    {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {"name": "team-a"},
        "spec": {"finalizers": ["kubernetes"]},
        "status": {
            "phase": "Terminating",
            "conditions": [
                {
                    "type": "NamespaceContentRemaining",
                    "status": "True",
                    "lastTransitionTime": "2024-01-01T00:00:00Z",
                    "reason": "SomeResourcesRemain",
                    "message": "1 left",
                }
            ],
        },
    },
    {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "empty"}, "spec": {}, "status": {}},
    {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": "j1", "namespace": "default"},
        "spec": {
            "parallelism": 2,
            "completions": 4,
            "activeDeadlineSeconds": 600,
            "selector": {
                "matchLabels": {"job": "j1"},
                "matchExpressions": [{"key": "tier", "operator": "In", "values": ["a", "b"]}],
            },
            "manualSelector": True,
            "template": {
                "metadata": {"labels": {"job": "j1"}},
                "spec": {
                    "containers": [
                        {
                            "name": "main",
                            "image": "busybox",
                            "command": ["sh", "-c"],
                            "args": ["echo hi"],
                            "workingDir": "/w",
                            "ports": [{"containerPort": 8080, "protocol": "TCP"}],
                            "env": [{"name": "A", "value": "1"}, {"name": "EMPTY"}],
                            "resources": {"limits": {"cpu": "500m"}, "requests": {"memory": "64Mi"}},
                            "imagePullPolicy": "IfNotPresent",
                            "tty": True,
                        }
                    ],
                    "restartPolicy": "Never",
                    "terminationGracePeriodSeconds": 0,
                    "serviceAccountName": "runner",
                    "nodeName": "node-1",
                },
            },
            "backoffLimit": 0,
            "ttlSecondsAfterFinished": 100,
            "completionMode": "Indexed",
            "suspend": False,
        },
        "status": {"active": 1, "startTime": "2024-01-01T00:00:01Z"},
    },
]


@pytest.mark.parametrize("obj", ROUND_TRIPS, ids=lambda o: f"{o['kind']}-{o['metadata']['name']}")
def test_round_trip(obj: dict[str, Any]) -> None:
    assert decode_object(encode_object(obj)) == obj


def test_kubectl_create_job_shape() -> None:
    # `kubectl create job j --image=busybox -- date`: Go writes every non-pointer field as a zero value.
    job = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": "j", "creationTimestamp": None},
        "spec": {
            "template": {
                "metadata": {"creationTimestamp": None},
                "spec": {
                    "containers": [{"name": "j", "image": "busybox", "command": ["date"], "resources": {}}],
                    "restartPolicy": "Never",
                },
            }
        },
        "status": {},
    }
    body = encode_object(job)
    assert b"\x72\x00" in body  # an empty hostname (PodSpec field 16) is on the wire, as Go writes it
    assert decode_object(body) == {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": "j"},
        "spec": {
            "template": {
                "metadata": {},
                "spec": {
                    "containers": [{"name": "j", "image": "busybox", "command": ["date"], "resources": {}}],
                    "restartPolicy": "Never",
                },
            }
        },
        "status": {},
    }


# --- Field-level behaviour --------------------------------------------------------------------------------------


def test_unknown_fields_of_every_wire_type_are_skipped() -> None:
    unknown = _vi(99, 7) + _varint(98 << 3 | 1) + b"\x01" * 8 + _ld(97, "managed") + _varint(96 << 3 | 5) + b"\x02" * 4
    raw = _ld(1, _ld(1, "cfg") + _ld(17, _ld(1, "kubectl")) + unknown) + unknown + _ld(2, _entry("k", "v"))
    assert decode_object(_envelope("v1", "ConfigMap", raw)) == {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "cfg"},
        "data": {"k": "v"},
    }


def test_timestamps_render_as_rfc3339_seconds() -> None:
    time = _vi(1, 1714979289) + _vi(2, 123456789)
    raw = _ld(1, _ld(1, "n") + _ld(8, time))
    decoded = decode_object(_envelope("v1", "Namespace", raw))
    assert decoded["metadata"]["creationTimestamp"] == "2024-05-06T07:08:09Z"


def test_map_entry_without_value_is_empty() -> None:
    # gogo omits a nil []byte map value entirely; the key must survive with an empty value.
    raw = _ld(1, _ld(1, "s")) + _ld(2, _ld(1, "k"))
    assert decode_object(_envelope("v1", "Secret", raw))["data"] == {"k": ""}


# --- Errors -----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b'{"kind":"Secret"}', "malformed protobuf body: missing the"),
        (b"", "malformed protobuf body: missing the"),
        (b"k8s\x00\x0a\xff", "malformed protobuf body: truncated varint"),
        (HELM_SECRET_BODY[:60], "malformed protobuf body: field"),
        (HELM_SECRET_BODY[:-10], "malformed protobuf body:"),
        (b"k8s\x00" + _varint(1 << 3 | 3), "malformed protobuf body: unsupported wire type 3"),
        (b"k8s\x00" + b"\xff" * 11, "malformed protobuf body: varint overflows 64 bits"),
        (_envelope("v1", "Secret", _vi(1, 5)), "malformed protobuf body: field metadata is a varint"),
        (_envelope("v1", "Secret", _ld(5, "x")), "malformed protobuf body: field immutable has wire type 2"),
        (_envelope("v1", "Secret", _ld(3, b"\xff\xfe")), "malformed protobuf body: invalid UTF-8"),
        (_envelope("v1", "", b""), "malformed protobuf body: the envelope names no kind"),
        (_envelope("apps/v1", "Deployment", b""), 'unsupported protobuf kind "apps/v1, Kind=Deployment"'),
        (_envelope("v1", "Pod", b""), 'unsupported protobuf kind "v1, Kind=Pod"'),
        (_envelope("batch/v1beta1", "Job", b""), 'unsupported protobuf kind "batch/v1beta1, Kind=Job"'),
        (
            b"k8s\x00" + _ld(1, _ld(1, "v1") + _ld(2, "Secret")) + _ld(2, b"") + _ld(3, "gzip"),
            'unsupported protobuf contentEncoding "gzip"',
        ),
    ],
)
def test_decode_errors(body: bytes, message: str) -> None:
    with pytest.raises(ProtobufError) as info:
        decode_object(body)
    assert str(info.value).startswith(message)


@pytest.mark.parametrize(
    ("obj", "message"),
    [
        ({"apiVersion": "apps/v1", "kind": "Deployment"}, 'unsupported protobuf kind "apps/v1, Kind=Deployment"'),
        ({"apiVersion": "v1", "kind": "Secret", "data": {"k": "not base64!"}}, "illegal base64 data"),
        (
            {"apiVersion": "v1", "kind": "Secret", "metadata": {"creationTimestamp": "yesterday"}},
            'invalid timestamp "yesterday"',
        ),
    ],
)
def test_encode_errors(obj: dict[str, Any], message: str) -> None:
    with pytest.raises(ProtobufError) as info:
        encode_object(obj)
    assert str(info.value).startswith(message)
