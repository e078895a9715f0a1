"""Server-side Tables: HumanDuration, column definitions, cells of built-in printers and CR printer columns."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from dops.emulator import tables
from dops.emulator.registry import PrinterColumn, ResourceType

JSON = dict[str, Any]
NOW = datetime(2025, 6, 1, 12, 0, 0, tzinfo=UTC)


def ago(**delta: float) -> str:
    return (NOW - timedelta(**delta)).strftime("%Y-%m-%dT%H:%M:%SZ")


def builtin(group: str, plural: str, kind: str = "X", namespaced: bool = True) -> ResourceType:
    return ResourceType(group, "v1", kind, plural, plural.rstrip("s"), namespaced)


PODS = builtin("", "pods", "Pod")
JOBS = builtin("batch", "jobs", "Job")
CRDS = builtin("apiextensions.k8s.io", "customresourcedefinitions", "CustomResourceDefinition", False)
WIDGET_COLUMNS = (
    PrinterColumn(name="Phase", type="string", json_path=".status.phase"),
    PrinterColumn(name="Size", type="integer", json_path=".spec.size", description="The size."),
    PrinterColumn(name="Ratio", type="number", json_path=".spec.ratio", priority=1),
    PrinterColumn(name="Enabled", type="boolean", json_path=".spec.enabled"),
    PrinterColumn(name="Started", type="date", json_path=".status.startedAt"),
)
WIDGETS = ResourceType(
    "example.com",
    "v1",
    "Widget",
    "widgets",
    "widget",
    True,
    printer_columns=WIDGET_COLUMNS,
    crd_name="widgets.example.com",
)
BARE_WIDGETS = ResourceType(
    "example.com", "v1", "Bare", "bares", "bare", True, printer_columns=(), crd_name="bares.example.com"
)


# ---------------------------------------------------------------------------------------------- HumanDuration


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (-5, "<invalid>"),
        (-2, "<invalid>"),
        (-1.5, "0s"),
        (-1, "0s"),
        (-0.5, "0s"),
        (0, "0s"),
        (1, "1s"),
        (70, "70s"),
        (119.9, "119s"),
        (120, "2m"),
        (190, "3m10s"),
        (599, "9m59s"),
        (600, "10m"),
        (70 * 60, "70m"),
        (179 * 60 + 59, "179m"),
        (180 * 60, "3h"),
        (3 * 3600 + 5 * 60, "3h5m"),
        (7 * 3600 + 59 * 60, "7h59m"),
        (8 * 3600, "8h"),
        (47 * 3600, "47h"),
        (48 * 3600, "2d"),
        (49 * 3600, "2d1h"),
        ((8 * 24 + 2) * 3600, "8d"),
        (367 * 24 * 3600, "367d"),
        ((365 * 2 * 24 + 25) * 3600, "2y1d"),
        (365 * 2 * 24 * 3600, "2y"),
        ((365 * 8 * 24 + 2) * 3600, "8y"),
    ],
)
def test_human_duration(seconds: float, text: str) -> None:
    assert tables.human_duration(seconds) == text


# ---------------------------------------------------------------------------------------------- columns


def names(rtype: ResourceType, wide: bool = True) -> list[str]:
    return [c["name"] for c in tables.column_definitions(rtype, wide)]


@pytest.mark.parametrize(
    ("rtype", "wide", "expected"),
    [
        (JOBS, False, ["Name", "Status", "Completions", "Duration", "Age"]),
        (JOBS, True, ["Name", "Status", "Completions", "Duration", "Age", "Containers", "Images", "Selector"]),
        (PODS, False, ["Name", "Ready", "Status", "Restarts", "Age"]),
        (PODS, True, ["Name", "Ready", "Status", "Restarts", "Age", "IP", "Node", "Nominated Node", "Readiness Gates"]),
        (builtin("", "configmaps"), True, ["Name", "Data", "Age"]),
        (builtin("", "secrets"), True, ["Name", "Type", "Data", "Age"]),
        (builtin("", "namespaces"), True, ["Name", "Status", "Age"]),
        (builtin("", "events"), False, ["Last Seen", "Type", "Reason", "Object", "Message"]),
        (builtin("events.k8s.io", "events"), False, ["Last Seen", "Type", "Reason", "Object", "Message"]),
        (builtin("apps", "deployments"), False, ["Name", "Ready", "Up-to-date", "Available", "Age"]),
        (builtin("", "serviceaccounts"), True, ["Name", "Secrets", "Age"]),
        (builtin("", "services"), False, ["Name", "Type", "Cluster-IP", "External-IP", "Port(s)", "Age"]),
        (builtin("", "nodes"), False, ["Name", "Status", "Roles", "Age", "Version"]),
        (builtin("coordination.k8s.io", "leases"), True, ["Name", "Holder", "Age"]),
        (CRDS, True, ["Name", "Created At"]),
        (builtin("rbac.authorization.k8s.io", "roles"), True, ["Name", "Created At"]),
        (WIDGETS, True, ["Name", "Phase", "Size", "Ratio", "Enabled", "Started"]),
        (WIDGETS, False, ["Name", "Phase", "Size", "Enabled", "Started"]),
        (BARE_WIDGETS, True, ["Name", "Age"]),
    ],
)
def test_column_names(rtype: ResourceType, wide: bool, expected: list[str]) -> None:
    assert names(rtype, wide) == expected


def test_column_definition_fields() -> None:
    job_columns = tables.column_definitions(JOBS)
    assert job_columns[0] == {
        "name": "Name",
        "type": "string",
        "format": "name",
        "description": job_columns[0]["description"],
        "priority": 0,
    }
    assert job_columns[0]["description"].startswith("Name must be unique within a namespace.")
    assert [c["priority"] for c in job_columns] == [0, 0, 0, 0, 0, 1, 1, 1]
    assert job_columns[4]["type"] == "string"  # built-in ages are pre-rendered strings
    assert job_columns[4]["description"].startswith("CreationTimestamp is a timestamp")
    events = tables.column_definitions(builtin("", "events"))
    assert events[-1]["name"] == "Name" and events[-1]["priority"] == 1 and events[-1]["format"] == "name"
    created = tables.column_definitions(CRDS)[1]
    assert created["type"] == "date"


def test_custom_column_definitions() -> None:
    columns = tables.column_definitions(WIDGETS)
    assert columns[1] == {
        "name": "Phase",
        "type": "string",
        "format": "",
        "description": "Custom resource definition column (in JSONPath format): .status.phase",
        "priority": 0,
    }
    assert columns[2]["description"] == "The size."
    assert columns[3]["priority"] == 1
    age = tables.column_definitions(BARE_WIDGETS)[1]
    assert (age["name"], age["type"]) == ("Age", "date")


# ---------------------------------------------------------------------------------------------- CR cells


def widget(**fields: Any) -> JSON:
    obj: JSON = {
        "apiVersion": "example.com/v1",
        "kind": "Widget",
        "metadata": {"name": "w1", "namespace": "default", "creationTimestamp": ago(minutes=5)},
        "spec": {},
        "status": {},
    }
    for key, value in fields.items():
        section, _, name = key.partition("__")
        obj[section][name] = value
    return obj


@pytest.mark.parametrize(
    ("obj", "cells"),
    [
        (
            widget(
                status__phase="Ready",
                spec__size=3,
                spec__ratio=0.5,
                spec__enabled=True,
                status__startedAt=ago(seconds=5),
            ),
            ["w1", "Ready", 3, 0.5, True, "5s"],
        ),
        (widget(), ["w1", None, None, None, None, None]),
        # Wrong JSON types render as null (cellForJSONValue); a float in an integer column is truncated.
        (widget(spec__size="3", spec__ratio=2, spec__enabled="yes"), ["w1", None, None, 2.0, None, None]),
        (widget(spec__size=3.9), ["w1", None, 3, None, None, None]),
        (widget(spec__size=True), ["w1", None, None, None, None, None]),
        # String columns print non-strings like kubectl's JSONPath printer.
        (widget(status__phase={"b": 1, "a": [1, 2]}), ["w1", '{"a":[1,2],"b":1}', None, None, None, None]),
        (widget(status__phase=7), ["w1", "7", None, None, None, None]),
        (widget(status__phase=False), ["w1", "false", None, None, None, None]),
        (widget(status__phase=1000000.0), ["w1", "1e+06", None, None, None, None]),
        (widget(status__phase=2.5), ["w1", "2.5", None, None, None, None]),
        (widget(status__startedAt="yesterday"), ["w1", None, None, None, None, "<invalid>"]),
        (widget(status__startedAt=ago(hours=3, minutes=4)), ["w1", None, None, None, None, "3h4m"]),
    ],
)
def test_custom_resource_cells(obj: JSON, cells: list[Any]) -> None:
    assert tables.row_cells(WIDGETS, obj, NOW) == cells


def test_default_age_column_for_crs_without_printer_columns() -> None:
    assert tables.row_cells(BARE_WIDGETS, widget(), NOW) == ["w1", "5m"]


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        (".spec.items[0].name", ["a"]),
        ("{.spec.items[1].name}", ["b"]),
        (".spec.items[-1].name", ["c"]),
        (".spec.items[*].name", ["a", "b", "c"]),
        (".spec.items[0:2].name", ["a", "b"]),
        (".metadata.labels.app", ["web"]),
        (".metadata.labels['app.kubernetes.io/name']", ["dotted"]),
        (".metadata.labels.app\\.kubernetes\\.io/name", ["dotted"]),
        ('.status.conditions[?(@.type=="Ready")].status', ["True"]),
        (".status.conditions[?(@.type=='Synced')].reason", ["Ok"]),
        (".status.conditions[?(@.reason)].type", ["Synced"]),
        (".spec.missing.deeper", []),
        (".spec.items[7]", []),
        (".spec.items.name", []),  # no implicit flattening of lists
    ],
)
def test_jsonpath(path: str, expected: list[Any]) -> None:
    obj = {
        "metadata": {"labels": {"app": "web", "app.kubernetes.io/name": "dotted"}},
        "spec": {"items": [{"name": "a"}, {"name": "b"}, {"name": "c"}]},
        "status": {"conditions": [{"type": "Ready", "status": "True"}, {"type": "Synced", "reason": "Ok"}]},
    }
    assert tables.evaluate_jsonpath(path, obj) == expected


def test_printer_column_shows_first_match_only() -> None:
    rtype = ResourceType(
        "example.com",
        "v1",
        "Widget",
        "widgets",
        "widget",
        True,
        printer_columns=(PrinterColumn(name="Items", type="string", json_path=".spec.items[*].name"),),
        crd_name="widgets.example.com",
    )
    obj = widget(spec__items=[{"name": "a"}, {"name": "b"}])
    assert tables.row_cells(rtype, obj, NOW) == ["w1", "a"]


def test_bad_jsonpath_raises() -> None:
    with pytest.raises(tables.TableError):
        tables.evaluate_jsonpath(".spec.items[", {})


# ---------------------------------------------------------------------------------------------- jobs


def job(conditions: list[JSON] | None = None, **spec_status: Any) -> JSON:
    obj: JSON = {
        "metadata": {"name": "j1", "creationTimestamp": ago(minutes=10)},
        "spec": {
            "selector": {"matchLabels": {"batch.kubernetes.io/controller-uid": "u1"}},
            "template": {
                "spec": {"containers": [{"name": "main", "image": "alpine"}, {"name": "side", "image": "busybox"}]}
            },
        },
        "status": {"conditions": conditions or []},
    }
    for key, value in spec_status.items():
        section, _, name = key.partition("__")
        if section == "metadata":
            obj["metadata"][name] = value
        else:
            obj[section][name] = value
    return obj


def cond(kind: str, status: str = "True") -> JSON:
    return {"type": kind, "status": status}


@pytest.mark.parametrize(
    ("obj", "status"),
    [
        (job(), "Running"),
        (job([cond("Complete")]), "Complete"),
        (job([cond("SuccessCriteriaMet"), cond("Complete")]), "Complete"),
        (job([cond("FailureTarget"), cond("Failed")]), "Failed"),
        (job([cond("Complete", "False"), cond("Failed")]), "Failed"),
        (job([cond("Suspended")], metadata__deletionTimestamp=ago(seconds=1)), "Terminating"),
        (job([cond("Complete")], metadata__deletionTimestamp=ago(seconds=1)), "Complete"),
        (job([cond("Suspended")]), "Suspended"),
        (job([cond("Suspended", "False")]), "Running"),
        (job([cond("FailureTarget")]), "FailureTarget"),
    ],
)
def test_job_status(obj: JSON, status: str) -> None:
    assert tables.row_cells(JOBS, obj, NOW)[1] == status


@pytest.mark.parametrize(
    ("obj", "completions"),
    [
        (job(), "0/1"),
        (job(spec__completions=3, status__succeeded=2), "2/3"),
        (job(spec__parallelism=4, status__succeeded=1), "1/1 of 4"),
        (job(spec__parallelism=4, spec__completions=2), "0/2"),
        (job(spec__parallelism=1, status__succeeded=1), "1/1"),
    ],
)
def test_job_completions(obj: JSON, completions: str) -> None:
    assert tables.row_cells(JOBS, obj, NOW)[2] == completions


def test_job_row() -> None:
    done = job(
        [cond("Complete")],
        spec__completions=1,
        status__succeeded=1,
        status__startTime=ago(minutes=4),
        status__completionTime=ago(minutes=3, seconds=10),
    )
    assert tables.row_cells(JOBS, done, NOW) == [
        "j1",
        "Complete",
        "1/1",
        "50s",
        "10m",
        "main,side",
        "alpine,busybox",
        "batch.kubernetes.io/controller-uid=u1",
    ]
    running = job(status__startTime=ago(minutes=3, seconds=10))
    assert tables.row_cells(JOBS, running, NOW)[3] == "3m10s"
    assert tables.row_cells(JOBS, job(), NOW)[3] == ""
    assert tables.row_cells(JOBS, job(), NOW, wide=False) == ["j1", "Running", "0/1", "", "10m"]


# ---------------------------------------------------------------------------------------------- pods


def pod(phase: str = "Pending", statuses: list[JSON] | None = None, **extra: Any) -> JSON:
    obj: JSON = {
        "metadata": {"name": "p1", "creationTimestamp": ago(minutes=2)},
        "spec": {"containers": [{"name": "main", "image": "alpine"}]},
        "status": {"phase": phase, "containerStatuses": statuses or []},
    }
    for key, value in extra.items():
        section, _, name = key.partition("__")
        obj[section][name] = value
    return obj


def cstatus(state: JSON, ready: bool = False, restarts: int = 0, last: JSON | None = None) -> JSON:
    return {"name": "main", "ready": ready, "restartCount": restarts, "state": state, "lastState": last or {}}


@pytest.mark.parametrize(
    ("obj", "ready", "status", "restarts"),
    [
        (pod(), "0/1", "Pending", "0"),
        (pod("Pending", [cstatus({"waiting": {"reason": "ContainerCreating"}})]), "0/1", "ContainerCreating", "0"),
        (pod("Running", [cstatus({"running": {"startedAt": ago(seconds=30)}}, ready=True)]), "1/1", "Running", "0"),
        (pod("Running", [cstatus({"running": {}}, ready=False)]), "0/1", "Running", "0"),
        (pod("Succeeded", [cstatus({"terminated": {"exitCode": 0, "reason": "Completed"}})]), "0/1", "Completed", "0"),
        (pod("Failed", [cstatus({"terminated": {"exitCode": 3, "reason": "Error"}})]), "0/1", "Error", "0"),
        (pod("Failed", [cstatus({"terminated": {"exitCode": 3}})]), "0/1", "ExitCode:3", "0"),
        (pod("Failed", [cstatus({"terminated": {"exitCode": 0, "signal": 9}})]), "0/1", "Signal:9", "0"),
        (
            pod(
                "Running",
                [
                    cstatus(
                        {"waiting": {"reason": "CrashLoopBackOff"}},
                        restarts=3,
                        last={"terminated": {"exitCode": 1, "finishedAt": ago(minutes=5)}},
                    )
                ],
            ),
            "0/1",
            "CrashLoopBackOff",
            "3 (5m ago)",
        ),
        (
            pod("Running", [cstatus({"running": {}}, ready=True)], metadata__deletionTimestamp=ago(seconds=1)),
            "1/1",
            "Terminating",
            "0",
        ),
        (pod("Succeeded", metadata__deletionTimestamp=ago(seconds=1)), "0/1", "Succeeded", "0"),
        (pod("Failed", status__reason="Evicted"), "0/1", "Evicted", "0"),
        (
            pod(
                "Pending",
                spec__initContainers=[{"name": "init", "image": "x"}],
                status__initContainerStatuses=[
                    {"name": "init", "ready": False, "restartCount": 0, "state": {"running": {}}}
                ],
            ),
            "0/1",
            "Init:0/1",
            "0",
        ),
        (
            pod(
                "Pending",
                spec__initContainers=[{"name": "init", "image": "x"}],
                status__initContainerStatuses=[
                    {
                        "name": "init",
                        "ready": False,
                        "restartCount": 0,
                        "state": {"terminated": {"exitCode": 2, "reason": "Error"}},
                    }
                ],
            ),
            "0/1",
            "Init:Error",
            "0",
        ),
    ],
)
def test_pod_cells(obj: JSON, ready: str, status: str, restarts: str) -> None:
    cells = tables.row_cells(PODS, obj, NOW)
    assert cells[:5] == ["p1", ready, status, restarts, "2m"]


def test_pod_wide_cells() -> None:
    obj = pod(
        "Running",
        spec__nodeName="node-1",
        spec__readinessGates=[{"conditionType": "x/ready"}],
        status__podIPs=[{"ip": "10.0.0.5"}],
        status__conditions=[{"type": "x/ready", "status": "True"}],
    )
    assert tables.row_cells(PODS, obj, NOW)[5:] == ["10.0.0.5", "node-1", "<none>", "1/1"]
    assert tables.row_cells(PODS, pod(), NOW)[5:] == ["<none>", "<none>", "<none>", "<none>"]


# ---------------------------------------------------------------------------------------------- other built-ins


def meta(name: str = "o1", **extra: Any) -> JSON:
    return {"name": name, "creationTimestamp": ago(hours=2), **extra}


@pytest.mark.parametrize(
    ("rtype", "obj", "cells"),
    [
        (
            builtin("", "configmaps"),
            {"metadata": meta(), "data": {"a": "1", "b": "2"}, "binaryData": {"c": "AA=="}},
            ["o1", 3, "120m"],
        ),
        (builtin("", "configmaps"), {"metadata": meta()}, ["o1", 0, "120m"]),
        (
            builtin("", "secrets"),
            {"metadata": meta(), "type": "Opaque", "data": {"k": "dg=="}},
            ["o1", "Opaque", 1, "120m"],
        ),
        (builtin("", "namespaces"), {"metadata": meta(), "status": {"phase": "Active"}}, ["o1", "Active", "120m"]),
        (builtin("", "serviceaccounts"), {"metadata": meta(), "secrets": [{"name": "t"}]}, ["o1", 1, "120m"]),
        (
            builtin("coordination.k8s.io", "leases"),
            {"metadata": meta(), "spec": {"holderIdentity": "me"}},
            ["o1", "me", "120m"],
        ),
        (
            builtin("apps", "deployments"),
            {
                "metadata": meta(),
                "spec": {
                    "replicas": 3,
                    "selector": {"matchLabels": {"app": "w"}},
                    "template": {"spec": {"containers": [{"name": "c", "image": "i"}]}},
                },
                "status": {"readyReplicas": 2, "updatedReplicas": 3, "availableReplicas": 2},
            },
            ["o1", "2/3", 3, 2, "120m", "c", "i", "app=w"],
        ),
        (
            builtin("", "services"),
            {
                "metadata": meta(),
                "spec": {
                    "type": "NodePort",
                    "clusterIPs": ["10.96.0.10"],
                    "ports": [{"port": 80, "protocol": "TCP", "nodePort": 30080}, {"port": 53, "protocol": "UDP"}],
                    "selector": {"b": "2", "a": "1"},
                },
            },
            ["o1", "NodePort", "10.96.0.10", "<none>", "80:30080/TCP,53/UDP", "120m", "a=1,b=2"],
        ),
        (
            builtin("", "nodes"),
            {
                "metadata": meta(labels={"node-role.kubernetes.io/control-plane": ""}),
                "spec": {"unschedulable": True},
                "status": {
                    "conditions": [{"type": "Ready", "status": "True"}],
                    "nodeInfo": {"kubeletVersion": "v1.35.0"},
                    "addresses": [{"type": "InternalIP", "address": "10.0.0.1"}],
                },
            },
            [
                "o1",
                "Ready,SchedulingDisabled",
                "control-plane",
                "120m",
                "v1.35.0",
                "10.0.0.1",
                "<none>",
                "<unknown>",
                "<unknown>",
                "<unknown>",
            ],
        ),
        (CRDS, {"metadata": meta()}, ["o1", ago(hours=2)]),
        (builtin("rbac.authorization.k8s.io", "roles"), {"metadata": {"name": "r"}}, ["r", "0001-01-01T00:00:00Z"]),
        (builtin("", "configmaps"), {"metadata": {"name": "x"}}, ["x", 0, "<unknown>"]),
    ],
)
def test_builtin_cells(rtype: ResourceType, obj: JSON, cells: list[Any]) -> None:
    assert tables.row_cells(rtype, obj, NOW) == cells


def test_event_cells() -> None:
    core_event = {
        "metadata": meta("w1.17a"),
        "involvedObject": {"kind": "Widget", "name": "w1", "fieldPath": "spec"},
        "reason": "Created",
        "message": " made it \n",
        "type": "Normal",
        "source": {"component": "kopf"},
        "firstTimestamp": ago(minutes=3),
        "lastTimestamp": ago(seconds=30),
        "count": 2,
    }
    assert tables.row_cells(builtin("", "events"), core_event, NOW) == [
        "30s", "Normal", "Created", "widget/w1", "spec", "kopf", "made it", "3m", 2, "w1.17a",
    ]  # fmt: skip
    new_event = {
        "metadata": meta("e2"),
        "regarding": {"kind": "Pod", "name": "p"},
        "note": "hello",
        "type": "Warning",
        "reason": "Boom",
        "eventTime": ago(seconds=5).replace("Z", ".000000Z"),
        "reportingController": "ctl",
        "reportingInstance": "ctl-1",
    }
    assert tables.row_cells(builtin("events.k8s.io", "events"), new_event, NOW) == [
        "5s", "Warning", "Boom", "pod/p", "", "ctl, ctl-1", "hello", "5s", 1, "e2",
    ]  # fmt: skip


# ---------------------------------------------------------------------------------------------- the Table


def test_to_table_shape_and_include_object() -> None:
    objs = [widget(status__phase="Ready"), widget(status__phase="Done")]
    table = tables.to_table(WIDGETS, objs, now=NOW, resource_version="42", continue_token="abc")
    assert table["kind"] == "Table"
    assert table["apiVersion"] == "meta.k8s.io/v1"
    assert table["metadata"] == {"resourceVersion": "42", "continue": "abc"}
    assert table["columnDefinitions"][0]["name"] == "Name"
    assert [r["cells"][1] for r in table["rows"]] == ["Ready", "Done"]
    assert table["rows"][0]["object"] == {
        "kind": "PartialObjectMetadata",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": objs[0]["metadata"],
    }
    full = tables.to_table(WIDGETS, objs, now=NOW, include_object="Object")
    assert full["rows"][1]["object"] is objs[1]
    assert full["metadata"] == {}
    bare = tables.to_table(WIDGETS, objs, now=NOW, include_object="None")
    assert all("object" not in r for r in bare["rows"])
    assert tables.to_table(WIDGETS, objs, now=NOW, no_headers=True)["columnDefinitions"] == []
    with pytest.raises(tables.TableError, match='includeObject: Unsupported value: "All"'):
        tables.to_table(WIDGETS, objs, now=NOW, include_object="All")


def test_pod_rows_carry_completed_condition() -> None:
    table = tables.to_table(PODS, [pod("Succeeded"), pod("Running")], now=NOW)
    assert table["rows"][0]["conditions"] == [
        {"type": "Completed", "status": "True", "reason": "Succeeded", "message": "The pod has completed successfully."}
    ]
    assert "conditions" not in table["rows"][1]


def test_naive_now_is_utc() -> None:
    assert tables.row_cells(BARE_WIDGETS, widget(), NOW.replace(tzinfo=None)) == ["w1", "5m"]


@pytest.mark.parametrize(
    ("accept", "expected"),
    [
        (
            "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json",
            True,
        ),
        ("application/json;as=Table;v=v1beta1;g=meta.k8s.io", True),
        ("application/json; g=meta.k8s.io; v=v1; as=Table", True),
        ("application/json;as=Table;g=meta.k8s.io;v=v1", True),
        ("application/json", False),
        ("*/*", False),
        ("", False),
        ("application/json;as=PartialObjectMetadataList;v=v1;g=meta.k8s.io", False),
        ("application/json;as=Table;v=v2;g=meta.k8s.io", False),
        ("application/json;as=Table;v=v1;g=example.com", False),
        ("application/json;as=table;v=v1;g=meta.k8s.io", False),
    ],
)
def test_parse_table_accept(accept: str, expected: bool) -> None:
    assert tables.parse_table_accept(accept) is expected
