"""`dops ui`'s HTTP API on the embedded control plane with the real operator and worker processes.

Covers: the table (filters, counts, pages) from the shared watch, server-sent change events, one
operation's detail and streamed log (pod, then archive), every action through the service with the CLI's
rules, the token and Host guards, read-only mode, and the API server going away (the fault twin).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from tests.helpers import eventually
from tests.integration.operator_env import OperatorEnv

from .conftest import RunningUi, ui_server

pytestmark = [pytest.mark.kopf]

JSON = dict[str, Any]


def queue(env: OperatorEnv, namespace: str, operator: str, params: JSON, label: str | None = None) -> str:
    doc = env.service(namespace).queue_operation(operator, label=label, context={"request_params": {"params": params}})
    assert doc.id is not None
    return doc.id


def table(ui: RunningUi, **params: Any) -> JSON:
    response = requests.get(ui.url + "api/operations", params=params, timeout=10)
    assert response.status_code == 200, response.text
    body: JSON = response.json()
    return body


def post(
    ui: RunningUi, namespace: str, name: str, action: str, body: JSON | None = None, token: str | None = None
) -> requests.Response:
    headers = {"X-Dops-Token": ui.token if token is None else token}
    return requests.post(
        f"{ui.url}api/operations/{namespace}/{name}/{action}", json=body or {}, headers=headers, timeout=30
    )


def sse(url: str, timeout: float = 30.0) -> Iterator[tuple[str, Any]]:
    """(event, data) of a server-sent-event stream."""
    with requests.get(url, stream=True, timeout=(5, timeout)) as response:
        assert response.status_code == 200, response.text
        event = ""
        for raw in response.iter_lines(decode_unicode=True):
            if raw.startswith("event: "):
                event = raw[len("event: ") :]
            elif raw.startswith("data: "):
                yield event, json.loads(raw[len("data: ") :])


@pytest.fixture
def ui(operator_env: OperatorEnv, namespace: str) -> Iterator[RunningUi]:
    with ui_server(operator_env, namespace) as running:
        yield running


def test_table_filters_counts_and_pages_from_the_watch(
    operator_env: OperatorEnv, namespace: str, ui: RunningUi
) -> None:
    done = [
        queue(operator_env, namespace, "@dops/examples/echo", {}, label=f"{w} run")
        for w in ("alpha", "bravo", "charlie")
    ]
    failed = queue(operator_env, namespace, "@dops/examples/fail", {"message": "boom"}, label="doomed")
    for name in done:
        operator_env.wait_state(namespace, name, "completed")
    operator_env.wait_state(namespace, failed, "failed")
    body = eventually(lambda: table(ui), lambda b: b["counts"]["completed"] == 3 and b["counts"]["failed"] == 1)
    requests_before = ui.server.cache.api_requests
    assert body["total"] == 4
    assert table(ui, state="failed")["items"][0]["name"] == failed
    assert {r["name"] for r in table(ui, operator="@dops/examples/echo")["items"]} == set(done)
    assert [r["name"] for r in table(ui, label="DOOM")["items"]] == [failed]  # label: case-insensitive contains
    assert [r["label"] for r in table(ui, q="bravo run")["items"]] == ["bravo run"]  # every word must match
    paged = table(ui, size=3, page=2)
    assert (paged["page"], paged["pages"], len(paged["items"])) == (2, 2, 1)
    assert table(ui, state="completed")["counts"]["failed"] == 1  # counts ignore the state filter
    bad = requests.get(ui.url + "api/operations", params={"state": "nope"}, timeout=10)
    assert bad.status_code == 400 and "unknown state" in bad.json()["error"]
    assert ui.server.cache.api_requests == requests_before  # every table request was answered from the watch


def test_changes_are_pushed_as_server_sent_events(operator_env: OperatorEnv, namespace: str, ui: RunningUi) -> None:
    events = sse(ui.url + "api/stream")
    assert next(events)[0] == "hello"
    name = queue(operator_env, namespace, "@dops/examples/echo", {})
    for kind, data in events:
        if kind == "change" and f"{namespace}/{name}" in data["changed"]:
            break
    events.close()  # type: ignore[attr-defined]


def test_operation_detail_and_live_log_then_archive(operator_env: OperatorEnv, namespace: str, ui: RunningUi) -> None:
    name = queue(operator_env, namespace, "@dops/examples/count", {"n": 5, "delay": 0.3}, label="count five")
    operator_env.wait_state(namespace, name, "running")
    lines: list[str] = []
    for kind, data in sse(f"{ui.url}api/operations/{namespace}/{name}/log", timeout=60):
        if kind == "lines":
            lines.extend(data)
        if kind == "end":
            break
    assert any("count: 5/5" in line for line in lines), lines
    operator_env.wait_processed(namespace, name)
    detail = eventually(
        lambda: requests.get(f"{ui.url}api/operations/{namespace}/{name}?events=1", timeout=10).json(),
        lambda d: (d["resource"].get("status") or {}).get("logPath"),
    )
    phases = {t["phase"]: t for t in detail["timeline"]}
    assert list(phases) == ["queued", "scheduled", "running", "completed"]
    assert all(phases[p]["at"] for p in phases) and phases["running"]["seconds"] is not None
    assert detail["row"]["progress"] == 1.0
    assert detail["events"] is not None
    pod = detail["resource"]["status"]["podName"]
    operator_env.kube.request(
        "DELETE", f"/api/v1/namespaces/{namespace}/pods/{pod}", params={"gracePeriodSeconds": "0"}
    )
    eventually(lambda: operator_env.pods_of(namespace, detail["resource"]["status"]["jobName"]), lambda p: not p)
    # the pod is gone: the log view reads the archive the operator wrote
    archived = [
        data for kind, data in sse(f"{ui.url}api/operations/{namespace}/{name}/log") if kind in ("lines", "source")
    ]
    assert str(archived[0]).startswith("archived log"), archived
    assert any("count: 5/5" in line for d in archived[1:] for line in d), archived
    missing = requests.get(f"{ui.url}api/operations/{namespace}/nope", timeout=10)
    assert missing.status_code == 404 and "not found" in missing.json()["error"]


def test_actions_follow_the_cli_rules(operator_env: OperatorEnv, namespace: str, ui: RunningUi) -> None:
    sleeper = queue(operator_env, namespace, "@dops/examples/sleep", {"seconds": 60}, label="nap")
    operator_env.wait_state(namespace, sleeper, "running")
    refused = post(ui, namespace, sleeper, "archive")
    assert refused.status_code == 409 and "only completed or failed" in refused.json()["error"]
    assert post(ui, namespace, sleeper, "delete").status_code == 409  # running: needs the page's confirmation
    assert post(ui, namespace, sleeper, "pin").status_code == 200
    assert post(ui, namespace, sleeper, "label", {"label": "renamed"}).json()["message"].endswith('"renamed"')
    assert post(ui, namespace, sleeper, "label", {"label": " "}).status_code == 400
    cancelled = post(ui, namespace, sleeper, "cancel")
    assert cancelled.status_code == 200, cancelled.text
    obj = operator_env.wait_state(namespace, sleeper, "failed")
    assert obj["spec"]["pinned"] is True and obj["spec"]["label"] == "renamed"
    again = post(ui, namespace, sleeper, "cancel")
    assert again.status_code == 409 and "already failed" in again.json()["error"]
    rerun = post(ui, namespace, sleeper, "rerun")
    assert rerun.status_code == 200
    new = rerun.json()["name"]
    assert new != sleeper and operator_env.get_op(namespace, new)["spec"]["label"] == "renamed"
    assert post(ui, namespace, new, "cancel").status_code == 200
    assert post(ui, namespace, sleeper, "archive").status_code == 200
    assert eventually(lambda: table(ui)["total"], lambda n: n == 1)  # archived ones are hidden
    assert table(ui, archived="1")["total"] == 2
    assert post(ui, namespace, sleeper, "unpin").status_code == 200
    assert post(ui, namespace, sleeper, "delete").status_code == 200
    eventually(lambda: table(ui, archived="1")["total"], lambda n: n == 1)
    assert post(ui, namespace, sleeper, "delete").status_code == 404
    assert post(ui, namespace, new, "explode").status_code == 400


def test_actions_need_the_page_token_and_this_host(operator_env: OperatorEnv, namespace: str, ui: RunningUi) -> None:
    name = queue(operator_env, namespace, "@dops/examples/echo", {})
    assert post(ui, namespace, name, "pin", token="").status_code == 403
    assert post(ui, namespace, name, "pin", token="guess").status_code == 403
    assert operator_env.get_op(namespace, name)["spec"].get("pinned") in (None, False)
    rebinding = requests.get(ui.url + "api/operations", headers={"Host": "evil.example:80"}, timeout=10)
    assert rebinding.status_code == 403
    page = requests.get(ui.url, timeout=10).text
    assert ui.token in page and "cdn" not in page.lower()
    assert post(ui, "elsewhere", name, "pin").status_code == 403  # another namespace than the one served


def test_read_only_hides_and_refuses_actions(operator_env: OperatorEnv, namespace: str) -> None:
    name = queue(operator_env, namespace, "@dops/examples/echo", {})
    with ui_server(operator_env, namespace, read_only=True) as ui:
        page = requests.get(ui.url, timeout=10).text
        assert ui.token not in page and '"readOnly": true' in page
        answer = post(ui, namespace, name, "pin")
        assert answer.status_code == 403 and "read-only" in answer.json()["error"]
    assert operator_env.get_op(namespace, name)["spec"].get("pinned") in (None, False)


def test_targets_show_limits_and_counts(operator_env: OperatorEnv, namespace: str, ui: RunningUi) -> None:
    operator_env.create(
        namespace,
        {
            "apiVersion": "dops.io/v1alpha1",
            "kind": "DelegationTarget",
            "metadata": {"name": "narrow"},
            "spec": {"image": "ghcr.io/dops-dev/dops:0.1.0", "maxConcurrent": 1},
        },
    )
    first = operator_env.service(namespace).queue_operation(
        "@dops/examples/sleep", delegation_target="narrow", context={"request_params": {"params": {"seconds": 30}}}
    )
    second = operator_env.service(namespace).queue_operation(
        "@dops/examples/sleep", delegation_target="narrow", context={"request_params": {"params": {"seconds": 30}}}
    )
    assert first.id and second.id
    operator_env.wait_state(namespace, first.id, "running")

    def narrow() -> JSON:
        items = requests.get(ui.url + "api/targets", timeout=10).json()["items"]
        return next(t for t in items if t["name"] == "narrow")

    target = eventually(narrow, lambda t: t["counts"]["running"] == 1 and t["counts"]["queued"] == 1)
    assert target["maxConcurrent"] == 1 and target["defined"]
    for doc_id in (first.id, second.id):
        operator_env.service(namespace).set_failed(doc_id, required_state=None)


def test_the_dashboard_says_when_the_api_server_fails_and_recovers(operator_env: OperatorEnv, namespace: str) -> None:
    """Fault twin of the live table: a watch the API refuses keeps the last rows, says why, and recovers."""
    server = operator_env.server
    with ui_server(operator_env, namespace) as ui:
        queue(operator_env, namespace, "@dops/examples/echo", {})
        eventually(lambda: table(ui)["total"], lambda n: n == 1)
        path = rf"/namespaces/{namespace}/delegatedoperations$"
        rule = server.call(lambda: server.faults.add(503, "GET", path, times=-1, message="injected outage"))
        try:
            server.call(server.http.drop_watches)  # the dashboard's watch ends; resuming it now fails
            body = eventually(lambda: table(ui), lambda b: bool(b["error"]), timeout=30)
            assert "injected outage" in body["error"]
            assert body["total"] == 1  # the last known state is still shown
        finally:
            server.call(lambda: server.faults.rules.remove(rule))
        second = queue(operator_env, namespace, "@dops/examples/echo", {})
        body = eventually(lambda: table(ui), lambda b: b["error"] is None and b["total"] == 2, timeout=30)
        assert second in {r["name"] for r in body["items"]}


def test_a_quiet_followed_log_reconnects_without_repeating_and_is_freed_when_its_viewer_leaves(
    operator_env: OperatorEnv, namespace: str, ui: RunningUi, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A blocked log read cannot be interrupted, so a quiet follow reconnects: without repeating lines while
    the viewer stays, and ending its thread (and API stream) once the viewer has gone."""
    monkeypatch.setattr("dops.ui.server.LOG_IDLE_SECONDS", 1.0)
    server = operator_env.server

    def log_reads() -> int:
        return int(server.call(lambda: server.api.request_counts.get(("get", "pods/log"), 0)))

    name = queue(operator_env, namespace, "@dops/examples/sleep", {"seconds": 60})
    operator_env.wait_state(namespace, name, "running")
    events = sse(f"{ui.url}api/operations/{namespace}/{name}/log", timeout=60)
    lines: list[str] = []
    for kind, data in events:
        if kind == "lines":
            lines.extend(data)
        if any("sleep: 60" in line for line in lines):
            break
    reads = log_reads()
    eventually(log_reads, lambda n: n >= reads + 2, timeout=60, describe="the quiet log to be reconnected twice")
    operator_env.service(namespace).set_failed(name, required_state=None)  # the pod is stopped: its log ends
    for kind, data in events:
        if kind == "lines":
            lines.extend(data)
        if kind == "end":
            break
    assert len(lines) == len(set(lines)), lines  # nothing shown twice across reconnects

    # The viewer leaves once it has seen the whole log, so no later line can reveal that it left: the server
    # must notice the closed connection itself (the pod sleeps far longer than the wait below).
    other = queue(operator_env, namespace, "@dops/examples/sleep", {"seconds": 600})
    operator_env.wait_state(namespace, other, "running")
    viewer = sse(f"{ui.url}api/operations/{namespace}/{other}/log", timeout=60)
    seen: list[str] = []
    for kind, data in viewer:
        if kind == "lines":
            seen.extend(data)
        if any("sleep: 600" in line for line in seen):
            break
    viewer.close()  # type: ignore[attr-defined]

    def log_threads() -> list[str]:
        return [t.name for t in threading.enumerate() if t.name == f"dops-ui-log-{other}"]

    eventually(log_threads, lambda names: not names, timeout=60, describe="the log thread to end")
    operator_env.service(namespace).set_failed(other, required_state=None)


