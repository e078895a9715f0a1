"""State changes through DelegatedOperationService (fiftyone-semantics §7 "State changes", §1.2-1.4, §10).

Aspects covered:
- 9: running → completed → failed, updated_at moving each time, failed result.error stored (no transition table).
- 10: get_queued/get_running/get_scheduled_operations (also by operator / dataset_name) follow transitions.
- 11: set_queued(required_state=SCHEDULED) returns the doc for SCHEDULED ops and None for RUNNING ones;
  only the former change.
- 12: set_completed works from inside a running asyncio loop.
- 13: set_label returns and persists the label; set_pinned; neither moves updated_at.
- timestamps and results are never cleared (FAILED after COMPLETED keeps completed_at; re-QUEUED keeps failed_at).
- required_state on a missing operation → None; without required_state a missing operation → None too.
- set_progress: any state, replaces the whole progress, does not move updated_at; run_link/log_path/monitored;
  set_log_upload_error / set_log_size (§10); ping.
- set_failed(update_pipeline=parent): the child's error lands in the parent's pipeline_run_info even when the
  child's CAS failed; the parent's state is untouched.
- outputs_schema moves into metadata on completion; the run-state label follows the status.
"""

from __future__ import annotations

import asyncio

import pytest

from dops import DelegatedOperationService, ExecutionProgress, ExecutionResult, ExecutionRunState
from dops.api import constants as c
from dops.k8s import DelegatedOperationRepository

pytestmark = pytest.mark.both_planes


def test_running_completed_failed_moves_updated_at(service: DelegatedOperationService) -> None:
    """§7 9: COMPLETED→FAILED is allowed; updated_at changes at every state change."""
    doc = service.queue_operation("@dops/examples/echo")
    running = service.set_running(doc.id)  # type: ignore[arg-type]
    assert running is not None and running.run_state == "running" and running.started_at is not None
    assert running.updated_at is not None and doc.updated_at is not None and running.updated_at > doc.updated_at
    completed = service.set_completed(doc.id, result={"ok": 1})  # type: ignore[arg-type]
    assert completed is not None and completed.run_state == "completed"
    assert completed.updated_at is not None and completed.updated_at > running.updated_at
    assert completed.result == ExecutionResult(result={"ok": 1})
    failed = service.set_failed(doc.id, result=ExecutionResult(error="Traceback: boom"))  # type: ignore[arg-type]
    assert failed is not None and failed.run_state == "failed" and failed.result is not None
    assert failed.result.error == "Traceback: boom"
    assert failed.updated_at is not None and failed.updated_at > completed.updated_at
    assert failed.completed_at == completed.completed_at  # never cleared
    assert failed.started_at == running.started_at


def test_get_state_lists_follow_transitions(service: DelegatedOperationService) -> None:
    """§7 10: counting via get_queued/get_running/get_scheduled_operations reflects transitions."""
    a = service.queue_operation("@dops/examples/echo", context={"request_params": {"dataset_name": "ds1"}})
    b = service.queue_operation("@dops/examples/count", context={"request_params": {"dataset_name": "ds2"}})
    assert len(service.get_queued_operations()) == 2
    assert [d.id for d in service.get_queued_operations(dataset_name="ds1")] == [a.id]
    assert [d.id for d in service.get_queued_operations(operator="@dops/examples/count")] == [b.id]
    service.set_running(a.id)  # type: ignore[arg-type]
    assert [d.id for d in service.get_running_operations()] == [a.id]
    assert [d.id for d in service.get_queued_operations()] == [b.id]
    service.set_scheduled(b.id)  # type: ignore[arg-type]
    assert [d.id for d in service.get_scheduled_operations(dataset_name="ds2")] == [b.id]
    assert service.get_queued_operations() == []
    service.set_queued(b.id)  # type: ignore[arg-type]
    assert [d.id for d in service.get_queued_operations(operator="@dops/examples/count")] == [b.id]
    assert service.get_scheduled_operations() == []


def test_set_queued_with_required_state(service: DelegatedOperationService) -> None:
    """§7 11: set_queued(required_state=SCHEDULED): doc for SCHEDULED ops, None for RUNNING ones."""
    scheduled = [service.queue_operation("@dops/examples/echo") for _ in range(3)]
    running = [service.queue_operation("@dops/examples/echo") for _ in range(2)]
    for doc in scheduled:
        service.set_scheduled(doc.id)  # type: ignore[arg-type]
    for doc in running:
        service.set_running(doc.id)  # type: ignore[arg-type]
    for doc in scheduled:
        requeued = service.set_queued(doc.id, required_state=ExecutionRunState.SCHEDULED)  # type: ignore[arg-type]
        assert requeued is not None and requeued.run_state == "queued"
        assert requeued.scheduled_at is not None and requeued.queued_at is not None
        assert doc.queued_at is not None and requeued.queued_at > doc.queued_at
    for doc in running:
        assert service.set_queued(doc.id, required_state="scheduled") is None  # type: ignore[arg-type]
        assert service.get(doc.id).run_state == "running"  # type: ignore[arg-type]


