"""Conformance: selectors, paginated lists and Tables (API-surface spec §9, statements 31-36).

Covered:
- 31: label selectors `=, ==, !=, in, notin, exists, !exists` with Kubernetes semantics (`!=`/`notin` match objects
  lacking the key), over HTTP, the kubernetes client and pykube (its `a in (x,y)` and `k != v` forms).
- 32: field selectors: `metadata.name`/`metadata.namespace` on core kinds, namespaces and CRs; `involvedObject.*` on
  events (also through the kubernetes client); `status.phase` on pods; CRD `selectableFields`; unsupported → 400
  with the message of the kind's field-label conversion (`field label not supported: f` for kinds with their own,
  `"f" is not a known field selector: …` for the others, `field label "f" not supported for Job`).
- 33: `limit`/`continue` pagination (also with a selector, the kubernetes client and `kubectl --chunk-size`).
- 34: Table output: `Name` first then the CRD's printer columns; `Age` when no columns are defined; `includeObject`
  None/Metadata/Object; a single-object GET is a one-row Table. `date` cells are HumanDuration computed by the
  server: exact values are checked on the embedded plane with a shifted server clock, the shape on both.
- 35: real `kubectl get widgets` prints the printer-column headers; `kubectl get widgets -w` prints one row per change
  under a single header.
- 36: the Jobs Table (`Name, Status, Completions, Duration, Age` + wide columns) for Jobs whose status is written by
  hand through `/status` (`spec.managedBy` another controller, so no Job controller writes it too): Complete,
  Failed, Running; real `kubectl get jobs` shows the same.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import kubernetes
import pykube
import pytest

from dops.emulator import EmbeddedServer, ServerSettings
from dops.emulator.clock import Clock, rfc3339
from tests.builders import WidgetCRD, configmap, event, job, namespace, pod, widget
from tests.emulator.kube_http import CM, TABLE_ACCEPT, WIDGETS, Kube, LineReader, names
from tests.helpers import CLI, find_binary
from tests.planes import SYSTEM_OBJECT_NAMES, Plane, made_by_test

JSON = dict[str, Any]
pytestmark = pytest.mark.both_planes
JOBS = "/apis/batch/v1/namespaces/default/jobs"
DEPLOYMENTS = "/apis/apps/v1/namespaces/default/deployments"
PODS = "/api/v1/namespaces/default/pods"
EVENTS = "/api/v1/namespaces/default/events"


@pytest.fixture
def kube(plane: Plane) -> Iterator[Kube]:
    client = Kube(plane)
    yield client
    client.close()


def core_client(plane: Plane) -> kubernetes.client.ApiClient:
    return kubernetes.config.new_client_from_config(config_file=str(plane.kubeconfig))


def unscheduled(body: JSON) -> JSON:
    """`body` (a pod) for a scheduler that does not exist: nothing binds it or records FailedScheduling events."""
    body["spec"]["schedulerName"] = "no-such-scheduler"
    return body


# ---------------------------------------------------------------------------------------------- 31

LABELLED = {
    "a": {"env": "prod", "tier": "web"},
    "b": {"env": "dev", "tier": "web"},
    "c": {"env": "test"},
    "d": {},
}


@pytest.fixture
def labelled(kube: Kube) -> Kube:
    for name, labels in LABELLED.items():
        kube.create(CM, configmap(name, labels=labels or None))
    return kube


LABEL_CASES = [
    ("env=prod", ["a"]),
    ("env==prod", ["a"]),
    ("env!=prod", ["b", "c", "d"]),  # matches objects lacking the key
    ("env != prod", ["b", "c", "d"]),  # pykube's spacing
    ("env in (prod,dev)", ["a", "b"]),
    ("env in (prod, dev)", ["a", "b"]),
    ("env notin (prod,dev)", ["c", "d"]),  # matches objects lacking the key
    ("tier", ["a", "b"]),
    ("!tier", ["c", "d"]),
    ("tier=web,env!=prod", ["b"]),
    ("env,!tier", ["c"]),
    ("env=nothing", []),
    ("", ["a", "b", "c", "d"]),
]


@pytest.mark.parametrize(("selector", "expected"), LABEL_CASES)
def test_label_selector_grammar_over_http(labelled: Kube, selector: str, expected: list[str]) -> None:
    """S9 / statement 31: each operator of the label-selector grammar selects what Kubernetes selects."""
    listed = labelled.ok(labelled.get(CM, params={"labelSelector": selector}))
    assert names(made_by_test(listed["items"])) == expected


def test_label_selectors_from_kubernetes_client_and_pykube(plane: Plane, labelled: Kube) -> None:
    """S9 / statement 31: the kubernetes client's strings and pykube's dict forms (`a in (x,y)`, `k != v`) work."""
    with core_client(plane) as client:
        api = kubernetes.client.CoreV1Api(client)
        got = api.list_namespaced_config_map("default", label_selector="env notin (prod),tier")
        assert [i.metadata.name for i in got.items] == ["b"]

    http = pykube.HTTPClient(pykube.KubeConfig.from_file(str(plane.kubeconfig)))
    query = pykube.ConfigMap.objects(http, namespace="default")

    def selected(selector: dict[str, Any]) -> list[str]:
        return sorted(o.name for o in query.filter(selector=selector) if o.name not in SYSTEM_OBJECT_NAMES)

    assert selected({"env__in": {"prod", "dev"}}) == ["a", "b"]
    assert selected({"env__neq": "prod"}) == ["b", "c", "d"]
    assert selected({"env__notin": {"prod", "test"}}) == ["b", "d"]
    assert selected({"tier": "web", "env__neq": "dev"}) == ["a"]


# ---------------------------------------------------------------------------------------------- 32


def test_metadata_field_selectors_work_on_all_kinds(kube: Kube) -> None:
    """S9 / statement 32: metadata.name and metadata.namespace select on core kinds, cluster kinds and CRs."""
    kube.create("/api/v1/namespaces", namespace("other"))
    for name in ("a", "b"):
        kube.create(CM, configmap(name))
    kube.create("/api/v1/namespaces/other/configmaps", configmap("a", namespace="other"))

    def select(path: str, selector: str) -> list[tuple[str, str]]:
        items = made_by_test(kube.ok(kube.get(path, params={"fieldSelector": selector}))["items"])
        return [(i["metadata"].get("namespace", ""), i["metadata"]["name"]) for i in items]

    assert select(CM, "metadata.name=a") == [("default", "a")]
    assert select(CM, "metadata.name!=a") == [("default", "b")]
    assert select("/api/v1/configmaps", "metadata.name==a") == [("default", "a"), ("other", "a")]
    assert select("/api/v1/configmaps", "metadata.namespace=other") == [("other", "a")]
    assert select("/api/v1/configmaps", "metadata.namespace!=other,metadata.name=b") == [("default", "b")]
    assert select("/api/v1/namespaces", "metadata.name=other") == [("", "other")]

    kube.install_crd()
    kube.create(WIDGETS, widget("w1", size=1))
    kube.create(WIDGETS, widget("w2", size=2, color="blue"))
    assert select(WIDGETS, "metadata.name=w2") == [("default", "w2")]
    assert select("/apis/example.com/v1/widgets", "metadata.namespace=default") == [
        ("default", "w1"),
        ("default", "w2"),
    ]
    # selectableFields from the CRD version (spec.color; w1's color comes from the schema default).
    assert select(WIDGETS, "spec.color=blue") == [("default", "w2")]
    assert select(WIDGETS, "spec.color!=blue") == [("default", "w1")]


def test_involved_object_field_selectors_on_events(plane: Plane, kube: Kube) -> None:
    """S9 / statement 32: involvedObject.{uid,name,kind,namespace} and reason/type select events (kopf lists by uid)."""
    cm = kube.create(CM, configmap("target"))
    other = kube.create(PODS, unscheduled(pod("p1")))
    kube.create(EVENTS, event("e1", cm, reason="Created"))
    kube.create(EVENTS, event("e2", cm, reason="Updated", type="Warning"))
    kube.create(EVENTS, event("e3", other, reason="Created"))

    def select(selector: str) -> list[str]:
        # Only the events this test made: a real control plane posts its own in `default` at any time
        # (e.g. about the `kubernetes` Service), which the selectors may rightly match.
        found = names(kube.ok(kube.get(EVENTS, params={"fieldSelector": selector}))["items"])
        return [name for name in found if name in {"e1", "e2", "e3"}]

    assert select(f"involvedObject.uid={cm['metadata']['uid']}") == ["e1", "e2"]
    assert select("involvedObject.name=p1") == ["e3"]
    assert select("involvedObject.kind=ConfigMap,reason=Created") == ["e1"]
    assert select("involvedObject.namespace=default,type=Warning") == ["e2"]
    assert select("involvedObject.kind!=ConfigMap") == ["e3"]

    with core_client(plane) as client:
        api = kubernetes.client.CoreV1Api(client)
        got = api.list_namespaced_event("default", field_selector=f"involvedObject.uid={other['metadata']['uid']}")
        assert [e.metadata.name for e in got.items] == ["e3"]


def test_status_phase_field_selector_on_pods(kube: Kube) -> None:
    """S9 / statement 32: status.phase selects pods (phases written through /status, as a kubelet would)."""
    for name in ("p1", "p2", "p3"):
        kube.create(PODS, pod(name))
    kube.ok(kube.patch(f"{PODS}/p2/status", {"status": {"phase": "Running"}}))
    kube.ok(kube.patch(f"{PODS}/p3/status", {"status": {"phase": "Succeeded"}}))

    def select(selector: str) -> list[str]:
        return names(kube.ok(kube.get(PODS, params={"fieldSelector": selector}))["items"])

    assert select("status.phase=Pending") == ["p1"]
    assert select("status.phase=Running") == ["p2"]
    assert select("status.phase!=Running") == ["p1", "p3"]
    assert select("status.phase!=Succeeded,status.phase!=Failed") == ["p1", "p2"]


DEFAULT_FIELDS = 'is not a known field selector: only "metadata.name", "metadata.namespace"'


@pytest.mark.parametrize(
    ("path", "selector", "message"),
    [
        # Kinds without a field-label conversion of their own: runtime.DefaultMetaV1FieldSelectorConversion.
        (CM, "data.x=1", f'"data.x" {DEFAULT_FIELDS}'),
        (DEPLOYMENTS, "spec.replicas=1", f'"spec.replicas" {DEFAULT_FIELDS}'),
        # Kinds with their own conversion, and custom resources.
        (PODS, "spec.containers=x", "field label not supported: spec.containers"),
        (WIDGETS, "spec.size=1", "field label not supported: spec.size"),
        (EVENTS, "involvedObject.nothing=x", "field label not supported: involvedObject.nothing"),
        ("/api/v1/namespaces", "metadata.namespace=x", "field label not supported: metadata.namespace"),
        (JOBS, "spec.parallelism=1", 'field label "spec.parallelism" not supported for Job'),
        # The first unsupported field in sorted order is reported.
        (CM, "zeta=1,metadata.name=a,data.y=2", f'"data.y" {DEFAULT_FIELDS}'),
    ],
)
def test_unsupported_field_selector_is_bad_request(kube: Kube, path: str, selector: str, message: str) -> None:
    """S9 / statement 32: a field that is not selectable for the kind → 400 with the kind's conversion message."""
    kube.install_crd()
    response = kube.get(path, params={"fieldSelector": selector})
    assert response.status_code == 400
    status = response.json()
    assert (status["kind"], status["reason"], status["code"]) == ("Status", "BadRequest", 400)
    assert status["message"] == message