def test_a_followed_log_whose_pod_vanishes_between_reconnects_goes_on_in_the_archive_without_repeating(
    operator_env: OperatorEnv, namespace: str, ui: RunningUi, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A quiet follow reconnects; when its pod is gone at the reconnect (404) after some lines were shown, the
    view goes on in the archive (the pod's log from its start) after those lines instead of showing them again."""
    monkeypatch.setattr("dops.ui.server.LOG_IDLE_SECONDS", 1.0)
    server = operator_env.server
    name = queue(operator_env, namespace, "@dops/examples/sleep", {"seconds": 600})
    operator_env.wait_state(namespace, name, "running")
    pod = operator_env.service(namespace).get(name).pod_name
    events = sse(f"{ui.url}api/operations/{namespace}/{name}/log", timeout=60)
    lines: list[str] = []
    for kind, data in events:
        if kind == "lines":
            lines.extend(data)
        if any("sleep: 600" in line for line in lines):
            break
    # The next reconnect of the quiet follow (nothing else reads this log now) finds the pod gone.
    path = rf"/namespaces/{namespace}/pods/{pod}/log$"
    rule = server.call(lambda: server.faults.add(404, "GET", path, times=1, message=f'pods "{pod}" not found'))
    eventually(lambda: server.call(lambda: rule.matched), lambda n: n == 1, timeout=60, describe="the 404")
    operator_env.service(namespace).set_failed(name, required_state=None)  # the operator archives the log
    sources: list[str] = []
    for kind, data in events:
        if kind == "lines":
            lines.extend(data)
        if kind == "source":
            sources.append(data)
        if kind == "end":
            break
    assert any(str(s).startswith("archived log") for s in sources), sources
    assert len(lines) == len(set(lines)), lines  # what the follow showed is not shown again from the archive
    assert any("sleep: 600" in line for line in lines), lines


def test_all_namespaces(operator_env: OperatorEnv, namespace: str) -> None:
    other = operator_env.new_namespace()
    mine = queue(operator_env, namespace, "@dops/examples/echo", {})
    theirs = queue(operator_env, other, "@dops/examples/echo", {})
    with ui_server(operator_env, None) as ui:
        body = eventually(lambda: table(ui, namespace=other), lambda b: b["total"] == 1)
        assert body["items"][0]["name"] == theirs
        assert {namespace, other} <= set(table(ui, facets="1")["facets"]["namespaces"])
        assert post(ui, namespace, mine, "pin").status_code == 200  # actions in any namespace served
        assert post(ui, other, theirs, "pin").status_code == 200
