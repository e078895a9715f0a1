"""FiftyOne's `DelegatedOperationRepo` over DelegatedOperation resources (the bridge).

FiftyOne's `DelegatedOperationService(repo=...)` keeps all of its logic (executing, monitoring, rerun,
the CLI and the App's "schedule") and delegates storage to a repo. This repo stores through dops'
`DelegatedOperationService`, so every operation FiftyOne queues is a `DelegatedOperation` resource the dops
operator runs, and FiftyOne reads back what the operator and its workers write. Why through the dops
service rather than raw resources: its compare-and-set on the API server, name generation, validation and
listing are exactly what this repo must provide; duplicating them would be a second place to get them wrong.

Mapping (FiftyOne's repo method → dops service): `queue_operation` → `queue_operation` (or `rerun_operation`
when FiftyOne re-queues an existing document, so the run policy is copied too), `update_run_state` →
`set_<state>`, `update_progress` → `set_progress`, listing/count/get/archive/delete/pin/label/ping one to one,
`add_child_error` → the pipeline parent's child error. Documents are converted to FiftyOne's
`DelegatedOperationDocument` through its own `from_pymongo`, with FiftyOne's naive-UTC timestamps; ids are
resource names (strings). Remaining differences: docs/fiftyone.md and docs/fiftyone-compat.md.
"""

from __future__ import annotations

import datetime as dt
import os
import threading
from collections.abc import Mapping
from typing import Any

from fiftyone.factory.repo_factory import RepositoryFactory
from fiftyone.factory.repos.delegated_operation import DelegatedOperationRepo, MongoDelegatedOperationRepo
from fiftyone.factory.repos.delegated_operation_doc import DelegatedOperationDocument as FoDocument

from ..api.types import DelegatedOperationDocument, ExecutionProgress, ExecutionRunState
from ..service import DelegatedOperationService

JSON = dict[str, Any]
ENV_SWITCH = "DOPS_FIFTYONE_BRIDGE"
ENV_NAMESPACE = "DOPS_FIFTYONE_NAMESPACE"
# FiftyOne's keys for a repo in RepositoryFactory.repos; the bridge takes the Mongo repo's place.
_FACTORY_KEY = MongoDelegatedOperationRepo.COLLECTION_NAME
_REQUIRED = ("operator", "delegation_target", "context", "label")  # FiftyOne's required_props
_install_lock = threading.Lock()
_previous: list[Any] = []


def _naive(value: dt.datetime | None) -> dt.datetime | None:
    """FiftyOne stores naive UTC datetimes (datetime.utcnow()); dops' are aware UTC."""
    if value is None:
        return None
    return value.astimezone(dt.UTC).replace(tzinfo=None)


def to_fiftyone(doc: DelegatedOperationDocument | None, namespace: str | None = None) -> FoDocument | None:
    """A dops document as FiftyOne's own `DelegatedOperationDocument` (None stays None).

    `id` is the resource name, `namespace/name` when the operation lives outside `namespace`."""
    if doc is None:
        return None
    ident = doc.id if doc.namespace in (None, namespace) else f"{doc.namespace}/{doc.id}"
    status = doc.status
    result = doc.result
    stored: JSON = {
        "_id": ident,
        "operator": doc.operator,
        "label": doc.label,
        "delegation_target": doc.delegation_target,
        "run_state": str(doc.run_state) if doc.run_state is not None else None,
        "queued_at": _naive(doc.queued_at),
        "scheduled_at": _naive(doc.scheduled_at),
        "started_at": _naive(doc.started_at),
        "completed_at": _naive(doc.completed_at),
        "failed_at": _naive(doc.failed_at),
        "updated_at": _naive(doc.updated_at),
        "pinned": doc.pinned,
        "archived": doc.archived,
        "rerunnable": doc.rerunnable,
        "monitored": doc.monitored,
        "dataset_id": doc.dataset_id,
        "parent_id": doc.parent_id,
        "run_link": doc.run_link,
        "log_path": doc.log_path,
        "log_size": doc.log_size,
        "log_tail": doc.log_tail,
        "log_upload_error": doc.log_upload_error,
        "metadata": dict(doc.metadata or {}),
        "context": {"request_params": dict(doc.context.request_params)} if doc.context is not None else None,
        "status": (
            {"progress": status.progress, "label": status.label, "updated_at": _naive(status.updated_at)}
            if status is not None
            else None
        ),
        "result": (
            {"result": result.result, "error": result.error, "error_message": result.error_message}
            if result is not None
            else None
        ),
        "pipeline": doc.pipeline.to_json() if doc.pipeline is not None else None,
        "pipeline_run_info": doc.pipeline_run_info.to_json() if doc.pipeline_run_info is not None else None,
    }
    return FoDocument().from_pymongo(stored)


