"""`observe(op, job, pods, now, settings)`: THE single mapping from a Job and its pods to a run outcome (pure).

Everything the operator concludes about a running attempt comes from here, and it is table-tested
without a cluster (tests/unit/test_observe.py). The Job's *conditions* are read before anything else
(`Failed`/`FailureTarget`, then `Complete`/`SuccessCriteriaMet`, as kueue does); pods only add detail
(exit code, OOM, eviction, deletion, image pulls).

Outcomes (`Phase`):

| phase     | when                                                                   |
|-----------|------------------------------------------------------------------------|
| NoJob     | no Job is known for the operation's `status.jobName`                     |
| Pending   | the Job exists, its pod is not running yet (scheduling, creating, being replaced); or the |
|           | Job failed and its pod's end is not in view yet (at most `FINAL_POD_STATUS_WAIT_SECONDS`) |
| Running   | the worker container runs                                              |
| Succeeded | the worker exited 0 (Job complete) and the operation has a terminal state |
| Failed    | one of the reasons below                                               |

Failure reasons (condition reasons of the operation, `dops.api.constants.Reasons`):

| reason                     | cause                                                            |
|----------------------------|------------------------------------------------------------------|
| NonZeroExitCode            | exited non-zero (message: its recorded error, termination message or log tail) |
| OOMKilled                  | the worker container was killed for exceeding its memory limit    |
| DeadlineExceeded           | the Job ran longer than `activeDeadlineSeconds` (timeoutSeconds)   |
| BackoffLimitExceeded       | every allowed retry (backoffLimit > 0) failed                      |
| ImagePullBackOff           | the image could not be pulled for `image_pull_grace_seconds`      |
| CreateContainerConfigError | the container could not be configured (missing Secret/ConfigMap…) for the same grace |
| PodDeleted                 | the worker pod was deleted while it ran                            |
| PodEvicted                 | the worker pod was evicted/disrupted                               |
| PodLost                    | the worker pod was lost with its node for `lost_pod_grace_seconds`  |
|                            | (running while terminating past its grace, Unknown, marked not    |
|                            | ready by the node lifecycle controller)                            |
| JobMissing                 | the Job was deleted (a tombstone is passed as `job`) or is being deleted |
| WorkerExitedWithoutResult  | the worker exited 0 but the operation is not completed/failed     |
| JobFailed                  | the Job failed for another reason                                  |

Inputs are *compact* forms (`compact_job`, `compact_pod`): the few fields observe needs, so the
operator's caches stay small. A compact object with `gone: True` is a tombstone: the object was
deleted while the operator watched.
"""

from __future__ import annotations

import datetime as dt
import enum
import json
import signal
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from ..api import constants as c
from ..api.times import parse_time
from .jobs import (
    JOB_NAME_LABEL,
    LEGACY_JOB_NAME_LABEL,
    OPERATION_ANNOTATION,
    WORKER_FAILED_EXIT_CODE,
    WORKER_UNRECORDED_EXIT_CODE,
)
from .runlink import WORKER_CONTAINER
from .settings import OperatorSettings

JSON = dict[str, Any]
MAX_DETAIL_CHARS = 4096
IMAGE_ERRORS = frozenset(
    {"ErrImagePull", "ImagePullBackOff", "InvalidImageName", "ErrImageNeverPull", "RegistryUnavailable"}
)
CONFIG_ERRORS = frozenset({"CreateContainerConfigError", "CreateContainerError", "RunContainerError"})
# How long a failed Job waits for its pod's end to come into view (the pod watch may lag the Job watch).
FINAL_POD_STATUS_WAIT_SECONDS = 10.0
# Reasons that describe what happened to the run's infrastructure: they win over the worker's own
# "operator failed" verdict when the operation was failed by the worker while being torn down.
INFRASTRUCTURE_REASONS = frozenset(
    {
        c.Reasons.OOM_KILLED,
        c.Reasons.TIMED_OUT,
        c.Reasons.POD_DELETED,
        c.Reasons.POD_EVICTED,
        c.Reasons.POD_LOST,
        c.Reasons.JOB_MISSING,
        c.Reasons.IMAGE_PULL,
        c.Reasons.CONTAINER_CONFIG,
    }
)


