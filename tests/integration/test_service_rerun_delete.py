"""Rerun, deletion and delete_for_dataset (fiftyone-semantics §7 15, 27-29; §1.5; §6).

Aspects covered:
- 27: rerun of a FAILED op → a new id, same delegation_target, QUEUED with queued_at, started/completed/result
  empty; the original is untouched. Copied: label (current), context, metadata, pipeline, rerunnable, run policy;
  fresh: pinned/archived/progress/result/run_link.
- 28: rerun works after a dataset rename (the stored context, incl. dataset_id, is reused).
- 29: rerun refuses non-rerunnable operations and pipeline children with FiftyOne's messages; missing id → ValueError.
- delete_operation returns the pre-deletion document (None when missing), with no state guard (running ops too).
- 15: delete_for_dataset removes all of a dataset's operations, archived and running ones included, and no others.
"""

from __future__ import annotations

import pytest

from dops import DelegatedOperationService, ExecutionResult, Pipeline
from dops.domain import resources
from dops.emulator import EmbeddedServer
from dops.k8s import Conflict, DelegatedOperationRepository

pytestmark = pytest.mark.both_planes


def test_rerun_failed_operation(service: DelegatedOperationService) -> None:
    """§7 27."""
    pipeline = Pipeline()
    pipeline.stage("@dops/examples/echo")
    original = service.queue_operation(
        "@dops/examples/fail",
        label="first try",
        delegation_target="gpu",
        context={"request_params": {"params": {"message": "x"}, "dataset_id": "d1"}},
        metadata={"inputs_schema": {"type": "object"}, "note": 1},
        pipeline=pipeline,
    )
    service.set_running(original.id, run_link="http://old")  # type: ignore[arg-type]
    service.set_progress(original.id, {"progress": 0.5})  # type: ignore[arg-type]
    service.set_pinned(original.id)  # type: ignore[arg-type]
    service.set_label(original.id, "renamed")  # type: ignore[arg-type]
    service.archive_operation(original.id)  # type: ignore[arg-type]
    failed = service.set_failed(original.id, result=ExecutionResult(error="boom"))  # type: ignore[arg-type]
    rerun = service.rerun_operation(original.id)  # type: ignore[arg-type]
    assert rerun.id != original.id
    assert rerun.run_state == "queued" and rerun.queued_at is not None
    assert rerun.queued_at > failed.failed_at  # type: ignore[operator, union-attr]
    assert rerun.started_at is None and rerun.completed_at is None and rerun.failed_at is None
    assert rerun.result is None and rerun.status is None and rerun.run_link is None
    assert rerun.delegation_target == "gpu" and rerun.label == "renamed"
    assert rerun.context == original.context and rerun.dataset_id == "d1"
    assert rerun.metadata == {"inputs_schema": {"type": "object"}, "note": 1}
    assert rerun.pipeline == pipeline and rerun.rerunnable is True
    assert rerun.pinned is False and rerun.archived is False
    untouched = service.get(original.id)  # type: ignore[arg-type]
    assert untouched.run_state == "failed" and untouched.pinned and untouched.archived
    completed = service.set_completed(rerun.id, result={"ok": True}, required_state="queued")  # type: ignore[arg-type]
    assert completed is not None and completed.run_state == "completed"


def test_rerun_after_dataset_rename(service: DelegatedOperationService) -> None:
    """§7 28: the stored request_params (dataset_id included) are reused as stored."""
    original = service.queue_operation(
        "@dops/examples/echo", context={"request_params": {"dataset_name": "old-name", "dataset_id": "64f0"}}
    )
    rerun = service.rerun_operation(original.id)  # type: ignore[arg-type]
    assert rerun.context is not None and rerun.context.request_params == {
        "dataset_name": "old-name",
        "dataset_id": "64f0",
    }
    assert rerun.dataset_id == "64f0"


def test_rerun_refusals(service: DelegatedOperationService, repo: DelegatedOperationRepository) -> None:
    """§7 29."""
    fixed = service.queue_operation("@dops/examples/echo", rerunnable=False)
    with pytest.raises(ValueError, match="not marked as rerunnable"):
        service.rerun_operation(fixed.id)  # type: ignore[arg-type]
    parent = service.queue_operation("@dops/examples/echo")
    spec = resources.build_spec(operator="@dops/examples/echo", parent_id=parent.id)
    repo.create(service.namespace, resources.operation_resource("child-op", service.namespace, spec))
    with pytest.raises(ValueError, match="Rerunning pipeline child operations is not supported"):
        service.rerun_operation("child-op")
    with pytest.raises(ValueError, match="No operation found with ID dop-missing"):
        service.rerun_operation("dop-missing")


def test_delete_operation_returns_the_deleted_document(service: DelegatedOperationService) -> None:
    doc = service.queue_operation("@dops/examples/sleep", label="to delete")
    service.set_running(doc.id)  # type: ignore[arg-type]
    deleted = service.delete_operation(doc.id)  # type: ignore[arg-type]
    assert deleted is not None and deleted.id == doc.id and deleted.label == "to delete"
    assert deleted.run_state == "running"  # no state guard, as in FiftyOne's service
    assert service.delete_operation(doc.id) is None  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="No operation found"):
        service.get(doc.id)  # type: ignore[arg-type]


def test_delete_operation_rereads_when_its_preconditions_conflict(
    dops_server: EmbeddedServer, service: DelegatedOperationService
) -> None:
    """The delete carries uid + resourceVersion preconditions: a 409 (a write in between) means read and retry;
    a conflict that never ends surfaces as Conflict instead of deleting a version nobody read."""
    doc = service.queue_operation("@dops/examples/sleep", label="contested")
    dops_server.call(lambda: dops_server.faults.add(409, "DELETE", "/delegatedoperations/", times=2))
    try:
        deleted = service.delete_operation(doc.id)  # type: ignore[arg-type]
    finally:
        dops_server.call(dops_server.faults.clear)
    assert deleted is not None and deleted.label == "contested"
    assert service.delete_operation(doc.id) is None  # type: ignore[arg-type]

    stuck = service.queue_operation("@dops/examples/sleep", label="always contested")
    dops_server.call(lambda: dops_server.faults.add(409, "DELETE", "/delegatedoperations/", times=-1))
    try:
        with pytest.raises(Conflict):
            service.delete_operation(stuck.id)  # type: ignore[arg-type]
    finally:
        dops_server.call(dops_server.faults.clear)
    assert service.get(stuck.id).label == "always contested"  # type: ignore[arg-type]


def test_delete_for_dataset(service: DelegatedOperationService) -> None:
    """§7 15: removes all of the dataset's operations (archived and running included) and nothing else."""
    mine = [
        service.queue_operation("@dops/examples/echo", context={"request_params": {"dataset_id": "ds-1"}})
        for _ in range(4)
    ]
    others = [
        service.queue_operation("@dops/examples/echo", context={"request_params": {"dataset_id": "ds-2"}}),
        service.queue_operation("@dops/examples/echo"),
    ]
    service.archive_operation(mine[0].id)  # type: ignore[arg-type]
    service.set_running(mine[1].id)  # type: ignore[arg-type]
    assert service.delete_for_dataset("ds-1") is None
    remaining = {d.id for d in service.list_operations(include_archived=True)}
    assert remaining == {d.id for d in others}
    service.delete_for_dataset("no-such-dataset")
    assert service.count() == 2
    with pytest.raises(ValueError, match="dataset_id is required"):
        service.delete_for_dataset(None)
