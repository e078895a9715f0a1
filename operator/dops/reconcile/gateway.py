"""The operator's writes and reads, as blocking calls over `dops.k8s` and `dops.logs` (run in worker threads).

Every method maps the outcomes the reconcile must tell apart:

- a CAS status patch returns the new object, or None when the race was lost (the JSON Patch `test`
  failed, 422);
- a first-sight merge patch with a resourceVersion precondition returns None on 409 (changed since read);
- a write that meets 404 raises `Gone`: the object was deleted, whatever the cache still believes (after
  a watch gap Kopf's relist emits nothing for what vanished), and a lost race would be retried forever;
- a Job create that meets AlreadyExists adopts the existing Job when it belongs to the same
  operation (same owner uid) and raises `JobNameTaken` otherwise (an older operation's Job that is
  still being garbage-collected);
- deletes of Jobs treat NotFound as done (and return False, so the caller can forget the Job).

Other API errors propagate (`dops.k8s.ApiError`); the reconcile retries them with a bounded backoff.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from typing import Any

from ..api import constants as c
from ..domain.jobs import JOB_NAME_LABEL
from ..domain.labels import labels_out_of_date
from ..domain.reconciling import ArchiveResult
from ..domain.runlink import WORKER_CONTAINER
from ..k8s import (
    AlreadyExists,
    ApiError,
    BadRequest,
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
# The operations a term's start-up listing needs before it admits anything: every one not finished (no state yet,
# queued, scheduled, running). Finished ones (nearly all of 100,000 stored) decide no admission; they reach the
# cache through Kopf's own listing instead, while admissions already run.
UNFINISHED_SELECTOR = f"{c.FIELD_RUN_STATE}!=completed,{c.FIELD_RUN_STATE}!=failed"


class JobNameTaken(ApiError):
    """A Job with the deterministic name exists but belongs to another operation (uid)."""


class Gone(Exception):
    """A write met 404: `kind` ("op" or "job") `namespace`/`name` no longer exists."""

    def __init__(self, kind: str, namespace: str, name: str) -> None:
        super().__init__(f"{kind} {namespace}/{name} no longer exists")
        self.kind = kind
        self.namespace = namespace
        self.name = name


class Gateway:
    """Blocking API access for the reconcile (thread-safe: one HTTP session per thread)."""

    def __init__(self, client: KubeClient, archive: LogArchive) -> None:
        self.client = client
        self.ops = DelegatedOperationRepository(client)
        self.targets = DelegationTargetRepository(client)
        self.jobs = JobRepository(client)
        self.policies = ResourceClient(client, c.GROUP, c.VERSION, c.POLICY_PLURAL, namespaced=False)
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
            raise Gone("op", namespace, name) from None
        except Invalid as exc:
            if exc.is_patch_test_failure:
                return None
            raise

    def patch_status_if_unchanged(self, namespace: str, name: str, patch: JSON) -> JSON | None:
        """A merge patch carrying metadata.resourceVersion: applied only if nothing changed since."""
        try:
            return self.ops.patch(namespace, name, patch, subresource="status", field_manager=self.field_manager)
        except NotFound:
            raise Gone("op", namespace, name) from None
        except Conflict:
            return None

    def sync_labels(self, obj: Mapping[str, Any], run_state: bool = True) -> JSON | None:
        """Bring the mirror labels up to date while the state still holds (best effort); `run_state`: whether the
        run state is mirrored (else a run-state label is removed)."""
        wanted = labels_out_of_date(obj, run_state=run_state)
        if not wanted:
            return None
        return self._patch_labels(obj, wanted)

    def sync_run_state_label(self, obj: Mapping[str, Any], run_state: bool = True) -> JSON | None:
        """Only the run-state mirror of (compact) `obj`: set to its run state, or removed without `run_state`."""
        labels = (obj.get("metadata") or {}).get("labels") or {}
        state = (obj.get("status") or {}).get("runState")
        wanted = state if run_state and state else None
        if labels.get(c.RUN_STATE_LABEL) == wanted:
            return None
        return self._patch_labels(obj, {c.RUN_STATE_LABEL: wanted})

    def fields_selectable(self, namespaces: tuple[str, ...] = ()) -> bool:
        """Whether the API server selects DelegatedOperations by `status.runState` (the CRD's selectableFields
        are served: Kubernetes 1.31+ and the emulator); a 400 says it does not."""
        try:
            self.ops.list(namespaces[0] if namespaces else None, field_selector=f"{c.FIELD_RUN_STATE}=queued", limit=1)
        except BadRequest:
            return False
        return True

    def _patch_labels(self, obj: Mapping[str, Any], wanted: Mapping[str, str | None]) -> JSON | None:
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
        """Delete the operation with that UID; `Gone` when it (that UID) no longer exists."""
        try:
            self.ops.delete(namespace, name, uid=uid, propagation_policy="Background")
        except (NotFound, Conflict):  # Conflict: the UID precondition failed, another object has the name now
            raise Gone("op", namespace, name) from None
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

    def patch_job(self, namespace: str, name: str, patch: JSON) -> JSON:
        try:
            return self.jobs.patch(namespace, name, patch, field_manager=self.field_manager)
        except NotFound:
            raise Gone("job", namespace, name) from None

    # ------------------------------------------------------------------------------------ start-up listing
    def list_pages(
        self, kind: str, namespaces: tuple[str, ...] = (), page_size: int = 500, field_selector: str = ""
    ) -> Iterator[list[JSON]]:
        """Every object of `kind` (op, target, job, pod; Jobs and pods: dops' own only), one page at a time
        (the start-up listing and the periodic resync); only those `field_selector` selects, if given (a server
        that cannot select by that field answers 400: `BadRequest`)."""
        repo = self._repo(kind)
        selector = MANAGED_SELECTOR if kind in ("job", "pod") else ""
        for namespace in namespaces or (None,):
            token: str | None = None
            while True:
                page = repo.list(
                    namespace,
                    label_selector=selector,
                    field_selector=field_selector,
                    limit=page_size,
                    continue_token=token,
                )
                yield page.items
                token = page.continue_token
                if not token:
                    break

    def list_policies(self) -> list[JSON]:
        """Every DelegationPolicy; [] when their CRD is not installed (dops without policies works as before).
        Any other error (a 403: the role lacks the rule) propagates: the operator admits nothing it cannot judge."""
        try:
            return self.policies.list(None).items
        except NotFound:
            return []

    def exists(self, kind: str, namespace: str, name: str) -> bool:
        return self.uid_of(kind, namespace, name) is not None

    def uid_of(self, kind: str, namespace: str, name: str) -> str | None:
        """The UID of the object now stored under that name (None: there is none)."""
        obj = self.read(kind, namespace, name)
        return None if obj is None else str((obj.get("metadata") or {}).get("uid") or "")

    def read(self, kind: str, namespace: str, name: str) -> JSON | None:
        """The `kind` object ("op", "target", "job" or "pod") stored now under that name (None: there is none)."""
        try:
            return self._repo(kind).get(namespace, name)
        except NotFound:
            return None

    def job_pods(self, namespace: str, job: str) -> list[JSON]:
        """The pods the Job controller labelled as Job `job`'s, as stored now (one listing, at most one page)."""
        return self.pods.list(namespace, label_selector=f"{JOB_NAME_LABEL}={job}", limit=500).items

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

    def job_warning(self, namespace: str, job: str) -> str | None:
        """`reason: message` of the newest Warning Event about Job `job` (its FailedCreate), None if none or
        unreadable (the failure it would explain is recorded anyway)."""
        selector = f"involvedObject.kind=Job,involvedObject.name={job},type=Warning"
        try:
            items = self.events.events.list(namespace, field_selector=selector, limit=100).items
        except ApiError as exc:
            log.debug("could not read the events of Job %s/%s: %s", namespace, job, exc)
            return None
        if not items:
            return None
        newest = max(items, key=lambda e: str(e.get("lastTimestamp") or e.get("eventTime") or ""))
        return f"{newest.get('reason')}: {newest.get('message')}"

    def post_event(self, obj: Mapping[str, Any], event_type: str, reason: str, message: str) -> None:
        body = {"apiVersion": c.API_VERSION, "kind": c.KIND, "metadata": dict(obj.get("metadata") or {})}
        self.events.post(body, event_type, reason, message)