# ---------------------------------------------------------------------------------------------- 33


def test_limit_and_continue_page_through_everything(plane: Plane, kube: Kube) -> None:
    """S9 / statement 33: limit returns `continue`; following it yields the rest; the last page has none."""
    expected = [f"cm-{i}" for i in range(5)]
    for name in expected:
        kube.create(CM, configmap(name, labels={"app": "x"}))
    kube.create(CM, configmap("unlabelled"))

    seen: list[str] = []
    params: dict[str, str] = {"limit": "2", "labelSelector": "app=x"}
    pages = []
    while True:
        page = kube.ok(kube.get(CM, params=params))
        pages.append(page)
        seen += names(page["items"])
        token = page["metadata"].get("continue")
        if not token:
            break
        params = {"limit": "2", "labelSelector": "app=x", "continue": token}
    assert [len(p["items"]) for p in pages] == [2, 2, 1]
    assert seen == expected
    assert all(p["metadata"]["resourceVersion"].isdigit() for p in pages)

    everything = kube.ok(kube.get(CM))["items"]  # a real cluster also has its kube-root-ca.crt here
    assert names(made_by_test(everything)) == [*expected, "unlabelled"]
    first = kube.ok(kube.get(CM, params={"limit": "1"}))
    assert len(first["items"]) == 1 and first["metadata"]["continue"]
    assert first["metadata"]["remainingItemCount"] == len(everything) - 1  # only meaningful without selectors

    with core_client(plane) as client:
        api = kubernetes.client.CoreV1Api(client)
        page1 = api.list_namespaced_config_map("default", limit=4)
        page2 = api.list_namespaced_config_map("default", limit=4, _continue=page1.metadata._continue)
        assert [i.metadata.name for i in page1.items + page2.items] == names(everything)
        assert len(page1.items) == 4 and not page2.metadata._continue


