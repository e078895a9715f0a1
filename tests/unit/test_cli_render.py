"""dops.cli.render and dops.cli.options: the CLI's pure renderers and parsers (no cluster, no I/O).

Aspects covered (issue 6, CLI):
- human durations as kubectl prints them (AGE), precise run durations (DURATION);
- list rows/columns: state with progress for running operations, namespaces column, wide columns, flags;
- the rich table and the `get` details (summary, timeline, result / error panel, conditions, events);
- machine output: `-o json` / `-o yaml` are the resources kubectl would print (no managedFields, List for lists),
  `-o name` prints names (NAMESPACE/NAME across namespaces);
- the outcome line of wait/submit --wait, failure reasons from error messages or tracebacks;
- the wait verdict table (exit codes per awaited state);
- parsers: durations, `--param KEY=VALUE` (JSON values), operation references.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import pytest
import typer
import yaml
from rich.console import Console

from dops.api.types import DelegatedOperationDocument
from dops.cli import render
from dops.cli.options import parse_duration, parse_params, parse_ref
from dops.cli.waiting import Target, verdict
from tests.op_builders import operation

NOW = dt.datetime(2026, 3, 1, 12, 0, 0, tzinfo=dt.UTC)


def stamp(seconds_ago: float) -> str:
    return (NOW - dt.timedelta(seconds=seconds_ago)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def doc(name: str = "dop-a", state: str | None = "queued", namespace: str = "ns1", **status: Any) -> Any:
    builder = operation(name, namespace).operator("@dops/examples/count").label("count things").params(n=3)
    fields: dict[str, Any] = {"queuedAt": stamp(300)}
    if state is not None:
        fields["runState"] = state
    fields.update(status)
    body = builder.status(**fields).build()
    body["metadata"]["managedFields"] = [{"manager": "dops"}]
    return DelegatedOperationDocument.from_resource(body)


def text_of(renderable: Any, width: int = 200) -> str:
    console = Console(width=width, record=True, color_system=None)
    console.print(renderable)
    return console.export_text()


# --------------------------------------------------------------------------------------------- durations


@pytest.mark.parametrize(
    ("seconds", "expected"),
    [
        (0, "0s"),
        (59, "59s"),
        (119, "119s"),
        (120, "2m"),
        (150, "2m30s"),
        (600, "10m"),
        (179 * 60, "179m"),
        (3 * 3600, "3h"),
        (3 * 3600 + 5 * 60, "3h5m"),
        (47 * 3600, "47h"),
        (50 * 3600, "2d2h"),
        (9 * 86400, "9d"),
        (800 * 86400, "2y"),
        (-5, "0s"),
    ],
)
def test_human_duration_follows_kubectl(seconds: float, expected: str) -> None:
    """issue 6 / CLI list: AGE is printed like kubectl's (two units at most, coarser as it grows)."""
    assert render.human_duration(seconds) == expected


@pytest.mark.parametrize(("seconds", "expected"), [(0.42, "0.4s"), (12.34, "12.3s"), (245, "4m05s"), (7260, "2h01m")])
def test_precise_duration(seconds: float, expected: str) -> None:
    """issue 6 / CLI list: DURATION of a run is precise (sub-second for short runs)."""
    assert render.precise_duration(seconds) == expected


# --------------------------------------------------------------------------------------------- list


def test_row_of_running_operation_shows_progress_age_and_duration() -> None:
    """issue 6 / CLI list: a running operation shows its progress (FiftyOne's "(NN%)"/"(label)") and run time."""
    d = doc(
        state="running",
        startedAt=stamp(90),
        progress={"progress": 0.4, "label": "counting", "updatedAt": stamp(1)},
    )
    assert render.columns() == ["NAME", "LABEL", "OPERATOR", "STATE", "AGE", "DURATION"]
    assert render.row(d, NOW) == [
        "dop-a",
        "count things",
        "@dops/examples/count",
        "running 40% (counting)",
        "5m",
        "1m30s",
    ]


def test_row_of_finished_operation_uses_finish_time_and_namespaces_and_wide_columns() -> None:
    """issue 6 / CLI list -A / -o wide: NAMESPACE first; wide adds TARGET, DATASET, POD and FLAGS."""
    d = doc(state="completed", startedAt=stamp(100), completedAt=stamp(40), podName="dop-a-xyz")
    d.pinned = True
    d.delegation_target = "gpu"
    cells = render.row(d, NOW, namespaces=True, wide=True)
    assert render.columns(namespaces=True, wide=True)[0] == "NAMESPACE"
    assert cells == ["ns1", "dop-a", "count things", "@dops/examples/count", "completed", "5m", "1m00s",
                     "gpu", "", "dop-a-xyz", "pinned"]  # fmt: skip


