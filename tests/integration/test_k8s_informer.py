"""dops.k8s.informer.Informer against a control plane: list, watch, resume, relist, failures, stop.

Aspects covered:
- on both planes: what existed is delivered (ADDED) before the first listing counts as done; later creates,
  changes and deletions arrive in order, only for objects the label selector selects;
- a dropped watch resumes from the last resourceVersion: no relist, nothing delivered twice, nothing missed;
- an expired history (410) relists, and an object deleted while the watch was down is delivered as DELETED
  with its last known state (no ghost survives a relist); an object created meanwhile arrives as ADDED;
- a watch that keeps failing (500) is retried with backoff, logs one WARNING for the streak and an INFO when it
  works again, and `problem()` names the failure once it lasted longer than `stale_after`;
- `stop()` wakes a watch blocked on a quiet stream at once and ends the thread.

ConfigMaps stand in for dops' Jobs and pods: no controller writes them, so every event is the test's own.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from dops.emulator import EmbeddedServer
from dops.k8s import KubeClient
from dops.k8s.informer import Informer
from dops.k8s.resources import ResourceClient
from tests.helpers import eventually

pytestmark = pytest.mark.both_planes

SELECTOR = "app.kubernetes.io/managed-by=dops"
JSON = dict[str, Any]


def config_map(namespace: str, name: str, value: str = "1", ours: bool = True) -> JSON:
    labels = {"app.kubernetes.io/managed-by": "dops"} if ours else {"app": "other"}
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": namespace, "labels": labels},
        "data": {"value": value},
    }


class Recorder:
    """An event loop in a thread (the operator's, in miniature), the informers it started, and what they delivered
    to it, in order."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.events: list[tuple[str, str, str]] = []  # (type, name, data.value)
        self.informers: list[Informer] = []

    def deliver(self, kind: str, obj: JSON) -> None:
        assert threading.current_thread() is self.thread, "delivered outside the event loop"
        self.events.append((kind, obj["metadata"]["name"], (obj.get("data") or {}).get("value", "")))

    def watch(self, resource: ResourceClient, namespace: str, **kwargs: Any) -> Informer:
        """A started informer of `resource` delivering here (stopped by `close()`)."""
        informer = Informer(resource, namespace, self.deliver, loop=self.loop, label_selector=SELECTOR, **kwargs)
        informer.start()
        self.informers.append(informer)
        return informer

    def close(self) -> None:
        for informer in self.informers:
            informer.stop()
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        self.loop.close()


@pytest.fixture
def recorder() -> Iterator[Recorder]:
    rec = Recorder()
    yield rec
    rec.close()


@pytest.fixture
def config_maps(kube: KubeClient) -> ResourceClient:
    return ResourceClient(kube, "", "v1", "configmaps")


def names(recorder: Recorder, kind: str) -> list[str]:
    return [name for k, name, _ in list(recorder.events) if k == kind]


def test_lists_then_watches_in_order(config_maps: ResourceClient, namespace: str, recorder: Recorder) -> None:
    config_maps.create(namespace, config_map(namespace, "before"))
    config_maps.create(namespace, config_map(namespace, "not-ours", ours=False))
    informer = recorder.watch(config_maps, namespace)
    assert informer.listed.wait(10), "the first listing never completed"
    eventually(lambda: list(recorder.events), lambda e: ("ADDED", "before", "1") in e, describe="the listing")
    config_maps.create(namespace, config_map(namespace, "after"))
    config_maps.patch(namespace, "after", {"data": {"value": "2"}})
    config_maps.delete(namespace, "before")
    config_maps.create(namespace, config_map(namespace, "other-after", ours=False))
    eventually(
        lambda: list(recorder.events),
        lambda e: (
            e
            == [
                ("ADDED", "before", "1"),
                ("ADDED", "after", "1"),
                ("MODIFIED", "after", "2"),
                ("DELETED", "before", "1"),
            ]
        ),
        describe="the listing, then every change in order",
    )
    assert informer.lists == 1 and informer.problem() is None


def test_a_dropped_watch_resumes_without_a_relist(
    config_maps: ResourceClient,
    namespace: str,
    recorder: Recorder,
    dops_server: EmbeddedServer,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="dops.k8s.informer")
    config_maps.create(namespace, config_map(namespace, "a"))
    informer = recorder.watch(config_maps, namespace)
    eventually(lambda: names(recorder, "ADDED"), lambda n: n == ["a"], describe="the listing")
    config_maps.create(namespace, config_map(namespace, "b"))  # the watch works: it delivers an event
    eventually(lambda: names(recorder, "ADDED"), lambda n: n == ["a", "b"], describe="b on the watch")
    assert dops_server.call(dops_server.http.drop_watches) >= 1
    config_maps.patch(namespace, "a", {"data": {"value": "2"}})
    config_maps.create(namespace, config_map(namespace, "c"))
    eventually(
        lambda: list(recorder.events),
        lambda e: e == [("ADDED", "a", "1"), ("ADDED", "b", "1"), ("MODIFIED", "a", "2"), ("ADDED", "c", "1")],
        describe="the changes made while the watch reconnected, each once",
    )
    assert informer.lists == 1, "a dropped watch resumes from its resourceVersion; it does not relist"
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING], "a dropped stream is not a failure"