def test_kubectl_chunked_get_lists_every_object(kubectl: CLI, kube: Kube) -> None:
    """S9 / statement 33: real `kubectl get --chunk-size=2` follows `continue` and prints every object once."""
    expected = [f"cm-{i}" for i in range(5)]
    for name in expected:
        kube.create(CM, configmap(name))
    system = {f"configmap/{n}" for n in SYSTEM_OBJECT_NAMES}
    out = kubectl.run("get", "configmaps", "--chunk-size=2", "-o", "name").stdout.split()
    assert [name for name in out if name not in system] == [f"configmap/{n}" for n in expected]
    table = kubectl.run("get", "configmaps", "--chunk-size=2").stdout.splitlines()
    assert table[0].split() == ["NAME", "DATA", "AGE"]
    assert [line.split()[0] for line in table[1:] if line.split()[0] not in SYSTEM_OBJECT_NAMES] == expected


# ---------------------------------------------------------------------------------------------- 34, 35


class ShiftedClock(Clock):
    """A frozen wall clock (whole seconds) plus an offset the test moves forward, so ages are exact."""

    def __init__(self) -> None:
        self.base = datetime.now(UTC).replace(microsecond=0)
        self.offset = timedelta(0)

    def now(self) -> datetime:
        return self.base + self.offset