async def test_set_completed_inside_a_running_loop(service: DelegatedOperationService) -> None:
    """§7 12: set_completed works when called from inside a running asyncio loop."""
    assert asyncio.get_running_loop() is not None
    doc = service.queue_operation("@dops/examples/echo")
    service.set_running(doc.id)  # type: ignore[arg-type]
    done = service.set_completed(doc.id, result={"v": 1}, required_state="running")  # type: ignore[arg-type]
    assert done is not None and done.run_state == "completed"


def test_set_label_and_pinned_persist_without_moving_updated_at(service: DelegatedOperationService) -> None:
    """§7 13: set_label returns and persists the label; pin/label do not touch updated_at."""
    doc = service.queue_operation("@dops/examples/echo")
    labelled = service.set_label(doc.id, "renamed")  # type: ignore[arg-type]
    assert labelled.label == "renamed" and service.get(doc.id).label == "renamed"  # type: ignore[arg-type]
    pinned = service.set_pinned(doc.id)  # type: ignore[arg-type]
    assert pinned.pinned is True and service.set_pinned(doc.id, False).pinned is False  # type: ignore[arg-type]
    assert service.get(doc.id).updated_at == doc.updated_at  # type: ignore[arg-type]


def test_requeue_keeps_old_timestamps_and_result(service: DelegatedOperationService) -> None:
    """§1.3: nothing is cleared — re-QUEUED keeps failed_at and the old result."""
    doc = service.queue_operation("@dops/examples/fail")
    failed = service.set_failed(doc.id, result=ExecutionResult(error="tb"))  # type: ignore[arg-type]
    requeued = service.set_queued(doc.id)  # type: ignore[arg-type]
    assert failed is not None and requeued is not None
    assert requeued.failed_at == failed.failed_at and requeued.result == ExecutionResult(error="tb")


def test_missing_operations_give_none(service: DelegatedOperationService) -> None:
    """§1.3: a missing id returns None, with or without required_state."""
    assert service.set_running("dop-missing") is None
    assert service.set_running("dop-missing", required_state="queued") is None
    assert service.set_completed("dop-missing", required_state="running") is None
    assert service.set_failed("dop-missing") is None
    assert service.set_scheduled("dop-missing") is None
    assert service.set_queued("dop-missing", required_state="scheduled") is None
    assert service.ping("dop-missing") is None


def test_progress_replaces_status_in_any_state(service: DelegatedOperationService) -> None:
    """§1.2: set_progress works in any state, replaces the sub-document, does not move updated_at."""
    doc = service.queue_operation("@dops/examples/count")
    first = service.set_progress(doc.id, ExecutionProgress(0.5, "halfway there"))  # type: ignore[arg-type]
    assert first.status is not None and (first.status.progress, first.status.label) == (0.5, "halfway there")
    assert first.status.updated_at is not None and first.updated_at == doc.updated_at
    second = service.set_progress(doc.id, {"progress": 0.75})  # type: ignore[arg-type]
    assert second.status is not None and second.status.label is None and second.status.progress == 0.75
    service.set_completed(doc.id)  # type: ignore[arg-type]
    after = service.set_progress(doc.id, {"label": "post-mortem"})  # type: ignore[arg-type]
    assert after.run_state == "completed" and after.status is not None and after.status.progress is None


def test_running_with_link_path_progress_and_monitor(service: DelegatedOperationService) -> None:
    """set_running: run_link/log_path set when given; progress as dict or ExecutionProgress; monitored rewritten."""
    doc = service.queue_operation("@dops/examples/count")
    running = service.set_running(  # type: ignore[arg-type]
        doc.id, progress=ExecutionProgress(0.1, "start"), run_link="http://logs/x", log_path="/logs/x", monitored=True
    )
    assert running is not None and running.run_link == "http://logs/x" and running.log_path == "/logs/x"
    assert running.monitored is True and running.status is not None and running.status.progress == 0.1
    again = service.set_running(doc.id)  # type: ignore[arg-type]
    assert again is not None and again.monitored is False and again.run_link == "http://logs/x"
    pinged = service.ping(doc.id)  # type: ignore[arg-type]
    assert pinged is not None and pinged.updated_at is not None and pinged.updated_at > again.updated_at  # type: ignore[operator]


def test_log_fields(service: DelegatedOperationService) -> None:
    """§10: set_log_upload_error and set_log_size return the updated doc."""
    doc = service.queue_operation("@dops/examples/echo")
    assert service.set_log_size(doc.id, 1234).log_size == 1234  # type: ignore[arg-type]
    assert service.set_log_upload_error(doc.id, "bucket gone").log_upload_error == "bucket gone"  # type: ignore[arg-type]


def test_outputs_schema_moves_into_metadata(service: DelegatedOperationService) -> None:
    doc = service.queue_operation("@dops/examples/echo", metadata={"inputs_schema": {"type": "object"}})
    done = service.set_completed(doc.id, result=ExecutionResult(result=1, outputs_schema={"type": "number"}))  # type: ignore[arg-type]
    assert done is not None
    assert done.metadata == {"inputs_schema": {"type": "object"}, "outputs_schema": {"type": "number"}}