class Phase(enum.StrEnum):
    NO_JOB = "NoJob"
    PENDING = "Pending"
    RUNNING = "Running"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"


@dataclass(frozen=True)
class Outcome:
    """What the Job and its pods say about the current attempt."""

    phase: Phase
    reason: str = ""
    message: str = ""
    exit_code: int | None = None
    pod: str | None = None  # the newest pod of the Job
    pod_started: bool = False  # the worker container of that pod started (it has a log)
    pod_active: bool = False  # that pod still runs or is about to (not terminal, not deleted)
    job_active: bool = False  # the Job exists and is not finished
    failed_pods: tuple[str, ...] = ()  # pods of the Job that failed, oldest first
    disrupted_pods: tuple[str, ...] = ()  # pods of the Job that ended by a disruption (eviction, ...), oldest first
    disruption: str = ""  # why the newest of those ended
    running_since: str | None = None  # when the newest pod's worker container started running
    requeue_after: float | None = None  # seconds until the outcome may change by time alone
    awaiting_pod_end: bool = False  # the Job failed, its pod's end is not in view yet (decide on its event)
    extra: JSON = field(default_factory=dict)

    @property
    def failed(self) -> bool:
        return self.phase is Phase.FAILED


# ------------------------------------------------------------------------------------------ compact forms


def _condition_summary(conditions: Iterable[Mapping[str, Any]] | None, types: Iterable[str]) -> list[JSON]:
    wanted = set(types)
    out = []
    for cond in conditions or ():
        if cond.get("type") in wanted:
            out.append(
                {
                    "type": cond.get("type"),
                    "status": cond.get("status"),
                    "reason": cond.get("reason") or "",
                    "message": _clip(str(cond.get("message") or "")),
                    "lastTransitionTime": cond.get("lastTransitionTime"),
                }
            )
    return out


def _clip(text: str, limit: int = MAX_DETAIL_CHARS) -> str:
    return text if len(text) <= limit else "..." + text[-(limit - 3) :]


def _owner(meta: Mapping[str, Any], kind: str) -> str | None:
    for ref in meta.get("ownerReferences") or []:
        if ref.get("kind") == kind and ref.get("controller"):
            return str(ref.get("name"))
    for ref in meta.get("ownerReferences") or []:
        if ref.get("kind") == kind:
            return str(ref.get("name"))
    return None


def _owner_uid(meta: Mapping[str, Any], kind: str) -> str | None:
    for ref in meta.get("ownerReferences") or []:
        if ref.get("kind") == kind:
            return str(ref.get("uid"))
    return None


def compact_job(job: Mapping[str, Any], *, gone: bool = False) -> JSON:
    """The fields of a Job that `observe` and the operator need."""
    meta = job.get("metadata") or {}
    spec = job.get("spec") or {}
    status = job.get("status") or {}
    annotations = meta.get("annotations") or {}
    return {
        "name": meta.get("name"),
        "namespace": meta.get("namespace"),
        "uid": meta.get("uid"),
        "resourceVersion": meta.get("resourceVersion"),
        "creationTimestamp": meta.get("creationTimestamp"),
        "deletionTimestamp": meta.get("deletionTimestamp"),
        "operation": annotations.get(OPERATION_ANNOTATION),
        "owner": _owner(meta, c.KIND),
        "ownerUid": _owner_uid(meta, c.KIND),
        "backoffLimit": spec.get("backoffLimit"),
        "activeDeadlineSeconds": spec.get("activeDeadlineSeconds"),
        "ttlSecondsAfterFinished": spec.get("ttlSecondsAfterFinished"),
        "active": status.get("active") or 0,
        "failed": status.get("failed") or 0,
        "succeeded": status.get("succeeded") or 0,
        "startTime": status.get("startTime"),
        "completionTime": status.get("completionTime"),
        "conditions": _condition_summary(
            status.get("conditions"), ("Complete", "Failed", "FailureTarget", "SuccessCriteriaMet", "Suspended")
        ),
        "gone": gone,
    }