def test_an_expired_watch_relists_and_delivers_the_deletions_it_missed(
    config_maps: ResourceClient,
    namespace: str,
    recorder: Recorder,
    dops_server: EmbeddedServer,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="dops.k8s.informer")
    config_maps.create(namespace, config_map(namespace, "stays"))
    config_maps.create(namespace, config_map(namespace, "goes-listed", value="listed"))
    config_maps.create(namespace, config_map(namespace, "goes-watched", value="first"))
    informer = recorder.watch(config_maps, namespace, stale_after=0.5)
    path = rf"^/api/v1/namespaces/{namespace}/configmaps$"
    eventually(lambda: len(names(recorder, "ADDED")), lambda n: n == 3, describe="the listing")
    # The last state of one deleted object is known from the listing, of the other from the watch.
    config_maps.patch(namespace, "goes-watched", {"data": {"value": "watched"}})
    eventually(lambda: names(recorder, "MODIFIED"), lambda n: n == ["goes-watched"], describe="the change")
    # The watch goes down and stays down (every GET of the collection fails) while one object is deleted and
    # another created; then the history it would resume from is compacted away.
    rule = dops_server.call(lambda: dops_server.faults.add(500, "GET", path, times=-1))
    dops_server.call(dops_server.http.drop_watches)
    eventually(
        lambda: str(informer.problem()),
        lambda problem: "configmaps" in problem and "injected fault" in problem,
        describe="problem() to name the failing watch and why",
        timeout=15,
    )
    config_maps.delete(namespace, "goes-listed")
    config_maps.delete(namespace, "goes-watched")
    config_maps.create(namespace, config_map(namespace, "new"))
    dops_server.call(dops_server.http.expire_watches)
    assert recorder.events[4:] == [], "nothing can be delivered while the watch is down"
    dops_server.call(lambda: dops_server.faults.rules.remove(rule))
    relisted = [
        ("ADDED", "new", "1"),
        ("ADDED", "stays", "1"),
        ("DELETED", "goes-listed", "listed"),
        ("DELETED", "goes-watched", "watched"),
    ]
    eventually(
        lambda: list(recorder.events[4:]),
        lambda e: sorted(e) == relisted,
        describe="the relist: what exists as ADDED, what was deleted meanwhile as DELETED (its last state)",
        timeout=40,
    )
    assert informer.lists == 2 and informer.problem() is None
    failures = [r for r in caplog.records if r.levelno == logging.WARNING and "failed" in r.getMessage()]
    assert len(failures) == 1, "one WARNING for the whole streak of failures"
    assert any("works again" in r.getMessage() for r in caplog.records)
    assert any("deleted while their watch was down" in r.getMessage() for r in caplog.records)


def test_stop_wakes_a_quiet_watch(config_maps: ResourceClient, namespace: str, recorder: Recorder) -> None:
    informer = recorder.watch(config_maps, namespace)
    assert informer.listed.wait(10)
    eventually(lambda: informer._response is not None, describe="the watch to be open")
    started = time.monotonic()
    informer.stop()
    assert informer._thread is not None and not informer._thread.is_alive()
    assert time.monotonic() - started < 3, "stop() waited for the server to end the watch"
