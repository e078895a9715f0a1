"""dops.api types: FiftyOne-compatible value types and the resource → document mapping (pure, no cluster).

Aspects covered:
- ExecutionRunState values, parsing (unknown states → ValueError naming the value), is_terminal.
- Pipeline, PipelineStage, PipelineRunInfo: FiftyOne's tested behaviours (fiftyone-semantics §7, 42-48):
  empty pipelines, stage() vs explicit stages, JSON round trips, operator_uri required,
  num_distributed_tasks < 1 → None, unknown kwargs dropped, disallowed overrides stripped; CRD (camelCase) round trip.
- ExecutionResult/ExecutionProgress JSON; the load rule for results (§11 surprise 10).
- ExecutionContext coercion from the forms FiftyOne accepts.
- DelegatedOperationDocument.from_resource: every FiftyOne attribute, aware UTC datetimes, metadata assembly;
  stored empty strings (target, run link, log path, log upload error) read back as "", not None.
- condition helpers (set_condition / get_condition).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from dops.api import conditions
from dops.api.times import format_time, parse_time
from dops.api.types import (
    DelegatedOperationDocument,
    DelegatedOperationPagingParams,
    ExecutionContext,
    ExecutionProgress,
    ExecutionResult,
    ExecutionRunState,
    OperationNotFound,
    Pipeline,
    PipelineRunInfo,
    PipelineStage,
    SortByField,
    SortDirection,
)

UTC = dt.UTC


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("queued", ExecutionRunState.QUEUED),
        ("QUEUED", ExecutionRunState.QUEUED),
        ("scheduled", ExecutionRunState.SCHEDULED),
        ("running", ExecutionRunState.RUNNING),
        ("processing", ExecutionRunState.PROCESSING),
        ("completed", ExecutionRunState.COMPLETED),
        ("failed", ExecutionRunState.FAILED),
        (ExecutionRunState.FAILED, ExecutionRunState.FAILED),
    ],
)
def test_run_state_parse(value: object, expected: ExecutionRunState) -> None:
    assert ExecutionRunState.parse(value) is expected
    assert expected == expected.value  # members compare equal to FiftyOne's plain strings


@pytest.mark.parametrize("bad", ["triggered", "", None, 3, "done"])
def test_run_state_parse_rejects_unknown(bad: object) -> None:
    with pytest.raises(ValueError, match="Invalid run_state"):
        ExecutionRunState.parse(bad)


def test_terminal_states() -> None:
    assert {s for s in ExecutionRunState if s.is_terminal()} == {"completed", "failed"}


def test_paging_defaults_are_fiftyones() -> None:
    paging = DelegatedOperationPagingParams()
    assert (paging.sort_by, paging.sort_direction, paging.skip, paging.limit) == ("queued_at", -1, 0, 10)
    assert SortDirection.ASCENDING == 1 and SortDirection.DESCENDING == -1
    assert {f.value for f in SortByField} >= {"queued_at", "updated_at", "operator", "completed_at"}


# ---------------------------------------------------------------------------------------- pipelines (§7 42-49)


def test_empty_pipelines_and_stage_builder() -> None:
    """§7 42: Pipeline() and Pipeline(stages=[]) are empty; stage() equals explicit PipelineStages."""
    assert Pipeline().stages == [] and Pipeline(stages=[]).stages == []
    built = Pipeline()
    built.stage("@a/b/c", name="one", params={"x": 1})
    built.stage("@a/b/d", always_run=True)
    explicit = Pipeline(
        stages=[PipelineStage("@a/b/c", name="one", params={"x": 1}), PipelineStage("@a/b/d", always_run=True)]
    )
    assert built == explicit


def test_pipeline_json_round_trip() -> None:
    """§7 43, 45, 47: to_json/from_json round-trip equal; from_json(None) is None; overrides survive."""
    pipeline = Pipeline()
    pipeline.stage("@a/b/c", num_distributed_tasks=3, rerunnable=False, request_params_overrides={"view": [1]})
    pipeline.stage("@a/b/d")
    data = pipeline.to_json()
    assert set(data["stages"][0]) == {
        "operator_uri",
        "always_run",
        "name",
        "num_distributed_tasks",
        "params",
        "rerunnable",
        "request_params_overrides",
    }
    assert data["stages"][1]["request_params_overrides"] is None
    assert Pipeline.from_json(data) == pipeline
    assert Pipeline.from_json(data["stages"]) == pipeline
    assert Pipeline.from_json(None) is None and PipelineRunInfo.from_json(None) is None
    assert Pipeline.from_resource(pipeline.to_resource()) == pipeline
    assert pipeline.to_resource()["stages"][0] == {
        "operatorUri": "@a/b/c",
        "alwaysRun": False,
        "numDistributedTasks": 3,
        "rerunnable": False,
        "requestParamsOverrides": {"view": [1]},
    }


@pytest.mark.parametrize(("tasks", "expected"), [(0, None), (-2, None), (1, 1), ("4", 4), (None, None)])
def test_stage_distributed_tasks(tasks: object, expected: int | None) -> None:
    """§7 44: num_distributed_tasks 0 or negative → None (also via Pipeline.stage)."""
    assert PipelineStage("@a/b/c", num_distributed_tasks=tasks).num_distributed_tasks == expected  # type: ignore[arg-type]
    assert Pipeline().stage("@a/b/c", num_distributed_tasks=tasks).num_distributed_tasks == expected  # type: ignore[arg-type]


@pytest.mark.parametrize("uri", [None, ""])
def test_stage_needs_operator_uri(uri: str | None) -> None:
    """§7 44: PipelineStage(operator_uri=None) raises ValueError."""
    with pytest.raises(ValueError, match="operator_uri"):
        PipelineStage(operator_uri=uri)


def test_unknown_kwargs_are_dropped() -> None:
    """§7 48: PipelineStage/Pipeline/PipelineRunInfo accept unknown kwargs and drop them."""
    stage = PipelineStage("@a/b/c", bogus=1)  # type: ignore[call-arg]
    pipeline = Pipeline(stages=[stage], extra="x")  # type: ignore[call-arg]
    info = PipelineRunInfo(active=False, junk=2)  # type: ignore[call-arg]
    assert not hasattr(stage, "bogus") and not hasattr(pipeline, "extra") and not hasattr(info, "junk")


def test_disallowed_overrides_are_stripped() -> None:
    """FiftyOne removes dataset_id, dataset_name, delegated, ... from overrides (with an error log)."""
    stage = PipelineStage("@a/b/c", request_params_overrides={"dataset_name": "x", "view": "v", "results": 1})
    assert stage.request_params_overrides == {"view": "v"}


def test_pipeline_run_info_round_trip() -> None:
    """§7 45: PipelineRunInfo round-trips {active, stage_index, expected_children, child_errors}."""
    info = PipelineRunInfo(active=False, stage_index=2, expected_children=[1, 3], child_errors={"a": "tb"})
    assert PipelineRunInfo.from_json(info.to_json()) == info
    assert PipelineRunInfo.from_resource(info.to_resource()) == info
    assert PipelineRunInfo() == PipelineRunInfo(active=True, stage_index=0)


# ---------------------------------------------------------------------------------------- results / progress


@pytest.mark.parametrize(
    ("stored", "expected"),
    [
        (None, None),
        ({}, None),
        ({"result": None, "error": None}, None),  # a completed op that returned nothing
        ({"result": {"a": 1}}, ExecutionResult(result={"a": 1})),
        (
            {"error": "Traceback...", "errorMessage": "boom"},
            ExecutionResult(error="Traceback...", error_message="boom"),
        ),
        ({"result": 0}, None),  # FiftyOne's truthiness rule
    ],
)
def test_result_load_rule(stored: dict[str, object] | None, expected: ExecutionResult | None) -> None:
    assert ExecutionResult.from_resource(stored) == expected


def test_result_to_json_keys() -> None:
    assert set(ExecutionResult(result=1).to_json()) == {
        "result",
        "executor",
        "error",
        "error_message",
        "delegated",
        "validation_ctx",
    }


def test_progress_from_resource() -> None:
    progress = ExecutionProgress.from_resource({"progress": 1, "label": "done", "updatedAt": "2025-01-02T03:04:05Z"})
    assert progress == ExecutionProgress(1.0, "done", dt.datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC))
    assert ExecutionProgress.from_resource(None) is None


# ---------------------------------------------------------------------------------------- context


@pytest.mark.parametrize(
    ("value", "params"),
    [
        (None, {}),
        ({"request_params": {"a": 1}}, {"a": 1}),
        ({"request_params": None}, {}),
        ({"request_params": {"a": 1}, "user": "ignored"}, {"a": 1}),
        (ExecutionContext({"b": 2}), {"b": 2}),
    ],
)
def test_context_coercion(value: object, params: dict[str, object]) -> None:
    assert ExecutionContext.coerce(value).request_params == params


@pytest.mark.parametrize("bad", [{"params": {}}, "ctx", 3, {"request_params": "x"}])
def test_context_coercion_rejects(bad: object) -> None:
    with pytest.raises(ValueError, match="context"):
        ExecutionContext.coerce(bad)


def test_context_properties() -> None:
    ctx = ExecutionContext({"params": {"n": 1}, "dataset_name": "ds", "dataset_id": "abc", "delegation_target": "t"})
    assert (ctx.params, ctx.dataset_name, ctx.dataset_id, ctx.delegation_target) == ({"n": 1}, "ds", "abc", "t")
    assert ctx.serialize() == {"request_params": ctx.request_params}


# ---------------------------------------------------------------------------------------- documents


def test_document_from_resource_maps_every_field() -> None:
    resource = {
        "apiVersion": "dops.io/v1alpha1",
        "kind": "DelegatedOperation",
        "metadata": {"name": "dop-x", "namespace": "ns", "resourceVersion": "42"},
        "spec": {
            "operator": "@a/b/c",
            "delegationTarget": "gpu",
            "context": {"params": {"n": 1}, "dataset_name": "ds"},
            "datasetId": "abc",
            "parentId": "dop-parent",
            "inputsSchema": {"type": "object"},
            "metadata": {"extra": 1},
            "pipeline": {"stages": [{"operatorUri": "@a/b/d", "alwaysRun": True}]},
            "pinned": True,
            "archived": True,
            "rerunnable": False,
        },
        "status": {
            "runState": "completed",
            "queuedAt": "2025-01-01T00:00:00.000001Z",
            "scheduledAt": "2025-01-01T00:00:01Z",
            "startedAt": "2025-01-01T00:00:02Z",
            "completedAt": "2025-01-01T00:00:03+00:00",
            "updatedAt": "2025-01-01T01:00:03+01:00",
            "progress": {"progress": 0.5, "label": "half"},
            "result": {"result": {"ok": True}},
            "outputsSchema": {"type": "string"},
            "runLink": "http://x",
            "logPath": "/logs/x",
            "logSize": 12,
            "logUploadError": "nope",
            "monitored": True,
            "pipelineRunInfo": {"active": False, "stageIndex": 1, "childErrors": {"c": "e"}},
            "jobName": "dop-x-1",
            "podName": "dop-x-1-abc",
            "attempt": 1,
        },
    }
    doc = DelegatedOperationDocument.from_resource(resource)
    assert doc.id == "dop-x" and doc.namespace == "ns" and doc.resource_version == "42"
    assert doc.operator == "@a/b/c" and doc.label == "@a/b/c"  # a missing label reads as the URI
    resource["spec"]["label"] = ""
    assert DelegatedOperationDocument.from_resource(resource).label == ""  # a stored "" stays "", as in FiftyOne
    assert doc.delegation_target == "gpu"
    assert doc.context == ExecutionContext({"params": {"n": 1}, "dataset_name": "ds"})
    assert doc.run_state == ExecutionRunState.COMPLETED
    assert doc.queued_at == dt.datetime(2025, 1, 1, 0, 0, 0, 1, tzinfo=UTC)
    assert doc.completed_at == dt.datetime(2025, 1, 1, 0, 0, 3, tzinfo=UTC)
    assert doc.updated_at == dt.datetime(2025, 1, 1, 0, 0, 3, tzinfo=UTC)  # offsets normalised to UTC
    assert doc.failed_at is None
    for when in (doc.queued_at, doc.scheduled_at, doc.started_at, doc.completed_at, doc.updated_at):
        assert when is not None and when.tzinfo is not None and when.utcoffset() == dt.timedelta(0)
    assert doc.status == ExecutionProgress(0.5, "half", None)
    assert doc.result == ExecutionResult(result={"ok": True})
    assert doc.metadata == {"extra": 1, "inputs_schema": {"type": "object"}, "outputs_schema": {"type": "string"}}
    assert (doc.run_link, doc.log_path, doc.log_size, doc.log_upload_error) == ("http://x", "/logs/x", 12, "nope")
    assert doc.pinned and doc.archived and not doc.rerunnable and doc.monitored
    assert doc.dataset_id == "abc" and doc.parent_id == "dop-parent"
    assert doc.pipeline == Pipeline(stages=[PipelineStage("@a/b/d", always_run=True)])
    assert doc.pipeline_run_info == PipelineRunInfo(active=False, stage_index=1, child_errors={"c": "e"})
    assert (doc.job_name, doc.pod_name, doc.attempt) == ("dop-x-1", "dop-x-1-abc", 1)
    assert doc.num_distributed_tasks is None
    assert doc._doc is resource or doc._doc == resource
    assert doc.to_dict()["run_state"] == "completed"


def test_document_defaults_for_a_bare_resource() -> None:
    doc = DelegatedOperationDocument.from_resource({"metadata": {"name": "x"}, "spec": {"operator": "@a/b/c"}})
    assert doc.run_state is None and doc.status is None and doc.result is None
    assert doc.metadata == {} and doc.pipeline is None and doc.pipeline_run_info is None
    assert (doc.pinned, doc.archived, doc.rerunnable, doc.monitored) == (False, False, True, False)


@pytest.mark.parametrize(
    ("where", "key", "attribute"),
    [
        ("spec", "delegationTarget", "delegation_target"),
        ("status", "runLink", "run_link"),
        ("status", "logPath", "log_path"),
        ("status", "logUploadError", "log_upload_error"),
    ],
)
def test_empty_strings_read_back_as_stored(where: str, key: str, attribute: str) -> None:
    """Issue 12 item 4: FiftyOne returns a stored "" as ""; only a missing value reads as None."""
    resource: dict[str, dict[str, Any]] = {"metadata": {"name": "x"}, "spec": {"operator": "@a/b/c"}, "status": {}}
    assert getattr(DelegatedOperationDocument.from_resource(resource), attribute) is None
    resource[where][key] = ""
    assert getattr(DelegatedOperationDocument.from_resource(resource), attribute) == ""


def test_operation_not_found_is_a_value_error() -> None:
    error = OperationNotFound("dop-x")
    assert isinstance(error, ValueError) and "No operation found with ID dop-x" in str(error)


# ---------------------------------------------------------------------------------------- times and conditions


def test_times_round_trip() -> None:
    when = dt.datetime(2025, 3, 4, 5, 6, 7, 890123, tzinfo=UTC)
    assert format_time(when) == "2025-03-04T05:06:07.890123Z"
    assert parse_time(format_time(when)) == when
    assert format_time(dt.datetime(2025, 3, 4, 5, 6, 7)) == "2025-03-04T05:06:07.000000Z"  # naive = UTC
    assert parse_time(None) is None and parse_time("") is None
    with pytest.raises(ValueError):
        parse_time("2025-03-04T05:06:07")  # no zone
    with pytest.raises(ValueError):
        parse_time("yesterday")


def test_set_condition_moves_transition_time_only_on_status_change() -> None:
    t0 = dt.datetime(2025, 1, 1, tzinfo=UTC)
    t1 = t0 + dt.timedelta(minutes=1)
    status: dict[str, object] = {}
    assert conditions.set_condition(status, "Running", True, "Running", "started", now=t0, generation=1)
    assert not conditions.set_condition(status, "Running", True, "Running", "started", now=t1, generation=1)
    assert conditions.set_condition(status, "Running", True, "Running", "still", now=t1, generation=2)
    running = conditions.get_condition(status, "Running")
    assert running is not None and running["lastTransitionTime"] == format_time(t0)
    assert running["observedGeneration"] == 2 and running["message"] == "still"
    conditions.set_condition(status, "Running", False, "Completed", now=t1)
    running = conditions.get_condition(status, "Running")
    assert running is not None and running["lastTransitionTime"] == format_time(t1) and running["status"] == "False"
    assert conditions.is_condition_true(status, "Running") is False
    conditions.set_condition(status, "Succeeded", "Unknown", "Queued", now=t1)
    assert [c["type"] for c in status["conditions"]] == ["Running", "Succeeded"]  # type: ignore[union-attr]
    with pytest.raises(ValueError, match="CamelCase"):
        conditions.set_condition(status, "Running", True, "not camel", now=t1)
    with pytest.raises(ValueError, match="condition status"):
        conditions.set_condition(status, "Running", "Maybe", "Running", now=t1)
