"""Fault injection does what it promises, over the admin API and through the Python hooks.

Covered:
- `POST /__emulator/faults` (code, method, path regex, times, message, skip) → the matching requests (after the
  first `skip`) get that 5xx/429 as a `Status` (with `Retry-After` when the Status carries `retryAfterSeconds`, as
  the apiserver sends it) exactly `times` times, then normal service; other methods/paths are untouched; `times: -1`
  lasts until `DELETE /__emulator/faults`;
  `GET` lists the rules with their match counts; invalid rules → 400; unknown admin endpoints → 404.
- real clients under faults: kubectl retries a 429 carrying `Retry-After` and succeeds; the kubernetes client surfaces
  `ApiException.status == 503`.
- `POST /__emulator/watches/expire` → every open watch receives one `ERROR` 410 `Expired`, then its stream ends, and
  resuming from an older RV is 410 too; `POST /__emulator/watches/drop` → open streams end without an ERROR; new watches
  work afterwards.
- `POST /__emulator/watches/lag` (resource, seconds) / `faults.lag_watches(...)` → that resource's watches get their
  events that late and in order, other resources' at once; 0 or clearing the faults ends it; bad bodies → 400.
- `GET /__emulator/stats` reports the RV, request counts per resource and verb, object counts and open watches.
- the Python hooks `emulator.faults.add(...)`, `emulator.http.expire_watches()` and `emulator.http.drop_watches()`.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import kubernetes
import pytest

from dops.emulator import EmbeddedServer
from tests.builders import configmap
from tests.emulator.kube_http import CM, Kube, WatchStream, summary
from tests.helpers import CLI, eventually

FAULTS = "/__emulator/faults"


@pytest.fixture
def kube(emulator: EmbeddedServer) -> Iterator[Kube]:
    client = Kube(emulator.url)
    yield client
    client.close()


def add_fault(kube: Kube, **rule: object) -> dict:  # type: ignore[type-arg]
    return kube.ok(kube.post(FAULTS, rule), 201)


# ---------------------------------------------------------------------------------------------- request faults


@pytest.mark.parametrize(
    ("code", "reason"),
    [
        (500, "InternalError"),
        (502, "BadGateway"),
        (503, "ServiceUnavailable"),
        (504, "Timeout"),
        (429, "TooManyRequests"),
    ],
)
def test_admin_fault_answers_n_times_then_normal_service(kube: Kube, code: int, reason: str) -> None:
    """A rule with `times: 2` fails exactly two matching requests with that Status, then the server answers normally."""
    kube.create(CM, configmap("c1"))
    rule = add_fault(kube, code=code, method="GET", path="/configmaps/c1$", times=2, message="boom")
    assert (rule["code"], rule["method"], rule["times"], rule["matched"]) == (code, "GET", 2, 0)
    for _ in range(2):
        response = kube.get(f"{CM}/c1")
        assert response.status_code == code
        assert response.headers["Content-Type"] == "application/json"
        status = response.json()
        assert (status["kind"], status["status"], status["code"], status["reason"]) == (
            "Status",
            "Failure",
            code,
            reason,
        )
        assert status["message"] == "boom"
        if code in (429, 503):
            assert response.headers["Retry-After"] == "1"
            assert status["details"]["retryAfterSeconds"] == 1
    assert kube.ok(kube.get(f"{CM}/c1"))["metadata"]["name"] == "c1"
    assert kube.ok(kube.get(CM))["items"]  # the path regex did not match the list
    assert kube.post(CM, configmap("c2")).status_code == 201  # nor other methods
    listed = kube.ok(kube.get(FAULTS))["rules"]
    assert [(r["code"], r["times"], r["matched"]) for r in listed] == [(code, 0, 2)]


def test_forever_fault_until_cleared_and_method_filter(kube: Kube) -> None:
    """`times: -1` fails every matching request until `DELETE /__emulator/faults`; a method filter spares the rest."""
    add_fault(kube, code=500, method="POST", path="configmaps", times=-1)
    for i in range(3):
        response = kube.post(CM, configmap(f"c{i}"))
        assert response.status_code == 500 and response.json()["reason"] == "InternalError"
    assert kube.ok(kube.get(CM))["items"] == []  # GETs pass, and no POST was applied
    assert kube.ok(kube.delete(FAULTS)) == {"rules": []}
    assert kube.ok(kube.get(FAULTS)) == {"rules": []}
    assert kube.post(CM, configmap("c1")).status_code == 201


def test_a_fault_that_skips_the_first_matching_requests(kube: Kube) -> None:
    """`skip: 2` lets the first two matching requests through, then fails the next `times` ones; requests that do
    not match do not count."""
    kube.create(CM, configmap("c1"))
    rule = add_fault(kube, code=404, method="GET", path="/configmaps/c1$", times=1, skip=2)
    assert (rule["skip"], rule["matched"]) == (2, 0)
    assert kube.ok(kube.get(CM))["items"]  # not matching: skip stays 2
    assert [kube.get(f"{CM}/c1").status_code for _ in range(4)] == [200, 200, 404, 200]
    assert [(r["skip"], r["matched"], r["times"]) for r in kube.ok(kube.get(FAULTS))["rules"]] == [(0, 1, 0)]


def test_invalid_fault_rules_and_unknown_admin_endpoints(kube: Kube) -> None:
    """Malformed rules → 400 BadRequest; unknown admin endpoints → 404; neither installs anything."""
    for rule in ({}, {"code": 200}, {"code": "x"}, {"code": 500, "path": "(unclosed"}, {"code": 500, "skip": -1}):
        response = kube.post(FAULTS, rule)
        assert response.status_code == 400, (rule, response.text)
        assert response.json()["reason"] == "BadRequest"
    assert kube.get("/__emulator/nothing").status_code == 404
    assert kube.ok(kube.get(FAULTS)) == {"rules": []}


def test_kubectl_retries_a_429_with_retry_after(kubectl: CLI, kube: Kube) -> None:
    """Real kubectl (client-go) honours `Retry-After` on a 429 and succeeds once the fault is used up."""
    kube.create(CM, configmap("c1"))
    add_fault(kube, code=429, method="GET", path="/namespaces/default/configmaps$", times=1)
    result = kubectl.run("get", "configmaps", "-o", "name")
    assert result.stdout.split() == ["configmap/c1"]
    assert [r["matched"] for r in kube.ok(kube.get(FAULTS))["rules"]] == [1]


def test_kubernetes_client_sees_injected_status(emulator: EmbeddedServer, kube: Kube) -> None:
    """The kubernetes client raises ApiException with the injected code; a 503 with Retry-After it retries itself."""
    add_fault(kube, code=500, path="/configmaps", times=1)
    client = kubernetes.config.new_client_from_config(config_file=str(emulator.kubeconfig))  # type: ignore[attr-defined]
    with client:
        api = kubernetes.client.CoreV1Api(client)
        with pytest.raises(kubernetes.client.ApiException) as caught:
            api.list_namespaced_config_map("default")
        assert caught.value.status == 500
        assert json.loads(caught.value.body)["reason"] == "InternalError"
        assert api.list_namespaced_config_map("default").items == []
        # urllib3 under the client honours Retry-After on a 503, as it does against a real apiserver.
        kube.ok(kube.delete(FAULTS))
        add_fault(kube, code=503, path="/configmaps", times=1)
        assert api.list_namespaced_config_map("default").items == []
        assert [r["matched"] for r in kube.ok(kube.get(FAULTS))["rules"]] == [1]


def test_python_fault_hook(emulator: EmbeddedServer, kube: Kube) -> None:
    """`emulator.faults.add(code, method, path, times)` behaves as the admin API does and shows up in its listing."""
    rule = emulator.faults.add(500, "POST", "/configmaps$", times=1)
    response = kube.post(CM, configmap("c1"))
    assert response.status_code == 500 and response.json()["reason"] == "InternalError"
    assert kube.post(CM, configmap("c1")).status_code == 201
    assert rule.matched == 1 and rule.times == 0
    assert [r["matched"] for r in kube.ok(kube.get(FAULTS))["rules"]] == [1]
    emulator.faults.clear()
    assert kube.ok(kube.get(FAULTS)) == {"rules": []}
    with pytest.raises(ValueError):
        emulator.faults.add(302)


# ---------------------------------------------------------------------------------------------- watch faults


def _open_watches(emulator: EmbeddedServer, kube: Kube, count: int) -> list[WatchStream]:
    kube.create(CM, configmap("c1"))
    watches = [WatchStream(emulator.url, CM) for _ in range(count)]
    for watch in watches:
        assert summary([watch.next()]) == [("ADDED", "c1")]
    eventually(lambda: kube.ok(kube.get("/__emulator/stats"))["watches"], lambda n: n == count, describe="open watches")
    return watches


@pytest.mark.parametrize("via", ["admin-api", "python-hook"])
def test_expire_sends_410_to_every_open_watch(emulator: EmbeddedServer, kube: Kube, via: str) -> None:
    """Expiring watches: each open watch gets one ERROR 410 Expired and ends; resuming from its RV is 410 as well."""
    rv = kube.ok(kube.get(CM))["metadata"]["resourceVersion"]  # older than what the watches below have seen
    watches = _open_watches(emulator, kube, 2)
    try:
        if via == "admin-api":
            assert kube.ok(kube.request("POST", "/__emulator/watches/expire")) == {"expired": 2}
        else:
            assert emulator.call(emulator.http.expire_watches) == 2
        for watch in watches:
            events = watch.rest(timeout=5)
            assert len(events) == 1, events
            status = events[0]["object"]
            assert events[0]["type"] == "ERROR"
            assert (status["kind"], status["code"], status["reason"]) == ("Status", 410, "Expired")
            assert status["message"].startswith("too old resource version")
        kube.create(CM, configmap("c2"))
        with WatchStream(emulator.url, CM, {"resourceVersion": rv}) as resumed:
            assert [(e["type"], e["object"]["code"]) for e in resumed.rest(timeout=5)] == [("ERROR", 410)]
        with WatchStream(emulator.url, CM) as fresh:  # a re-list + watch, as informers do, works
            assert sorted(n for _, n in summary(fresh.take(2))) == ["c1", "c2"]
    finally:
        for watch in watches:
            watch.close()


@pytest.mark.parametrize("via", ["admin-api", "python-hook"])
def test_drop_ends_open_streams_without_error(emulator: EmbeddedServer, kube: Kube, via: str) -> None:
    """Dropping watches ends every open stream (no ERROR event); the server keeps serving and new watches work."""
    watches = _open_watches(emulator, kube, 3)
    try:
        if via == "admin-api":
            assert kube.ok(kube.request("POST", "/__emulator/watches/drop")) == {"dropped": 3}
        else:
            assert emulator.call(emulator.http.drop_watches) == 3
        for watch in watches:
            assert watch.rest(timeout=5) == []  # ended, and nothing (no ERROR) before the end
        eventually(lambda: kube.ok(kube.get("/__emulator/stats"))["watches"], lambda n: n == 0, describe="no watches")
        with WatchStream(emulator.url, CM) as fresh:
            assert summary([fresh.next()]) == [("ADDED", "c1")]
            kube.create(CM, configmap("c2"))
            assert summary([fresh.next()]) == [("ADDED", "c2")]
    finally:
        for watch in watches:
            watch.close()


@pytest.mark.parametrize("via", ["admin-api", "python-hook"])
def test_a_watch_lag_holds_back_one_resources_events(emulator: EmbeddedServer, kube: Kube, via: str) -> None:
    """A lag on configmaps: their watch gets each change about that late, in order, while a watch of another
    resource (namespaces) gets its change at once; a lag of 0 (or clearing the faults) ends it."""
    lagged, prompt = watches = [*_open_watches(emulator, kube, 1), WatchStream(emulator.url, "/api/v1/namespaces")]
    try:
        prompt.take(4)  # the 4 built-in namespaces
        if via == "admin-api":
            body = kube.ok(kube.post("/__emulator/watches/lag", {"resource": "configmaps", "seconds": 1.5}))
            assert body == {"lags": {"configmaps": 1.5}}
        else:
            emulator.call(lambda: emulator.faults.lag_watches("configmaps", 1.5))
        start = time.monotonic()
        kube.create(CM, configmap("c2"))
        kube.create(CM, configmap("c3"))
        kube.create("/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "lagless"}})
        assert summary([prompt.next()]) == [("ADDED", "lagless")]
        assert time.monotonic() - start < 1.0
        assert summary(lagged.take(2)) == [("ADDED", "c2"), ("ADDED", "c3")]
        assert lagged.arrivals[-2] - start >= 1.5
        if via == "admin-api":
            assert kube.ok(kube.post("/__emulator/watches/lag", {"resource": "configmaps", "seconds": 0}))
        else:
            emulator.call(emulator.faults.clear)
        assert kube.ok(kube.get("/__emulator/watches/lag")) == {"lags": {}}
        start = time.monotonic()
        kube.create(CM, configmap("c4"))
        assert summary([lagged.next()]) == [("ADDED", "c4")]
        assert time.monotonic() - start < 1.0
    finally:
        for watch in watches:
            watch.close()


@pytest.mark.parametrize(
    "body", [{"seconds": 1}, {"resource": "pods"}, {"resource": "pods", "seconds": 61}, {"resource": "", "seconds": 1}]
)
def test_an_invalid_watch_lag_is_a_400(kube: Kube, body: dict[str, object]) -> None:
    answer = kube.ok(kube.post("/__emulator/watches/lag", body), 400)
    assert "watch lag" in answer["message"], answer


# ---------------------------------------------------------------------------------------------- stats


def test_stats_report_requests_objects_and_watches(emulator: EmbeddedServer, kube: Kube) -> None:
    """`GET /__emulator/stats`: current RV, per-resource request counts by verb, object counts, open watches."""
    before = kube.ok(kube.get("/__emulator/stats"))
    assert before["watches"] == 0
    assert before["objects"]["namespaces"] == 4  # default, kube-system, kube-public, kube-node-lease
    for i in range(3):
        kube.create(CM, configmap(f"c{i}"))
    kube.ok(kube.get(CM))
    kube.ok(kube.get(f"{CM}/c0"))
    kube.ok(kube.patch(f"{CM}/c0", {"data": {"k": "v"}}))
    kube.ok(kube.delete(f"{CM}/c1"))
    with WatchStream(emulator.url, CM) as watch:
        watch.take(2)
        stats = eventually(
            lambda: kube.ok(kube.get("/__emulator/stats")), lambda s: s["watches"] == 1, describe="one watch"
        )
    assert stats["requests"]["configmaps"] == {"create": 3, "list": 1, "get": 1, "patch": 1, "delete": 1, "watch": 1}
    assert stats["objects"]["configmaps"] == 2
    assert stats["resourceVersion"] == int(kube.ok(kube.get(CM))["metadata"]["resourceVersion"])
    assert stats["resourceVersion"] == before["resourceVersion"] + 5