def _progress(value: Any) -> Any:
    """FiftyOne's ExecutionProgress (or a dict) as dops' progress value."""
    if value is None or isinstance(value, (Mapping, ExecutionProgress)):
        return value
    if hasattr(value, "progress") and hasattr(value, "label"):
        return ExecutionProgress(progress=value.progress, label=value.label)
    return value  # dops validates it and raises ValueError


def _state(value: Any) -> Any:
    """A required state as dops compares it: FiftyOne's state constants are plain strings already."""
    return str(value) if isinstance(value, str) else value


def _paging(paging: Any) -> Any:
    if paging is None or isinstance(paging, Mapping):
        return paging
    if all(hasattr(paging, key) for key in ("sort_by", "sort_direction", "skip", "limit")):
        return {
            "sort_by": paging.sort_by,
            "sort_direction": paging.sort_direction,
            "skip": paging.skip,
            "limit": paging.limit,
        }
    return paging  # dops raises its readable ValueError


class DopsDelegatedOperationRepo(DelegatedOperationRepo):  # type: ignore[misc]
    """FiftyOne's delegated-operation repo, stored as DelegatedOperation resources in one namespace.

    `service` defaults to a dops service from the kubeconfig/in-cluster configuration (`namespace`: the
    configuration's namespace unless given)."""

    is_remote = False

    def __init__(self, service: DelegatedOperationService | None = None, namespace: str | None = None) -> None:
        self._service = service if service is not None else DelegatedOperationService(namespace=namespace)

    @property
    def service(self) -> DelegatedOperationService:
        return self._service

    def _doc(self, doc: DelegatedOperationDocument | None) -> FoDocument | None:
        return to_fiftyone(doc, self._service.namespace)

    # ------------------------------------------------------------------------------------ queueing
    def queue_operation(self, **kwargs: Any) -> FoDocument:
        for prop in _REQUIRED:
            if prop not in kwargs:
                raise ValueError(f"Missing required property '{prop}'")
        if kwargs.get("id") is not None and "_doc" in kwargs:
            # FiftyOne's rerun_operation re-queues `doc.__dict__` of an existing operation: rerun it in dops,
            # which also copies the run policy (timeout, retries, priority) the document does not carry.
            return self._doc(self._service.rerun_operation(str(kwargs["id"])))
        pipeline: Any = kwargs.get("pipeline")
        return self._doc(
            self._service.queue_operation(
                operator=kwargs["operator"],
                label=kwargs.get("label"),
                delegation_target=kwargs.get("delegation_target"),
                context=kwargs.get("context"),
                metadata=kwargs.get("metadata") or {},
                pipeline=pipeline.to_json() if hasattr(pipeline, "to_json") else pipeline,
                rerunnable=kwargs.get("rerunnable", True),
            )
        )

    # ------------------------------------------------------------------------------------ state changes
    def update_run_state(
        self,
        _id: Any,
        run_state: Any,
        result: Any = None,
        run_link: str | None = None,
        progress: Any = None,
        required_state: Any = None,
        monitored: bool = False,
    ) -> FoDocument | None:
        doc_id, required = str(_id), _state(required_state)
        if run_state == ExecutionRunState.COMPLETED:
            doc = self._service.set_completed(
                doc_id, result=result, progress=_progress(progress), run_link=run_link, required_state=required
            )
        elif run_state == ExecutionRunState.FAILED:
            # FiftyOne's executors fail what they run with required_state=RUNNING; anything else (the CLI's
            # `fiftyone delegated fail`, an SDK call) is somebody cancelling the operation.
            doc = self._service.set_failed(
                doc_id,
                result=result,
                progress=_progress(progress),
                run_link=run_link,
                required_state=required,
                cancel=required is None,
            )
        elif run_state == ExecutionRunState.RUNNING:
            doc = self._service.set_running(
                doc_id, progress=_progress(progress), run_link=run_link, required_state=required, monitored=monitored
            )
        elif run_state == ExecutionRunState.SCHEDULED:
            doc = self._service.set_scheduled(doc_id, required_state=required)
        elif run_state == ExecutionRunState.QUEUED:
            doc = self._service.set_queued(doc_id, required_state=required)
        else:
            raise ValueError(f"Invalid run_state: {run_state}")
        return self._doc(doc)

    def update_progress(self, _id: Any, progress: Any) -> FoDocument | None:
        return self._doc(self._service.set_progress(str(_id), _progress(progress)))

    def add_child_error(self, parent_id: Any, child_id: Any, error_message: str) -> None:
        self._service._add_child_error(str(parent_id), str(child_id), error_message)

    def ping(self, _id: Any) -> None:
        self._service.ping(str(_id))

    # the log methods of FiftyOne's 2024–2025 repos (not called by 1.22.1; kept for the versions that do)
    def set_log_upload_error(self, _id: Any, log_upload_error: str) -> FoDocument | None:
        return self._doc(self._service.set_log_upload_error(str(_id), log_upload_error))

    def set_log_size(self, _id: Any, log_size: int) -> FoDocument | None:
        return self._doc(self._service.set_log_size(str(_id), log_size))

    # ------------------------------------------------------------------------------------ other updates
    def set_pinned(self, _id: Any, pinned: bool = True) -> FoDocument | None:
        return self._doc(self._service.set_pinned(str(_id), pinned))

    def set_label(self, _id: Any, label: str) -> FoDocument | None:
        return self._doc(self._service.set_label(str(_id), label))

    def archive_operation(self, _id: Any) -> FoDocument | None:
        return self._doc(self._service.archive_operation(str(_id)))

    def unarchive_operation(self, _id: Any) -> FoDocument | None:
        return self._doc(self._service.unarchive_operation(str(_id)))

    def delete_operation(self, _id: Any) -> FoDocument | None:
        return self._doc(self._service.delete_operation(str(_id)))

    def delete_for_dataset(self, dataset_id: Any) -> None:
        self._service.delete_for_dataset(str(dataset_id) if dataset_id is not None else None)

    # ------------------------------------------------------------------------------------ reads
    def get(self, _id: Any) -> FoDocument:
        doc = self._doc(self._service.get(str(_id)))
        assert doc is not None
        return doc

    def get_queued_operations(self, operator: str | None = None, dataset_name: str | None = None) -> list[FoDocument]:
        return self.list_operations(operator=operator, dataset_name=dataset_name, run_state=ExecutionRunState.QUEUED)

    def get_scheduled_operations(
        self, operator: str | None = None, dataset_name: str | None = None
    ) -> list[FoDocument]:
        return self.list_operations(operator=operator, dataset_name=dataset_name, run_state=ExecutionRunState.SCHEDULED)

    def get_running_operations(self, operator: str | None = None, dataset_name: str | None = None) -> list[FoDocument]:
        return self.list_operations(operator=operator, dataset_name=dataset_name, run_state=ExecutionRunState.RUNNING)

    def list_operations(
        self,
        operator: str | None = None,
        dataset_name: str | None = None,
        dataset_id: Any = None,
        run_state: Any = None,
        delegation_target: str | None = None,
        pinned: bool | None = None,
        paging: Any = None,
        search: Mapping[str, Any] | None = None,
        include_archived: bool = False,
        **kwargs: Any,
    ) -> list[FoDocument]:
        if pinned is not None:
            kwargs["pinned"] = pinned
        docs = self._service.list_operations(
            operator=operator or None,  # FiftyOne skips falsy filters
            dataset_name=dataset_name or None,
            dataset_id=str(dataset_id) if dataset_id else None,
            run_state=_state(run_state) or None,
            delegation_target=delegation_target or None,
            paging=_paging(paging),
            search=search,
            include_archived=include_archived,
            **kwargs,
        )
        return [d for d in (self._doc(doc) for doc in docs) if d is not None]

    def count(self, filters: Mapping[str, Any] | None = None, search: Mapping[str, Any] | None = None) -> int:
        return self._service.count(filters=filters, search=search)


