"""`DelegatedOperationService`: FiftyOne's delegated-operation service over DelegatedOperation resources.

Every FiftyOne method, argument name and default is here; the store is the Kubernetes API (one
DelegatedOperation per operation, run state in its status subresource), so `kubectl` sees exactly
what this API sees. Behaviour follows FiftyOne 1.22.1 except the deliberate differences listed in
docs/fiftyone-compat.md.

How the FiftyOne contract maps onto Kubernetes:

- `doc_id` is the resource name (`name`, or `namespace/name` for another namespace). Names are
  generated client-side before the create (unique, DNS-1123, newest first in name order), so a
  retried create can never make a second operation.
- `required_state` is a compare-and-set on the server: a JSON Patch to `/status` whose first
  operation tests `/status/runState`. A failed test (422) or a missing operation (404) returns None;
  nothing is ever read-then-written. Run-state names are compared exactly, as FiftyOne's MongoDB
  filters compare them: "QUEUED" or "bogus" is not an error, it matches nothing.
- Unconditional state changes are JSON merge patches to `/status`. Transitions keep earlier
  timestamps and results (FiftyOne never clears them) and need no transition table.
- Filters run on the server where Kubernetes can (field selectors on the CRD's selectableFields),
  the rest on the client. FiftyOne's default order (`queued_at`, newest first) is the API server's
  name order for dops-named operations, so paged default listings fetch only the page they need.
- Bad input raises ValueError before any request; Kubernetes errors surface as `dops.k8s` errors
  (never as raw HTTP exceptions); validation errors from the API server are `dops.k8s.Invalid`,
  itself a ValueError.
"""

from __future__ import annotations

import datetime as dt
import getpass
import logging
import os
import socket
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any

from ..api import constants as c
from ..api.times import utcnow
from ..api.types import (
    DelegatedOperationDocument,
    ExecutionContext,
    ExecutionRunState,
    OperationNotFound,
    PipelineRunInfo,
)
from ..domain import names, query, resources, results, transitions
from ..domain.labels import RUN_STATE_LABEL_MODES, labels_out_of_date, mirrors_run_state, resolve_run_state_label
from ..k8s import (
    AlreadyExists,
    ApiError,
    ApiUnavailable,
    BadRequest,
    Conflict,
    DelegatedOperationRepository,
    Invalid,
    NotFound,
)
from . import executor

# A delete re-reads and retries this often when the operation keeps changing under it (409 on its preconditions).
_DELETE_ATTEMPTS = 5

log = logging.getLogger(__name__)

JSON = dict[str, Any]


def caller_identity() -> str:
    """`user@host` of this process: who a cancel through this service is recorded as."""
    try:
        user = getpass.getuser()
    except Exception:  # no user name in this environment (e.g. a uid without a passwd entry)
        user = f"uid {os.getuid()}"
    return f"{user}@{socket.gethostname()}"


Clock = Callable[[], dt.datetime]
# JSON Patch `test` operations a write must pass besides its run-state test (a worker's attempt identity).
Fence = Sequence[Mapping[str, Any]]
Entropy = Callable[[int], bytes]


