"""Conformance: metadata-only responses (`as=PartialObjectMetadata[List]`) and Accept negotiation (S1.5).

The spec's S1.5 lists the Accept values clients send; the metadata forms are what client-go's metadata client
(garbage collector, quota, namespace controllers, `kubectl` never) and kube-rs/java `*_metadata` calls send.
What a real kube-apiserver does, and so what is asserted here:

- lists with `application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1` answer
  `kind: PartialObjectMetadataList, apiVersion: meta.k8s.io/v1`, list metadata (`resourceVersion`, `continue`,
  `remainingItemCount`) as for the plain list, and items `{kind: PartialObjectMetadata, apiVersion:
  meta.k8s.io/v1, metadata: <the whole ObjectMeta, managedFields included>}` — for custom resources, built-ins
  and cluster-scoped kinds, with label/field selectors and limit/continue; `v=v1beta1` answers that version;
  an empty list's `items` is null (upstream appends to a nil slice);
- single GETs (and the /status subresource) with `as=PartialObjectMetadata` answer one PartialObjectMetadata;
- negotiation: the first servable media range (by q) wins; ranges asking for unknown kinds, groups or versions,
  or for a Table as protobuf, are skipped; the protobuf-first Accept of client-go's metadata client is answered
  in protobuf upstream and in JSON by the emulator (a documented gap); a list asked for as
  `PartialObjectMetadata`, or a built-in object as `...List`, is 406 NotAcceptable ("you requested ..."), and so
  is an Accept whose ranges all ask for unservable forms ("only the following media types are accepted: ..."),
  checked before the object is looked up; a custom resource asked for as `...List` is a 500 with no reason
  ("content is not a list": an Unstructured passes the list check and fails when its items are walked);
- watches with `as=PartialObjectMetadata` carry PartialObjectMetadata in ADDED/MODIFIED/DELETED (also for an
  object leaving a label selector), in BOOKMARKs and in `sendInitialEvents` streams; with
  `as=PartialObjectMetadataList` upstream cannot transform single objects, fails to encode them for meta.k8s.io,
  and ends the stream (200, no event written) at the first event;
- real clients: the kubernetes DynamicClient (`header_params`) and the typed CoreV1Api (`_headers`).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import kubernetes
import pytest
from kubernetes.dynamic import DynamicClient
from kubernetes.dynamic.exceptions import DynamicApiError

from dops.emulator import negotiation
from dops.emulator.errors import APIError
from tests.builders import configmap, widget
from tests.emulator.kube_http import CRDS, TABLE_ACCEPT, Kube, WatchStream, names
from tests.helpers import eventually
from tests.planes import Plane, made_by_test

JSON = dict[str, Any]
pytestmark = pytest.mark.both_planes
POML = "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1"
POM = "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1"
# What client-go's metadata client sends for lists (k8s.io/client-go/metadata).
CLIENT_GO_LIST = (
    "application/vnd.kubernetes.protobuf;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1,"
    "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1,application/json"
)
ONLY_ACCEPTED = (
    "only the following media types are accepted: application/json, application/yaml, "
    "application/vnd.kubernetes.protobuf"
)


@pytest.fixture
def kube(plane: Plane) -> Iterator[Kube]:
    client = Kube(plane)
    client.install_crd()
    # A real apiserver answers lists and watches of a new CRD with 429 "storage is (re)initializing" until the
    # CRD's watch cache has synced (client-go retries them); the statements here are about what comes after.
    eventually(lambda: client.get(widgets("default")).status_code, lambda code: code == 200, describe="widgets")
    yield client
    client.close()


@pytest.fixture
def ns(kube: Kube) -> str:
    """The namespace the tests write in: each test has its own embedded server, and on the real plane
    `RealPlane.reset()` removes what the test made in `default`."""
    return "default"


def widgets(ns: str) -> str:
    return f"/apis/example.com/v1/namespaces/{ns}/widgets"


def configmaps(ns: str) -> str:
    return f"/api/v1/namespaces/{ns}/configmaps"


def seed(kube: Kube, ns: str) -> list[JSON]:
    """Widgets a (red, team x), b (blue, team y), c (red, team y); returns the plain list's items."""
    for name, color, team in (("a", "red", "x"), ("b", "blue", "y"), ("c", "red", "y")):
        body = widget(name, ns, size=1, color=color)
        body["metadata"]["labels"] = {"team": team}
        kube.create(widgets(ns), body)
    items: list[JSON] = kube.ok(kube.get(widgets(ns)))["items"]
    return items