# ---------------------------------------------------------------------------------------- the switch


def install(
    repo: DopsDelegatedOperationRepo | None = None, *, namespace: str | None = None
) -> DopsDelegatedOperationRepo:
    """Make FiftyOne's `RepositoryFactory.delegated_operation_repo()` return the bridge from now on.

    Every `fiftyone.operators.delegated.DelegatedOperationService()` built afterwards (the SDK, the
    `fiftyone delegated` CLI, the App's scheduling, an operator's `ctx.set_progress`) then stores its
    operations as DelegatedOperation resources. Returns the installed repo; `uninstall()` undoes it."""
    bridge = repo if repo is not None else DopsDelegatedOperationRepo(namespace=namespace)
    with _install_lock:
        _previous.append(RepositoryFactory.repos.get(_FACTORY_KEY))
        RepositoryFactory.repos[_FACTORY_KEY] = bridge
    return bridge


def uninstall() -> None:
    """Give FiftyOne back whatever repo it had before the last `install()`."""
    with _install_lock:
        if not _previous:
            return
        previous = _previous.pop()
        if previous is None:
            RepositoryFactory.repos.pop(_FACTORY_KEY, None)
        else:
            RepositoryFactory.repos[_FACTORY_KEY] = previous


def installed() -> DopsDelegatedOperationRepo | None:
    """The bridge FiftyOne currently hands out, or None."""
    repo = RepositoryFactory.repos.get(_FACTORY_KEY)
    return repo if isinstance(repo, DopsDelegatedOperationRepo) else None


def install_from_env(environ: Mapping[str, str] | None = None) -> DopsDelegatedOperationRepo | None:
    """`install()` when `DOPS_FIFTYONE_BRIDGE` is 1/true/yes/on (namespace: `DOPS_FIFTYONE_NAMESPACE`)."""
    env = os.environ if environ is None else environ
    if env.get(ENV_SWITCH, "").strip().lower() not in ("1", "true", "yes", "on"):
        return None
    current = installed()
    if current is not None:
        return current
    return install(namespace=env.get(ENV_NAMESPACE) or None)