def test_pending_operation_without_status() -> None:
    """issue 6 / CLI list: an operation nobody has queued yet (created with kubectl, no status) shows "pending"."""
    body = operation("raw", "ns1").build()
    body["metadata"]["creationTimestamp"] = stamp(30)
    d = DelegatedOperationDocument.from_resource(body)
    assert render.row(d, NOW)[3:] == ["pending", "30s", ""]


def test_operations_table_renders_every_row() -> None:
    """issue 6 / CLI list: the rich table (box SIMPLE) has the header and one line per operation."""
    docs = [doc("dop-a"), doc("dop-b", state="failed", failedAt=stamp(10))]
    text = text_of(render.operations_table(docs, NOW, namespaces=True))
    lines = [line for line in text.splitlines() if line.strip()]
    assert lines[0].split() == ["NAMESPACE", "NAME", "LABEL", "OPERATOR", "STATE", "AGE", "DURATION"]
    assert any(line.split()[:2] == ["ns1", "dop-a"] and "queued" in line for line in lines)
    assert any(line.split()[:2] == ["ns1", "dop-b"] and "failed" in line for line in lines)


def test_plain_table_aligns_columns() -> None:
    """issue 6 / CLI watch: the non-terminal output is aligned plain text."""
    assert render.plain_table([["a", "long-value"], ["bbbb", "x"]], ["H1", "H2"]).splitlines() == [
        "H1     H2",
        "a      long-value",
        "bbbb   x",
    ]


# --------------------------------------------------------------------------------------------- get


def test_details_show_summary_timeline_result_conditions_and_events() -> None:
    """issue 6 / CLI get: status, timeline, result, conditions and events in one view."""
    d = doc(
        state="completed",
        scheduledAt=stamp(200),
        startedAt=stamp(190),
        completedAt=stamp(100),
        result={"result": {"count": 3}},
        runLink="http://logs/pod",
        jobName="dop-a",
        conditions=[
            {"type": "Succeeded", "status": "True", "reason": "Completed", "lastTransitionTime": stamp(100)},
        ],
    )
    events = [
        {"type": "Normal", "reason": "JobCreated", "message": "created job dop-a", "lastTimestamp": stamp(200),
         "involvedObject": {"kind": "DelegatedOperation", "name": "dop-a"}, "count": 2},
    ]  # fmt: skip
    text = text_of(render.details(d, NOW, events))
    for expected in ("dop-a", "@dops/examples/count", "completed", "http://logs/pod", '{"n": 3}'):
        assert expected in text
    timeline = text[text.index("Timeline") : text.index("Result")].splitlines()
    steps = {line.split()[0]: line.split()[1:] for line in timeline if line.split()[:1] and line[0].isalpha()}
    assert list(steps) == ["Timeline", "EVENT", "queued", "scheduled", "started", "completed"]
    assert steps["completed"][-1] == "1m30s"  # started → completed took 90 s
    assert steps["started"][-1] == "10.0s"
    assert '"count": 3' in text
    conditions = text[text.index("Conditions") :]
    assert "Succeeded" in conditions and "Completed" in conditions
    assert "JobCreated (x2)" in text and "delegatedoperation/dop-a" in text and "created job dop-a" in text


def test_details_of_failed_operation_show_the_error() -> None:
    """issue 6 / CLI get: a failed operation shows its error message and the traceback's end."""
    traceback = "Traceback (most recent call last):\n" + "".join(f'  File "x.py", line {i}\n' for i in range(30))
    traceback += "RuntimeError: boom"
    d = doc(state="failed", failedAt=stamp(5), result={"error": traceback, "errorMessage": "boom"})
    text = text_of(render.details(d, NOW, None))
    assert "Error" in text and "error: boom" in text and "RuntimeError: boom" in text
    assert "line 0\n" not in text  # long tracebacks keep their end only
    assert "Events" not in text  # None: events were not fetched


def test_error_message_falls_back_to_the_tracebacks_last_line() -> None:
    """issue 6 / CLI wait: the reason of a failure is the error message, else the traceback's last line."""
    assert render.error_message(doc(state="failed", result={"error": "Traceback...\nValueError: bad n"})) == (
        "ValueError: bad n"
    )
    assert render.error_message(doc(state="failed", result={"error": "tb", "errorMessage": "cancelled"})) == (
        "cancelled"
    )
    assert render.error_message(doc(state="failed")) == ""


LOG_TAIL = (
    "the worker exited with exit code 1: 2026-12-06 20:26:03,907 INFO dops.worker: running operation ns1/dop-a "
    "(attempt 1): py:acme:crash\n"
    "Traceback (most recent call last):\n"
    '  File "acme.py", line 3, in crash\n'
    "ValueError: the real cause\n"
    "2026-12-06 20:26:04,001 WARNING dops.worker: cannot write the termination message to /dev/termination-log: "
    "[Errno 13] Permission denied"
)