def test_completed_without_result_loads_none(service: DelegatedOperationService) -> None:
    """§11 surprise 10 (FiftyOne's load rule): a completed op that returned nothing has doc.result None."""
    doc = service.queue_operation("@dops/examples/echo")
    service.set_completed(doc.id, result={"x": 1})  # type: ignore[arg-type]
    done = service.set_completed(doc.id)  # type: ignore[arg-type]
    assert done is not None and done.result is None


def test_child_error_recorded_on_parent_even_when_cas_fails(service: DelegatedOperationService) -> None:
    """§1.3 / §7 22: set_failed(update_pipeline=parent) records str(child id) → error; parent state untouched."""
    parent = service.queue_operation("@dops/examples/echo")
    child = service.queue_operation("@dops/examples/fail")
    result = service.set_failed(  # type: ignore[arg-type]
        child.id, result=ExecutionResult(error="child traceback"), required_state="running", update_pipeline=parent.id
    )
    assert result is None  # the child was queued, not running: its CAS failed
    reloaded = service.get(parent.id)  # type: ignore[arg-type]
    assert reloaded.pipeline_run_info is not None
    assert reloaded.pipeline_run_info.child_errors == {child.id: "child traceback"}
    assert reloaded.run_state == "queued"
    service.set_failed(child.id, result={"no": "error"}, update_pipeline=parent.id)  # type: ignore[arg-type]
    assert service.get(parent.id).pipeline_run_info.child_errors == {child.id: "child traceback"}  # type: ignore[arg-type, union-attr]


def test_run_state_label_follows_status(repo: DelegatedOperationRepository, namespace: str) -> None:
    """With the run-state label kept (`always`: a server without selectableFields), the dops.io/run-state mirror
    label is updated after each state change (and dropped name order on re-queue)."""
    service = DelegatedOperationService(repo, namespace=namespace, run_state_label="always")
    doc = service.queue_operation("@dops/examples/echo")
    for state, call in (
        ("running", lambda: service.set_running(doc.id, required_state="queued")),  # type: ignore[arg-type]
        ("completed", lambda: service.set_completed(doc.id)),  # type: ignore[arg-type]
        ("queued", lambda: service.set_queued(doc.id)),  # type: ignore[arg-type]
    ):
        returned = call()
        assert returned is not None and returned.resource is not None
        assert returned.resource["metadata"]["labels"][c.RUN_STATE_LABEL] == state
        stored = repo.get(service.namespace, doc.id)  # type: ignore[arg-type]
        assert stored["metadata"]["labels"][c.RUN_STATE_LABEL] == stored["status"]["runState"] == state
    assert c.NAME_ORDER_LABEL not in repo.get(service.namespace, doc.id)["metadata"]["labels"]  # type: ignore[arg-type]


@pytest.mark.parametrize("state", ["queued", "scheduled", "running", "completed", "failed"])
def test_every_state_is_visible_to_kubectl_style_field_selectors(
    service: DelegatedOperationService, repo: DelegatedOperationRepository, state: str
) -> None:
    doc = service.queue_operation("@dops/examples/echo")
    getattr(service, f"set_{state}")(doc.id)
    selected = repo.list(service.namespace, field_selector=f"status.runState={state}").items
    assert [o["metadata"]["name"] for o in selected] == [doc.id]


@pytest.mark.parametrize("value", [[1, "two", None, {"x": 1.5}], "plain text", 42, True, {"nested": {"deep": [None]}}])
def test_any_json_result_round_trips(service: DelegatedOperationService, value: object) -> None:
    doc = service.queue_operation("@dops/examples/echo")
    done = service.set_completed(doc.id, result=value)  # type: ignore[arg-type]
    assert done is not None and done.result is not None and done.result.result == value
    assert service.get(doc.id).result == ExecutionResult(result=value)  # type: ignore[arg-type]


def test_no_run_state_label_where_the_server_selects_by_field(
    service: DelegatedOperationService, repo: DelegatedOperationRepository
) -> None:
    """Issue 15: where the API server serves the CRD's selectableFields (both planes here), `auto` writes no
    run-state label at all (one write less per state change); `status.runState` field selectors find the
    operations exactly, and a label left from earlier is removed rather than left to disagree."""
    doc = service.queue_operation("@dops/examples/echo")
    assert doc.id is not None
    assert c.RUN_STATE_LABEL not in repo.get(service.namespace, doc.id)["metadata"]["labels"]
    service.set_running(doc.id, required_state="queued")
    assert [d.id for d in service.list_operations(run_state="running")] == [doc.id]
    assert c.RUN_STATE_LABEL not in repo.get(service.namespace, doc.id)["metadata"]["labels"]
    repo.patch(service.namespace, doc.id, {"metadata": {"labels": {c.RUN_STATE_LABEL: "running"}}})
    service.set_completed(doc.id)
    assert c.RUN_STATE_LABEL not in repo.get(service.namespace, doc.id)["metadata"]["labels"]
