"""The operator's in-memory view of the cluster, fed by watch events (no list calls per event).

Compact forms only (`compact_operation`, `compact_job`, `compact_pod`): the operator keeps a few
hundred bytes per operation, not the objects. Deleted Jobs and pods that were still running are
kept as *tombstones* (`gone: True`) so the reconcile can tell "the Job was deleted" from "the Job
was never created"; tombstones are swept after `TOMBSTONE_SECONDS` and when their operation goes.

Identity is the UID, never the name (names are reused: `kubectl delete` then `apply` of the same
operation; a `kubectl debug --copy-to` copy of a worker pod carries the same labels):

- a Job is the operation's only if its ownerReference names the operation's UID, or, orphaned, its
  `dops.io/operation-uid` label does (`job_named`);
- a pod is a Job's only if its *controller* ownerReference names the Job's UID, as the Job controller
  itself claims pods; pods are stored under that UID, and a pod without one is not cached at all;
- removals by name check the UID the caller meant (`remove_operation(key, uid)`).

Writes the operator makes put the returned object here at once, and an event that is older than
what is cached (by resourceVersion) never replaces it: the cache never goes back in time.
"""

from __future__ import annotations

import datetime as dt
import sys
import time
from collections.abc import Iterator, Mapping
from typing import Any

from ..api.times import format_time
from ..domain.jobs import OPERATION_UID_LABEL
from ..domain.observe import compact_job, compact_pod
from ..domain.reconciling import compact_operation, finished_processed, slim_operation
from ..domain.targets import Target

JSON = dict[str, Any]
Key = tuple[str, str]
TOMBSTONE_SECONDS = 900.0
UNADMITTED_STATES = (None, "queued", "scheduled")  # what a DelegationTarget's change may change the course of


def newer(candidate: str | None, current: str | None) -> bool:
    """Whether resourceVersion `candidate` is not older than `current` (integers when both are; else True)."""
    if not current or not candidate:
        return True
    if candidate.isdigit() and current.isdigit():
        return int(candidate) >= int(current)
    return True


def _key(meta: Mapping[str, Any]) -> Key:
    return str(meta.get("namespace") or ""), str(meta.get("name") or "")


def controller_uid(meta: Mapping[str, Any], kind: str) -> str | None:
    """The UID of the object's controller ownerReference of `kind` (what the Job controller claims pods by)."""
    for ref in meta.get("ownerReferences") or []:
        if ref.get("kind") == kind and ref.get("controller") and ref.get("uid"):
            return str(ref["uid"])
    return None


def _stale(candidate: Mapping[str, Any], current: Mapping[str, Any]) -> bool:
    """Whether `candidate` (a compact Job or pod from an event, a listing or a read) is older than the `current`
    cached one of the same name, and must not replace it: the cache never goes back in time.

    - the same object at an older resourceVersion;
    - the same object after it was deleted (a tombstone): a UID never comes back, so this is a copy from a
      listing taken before the deletion (a term's start-up listing that Kopf's DELETED event overtook) — it
      used to revive the object, and its operation then waited on a Job or pod that no longer existed;
    - another object of that name at an older resourceVersion (than the cached one, or than its tombstone):
      names are unique, so it was deleted before the cached one was written (an older listing's copy of a Job
      the operator has since re-created).
    """
    if current.get("gone") and candidate.get("uid") == current.get("uid"):
        return True
    return not newer(candidate.get("resourceVersion"), current.get("resourceVersion"))


def _compact_job(obj: Mapping[str, Any], gone: bool = False) -> JSON:
    compact = compact_job(obj, gone=gone)
    compact["operationUid"] = ((obj.get("metadata") or {}).get("labels") or {}).get(OPERATION_UID_LABEL)
    return compact


def _split_ref(ref: str | None) -> Key | None:
    if not ref or "/" not in ref:
        return None
    namespace, _, name = ref.partition("/")
    return namespace, name