@pytest.fixture
def clocked(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[EmbeddedServer, ShiftedClock, Kube]]:
    clock = ShiftedClock()
    with EmbeddedServer.run_in_thread(ServerSettings(bookmark_interval=1.0), clock=clock) as server:
        kubeconfig = server.write_kubeconfig(tmp_path / "kubeconfig")
        monkeypatch.setenv("KUBECONFIG", str(kubeconfig))
        server.kubeconfig = kubeconfig  # type: ignore[attr-defined]
        kube = Kube(server.url)
        kube.install_crd()
        yield server, clock, kube
        kube.close()


def table(kube: Kube, path: str, **params: str) -> JSON:
    response = kube.get(path, headers={"Accept": TABLE_ACCEPT}, params=params)
    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"] == "application/json"
    body: JSON = response.json()
    assert (body["kind"], body["apiVersion"]) == ("Table", "meta.k8s.io/v1")
    return body


AGE = re.compile(r"\d+s")  # a fresh object's age on a real clock: HumanDuration under two minutes


def test_table_has_name_then_printer_columns(kube: Kube) -> None:
    """S9 / statement 34: `Name` first, then the CRD's additionalPrinterColumns (types, descriptions, cells)."""
    kube.install_crd()
    kube.create(WIDGETS, widget("w1", size=3))
    kube.ok(kube.patch(f"{WIDGETS}/w1/status", {"status": {"phase": "Ready"}}))
    kube.create(WIDGETS, widget("w2"))
    body = table(kube, WIDGETS)
    columns = [(c["name"], c["type"], c["format"]) for c in body["columnDefinitions"]]
    assert columns == [
        ("Name", "string", "name"),
        ("Size", "integer", ""),
        ("Phase", "string", ""),
        ("Age", "date", ""),
    ]
    assert body["columnDefinitions"][1]["description"] == "How big it is"
    assert [r["cells"][:3] for r in body["rows"]] == [["w1", 3, "Ready"], ["w2", None, None]]
    assert all(AGE.fullmatch(r["cells"][3]) for r in body["rows"]), body["rows"]
    assert body["metadata"]["resourceVersion"].isdigit()


