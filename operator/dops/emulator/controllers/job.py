"""The batch/v1 Job controller (spec S12), modelled on kube-controller-manager's `job-controller`.

One reconcile ("sync") of a Job, reading only the current store:

- pods are the ones whose controller ownerReference is the Job (an index uid → pods is kept from
  the store's events, so a sync never scans all pods);
- finished pods are counted with the job-tracking finalizer protocol: their UIDs go to
  `status.uncountedTerminatedPods` (flushed together with an interim `SuccessCriteriaMet` or
  `FailureTarget` condition), then the `batch.kubernetes.io/job-tracking` finalizer is removed
  and the counters move into `succeeded` / `failed`;
- `Complete` / `Failed` are added only once nothing is uncounted and no pod is terminating;
- failures: `backoffLimit` (pod-failure backoff `backoff_base`·2ⁿ capped at `backoff_max`),
  OnFailure restart counts, `activeDeadlineSeconds` and `podFailurePolicy` (FailJob, Ignore,
  Count on exit codes and pod conditions such as DisruptionTarget);
- `suspend` deletes active pods and sets `Suspended`; resuming resets `startTime`;
- `ttlSecondsAfterFinished` deletes a finished Job (Background propagation) at finish + TTL.

Time-based work (backoff, deadlines, TTL) is a requeue of the Job's key, never a timer.
Pods whose Job is gone or finished but still carry the tracking finalizer are handled under the
pod's own key (`syncOrphanPod`): the finalizer is removed so the pod can go away.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from .. import errors
from ..apiserver import ApiServer, DeleteOptions
from ..clock import parse_time, rfc3339
from ..registry import ResourceType
from ..store import DELETED, Event
from .base import Controller, Key
from .common import (
    JOBS,
    PODS,
    EventRecorder,
    active_pod_sort_key,
    controller_ref,
    delete_owned_pod,
    find_condition,
    log,
    new_controller_ref,
    pod_active,
    pod_ready,
    pod_terminating,
    write_options,
)

JSON = dict[str, Any]

TRACKING_FINALIZER = "batch.kubernetes.io/job-tracking"
JOB_CONTROLLER_NAME = "kubernetes.io/job-controller"
# MaxPodCreateDeletePerSync / MaxUncountedPods in the real controller.
MAX_POD_CREATE_DELETE_PER_SYNC = 500
MAX_UNCOUNTED_PODS = 500

REASON_BACKOFF = "BackoffLimitExceeded"
MESSAGE_BACKOFF = "Job has reached the specified backoff limit"
REASON_DEADLINE = "DeadlineExceeded"
MESSAGE_DEADLINE = "Job was active longer than specified deadline"
REASON_POLICY = "PodFailurePolicy"
REASON_COMPLETIONS = "CompletionsReached"
MESSAGE_COMPLETIONS = "Reached expected number of succeeded pods"


@dataclass
class _Backoff:
    """podBackoffStore's record: failures since the last success and when the last one finished."""

    failures: int = 0
    last_failure: datetime | None = None


@dataclass
class _Cond:
    type: str
    reason: str
    message: str


def _finished_condition(job: JSON) -> JSON | None:
    for cond in (job.get("status") or {}).get("conditions") or []:
        if cond.get("type") in ("Complete", "Failed") and cond.get("status") == "True":
            return dict(cond)
    return None


def is_finished(job: JSON) -> bool:
    return _finished_condition(job) is not None


def _has_tracking(pod: JSON) -> bool:
    return TRACKING_FINALIZER in (pod["metadata"].get("finalizers") or [])


def _phase(pod: JSON) -> str:
    return str((pod.get("status") or {}).get("phase") or "")


def _int(value: Any, default: int = 0) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else default