def _worker_container_status(status: Mapping[str, Any]) -> Mapping[str, Any]:
    statuses = status.get("containerStatuses") or []
    for cs in statuses:
        if cs.get("name") == WORKER_CONTAINER:
            return dict(cs)
    return dict(statuses[0]) if statuses else {}


def _clip_state(state: Mapping[str, Any] | None) -> JSON:
    out: JSON = {}
    for key, value in (state or {}).items():
        if isinstance(value, Mapping):
            inner = dict(value)
            if isinstance(inner.get("message"), str):
                inner["message"] = _clip(inner["message"])
            out[key] = inner
    return out


def compact_pod(pod: Mapping[str, Any], *, gone: bool = False) -> JSON:
    """The fields of a worker pod that `observe` and the operator need."""
    meta = pod.get("metadata") or {}
    status = pod.get("status") or {}
    labels = meta.get("labels") or {}
    annotations = meta.get("annotations") or {}
    cs = _worker_container_status(status)
    containers = (pod.get("spec") or {}).get("containers") or []
    image = next((x.get("image") for x in containers if x.get("name") == WORKER_CONTAINER), None)
    return {
        "name": meta.get("name"),
        "namespace": meta.get("namespace"),
        "uid": meta.get("uid"),
        "creationTimestamp": meta.get("creationTimestamp"),
        "deletionTimestamp": meta.get("deletionTimestamp"),
        "job": labels.get(JOB_NAME_LABEL) or labels.get(LEGACY_JOB_NAME_LABEL) or _owner(meta, "Job"),
        "operation": annotations.get(OPERATION_ANNOTATION),
        "phase": status.get("phase") or "Pending",
        "reason": status.get("reason") or "",
        "message": _clip(str(status.get("message") or "")),
        "conditions": _condition_summary(
            status.get("conditions"), ("DisruptionTarget", "PodScheduled", "Ready", "ContainersReady")
        ),
        "node": (pod.get("spec") or {}).get("nodeName"),
        "container": {
            "state": _clip_state(cs.get("state")),
            "lastState": _clip_state(cs.get("lastState")),
            "restartCount": cs.get("restartCount") or 0,
        },
        "image": image or (cs.get("image") if cs else None),
        "gone": gone,
    }


# ------------------------------------------------------------------------------------------ helpers


def _cond(obj: Mapping[str, Any], ctype: str) -> Mapping[str, Any] | None:
    for cond in obj.get("conditions") or []:
        if cond.get("type") == ctype and cond.get("status") == "True":
            return dict(cond)
    return None


def _pod_order(pod: Mapping[str, Any]) -> tuple[str, str]:
    return str(pod.get("creationTimestamp") or ""), str(pod.get("name") or "")


def _terminated(pod: Mapping[str, Any]) -> Mapping[str, Any] | None:
    container = pod.get("container") or {}
    state = container.get("state") or {}
    if state.get("terminated"):
        return dict(state["terminated"])
    last = container.get("lastState") or {}
    if last.get("terminated") and not state.get("running"):
        return dict(last["terminated"])
    return None


def _waiting(pod: Mapping[str, Any]) -> Mapping[str, Any] | None:
    state = (pod.get("container") or {}).get("state") or {}
    waiting = state.get("waiting")
    return dict(waiting) if waiting else None


def _running(pod: Mapping[str, Any]) -> bool:
    state = (pod.get("container") or {}).get("state") or {}
    return bool(state.get("running")) and not pod.get("gone")


def _started(pod: Mapping[str, Any]) -> bool:
    container = pod.get("container") or {}
    state = container.get("state") or {}
    if state.get("running"):
        return True
    term = _terminated(pod)
    return term is not None and term.get("reason") != "StartError" and bool(term.get("startedAt"))


def _deleted(pod: Mapping[str, Any]) -> bool:
    return bool(pod.get("gone") or pod.get("deletionTimestamp"))


