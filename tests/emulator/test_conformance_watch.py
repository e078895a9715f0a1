"""Conformance: watch semantics as clients observe them (API-surface spec §9, statements 22-30).

Covered:
- 22: a watch without `resourceVersion` opens with ADDED for every matching object; a watch from a list's RV
  delivers only later changes, in RV order.
- 23: the RV in a PATCH/PUT response (main resource and /status) equals the RV of the MODIFIED event.
- 24: DELETED carries the final object with a new, higher RV.
- 25: resuming from an RV older than the retained window (a small `history_size`, or history compacted through
  the admin API) yields one in-stream `ERROR` 410 `Expired` on an HTTP 200 stream, which then ends (embedded
  only: a real apiserver expires RVs only at its periodic etcd compaction).
- 26: `allowWatchBookmarks=true` yields BOOKMARKs shaped `{kind, apiVersion, metadata.resourceVersion}` at the
  configured interval (embedded only; about every minute on a real apiserver); none without it; the default
  interval is at most 60 s.
- 27: `sendInitialEvents=true&resourceVersionMatch=NotOlderThan` yields ADDED×N then the
  `k8s.io/initial-events-end` BOOKMARK, then live events; a watch from no resourceVersion is defaulted to the same
  (the bookmark only with `allowWatchBookmarks`); without `resourceVersionMatch` → 422 Invalid (also through the
  kubernetes client).
- 28: `timeoutSeconds=N` ends the stream after about N s, without an ERROR event.
- 29: label and field selectors (incl. a CRD selectableField) filter events; leaving the selector is DELETED
  (previous content, the write's RV), entering is ADDED.
- 30: clients that abort mid-stream (raw HTTP and real `kubectl get -w`) leave the server and other watchers healthy
  (and, embedded only, are unregistered: `/__emulator/stats`).
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import kubernetes
import pytest

from dops.emulator import EmbeddedServer, ServerSettings
from tests.builders import configmap, widget
from tests.emulator.kube_http import CM, JSON_PATCH, WIDGETS, Kube, WatchStream, summary
from tests.helpers import CLI, eventually
from tests.planes import SYSTEM_OBJECT_NAMES, Plane, as_plane

pytestmark = pytest.mark.both_planes


@pytest.fixture
def kube(plane: Plane) -> Iterator[Kube]:
    client = Kube(plane)
    yield client
    client.close()


@pytest.fixture
def widgets(kube: Kube) -> Kube:
    kube.install_crd()
    return kube


def rv(obj: dict) -> int:  # type: ignore[type-arg]
    return int(obj["metadata"]["resourceVersion"])


def of_test(events: list[dict]) -> list[dict]:  # type: ignore[type-arg]
    """`events` without those about objects a real control plane makes by itself (the `kube-root-ca.crt` ConfigMap)."""
    return [e for e in events if e["object"].get("metadata", {}).get("name") not in SYSTEM_OBJECT_NAMES]


def open_watch(plane: Plane, path: str, params: dict[str, str] | None = None) -> WatchStream:
    """A watch, asked again while a real apiserver still initialises a new CRD's storage (429 with Retry-After)."""
    deadline = time.monotonic() + 10
    while True:
        stream = WatchStream(plane, path, params)
        if stream.status != 429 or time.monotonic() > deadline:
            assert stream.status == 200, (stream.status, getattr(stream, "body", b""))
            return stream
        stream.close()
        time.sleep(0.1)


# ---------------------------------------------------------------------------------------------- 22