class JobController(Controller):
    name = "job"
    watches = (JOBS, PODS)

    def __init__(
        self,
        api: ApiServer,
        backoff_base: float = 10.0,
        backoff_max: float = 360.0,
        events: bool = True,
    ) -> None:
        super().__init__(api)
        self.backoff_base = float(backoff_base)
        self.backoff_max = float(backoff_max)
        self.recorder = EventRecorder(api, "job-controller", enabled=events)
        self._pods_by_job: dict[str, set[tuple[str, str]]] = {}
        self._backoff: dict[str, _Backoff] = {}
        self._jobs_type: ResourceType = api.type_for("batch", "v1", "jobs")
        self._pods_type: ResourceType = api.type_for("", "v1", "pods")

    # ------------------------------------------------------------------------------- events → keys
    def _index(self, old: JSON | None, new: JSON | None) -> None:
        old_uid = _job_uid(old)
        new_uid = _job_uid(new)
        if old is not None and old_uid and (old_uid != new_uid or new is None):
            pods = self._pods_by_job.get(old_uid)
            if pods is not None:
                pods.discard((old["metadata"].get("namespace", ""), old["metadata"]["name"]))
                if not pods:
                    del self._pods_by_job[old_uid]
        if new is not None and new_uid:
            key = (new["metadata"].get("namespace", ""), new["metadata"]["name"])
            self._pods_by_job.setdefault(new_uid, set()).add(key)

    def keys_for(self, event: Event) -> Iterable[Key]:
        obj = event.obj
        meta = obj["metadata"]
        namespace = meta.get("namespace", "")
        if event.resource == JOBS:
            keys: list[Key] = [("batch", "jobs", namespace, meta["name"])]
            if event.type == DELETED:
                self._backoff.pop(meta["uid"], None)
                for pod_ns, pod_name in list(self._pods_by_job.get(meta["uid"], ())):
                    keys.append(("", "pods", pod_ns, pod_name))
            return keys
        # A pod: keep the index, wake its Job, and look after its tracking finalizer.
        if event.type == DELETED:
            self._index(event.old or obj, None)
        else:
            self._index(event.old, obj)
        keys = []
        ref = controller_ref(obj)
        if ref is not None and ref.get("kind") == "Job":
            keys.append(("batch", "jobs", namespace, str(ref.get("name", ""))))
        if event.type != DELETED and _has_tracking(obj):
            job = self._job_of(obj)
            if job is None or is_finished(job):
                keys.append(("", "pods", namespace, meta["name"]))
        return keys

    def resync(self) -> None:
        self._pods_by_job.clear()
        for pod in self.api.store.iter(PODS):
            self._index(None, pod)
        super().resync()

    def _job_of(self, pod: JSON) -> JSON | None:
        ref = controller_ref(pod)
        if ref is None or ref.get("kind") != "Job" or str(ref.get("apiVersion", "")).split("/")[0] != "batch":
            return None
        job = self.api.store.get(JOBS, pod["metadata"].get("namespace", ""), str(ref.get("name", "")))
        if job is None or job["metadata"]["uid"] != ref.get("uid"):
            return None
        return job

    # ------------------------------------------------------------------------------- reconcile
    async def reconcile(self, key: Key) -> float | None:
        group, plural, namespace, name = key
        if (group, plural) == PODS:
            self._sync_orphan_pod(namespace, name)
            return None
        job = self.api.store.get(JOBS, namespace, name)
        if job is None:
            return None
        return self._sync_job(job)

    def _sync_orphan_pod(self, namespace: str, name: str) -> None:
        """Remove the tracking finalizer from a pod whose Job is gone or finished."""
        pod = self.api.store.get(PODS, namespace, name)
        if pod is None or not _has_tracking(pod):
            return
        ref = controller_ref(pod)
        if ref is not None:
            if ref.get("kind") != "Job" or str(ref.get("apiVersion", "")).split("/")[0] != "batch":
                return  # controlled by something else: not ours to touch
            job = self._job_of(pod)
            if job is not None and not is_finished(job):
                return  # the Job's own sync counts it
        self._remove_tracking_finalizer(pod)

    def _pods_for(self, job: JSON) -> list[JSON]:
        uid = job["metadata"]["uid"]
        pods = []
        for namespace, name in list(self._pods_by_job.get(uid, ())):
            pod = self.api.store.get(PODS, namespace, name)
            if pod is not None and (controller_ref(pod) or {}).get("uid") == uid:
                pods.append(pod)
        pods.sort(key=lambda p: (str(p["metadata"].get("creationTimestamp", "")), p["metadata"]["name"]))
        return pods

    def _sync_job(self, job: JSON) -> float | None:
        spec = job.get("spec") or {}
        managed_by = spec.get("managedBy")
        if managed_by and managed_by != JOB_CONTROLLER_NAME:
            return None
        if is_finished(job):
            self._backoff.pop(job["metadata"]["uid"], None)
            for pod in self._pods_for(job):
                if _has_tracking(pod):
                    self._remove_tracking_finalizer(pod)
            return self._ttl(job)
        if spec.get("completionMode", "NonIndexed") not in ("NonIndexed", "Indexed"):
            self.recorder.event(
                job, "Warning", "UnknownCompletionMode", "Skipped Job sync because completion mode is unknown"
            )
            return None
        return _Sync(self, job).run()

    def _ttl(self, job: JSON) -> float | None:
        """The TTL-after-finished controller: delete the Job (Background) at finish time + TTL."""
        ttl = (job.get("spec") or {}).get("ttlSecondsAfterFinished")
        if not isinstance(ttl, int) or isinstance(ttl, bool) or job["metadata"].get("deletionTimestamp"):
            return None
        finished = _finished_condition(job) or {}
        when = (job.get("status") or {}).get("completionTime") if finished.get("type") == "Complete" else None
        when = when or finished.get("lastTransitionTime")
        finish = parse_time(str(when)) if when else None
        if finish is None:
            return None
        remaining = finish.timestamp() + ttl - self.api.clock.now().timestamp()
        if remaining > 0:
            return remaining
        meta = job["metadata"]
        try:
            self.api.delete(
                self._jobs_type,
                meta["namespace"],
                meta["name"],
                DeleteOptions(propagation_policy="Background", precondition_uid=meta["uid"]),
            )
        except errors.APIError as exc:
            if exc.code not in (404, 409):
                raise
        return None

    # ------------------------------------------------------------------------------- writes
    def _remove_tracking_finalizer(self, pod: JSON) -> bool:
        """Drop the job-tracking finalizer (an Update guarded by the pod's resourceVersion)."""
        meta = pod["metadata"]
        current = self.api.store.get(PODS, meta.get("namespace", ""), meta["name"])
        if current is None or current["metadata"]["uid"] != meta["uid"] or not _has_tracking(current):
            return True
        body = dict(current)
        body["metadata"] = dict(current["metadata"])
        body["metadata"]["finalizers"] = [f for f in current["metadata"]["finalizers"] if f != TRACKING_FINALIZER]
        try:
            self.api.update(self._pods_type, meta["namespace"], meta["name"], body, write_options())
        except errors.APIError as exc:
            if exc.code != 404:
                log.warning("job: removing the tracking finalizer of pod %s failed: %s", meta["name"], exc.message)
                return False
        return True

    def _delete_pod(self, job: JSON, pod: JSON) -> bool:
        return delete_owned_pod(self.api, self._pods_type, self.recorder, job, pod)

    def _create_pod(self, job: JSON, index: int | None) -> str | None:
        """Create one pod from the template; returns an error message or None."""
        spec = job.get("spec") or {}
        template = copy.deepcopy(spec.get("template") or {})
        tmeta = template.get("metadata") or {}
        job_name = job["metadata"]["name"]
        meta: JSON = {"generateName": f"{job_name}-", "namespace": job["metadata"]["namespace"]}
        if tmeta.get("labels"):
            meta["labels"] = dict(tmeta["labels"])
        if tmeta.get("annotations"):
            meta["annotations"] = dict(tmeta["annotations"])
        finalizers = list(tmeta.get("finalizers") or [])
        if TRACKING_FINALIZER not in finalizers:
            finalizers.append(TRACKING_FINALIZER)
        meta["finalizers"] = finalizers
        meta["ownerReferences"] = [new_controller_ref(job)]
        pod_spec = template.get("spec") or {}
        if index is not None:
            meta["generateName"] = f"{job_name}-{index}-"
            meta.setdefault("annotations", {})["batch.kubernetes.io/job-completion-index"] = str(index)
            meta.setdefault("labels", {})["batch.kubernetes.io/job-completion-index"] = str(index)
            pod_spec["hostname"] = f"{job_name}-{index}"
            for key in ("initContainers", "containers"):
                for container in pod_spec.get(key) or []:
                    env = container.setdefault("env", [])
                    if not any(e.get("name") == "JOB_COMPLETION_INDEX" for e in env):
                        env.append(
                            {
                                "name": "JOB_COMPLETION_INDEX",
                                "valueFrom": {
                                    "fieldRef": {
                                        "apiVersion": "v1",
                                        "fieldPath": "metadata.labels['batch.kubernetes.io/job-completion-index']",
                                    }
                                },
                            }
                        )
        body = {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": pod_spec}
        try:
            created = self.api.create(self._pods_type, job["metadata"]["namespace"], body, write_options()).obj
        except errors.APIError as exc:
            if exc.code == 403:  # the namespace is terminating: every later create fails the same way
                return None
            self.recorder.event(job, "Warning", "FailedCreate", f"Error creating: {exc.message}")
            return exc.message
        self.recorder.event(job, "Normal", "SuccessfulCreate", f"Created pod: {created['metadata']['name']}")
        return None

    def write_status(self, job: JSON, status: JSON) -> JSON:
        body = dict(job)
        body["metadata"] = dict(job["metadata"])
        body["status"] = status
        meta = job["metadata"]
        return self.api.update(
            self._jobs_type, meta["namespace"], meta["name"], body, write_options(), subresource="status"
        ).obj

    # ------------------------------------------------------------------------------- backoff
    def backoff_remaining(self, record: _Backoff) -> float:
        if record.failures == 0 or record.last_failure is None:
            return 0.0
        delay = self.backoff_base
        for _ in range(1, record.failures):
            delay *= 2
            if delay >= self.backoff_max:
                delay = self.backoff_max
                break
        elapsed = self.api.clock.now().timestamp() - record.last_failure.timestamp()
        return max(0.0, delay - elapsed)


def _job_uid(pod: JSON | None) -> str | None:
    ref = controller_ref(pod)
    if ref is None or ref.get("kind") != "Job":
        return None
    return str(ref["uid"])


def _finish_time(pod: JSON, now: datetime) -> datetime:
    """getFinishedTime: the last container finish, else the deletion timestamp, else now."""
    latest: datetime | None = None
    status = pod.get("status") or {}
    for cs in (status.get("containerStatuses") or []) + (status.get("initContainerStatuses") or []):
        terminated = (cs.get("state") or {}).get("terminated") or {}
        finished = parse_time(str(terminated.get("finishedAt"))) if terminated.get("finishedAt") else None
        if finished is not None and (latest is None or finished > latest):
            latest = finished
    if latest is None and pod["metadata"].get("deletionTimestamp"):
        # deletionTimestamp is when the grace period ends: the deletion itself was that much earlier.
        deleted = parse_time(str(pod["metadata"]["deletionTimestamp"]))
        grace = _int(pod["metadata"].get("deletionGracePeriodSeconds"))
        latest = deleted - timedelta(seconds=grace) if deleted is not None else None
    return latest or now


def _match_pod_failure_policy(policy: Any, pod: JSON) -> tuple[str | None, bool, str | None]:
    """matchPodFailurePolicy: (FailJob message, count towards backoffLimit, matched action)."""
    if not isinstance(policy, dict):
        return None, True, None
    status = pod.get("status") or {}
    meta = pod["metadata"]
    for index, rule in enumerate(policy.get("rules") or []):
        action = rule.get("action")
        on_codes = rule.get("onExitCodes")
        on_conditions = rule.get("onPodConditions")
        if on_codes is not None:
            matched = _match_exit_codes(status, on_codes)
            if matched is None:
                continue
            if action == "Ignore":
                return None, False, action
            if action == "Count":
                return None, True, action
            if action == "FailJob":
                exit_code = matched["state"]["terminated"].get("exitCode")
                message = (
                    f"Container {matched.get('name')} for pod {meta.get('namespace')}/{meta['name']} failed with "
                    f"exit code {exit_code} matching FailJob rule at index {index}"
                )
                return message, True, action
        elif on_conditions is not None:
            cond = _match_pod_conditions(status, on_conditions)
            if cond is None:
                continue
            if action == "Ignore":
                return None, False, action
            if action == "Count":
                return None, True, action
            if action == "FailJob":
                message = (
                    f"Pod {meta.get('namespace')}/{meta['name']} has condition {cond.get('type')} matching FailJob "
                    f"rule at index {index}"
                )
                return message, True, action
    return None, True, None


def _match_exit_codes(status: JSON, requirement: Any) -> JSON | None:
    if not isinstance(requirement, dict):
        return None
    container = requirement.get("containerName")
    values = requirement.get("values") or []
    operator = requirement.get("operator")
    for statuses in (status.get("containerStatuses") or [], status.get("initContainerStatuses") or []):
        for cs in statuses:
            terminated = (cs.get("state") or {}).get("terminated")
            if not terminated:
                continue
            if container and container != cs.get("name"):
                continue
            code = terminated.get("exitCode")
            if not code:
                continue
            if (operator == "In" and code in values) or (operator == "NotIn" and code not in values):
                return dict(cs)
    return None


def _match_pod_conditions(status: JSON, patterns: Any) -> JSON | None:
    for cond in status.get("conditions") or []:
        for pattern in patterns or []:
            if cond.get("type") == pattern.get("type") and cond.get("status") == pattern.get("status", "True"):
                return dict(cond)
    return None


class _Sync:
    """One syncJob pass over a Job that has not finished."""

    def __init__(self, ctl: JobController, job: JSON) -> None:
        self.ctl = ctl
        self.api = ctl.api
        self.job = job
        self.spec: JSON = job.get("spec") or {}
        self.status: JSON = copy.deepcopy(job.get("status") or {})
        self.now = self.api.clock.now()
        self.pods = ctl._pods_for(job)
        self.requeue: float | None = None

    # -- helpers ------------------------------------------------------------------------------
    def _condition(self, ctype: str, status: str, reason: str, message: str) -> JSON:
        now = rfc3339(self.now)
        cond: JSON = {"type": ctype, "status": status, "lastProbeTime": now, "lastTransitionTime": now}
        if reason:
            cond["reason"] = reason
        if message:
            cond["message"] = message
        return cond

    def _ensure_condition(self, ctype: str, status: str, reason: str, message: str) -> bool:
        """ensureJobConditionStatus: update or append (never append a False condition)."""
        conditions: list[JSON] = self.status.setdefault("conditions", [])
        existing = find_condition(conditions, ctype)
        if existing is not None:
            if (
                existing.get("status") != status
                or existing.get("reason") != reason
                or existing.get("message") != message
            ):
                conditions[conditions.index(existing)] = self._condition(ctype, status, reason, message)
                return True
            return False
        if status != "False":
            conditions.append(self._condition(ctype, status, reason, message))
            return True
        if not conditions:
            self.status.pop("conditions", None)
        return False

    def _suspended(self) -> bool:
        return bool(self.spec.get("suspend"))

    def _only_replace_failed(self) -> bool:
        return self.spec.get("podReplacementPolicy") == "Failed" or bool(self.spec.get("podFailurePolicy"))

    def _pod_failed(self, pod: JSON) -> bool:
        """isPodFailed: Failed, or (unless only failed pods are replaced) deleted before succeeding."""
        if _phase(pod) == "Failed":
            return True
        if self._only_replace_failed():
            return False
        return bool(pod["metadata"].get("deletionTimestamp")) and _phase(pod) != "Succeeded"

    # -- the sync -----------------------------------------------------------------------------
    def run(self) -> float | None:
        job, spec, status = self.job, self.spec, self.status
        ctl = self.ctl
        uid = job["metadata"]["uid"]
        uncounted = status.get("uncountedTerminatedPods") or {}
        uncounted_succeeded = set(uncounted.get("succeeded") or [])
        uncounted_failed = set(uncounted.get("failed") or [])
        pods = self.pods
        active_pods = [p for p in pods if pod_active(p)]
        terminating = sum(1 for p in pods if pod_terminating(p))
        ready = sum(1 for p in active_pods if pod_ready(p))
        active = len(active_pods)
        policy = spec.get("podFailurePolicy")

        new_succeeded = [
            p
            for p in pods
            if _has_tracking(p) and p["metadata"]["uid"] not in uncounted_succeeded and _phase(p) == "Succeeded"
        ]
        new_failed = [
            p for p in pods if _has_tracking(p) and p["metadata"]["uid"] not in uncounted_failed and self._pod_failed(p)
        ]
        not_ignored = sum(1 for p in new_failed if _match_pod_failure_policy(policy, p)[1])
        succeeded = _int(status.get("succeeded")) + len(new_succeeded) + len(uncounted_succeeded)
        failed = _int(status.get("failed")) + not_ignored + len(uncounted_failed)
        if spec.get("completionMode") == "Indexed":
            succeeded = len(self._succeeded_indexes())

        needs_flush = False
        if not status.get("startTime") and not self._suspended():
            status["startTime"] = rfc3339(self.now)
            needs_flush = True

        backoff = self._new_backoff_record(uid, new_succeeded, new_failed)

        finished: _Cond | None = None
        met = find_condition(status.get("conditions"), "SuccessCriteriaMet")
        if met is not None and met.get("status") == "True":
            finished = _Cond("SuccessCriteriaMet", str(met.get("reason", "")), str(met.get("message", "")))
        if finished is None:
            target = find_condition(status.get("conditions"), "FailureTarget")
            if target is not None and target.get("status") == "True":
                finished = _Cond("Failed", str(target.get("reason", "")), str(target.get("message", "")))
            elif policy:
                for pod in pods:
                    if self._pod_failed(pod):
                        message, _, _ = _match_pod_failure_policy(policy, pod)
                        if message is not None:
                            finished = _Cond("FailureTarget", REASON_POLICY, message)
                            break
        if finished is None:
            backoff_limit = _int(spec.get("backoffLimit"), 6)
            if failed > backoff_limit or self._past_backoff_limit_on_failure(pods, backoff_limit):
                finished = _Cond("FailureTarget", REASON_BACKOFF, MESSAGE_BACKOFF)
            elif self._past_active_deadline(status):
                finished = _Cond("FailureTarget", REASON_DEADLINE, MESSAGE_DEADLINE)
            elif spec.get("activeDeadlineSeconds") is not None and not self._suspended():
                self._requeue(self._deadline_remaining(status))

        suspend_changed = False
        if finished is not None:
            deleted = 0
            for pod in active_pods:
                if ctl._delete_pod(job, pod):
                    deleted += 1
                    if pod_ready(pod):
                        ready -= 1
            if deleted != active:
                finished = None
            active -= deleted
            terminating += deleted
        else:
            manage_called = False
            if not job["metadata"].get("deletionTimestamp"):
                active, terminating, ready = self._manage(active_pods, active, terminating, ready, succeeded, backoff)
                manage_called = True
            completions = spec.get("completions")
            if completions is None:
                complete = succeeded > 0 and active == 0
            else:
                complete = succeeded >= _int(completions) and active == 0
            if complete:
                finished = _Cond("SuccessCriteriaMet", REASON_COMPLETIONS, MESSAGE_COMPLETIONS)
            elif manage_called:
                if self._suspended():
                    if self._ensure_condition("Suspended", "True", "JobSuspended", "Job suspended"):
                        suspend_changed = True
                        ctl.recorder.event(job, "Normal", "Suspended", "Job suspended")
                elif self._ensure_condition("Suspended", "False", "JobResumed", "Job resumed"):
                    suspend_changed = True
                    ctl.recorder.event(job, "Normal", "Resumed", "Job resumed")
                    status["startTime"] = rfc3339(self.now)

        old = job.get("status") or {}
        needs_flush = (
            needs_flush
            or suspend_changed
            or active != _int(old.get("active"))
            or ready != old.get("ready")
            or terminating != old.get("terminating")
            or "uncountedTerminatedPods" not in old
        )
        self._track_and_remove_finalizers(
            pods, finished, active, ready, terminating, needs_flush, uncounted_succeeded, uncounted_failed, backoff
        )
        return self.requeue

    def _requeue(self, delay: float) -> None:
        delay = max(delay, 0.001)
        self.requeue = delay if self.requeue is None else min(self.requeue, delay)

    def _new_backoff_record(self, uid: str, new_succeeded: list[JSON], new_failed: list[JSON]) -> _Backoff:
        old = self.ctl._backoff.get(uid) or _Backoff()
        record = _Backoff(old.failures, old.last_failure)
        failed_times = sorted(_finish_time(p, self.now) for p in new_failed)
        if not new_succeeded:
            if failed_times:
                record.failures += len(failed_times)
                record.last_failure = failed_times[-1]
            return record
        last_success = max(_finish_time(p, self.now) for p in new_succeeded)
        record.failures = 0
        record.last_failure = None
        for when in reversed(failed_times):
            if when <= last_success:
                break
            if record.last_failure is None:
                record.last_failure = when
            record.failures += 1
        return record

    def _past_backoff_limit_on_failure(self, pods: list[JSON], backoff_limit: int) -> bool:
        template_spec = (self.spec.get("template") or {}).get("spec") or {}
        if template_spec.get("restartPolicy") != "OnFailure":
            return False
        restarts = 0
        for pod in pods:
            if _phase(pod) in ("Running", "Pending"):
                status = pod.get("status") or {}
                for cs in (status.get("initContainerStatuses") or []) + (status.get("containerStatuses") or []):
                    restarts += _int(cs.get("restartCount"))
        if backoff_limit == 0:
            return restarts > 0
        return restarts >= backoff_limit

    def _deadline_remaining(self, status: JSON) -> float:
        start = parse_time(str(status.get("startTime"))) if status.get("startTime") else None
        deadline = _int(self.spec.get("activeDeadlineSeconds"))
        if start is None:
            return float(deadline)
        return start.timestamp() + deadline - self.now.timestamp()

    def _past_active_deadline(self, status: JSON) -> bool:
        if self.spec.get("activeDeadlineSeconds") is None or not status.get("startTime") or self._suspended():
            return False
        return self._deadline_remaining(status) <= 0

    def _manage(
        self,
        active_pods: list[JSON],
        active: int,
        terminating: int,
        ready: int,
        succeeded: int,
        backoff: _Backoff,
    ) -> tuple[int, int, int]:
        """manageJob: delete surplus (or, when suspended, all) active pods, or create missing ones."""
        ctl, job, spec = self.ctl, self.job, self.spec
        if self._suspended():
            for pod in active_pods:
                ctl._remove_tracking_finalizer(pod)
                if ctl._delete_pod(job, pod):
                    active -= 1
                    terminating += 1
                    if pod_ready(pod):
                        ready -= 1
            return active, terminating, ready
        parallelism = _int(spec.get("parallelism"), 1)
        completions = spec.get("completions")
        if completions is None:
            want = active if succeeded > 0 else parallelism
        else:
            want = max(0, min(_int(completions) - succeeded, parallelism))
        surplus = active - want
        if surplus > 0:
            for pod in sorted(active_pods, key=active_pod_sort_key)[: min(surplus, MAX_POD_CREATE_DELETE_PER_SYNC)]:
                ctl._remove_tracking_finalizer(pod)
                if ctl._delete_pod(job, pod):
                    active -= 1
                    terminating += 1
                    if pod_ready(pod):
                        ready -= 1
            return active, terminating, ready
        pending_terminating = terminating if self._only_replace_failed() else 0
        diff = want - pending_terminating - active
        if diff <= 0:
            return active, terminating, ready
        remaining = ctl.backoff_remaining(backoff)
        if remaining > 0:
            self._requeue(remaining)
            return active, terminating, ready
        diff = min(diff, MAX_POD_CREATE_DELETE_PER_SYNC)
        indexes: list[int | None] = [None] * diff
        if spec.get("completionMode") == "Indexed":
            indexes = list(self._pending_indexes(active_pods, diff))
        for index in indexes:
            if ctl._create_pod(job, index) is None:
                active += 1
            else:
                self._requeue(1.0)
                break
        return active, terminating, ready

    # -- Indexed completion mode ----------------------------------------------------------------
    def _succeeded_indexes(self) -> set[int]:
        completions = _int(self.spec.get("completions"))
        done = _parse_indexes(str(self.status.get("completedIndexes") or ""), completions)
        for pod in self.pods:
            if _phase(pod) == "Succeeded":
                index = _pod_index(pod)
                if index is not None and index < completions:
                    done.add(index)
        return done

    def _pending_indexes(self, active_pods: list[JSON], count: int) -> Iterable[int]:
        completions = _int(self.spec.get("completions"))
        taken = self._succeeded_indexes() | {i for p in active_pods if (i := _pod_index(p)) is not None}
        found = 0
        for index in range(completions):
            if index not in taken:
                yield index
                found += 1
                if found >= count:
                    return

    # -- tracking -------------------------------------------------------------------------------
    def _track_and_remove_finalizers(
        self,
        pods: list[JSON],
        finished: _Cond | None,
        active: int,
        ready: int,
        terminating: int,
        needs_flush: bool,
        uncounted_succeeded: set[str],
        uncounted_failed: set[str],
        backoff: _Backoff,
    ) -> None:
        ctl, job, status = self.ctl, self.job, self.status
        policy = self.spec.get("podFailurePolicy")
        indexed = self.spec.get("completionMode") == "Indexed"
        with_finalizer = {p["metadata"]["uid"] for p in pods if _has_tracking(p)}
        succeeded_list = [u for u in status.get("uncountedTerminatedPods", {}).get("succeeded") or []]
        failed_list = [u for u in status.get("uncountedTerminatedPods", {}).get("failed") or []]
        if self._clean_uncounted(succeeded_list, failed_list, with_finalizer):
            needs_flush = True
        to_remove: list[JSON] = []
        for pod in pods:
            uid = pod["metadata"]["uid"]
            if not _has_tracking(pod):
                continue
            consider_failed = self._pod_failed(pod)
            if not (
                job["metadata"].get("deletionTimestamp")
                or finished is not None
                or _phase(pod) == "Succeeded"
                or consider_failed
            ):
                continue
            to_remove.append(pod)
            if _phase(pod) == "Succeeded" and uid not in uncounted_failed:
                if uid not in uncounted_succeeded and uid not in succeeded_list:
                    succeeded_list.append(uid)
                    needs_flush = True
            elif (
                consider_failed or (finished is not None and finished.type != "SuccessCriteriaMet")
            ) and uid not in uncounted_failed | set(failed_list):
                _, count, _ = _match_pod_failure_policy(policy, pod)
                if count:
                    failed_list.append(uid)
                    needs_flush = True
            if len(succeeded_list) + len(failed_list) >= MAX_UNCOUNTED_PODS:
                self._requeue(0.0)
                break
        if indexed:
            completions = _int(self.spec.get("completions"))
            done = self._succeeded_indexes()
            text = _format_indexes(sorted(i for i in done if i < completions))
            if text != (status.get("completedIndexes") or ""):
                needs_flush = True
            status["completedIndexes"] = text
            status["succeeded"] = len(done)
            succeeded_list = []  # Indexed Jobs count by index, not by UID
        if finished is not None and finished.type == "FailureTarget":
            status.setdefault("conditions", []).append(
                self._condition("FailureTarget", "True", finished.reason, finished.message)
            )
            needs_flush = True
            finished = _Cond("Failed", finished.reason, finished.message)
        if finished is not None and finished.type == "SuccessCriteriaMet":
            if find_condition(status.get("conditions"), "SuccessCriteriaMet") is None:
                status.setdefault("conditions", []).append(
                    self._condition("SuccessCriteriaMet", "True", finished.reason, finished.message)
                )
                needs_flush = True
            finished = _Cond("Complete", finished.reason, finished.message)
        self._set_counts(active, ready, terminating, succeeded_list, failed_list)
        if needs_flush:
            self._flush()
            ctl._backoff[job["metadata"]["uid"]] = backoff
            needs_flush = False
        removed_ok: set[str] = set()
        for pod in to_remove:
            if ctl._remove_tracking_finalizer(pod):
                removed_ok.add(pod["metadata"]["uid"])
        if self._clean_uncounted(succeeded_list, failed_list, with_finalizer - removed_ok):
            needs_flush = True
        self._set_counts(active, ready, terminating, succeeded_list, failed_list)
        finished_now = False
        if finished is not None and not succeeded_list and not failed_list and terminating == 0:
            self._ensure_condition(finished.type, "True", finished.reason, finished.message)
            if finished.type == "Complete":
                cond = find_condition(status.get("conditions"), "Complete") or {}
                status["completionTime"] = cond.get("lastTransitionTime", rfc3339(self.now))
            finished_now = True
            needs_flush = True
        if needs_flush:
            self._flush()
        if finished_now and finished is not None:
            if finished.type == "Complete":
                wanted = self.spec.get("completions")
                if wanted is not None and _int(status.get("succeeded")) > _int(wanted):
                    ctl.recorder.event(
                        self.job,
                        "Warning",
                        "TooManySucceededPods",
                        "Too many succeeded pods running after completion count reached",
                    )
                ctl.recorder.event(self.job, "Normal", "Completed", "Job completed")
            else:
                ctl.recorder.event(self.job, "Warning", finished.reason, finished.message)
            self.requeue = None
            ttl = self.spec.get("ttlSecondsAfterFinished")
            if isinstance(ttl, int) and not isinstance(ttl, bool):
                self._requeue(float(ttl))

    def _clean_uncounted(self, succeeded_list: list[str], failed_list: list[str], with_finalizer: set[str]) -> bool:
        """cleanUncountedPodsWithoutFinalizers: UIDs whose finalizer is gone move into the counters."""
        changed = False
        keep = [u for u in succeeded_list if u in with_finalizer]
        if len(keep) != len(succeeded_list):
            if self.spec.get("completionMode") != "Indexed":
                self.status["succeeded"] = _int(self.status.get("succeeded")) + len(succeeded_list) - len(keep)
            succeeded_list[:] = keep
            changed = True
        keep = [u for u in failed_list if u in with_finalizer]
        if len(keep) != len(failed_list):
            self.status["failed"] = _int(self.status.get("failed")) + len(failed_list) - len(keep)
            failed_list[:] = keep
            changed = True
        return changed

    def _set_counts(
        self, active: int, ready: int, terminating: int, succeeded_list: list[str], failed_list: list[str]
    ) -> None:
        status = self.status
        uncounted: JSON = {}
        if succeeded_list:
            uncounted["succeeded"] = list(succeeded_list)
        if failed_list:
            uncounted["failed"] = list(failed_list)
        status["active"] = active
        status["ready"] = max(ready, 0)
        status["terminating"] = max(terminating, 0)
        status["uncountedTerminatedPods"] = uncounted

    def _flush(self) -> None:
        """UpdateStatus with the JobStatus field order and omitempty rules of batch/v1."""
        status = self.status
        out: JSON = {}
        if status.get("conditions"):
            out["conditions"] = status["conditions"]
        for key in ("startTime", "completionTime"):
            if status.get(key):
                out[key] = status[key]
        for key in ("active", "succeeded", "failed"):
            if _int(status.get(key)):
                out[key] = _int(status[key])
        out["terminating"] = _int(status.get("terminating"))
        if self.spec.get("completionMode") == "Indexed" and status.get("completedIndexes"):
            out["completedIndexes"] = status["completedIndexes"]
        out["uncountedTerminatedPods"] = status.get("uncountedTerminatedPods") or {}
        out["ready"] = _int(status.get("ready"))
        self.job = self.ctl.write_status(self.job, out)


def _pod_index(pod: JSON) -> int | None:
    value = (pod["metadata"].get("annotations") or {}).get("batch.kubernetes.io/job-completion-index")
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


def _parse_indexes(text: str, completions: int) -> set[int]:
    out: set[int] = set()
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        try:
            if "-" in part:
                lo, hi = (int(x) for x in part.split("-", 1))
                out.update(i for i in range(lo, hi + 1) if i < completions)
            elif int(part) < completions:
                out.add(int(part))
        except ValueError:
            continue
    return out


def _format_indexes(indexes: list[int]) -> str:
    """`1,3-5,7`: consecutive runs of three or more collapse (succeededIndexes.String)."""
    parts: list[str] = []
    i = 0
    while i < len(indexes):
        j = i
        while j + 1 < len(indexes) and indexes[j + 1] == indexes[j] + 1:
            j += 1
        if j == i:
            parts.append(str(indexes[i]))
        elif j == i + 1:
            parts.extend([str(indexes[i]), str(indexes[j])])
        else:
            parts.append(f"{indexes[i]}-{indexes[j]}")
        i = j + 1
    return ",".join(parts)