def partial(obj: JSON, version: str = "v1") -> JSON:
    return {"kind": "PartialObjectMetadata", "apiVersion": f"meta.k8s.io/{version}", "metadata": obj["metadata"]}


def accept(value: str) -> dict[str, str]:
    return {"Accept": value}


# ---------------------------------------------------------------------------------------------- lists


def test_list_is_partial_object_metadata_list(kube: Kube, ns: str) -> None:
    """S1.5: a list with as=PartialObjectMetadataList carries each item's whole metadata and nothing else."""
    seed(kube, ns)
    full = kube.ok(kube.get(widgets(ns)))
    response = kube.get(widgets(ns), headers=accept(POML))
    body = kube.ok(response)
    assert response.headers["Content-Type"] == "application/json"
    assert list(body) == ["kind", "apiVersion", "metadata", "items"]
    assert body["kind"] == "PartialObjectMetadataList" and body["apiVersion"] == "meta.k8s.io/v1"
    # A list's resourceVersion is the store's revision when it was served: on the real plane any write in the
    # cluster (a lease renewal, an Event) can come between the two lists, so the second one's is not older.
    assert list(body["metadata"]) == ["resourceVersion"]
    assert int(body["metadata"]["resourceVersion"]) >= int(full["metadata"]["resourceVersion"])
    assert body["items"] == [partial(item) for item in full["items"]]
    assert all("managedFields" in item["metadata"] and "spec" not in item for item in body["items"])


def test_list_selectors_and_paging(kube: Kube, ns: str) -> None:
    """S1.5 with statements 31-33: label and field selectors filter, limit/continue pages like the plain list."""
    seed(kube, ns)
    by_label = kube.ok(kube.get(widgets(ns), params={"labelSelector": "team=y"}, headers=accept(POML)))
    assert names(by_label["items"]) == ["b", "c"]
    by_field = kube.ok(kube.get(widgets(ns), params={"fieldSelector": "spec.color=red"}, headers=accept(POML)))
    assert names(by_field["items"]) == ["a", "c"]
    assert kube.get(widgets(ns), params={"fieldSelector": "spec.size=1"}, headers=accept(POML)).status_code == 400

    first = kube.ok(kube.get(widgets(ns), params={"limit": "2"}, headers=accept(POML)))
    assert names(first["items"]) == ["a", "b"]
    assert first["metadata"]["remainingItemCount"] == 1 and first["metadata"]["continue"]
    rest = kube.ok(
        kube.get(widgets(ns), params={"limit": "2", "continue": first["metadata"]["continue"]}, headers=accept(POML))
    )
    assert rest["kind"] == "PartialObjectMetadataList"
    assert names(rest["items"]) == ["c"] and not rest["metadata"].get("continue")


def test_builtin_cluster_scoped_v1beta1_and_empty_lists(kube: Kube, ns: str) -> None:
    """S1.5: built-in and cluster-scoped kinds too; v=v1beta1 answers meta.k8s.io/v1beta1; empty lists."""
    kube.create(configmaps(ns), configmap("settings", ns, mode="fast"))
    cms = kube.ok(kube.get(configmaps(ns), headers=accept(POML)))
    plain = kube.ok(kube.get(configmaps(ns)))["items"]
    assert cms["items"] == [partial(cm) for cm in plain] and names(made_by_test(cms["items"])) == ["settings"]

    namespaces = kube.ok(kube.get("/api/v1/namespaces", headers=accept(POML)))
    assert ns in names(namespaces["items"]) and "default" in names(namespaces["items"])

    beta = kube.ok(kube.get(configmaps(ns), headers=accept(POML.replace("v=v1", "v=v1beta1"))))
    assert beta["apiVersion"] == "meta.k8s.io/v1beta1"
    assert beta["items"] == [partial(cm, "v1beta1") for cm in plain]

    empty = kube.ok(kube.get(widgets(ns), headers=accept(POML)))
    # Upstream appends each item to a nil slice: an empty list's items encode as null.
    assert empty["kind"] == "PartialObjectMetadataList" and empty["items"] is None


# ---------------------------------------------------------------------------------------------- single objects


