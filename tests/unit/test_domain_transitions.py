"""dops.domain.transitions / results / resources: status changes, patch forms, caps and validation (pure).

Aspects covered:
- every FiftyOne transition sets runState, updatedAt and its own timestamp (table), running sets monitored,
  completed/failed set the result (null result → {}), outputs_schema only on completion;
  processing/unknown → ValueError.
- the CAS JSON Patch: first op tests /status/runState; adds only; None stripped. The merge form keeps nulls.
- progress validation (FiftyOne's rules + the CRD's bounds), text caps, log fields.
- result caps: > 65536 bytes of JSON → ValueError naming the limit; non-JSON results; tracebacks keep their tail.
- new operation resources and rerun specs (what is copied, what FiftyOne refuses); an empty delegation
  target is stored as "".
- required_state is tested exactly (no case folding, no validation); query-shaped values are refused.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import pytest

from dops.api import constants as c
from dops.api.types import ExecutionProgress, ExecutionResult, ExecutionRunState, Pipeline
from dops.domain import resources, results, transitions

UTC = dt.UTC
NOW = dt.datetime(2025, 6, 1, 12, 0, 0, 5, tzinfo=UTC)
STAMP = "2025-06-01T12:00:00.000005Z"


@pytest.mark.parametrize(
    ("state", "extra"),
    [
        ("queued", {"queuedAt": STAMP}),
        ("scheduled", {"scheduledAt": STAMP}),
        ("running", {"startedAt": STAMP, "monitored": False}),
        ("completed", {"completedAt": STAMP, "result": {"result": None, "error": None, "errorMessage": None}}),
        ("failed", {"failedAt": STAMP, "result": {"result": None, "error": None, "errorMessage": None}}),
    ],
)
def test_state_change_fields(state: str, extra: dict[str, Any]) -> None:
    change = transitions.state_change(state, NOW)
    assert change.fields == {"runState": state, "updatedAt": STAMP, **extra}
    assert change.run_state == state


@pytest.mark.parametrize("bad", ["processing", "triggered", "", None])
def test_state_change_rejects_unstorable_states(bad: object) -> None:
    with pytest.raises(ValueError, match="Invalid run_state"):
        transitions.state_change(bad, NOW)


def test_completed_with_result_and_outputs_schema() -> None:
    result = ExecutionResult(result={"n": 3}, outputs_schema={"type": "object"})
    change = transitions.state_change("completed", NOW, result=result, run_link="http://x", log_path="/l")
    assert change.fields["result"] == {"result": {"n": 3}, "error": None, "errorMessage": None}
    assert change.fields["outputsSchema"] == {"type": "object"}
    assert change.fields["runLink"] == "http://x" and change.fields["logPath"] == "/l"
    failed = transitions.state_change("failed", NOW, result=result)
    assert "outputsSchema" not in failed.fields  # discarded on failure, as in FiftyOne


def test_running_with_progress_and_monitored() -> None:
    change = transitions.state_change("running", NOW, progress={"progress": 0.25}, monitored=True)
    assert change.fields["monitored"] is True
    assert change.fields["progress"] == {"progress": 0.25, "label": None, "updatedAt": STAMP}
    # FiftyOne needs a dict here (its ExecutionProgress path raises TypeError); dops takes both.
    same = transitions.state_change("running", NOW, progress=ExecutionProgress(0.25))
    assert same.fields["progress"] == change.fields["progress"]


def test_cas_patch_tests_the_state_first_and_only_adds() -> None:
    change = transitions.state_change("completed", NOW, result=ExecutionResult(result=[1, 2]))
    patch = transitions.cas_patch(change, "running")
    assert patch[0] == {"op": "test", "path": "/status/runState", "value": "running"}
    assert {op["op"] for op in patch[1:]} == {"add"}
    by_path = {op["path"]: op["value"] for op in patch[1:]}
    assert by_path["/status/runState"] == "completed"
    assert by_path["/status/result"] == {"result": [1, 2]}  # None members stripped
    assert transitions.merge_patch(change) == {"status": change.fields}


@pytest.mark.parametrize(
    ("required", "tested"),
    [
        (ExecutionRunState.RUNNING, "running"),
        ("running", "running"),
        ("RUNNING", "RUNNING"),  # exact, like FiftyOne's filter: this CAS can never win
        ("bogus", "bogus"),  # not an error: FiftyOne's CAS returns None for it
        ("processing", "processing"),
        ("", ""),
        (5, 5),
    ],
)
def test_cas_patch_tests_the_required_state_exactly(required: object, tested: object) -> None:
    """Issue 12 items 1-2: no case folding, no validation; only the server's test decides."""
    patch = transitions.cas_patch(transitions.state_change("completed", NOW), required)
    assert patch[0] == {"op": "test", "path": "/status/runState", "value": tested}