class Cache:
    def __init__(self) -> None:
        self.ops: dict[Key, JSON] = {}
        self.targets: dict[Key, Target] = {}
        self.jobs: dict[Key, JSON] = {}  # (namespace, job name) → compact Job (or tombstone)
        self.pods: dict[str, dict[str, JSON]] = {}  # Job UID (controller ref) → pod name → compact pod
        self._job_tombstones: dict[Key, float] = {}  # job key → when it became a tombstone
        self._pod_tombstones: dict[tuple[str, str], float] = {}  # (Job UID, pod name) → when
        self._deleting: dict[Key, tuple[str, str]] = {}  # Jobs the operator deleted → (uid, when)
        self._job_keys: dict[str, Key] = {}  # Job UID → its key in `jobs` (pods find their Job by UID)
        # Operation UID (the Job's ownerReference) → keys of its Jobs in `jobs`: dropping an operation's Jobs with
        # it looks at its own Jobs only, never at every cached Job (a scan per deletion is quadratic in a TTL sweep).
        self._jobs_by_owner: dict[str, set[Key]] = {}
        # Namespace → its operations not yet running (no state, queued, scheduled): a DelegationTarget event
        # re-reconciles these only, without a scan of every cached operation (100,000 of them, mostly finished).
        self._unadmitted: dict[str, set[Key]] = {}

    # ------------------------------------------------------------------------------------ operations
    def put_operation(self, obj: Mapping[str, Any]) -> JSON | None:
        """Store an operation (from an event or a write response); None when `obj` is older than the cache."""
        meta = obj.get("metadata") or {}
        key = (sys.intern(str(meta.get("namespace") or "")), str(meta.get("name") or ""))  # one copy per namespace
        current = self.ops.get(key)
        if current is not None:
            same_uid = current["metadata"].get("uid") == meta.get("uid")
            if same_uid and not newer(meta.get("resourceVersion"), current["metadata"].get("resourceVersion")):
                return None
        # Settled: keep only what retention needs, taken straight from the object (scalars only), without the compact
        # form's deep copy of the status first: most of 100,000 operations listed at start-up are settled.
        compact = slim_operation(obj) if finished_processed(obj.get("status") or {}) else compact_operation(obj)
        self.ops[key] = compact
        waiting = self._unadmitted.setdefault(key[0], set())
        if (compact.get("status") or {}).get("runState") in UNADMITTED_STATES:
            waiting.add(key)
        else:
            waiting.discard(key)
        return compact

    def remove_operation(self, key: Key, uid: str | None = None) -> JSON | None:
        current = self.ops.get(key)
        if current is None or (uid and current["metadata"].get("uid") != uid):
            return None
        del self.ops[key]
        self._unadmitted.get(key[0], set()).discard(key)
        owner = str(current["metadata"].get("uid") or "")
        for job_key in list(self._jobs_by_owner.get(owner, ())):
            job = self.jobs.get(job_key)
            if job is not None and job.get("ownerUid") == owner:
                self._del_job(job_key)
                self._job_keys.pop(str(job.get("uid")), None)
                self._job_tombstones.pop(job_key, None)
                self._drop_pods_of(str(job.get("uid")))
        return current

    def operation_uid(self, key: Key) -> str | None:
        op = self.ops.get(key)
        return str(op["metadata"].get("uid")) if op is not None else None

    def iter_operations(self) -> Iterator[tuple[Key, JSON]]:
        return iter(list(self.ops.items()))

    def unadmitted_in(self, namespace: str) -> list[Key]:
        """The operations of `namespace` with no state yet, queued or scheduled (what a target change affects)."""
        return sorted(self._unadmitted.get(namespace, ()))

    # ------------------------------------------------------------------------------------ jobs
    def _set_job(self, key: Key, job: JSON) -> None:
        """Every write to `jobs` goes through here and `_del_job`, which keep `_jobs_by_owner` in step."""
        previous = self.jobs.get(key)
        if previous is not None and previous.get("ownerUid") != job.get("ownerUid"):
            self._unindex_job(key, previous)
        self.jobs[key] = job
        owner = job.get("ownerUid")
        if owner:
            self._jobs_by_owner.setdefault(str(owner), set()).add(key)

    def _del_job(self, key: Key) -> None:
        job = self.jobs.pop(key, None)
        if job is not None:
            self._unindex_job(key, job)

    def _unindex_job(self, key: Key, job: Mapping[str, Any]) -> None:
        owner = str(job.get("ownerUid") or "")
        keys = self._jobs_by_owner.get(owner)
        if keys is not None:
            keys.discard(key)
            if not keys:
                del self._jobs_by_owner[owner]

    def put_job(self, obj: Mapping[str, Any]) -> tuple[JSON, Key | None]:
        compact = _compact_job(obj)
        key = (str(compact.get("namespace")), str(compact.get("name")))
        current = self.jobs.get(key)
        if current is not None and _stale(compact, current):
            return current, self.operation_of_job(current)
        deleting = self._deleting.get(key)
        if deleting is not None and deleting[0] == compact.get("uid") and not compact.get("deletionTimestamp"):
            compact["deletionTimestamp"] = deleting[1]
        if current is not None and current.get("uid") != compact.get("uid"):
            self._job_keys.pop(str(current.get("uid")), None)
        self._set_job(key, compact)
        self._job_keys[str(compact.get("uid"))] = key
        self._job_tombstones.pop(key, None)
        return compact, self.operation_of_job(compact)

    def delete_job(self, obj: Mapping[str, Any]) -> Key | None:
        compact = _compact_job(obj, gone=True)
        key = (str(compact.get("namespace")), str(compact.get("name")))
        current = self.jobs.get(key)
        if current is not None and current.get("uid") != compact.get("uid") and not current.get("gone"):
            return self.operation_of_job(compact)  # a newer Job of the same name already replaced it
        if current is not None and current.get("uid") != compact.get("uid"):
            self._job_keys.pop(str(current.get("uid")), None)
        self._set_job(key, compact)
        self._job_keys[str(compact.get("uid"))] = key
        self._deleting.pop(key, None)
        self._job_tombstones[key] = time.monotonic()
        return self.operation_of_job(compact)

    def job_gone(self, namespace: str, name: str, uid: str | None) -> Key | None:
        """A write to Job `name` met 404: if the cached Job is still the one written (`uid`), it is a tombstone
        now (its DELETED event was missed or is late). Returns the operation to reconcile."""
        current = self.jobs.get((namespace, name))
        if current is None or current.get("gone") or (uid and current.get("uid") != uid):
            return None
        gone = dict(current)
        gone["gone"] = True
        self._set_job((namespace, name), gone)
        self._deleting.pop((namespace, name), None)
        self._job_tombstones[(namespace, name)] = time.monotonic()
        return self.operation_of_job(gone)

    def mark_job_deleted(self, namespace: str, name: str, when: dt.datetime) -> None:
        """The operator deleted this Job itself: treat it as being deleted from now on, even when events
        written before the deletion arrive later (until the DELETED event turns it into a tombstone)."""
        job = self.jobs.get((namespace, name))
        if job is not None and not job.get("gone"):
            self._deleting[(namespace, name)] = (str(job.get("uid")), format_time(when))
            if not job.get("deletionTimestamp"):
                job["deletionTimestamp"] = format_time(when)

    def operation_of_job(self, job: Mapping[str, Any]) -> Key | None:
        ref = _split_ref(job.get("operation"))
        if ref is not None:
            return ref
        owner = job.get("owner")
        return (str(job.get("namespace")), str(owner)) if owner else None

    def job_for(self, op: Mapping[str, Any]) -> JSON | None:
        """The (compact) Job named by the operation's status.jobName, if it is this operation's."""
        name = (op.get("status") or {}).get("jobName")
        return self.job_named(op, str(name)) if name else None

    def job_named(self, op: Mapping[str, Any], name: str) -> JSON | None:
        """The cached Job `name` (or its tombstone) if it belongs to operation `op` by UID: its ownerReference
        names the operation's UID, or, when it has none (orphaned), its `dops.io/operation-uid` label does.
        A Job of an earlier operation with the same name is not this one's."""
        meta = op.get("metadata") or {}
        job = self.jobs.get((str(meta.get("namespace")), name))
        if job is None:
            return None
        owner = job.get("ownerUid") or job.get("operationUid")
        return job if owner and owner == meta.get("uid") else None

    def jobs_owned_by(self, uid: str) -> list[JSON]:
        """The cached Jobs (tombstones too) whose ownerReference names operation `uid` (indexed, no scan)."""
        found = (self.jobs.get(key) for key in self._jobs_by_owner.get(uid, ()))
        return [job for job in found if job is not None and job.get("ownerUid") == uid]

    # ------------------------------------------------------------------------------------ pods
    def put_pod(self, obj: Mapping[str, Any]) -> Key | None:
        """Store a worker pod under its Job's UID; None (and not stored) when no Job controls it."""
        compact = self._compact_pod(obj)
        if compact is None:
            return None
        job_uid = str(compact["jobUid"])
        name = str(compact.get("name"))
        pods = self.pods.setdefault(job_uid, {})
        current = pods.get(name)
        if current is not None and _stale(compact, current):
            return self._operation_of_pod(current)  # older than what is cached: never go back in time
        pods[name] = compact
        self._pod_tombstones.pop((job_uid, name), None)
        return self._operation_of_pod(compact)

    def delete_pod(self, obj: Mapping[str, Any]) -> Key | None:
        compact = self._compact_pod(obj, gone=True)
        if compact is None:
            return None
        job_uid = str(compact["jobUid"])
        pods = self.pods.setdefault(job_uid, {})
        name = str(compact.get("name"))
        if compact.get("phase") in ("Succeeded", "Failed") and not compact.get("deletionTimestamp"):
            # A finished pod removed by GC: keep it as it was (its exit status still explains the run).
            current = pods.get(name)
            compact = dict(current or compact)
            compact["gone"] = True
        pods[name] = compact
        self._pod_tombstones[(job_uid, name)] = time.monotonic()
        return self._operation_of_pod(compact)

    @staticmethod
    def _compact_pod(obj: Mapping[str, Any], gone: bool = False) -> JSON | None:
        job_uid = controller_uid(obj.get("metadata") or {}, "Job")
        if not job_uid:
            return None  # not created by a Job (a `kubectl debug --copy-to` copy with the same labels): not ours
        compact = compact_pod(obj, gone=gone)
        compact["jobUid"] = job_uid
        compact["resourceVersion"] = (obj.get("metadata") or {}).get("resourceVersion")
        return compact

    def cached_pod(self, obj: Mapping[str, Any]) -> JSON | None:
        """The cached form of pod `obj` (same Job, same name), if any."""
        meta = obj.get("metadata") or {}
        job_uid = controller_uid(meta, "Job")
        return self.pods.get(job_uid, {}).get(str(meta.get("name"))) if job_uid else None

    def _operation_of_pod(self, pod: Mapping[str, Any]) -> Key | None:
        job = self.job_by_uid(str(pod.get("jobUid")))
        if job is not None:
            return self.operation_of_job(job)
        return _split_ref(pod.get("operation"))  # its Job is not (yet) cached: the annotation says whose it is

    def job_by_uid(self, uid: str) -> JSON | None:
        key = self._job_keys.get(uid)
        job = self.jobs.get(key) if key is not None else None
        return job if job is not None and job.get("uid") == uid else None

    def pods_for(self, op: Mapping[str, Any]) -> list[JSON]:
        """The pods of the operation's Job (`job_for`): controlled by that Job's UID, never matched by name."""
        job = self.job_for(op)
        if job is None or not job.get("uid"):
            return []
        return list(self.pods.get(str(job["uid"]), {}).values())

    def pod_gone(self, namespace: str, name: str, uid: str | None) -> Key | None:
        """A pod the cache holds was found deleted (by a resync): make it a tombstone."""
        for job_uid, pods in self.pods.items():
            pod = pods.get(name)
            if pod is not None and pod.get("namespace") == namespace and (not uid or pod.get("uid") == uid):
                if pod.get("gone"):
                    return None
                gone = dict(pod)
                gone["gone"] = True
                pods[name] = gone
                self._pod_tombstones[(job_uid, name)] = time.monotonic()
                return self._operation_of_pod(gone)
        return None

    def iter_pods(self) -> Iterator[JSON]:
        return (pod for pods in list(self.pods.values()) for pod in list(pods.values()))

    def _drop_pods_of(self, job_uid: str) -> None:
        for name in self.pods.pop(job_uid, {}):
            self._pod_tombstones.pop((job_uid, name), None)

    # ------------------------------------------------------------------------------------ housekeeping
    def sweep(self, max_age: float = TOMBSTONE_SECONDS) -> int:
        """Forget tombstones older than `max_age` seconds; returns how many."""
        now = time.monotonic()
        old_jobs = [k for k, when in self._job_tombstones.items() if now - when > max_age]
        old_pods = [k for k, when in self._pod_tombstones.items() if now - when > max_age]
        for job_key in old_jobs:
            del self._job_tombstones[job_key]
            current = self.jobs.get(job_key)
            if current is not None and current.get("gone"):
                self._del_job(job_key)
                self._job_keys.pop(str(current.get("uid")), None)
                self._drop_pods_of(str(current.get("uid")))  # a forgotten Job's pods explain nothing any more
        for job_uid, pod in old_pods:
            self._pod_tombstones.pop((job_uid, pod), None)
            pods = self.pods.get(job_uid)
            if pods is not None and pods.get(pod, {}).get("gone"):
                del pods[pod]
                if not pods:
                    del self.pods[job_uid]
        return len(old_jobs) + len(old_pods)

    def counts(self) -> dict[str, int]:
        """Operations by run state. Called from the metrics server's thread while the event loop fills the cache
        (Kopf's listing streams in after the start-up listing): iterates a snapshot (`list()` of a dict's values
        is taken without letting another thread run)."""
        out: dict[str, int] = {}
        for op in list(self.ops.values()):
            state = (op.get("status") or {}).get("runState") or "new"
            out[state] = out.get(state, 0) + 1
        return out