def test_get_is_partial_object_metadata(kube: Kube, ns: str) -> None:
    """S1.5: GET of one object (and of its /status) with as=PartialObjectMetadata."""
    items = {item["metadata"]["name"]: item for item in seed(kube, ns)}
    assert kube.ok(kube.get(f"{widgets(ns)}/a", headers=accept(POM))) == partial(items["a"])
    assert kube.ok(kube.get(f"{widgets(ns)}/a/status", headers=accept(POM))) == partial(items["a"])
    created = kube.create(configmaps(ns), configmap("one", ns, k="v"))
    assert kube.ok(kube.get(f"{configmaps(ns)}/one", headers=accept(POM))) == partial(created)
    beta = kube.ok(kube.get(f"{configmaps(ns)}/one", headers=accept(POM.replace("v=v1", "v=v1beta1"))))
    assert beta == partial(created, "v1beta1")
    missing = kube.get(f"{widgets(ns)}/nope", headers=accept(POM))
    assert missing.status_code == 404 and missing.json()["reason"] == "NotFound"


# ---------------------------------------------------------------------------------------------- 406


def _not_acceptable(response: Any, message: str) -> None:
    assert response.status_code == 406, response.text
    body = response.json()
    assert body["kind"] == "Status" and body["reason"] == "NotAcceptable" and body["code"] == 406
    assert body["message"] == message


def test_singular_and_list_forms_must_match_the_request(kube: Kube, ns: str) -> None:
    """S1.5: a list as PartialObjectMetadata, or one object as PartialObjectMetadataList, is 406 (no fallback)."""
    seed(kube, ns)
    kube.create(configmaps(ns), configmap("cm", ns))
    with_fallback = POM + ",application/json"  # the failing form is chosen; later ranges are not tried
    _not_acceptable(
        kube.get(widgets(ns), headers=accept(with_fallback)),
        "you requested PartialObjectMetadata, but the requested object is a list (*unstructured.UnstructuredList)",
    )
    _not_acceptable(
        kube.get(configmaps(ns), headers=accept(POM)),
        "you requested PartialObjectMetadata, but the requested object is a list (*core.ConfigMapList)",
    )
    # An Unstructured has the list accessors, so upstream's check passes and walking its items fails: a plain
    # error, 500 with no reason.
    not_a_list = kube.get(f"{widgets(ns)}/a", headers=accept(POML))
    assert not_a_list.status_code == 500, not_a_list.text
    assert not_a_list.json() == {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": "content is not a list",
        "code": 500,
    }
    _not_acceptable(
        kube.get(f"{configmaps(ns)}/cm", headers=accept(POML)),
        "you requested PartialObjectMetadataList, but the requested object is not a list (*core.ConfigMap)",
    )


@pytest.mark.parametrize(
    "value",
    [
        "application/json;as=Bogus;g=meta.k8s.io;v=v1",
        "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v2",
        "application/json;as=PartialObjectMetadataList;g=example.com;v=v1",
        "application/json;as=PartialObjectMetadataList",  # no group/version: not meta.k8s.io
        "application/vnd.kubernetes.protobuf;as=Table;g=meta.k8s.io;v=v1",  # Tables are JSON/YAML only
        "application/json;as=Bogus;g=meta.k8s.io;v=v1, text/html",
    ],
)
def test_only_unservable_forms_is_406(kube: Kube, ns: str, value: str) -> None:
    """S1.5: when every range asks for a form the server cannot produce: 406, before the object is looked up."""
    kube.create(configmaps(ns), configmap("cm", ns))
    _not_acceptable(kube.get(configmaps(ns), headers=accept(value)), ONLY_ACCEPTED)
    _not_acceptable(kube.get(f"{configmaps(ns)}/cm", headers=accept(value)), ONLY_ACCEPTED)
    _not_acceptable(kube.get(f"{configmaps(ns)}/missing", headers=accept(value)), ONLY_ACCEPTED)


@pytest.mark.parametrize(
    ("value", "kind"),
    [
        ("*/*;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1", "PartialObjectMetadataList"),
        ("application/json;q=0.5, " + POML, "PartialObjectMetadataList"),  # q orders the ranges
        ("application/json, " + POML, "WidgetList"),  # the first servable range wins
        ("application/json;as=Bogus;g=meta.k8s.io;v=v1, application/json", "WidgetList"),
        ("application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v2, " + TABLE_ACCEPT, "Table"),
        ("application/vnd.kubernetes.protobuf;as=Table;g=meta.k8s.io;v=v1, application/json", "WidgetList"),
        (TABLE_ACCEPT, "Table"),
        ("application/vnd.kubernetes.protobuf, application/json", "WidgetList"),
        ("", "WidgetList"),
    ],
)
def test_negotiation_picks_the_first_servable_range(kube: Kube, ns: str, value: str, kind: str) -> None:
    """S1.5: ranges are tried in q order; unservable ones are skipped; answers are always JSON."""
    seed(kube, ns)
    response = kube.get(widgets(ns), headers=accept(value))
    body = kube.ok(response)
    assert response.headers["Content-Type"] == "application/json"
    assert body["kind"] == kind
    rows_or_items = body.get("rows") if kind == "Table" else body["items"]
    assert len(rows_or_items) == 3