@pytest.mark.parametrize(
    ("message", "reason"),
    [
        # issue 14 #6: the log tail's last line was the worker's termination-message warning, not the cause
        (LOG_TAIL, "the worker exited with exit code 1: ValueError: the real cause"),
        (
            "the worker exited with exit code 7: 2026-12-06 20:26:03,907 INFO dops.worker: running x\nabout to crash",
            "the worker exited with exit code 7: about to crash",
        ),
        (
            "2026-12-06 20:26:03,907 ERROR dops.worker: operation x failed: boom\n"
            "2026-12-06 20:26:03,907 WARNING dops.worker: cannot write the termination message to /x: nope",
            "operation x failed: boom",
        ),
        ('Traceback (most recent call last):\n  File "x"\nValueError: bad n', "ValueError: bad n"),
        ("ExampleFailure: it broke", "ExampleFailure: it broke"),
    ],
)
def test_error_message_is_the_cause_not_log_noise(message: str, reason: str) -> None:
    """issue 14 #6: `submit --wait` ends with the real cause of a failure, never a routine log record."""
    assert render.error_message(doc(state="failed", result={"errorMessage": message})) == reason


def test_error_panel_does_not_repeat_its_message() -> None:
    """issue 14 #6: the operator records error = "Reason: message"; the Error panel shows the message once."""
    message = "the worker exited with exit code 7: about to crash"
    d = doc(state="failed", failedAt=stamp(5), result={"error": f"NonZeroExitCode: {message}", "errorMessage": message})
    text = text_of(render.details(d, NOW, None))
    assert text.count("about to crash") == 1, text
    assert render.repeats(f"NonZeroExitCode: {message}", message) and render.repeats(message, message)
    assert not render.repeats("Traceback ...\nValueError: x", "ValueError: x")


def test_result_line_of_completed_operations() -> None:
    """issue 14: `wait`/`submit --wait` print the result at the end (compact JSON, clipped when huge)."""
    assert render.result_line(doc(state="completed", result={"result": {"count": 3}})) == 'result: {"count": 3}'
    assert render.result_line(doc(state="completed")) == ""
    assert render.result_line(doc(state="failed", result={"errorMessage": "x"})) == ""
    huge = render.result_line(doc(state="completed", result={"result": {"x": "y" * 5000}}))
    assert len(huge) < 2200 and huge.endswith("(dops get dop-a -o json shows all)")


def pod(waiting: dict[str, str] | None = None, unschedulable: str = "") -> dict[str, Any]:
    status: dict[str, Any] = {"phase": "Pending"}
    if waiting is not None:
        status["containerStatuses"] = [{"name": "worker", "state": {"waiting": waiting}}]
    if unschedulable:
        status["conditions"] = [
            {"type": "PodScheduled", "status": "False", "reason": "Unschedulable", "message": unschedulable}
        ]
    return {"metadata": {"name": "p-1"}, "status": status}


@pytest.mark.parametrize(
    ("p", "hint"),
    [
        (
            pod({"reason": "ImagePullBackOff", "message": 'Back-off pulling image "x"'}),
            'pod p-1 is waiting: ImagePullBackOff: Back-off pulling image "x"',
        ),
        (pod({"reason": "ErrImagePull"}), "pod p-1 is waiting: ErrImagePull"),
        (pod({"reason": "ContainerCreating"}), ""),
        (pod(None), ""),
        (pod(None, "0/1 nodes are available"), "pod p-1 cannot be scheduled (Unschedulable): 0/1 nodes are available"),
    ],
)
def test_pod_hint(p: dict[str, Any], hint: str) -> None:
    """issue 14 #6: a worker pod stuck before it starts is named at once (the operator waits 2 minutes)."""
    assert render.pod_hint(p) == hint
    if hint:
        assert hint in render.wait_description(doc(state="scheduled"), hint)


def test_outcome_line() -> None:
    """issue 6 / CLI wait: the last line says what happened, how long it ran and why it failed."""
    ok = doc(state="completed", startedAt=stamp(12), completedAt=stamp(10))
    bad = doc(state="failed", startedAt=stamp(12), failedAt=stamp(9), result={"error": "x", "errorMessage": "boom"})
    assert render.outcome(ok, NOW) == "operation dop-a completed in 2.0s"
    assert render.outcome(bad, NOW) == "operation dop-a failed in 3.0s: boom"


# --------------------------------------------------------------------------------------------- -o json|yaml|name