def _pod_failed(pod: Mapping[str, Any]) -> bool:
    if pod.get("phase") == "Failed":
        return True
    term = _terminated(pod)
    if term is not None and term.get("exitCode") not in (None, 0):
        return True
    return bool(pod.get("gone")) and pod.get("phase") != "Succeeded"


def _disrupted(pod: Mapping[str, Any]) -> bool:
    """The pod ended (or is ending) because of a disruption: the Job does not count it against backoffLimit
    (its podFailurePolicy ignores DisruptionTarget) and runs the worker again on a new pod."""
    if _cond(pod, "DisruptionTarget") is None and pod.get("reason") != "Evicted":
        return False
    return _deleted(pod) or pod.get("phase") in ("Failed", "Unknown") or _terminated(pod) is not None


def _pod_active(pod: Mapping[str, Any]) -> bool:
    return pod.get("phase") not in ("Succeeded", "Failed") and not _deleted(pod)


# What the worker's own exit codes mean (dops.worker.run); 1 is Python's code for an unhandled exception.
WORKER_EXIT_MEANINGS = {
    1: "the worker crashed",
    WORKER_FAILED_EXIT_CODE: "the operation failed",
    WORKER_UNRECORDED_EXIT_CODE: "the worker could not reach the API server to record its outcome",
}


def exit_detail(code: int) -> str:
    """`exit code 137 (killed by SIGKILL)`-style text; the worker's own codes say what they mean."""
    if code in WORKER_EXIT_MEANINGS:
        return f"exit code {code} ({WORKER_EXIT_MEANINGS[code]})"
    if code > 128:
        try:
            name = signal.Signals(code - 128).name
        except ValueError:
            return f"exit code {code}"
        return f"exit code {code} (killed by {name})"
    return f"exit code {code}"


def unrecorded_outcome(message: str, op: Mapping[str, Any]) -> JSON | None:
    """The outcome a worker could not record, from its termination message, when it belongs to `op`'s attempt.

    The worker (exit code 4) writes `{"runState": "completed"|"failed", "recorded": false, "attempt", "uid",
    "result", ...}`; None for anything else, or for a message of another attempt or of a predecessor with the
    same name (uid)."""
    try:
        doc = json.loads(message)
    except ValueError:
        return None
    if not isinstance(doc, dict) or doc.get("recorded") is not False:
        return None
    if doc.get("runState") not in ("completed", "failed"):
        return None
    uid = (op.get("metadata") or {}).get("uid")
    attempt = (op.get("status") or {}).get("attempt")
    if doc.get("uid") and uid and doc["uid"] != uid:
        return None
    if doc.get("attempt") is not None and attempt is not None and doc["attempt"] != attempt:
        return None
    result = doc.get("result")
    return {
        "runState": doc["runState"],
        "result": dict(result) if isinstance(result, dict) else {},
        "resultOmitted": bool(doc.get("resultOmitted")),
    }


def worker_error(op: Mapping[str, Any]) -> str:
    """The error the worker recorded in the operation's status (short message, else the traceback's tail)."""
    result = (op.get("status") or {}).get("result") or {}
    message = str(result.get("errorMessage") or "").strip()
    if message:
        return message
    error = str(result.get("error") or "").strip()
    return _clip(error) if error else ""


def _elapsed(since: str | None, now: dt.datetime) -> float:
    start = parse_time(since) if since else None
    return (now - start).total_seconds() if start is not None else 0.0


