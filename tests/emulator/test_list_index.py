"""Selective lists read the store's selector indexes, and answer exactly what a scan of every object would.

The emulator keeps value → keys indexes per label key and field path (built on the first list that uses them,
kept up to date by every write), so a list matching 1,000 of 100,000 operations reads 1,000 objects, not
100,000 (issue 15). These tests drive `ApiServer` directly: every write path (create, update, patch, status
patch, delete) against a brute-force reference, pages with `limit`/`continue` included.
"""

from __future__ import annotations

import copy
import random
from collections.abc import Iterator
from typing import Any

import pytest

from dops.emulator.apiserver import ApiServer, DeleteOptions, WriteOptions
from dops.emulator.registry import ResourceType
from dops.emulator.selectors import FieldSelector, LabelSelector
from tests.builders import WidgetCRD, configmap, widget

JSON = dict[str, Any]
OPTS = WriteOptions(field_manager="test")

SELECTORS = [
    ("app=web", ""),
    ("app in (web,db)", ""),
    ("app", ""),
    ("!app", ""),
    ("app!=web", ""),
    ("tier notin (a)", ""),
    ("app=web,tier=b", ""),
    ("!tier", "spec.color=blue"),
    ("", "spec.color=blue"),
    ("", "spec.color!=blue"),
    ("app=db", "spec.color=green,metadata.namespace=ns1"),
    ("", "metadata.name=w7"),
    ("i>5", ""),
    ("app=nope", ""),
]


@pytest.fixture
def api() -> ApiServer:
    server = ApiServer()
    crd_type = server.type_for("apiextensions.k8s.io", "v1", "customresourcedefinitions")
    server.create(crd_type, None, WidgetCRD().build(), OPTS)
    for ns in ("ns1", "ns2"):
        server.create(server.type_for("", "v1", "namespaces"), None, {"metadata": {"name": ns}}, OPTS)
    return server


def widgets(api: ApiServer) -> ResourceType:
    return api.type_for("example.com", "v1", "widgets")


def reference(api: ApiServer, rtype: ResourceType, namespace: str | None, labels: str, fields: str) -> list[str]:
    """What a scan of every stored object selects, in etcd key order."""
    label_sel, field_sel = LabelSelector.parse(labels), FieldSelector.parse(fields)
    return [
        f"{o['metadata']['namespace']}/{o['metadata']['name']}"
        for o in api.store.iter(api._key(rtype), namespace)
        if label_sel.matches(o["metadata"].get("labels")) and field_sel.matches(o)
    ]


def listed(
    api: ApiServer, rtype: ResourceType, namespace: str | None, labels: str, fields: str, limit: int
) -> list[str]:
    """Every page of the list, followed through its continue tokens."""
    out: list[str] = []
    token = ""
    while True:
        page = api.list_objects(rtype, namespace, labels, fields, limit, token)
        out += [f"{o['metadata']['namespace']}/{o['metadata']['name']}" for o in page.items]
        token = page.continue_token
        if not token:
            return out


def random_labels(rng: random.Random) -> JSON:
    labels: JSON = {}
    if rng.random() < 0.7:
        labels["app"] = rng.choice(["web", "db", "cache"])
    if rng.random() < 0.5:
        labels["tier"] = rng.choice(["a", "b"])
    if rng.random() < 0.5:
        labels["i"] = str(rng.randrange(10))
    return labels