@pytest.mark.gap("the emulator answers every transform as JSON; upstream answers client-go's protobuf range")
def test_client_go_metadata_accept(plane: Plane, kube: Kube, ns: str) -> None:
    """S1.5: client-go's metadata client asks for protobuf first. Upstream answers the protobuf
    PartialObjectMetadataList; the emulator has no protobuf encoder for it and answers the JSON form."""
    seed(kube, ns)
    response = kube.get(widgets(ns), headers=accept(CLIENT_GO_LIST))
    assert response.status_code == 200, response.text
    if plane.real:
        assert response.headers["Content-Type"] == "application/vnd.kubernetes.protobuf"
        type_meta = b"\n\x0emeta.k8s.io/v1\x12\x19PartialObjectMetadataList"  # runtime.Unknown's TypeMeta
        assert response.content.startswith(b"k8s\x00\n" + bytes([len(type_meta)]) + type_meta)
    else:
        assert response.headers["Content-Type"] == "application/json"
        body = response.json()
        assert body["kind"] == "PartialObjectMetadataList" and names(body["items"]) == ["a", "b", "c"]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("", None),
        ("application/json", None),
        ("text/plain", None),  # no serializer and no transform asked: the emulator answers JSON as before
        (POM, negotiation.Transform("PartialObjectMetadata", "v1")),
        (
            "application/json; g=meta.k8s.io; v=v1beta1; as=PartialObjectMetadataList",
            negotiation.Transform("PartialObjectMetadataList", "v1beta1"),
        ),
        ("application/yaml;as=Table;g=meta.k8s.io;v=v1", negotiation.Transform("Table", "v1")),
        ("application/*;as=Table;g=meta.k8s.io;v=v1", negotiation.Transform("Table", "v1")),
    ],
)
def test_negotiate(value: str, expected: Any) -> None:
    """S1.5: the negotiation function itself (order-insensitive parameters, wildcards, YAML Tables)."""
    assert negotiation.negotiate(value) == expected
    if expected is not None:
        assert expected.api_version == f"meta.k8s.io/{expected.version}"


def test_negotiate_rejects_unservable_forms() -> None:
    """S1.5: a Table of an unknown meta.k8s.io version cannot be served: 406."""
    with pytest.raises(APIError) as raised:
        negotiation.negotiate("application/json;as=Table;g=meta.k8s.io;v=v3")
    assert raised.value.code == 406 and raised.value.message == ONLY_ACCEPTED


# ---------------------------------------------------------------------------------------------- watches


def test_watch_events_carry_partial_object_metadata(plane: Plane, kube: Kube, ns: str) -> None:
    """S1.5 with statements 26 and 29: ADDED/MODIFIED/DELETED, bookmarks and selector exits as metadata only."""
    # A real apiserver sends a bookmark 2 s before the watch's deadline (and then every minute).
    params = {"labelSelector": "team=x", "allowWatchBookmarks": "true", "timeoutSeconds": "6"}
    with WatchStream(plane, widgets(ns), params, headers=accept(POM)) as stream:
        assert stream.status == 200 and stream.headers["Content-Type"] == "application/json"
        body = widget("w", ns, size=1)
        body["metadata"]["labels"] = {"team": "x"}
        created = kube.create(widgets(ns), body)
        resized = kube.ok(kube.patch(f"{widgets(ns)}/w", {"spec": {"size": 2}}))
        moved = kube.ok(kube.patch(f"{widgets(ns)}/w", {"metadata": {"labels": {"team": "y"}}}))
        events = stream.until(lambda e: e["type"] == "DELETED", timeout=10)
        changes = [e for e in events if e["type"] != "BOOKMARK"]
        assert [e["type"] for e in changes] == ["ADDED", "MODIFIED", "DELETED"]
        assert [e["object"] for e in changes[:2]] == [partial(created), partial(resized)]
        left = changes[2]["object"]  # leaving the selector: the previous content at the write's resourceVersion
        assert left["kind"] == "PartialObjectMetadata" and left["apiVersion"] == "meta.k8s.io/v1"
        assert left["metadata"]["labels"] == {"team": "x"}
        assert left["metadata"]["resourceVersion"] == moved["metadata"]["resourceVersion"]
        bookmark = stream.until(lambda e: e["type"] == "BOOKMARK", timeout=10)[-1]["object"]
        assert bookmark["kind"] == "PartialObjectMetadata" and bookmark["apiVersion"] == "meta.k8s.io/v1"
        assert int(bookmark["metadata"]["resourceVersion"]) >= int(moved["metadata"]["resourceVersion"])