def pod_failure(pod: Mapping[str, Any], op: Mapping[str, Any] | None = None) -> Outcome | None:
    """Why a failed (or deleted) worker pod failed; None when it shows no failure."""
    name = str(pod.get("name"))
    term = _terminated(pod)
    raw_code = term.get("exitCode") if term else None
    code = raw_code if isinstance(raw_code, int) else None
    code_text = f" ({exit_detail(code)})" if code else ""
    disruption = _cond(pod, "DisruptionTarget")
    base = Outcome(Phase.FAILED, pod=name, exit_code=code, pod_started=_started(pod))
    if disruption is not None or pod.get("reason") == "Evicted":
        why = (disruption or {}).get("message") or pod.get("message") or (disruption or {}).get("reason") or "evicted"
        return replace(base, reason=c.Reasons.POD_EVICTED, message=f"worker pod {name} was evicted: {why}{code_text}")
    if _deleted(pod) and pod.get("phase") != "Succeeded":
        return replace(
            base,
            reason=c.Reasons.POD_DELETED,
            message=f"worker pod {name} was deleted while the worker was running{code_text}",
        )
    if term is not None and term.get("reason") == "OOMKilled":
        return replace(
            base,
            reason=c.Reasons.OOM_KILLED,
            message=f"the worker ran out of memory and was killed (OOMKilled{code_text}); "
            "raise the memory limit in the DelegationTarget's podTemplate.resources",
        )
    if pod.get("reason") == "DeadlineExceeded":
        return replace(
            base, reason=c.Reasons.TIMED_OUT, message=f"worker pod {name}: {pod.get('message') or 'deadline exceeded'}"
        )
    if code:
        detail = worker_error(op or {}) or str((term or {}).get("message") or "").strip()
        text = f"the worker exited with {exit_detail(code)}"
        if code == WORKER_UNRECORDED_EXIT_CODE:
            recovered = unrecorded_outcome(str((term or {}).get("message") or ""), op or {})
            if recovered is not None:
                # The run finished; only its write was lost: the operator records it (`extra["recovered"]`).
                return replace(base, reason=c.Reasons.NON_ZERO_EXIT, message=text, extra={"recovered": recovered})
        if detail:
            text += f": {_clip(detail)}"
        return replace(base, reason=c.Reasons.NON_ZERO_EXIT, message=text)
    waiting = _waiting(pod)
    if waiting is not None and waiting.get("reason") in IMAGE_ERRORS | CONFIG_ERRORS:
        return _start_failure(pod, waiting, base)
    return None


def _start_failure(pod: Mapping[str, Any], waiting: Mapping[str, Any], base: Outcome) -> Outcome:
    reason = str(waiting.get("reason"))
    message = str(waiting.get("message") or reason)
    if reason in IMAGE_ERRORS:
        image = pod.get("image") or "the worker image"
        return replace(
            base,
            phase=Phase.FAILED,
            reason=c.Reasons.IMAGE_PULL,
            message=f"the worker image {image} cannot be pulled ({reason}): {_clip(message)}",
        )
    return replace(
        base,
        phase=Phase.FAILED,
        reason=c.Reasons.CONTAINER_CONFIG,
        message=f"the worker container cannot start ({reason}): {_clip(message)}",
    )


# ------------------------------------------------------------------------------------------ observe