def churn(api: ApiServer, rng: random.Random, steps: int) -> Iterator[None]:
    """Random creates, label and spec changes (update, merge patch), deletes; yields after each write."""
    rtype = widgets(api)
    alive: set[tuple[str, str]] = set()
    for step in range(steps):
        roll = rng.random()
        if roll < 0.45 or not alive:
            ns, name = rng.choice(["ns1", "ns2"]), f"w{step}"
            body = widget(name, ns, color=rng.choice(["red", "green", "blue"]))
            body["metadata"]["labels"] = random_labels(rng)
            api.create(rtype, ns, body, OPTS)
            alive.add((ns, name))
        elif roll < 0.65:
            ns, name = rng.choice(sorted(alive))
            patch = {"metadata": {"labels": random_labels(rng) | {"app": rng.choice(["web", "db", None])}}}
            api.patch(rtype, ns, name, "application/merge-patch+json", patch, OPTS)
        elif roll < 0.8:
            ns, name = rng.choice(sorted(alive))
            current = copy.deepcopy(api.get(rtype, ns, name))  # the stored dict itself: never change it
            current["spec"] = {**current["spec"], "color": rng.choice(["red", "green", "blue"])}
            current["metadata"] = {**current["metadata"], "labels": random_labels(rng)}
            api.update(rtype, ns, name, current, OPTS)
        else:
            ns, name = rng.choice(sorted(alive))
            api.delete(rtype, ns, name, DeleteOptions())
            alive.discard((ns, name))
        yield


def test_selective_lists_match_a_scan_through_every_kind_of_write(api: ApiServer) -> None:
    rng = random.Random(15)
    rtype = widgets(api)
    for step, _ in enumerate(churn(api, rng, 400)):
        if step % 40 != 39:
            continue
        for labels, fields in SELECTORS:
            for namespace in (None, "ns1"):
                want = reference(api, rtype, namespace, labels, fields)
                for limit in (0, 1, 7):
                    got = listed(api, rtype, namespace, labels, fields, limit)
                    assert got == want, (labels, fields, namespace, limit)


def test_a_selective_list_reads_only_its_matches(api: ApiServer, monkeypatch: pytest.MonkeyPatch) -> None:
    """1 blue widget in 2,000: the list answers from the `spec.color` index without a scan of every object."""
    rtype = widgets(api)
    for i in range(2000):
        body = widget(f"w{i:04d}", "ns1", color="blue" if i == 1234 else "red")
        body["metadata"]["labels"] = {"app": "web", "n": str(i)}
        api.create(rtype, "ns1", body, OPTS)
    api.list_objects(rtype, "ns1", "", "spec.color=blue")  # builds the index

    def no_scan(*args: Any, **kwargs: Any) -> Iterator[JSON]:
        raise AssertionError("a selective list scanned every object")

    monkeypatch.setattr(api.store, "iter", no_scan)
    assert [o["metadata"]["name"] for o in api.list_objects(rtype, "ns1", "", "spec.color=blue").items] == ["w1234"]
    assert [o["metadata"]["name"] for o in api.list_objects(rtype, None, "n=7", "").items] == ["w0007"]
    assert [o["metadata"]["name"] for o in api.list_objects(rtype, "ns1", "!n", "").items] == []


def test_lists_of_most_objects_still_scan_and_stop_at_the_limit(api: ApiServer) -> None:
    """A selector most objects match is not worth sorting an index's answer: the scan stops at `limit`."""
    rtype = widgets(api)
    for i in range(1000):
        body = widget(f"w{i:04d}", "ns1", color="red")
        body["metadata"]["labels"] = {"app": "web"}
        api.create(rtype, "ns1", body, OPTS)
    page = api.list_objects(rtype, "ns1", "app=web", "spec.color=red", limit=2)
    assert [o["metadata"]["name"] for o in page.items] == ["w0000", "w0001"] and page.continue_token


def test_labels_of_config_maps_are_indexed_too(api: ApiServer) -> None:
    cms = api.type_for("", "v1", "configmaps")
    for i in range(300):
        api.create(cms, "ns2", configmap(f"c{i:03d}", "ns2", labels={"k": str(i % 3)}), OPTS)
    assert len(api.list_objects(cms, "ns2", "k=1", "").items) == 100
    api.delete(cms, "ns2", "c001", DeleteOptions())
    assert len(api.list_objects(cms, "ns2", "k=1", "").items) == 99
    assert len(api.list_objects(cms, "ns2", "k in (0,1)", "").items) == 199