def test_watch_initial_events_as_metadata(plane: Plane, kube: Kube, ns: str) -> None:
    """S1.5 with statement 27: sendInitialEvents replays the objects, then the initial-events-end bookmark."""
    items = seed(kube, ns)
    params = {"sendInitialEvents": "true", "resourceVersionMatch": "NotOlderThan", "allowWatchBookmarks": "true"}
    with WatchStream(plane, widgets(ns), params, headers=accept(POM)) as stream:
        events = stream.until(lambda e: e["type"] == "BOOKMARK")
        assert [e["object"] for e in events[:-1]] == [partial(item) for item in items]
        end = events[-1]["object"]
        assert end["kind"] == "PartialObjectMetadata"
        assert end["metadata"]["annotations"] == {"k8s.io/initial-events-end": "true"}


def test_watch_with_list_form_ends_at_the_first_event(plane: Plane, kube: Kube, ns: str) -> None:
    """S1.5: upstream cannot turn single watch events into PartialObjectMetadataList nor encode the objects
    themselves for meta.k8s.io: the stream (200) ends at the first event without writing it."""
    with WatchStream(plane, widgets(ns), headers=accept(POML)) as stream:
        assert stream.status == 200 and stream.headers["Content-Type"] == "application/json"
        assert stream.quiet(0.5) == [] and stream.ended_at is None, "no event yet: the stream stays open"
        kube.create(widgets(ns), widget("w", ns, size=1))
        assert stream.rest(timeout=10) == []
    with WatchStream(plane, widgets(ns), params={"allowWatchBookmarks": "true"}, headers=accept(POML)) as stream:
        assert stream.status == 200
        assert stream.rest(timeout=10) == [], "the initial ADDED event of w ends the stream at once"


def test_watch_with_unservable_accept_is_406(plane: Plane, ns: str) -> None:
    """S1.5: the 406 comes before the stream starts."""
    with WatchStream(plane, widgets(ns), headers=accept("application/json;as=Bogus;g=meta.k8s.io;v=v1")) as w:
        assert w.status == 406
        assert json.loads(w.body)["message"] == ONLY_ACCEPTED


# ---------------------------------------------------------------------------------------------- real clients


def test_kubernetes_clients(plane: Plane, kube: Kube, ns: str) -> None:
    """S1.5 (kubernetes client, cf. statement 52): DynamicClient `header_params` and typed-client `_headers`."""
    seed(kube, ns)
    kube.create(configmaps(ns), configmap("cm", ns))
    api = kubernetes.config.new_client_from_config(config_file=str(plane.kubeconfig))
    try:
        resource = DynamicClient(api).resources.get(api_version="example.com/v1", kind="Widget")
        listed = resource.get(namespace=ns, header_params={"Accept": POML})
        assert listed.kind == "PartialObjectMetadataList" and listed.apiVersion == "meta.k8s.io/v1"
        assert [item.metadata.name for item in listed.items] == ["a", "b", "c"]
        assert listed.items[0].kind == "PartialObjectMetadata" and listed.items[0].spec is None
        one = resource.get(name="b", namespace=ns, header_params={"Accept": POM})
        assert one.to_dict()["kind"] == "PartialObjectMetadata" and set(one.to_dict()) == {
            "kind",
            "apiVersion",
            "metadata",
        }
        assert one.metadata.labels.team == "y"
        with pytest.raises(DynamicApiError) as refused:
            resource.get(name="b", namespace=ns, header_params={"Accept": POML})
        assert refused.value.status == 500 and refused.value.summary() == "content is not a list"

        core = kubernetes.client.CoreV1Api(api)
        raw = core.list_namespaced_config_map(ns, _preload_content=False, _headers={"Accept": POML})
        assert names(made_by_test(json.loads(raw.data)["items"])) == ["cm"]
    finally:
        api.close()


def test_crds_themselves(kube: Kube) -> None:
    """S1.5: apiextensions resources answer metadata lists too (the CRD installed for this module is there)."""
    body = kube.ok(kube.get(CRDS, headers=accept(POML)))
    assert "widgets.example.com" in names(body["items"])
