"""Queueing through DelegatedOperationService, against the embedded control plane with crds/ loaded.

Aspects covered (fiftyone-semantics §7 "Queueing / documents" and §1.1):
- 1: a queued document has queued_at and run_state "queued"; the resource's status says the same (what kubectl sees).
- 2: an explicit label is kept; no label → the operator URI.
- 3: metadata defaults to {}; a given metadata dict round-trips equal.
- 4: a pipeline passed to queue_operation comes back equal.
- 5 (documented difference): dataset_id comes from the context's request_params.dataset_id (no FiftyOne database).
- context forms: ExecutionContext, {"request_params": ...}; panel_state stripped; caller's dict untouched.
- names: generated client-side, DNS-1123, newest first; doc ids `name` and `namespace/name`; labels mirror the spec.
- 6-8 (remote mode, num_distributed_tasks): dops has no remote mode (documented); num_distributed_tasks is None.
- timestamps are timezone-aware UTC.
- DelegatedOperationService() without arguments reads $KUBECONFIG.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from dops import (
    DelegatedOperationService,
    ExecutionContext,
    ExecutionRunState,
    Pipeline,
)
from dops.api import constants as c
from dops.domain import labels, names
from dops.emulator import EmbeddedServer
from dops.emulator.bootstrap import apply_manifest_paths
from dops.k8s import DelegatedOperationRepository

pytestmark = pytest.mark.both_planes

REPO = Path(__file__).resolve().parent.parent.parent


def test_queued_document_has_queued_at_and_state(
    service: DelegatedOperationService, repo: DelegatedOperationRepository
) -> None:
    """§7 1: queued doc has non-null queued_at and run_state == "queued" (also in the stored status)."""
    before = dt.datetime.now(dt.UTC)
    doc = service.queue_operation("@dops/examples/echo")
    assert doc.run_state == ExecutionRunState.QUEUED == "queued"
    assert doc.queued_at is not None and doc.queued_at.tzinfo is not None
    assert before - dt.timedelta(seconds=5) <= doc.queued_at <= dt.datetime.now(dt.UTC) + dt.timedelta(seconds=5)
    assert doc.updated_at == doc.queued_at
    for attr in ("scheduled_at", "started_at", "completed_at", "failed_at", "status", "result", "run_link"):
        assert getattr(doc, attr) is None, attr
    stored = repo.get(service.namespace, doc.id)  # type: ignore[arg-type]
    assert stored["status"]["runState"] == "queued" and stored["status"]["queuedAt"].endswith("Z")
    assert service.get(doc.id).run_state == "queued"  # type: ignore[arg-type]


def test_label_defaults_to_operator_uri(service: DelegatedOperationService) -> None:
    """§7 2: explicit label kept; with no label, label == operator URI."""
    assert service.queue_operation("@dops/examples/echo", label="My label").label == "My label"
    assert service.queue_operation("@dops/examples/echo").label == "@dops/examples/echo"
    assert service.queue_operation("@dops/examples/echo", label="").label == "@dops/examples/echo"


def test_metadata_round_trips(service: DelegatedOperationService) -> None:
    """§7 3: metadata defaults to {}; a given dict round-trips equal (inputs_schema stored in spec.inputsSchema)."""
    assert service.queue_operation("@dops/examples/echo").metadata == {}
    metadata = {"inputs_schema": {"type": "object", "properties": {"n": {"type": "int"}}}, "extra": [1, "two"]}
    doc = service.queue_operation("@dops/examples/echo", metadata=metadata)
    assert doc.metadata == metadata
    assert service.get(doc.id).metadata == metadata  # type: ignore[arg-type]
    assert doc.resource is not None and doc.resource["spec"]["inputsSchema"] == metadata["inputs_schema"]


def test_pipeline_round_trips(service: DelegatedOperationService) -> None:
    """§7 4 and 49: a pipeline passed to queue_operation is returned equal, overrides included."""
    pipeline = Pipeline()
    pipeline.stage("@dops/examples/echo", name="first", params={"message": "a"})
    pipeline.stage("@dops/examples/count", always_run=True, request_params_overrides={"view": [{"_cls": "x"}]})
    doc = service.queue_operation("@dops/examples/echo", pipeline=pipeline)
    assert doc.pipeline == pipeline
    assert service.get(doc.id).pipeline == pipeline  # type: ignore[arg-type]
    assert service.queue_operation("@dops/examples/echo", pipeline=pipeline.to_json()).pipeline == pipeline


def test_dataset_id_comes_from_the_context(service: DelegatedOperationService) -> None:
    """§7 5 (documented difference): without a FiftyOne database dataset_id is request_params.dataset_id."""
    doc = service.queue_operation(
        "@dops/examples/echo", context={"request_params": {"dataset_name": "quickstart", "dataset_id": "64f0c0ffee"}}
    )
    assert doc.dataset_id == "64f0c0ffee"
    assert doc.resource is not None and doc.resource["spec"]["datasetId"] == "64f0c0ffee"
    assert (
        service.queue_operation("@dops/examples/echo", context={"request_params": {"dataset_name": "q"}}).dataset_id
        is None
    )


def test_context_forms_and_panel_state(service: DelegatedOperationService) -> None:
    """§1.1: context is an ExecutionContext or {"request_params": ...}; params.panel_state is not persisted."""
    params = {"params": {"n": 3, "panel_state": {"huge": True}}, "dataset_name": "ds"}
    doc = service.queue_operation("@dops/examples/count", context={"request_params": params})
    assert doc.context == ExecutionContext({"params": {"n": 3}, "dataset_name": "ds"})
    assert params["params"] == {"n": 3, "panel_state": {"huge": True}}  # the caller's dict is untouched
    other = service.queue_operation("@dops/examples/count", context=ExecutionContext({"params": {"n": 1}}))
    assert other.context is not None and other.context.params == {"n": 1}
    assert service.queue_operation("@dops/examples/count").context == ExecutionContext({})


def test_names_are_generated_client_side_and_newest_first(
    service: DelegatedOperationService, repo: DelegatedOperationRepository
) -> None:
    """Names: DNS-1123, unique, encode queued_at exactly, sort newest first; mirror labels set at creation."""
    docs = [service.queue_operation("@dops/examples/count", delegation_target="gpu-pool") for _ in range(5)]
    ids = [d.id for d in docs]
    assert len(set(ids)) == 5
    for doc in docs:
        assert doc.id is not None and names.is_dns1123_label(doc.id) and doc.id.endswith("-count")
        assert names.name_time(doc.id) == doc.queued_at
    listed = [o["metadata"]["name"] for o in repo.list(service.namespace).items]
    assert listed == list(reversed(ids))  # the API server's order is newest first
    stored_labels = repo.get(service.namespace, docs[0].id)["metadata"]["labels"]  # type: ignore[arg-type]
    assert stored_labels[c.MANAGED_BY_LABEL] == "dops"
    assert stored_labels[c.OPERATOR_LABEL] == labels.operator_label_value("@dops/examples/count")
    assert stored_labels[c.TARGET_LABEL] == "gpu-pool"
    assert c.RUN_STATE_LABEL not in stored_labels  # the server selects by status.runState (issue 15)
    assert stored_labels[c.NAME_ORDER_LABEL] == c.NAME_ORDER_QUEUED_AT


def test_ids_with_a_namespace(service: DelegatedOperationService, repo: DelegatedOperationRepository) -> None:
    """doc_id is `name` or `namespace/name`."""
    doc = service.queue_operation("@dops/examples/echo")
    qualified = f"{service.namespace}/{doc.id}"
    assert service.get(qualified).id == doc.id
    other = DelegatedOperationService(repo, namespace="default")
    assert other.get(qualified).namespace == service.namespace


def test_no_remote_mode_and_no_distributed_tasks(service: DelegatedOperationService) -> None:
    """§7 6-8: dops always queues (no Enterprise remote mode); num_distributed_tasks is always None."""
    doc = service.queue_operation(
        "@dops/examples/echo", context={"request_params": {"num_distributed_tasks": 10, "params": {"panel_id": "p"}}}
    )
    assert doc.run_state == "queued" and doc.scheduled_at is None
    assert doc.num_distributed_tasks is None


def test_rerunnable_flag_is_stored(service: DelegatedOperationService) -> None:
    assert service.queue_operation("@dops/examples/echo").rerunnable is True
    assert service.queue_operation("@dops/examples/echo", rerunnable=False).rerunnable is False


def test_default_construction_reads_the_kubeconfig(emulator: EmbeddedServer) -> None:
    """DelegatedOperationService() with no arguments uses $KUBECONFIG (the `emulator` fixture sets it)."""
    emulator.call(lambda: apply_manifest_paths(emulator.api, [REPO / "crds"]))
    service = DelegatedOperationService()
    assert service.namespace == "default"
    doc = service.queue_operation("@dops/examples/echo")
    assert service.get(doc.id).run_state == "queued"  # type: ignore[arg-type]