@pytest.mark.parametrize("bad", [{"$in": ["queued", "running"]}, ["queued"], object()])
def test_cas_patch_rejects_query_shaped_required_states(bad: object) -> None:
    """FiftyOne would hand these to MongoDB as a query; a JSON Patch test cannot express one."""
    with pytest.raises(ValueError, match="required_state must be a run state name"):
        transitions.cas_patch(transitions.state_change("completed", NOW), bad)


def test_cas_patch_for_a_null_result_stores_an_empty_result() -> None:
    patch = transitions.cas_patch(transitions.state_change("completed", NOW), "running")
    assert {"op": "add", "path": "/status/result", "value": {}} in patch


@pytest.mark.parametrize(
    ("progress", "stored"),
    [
        ({"progress": 0.5, "label": "half"}, {"progress": 0.5, "label": "half"}),
        (ExecutionProgress(progress=1), {"progress": 1.0, "label": None}),
        (ExecutionProgress(label="only a label"), {"progress": None, "label": "only a label"}),
        ({"progress": 0}, {"progress": 0.0, "label": None}),
    ],
)
def test_progress_change(progress: Any, stored: dict[str, Any]) -> None:
    change = transitions.progress_change(progress, NOW)
    assert change.fields == {"progress": {**stored, "updatedAt": STAMP}}