def test_table_date_cells_are_human_durations_of_server_time(
    clocked: tuple[EmbeddedServer, ShiftedClock, Kube],
) -> None:
    """S9 / statement 34: `date` cells are HumanDuration of the server's clock (shifted here, so ages are exact)."""
    _, clock, kube = clocked
    kube.create(WIDGETS, widget("w1", size=3))
    kube.create(WIDGETS, widget("w2"))
    for offset, text in [
        (timedelta(seconds=5), "5s"),
        (timedelta(seconds=119), "119s"),
        (timedelta(minutes=2), "2m"),
        (timedelta(minutes=7, seconds=3), "7m3s"),
        (timedelta(hours=3, minutes=25), "3h25m"),
        (timedelta(days=3, hours=4), "3d4h"),
        (timedelta(days=400), "400d"),
    ]:
        clock.offset = offset
        assert [r["cells"][3] for r in table(kube, WIDGETS)["rows"]] == [text, text]


def test_table_include_object_and_single_object_get(kube: Kube) -> None:
    """S9 / statement 34: includeObject Metadata (default) / Object / None; GET of one object is a one-row Table."""
    kube.install_crd()
    created = kube.create(WIDGETS, widget("w1", size=3))
    default = table(kube, WIDGETS)["rows"][0]["object"]
    assert (default["kind"], default["apiVersion"]) == ("PartialObjectMetadata", "meta.k8s.io/v1")
    assert default["metadata"]["uid"] == created["metadata"]["uid"]
    assert "spec" not in default
    full = table(kube, WIDGETS, includeObject="Object")["rows"][0]["object"]
    assert (full["kind"], full["apiVersion"], full["spec"]["size"]) == ("Widget", "example.com/v1", 3)
    bare = table(kube, WIDGETS, includeObject="None")["rows"][0]
    assert bare.get("object") is None and bare["cells"][0] == "w1"
    one = table(kube, f"{WIDGETS}/w1")
    assert [r["cells"][:2] for r in one["rows"]] == [["w1", 3]]
    bad = kube.get(WIDGETS, headers={"Accept": TABLE_ACCEPT}, params={"includeObject": "Everything"})
    assert bad.status_code == 400 and bad.json()["reason"] == "BadRequest"


def test_table_without_printer_columns_has_age(kube: Kube) -> None:
    """S9 / statement 34: a CRD without additionalPrinterColumns gets the default `Name, Age` columns."""
    bare = WidgetCRD(group="bare.example.com", plural="gadgets", kind="Gadget")
    bare.printer_columns = []
    bare.short_names = []
    kube.install_crd(bare)
    kube.create(
        "/apis/bare.example.com/v1/namespaces/default/gadgets",
        {"apiVersion": "bare.example.com/v1", "kind": "Gadget", "metadata": {"name": "g1"}, "spec": {}},
    )
    body = table(kube, "/apis/bare.example.com/v1/namespaces/default/gadgets")
    assert [(c["name"], c["type"]) for c in body["columnDefinitions"]] == [("Name", "string"), ("Age", "date")]
    (row,) = body["rows"]
    assert row["cells"][0] == "g1" and AGE.fullmatch(row["cells"][1])


def _kubectl(server: EmbeddedServer, tmp_path: Path) -> CLI:
    binary = find_binary("kubectl")
    if binary is None:
        pytest.skip("kubectl binary not available")
    home = tmp_path / "kubectl-home"
    home.mkdir(exist_ok=True)
    return CLI(binary, server.kubeconfig, home, {})  # type: ignore[attr-defined]