def observe(
    op: Mapping[str, Any],
    job: Mapping[str, Any] | None,
    pods: Iterable[Mapping[str, Any]],
    now: dt.datetime,
    settings: OperatorSettings,
) -> Outcome:
    """The outcome of the operation's current attempt (see the module docstring for the table)."""
    if job is None:
        return Outcome(Phase.NO_JOB)
    jname = str(job.get("name"))
    state = (op.get("status") or {}).get("runState")
    if job.get("gone"):
        return Outcome(
            Phase.FAILED,
            c.Reasons.JOB_MISSING,
            f"Job {jname} was deleted while the operation was {state or 'not finished'}",
        )
    mine = sorted((p for p in pods if p.get("job") == jname), key=_pod_order)
    latest = mine[-1] if mine else None
    base = Outcome(
        Phase.PENDING,
        pod=str(latest.get("name")) if latest else None,
        pod_started=_started(latest) if latest else False,
        pod_active=_pod_active(latest) if latest else False,
        failed_pods=tuple(str(p.get("name")) for p in mine if _pod_failed(p)),
    )
    disrupted = [p for p in mine if _disrupted(p)]
    if disrupted:
        last = pod_failure(disrupted[-1], op)
        base = replace(
            base,
            disrupted_pods=tuple(str(p.get("name")) for p in disrupted),
            disruption=last.message if last is not None else "",
        )
    failed = _cond(job, "Failed") or _cond(job, "FailureTarget")
    if failed is not None:
        return _job_failed(op, job, mine, failed, base, now)
    if _cond(job, "Complete") or _cond(job, "SuccessCriteriaMet") or (latest and latest.get("phase") == "Succeeded"):
        return _succeeded(state, base)
    base = replace(base, job_active=True)
    if job.get("deletionTimestamp"):
        return replace(base, phase=Phase.FAILED, reason=c.Reasons.JOB_MISSING, message=f"Job {jname} is being deleted")
    if latest is None:
        return replace(base, message=f"waiting for Job {jname} to create its pod")
    if _running(latest):
        started = ((latest.get("container") or {}).get("state") or {}).get("running") or {}
        running = replace(base, phase=Phase.RUNNING, running_since=started.get("startedAt"))
        return _lost(latest, running, now, float(settings.lost_pod_grace_seconds))
    if _pod_failed(latest) or _deleted(latest):
        # The Job controller decides next: a replacement pod (retries left, or a disruption it ignores)
        # or a Failed condition. Either arrives as a Job/pod event.
        return replace(base, message=f"worker pod {latest.get('name')} ended; waiting for Job {jname}")
    waiting = _waiting(latest)
    if waiting is not None and waiting.get("reason") in IMAGE_ERRORS | CONFIG_ERRORS:
        grace = float(settings.image_pull_grace_seconds)
        elapsed = _elapsed(latest.get("creationTimestamp"), now)
        if elapsed >= grace:
            return _start_failure(latest, waiting, base)
        return replace(
            base,
            message=f"worker pod {latest.get('name')}: {waiting.get('reason')}",
            requeue_after=max(grace - elapsed, 0.0),
        )
    return replace(base, message=f"worker pod {latest.get('name')} is starting")


def _lost_since(pod: Mapping[str, Any]) -> tuple[str, str] | None:
    """(since when, why) a pod that still shows its worker running may be lost with its node; None if not.

    - terminating: past its `deletionTimestamp` (the end of its termination grace period) the kubelet
      should have stopped it; a pod still "running" then sits on a node that no longer reports;
    - phase `Unknown`: the node stopped reporting (older control planes);
    - `Ready=False` marked by the node lifecycle controller when the node stopped reporting: since v1.2x it
      writes `Ready=False` with no reason and leaves `ContainersReady=True` (checked on a v1.35 API server,
      tests/integration/test_node_agent.py), which a kubelet never reports (its not-ready pods carry
      `ContainersNotReady` or `ReadinessGatesNotReady`); older controllers wrote reason `NodeNotReady`/`NodeLost`.

    When several apply, the earliest counts: a pod the taint eviction controller evicts from a lost node
    (`DisruptionTarget`, a deletionTimestamp its termination grace period ahead) was lost since it was marked not
    ready, not since the end of a grace period no kubelet will honour (tests/integration/test_operator_node_loss.py).
    """
    found = [e for e in (_lost_by_deletion(pod), _lost_by_phase(pod), _lost_by_readiness(pod)) if e is not None]
    if not found:
        return None
    return min(found, key=lambda evidence: _instant(evidence[0]))


def _instant(since: str) -> dt.datetime:
    """A lost-pod evidence's time for ordering; one without a time sorts last (it is the weakest)."""
    parsed = parse_time(since) if since else None
    return parsed if parsed is not None else dt.datetime.max.replace(tzinfo=dt.UTC)


def _on_node(pod: Mapping[str, Any]) -> str:
    return f" on node {pod['node']}" if pod.get("node") else ""


def _ready(pod: Mapping[str, Any]) -> Mapping[str, Any] | None:
    return next((x for x in pod.get("conditions") or [] if x.get("type") == "Ready"), None)


def _lost_by_deletion(pod: Mapping[str, Any]) -> tuple[str, str] | None:
    if not pod.get("deletionTimestamp"):
        return None
    why = f"was deleted and is still shown running{_on_node(pod)} past its grace period"
    return str(pod["deletionTimestamp"]), why


