"""The operator's writes and reads, as blocking calls over `dops.k8s` and `dops.logs` (run in worker threads).

Every method maps the outcomes the reconcile must tell apart:

- a CAS status patch returns the new object, or None when the race was lost (the JSON Patch `test`
  failed, 422) or the operation is gone (404);
- a first-sight merge patch with a resourceVersion precondition returns None on 409 (changed since read);
- a Job create that meets AlreadyExists adopts the existing Job when it belongs to the same
  operation (same owner uid) and raises `JobNameTaken` otherwise (an older operation's Job that is
  still being garbage-collected);
- deletes treat NotFound as done.

Other API errors propagate (`dops.k8s.ApiError`); the reconcile retries them with a bounded backoff.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from typing import Any

from ..api import constants as c
from ..domain.labels import labels_out_of_date
from ..domain.reconciling import ArchiveResult
from ..domain.runlink import WORKER_CONTAINER
from ..k8s import (
    AlreadyExists,
    ApiError,
    Conflict,
    DelegatedOperationRepository,
    DelegationTargetRepository,
    Invalid,
    KubeClient,
    NotFound,
    ResourceClient,
)
from ..k8s.workloads import EventRecorder, JobRepository, PodLogs, PodRepository
from ..logs import ArchiveError, LogArchive, archive_key

log = logging.getLogger(__name__)

JSON = dict[str, Any]
USER_AGENT = "dops-operator/0.1"
MANAGED_SELECTOR = f"{c.MANAGED_BY_LABEL}={c.MANAGED_BY}"


class JobNameTaken(ApiError):
    """A Job with the deterministic name exists but belongs to another operation (uid)."""


class Gateway:
    """Blocking API access for the reconcile (thread-safe: one HTTP session per thread)."""

    def __init__(self, client: KubeClient, archive: LogArchive) -> None:
        self.client = client
        self.ops = DelegatedOperationRepository(client)
        self.targets = DelegationTargetRepository(client)
        self.jobs = JobRepository(client)
        self.pods = PodRepository(client)
        self.logs = PodLogs(client)
        self.events = EventRecorder(client)
        self.archive = archive
        self.field_manager = "dops-operator"

    # ------------------------------------------------------------------------------------ operations
    def patch_status_cas(self, namespace: str, name: str, ops: list[JSON]) -> JSON | None:
        try:
            return self.ops.patch(
                namespace, name, ops, json_patch=True, subresource="status", field_manager=self.field_manager
            )
        except NotFound:
            return None
        except Invalid as exc:
            if exc.is_patch_test_failure:
                return None
            raise

    def patch_status_if_unchanged(self, namespace: str, name: str, patch: JSON) -> JSON | None:
        """A merge patch carrying metadata.resourceVersion: applied only if nothing changed since."""
        try:
            return self.ops.patch(namespace, name, patch, subresource="status", field_manager=self.field_manager)
        except (NotFound, Conflict):
            return None

    def sync_labels(self, obj: Mapping[str, Any]) -> JSON | None:
        """Bring the mirror labels (run state) up to date while the state still holds (best effort)."""
        wanted = labels_out_of_date(obj)
        if not wanted:
            return None
        meta = obj.get("metadata") or {}
        state = (obj.get("status") or {}).get("runState")
        ops: list[JSON] = []
        if state:
            ops.append({"op": "test", "path": "/status/runState", "value": state})
        if not meta.get("labels"):
            ops.append({"op": "add", "path": "/metadata/labels", "value": {}})
        for key, value in wanted.items():
            path = "/metadata/labels/" + key.replace("~", "~0").replace("/", "~1")
            if value is None:
                ops.append({"op": "remove", "path": path})
            else:
                ops.append({"op": "add", "path": path, "value": value})
        try:
            return self.ops.patch(
                str(meta.get("namespace")),
                str(meta.get("name")),
                ops,
                json_patch=True,
                field_manager=self.field_manager,
            )
        except (NotFound, Invalid):
            return None
        except ApiError as exc:
            log.debug("labels of %s/%s not updated: %s", meta.get("namespace"), meta.get("name"), exc)
            return None

    def delete_operation(self, namespace: str, name: str, uid: str | None) -> bool:
        try:
            self.ops.delete(namespace, name, uid=uid, propagation_policy="Background")
        except (NotFound, Conflict):
            return False
        return True

    # ------------------------------------------------------------------------------------ jobs
    def create_job(self, namespace: str, body: Mapping[str, Any]) -> JSON:
        try:
            return self.jobs.create(namespace, body, field_manager=self.field_manager)
        except AlreadyExists:
            name = str(body["metadata"]["name"])
            existing = self.jobs.get(namespace, name)
            wanted = {r.get("uid") for r in body["metadata"].get("ownerReferences") or []}
            owners = {r.get("uid") for r in (existing.get("metadata") or {}).get("ownerReferences") or []}
            if wanted & owners:
                return existing  # an earlier attempt of this create got through: adopt it
            raise JobNameTaken(
                f"Job {namespace}/{name} exists but belongs to another operation; waiting for it to be deleted",
                code=409,
                reason="AlreadyExists",
            ) from None

    def delete_job(self, namespace: str, name: str) -> bool:
        try:
            self.jobs.delete(namespace, name, propagation_policy="Background")
        except NotFound:
            return False
        return True

    def patch_job(self, namespace: str, name: str, patch: JSON) -> JSON | None:
        try:
            return self.jobs.patch(namespace, name, patch, field_manager=self.field_manager)
        except NotFound:
            return None

    # ------------------------------------------------------------------------------------ start-up listing
    def list_pages(self, kind: str, namespaces: tuple[str, ...] = (), page_size: int = 500) -> Iterator[list[JSON]]:
        """Every object of `kind` (op, target, job, pod; Jobs and pods: dops' own only), one page at a time."""
        repo = self._repo(kind)
        selector = MANAGED_SELECTOR if kind in ("job", "pod") else ""
        for namespace in namespaces or (None,):
            token: str | None = None
            while True:
                page = repo.list(namespace, label_selector=selector, limit=page_size, continue_token=token)
                yield page.items
                token = page.continue_token
                if not token:
                    break

    def exists(self, kind: str, namespace: str, name: str) -> bool:
        try:
            self._repo(kind).get(namespace, name)
        except NotFound:
            return False
        return True

    def _repo(self, kind: str) -> ResourceClient:
        return {"op": self.ops, "target": self.targets, "job": self.jobs, "pod": self.pods}[kind]

    # ------------------------------------------------------------------------------------ logs, events
    def archive_log(self, namespace: str, operation: str, attempt: int | str, pod: str) -> ArchiveResult:
        """Copy the worker container's log to the archive; failures become `ArchiveResult.error`."""
        key = archive_key(namespace, operation, attempt, pod)
        try:
            chunks = self.logs.stream(namespace, pod, WORKER_CONTAINER)
            path, size = self.archive.store(key, chunks)
        except NotFound:
            return ArchiveResult(error=f"attempt {attempt}: pod {pod} no longer exists; its log could not be archived")
        except ApiError as exc:
            return ArchiveResult(error=f"attempt {attempt}: reading the log of pod {pod} failed: {exc.message}")
        except ArchiveError as exc:
            return ArchiveResult(error=f"attempt {attempt}: {exc}")
        return ArchiveResult(path=path, size=size)

    def post_event(self, obj: Mapping[str, Any], event_type: str, reason: str, message: str) -> None:
        body = {"apiVersion": c.API_VERSION, "kind": c.KIND, "metadata": dict(obj.get("metadata") or {})}
        self.events.post(body, event_type, reason, message)