def test_kubectl_get_prints_printer_column_headers(kubectl: CLI, kube: Kube) -> None:
    """S9 / statement 35: real `kubectl get widgets` prints NAME + the printer columns (and the short name works)."""
    kube.install_crd()
    kube.create(WIDGETS, widget("w1", size=3))
    kube.ok(kube.patch(f"{WIDGETS}/w1/status", {"status": {"phase": "Ready"}}))
    lines = [line.split() for line in kubectl.run("get", "widgets").stdout.splitlines()]
    assert lines[0] == ["NAME", "SIZE", "PHASE", "AGE"]
    assert len(lines) == 2 and lines[1][:3] == ["w1", "3", "Ready"] and AGE.fullmatch(lines[1][3]), lines
    short = kubectl.run("get", "wd", "w1").stdout.splitlines()
    assert short[0].split() == ["NAME", "SIZE", "PHASE", "AGE"]


def test_kubectl_prints_the_server_computed_age(
    clocked: tuple[EmbeddedServer, ShiftedClock, Kube], tmp_path: Path
) -> None:
    """S9 / statement 35: the AGE kubectl prints is the server's cell (the server's clock is shifted here)."""
    server, clock, kube = clocked
    kubectl = _kubectl(server, tmp_path)
    kube.create(WIDGETS, widget("w1", size=3))
    kube.ok(kube.patch(f"{WIDGETS}/w1/status", {"status": {"phase": "Ready"}}))
    clock.offset = timedelta(hours=3, minutes=25)
    lines = kubectl.run("get", "widgets").stdout.splitlines()
    assert [line.split() for line in lines] == [["NAME", "SIZE", "PHASE", "AGE"], ["w1", "3", "Ready", "3h25m"]]


def test_kubectl_get_watch_prints_one_row_per_change_under_one_header(kubectl: CLI, kube: Kube) -> None:
    """S9 / statement 35: `kubectl get widgets -w` prints the header once, then one row per change."""
    kube.install_crd()
    kube.create(WIDGETS, widget("w1", size=1))
    proc = kubectl.popen("get", "widgets", "-w")
    assert proc.stdout is not None
    out = LineReader(proc.stdout)
    try:
        assert out.next().split() == ["NAME", "SIZE", "PHASE", "AGE"]
        assert out.next().split()[:2] == ["w1", "1"]
        kube.ok(kube.patch(f"{WIDGETS}/w1", {"spec": {"size": 2}}))
        assert out.next().split()[:2] == ["w1", "2"]
        kube.ok(kube.patch(f"{WIDGETS}/w1/status", {"status": {"phase": "Ready"}}))
        assert out.next().split()[:3] == ["w1", "2", "Ready"]
        kube.create(WIDGETS, widget("w2", size=7))
        assert out.next().split()[:2] == ["w2", "7"]
        kube.ok(kube.delete(f"{WIDGETS}/w2"))
        assert out.next().split()[:2] == ["w2", "7"]  # the deletion is a row too
    finally:
        proc.kill()
        proc.wait(10)
        if proc.stderr:
            proc.stderr.close()
    rows = out.seen
    assert sum(1 for line in rows if line.startswith("NAME")) == 1, rows
    assert len(rows) == 6, rows
    assert all(re.fullmatch(r"w[12]\s+\d+\s+(Ready\s+)?\d+s", line.strip()) for line in rows[1:]), rows


# ---------------------------------------------------------------------------------------------- 36


# Jobs whose status the test writes, as an external controller would: the Job controller leaves them alone.
HAND_WRITTEN = "example.com/hand-written"


def _job_status(now: datetime, outcome: str) -> JSON:
    start = now - timedelta(seconds=65)
    status: JSON = {"startTime": rfc3339(start)}
    if outcome == "Complete":
        done = rfc3339(start + timedelta(seconds=5))
        cond = {"status": "True", "reason": "CompletionsReached", "lastTransitionTime": done, "lastProbeTime": done}
        status.update(
            succeeded=1,
            completionTime=done,
            conditions=[{"type": "SuccessCriteriaMet", **cond}, {"type": "Complete", **cond}],
        )
    elif outcome == "Failed":
        done = rfc3339(start + timedelta(seconds=5))
        cond = {"status": "True", "reason": "BackoffLimitExceeded", "lastTransitionTime": done, "lastProbeTime": done}
        status.update(failed=2, conditions=[{"type": "FailureTarget", **cond}, {"type": "Failed", **cond}])
    else:
        status.update(active=1, ready=1)
    return status