def test_machine_output_json_is_the_resource_without_managed_fields() -> None:
    """issue 6 / CLI -o json: one operation → its DelegatedOperation resource, as kubectl prints it."""
    d = doc()
    parsed = json.loads(render.machine_output([d], "json", single=True, namespaces=False))
    assert parsed["kind"] == "DelegatedOperation" and parsed["apiVersion"] == "dops.io/v1alpha1"
    assert parsed["metadata"]["name"] == "dop-a" and "managedFields" not in parsed["metadata"]
    assert parsed["spec"]["context"]["params"] == {"n": 3}
    assert d.resource is not None and "managedFields" in d.resource["metadata"]  # the document is not changed


def test_machine_output_lists_and_yaml_and_names() -> None:
    """issue 6 / CLI -o json|yaml|name: lists are `kind: List`; names are `delegatedoperation.dops.io/NAME`, as
    kubectl prints them, -A included (issue 14, kubectl conventions)."""
    docs = [doc("dop-a"), doc("dop-b", namespace="ns2")]
    listed = json.loads(render.machine_output(docs, "json", single=False, namespaces=False))
    assert listed["kind"] == "List" and [i["metadata"]["name"] for i in listed["items"]] == ["dop-a", "dop-b"]
    as_yaml = yaml.safe_load(render.machine_output(docs, "yaml", single=False, namespaces=False))
    assert as_yaml["items"][1]["metadata"]["namespace"] == "ns2"
    names = "delegatedoperation.dops.io/dop-a\ndelegatedoperation.dops.io/dop-b"
    assert render.machine_output(docs, "name", single=False, namespaces=False) == names
    assert render.machine_output(docs, "name", single=False, namespaces=True) == names


# --------------------------------------------------------------------------------------------- wait verdicts


@pytest.mark.parametrize(
    ("state", "target", "code"),
    [
        ("queued", Target.terminal, None),
        ("running", Target.completed, None),
        ("completed", Target.terminal, 0),
        ("failed", Target.terminal, 1),
        ("completed", Target.completed, 0),
        ("failed", Target.completed, 1),
        ("failed", Target.failed, 0),
        ("completed", Target.failed, 1),
    ],
)
def test_wait_verdicts(state: str, target: Target, code: int | None) -> None:
    """issue 6 / CLI wait exit codes: 0 when the awaited state is reached, 1 when it no longer can be."""
    assert verdict(doc(state=state), target) == code


# --------------------------------------------------------------------------------------------- parsers


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("30s", 30.0), ("5m", 300.0), ("1h30m", 5400.0), ("250ms", 0.25), ("90", 90.0), ("1.5", 1.5), ("2d", 172800.0),
     ("0", 0.0), (None, None), ("", None)],
)  # fmt: skip
def test_parse_duration(text: str | None, seconds: float | None) -> None:
    """issue 6 / CLI wait --timeout: Go-style durations or plain seconds."""
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["abc", "5x", "-1", "1h-5m", "s"])
def test_parse_duration_rejects_garbage(text: str) -> None:
    """issue 6 / CLI: a bad duration is a usage error (exit 2), not a traceback."""
    with pytest.raises(typer.BadParameter):
        parse_duration(text)


def test_parse_params_json_values_and_text() -> None:
    """issue 6 / CLI submit --param k=v: values are JSON when they parse, else text; later keys win."""
    params = parse_params(
        ["n=5", "ratio=0.5", "flag=true", "items=[1,2]", "msg=hello world", "empty=", "eq=a=b", "n=6"],
        '{"base": {"x": 1}, "n": 1}',
    )
    assert params == {
        "base": {"x": 1},
        "n": 6,
        "ratio": 0.5,
        "flag": True,
        "items": [1, 2],
        "msg": "hello world",
        "empty": "",
        "eq": "a=b",
    }
    for bad in (["novalue"], ["=x"]):
        with pytest.raises(typer.BadParameter):
            parse_params(bad)
    with pytest.raises(typer.BadParameter):
        parse_params(None, "[1]")


@pytest.mark.parametrize(
    ("ref", "expected"),
    [
        ("dop-a", ("default", "dop-a")),
        ("team/dop-a", ("team", "dop-a")),
        ("delegatedoperation.dops.io/dop-a", ("default", "dop-a")),
        ("delegatedoperations/dop-a", ("default", "dop-a")),
    ],
)
def test_parse_ref(ref: str, expected: tuple[str, str]) -> None:
    """issue 6 / CLI: NAME, NAMESPACE/NAME, and kubectl's `-o name` form are all accepted."""
    assert parse_ref(ref, "default") == expected


@pytest.mark.parametrize("ref", ["Bad_Name", "a/b/c", "", "NS/x"])
def test_parse_ref_rejects_invalid_names(ref: str) -> None:
    """issue 6 / CLI: an invalid name is a usage error."""
    with pytest.raises(typer.BadParameter):
        parse_ref(ref, "default")