class DelegatedOperationService:
    """FiftyOne's `DelegatedOperationService`, backed by DelegatedOperation resources in one namespace.

    `repo` defaults to a repository built from the kubeconfig/in-cluster configuration; `namespace`
    defaults to the configuration's namespace. `clock` and `entropy` (bytes source for names) are for
    tests. `sync_labels=False` skips the best-effort `dops.io/run-state` label update after each state
    change (one extra request; the operator also keeps that label in step). `run_state_label` (`auto`, `always`,
    `never`; default `$DOPS_RUN_STATE_LABEL`, else `auto`) says whether operations carry that label at all: `auto`
    asks the API server once whether it selects operations by `status.runState` (the CRD's selectableFields) and
    then writes no run-state label, as the operator does. The service is thread-safe.
    """

    def __init__(
        self,
        repo: DelegatedOperationRepository | None = None,
        namespace: str | None = None,
        *,
        clock: Clock | None = None,
        entropy: Entropy | None = None,
        sync_labels: bool = True,
        run_state_label: str | None = None,
    ) -> None:
        self._repo = repo if repo is not None else DelegatedOperationRepository()
        self.namespace = namespace or self._repo.default_namespace
        if not names.is_dns1123_label(self.namespace):
            raise ValueError(f"invalid namespace {self.namespace!r}")
        self._clock = clock or utcnow
        self._entropy = entropy or os.urandom
        self._sync_labels_enabled = sync_labels
        mode = (run_state_label or os.environ.get("DOPS_RUN_STATE_LABEL") or "auto").strip().lower()
        if mode not in RUN_STATE_LABEL_MODES:
            raise ValueError(f"run_state_label must be one of {', '.join(RUN_STATE_LABEL_MODES)}, got {mode!r}")
        self._run_state_mode = mode
        self._mode_lock = threading.Lock()

    @property
    def repo(self) -> DelegatedOperationRepository:
        return self._repo

    # ================================================================================== queueing

    def queue_operation(
        self,
        operator: str,
        label: str | None = None,
        delegation_target: str | None = None,
        context: Any = None,
        metadata: Mapping[str, Any] | None = None,
        pipeline: Any = None,
        rerunnable: bool = True,
    ) -> DelegatedOperationDocument:
        """Create a QUEUED operation; returns its document (re-read from the server, unlike FiftyOne)."""
        ctx = ExecutionContext.coerce(context)
        spec = resources.build_spec(
            operator=operator,
            label=label,
            delegation_target=delegation_target,
            request_params=ctx.request_params,
            dataset_id=ctx.dataset_id,
            metadata=metadata,
            pipeline=pipeline,
            rerunnable=rerunnable,
        )
        return self._create(spec)

    def rerun_operation(self, doc_id: str) -> DelegatedOperationDocument:
        """Queue a copy of an operation as a new operation (new id); the original is untouched."""
        namespace, name = self._split(doc_id)
        try:
            original = self._repo.get(namespace, name)
        except NotFound:
            raise OperationNotFound(doc_id) from None
        return self._create(resources.rerun_spec(original), namespace)

    def mirrors_run_state(self) -> bool:
        """Whether this service writes the `dops.io/run-state` label (`auto`: asked of the server once)."""
        with self._mode_lock:
            if self._run_state_mode == "auto":
                try:
                    self._repo.list(self.namespace, field_selector=f"{c.FIELD_RUN_STATE}=queued", limit=1)
                    selectable = True
                except BadRequest:
                    selectable = False
                except ApiError as exc:  # undecided (e.g. no right to list): keep the label, the safe side
                    log.debug("could not tell whether the server selects by status.runState: %s", exc)
                    selectable = None
                self._run_state_mode = resolve_run_state_label("auto", selectable)
            return mirrors_run_state(self._run_state_mode)

    def _create(self, spec: Mapping[str, Any], namespace: str | None = None) -> DelegatedOperationDocument:
        namespace = namespace or self.namespace
        run_state = self.mirrors_run_state()
        for _ in range(3):
            now = self._clock()
            name = names.new_operation_name(spec["operator"], now, self._entropy(8))
            body = resources.operation_resource(name, namespace, spec, name_ordered=True, run_state=run_state)
            try:
                self._repo.create(namespace, body)
            except AlreadyExists:
                if self._is_ours(namespace, name, body):
                    break  # an earlier attempt of this create reached the server
                continue  # a name collision: draw a new name
            except ApiUnavailable:
                # The request may or may not have been applied; retrying with the same name is safe.
                try:
                    self._repo.create(namespace, body)
                except AlreadyExists:
                    if not self._is_ours(namespace, name, body):
                        raise
            break
        else:
            raise RuntimeError("could not find a free operation name after 3 attempts")
        # queuedAt is the instant encoded in the name, so name order stays FiftyOne's default order.
        patched = self._repo.patch_status(namespace, name, transitions.merge_patch(transitions.queued_status(now)))
        return DelegatedOperationDocument.from_resource(patched)

    def _is_ours(self, namespace: str, name: str, body: Mapping[str, Any]) -> bool:
        try:
            existing = self._repo.get(namespace, name)
        except NotFound:
            return False
        return bool(existing.get("spec", {}).get("context") == body["spec"].get("context")) and (
            existing.get("spec", {}).get("operator") == body["spec"]["operator"]
        )

    # ================================================================================== state changes

    def set_running(
        self,
        doc_id: str,
        progress: Any = None,
        run_link: str | None = None,
        log_path: str | None = None,
        required_state: Any = None,
        monitored: bool = False,
        *,
        pod_name: str | None = None,
        fence: Fence = (),
    ) -> DelegatedOperationDocument | None:
        """FiftyOne's `set_running`; `pod_name` (dops) records the worker pod in `status.podName` in the same write.

        `fence` (dops): extra JSON Patch `test` operations the write must also pass (a worker tests its
        attempt's identity), only with `required_state`."""
        extra: JSON = {}
        if pod_name:
            extra["podName"] = names.validate_name(pod_name, "pod_name")
        return self._set_state(
            doc_id,
            ExecutionRunState.RUNNING,
            required_state,
            extra_fields=extra,
            fence=fence,
            progress=progress,
            run_link=run_link,
            log_path=log_path,
            monitored=monitored,
        )

    def set_scheduled(self, doc_id: str, required_state: Any = None) -> DelegatedOperationDocument | None:
        return self._set_state(doc_id, ExecutionRunState.SCHEDULED, required_state)

    def set_queued(self, doc_id: str, required_state: Any = None) -> DelegatedOperationDocument | None:
        return self._set_state(doc_id, ExecutionRunState.QUEUED, required_state)

    def set_completed(
        self,
        doc_id: str,
        result: Any = None,
        progress: Any = None,
        run_link: str | None = None,
        log_path: str | None = None,
        required_state: Any = None,
        *,
        fence: Fence = (),
    ) -> DelegatedOperationDocument | None:
        return self._set_state(
            doc_id,
            ExecutionRunState.COMPLETED,
            required_state,
            fence=fence,
            result=results.coerce_result(result),
            progress=progress,
            run_link=run_link,
            log_path=log_path,
        )

    def set_failed(
        self,
        doc_id: str,
        result: Any = None,
        progress: Any = None,
        run_link: str | None = None,
        log_path: str | None = None,
        required_state: Any = None,
        update_pipeline: str | None = None,
        *,
        cancel: bool = True,
        cancelled_by: str | None = None,
        fence: Fence = (),
    ) -> DelegatedOperationDocument | None:
        """FiftyOne's `set_failed`. Called by anyone but the executor running the operation, marking an
        operation failed is a cancel: the write records who (`cancelled_by`, default `user@host`) and the
        operator reports it `Cancelled`. The executor records its own failures with `cancel=False`."""
        coerced = results.coerce_result(result)
        doc = self._set_state(
            doc_id,
            ExecutionRunState.FAILED,
            required_state,
            result=coerced,
            progress=progress,
            run_link=run_link,
            log_path=log_path,
            cancelled_by=(cancelled_by or caller_identity()) if cancel else None,
            fence=fence,
        )
        if update_pipeline and coerced is not None and coerced.error:
            # FiftyOne records the child's error on the parent even when the child's own CAS failed.
            _, child = self._split(doc_id)
            self._add_child_error(update_pipeline, child, str(coerced.error))
        return doc

    def ping(self, doc_id: str) -> DelegatedOperationDocument | None:
        """The monitor heartbeat: only `updated_at` moves (None for a missing operation)."""
        return self._patch_status(doc_id, transitions.heartbeat(self._clock()), missing_ok=True)

    def _set_state(
        self,
        doc_id: str,
        state: ExecutionRunState,
        required_state: Any,
        extra_fields: JSON | None = None,
        fence: Fence = (),
        **change: Any,
    ) -> DelegatedOperationDocument | None:
        namespace, name = self._split(doc_id)
        # Exact, as FiftyOne's filter: a required state no operation can be in ("QUEUED", "bogus") loses.
        required = transitions.required_state_value(required_state) if required_state is not None else None
        if fence and required is None:
            raise ValueError("fence (identity tests) needs a required_state: it rides along the run-state test")
        status = transitions.state_change(state, self._clock(), **change)  # validates before any request
        status.fields.update(extra_fields or {})
        if state is ExecutionRunState.QUEUED:
            # A re-queue moves queuedAt away from the instant in the name: drop the name-order marker first.
            self._drop_name_order(namespace, name)
        try:
            if required is None:
                obj = self._repo.patch_status(namespace, name, transitions.merge_patch(status))
            else:
                ops = transitions.cas_patch(status, required)
                ops[1:1] = [dict(test) for test in fence]  # the identity tests ride along the state test
                obj = self._repo.patch_status(namespace, name, ops, json_patch=True)
        except NotFound:
            return None
        except Invalid as exc:
            if required is not None and exc.is_patch_test_failure:
                return None  # lost the race: the state is no longer `required_state`
            raise
        obj = self._sync_labels(namespace, name, obj)
        return DelegatedOperationDocument.from_resource(obj)

    def _drop_name_order(self, namespace: str, name: str) -> None:
        try:
            self._repo.patch(namespace, name, resources.labels_patch({c.NAME_ORDER_LABEL: None}))
        except NotFound:
            pass

    def _sync_labels(self, namespace: str, name: str, obj: JSON) -> JSON:
        """Best effort: bring the mirror labels (run state) up to date, only while the state still holds.

        Returns the object after the label update (or `obj` when nothing was written).
        """
        wanted = labels_out_of_date(obj, run_state=self.mirrors_run_state()) if self._sync_labels_enabled else {}
        if not wanted:
            return obj
        state = (obj.get("status") or {}).get("runState")
        has_labels = bool((obj.get("metadata") or {}).get("labels"))
        try:
            if state and has_labels:
                ops: list[JSON] = [{"op": "test", "path": "/status/runState", "value": state}]
                for key, value in wanted.items():
                    path = "/metadata/labels/" + key.replace("~", "~0").replace("/", "~1")
                    if value is None:
                        ops.append({"op": "remove", "path": path})
                    else:
                        ops.append({"op": "add", "path": path, "value": value})
                return self._repo.patch(namespace, name, ops, json_patch=True)
            return self._repo.patch(namespace, name, resources.labels_patch(wanted))
        except (NotFound, Invalid):
            return obj  # deleted, or the state moved on: its writer syncs the labels
        except ApiError as exc:
            # Best effort, never fatal: the state write that matters succeeded, and the operator keeps the
            # mirror labels in step anyway (a 500 here must not abort a run that was just claimed).
            log.warning("could not update the labels of %s/%s (the operator will): %s", namespace, name, exc)
            return obj

    def _add_child_error(self, parent_id: str, child: str, error: str) -> None:
        namespace, parent = self._split(parent_id)
        try:
            self._repo.patch_status(
                namespace, parent, transitions.merge_patch(transitions.child_error_change(child, error))
            )
        except NotFound:
            log.debug("pipeline parent %s not found; child error of %s not recorded", parent_id, child)

    def patch_status_guarded(self, namespace: str, name: str, ops: list[JSON]) -> DelegatedOperationDocument | None:
        """Apply a status JSON Patch guarded by its `test` ops (a compare-and-set): the document it wrote, or None
        when a test failed or the operation is gone (another writer won, nothing was written)."""
        try:
            obj = self._repo.patch_status(namespace, name, ops, json_patch=True)
        except NotFound:
            return None
        except Invalid as exc:
            if exc.is_patch_test_failure:
                return None
            raise
        return DelegatedOperationDocument.from_resource(obj)

    # ================================================================================== other updates

    def set_progress(self, doc_id: str, progress: Any, *, fence: Fence = ()) -> DelegatedOperationDocument | None:
        """Replace the progress (`doc.status`); any state; does not move `updated_at`.

        With a `fence` (dops: a worker's identity tests) the write is a JSON Patch that applies only while
        every test holds; None when one fails (the attempt was superseded, or the operation is gone)."""
        change = transitions.progress_change(progress, self._clock())
        if fence:
            namespace, name = self._split(doc_id)
            ops = [dict(test) for test in fence] + [
                {"op": "add", "path": f"/status/{key}", "value": value}
                for key, value in change.fields.items()
                if value is not None
            ]
            return self.patch_status_guarded(namespace, name, ops)
        doc = self._patch_status(doc_id, change)
        assert doc is not None
        return doc

    def set_pipeline_run_info(self, doc_id: str, run_info: PipelineRunInfo) -> DelegatedOperationDocument:
        """Record a pipeline's run state (`pipelineRunInfo.active`/`stageIndex`); child errors are kept (dops)."""
        if not isinstance(run_info, PipelineRunInfo):
            raise ValueError(f"run_info must be a PipelineRunInfo, not {type(run_info).__name__}")
        fields = {k: v for k, v in run_info.to_resource().items() if k != "childErrors"}
        doc = self._patch_status(doc_id, transitions.StatusChange({"pipelineRunInfo": fields}))
        assert doc is not None
        return doc

    def set_log_upload_error(self, doc_id: str, log_upload_error: str) -> DelegatedOperationDocument:
        doc = self._patch_status(doc_id, transitions.log_upload_error_change(log_upload_error))
        assert doc is not None
        return doc

    def set_log_size(self, doc_id: str, log_size: int) -> DelegatedOperationDocument:
        doc = self._patch_status(doc_id, transitions.log_size_change(log_size))
        assert doc is not None
        return doc

    def set_pinned(self, doc_id: str, pinned: bool = True) -> DelegatedOperationDocument:
        doc = self._patch_spec(doc_id, resources.spec_patch(pinned=pinned))
        assert doc is not None
        return doc

    def set_label(self, doc_id: str, label: str) -> DelegatedOperationDocument:
        doc = self._patch_spec(doc_id, resources.spec_patch(label=label))
        assert doc is not None
        return doc

    def archive_operation(self, doc_id: str) -> DelegatedOperationDocument | None:
        return self._patch_spec(doc_id, resources.spec_patch(archived=True), missing_ok=True)

    def unarchive_operation(self, doc_id: str) -> DelegatedOperationDocument | None:
        return self._patch_spec(doc_id, resources.spec_patch(archived=False), missing_ok=True)

    def _patch_status(
        self, doc_id: str, change: transitions.StatusChange, missing_ok: bool = False
    ) -> DelegatedOperationDocument | None:
        namespace, name = self._split(doc_id)
        try:
            obj = self._repo.patch_status(namespace, name, transitions.merge_patch(change))
        except NotFound:
            if missing_ok:
                return None
            raise OperationNotFound(doc_id) from None
        return DelegatedOperationDocument.from_resource(obj)

    def _patch_spec(self, doc_id: str, patch: JSON, missing_ok: bool = False) -> DelegatedOperationDocument | None:
        namespace, name = self._split(doc_id)
        try:
            obj = self._repo.patch(namespace, name, patch)
        except NotFound:
            if missing_ok:
                return None
            raise OperationNotFound(doc_id) from None
        return DelegatedOperationDocument.from_resource(obj)

    # ================================================================================== deletion

    def delete_operation(self, doc_id: str) -> DelegatedOperationDocument | None:
        """Delete; returns the operation as it was deleted (None if missing). No state guard, as in FiftyOne."""
        namespace, name = self._split(doc_id)
        # kube-apiserver answers the DELETE of a custom resource that goes at once with a Status, not the
        # object. So read it first and delete exactly that version (uid + resourceVersion preconditions):
        # what is returned is then what was deleted; a write in between (409) means read and try again.
        for attempt in range(1, _DELETE_ATTEMPTS + 1):
            try:
                live = self._repo.get(namespace, name)
                meta = live.get("metadata", {})
                answer = self._repo.delete(
                    namespace, name, uid=meta.get("uid"), resource_version=meta.get("resourceVersion")
                )
            except NotFound:
                return None
            except Conflict:
                if attempt == _DELETE_ATTEMPTS:
                    raise
                continue
            deleted = live if answer.get("kind") == "Status" else answer
            return DelegatedOperationDocument.from_resource(deleted)
        raise AssertionError("unreachable: the last attempt returns or raises")

    def delete_for_dataset(self, dataset_id: Any) -> None:
        """Delete every operation of a dataset (archived and running ones included)."""
        if dataset_id is None or dataset_id == "":
            raise ValueError("dataset_id is required (FiftyOne would delete every operation without a dataset)")
        self._repo.delete_collection(
            self.namespace, field_selector=f"{c.FIELD_DATASET_ID}={query.escape_field_value(str(dataset_id))}"
        )

    # ================================================================================== reads

    def get(self, doc_id: str) -> DelegatedOperationDocument:
        """The operation; ValueError("No operation found with ID ...") when missing (FiftyOne 1.22.1)."""
        namespace, name = self._split(doc_id)
        try:
            return DelegatedOperationDocument.from_resource(self._repo.get(namespace, name))
        except NotFound:
            raise OperationNotFound(doc_id) from None

    def get_queued_operations(
        self, operator: str | None = None, dataset_name: str | None = None
    ) -> list[DelegatedOperationDocument]:
        return self.list_operations(operator=operator, dataset_name=dataset_name, run_state=ExecutionRunState.QUEUED)

    def get_scheduled_operations(
        self, operator: str | None = None, dataset_name: str | None = None
    ) -> list[DelegatedOperationDocument]:
        return self.list_operations(operator=operator, dataset_name=dataset_name, run_state=ExecutionRunState.SCHEDULED)

    def get_running_operations(
        self, operator: str | None = None, dataset_name: str | None = None
    ) -> list[DelegatedOperationDocument]:
        return self.list_operations(operator=operator, dataset_name=dataset_name, run_state=ExecutionRunState.RUNNING)

    def list_operations(
        self,
        operator: str | None = None,
        dataset_name: str | None = None,
        dataset_id: Any = None,
        run_state: Any = None,
        delegation_target: str | None = None,
        paging: Any = None,
        search: Mapping[str, Any] | None = None,
        include_archived: bool = False,
        **kwargs: Any,
    ) -> list[DelegatedOperationDocument]:
        """FiftyOne's listing: filters ANDed, archived hidden unless asked, default paging limit 1000 newest first."""
        q = query.list_query(
            operator=operator,
            dataset_name=dataset_name,
            dataset_id=dataset_id,
            run_state=run_state,
            delegation_target=delegation_target,
            search=search,
            include_archived=include_archived,
            **kwargs,
        )
        paging_ = query.normalize_paging(paging)
        if query.uses_name_order(paging_):
            docs = self._list_in_name_order(q, paging_)
        else:
            docs = [DelegatedOperationDocument.from_resource(o) for o in self._scan(q)]
            docs = query.sort_documents(docs, paging_.sort_by, paging_.descending, _attribute)
        return query.window(docs, paging_)

    def count(self, filters: Mapping[str, Any] | None = None, search: Mapping[str, Any] | None = None) -> int:
        """How many operations match (archived ones included, as in FiftyOne)."""
        q = query.count_query(filters, search)
        if q.exact_on_server:
            return self._repo.count(self.namespace, label_selector=q.label_selector, field_selector=q.field_selector)
        return sum(1 for _ in self._scan(q))

    def _scan(self, q: query.Query, page_size: int = 500) -> Iterator[JSON]:
        for obj in self._repo.iterate(
            self.namespace, label_selector=q.label_selector, field_selector=q.field_selector, page_size=page_size
        ):
            if q.matches(obj):
                yield obj

    def _list_in_name_order(self, q: query.Query, paging: query.Paging) -> list[DelegatedOperationDocument]:
        """Newest-first listing that fetches only what the page needs (see NAME_ORDER_LABEL).

        Operations carrying the name-order label sort by name exactly as by queued_at descending, so
        the first `skip + limit` of them in the server's order are the only candidates among them;
        the (few) others are fetched in full and merged in.
        """
        assert paging.limit is not None
        needed = paging.skip + paging.limit
        page_size = needed if q.exact_on_server else max(needed * 2, 100)
        marker = f"{c.NAME_ORDER_LABEL}={c.NAME_ORDER_QUEUED_AT}"
        ordered: list[JSON] = []
        for obj in self._scan(q.with_label(marker), page_size=min(page_size, 5000)):
            ordered.append(obj)
            if len(ordered) >= needed:
                break
        others = list(self._scan(q.with_label(f"!{c.NAME_ORDER_LABEL}")))
        docs = [DelegatedOperationDocument.from_resource(o) for o in _by_name(ordered + others)]
        return query.sort_documents(docs, paging.sort_by, paging.descending, _attribute)

    # ================================================================================== execution

    def execute_queued_operations(
        self,
        operator: str | None = None,
        delegation_target: str | None = None,
        dataset_name: str | None = None,
        limit: int | None = None,
        log: bool = False,
        monitor: bool = False,
        check_interval_seconds: float = 60,
        **kwargs: Any,
    ) -> list[Any]:
        """Execute every queued operation matching the filters, newest first (FiftyOne's order), one after
        another; returns one entry per operation (None where another executor claimed it first)."""
        return executor.execute_queued_operations(
            self,
            operator=operator,
            delegation_target=delegation_target,
            dataset_name=dataset_name,
            limit=limit,
            log=log,
            monitor=monitor,
            check_interval_seconds=check_interval_seconds,
            **kwargs,
        )

    def execute_operation(
        self,
        operation: DelegatedOperationDocument,
        log: bool = False,
        run_link: str | None = None,
        monitor: bool = False,
        check_interval_seconds: float = 60,
        log_path: str | None = None,
    ) -> Any:
        """Claim (queued → running) and run one operation in this process, or with `monitor=True` in a child
        process polled every `check_interval_seconds` (cancelled → the child's process tree is stopped).
        Returns its ExecutionResult, or None when it was not queued any more. See `dops.service.executor`."""
        return executor.execute_operation(
            self,
            operation,
            log=log,
            run_link=run_link,
            monitor=monitor,
            check_interval_seconds=check_interval_seconds,
            log_path=log_path,
        )

    # ================================================================================== helpers

    def _split(self, doc_id: Any) -> tuple[str, str]:
        if isinstance(doc_id, DelegatedOperationDocument):
            doc_id = doc_id.id if not doc_id.namespace else f"{doc_id.namespace}/{doc_id.id}"
        return names.split_doc_id(doc_id, self.namespace)


def _attribute(doc: DelegatedOperationDocument, name: str) -> Any:
    value = getattr(doc, name, None)
    if value is None and name == "queued_at" and doc.id:
        # Created by a dops service whose `queued` write (status cannot be set on create) has not landed yet: the
        # name holds the instant that write stores, so it sorts where it will be a moment later, not last.
        return names.name_time(doc.id)
    return value


def _by_name(objs: Iterable[JSON]) -> list[JSON]:
    return sorted(objs, key=lambda o: (o.get("metadata") or {}).get("name", ""))