JOB_OUTCOMES = [("Complete", "Complete", "1/1"), ("Failed", "Failed", "0/1"), ("Running", "Running", "0/1")]


def _duration_seconds(cell: str) -> int:
    """Seconds of a HumanDuration under two minutes (`65s`)."""
    assert re.fullmatch(r"\d+s", cell), cell
    return int(cell[:-1])


@pytest.mark.parametrize(("outcome", "status_cell", "completions"), JOB_OUTCOMES)
def test_jobs_table_columns_and_status(
    kube: Kube, kubectl: CLI, outcome: str, status_cell: str, completions: str
) -> None:
    """S9 / statement 36: Jobs Table columns `Name, Status, Completions, Duration, Age` (+ wide ones) for a Job
    whose status was written through /status; real `kubectl get jobs` prints the same cells."""
    kube.create(JOBS, job("j1", command=["true"], managedBy=HAND_WRITTEN))
    status = _job_status(datetime.now(UTC).replace(microsecond=0), outcome)
    written = kube.ok(kube.patch(f"{JOBS}/j1/status", {"status": status}))
    assert written["status"].get("conditions", [{}])[-1].get("type", "Running") in (outcome, "Running")
    body = table(kube, JOBS)
    columns = [(c["name"], c["priority"]) for c in body["columnDefinitions"]]
    assert columns[:5] == [("Name", 0), ("Status", 0), ("Completions", 0), ("Duration", 0), ("Age", 0)]
    assert [name for name, priority in columns[5:]] == ["Containers", "Images", "Selector"]
    assert all(priority == 1 for _, priority in columns[5:])
    cells = body["rows"][0]["cells"]
    assert cells[:3] == ["j1", status_cell, completions]
    # Finished: completionTime - startTime; running or failed: now - startTime (65 s ago).
    duration = _duration_seconds(cells[3])
    assert (duration == 5) if outcome == "Complete" else (65 <= duration < 120), cells
    assert AGE.fullmatch(cells[4]) and cells[5:7] == ["main", "busybox:1.36"], cells

    lines = [line.split() for line in kubectl.run("get", "jobs").stdout.splitlines()]
    assert lines[0] == ["NAME", "STATUS", "COMPLETIONS", "DURATION", "AGE"]
    assert len(lines) == 2 and lines[1][:3] == ["j1", status_cell, completions], lines
    assert _duration_seconds(lines[1][3]) - duration in (0, 1) and AGE.fullmatch(lines[1][4]), lines


@pytest.mark.parametrize(
    ("outcome", "status_cell", "completions", "duration"),
    [("Complete", "Complete", "1/1", "5s"), ("Failed", "Failed", "0/1", "4m5s"), ("Running", "Running", "0/1", "4m5s")],
)
def test_jobs_table_durations_and_ages_on_the_server_clock(
    clocked: tuple[EmbeddedServer, ShiftedClock, Kube],
    tmp_path: Path,
    outcome: str,
    status_cell: str,
    completions: str,
    duration: str,
) -> None:
    """S9 / statement 36: Duration and Age are computed on the server's clock (shifted by 3 minutes here)."""
    server, clock, kube = clocked
    kube.create(JOBS, job("j1", command=["true"], managedBy=HAND_WRITTEN))
    kube.ok(kube.patch(f"{JOBS}/j1/status", {"status": _job_status(clock.now(), outcome)}))
    clock.offset = timedelta(minutes=3)
    cells = table(kube, JOBS)["rows"][0]["cells"]
    assert cells[:5] == ["j1", status_cell, completions, duration, "3m"]

    kubectl = _kubectl(server, tmp_path)
    lines = kubectl.run("get", "jobs").stdout.splitlines()
    assert [line.split() for line in lines] == [
        ["NAME", "STATUS", "COMPLETIONS", "DURATION", "AGE"],
        ["j1", status_cell, completions, duration, "3m"],
    ]