def _lost_by_phase(pod: Mapping[str, Any]) -> tuple[str, str] | None:
    if pod.get("phase") != "Unknown":
        return None
    since = (_ready(pod) or {}).get("lastTransitionTime") or pod.get("creationTimestamp")
    return str(since or ""), f"is in phase Unknown{_on_node(pod)} (its node stopped reporting)"


def _lost_by_readiness(pod: Mapping[str, Any]) -> tuple[str, str] | None:
    ready = _ready(pod)
    if pod.get("phase") == "Unknown" or ready is None or ready.get("status") != "False":
        return None
    since = str(ready.get("lastTransitionTime") or "")
    if ready.get("reason") in ("NodeNotReady", "NodeLost"):
        return since, f"is not ready{_on_node(pod)}: {ready.get('reason')}"
    containers = next((x for x in pod.get("conditions") or [] if x.get("type") == "ContainersReady"), None)
    if not ready.get("reason") and containers is not None and containers.get("status") == "True":
        return (
            since,
            f"was marked not ready{_on_node(pod)} by the node lifecycle controller (its node stopped reporting)",
        )
    return None


def _lost(pod: Mapping[str, Any], running: Outcome, now: dt.datetime, grace: float) -> Outcome:
    """The lost-pod rule: a running outcome stays running until its pod has been lost for `grace` seconds."""
    lost = _lost_since(pod)
    if lost is None:
        return running
    since, why = lost
    elapsed = _elapsed(since, now)
    if elapsed < grace:
        return replace(running, requeue_after=max(grace - elapsed, 0.0))
    return replace(
        running,
        phase=Phase.FAILED,
        reason=c.Reasons.POD_LOST,
        message=f"worker pod {pod.get('name')} {why} for {elapsed:.0f} s (lost-pod grace {grace:.0f} s); "
        "its node is presumed lost and the run with it",
    )


def start_blocker(job: Mapping[str, Any] | None, pods: Iterable[Mapping[str, Any]]) -> str:
    """Why the worker of `job` has not started yet, from the Job and its newest pod (for the start deadline)."""
    if job is None or job.get("gone"):
        return "its Job does not exist"
    jname = job.get("name")
    suspended = _cond(job, "Suspended")
    if suspended is not None:
        return f"Job {jname} is suspended" + (f": {suspended['message']}" if suspended.get("message") else "")
    mine = sorted((p for p in pods if p.get("job") == jname), key=_pod_order)
    if not mine:
        return f"Job {jname} has created no pod"
    pod = mine[-1]
    name = pod.get("name")
    scheduled = next((x for x in pod.get("conditions") or [] if x.get("type") == "PodScheduled"), None)
    if scheduled is not None and scheduled.get("status") == "False":
        why = scheduled.get("reason") or "not scheduled"
        return f"worker pod {name} is {why}" + (f": {scheduled['message']}" if scheduled.get("message") else "")
    waiting = _waiting(pod)
    if waiting is not None:
        why = str(waiting.get("reason") or "waiting")
        return f"worker pod {name} is waiting ({why})" + (f": {waiting['message']}" if waiting.get("message") else "")
    if _running(pod):
        return f"worker pod {name} runs but its worker has not claimed the operation"
    return f"worker pod {name} is {pod.get('phase') or 'Pending'}" + (
        f": {pod['message']}" if pod.get("message") else ""
    )


def _settled(pod: Mapping[str, Any]) -> bool:
    """The pod's end is in view: its worker's termination, a terminal phase, or the pod gone (its last state)."""
    return bool(pod.get("gone")) or pod.get("phase") in ("Succeeded", "Failed") or _terminated(pod) is not None