def test_watch_without_resource_version_starts_with_added_for_existing_objects(plane: Plane, kube: Kube) -> None:
    """S9 / statement 22: no resourceVersion → synthetic ADDED for every matching object, then live events."""
    kube.create("/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "other"}})
    kube.create(CM, configmap("a"))
    kube.create(CM, configmap("b"))
    kube.create("/api/v1/namespaces/other/configmaps", configmap("elsewhere", namespace="other"))
    existing = len(kube.ok(kube.get(CM))["items"])  # a real plane has its kube-root-ca.crt here too
    with WatchStream(plane, CM) as watch:
        assert watch.status == 200
        assert watch.headers["Content-Type"] == "application/json"
        initial = watch.take(existing)
        assert summary(of_test(initial)) == [("ADDED", "a"), ("ADDED", "b")]
        assert all(e["type"] == "ADDED" for e in initial)
        assert all(e["object"]["kind"] == "ConfigMap" and e["object"]["apiVersion"] == "v1" for e in initial)
        kube.create(CM, configmap("c"))
        assert summary([watch.next()]) == [("ADDED", "c")]
        assert of_test(watch.quiet(0.3)) == []  # the other namespace's object never shows up


def test_watch_from_list_resource_version_delivers_only_later_changes_in_order(plane: Plane, kube: Kube) -> None:
    """S9 / statement 22: resourceVersion=<list RV> → only the changes after the list, in RV order."""
    kube.create(CM, configmap("before", x="1"))
    listed = kube.ok(kube.get(CM))
    list_rv = listed["metadata"]["resourceVersion"]
    assert list_rv.isdigit()
    created = kube.create(CM, configmap("after", x="1"))
    patched = kube.ok(kube.patch(f"{CM}/before", {"data": {"x": "2"}}))
    kube.ok(kube.delete(f"{CM}/after"))
    with WatchStream(plane, CM, {"resourceVersion": list_rv}) as watch:
        events = watch.take(3)
        assert summary(events) == [("ADDED", "after"), ("MODIFIED", "before"), ("DELETED", "after")]
        rvs = [rv(e["object"]) for e in events]
        assert rvs == sorted(rvs) and len(set(rvs)) == 3
        assert rvs[0] == rv(created) and rvs[1] == rv(patched)
        assert all(r > int(list_rv) for r in rvs)
        assert events[1]["object"]["data"] == {"x": "2"}
        assert watch.quiet(0.3) == []


# ---------------------------------------------------------------------------------------------- 23, 24


def test_write_response_resource_version_equals_event_resource_version(plane: Plane, widgets: Kube) -> None:
    """S9 / statement 23: the RV a PATCH or PUT returns is the RV of the MODIFIED event for that write."""
    kube = widgets
    created = kube.create(WIDGETS, widget("w1", size=1))
    with WatchStream(plane, WIDGETS, {"resourceVersion": created["metadata"]["resourceVersion"]}) as watch:
        merge = kube.ok(kube.patch(f"{WIDGETS}/w1", {"spec": {"size": 2}}))
        json_patch = kube.ok(
            kube.patch(
                f"{WIDGETS}/w1", [{"op": "replace", "path": "/spec/size", "value": 3}], JSON_PATCH["Content-Type"]
            )
        )
        status = kube.ok(kube.patch(f"{WIDGETS}/w1/status", {"status": {"phase": "Ready"}}))
        current = kube.ok(kube.get(f"{WIDGETS}/w1"))
        current["spec"]["size"] = 4
        put = kube.ok(kube.put(f"{WIDGETS}/w1", current))
        events = watch.take(4)
    assert [e["type"] for e in events] == ["MODIFIED"] * 4
    assert [rv(e["object"]) for e in events] == [rv(merge), rv(json_patch), rv(status), rv(put)]
    assert [e["object"]["spec"]["size"] for e in events] == [2, 3, 3, 4]
    assert events[2]["object"]["status"] == {"phase": "Ready"}


def test_deleted_event_carries_final_object_with_new_higher_resource_version(plane: Plane, widgets: Kube) -> None:
    """S9 / statement 24: DELETED carries the object's final state stamped with the deletion's own, higher RV."""
    kube = widgets
    kube.create(WIDGETS, widget("w1", size=1))
    last = kube.ok(kube.patch(f"{WIDGETS}/w1", {"spec": {"size": 5}}))
    with WatchStream(plane, WIDGETS, {"resourceVersion": last["metadata"]["resourceVersion"]}) as watch:
        deleted = kube.ok(kube.delete(f"{WIDGETS}/w1"))
        event = watch.next()
    # A custom resource's storage answers an immediate deletion with a Success Status, not the object.
    assert (deleted["kind"], deleted["status"]) == ("Status", "Success")
    assert deleted["details"] == {
        "name": "w1",
        "group": "example.com",
        "kind": "widgets",
        "uid": last["metadata"]["uid"],
    }
    assert event["type"] == "DELETED"
    obj = event["object"]
    assert obj["kind"] == "Widget" and obj["apiVersion"] == "example.com/v1"
    assert obj["metadata"]["name"] == "w1" and obj["metadata"]["uid"] == last["metadata"]["uid"]
    assert obj["spec"]["size"] == 5
    assert rv(obj) > rv(last)
    assert int(kube.ok(kube.get(WIDGETS))["metadata"]["resourceVersion"]) >= rv(obj)
    # The RV is the deletion's own: the next write is stamped after it.
    assert rv(kube.create(WIDGETS, widget("w2", size=1))) > rv(obj)


# ---------------------------------------------------------------------------------------------- 25


@pytest.fixture
def short_history(tmp_path: Path) -> Iterator[EmbeddedServer]:
    """A server that retains only the last 3 events, so older resourceVersions expire quickly."""
    with EmbeddedServer.run_in_thread(ServerSettings(history_size=3, bookmark_interval=1.0)) as server:
        yield server


def test_watch_from_expired_resource_version_gets_in_stream_410(short_history: EmbeddedServer) -> None:
    """S9 / statement 25: an RV older than the retained window → HTTP 200, one ERROR 410 Expired, then EOF."""
    kube = Kube(short_history.url)
    first = kube.create(CM, configmap("c0"))
    for i in range(1, 8):
        kube.create(CM, configmap(f"c{i}"))
    with WatchStream(short_history.url, CM, {"resourceVersion": first["metadata"]["resourceVersion"]}) as watch:
        assert watch.status == 200
        events = watch.rest(timeout=5)
    assert len(events) == 1, events
    error = events[0]
    assert error["type"] == "ERROR"
    status = error["object"]
    assert status["kind"] == "Status" and status["apiVersion"] == "v1"
    assert status["status"] == "Failure"
    assert status["code"] == 410 and status["reason"] == "Expired"
    assert status["message"].startswith(f"too old resource version: {first['metadata']['resourceVersion']} (")

    # A resume from inside the window still works.
    latest = kube.ok(kube.get(CM))["metadata"]["resourceVersion"]
    recent = kube.ok(kube.patch(f"{CM}/c7", {"data": {"k": "v"}}))
    with WatchStream(short_history.url, CM, {"resourceVersion": latest}) as watch:
        event = watch.next()
        assert event["type"] == "MODIFIED" and rv(event["object"]) == rv(recent)
    kube.close()


def test_watch_from_resource_version_compacted_by_admin_api_gets_410(emulator: EmbeddedServer, kube: Kube) -> None:
    """S9 / statement 25: after `/__emulator/watches/expire` compacts history, a resume from an older RV gets 410."""
    created = kube.create(CM, configmap("c1"))
    kube.ok(kube.patch(f"{CM}/c1", {"data": {"k": "v"}}))
    assert kube.request("POST", "/__emulator/watches/expire").status_code == 200
    with WatchStream(emulator.url, CM, {"resourceVersion": created["metadata"]["resourceVersion"]}) as watch:
        events = watch.rest(timeout=5)
    assert [(e["type"], e["object"]["code"], e["object"]["reason"]) for e in events] == [("ERROR", 410, "Expired")]


# ---------------------------------------------------------------------------------------------- 26, 28


def _assert_bookmark_shape(event: dict, at_least: int, initial_end: bool) -> None:  # type: ignore[type-arg]
    assert event["type"] == "BOOKMARK", event
    obj = event["object"]
    assert set(obj) == {"kind", "apiVersion", "metadata"}
    assert obj["kind"] == "Widget" and obj["apiVersion"] == "example.com/v1"
    if initial_end:
        assert set(obj["metadata"]) == {"resourceVersion", "annotations"}
        assert obj["metadata"]["annotations"] == {"k8s.io/initial-events-end": "true"}
    else:
        assert set(obj["metadata"]) == {"resourceVersion"}
    assert int(obj["metadata"]["resourceVersion"]) >= at_least


def test_watch_without_resource_version_ends_its_initial_events_with_a_bookmark(plane: Plane, widgets: Kube) -> None:
    """S9 / statements 26 and 27: a watch from no resourceVersion is defaulted to a watch-list (sendInitialEvents,
    NotOlderThan; the WatchList feature is on in v1.35): with allowWatchBookmarks the ADDED events are followed by
    the `k8s.io/initial-events-end` BOOKMARK {kind, apiVersion, metadata{resourceVersion, annotations}}."""
    kube = widgets
    created = kube.create(WIDGETS, widget("w1", size=1))
    with open_watch(plane, WIDGETS, {"allowWatchBookmarks": "true"}) as watch:
        assert summary([watch.next()]) == [("ADDED", "w1")]
        _assert_bookmark_shape(watch.next(), rv(created), initial_end=True)
        live = kube.create(WIDGETS, widget("w2", size=2))
        after = watch.until(lambda e: e["type"] != "BOOKMARK")
        assert summary(after[-1:]) == [("ADDED", "w2")] and rv(after[-1]["object"]) == rv(live)
    # Without allowWatchBookmarks the same watch has no bookmark at all, the initial-events-end one included.
    with open_watch(plane, WIDGETS, {"timeoutSeconds": "2"}) as watch:
        assert [e["type"] for e in watch.rest(timeout=6)] == ["ADDED", "ADDED"]


def test_bookmarks_arrive_at_the_configured_interval_with_the_documented_shape(
    emulator: EmbeddedServer, widgets: Kube
) -> None:
    """S9 / statement 26 (embedded only: the interval is a server setting; a real apiserver sends one about every
    minute): allowWatchBookmarks → after the initial-events-end one, BOOKMARK {kind, apiVersion,
    metadata.resourceVersion} every interval."""
    assert emulator.settings.bookmark_interval == 1.0  # the conftest fixture's setting
    assert ServerSettings().bookmark_interval <= 60
    kube = widgets
    created = kube.create(WIDGETS, widget("w1", size=1))
    with WatchStream(emulator.url, WIDGETS, {"allowWatchBookmarks": "true"}) as watch:
        assert summary([watch.next()]) == [("ADDED", "w1")]
        _assert_bookmark_shape(watch.next(), rv(created), initial_end=True)
        bookmarks: list[tuple[float, dict]] = []  # type: ignore[type-arg]
        while len(bookmarks) < 3:
            event = watch.next(timeout=3)
            assert event["type"] == "BOOKMARK", event
            bookmarks.append((watch.arrivals[-1], event))
    for _, event in bookmarks:
        _assert_bookmark_shape(event, rv(created), initial_end=False)
    gaps = [b[0] - a[0] for a, b in itertools.pairwise(bookmarks)]
    assert all(0.7 <= gap <= 2.0 for gap in gaps), gaps


def test_timeout_seconds_closes_the_stream_cleanly_and_no_bookmarks_unless_asked(plane: Plane, kube: Kube) -> None:
    """S9 / statements 28 and 26: timeoutSeconds=2 ends the stream after ~2 s with no ERROR; no BOOKMARKs unasked."""
    kube.create(CM, configmap("c1"))
    with WatchStream(plane, CM, {"timeoutSeconds": "2"}) as watch:
        events = watch.rest(timeout=6)
        assert watch.error is None
        assert watch.ended_at is not None
        elapsed = watch.ended_at - watch.opened_at
    assert {e["type"] for e in events} == {"ADDED"}  # no ERROR, no BOOKMARK (the embedded interval is 1 s here)
    assert summary(of_test(events)) == [("ADDED", "c1")]
    assert 1.7 <= elapsed <= 4.0, elapsed
    assert kube.get("/version").status_code == 200


# ---------------------------------------------------------------------------------------------- 27


def test_send_initial_events_then_initial_events_end_bookmark(plane: Plane, widgets: Kube) -> None:
    """S9 / statement 27: sendInitialEvents + NotOlderThan → ADDED×N, the initial-events-end BOOKMARK, then live."""
    kube = widgets
    items = [kube.create(WIDGETS, widget(f"w{i}", size=i)) for i in range(3)]
    listed_rv = kube.ok(kube.get(WIDGETS))["metadata"]["resourceVersion"]
    params = {
        "sendInitialEvents": "true",
        "resourceVersionMatch": "NotOlderThan",
        "allowWatchBookmarks": "true",
        "resourceVersion": listed_rv,
    }
    with WatchStream(plane, WIDGETS, params) as watch:
        initial = watch.take(4)
        assert summary(initial[:3]) == [("ADDED", "w0"), ("ADDED", "w1"), ("ADDED", "w2")]
        end = initial[3]
        assert end["type"] == "BOOKMARK"
        assert end["object"]["kind"] == "Widget" and end["object"]["apiVersion"] == "example.com/v1"
        assert end["object"]["metadata"]["annotations"] == {"k8s.io/initial-events-end": "true"}
        assert int(end["object"]["metadata"]["resourceVersion"]) >= max(rv(i) for i in items)
        live = kube.create(WIDGETS, widget("w3", size=3))
        after = watch.until(lambda e: e["type"] != "BOOKMARK")
        assert summary(after[-1:]) == [("ADDED", "w3")] and rv(after[-1]["object"]) == rv(live)


def test_send_initial_events_without_resource_version_match_is_invalid(plane: Plane, widgets: Kube) -> None:
    """S9 / statement 27: sendInitialEvents=true without resourceVersionMatch → 422 Invalid (no stream)."""
    kube = widgets
    response = kube.get(WIDGETS, params={"watch": "true", "sendInitialEvents": "true"})
    assert response.status_code == 422
    assert response.headers["Content-Type"] == "application/json"
    status = response.json()
    assert status["kind"] == "Status" and status["reason"] == "Invalid" and status["code"] == 422
    assert status["message"] == (
        'ListOptions.meta.k8s.io "" is invalid: resourceVersionMatch: Forbidden: '
        "sendInitialEvents requires setting resourceVersionMatch to NotOlderThan"
    )
    assert (status["details"]["group"], status["details"]["kind"]) == ("meta.k8s.io", "ListOptions")
    assert [(c["reason"], c["field"]) for c in status["details"]["causes"]] == [
        ("FieldValueForbidden", "resourceVersionMatch")
    ]
    # The converse: resourceVersionMatch on a watch needs sendInitialEvents.
    converse = kube.get(WIDGETS, params={"watch": "true", "resourceVersionMatch": "NotOlderThan"})
    assert converse.status_code == 422
    assert converse.json()["message"] == (
        'ListOptions.meta.k8s.io "" is invalid: resourceVersionMatch: Forbidden: '
        "resourceVersionMatch is forbidden for watch unless sendInitialEvents is provided"
    )

    client = kubernetes.config.new_client_from_config(config_file=str(plane.kubeconfig))
    with client:
        api = kubernetes.client.CoreV1Api(client)
        with pytest.raises(kubernetes.client.ApiException) as caught:
            api.list_namespaced_config_map("default", watch=True, send_initial_events=True, _preload_content=False)
    assert caught.value.status == 422


# ---------------------------------------------------------------------------------------------- 29


def test_label_selector_watch_turns_leaving_into_deleted_and_entering_into_added(plane: Plane, kube: Kube) -> None:
    """S9 / statement 29: MODIFIED out of the selector → DELETED; into it → ADDED; non-matching objects are silent."""
    with WatchStream(plane, CM, {"labelSelector": "app=web"}) as watch:
        kube.create(CM, configmap("x", labels={"app": "web"}))
        kube.create(CM, configmap("y", labels={"app": "db"}))
        assert summary([watch.next()]) == [("ADDED", "x")]
        modified = kube.ok(kube.patch(f"{CM}/x", {"data": {"k": "v"}}))
        left = kube.ok(kube.patch(f"{CM}/x", {"metadata": {"labels": {"app": "db"}}}))
        kube.ok(kube.patch(f"{CM}/y", {"data": {"k": "v"}}))
        entered = kube.ok(kube.patch(f"{CM}/y", {"metadata": {"labels": {"app": "web"}}}))
        events = watch.take(3)
        assert summary(events) == [("MODIFIED", "x"), ("DELETED", "x"), ("ADDED", "y")]
        assert rv(events[0]["object"]) == rv(modified)
        # Leaving: the previous content (still matching), stamped with the write's RV — as the watch cache does.
        assert rv(events[1]["object"]) == rv(left)
        assert events[1]["object"]["metadata"]["labels"] == {"app": "web"}
        assert rv(events[2]["object"]) == rv(entered)
        assert events[2]["object"]["metadata"]["labels"] == {"app": "web"}
        kube.ok(kube.delete(f"{CM}/x"))  # already outside the selector: nothing
        kube.ok(kube.delete(f"{CM}/y"))
        assert summary([watch.next()]) == [("DELETED", "y")]
        assert watch.quiet(0.3) == []


def test_field_selectors_filter_watch_events(plane: Plane, widgets: Kube) -> None:
    """S9 / statement 29: metadata.name and a CRD selectableField (spec.color) filter watch events with enter/leave."""
    kube = widgets
    by_name = open_watch(plane, CM, {"fieldSelector": "metadata.name=wanted"})
    by_color = open_watch(plane, WIDGETS, {"fieldSelector": "spec.color=blue"})
    try:
        kube.create(CM, configmap("other"))
        kube.create(CM, configmap("wanted"))
        kube.ok(kube.patch(f"{CM}/other", {"data": {"a": "b"}}))
        kube.ok(kube.patch(f"{CM}/wanted", {"data": {"a": "b"}}))
        assert summary(by_name.take(2)) == [("ADDED", "wanted"), ("MODIFIED", "wanted")]
        assert by_name.quiet(0.2) == []

        kube.create(WIDGETS, widget("red-one", size=1))  # color defaults to red
        kube.create(WIDGETS, widget("blue-one", size=1, color="blue"))
        kube.ok(kube.patch(f"{WIDGETS}/red-one", {"spec": {"color": "blue"}}))
        kube.ok(kube.patch(f"{WIDGETS}/blue-one", {"spec": {"color": "green"}}))
        events = by_color.take(3)
        assert summary(events) == [("ADDED", "blue-one"), ("ADDED", "red-one"), ("DELETED", "blue-one")]
        assert events[1]["object"]["spec"]["color"] == "blue"
    finally:
        by_name.close()
        by_color.close()


# ---------------------------------------------------------------------------------------------- 30


def _burst_with_quitters(plane: Plane, kube: Kube, on_quit: Callable[[], None] = lambda: None) -> None:
    """A watch client vanishing mid-stream (during a burst of writes) breaks nothing else: the survivor sees every
    write in order, the server keeps answering, and later writes still reach the survivor."""
    survivor = WatchStream(plane, CM)
    quitters = [WatchStream(plane, CM) for _ in range(3)]
    writer_kube = Kube(plane)
    stop = threading.Event()
    written: list[str] = []

    def write_burst() -> None:
        i = 0
        while not stop.is_set() and i < 300:
            writer_kube.create(CM, configmap(f"burst-{i}"))
            written.append(f"burst-{i}")
            i += 1

    writer = threading.Thread(target=write_burst)
    writer.start()
    try:
        for quitter in quitters:
            quitter.next()  # mid-stream: at least one event received
            quitter.abort()
        writer.join(60)
        total = len(kube.ok(kube.get(CM))["items"])  # the burst, plus a real plane's kube-root-ca.crt
        names = [e["object"]["metadata"]["name"] for e in of_test(survivor.take(total, timeout=10))]
        assert names == written and len(names) >= 1
        assert kube.get("/version").status_code == 200
        kube.create(CM, configmap("after"))
        assert summary([survivor.next()]) == [("ADDED", "after")]
        on_quit()
    finally:
        stop.set()
        writer.join(30)
        survivor.close()
        for quitter in quitters:
            quitter.close()
        writer_kube.close()


def test_client_closing_mid_stream_leaves_server_and_other_watchers_healthy(plane: Plane, kube: Kube) -> None:
    """S9 / statement 30: a watch client vanishing mid-stream (during a burst of writes) breaks nothing else."""
    _burst_with_quitters(plane, kube)


def test_aborted_watches_are_unregistered(emulator: EmbeddedServer, kube: Kube) -> None:
    """S9 / statement 30 (embedded only: it reads `/__emulator/stats`): the server forgets the aborted watches."""
    _burst_with_quitters(
        as_plane(emulator),
        kube,
        lambda: eventually(
            lambda: kube.ok(kube.get("/__emulator/stats"))["watches"],
            lambda n: n == 1,
            describe="aborted watches to be unregistered",
        ),
    )


def _kubectl_watch(kubectl: CLI, kube: Kube, while_running: Callable[[], None] = lambda: None) -> None:
    """Start a real `kubectl get -w`, see it print an object created after its list (so its watch is open), kill it."""
    kube.create(CM, configmap("c1"))
    proc = kubectl.popen("get", "configmaps", "-w", "-o", "name")
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "configmap/c1"  # the list (a real plane's kube-root-ca.crt follows)
        kube.create(CM, configmap("c-live"))
        seen = ""
        while seen != "configmap/c-live":
            seen = proc.stdout.readline().strip()
            assert seen, "kubectl's output ended before the live event"
        while_running()
        proc.kill()
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
        for stream in (proc.stdout, proc.stderr):
            if stream:
                stream.close()


def test_kubectl_watch_killed_mid_stream_leaves_server_healthy(plane: Plane, kubectl: CLI, kube: Kube) -> None:
    """S9 / statement 30: killing a real `kubectl get -w` mid-stream; the next requests and watches still work."""
    _kubectl_watch(kubectl, kube)
    kube.create(CM, configmap("c2"))
    result = kubectl.run("get", "configmaps", "-o", "name")
    shown = [name for name in result.stdout.split() if name.removeprefix("configmap/") not in SYSTEM_OBJECT_NAMES]
    assert shown == ["configmap/c-live", "configmap/c1", "configmap/c2"]
    started = time.monotonic()
    assert kube.get("/version").status_code == 200
    assert time.monotonic() - started < 2
    with WatchStream(plane, CM, {"fieldSelector": "metadata.name=c3"}) as watch:
        kube.create(CM, configmap("c3"))
        assert summary([watch.next()]) == [("ADDED", "c3")]


def test_killed_kubectl_watch_is_unregistered(emulator: EmbeddedServer, kubectl: CLI, kube: Kube) -> None:
    """S9 / statement 30 (embedded only: it reads `/__emulator/stats`): kubectl's watch is registered while it runs
    and unregistered once the process is killed."""
    _kubectl_watch(
        kubectl,
        kube,
        lambda: eventually(
            lambda: kube.ok(kube.get("/__emulator/stats"))["watches"], lambda n: n >= 1, describe="kubectl's watch"
        ),
    )
    eventually(lambda: kube.ok(kube.get("/__emulator/stats"))["watches"], lambda n: n == 0, describe="watch gone")