@pytest.mark.parametrize(
    ("progress", "message"),
    [
        (None, "Invalid progress"),
        ("50%", "Invalid progress"),
        ({"progress": None, "label": None}, "needs a progress value or a label"),
        ({"progress": None, "label": ""}, "needs a progress value or a label"),
        ({"progress": 1.5}, "between 0 and 1"),
        ({"progress": -0.1}, "between 0 and 1"),
        ({"progress": float("nan")}, "number between 0 and 1"),
        ({"progress": True}, "number between 0 and 1"),
        ({"progress": "0.5"}, "number between 0 and 1"),
        ({"progress": 0.5, "label": 3}, "label must be a string"),
        ({"progress": 0.5, "label": "x" * 1025}, "longer than 1024"),
        ({"bogus": 1}, "Invalid progress"),
    ],
)
def test_progress_validation(progress: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        transitions.progress_change(progress, NOW)


def test_other_changes() -> None:
    assert transitions.heartbeat(NOW).fields == {"updatedAt": STAMP}
    assert transitions.log_size_change(10).fields == {"logSize": 10}
    assert transitions.log_upload_error_change("disk full").fields == {"logUploadError": "disk full"}
    assert transitions.child_error_change("dop-child", "tb").fields == {
        "pipelineRunInfo": {"childErrors": {"dop-child": "tb"}}
    }
    for bad in (-1, 1.5, "3", True):
        with pytest.raises(ValueError, match="log_size"):
            transitions.log_size_change(bad)
    with pytest.raises(ValueError, match="log_upload_error"):
        transitions.log_upload_error_change(3)
    with pytest.raises(ValueError, match="run_link"):
        transitions.state_change("running", NOW, run_link="x" * 3000)


def test_first_sight_status_keeps_the_name_order_invariant() -> None:
    from dops.domain import names

    name = names.new_operation_name("@a/b/c", NOW - dt.timedelta(seconds=30), b"1234")
    marked = {"metadata": {"name": name, "labels": {c.NAME_ORDER_LABEL: c.NAME_ORDER_QUEUED_AT}}}
    change = transitions.first_sight_status(marked, NOW)
    assert change.fields["runState"] == "queued"
    assert change.fields["queuedAt"] == "2025-06-01T11:59:30.000005Z" and change.fields["updatedAt"] == STAMP
    foreign = transitions.first_sight_status({"metadata": {"name": "made-by-kubectl"}}, NOW)
    assert foreign.fields["queuedAt"] == STAMP


def test_conditions_for_state() -> None:
    conditions = transitions.conditions_for_state("completed", NOW, generation=3)
    by_type = {cond["type"]: cond for cond in conditions}
    assert by_type["Running"]["status"] == "False" and by_type["Succeeded"]["status"] == "True"
    assert by_type["Succeeded"]["reason"] == "Completed" and by_type["Succeeded"]["observedGeneration"] == 3
    queued = {cond["type"]: cond["status"] for cond in transitions.conditions_for_state(None, NOW)}
    assert queued == {"Running": "False", "Succeeded": "Unknown"}


# ---------------------------------------------------------------------------------------- results


def test_result_size_limit_names_the_limit() -> None:
    fits = "x" * (c.MAX_RESULT_BYTES - 2)  # the JSON quotes make it exactly the limit
    assert results.check_result_size(fits) == c.MAX_RESULT_BYTES
    with pytest.raises(ValueError, match=r"65536 bytes \(MAX_RESULT_BYTES\)"):
        results.check_result_size(fits + "x")
    with pytest.raises(ValueError, match="65536"):
        transitions.state_change("completed", NOW, result=ExecutionResult(result={"blob": "y" * 70_000}))


@pytest.mark.parametrize("bad", [{"when": dt.datetime(2025, 1, 1)}, {1, 2}, float("inf"), object()])
def test_non_json_results_are_refused(bad: Any) -> None:
    with pytest.raises(ValueError, match="JSON"):
        results.result_status(ExecutionResult(result=bad))


def test_long_tracebacks_keep_their_tail() -> None:
    traceback = "".join(f"line {i}\n" for i in range(10_000)) + "ValueError: the real cause\n"
    stored = results.result_status(ExecutionResult(error=traceback, error_message="m" * 5000))
    assert len(stored["error"]) == c.MAX_ERROR_CHARS
    assert stored["error"].startswith("...[truncated") and stored["error"].endswith("ValueError: the real cause\n")
    assert len(stored["errorMessage"]) == c.MAX_ERROR_MESSAGE_CHARS


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, None),
        ({"a": 1}, ExecutionResult(result={"a": 1})),
        (ExecutionResult(error="e"), ExecutionResult(error="e")),
        (0, ExecutionResult(result=0)),
    ],
)
def test_coerce_result(value: Any, expected: ExecutionResult | None) -> None:
    assert results.coerce_result(value) == expected


# ---------------------------------------------------------------------------------------- resources


def test_new_operation_resource() -> None:
    spec = resources.build_spec(
        operator="@dops/examples/count",
        request_params={"params": {"n": 2, "panel_state": {"big": 1}}, "dataset_name": "ds", "run_doc": "x"},
        dataset_id="abc",
        delegation_target="gpu",
        metadata={"inputs_schema": {"type": "object"}, "note": "n"},
        pipeline=Pipeline(),
        policy={"timeoutSeconds": 60},
    )
    body = resources.operation_resource("dop-1", "ns", spec, name_ordered=True)
    assert body["metadata"]["labels"][c.NAME_ORDER_LABEL] == c.NAME_ORDER_QUEUED_AT
    assert body["metadata"]["labels"][c.RUN_STATE_LABEL] == "queued"
    assert body["spec"] == {
        "operator": "@dops/examples/count",
        "label": "@dops/examples/count",
        "delegationTarget": "gpu",
        "context": {"params": {"n": 2}, "dataset_name": "ds"},
        "datasetId": "abc",
        "inputsSchema": {"type": "object"},
        "metadata": {"note": "n"},
        "pipeline": {"stages": []},
        "rerunnable": True,
        "timeoutSeconds": 60,
    }
    json.dumps(body)