def _final_pod_status_wait(
    pods: list[Mapping[str, Any]], condition: Mapping[str, Any], now: dt.datetime
) -> float | None:
    """Seconds to wait for the worker pod's end before reading a failed Job, None to read it now.

    The Job controller fails a Job only after its pod's end (with a podFailurePolicy a terminating pod counts
    once it is terminal), but Jobs and pods come on separate watches: the Job's condition can arrive before the
    pod update that carries the worker's exit code, or before the pod's first event at all (and FailureTarget
    before the Job's `failed` count). Deciding then would lose the exit code and the signal (JobFailed instead
    of NonZeroExitCode, PodDeleted without "SIGTERM"). The pod event reconciles the operation again; the wait
    is bounded by FINAL_POD_STATUS_WAIT_SECONDS from the condition's lastTransitionTime (an operation found
    long failed after a restart is decided at once, and a clock behind the server's by more than the bound
    does not wait at all)."""
    if pods and _settled(pods[-1]):
        return None
    # No pod in view: the Job failed for a pod (all but DeadlineExceeded need one) whose events have not come yet.
    try:
        since = parse_time(condition.get("lastTransitionTime"))
    except ValueError:
        since = None
    if since is None:
        return None
    elapsed = (now - since).total_seconds()
    if not -FINAL_POD_STATUS_WAIT_SECONDS <= elapsed < FINAL_POD_STATUS_WAIT_SECONDS:
        return None
    return FINAL_POD_STATUS_WAIT_SECONDS - max(elapsed, 0.0)


def _succeeded(state: Any, base: Outcome) -> Outcome:
    if state in ("completed", "failed"):
        return replace(base, phase=Phase.SUCCEEDED, exit_code=0)
    return replace(
        base,
        phase=Phase.FAILED,
        reason=c.Reasons.NO_RESULT,
        message="the worker exited with exit code 0 without recording a result "
        f"(the operation was still {state or 'without a state'}); see its log",
        exit_code=0,
    )


def _job_failed(
    op: Mapping[str, Any],
    job: Mapping[str, Any],
    pods: list[Mapping[str, Any]],
    condition: Mapping[str, Any],
    base: Outcome,
    now: dt.datetime,
) -> Outcome:
    jname = job.get("name")
    reason = str(condition.get("reason") or "")
    if reason != "DeadlineExceeded":
        wait = _final_pod_status_wait(pods, condition, now)
        if wait is not None:
            newest = f"worker pod {pods[-1].get('name')}" if pods else "its worker pod"
            return replace(
                base,
                message=f"Job {jname} failed; waiting for the final status of {newest}",
                requeue_after=wait,
                awaiting_pod_end=True,
            )
    failed = [p for p in pods if _pod_failed(p)]
    last = failed[-1] if failed else (pods[-1] if pods else None)
    detail = pod_failure(last, op) if last is not None else None
    base = replace(base, phase=Phase.FAILED, exit_code=detail.exit_code if detail is not None else None)
    if last is not None:
        base = replace(base, pod=str(last.get("name")), pod_started=_started(last))
    if reason == "DeadlineExceeded":
        limit = job.get("activeDeadlineSeconds")
        limit_text = f"its time limit of {limit} s (timeoutSeconds)" if limit else "its time limit"
        return replace(
            base,
            reason=c.Reasons.TIMED_OUT,
            message=f"the run took longer than {limit_text}; Job {jname} stopped the worker",
        )
    if detail is not None and detail.reason in (c.Reasons.OOM_KILLED, c.Reasons.POD_DELETED, c.Reasons.POD_EVICTED):
        return replace(base, reason=detail.reason, message=detail.message)
    backoff = job.get("backoffLimit")
    if reason == "BackoffLimitExceeded" and isinstance(backoff, int) and backoff > 0:
        last_text = detail.message if detail is not None else str(condition.get("message") or "")
        return replace(
            base,
            reason=c.Reasons.BACKOFF_LIMIT,
            message=f"the worker failed {len(failed) or backoff + 1} times (retries: {backoff}); "
            f"last failure: {last_text}",
        )
    if detail is not None:
        return replace(base, reason=detail.reason, message=detail.message, extra=detail.extra)
    return replace(
        base,
        reason=c.Reasons.JOB_FAILED,
        message=f"Job {jname} failed: {reason or 'Failed'}: {condition.get('message') or 'no message'}",
    )
