"""The operator's in-memory view of the cluster, fed by watch events (no list calls per event).

Compact forms only (`compact_operation`, `compact_job`, `compact_pod`): the operator keeps a few
hundred bytes per operation, not the objects. Deleted Jobs and pods that were still running are
kept as *tombstones* (`gone: True`) so the reconcile can tell "the Job was deleted" from "the Job
was never created"; tombstones are swept after `TOMBSTONE_SECONDS` and when their operation goes.

Writes the operator makes put the returned object here at once, and an event that is older than
what is cached (by resourceVersion) never replaces it: the cache never goes back in time.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Iterator, Mapping
from typing import Any

from ..api.times import format_time
from ..domain.observe import compact_job, compact_pod
from ..domain.reconciling import compact_operation, finished_processed, slim_operation
from ..domain.targets import Target

JSON = dict[str, Any]
Key = tuple[str, str]
TOMBSTONE_SECONDS = 900.0


def newer(candidate: str | None, current: str | None) -> bool:
    """Whether resourceVersion `candidate` is not older than `current` (integers when both are; else True)."""
    if not current or not candidate:
        return True
    if candidate.isdigit() and current.isdigit():
        return int(candidate) >= int(current)
    return True


def _key(meta: Mapping[str, Any]) -> Key:
    return str(meta.get("namespace") or ""), str(meta.get("name") or "")


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
        self.pods: dict[Key, dict[str, JSON]] = {}  # (namespace, job name) → pod name → compact pod
        self._tombstones: dict[tuple[str, Key, str], float] = {}  # (kind, job key, pod name) → when
        self._deleting: dict[Key, tuple[str, str]] = {}  # Jobs the operator deleted → (uid, when)

    # ------------------------------------------------------------------------------------ operations
    def put_operation(self, obj: Mapping[str, Any]) -> JSON | None:
        """Store an operation (from an event or a write response); None when `obj` is older than the cache."""
        key = _key(obj.get("metadata") or {})
        compact = compact_operation(obj)
        current = self.ops.get(key)
        if current is not None:
            same_uid = current["metadata"].get("uid") == compact["metadata"].get("uid")
            if same_uid and not newer(
                compact["metadata"].get("resourceVersion"), current["metadata"].get("resourceVersion")
            ):
                return None
        if finished_processed(compact.get("status") or {}):
            compact = slim_operation(compact)  # settled: keep only what retention needs (10,000 ops stay small)
        self.ops[key] = compact
        return compact

    def remove_operation(self, key: Key, uid: str | None = None) -> JSON | None:
        current = self.ops.get(key)
        if current is None or (uid and current["metadata"].get("uid") != uid):
            return None
        del self.ops[key]
        for job_key, job in list(self.jobs.items()):
            if job.get("ownerUid") == current["metadata"].get("uid"):
                self.jobs.pop(job_key, None)
                self.pods.pop(job_key, None)
        return current

    def iter_operations(self) -> Iterator[tuple[Key, JSON]]:
        return iter(list(self.ops.items()))

    # ------------------------------------------------------------------------------------ jobs
    def put_job(self, obj: Mapping[str, Any]) -> tuple[JSON, Key | None]:
        compact = compact_job(obj)
        key = (str(compact.get("namespace")), str(compact.get("name")))
        current = self.jobs.get(key)
        if (
            current is not None
            and not current.get("gone")
            and current.get("uid") == compact.get("uid")
            and not newer(compact.get("resourceVersion"), current.get("resourceVersion"))
        ):
            return current, self.operation_of_job(current)
        deleting = self._deleting.get(key)
        if deleting is not None and deleting[0] == compact.get("uid") and not compact.get("deletionTimestamp"):
            compact["deletionTimestamp"] = deleting[1]
        self.jobs[key] = compact
        self._tombstones.pop(("job", key, ""), None)
        return compact, self.operation_of_job(compact)

    def delete_job(self, obj: Mapping[str, Any]) -> Key | None:
        compact = compact_job(obj, gone=True)
        key = (str(compact.get("namespace")), str(compact.get("name")))
        current = self.jobs.get(key)
        if current is not None and current.get("uid") != compact.get("uid") and not current.get("gone"):
            return self.operation_of_job(compact)  # a newer Job of the same name already replaced it
        self.jobs[key] = compact
        self._deleting.pop(key, None)
        self._tombstones[("job", key, "")] = time.monotonic()
        return self.operation_of_job(compact)

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
        meta = op.get("metadata") or {}
        name = (op.get("status") or {}).get("jobName")
        if not name:
            return None
        job = self.jobs.get((str(meta.get("namespace")), str(name)))
        if job is None:
            return None
        owner_uid = job.get("ownerUid")
        if owner_uid and owner_uid != meta.get("uid"):
            return None  # a Job of an earlier operation with the same name
        return job

    # ------------------------------------------------------------------------------------ pods
    def put_pod(self, obj: Mapping[str, Any]) -> Key | None:
        compact = compact_pod(obj)
        job = compact.get("job")
        if not job:
            return None
        job_key = (str(compact.get("namespace")), str(job))
        self.pods.setdefault(job_key, {})[str(compact.get("name"))] = compact
        self._tombstones.pop(("pod", job_key, str(compact.get("name"))), None)
        return self._operation_of_pod(compact, job_key)

    def delete_pod(self, obj: Mapping[str, Any]) -> Key | None:
        compact = compact_pod(obj, gone=True)
        job = compact.get("job")
        if not job:
            return None
        job_key = (str(compact.get("namespace")), str(job))
        pods = self.pods.setdefault(job_key, {})
        name = str(compact.get("name"))
        if compact.get("phase") in ("Succeeded", "Failed") and not compact.get("deletionTimestamp"):
            # A finished pod removed by GC: keep it as it was (its exit status still explains the run).
            current = pods.get(name)
            compact = dict(current or compact)
            compact["gone"] = True
        pods[name] = compact
        self._tombstones[("pod", job_key, name)] = time.monotonic()
        return self._operation_of_pod(compact, job_key)

    def _operation_of_pod(self, pod: Mapping[str, Any], job_key: Key) -> Key | None:
        ref = _split_ref(pod.get("operation"))
        if ref is not None:
            return ref
        job = self.jobs.get(job_key)
        return self.operation_of_job(job) if job is not None else None

    def pods_for(self, op: Mapping[str, Any]) -> list[JSON]:
        meta = op.get("metadata") or {}
        name = (op.get("status") or {}).get("jobName")
        if not name:
            return []
        return list(self.pods.get((str(meta.get("namespace")), str(name)), {}).values())

    # ------------------------------------------------------------------------------------ housekeeping
    def sweep(self, max_age: float = TOMBSTONE_SECONDS) -> int:
        """Forget tombstones older than `max_age` seconds; returns how many."""
        now = time.monotonic()
        old = [k for k, when in self._tombstones.items() if now - when > max_age]
        for kind, job_key, pod in old:
            del self._tombstones[(kind, job_key, pod)]
            if kind == "job":
                current = self.jobs.get(job_key)
                if current is not None and current.get("gone"):
                    del self.jobs[job_key]
            else:
                pods = self.pods.get(job_key)
                if pods is not None and pods.get(pod, {}).get("gone"):
                    del pods[pod]
                    if not pods:
                        del self.pods[job_key]
        return len(old)

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for op in self.ops.values():
            state = (op.get("status") or {}).get("runState") or "new"
            out[state] = out.get(state, 0) + 1
        return out