@pytest.mark.parametrize(("target", "stored"), [(None, None), ("", ""), ("gpu", "gpu")])
def test_empty_delegation_target_is_kept(target: str | None, stored: str | None) -> None:
    """Issue 12 item 4: "" is stored (and read back) as "", like FiftyOne; it means the default target, and
    gets no target label (`kubectl get -l dops.io/target=...` selects named targets only)."""
    spec = resources.build_spec(operator="@a/b/c", delegation_target=target)
    assert spec.get("delegationTarget") == stored and ("delegationTarget" in spec) is (stored is not None)
    labels = resources.operation_resource("dop-1", "ns", spec)["metadata"]["labels"]
    assert (c.TARGET_LABEL in labels) is bool(target)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"operator": ""}, "operator"),
        ({"operator": "has space"}, "invalid operator URI"),
        ({"operator": None}, "operator"),
        ({"operator": "@a/b/c", "label": 3}, "label must be a string"),
        ({"operator": "@a/b/c", "label": "x" * 1025}, "longer than 1024"),
        ({"operator": "@a/b/c", "delegation_target": "Not A Name"}, "delegation_target"),
        ({"operator": "@a/b/c", "request_params": {"x": object()}}, "JSON"),
        ({"operator": "@a/b/c", "metadata": "m"}, "metadata must be a dict"),
        ({"operator": "@a/b/c", "rerunnable": "yes"}, "rerunnable"),
        ({"operator": "@a/b/c", "policy": {"retries": 99}}, "retries"),
        ({"operator": "@a/b/c", "policy": {"bogus": 1}}, "unknown run-policy"),
        ({"operator": "@a/b/c", "pipeline": "p"}, "pipeline"),
    ],
)
def test_build_spec_rejects_bad_input(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        resources.build_spec(**kwargs)


def test_caller_dicts_are_not_mutated() -> None:
    params = {"params": {"panel_state": {"x": 1}, "n": 1}}
    resources.build_spec(operator="@a/b/c", request_params=params)
    assert params == {"params": {"panel_state": {"x": 1}, "n": 1}}  # FiftyOne pops it from the caller's dict


def test_rerun_spec() -> None:
    original = {
        "metadata": {"name": "dop-1"},
        "spec": {
            "operator": "@a/b/c",
            "label": "L",
            "delegationTarget": "t",
            "context": {"params": {}},
            "pinned": True,
            "archived": True,
            "rerunnable": True,
            "priority": 5,
        },
    }
    assert resources.rerun_spec(original) == {
        "operator": "@a/b/c",
        "label": "L",
        "delegationTarget": "t",
        "context": {"params": {}},
        "rerunnable": True,
        "priority": 5,
    }
    with pytest.raises(ValueError, match="not marked as rerunnable"):
        resources.rerun_spec({"metadata": {"name": "x"}, "spec": {"operator": "@a/b/c", "rerunnable": False}})
    with pytest.raises(ValueError, match="Rerunning pipeline child operations"):
        resources.rerun_spec({"metadata": {"name": "x"}, "spec": {"operator": "@a/b/c", "parentId": "p"}})


def test_spec_patches() -> None:
    assert resources.spec_patch(label="x", pinned=True) == {"spec": {"label": "x", "pinned": True}}
    with pytest.raises(ValueError, match="pinned must be a bool"):
        resources.spec_patch(pinned="yes")
    with pytest.raises(ValueError, match="cannot be patched"):
        resources.spec_patch(operator="x")


def test_a_cancel_is_recorded_by_the_write_that_fails_the_operation() -> None:
    now = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    change = transitions.state_change("failed", now, cancelled_by="  dops fail\n(ann@laptop) ")
    assert change.fields["cancelledBy"] == "dops fail (ann@laptop)"
    assert change.fields["cancelledAt"] == change.fields["failedAt"]
    assert transitions.cancelled_by(change.fields) == "dops fail (ann@laptop)"
    assert "cancelledBy" not in transitions.state_change("failed", now).fields
    with pytest.raises(ValueError, match="only a change to failed can be a cancel"):
        transitions.state_change("completed", now, cancelled_by="ann")


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        ({"runState": "failed", "failedAt": "T1", "cancelledBy": "ann", "cancelledAt": "T1"}, "ann"),
        ({"runState": "failed", "failedAt": "T2", "cancelledBy": "ann", "cancelledAt": "T1"}, None),  # re-failed
        ({"runState": "queued", "failedAt": "T1", "cancelledBy": "ann", "cancelledAt": "T1"}, None),  # re-queued
        ({"runState": "failed", "failedAt": "T1"}, None),
    ],
)
def test_cancelled_by_only_for_the_current_failure(status: dict[str, Any], expected: str | None) -> None:
    assert transitions.cancelled_by(status) == expected
