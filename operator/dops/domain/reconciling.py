"""The operator's reconcile decision, as pure data: `plan(view) -> Plan` (the I/O is in `dops.reconcile`).

One level-triggered decision derives what to do next from (operation, target, Job, pods, time); it
never looks at which event woke it up, so running it again on the same inputs plans the same steps,
and the steps are written so that repeating them is harmless (CAS status writes, deterministic Job
names, AlreadyExists = adopt, NotFound = done).

Steps, by run state (numbered as `plan` takes them):

1. being deleted → nothing (ownerReferences take the Job and pods);
2. no run state (created with kubectl) → `QueueOperation`: `queued` + `queuedAt` + conditions, written
   only if the object is unchanged since it was read (resourceVersion precondition): at once, except for
   an operation the dops service created (its name-order marker), which writes its own status right after
   creating: that one is left `FIRST_SIGHT_GRACE_SECONDS` (on the operator's clock) to do so;
3. `queued` → a still-running Job of an earlier attempt (a re-queued operation) is stopped at once; nothing
   else until the scheduler reserves the operation, then (after those stops) `Admit`: CAS
   `queued→scheduled` (`jobName`, `attempt`, conditions), then create the Job; an unknown target leaves it
   queued with an `UnknownTarget` condition; targets in `mode: external` are left alone;
4. `scheduled`/`running` → `observe()` the Job and pods: a missing Job is created for `scheduled`
   (a crash between the CAS and the create) unless the Job was seen deleted; a failure becomes `Fail`
   (CAS from the observed state, log archived first, an active Job stopped); a running pod gets the
   `Running` condition (and `podName`/`runLink` when the worker did not set them) once the operation has
   been running `RUNNING_MARK_DELAY_SECONDS` (an operation that finishes sooner never needs that write: the
   terminal write sets the condition); a pod that runs for
   `CLAIM_FALLBACK_SECONDS` without its worker claiming the operation gets the claim made for it; a
   failed pod that the Job replaces needs nothing: the replacement's worker takes the operation over;
   a Job that exists clears a `JobCreateFailed` condition left by refused creates (see below); an earlier
   attempt's Job still running is stopped first; a `scheduled` operation whose worker has not started
   within the target's start deadline fails `StartDeadlineExceeded` with what blocked it; disrupted pods
   are counted (`status.disruptions`) and, past `maxDisruptionRetries`, fail the operation `PodEvicted`;
5. `completed`/`failed` → `Finish` once: archive the pod log, write conditions (and log fields) with a
   CAS on the terminal state; an active Job is stopped: at once for a cancel (recorded by the write that
   failed the operation: `cancelledBy`), else once its worker still runs `worker_exit_grace_seconds` after the
   operator first saw the state (`View.seen_at`, the operator's own clock); then the Job gets its TTL and, past
   `ttlSecondsAfterFinished`, an unpinned operation is deleted.

A Job create the API server refuses is decided by `job_create_failed` (the reconcile calls it with the
error): transient errors (5xx, 429, no answer) are retried quietly by the work queue; a validation error
naming fields of the Job as built fails the operation `InvalidSpec` (the same spec builds the same Job);
any other refusal (403 from RBAC, admission or a ResourceQuota, 422 from admission, 400, 409, 404) is
recorded as the `JobCreateFailed` condition plus a Warning Event — written only when its reason or
message changes — and retried with a capped backoff for as long as it lasts.

"Finished processing" is recorded by the `Succeeded` condition: its status matches the terminal state
and its `lastTransitionTime` is not older than the terminal timestamp (`completedAt`/`failedAt`), so a
re-queued and finished-again operation is processed again, and nothing else is needed in the status.
"""

from __future__ import annotations

import copy
import datetime as dt
import enum
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from ..api import constants as c
from ..api.conditions import get_condition, set_condition
from ..api.times import format_time, parse_time
from .jobs import build_job, job_name
from .labels import labels_out_of_date, mirrors_run_state, run_state_label_out_of_date
from .observe import INFRASTRUCTURE_REASONS, Outcome, Phase, observe, start_blocker, worker_error
from .policy import DelegationPolicy, violations
from .runlink import effective_template, render_run_link
from .settings import OperatorSettings
from .targets import DEFAULT_MAX_DISRUPTION_RETRIES, Target, target_key
from .transitions import cancelled_by, first_sight_status

JSON = dict[str, Any]
FIRST_SIGHT_GRACE_SECONDS = 2.0  # the dops service writes `queued` right after its create
# The `Running` condition (a status write of its own) is written once the operation has been `running` this long
# on the operator's clock: most short runs finish first, and their terminal write sets the condition anyway.
RUNNING_MARK_DELAY_SECONDS = 1.0
# The default of `OperatorSettings.worker_exit_grace_seconds`: a worker exits this soon after writing its terminal
# state (timed from when the operator first saw that state, on its own clock); only then is its still-active Job
# stopped. Generous: under load an exit is slow.
EXIT_GRACE_SECONDS = 30.0
CLAIM_FALLBACK_SECONDS = 30.0  # a worker pod runs this long without claiming: the operator claims for it
MAX_MESSAGE = 4096
TERMINAL = ("completed", "failed")
_TERMINAL_FIELD = {"completed": "completedAt", "failed": "failedAt"}


# ------------------------------------------------------------------------------------------ compact op


def _status_manager(meta: Mapping[str, Any]) -> str | None:
    """The field manager of the newest write to the status subresource (who set the run state)."""
    best: tuple[str, str] | None = None
    for entry in meta.get("managedFields") or []:
        if entry.get("subresource") != "status":
            continue
        when = str(entry.get("time") or "")
        if best is None or when >= best[0]:
            best = (when, str(entry.get("manager") or ""))
    return best[1] if best and best[1] else None


def compact_operation(obj: Mapping[str, Any]) -> JSON:
    """The fields of a DelegatedOperation the operator needs (no context, params, results or pipelines)."""
    meta = obj.get("metadata") or {}
    spec = obj.get("spec") or {}
    status = obj.get("status") or {}
    result = status.get("result") or {}
    compact_status = {
        k: copy.deepcopy(status[k])
        for k in (
            "runState",
            "queuedAt",
            "scheduledAt",
            "startedAt",
            "completedAt",
            "failedAt",
            "updatedAt",
            "jobName",
            "podName",
            "attempt",
            "runLink",
            "logPath",
            "logSize",
            "logUploadError",
            "observedGeneration",
            "conditions",
            "monitored",
            "cancelledBy",
            "cancelledAt",
            "disruptions",
        )
        if k in status
    }
    if result.get("error") or result.get("errorMessage"):
        error = str(result.get("error") or "")
        compact_status["result"] = {
            "error": error[-MAX_MESSAGE:] if error else None,
            "errorMessage": result.get("errorMessage"),
        }
    return {
        "metadata": {
            "name": meta.get("name"),
            "namespace": meta.get("namespace"),
            "uid": meta.get("uid"),
            "resourceVersion": meta.get("resourceVersion"),
            "generation": meta.get("generation"),
            "creationTimestamp": meta.get("creationTimestamp"),
            "deletionTimestamp": meta.get("deletionTimestamp"),
            "labels": dict(meta.get("labels") or {}),
            "statusManager": _status_manager(meta),
        },
        "spec": {
            k: copy.deepcopy(spec[k])
            for k in (
                "operator",
                "delegationTarget",
                "priority",
                "timeoutSeconds",
                "retries",
                "ttlSecondsAfterFinished",
                "pinned",
            )
            if k in spec
        },
        "status": compact_status,
    }


def slim_operation(compact: Mapping[str, Any]) -> JSON:
    """A settled operation (finished and processed) as the operator keeps it: what retention and a
    lingering Job need, nothing else. Anything that changes it again arrives as a full event."""
    meta = compact.get("metadata") or {}
    spec = compact.get("spec") or {}
    status = compact.get("status") or {}
    succeeded = get_condition(status, c.CONDITION_SUCCEEDED) or {}
    # 100,000 of these stay in memory: absent fields are left out (not kept as None), and the strings that
    # repeat from one operation to the next (namespace, target, state, condition) are shared, not copied.
    return {
        "metadata": {
            k: _shared(meta[k]) if k == "namespace" else meta[k]
            for k in ("name", "namespace", "uid", "resourceVersion", "generation", "deletionTimestamp")
            if meta.get(k) is not None
        },
        "spec": {k: _shared(spec[k]) for k in ("delegationTarget", "ttlSecondsAfterFinished", "pinned") if k in spec},
        "status": {
            **{
                k: _shared(status[k]) if k == "runState" else status[k]
                for k in ("runState", "completedAt", "failedAt", "jobName", "attempt")
                if k in status
            },
            "conditions": [
                {
                    k: succeeded.get(k) if k == "lastTransitionTime" else _shared(succeeded.get(k))
                    for k in ("type", "status", "reason", "lastTransitionTime")
                }
            ]
            if succeeded
            else [],
        },
        "slim": True,
    }


def _shared(value: Any) -> Any:
    """One copy of a string that repeats across operations (`sys.intern`); other values as they are."""
    return sys.intern(value) if type(value) is str else value


MAX_OLDER_ATTEMPTS = 20  # earlier attempts whose Jobs are looked for (a Job stopped long ago is gone anyway)


def attempt_job_names(op: Mapping[str, Any]) -> list[str]:
    """The Job names of the operation's attempts other than the one in `status.jobName` (newest first)."""
    meta = op.get("metadata") or {}
    status = op.get("status") or {}
    attempt = status.get("attempt")
    if not isinstance(attempt, int) or isinstance(attempt, bool) or attempt < 1 or not meta.get("name"):
        return []
    current = status.get("jobName")
    names = (job_name(str(meta["name"]), a) for a in range(attempt, max(attempt - MAX_OLDER_ATTEMPTS, 0), -1))
    return [n for n in names if n != current]


def _job_running(job: Mapping[str, Any] | None) -> bool:
    """The Job exists, is not being deleted and has not finished: its pod may run a worker."""
    if job is None or job.get("gone") or job.get("deletionTimestamp"):
        return False
    finished = ("Complete", "Failed", "FailureTarget", "SuccessCriteriaMet")
    return not any(x.get("type") in finished and x.get("status") == "True" for x in job.get("conditions") or [])


def settled_job_needs_work(op: Mapping[str, Any], job: Mapping[str, Any]) -> bool:
    """Whether a reconcile of a settled (finished and processed) operation still acts on its (compact) `job`: one
    that runs is stopped (an earlier attempt's too, `_plan_terminal`), and its last attempt's finished Job gets its
    TTL. A Job being deleted or gone needs nothing, nor does an earlier attempt's finished Job: no plan touches it."""
    if _job_running(job):
        return True
    if job.get("gone") or job.get("deletionTimestamp"):
        return False
    last_attempt = job.get("name") == (op.get("status") or {}).get("jobName")
    return last_attempt and job.get("ttlSecondsAfterFinished") is None


def _stop_older_jobs(view: View, *, current_too: bool) -> list[Step]:
    """StopJob for every still-running Job of an earlier attempt (and of `status.jobName` when `current_too`:
    a re-queued operation's last attempt). A new attempt is admitted only with these stopped in the same plan,
    before it: never two Jobs of one operation running, never two slots of maxConcurrent for one operation."""
    jobs = list(view.older_jobs)
    if current_too and view.job is not None:
        jobs.insert(0, view.job)
    steps: list[Step] = []
    for job in jobs:
        if _job_running(job) and job.get("name"):
            steps.append(StopJob(str(job["name"]), "it ran an earlier attempt of the operation, which was re-queued"))
    return steps


def state_mark(op: Mapping[str, Any]) -> str:
    """What identifies the operation's current state for timing graces: UID, run state, attempt and the
    state's timestamp (a re-queued, re-run and re-failed operation is a new state)."""
    meta = op.get("metadata") or {}
    status = op.get("status") or {}
    state = str(status.get("runState") or "")
    stamp = status.get(_TERMINAL_FIELD.get(state, "")) or ""
    return f"{meta.get('uid')}/{state}/{status.get('attempt') or 0}/{stamp}"


# ------------------------------------------------------------------------------------------ plan data


@dataclass(frozen=True)
class Event:
    type: str  # Normal | Warning
    reason: str
    message: str


@dataclass(frozen=True)
class QueueOperation:
    """First sight: a merge patch of /status, applied only at `resource_version`; then labels and event."""

    patch: JSON
    labels: dict[str, str | None]
    event: Event


@dataclass(frozen=True)
class WriteStatus:
    """A CAS JSON patch of /status (its first op tests the run state)."""

    patch: list[JSON]
    event: Event | None = None
    sync_labels: bool = False


@dataclass(frozen=True)
class Admit:
    """CAS `required_state→scheduled` (attempt, jobName, conditions), then create `job` (AlreadyExists = adopt)."""

    required_state: str
    patch: list[JSON]
    job: JSON
    event: Event
    sync_labels: bool = False  # the run-state label mirror follows (DOPS_RUN_STATE_LABEL)


@dataclass(frozen=True)
class SyncRunStateLabel:
    """Bring the `dops.io/run-state` label in step with `state` (a transition someone else wrote, e.g. the
    worker's claim: a Job's worker may write only the status), or remove it when it is not mirrored."""

    state: str


@dataclass(frozen=True)
class CreateJob:
    """Create the Job of an already scheduled operation (AlreadyExists = adopt)."""

    job: JSON


@dataclass(frozen=True)
class Terminate:
    """Archive the log of `archive_pod`, then write `state` with a CAS from `required_state` and stop the Job.

    The status patch is built after archiving (`terminal_patch`), so the log fields ride along.
    Used for the operator's own failure verdicts (`Fail`) and for processing a terminal state
    written by someone else (`Finish`: `required_state == state`).
    """

    required_state: str
    state: str
    reason: str
    message: str
    archive_pod: str | None
    stop_job: str | None
    event: Event
    sync_labels: bool = False
    result_error: str | None = None  # status.result for the operator's own failures
    # A Job whose Warning Events (FailedCreate) explain the failure: the reconcile appends the newest one's
    # message to `message` (and `result_error`) before writing.
    explain_job: str | None = None
    disruptions: int | None = None  # status.disruptions to record with the failure
    # status.result the worker could not record (from its termination message): written as it is.
    recovered_result: JSON | None = None


@dataclass(frozen=True)
class StopJob:
    job: str
    reason: str


@dataclass(frozen=True)
class SetJobTTL:
    job: str
    seconds: int


@dataclass(frozen=True)
class DeleteOperation:
    reason: str


Step = (
    QueueOperation
    | WriteStatus
    | Admit
    | SyncRunStateLabel
    | CreateJob
    | Terminate
    | StopJob
    | SetJobTTL
    | DeleteOperation
)


@dataclass(frozen=True)
class Plan:
    steps: tuple[Step, ...] = ()
    requeue_after: float | None = None
    note: str = ""
    outcome: Outcome | None = None


@dataclass(frozen=True)
class View:
    """Everything one reconcile reads: compact operation, resolved target, compact Job (or a tombstone) and pods."""

    op: JSON
    target: Target | None
    job: JSON | None
    pods: list[JSON]
    now: dt.datetime
    settings: OperatorSettings
    reserved: bool = False  # the scheduler chose this operation for admission now
    # When this operator first saw the operation in its current state (its own clock, kept in memory by UID;
    # None: just now). Graces are timed from it, never from a timestamp a client wrote.
    seen_at: dt.datetime | None = None
    # Compact Jobs of this operation's earlier attempts (by their deterministic names, see `attempt_job_names`).
    older_jobs: tuple[JSON, ...] = ()
    server_url: str = ""
    # The cluster's DelegationPolicies (dops.domain.policy): checked right before a Job would be created.
    policies: tuple[DelegationPolicy, ...] = ()
    extra: JSON = field(default_factory=dict)

    @property
    def meta(self) -> JSON:
        value: JSON = self.op.get("metadata") or {}
        return value

    @property
    def spec(self) -> JSON:
        value: JSON = self.op.get("spec") or {}
        return value

    @property
    def status(self) -> JSON:
        value: JSON = self.op.get("status") or {}
        return value

    @property
    def state(self) -> str | None:
        value = self.status.get("runState")
        return str(value) if value else None

    @property
    def name(self) -> str:
        return str(self.meta.get("name"))

    @property
    def namespace(self) -> str:
        return str(self.meta.get("namespace"))


# ------------------------------------------------------------------------------------------ patches


def _clip(text: str, limit: int = MAX_MESSAGE) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _generation(view: View) -> int | None:
    value = view.meta.get("generation")
    return value if isinstance(value, int) else None


def conditions(
    status: Mapping[str, Any],
    now: dt.datetime,
    generation: int | None,
    *,
    running: tuple[bool | str, str, str],
    succeeded: tuple[bool | str, str, str],
    force_transition: bool = False,
) -> list[JSON]:
    """The status' conditions with `Running` and `Succeeded` set (lastTransitionTime moves on status changes;
    `force_transition` moves Succeeded's too, which marks a terminal state as processed again)."""
    work: JSON = {"conditions": copy.deepcopy(list(status.get("conditions") or []))}
    set_condition(work, c.CONDITION_RUNNING, running[0], running[1], _clip(running[2]), now=now, generation=generation)
    set_condition(
        work, c.CONDITION_SUCCEEDED, succeeded[0], succeeded[1], _clip(succeeded[2]), now=now, generation=generation
    )
    out: list[JSON] = work["conditions"]
    if force_transition:
        for cond in out:
            if cond.get("type") == c.CONDITION_SUCCEEDED:
                cond["lastTransitionTime"] = format_time(now)
    return out


def _test(state: str) -> JSON:
    return {"op": "test", "path": "/status/runState", "value": state}


def _add(path: str, value: Any) -> JSON:
    return {"op": "add", "path": f"/status/{path}", "value": value}


def terminal_time(status: Mapping[str, Any], state: str) -> dt.datetime | None:
    field_name = _TERMINAL_FIELD.get(state)
    return parse_time(status.get(field_name)) if field_name else None


def finished_processed(status: Mapping[str, Any]) -> bool:
    """Whether the operator has processed the current terminal state (see the module docstring)."""
    state = status.get("runState")
    if state not in TERMINAL:
        return False
    cond = get_condition(status, c.CONDITION_SUCCEEDED)
    if cond is None or cond.get("status") != ("True" if state == "completed" else "False"):
        return False
    at = terminal_time(status, str(state))
    changed = parse_time(cond.get("lastTransitionTime")) if cond.get("lastTransitionTime") else None
    return at is None or (changed is not None and changed >= at.replace(microsecond=0))


@dataclass(frozen=True)
class ArchiveResult:
    path: str | None = None
    size: int | None = None
    error: str | None = None


def terminal_patch(view: View, step: Terminate, archive: ArchiveResult | None, now: dt.datetime) -> list[JSON]:
    """The CAS patch of a `Terminate` step (after archiving)."""
    status = view.status
    ops: list[JSON] = [_test(step.required_state)]
    at = now
    if step.state != step.required_state:
        stamp = format_time(now)
        ops += [_add("runState", step.state), _add("updatedAt", stamp), _add(_TERMINAL_FIELD[step.state], stamp)]
        result: JSON = {"errorMessage": _clip(step.message)}
        if step.result_error:
            result["error"] = step.result_error
        if step.recovered_result is not None:
            result = dict(step.recovered_result)
        ops.append(_add("result", result))
    else:
        existing = terminal_time(status, step.state)
        if existing is not None and existing > at:  # the writer's clock is ahead of ours
            at = existing
    completed = step.state == "completed"
    ops.append(
        _add(
            "conditions",
            conditions(
                status,
                at,
                _generation(view),
                running=(False, step.reason, step.message),
                succeeded=(completed, step.reason, step.message),
                force_transition=True,
            ),
        )
    )
    generation = _generation(view)
    if generation is not None:
        ops.append(_add("observedGeneration", generation))
    if step.disruptions is not None:
        ops.append(_add("disruptions", step.disruptions))
    if archive is not None:
        if archive.path is not None:
            ops.append(_add("logPath", archive.path))
            ops.append(_add("logSize", int(archive.size or 0)))
        elif archive.error:
            ops.append(_add("logUploadError", _clip(archive.error)))
    return ops


def _admit_patch(view: View, required_state: str, attempt: int, jname: str, target: Target) -> list[JSON]:
    now = view.now
    stamp = format_time(now)
    message = f"admitted to {_target_text(target)}; Job {jname} (attempt {attempt})"
    ops = [
        _test(required_state),
        _add("runState", "scheduled"),
        _add("scheduledAt", stamp),
        _add("updatedAt", stamp),
        _add("jobName", jname),
        _add("attempt", attempt),
        _add("disruptions", 0),
        _add(
            "conditions",
            conditions(
                view.status,
                now,
                _generation(view),
                running=(False, c.Reasons.SCHEDULED, message),
                succeeded=("Unknown", c.Reasons.SCHEDULED, message),
            ),
        ),
    ]
    generation = _generation(view)
    if generation is not None:
        ops.append(_add("observedGeneration", generation))
    return ops


def _target_text(target: Target | None) -> str:
    if target is None:
        return "an unknown target"
    return "the built-in default target" if target.builtin else f"DelegationTarget {target.name}"


# ------------------------------------------------------------------------------------------ plan


def plan(view: View) -> Plan:
    """The next steps for one operation (see the module docstring)."""
    # 1. Being deleted: its Jobs and pods go with it (ownerReferences); nothing to write.
    if view.meta.get("deletionTimestamp"):
        return Plan(note="being deleted")
    state = view.state
    # 2. First sight.
    if not state:
        return _plan_first_sight(view)
    if state in TERMINAL:
        return _plan_terminal(view, state)
    target = view.target
    # Operations of external targets are run by `dops worker launch`; the operator leaves them alone.
    if target is not None and target.external:
        return Plan(note="external target")
    if state == "queued":
        return _plan_queued(view)
    return _plan_active(view, state)


def _first_sight_wait(view: View) -> float:
    """Seconds to leave a new operation to its creator's own status write: only the dops service promises
    one (it marks what it creates with the name-order label, then writes `queued`); anything else
    (`kubectl apply`) is queued at once. Timed from this operator's first sight of it, on its own clock: never
    from creationTimestamp (whole seconds), which a busy operator may see late, with the creator's status write
    still behind it in the same watch stream."""
    labels = view.meta.get("labels") or {}
    if labels.get(c.NAME_ORDER_LABEL) != c.NAME_ORDER_QUEUED_AT:
        return 0.0
    waited = (view.now - (view.seen_at or view.now)).total_seconds()
    return max(FIRST_SIGHT_GRACE_SECONDS - waited, 0.0)


def _mirrors(view: View) -> bool:
    return mirrors_run_state(view.settings.run_state_label)


def _plan_first_sight(view: View) -> Plan:
    wait = _first_sight_wait(view)
    if wait > 0:
        return Plan(requeue_after=wait, note="new: waiting for its creator's status write")
    obj = {"metadata": view.meta, "spec": view.spec}
    change = first_sight_status(obj, view.now)
    status = dict(change.fields)
    target = view.target
    if target is None:
        reason = c.Reasons.UNKNOWN_TARGET
        message = _unknown_target_message(view)
    else:
        reason = c.Reasons.QUEUED
        message = f"queued for {_target_text(target)}"
    status["conditions"] = conditions(
        view.status,
        view.now,
        _generation(view),
        running=(False, reason, message),
        succeeded=("Unknown", reason, message),
    )
    patch = {"metadata": {"resourceVersion": view.meta.get("resourceVersion")}, "status": status}
    labels = labels_out_of_date(
        {"metadata": view.meta, "spec": view.spec, "status": {"runState": "queued"}}, run_state=_mirrors(view)
    )
    return Plan(
        (QueueOperation(patch, labels, Event("Normal", c.EventReasons.QUEUED, message)),),
        note="first sight",
    )


def _unknown_target_message(view: View) -> str:
    name = view.spec.get("delegationTarget")
    return (
        f"DelegationTarget {name} does not exist in namespace {view.namespace}; "
        "the operation waits, queued, until it does"
    )


def _plan_queued(view: View) -> Plan:
    target = view.target
    # A re-queued operation's earlier attempt stops now, whatever happens to the operation next.
    stops = _stop_older_jobs(view, current_too=True)
    if target is None:
        cond = get_condition(view.status, c.CONDITION_RUNNING)
        if cond is not None and cond.get("reason") == c.Reasons.UNKNOWN_TARGET:
            return Plan(tuple(stops), note="unknown target")
        message = _unknown_target_message(view)
        patch = [
            _test("queued"),
            _add(
                "conditions",
                conditions(
                    view.status,
                    view.now,
                    _generation(view),
                    running=(False, c.Reasons.UNKNOWN_TARGET, message),
                    succeeded=("Unknown", c.Reasons.UNKNOWN_TARGET, message),
                ),
            ),
        ]
        return Plan(
            (*stops, WriteStatus(patch, Event("Warning", c.EventReasons.UNKNOWN_TARGET, message))),
            note="unknown target",
        )
    refused = _policy_refusal(view, "queued", target)
    if refused is not None:
        return replace(refused, steps=(*stops, *refused.steps))
    if not view.reserved:
        return Plan(tuple(stops), note="queued: stopping earlier attempts" if stops else "queued")
    admit = _plan_admit(view, "queued", target)
    return replace(admit, steps=(*stops, *admit.steps))


def _policy_refusal(view: View, required_state: str, target: Target) -> Plan | None:
    """Fail the operation, without a Job, when its target breaks a DelegationPolicy (dops.domain.policy)."""
    broken = violations(target, view.policies, view.settings)
    if not broken:
        return None
    text = _clip("; ".join(broken) + "; the operation was not run")
    failing = _refused(required_state, c.Reasons.POLICY_VIOLATION, c.EventReasons.POLICY_VIOLATION, text)
    return Plan((failing,), note="policy violation")


def _refused(required_state: str, reason: str, event_reason: str, text: str) -> Terminate:
    """Fail an operation the operator will not run (no Job, no log): the reason in conditions, Event and result."""
    return Terminate(
        required_state=required_state,
        state="failed",
        reason=reason,
        message=text,
        archive_pod=None,
        stop_job=None,
        event=Event("Warning", event_reason, text),
        sync_labels=True,
        result_error=f"{reason}: {text}",
    )


def _plan_admit(view: View, required_state: str, target: Target) -> Plan:
    refused = _policy_refusal(view, required_state, target)
    if refused is not None:
        return refused
    attempt = int(view.status.get("attempt") or 0) + 1
    job = build_job(view.op, target, view.settings, attempt, server_url=view.server_url)
    jname = str(job["metadata"]["name"])
    patch = _admit_patch(view, required_state, attempt, jname, target)
    event = Event(
        "Normal",
        c.EventReasons.SCHEDULED,
        f"admitted to {_target_text(target)}: created Job {jname} (attempt {attempt})",
    )
    sync = run_state_label_out_of_date(view.meta.get("labels"), "scheduled", run_state=_mirrors(view))
    return Plan((Admit(required_state, patch, job, event, sync_labels=sync),), note="admit")


def _plan_active(view: View, state: str) -> Plan:
    status = view.status
    jname = status.get("jobName")
    target = view.target
    if not jname:
        if state == "running":
            return Plan(note="claimed by a worker outside the operator")
        # `scheduled` without a Job (set by hand): admit it as the operator would have.
        if target is None:
            return Plan(note="scheduled on an unknown target")
        return _plan_admit(view, "scheduled", target)
    stops = _stop_older_jobs(view, current_too=False)
    if stops:
        # An earlier attempt's Job still runs (re-queued and re-admitted while the operator was away, or its
        # stop was lost): stop it first; the stops' own events reconcile the operation again.
        return Plan(tuple(stops), note="stopping earlier attempts")
    outcome = observe(view.op, view.job, view.pods, view.now, view.settings)
    if state == "scheduled" and outcome.phase in (Phase.NO_JOB, Phase.PENDING):
        overdue = _start_overdue(view, outcome)
        if isinstance(overdue, Plan):
            return overdue
    else:
        overdue = None
    if outcome.phase is Phase.NO_JOB:
        if state == "scheduled":
            if target is None:
                return _fail(view, state, outcome, c.Reasons.UNKNOWN_TARGET, _unknown_target_message(view))
            attempt = int(status.get("attempt") or 1)
            job = build_job(view.op, target, view.settings, attempt, server_url=view.server_url)
            job["metadata"]["name"] = str(jname)
            return Plan((CreateJob(job),), requeue_after=overdue, note="create Job", outcome=outcome)
        return _fail(
            view, state, outcome, c.Reasons.JOB_MISSING, f"Job {jname} no longer exists (the operation was running)"
        )
    cleared = job_create_recovered(view.op, str(jname), view.now)
    if cleared is not None:
        # Alone in its plan: the steps below rewrite the conditions from the same (older) status.
        # The write's own watch event reconciles the operation again.
        return Plan((cleared,), note="Job created after refused creates", outcome=outcome)
    if outcome.failed and state == "running" and outcome.extra.get("recovered"):
        return _record_for_worker(view, state, outcome, outcome.extra["recovered"])
    if outcome.failed:
        return _fail(view, state, outcome, outcome.reason, outcome.message)
    disruptions = _disruptions(view, state, outcome)
    if isinstance(disruptions, Plan):
        return disruptions
    # A failed pod the Job replaces (retries) needs nothing here: the replacement's worker takes the
    # operation over from the failed pod (dops.worker.run), and the Job's verdict comes as an event.
    steps: list[Step] = [disruptions] if disruptions is not None else []
    requeue = _sooner(outcome.requeue_after, overdue)
    if state == "running" and outcome.phase is Phase.RUNNING:
        waited = (view.now - (view.seen_at or view.now)).total_seconds()
        marked = _mark_running(view, outcome)
        if marked is not None and waited < RUNNING_MARK_DELAY_SECONDS:
            requeue = _sooner(requeue, RUNNING_MARK_DELAY_SECONDS - waited)  # it may well finish first
        elif marked is not None:
            steps.append(replace(marked, sync_labels=True))
    if not steps and run_state_label_out_of_date(view.meta.get("labels"), state, run_state=_mirrors(view)):
        steps.append(SyncRunStateLabel(state))  # a transition the worker wrote (it may not write labels)
    elif state == "scheduled" and outcome.phase is Phase.RUNNING and outcome.pod:
        since = parse_time(outcome.running_since)
        waited = (view.now - since).total_seconds() if since is not None else 0.0
        if waited >= CLAIM_FALLBACK_SECONDS:
            steps.append(_fallback_claim(view, outcome.pod))
        else:
            requeue = min(requeue or CLAIM_FALLBACK_SECONDS, CLAIM_FALLBACK_SECONDS - waited)
    return Plan(tuple(steps), requeue_after=requeue, note=outcome.phase.value, outcome=outcome)


def _disruptions(view: View, state: str, outcome: Outcome) -> Plan | WriteStatus | None:
    """Disrupted worker pods of this attempt (evicted, preempted, drained): each is re-run on a new pod, at most
    `maxDisruptionRetries` times; then the operation fails PodEvicted. The count is kept in `status.disruptions`
    (pods, and so the evidence, may be gone later). Returns the failure, the count's write, or None."""
    recorded = view.status.get("disruptions")
    recorded = recorded if isinstance(recorded, int) and not isinstance(recorded, bool) else 0
    count = max(recorded, len(outcome.disrupted_pods))
    if count == 0:
        return None
    target = view.target
    limit = target.max_disruption_retries if target is not None else DEFAULT_MAX_DISRUPTION_RETRIES
    if count > limit:
        message = (
            f"the worker pod was disrupted {count} times (maxDisruptionRetries: {limit}); "
            f"last: {outcome.disruption or 'evicted'}"
        )
        failing = _fail(view, state, outcome, c.Reasons.POD_EVICTED, message)
        step = failing.steps[0]
        if isinstance(step, Terminate):
            # Its patch carries the final count (the Terminate writes it with the failure).
            failing = replace(failing, steps=(replace(step, disruptions=count),))
        return failing
    if count == recorded:
        return None
    message = (
        f"worker pod {outcome.disrupted_pods[-1] if outcome.disrupted_pods else ''} was disrupted "
        f"({outcome.disruption or 'evicted'}); the Job runs the worker again "
        f"({count} of at most {limit} re-runs; the operator's code may run more than once)"
    )
    return WriteStatus([_test(state), _add("disruptions", count)], Event("Warning", c.EventReasons.DISRUPTED, message))


def _sooner(a: float | None, b: float | None) -> float | None:
    return b if a is None else a if b is None else min(a, b)


def _start_overdue(view: View, outcome: Outcome) -> Plan | float | None:
    """The start deadline of a `scheduled` operation whose worker has not started: a failing plan once it has
    passed (with what blocked the start), else the seconds left (None: no deadline applies)."""
    target = view.target
    limit = target.start_deadline_seconds if target is not None else view.settings.default_start_deadline_seconds
    if not limit:
        return None
    # Timed from the admission the operator itself wrote (it survives a restart), else from first sight.
    since = parse_time(view.status.get("scheduledAt")) or view.seen_at or view.now
    waited = (view.now - since).total_seconds()
    if waited < limit:
        return float(limit - waited)
    jname = view.status.get("jobName")
    refused = get_condition(view.status, c.CONDITION_JOB_CREATE_FAILED)
    if outcome.phase is Phase.NO_JOB and refused is not None and refused.get("status") == "True":
        blocker = str(refused.get("message") or f"creating Job {jname} is refused")
    else:
        blocker = start_blocker(view.job, view.pods)
    message = f"the worker did not start within {limit} s of admission (startDeadlineSeconds): {blocker}"
    failing = _fail(view, "scheduled", outcome, c.Reasons.START_DEADLINE, message)
    step = failing.steps[0]
    if isinstance(step, Terminate) and outcome.phase is Phase.PENDING and not outcome.pod:
        # A Job without a pod: why the Job controller could not create one (a missing ServiceAccount, a quota,
        # an admission denial) is only in its FailedCreate Events, which the operator reads when failing.
        failing = replace(failing, steps=(replace(step, explain_job=str(jname)),))
    return failing


def explained(step: Terminate, warning: str | None) -> Terminate:
    """`step` with the newest Warning Event of its `explain_job` (e.g. the Job controller's FailedCreate
    "Error creating: pods ... is forbidden: error looking up service account ...") added to its message."""
    if not warning:
        return step
    message = _clip(f"{step.message}; the Job controller reports: {warning}")
    return replace(
        step,
        message=message,
        event=replace(step.event, message=_clip(f"{step.reason}: {message}")),
        result_error=_clip(f"{step.reason}: {message}", 32_768),
    )


def _fallback_claim(view: View, pod: str) -> WriteStatus:
    """`scheduled → running` for a worker pod that runs but has not claimed its operation (the worker, when it
    gets to its claim, finds the operation running for its own pod and runs it)."""
    stamp = format_time(view.now)
    message = (
        f"worker pod {pod} runs but did not claim the operation within {CLAIM_FALLBACK_SECONDS:.0f} s; "
        "the operator marked it running"
    )
    ops = [
        _test("scheduled"),
        _add("runState", "running"),
        _add("startedAt", stamp),
        _add("updatedAt", stamp),
        _add("monitored", False),
        _add("podName", pod),
    ]
    link = run_link(view, pod)
    if link:
        ops.append(_add("runLink", link))
    ops.append(
        _add(
            "conditions",
            conditions(
                view.status,
                view.now,
                _generation(view),
                running=(True, c.Reasons.RUNNING, message),
                succeeded=("Unknown", c.Reasons.RUNNING, message),
            ),
        )
    )
    return WriteStatus(ops, Event("Normal", c.EventReasons.STARTED, message), sync_labels=True)


def _archive_pod(view: View, outcome: Outcome) -> str | None:
    """The pod whose log to archive: the one observed to have started, else the pod the worker recorded
    when it claimed the operation (it started, even if its events have not reached us yet)."""
    if outcome.pod and outcome.pod_started:
        return outcome.pod
    pod = view.status.get("podName")
    if pod and view.status.get("startedAt") and view.status.get("jobName"):
        return str(pod)
    return None


def _fail(view: View, state: str, outcome: Outcome, reason: str, message: str) -> Plan:
    jname = view.status.get("jobName")
    job = view.job
    stop = jname if job is not None and not job.get("gone") and outcome.job_active else None
    step = Terminate(
        required_state=state,
        state="failed",
        reason=reason,
        message=_clip(message),
        archive_pod=_archive_pod(view, outcome),
        stop_job=str(stop) if stop else None,
        event=Event("Warning", c.EventReasons.FAILED, _clip(f"{reason}: {message}")),
        sync_labels=True,
        result_error=_clip(f"{reason}: {message}", 32_768),
    )
    return Plan((step,), note=f"fail: {reason}", outcome=outcome)


def _record_for_worker(view: View, state: str, outcome: Outcome, recovered: Mapping[str, Any]) -> Plan:
    """The worker finished but could not reach the API server to record its outcome (exit code 4): record the
    outcome it left in its termination message (`observe.unrecorded_outcome`), not a failure of our own."""
    final = str(recovered["runState"])
    result = dict(recovered.get("result") or {})
    why = (
        f"the worker could not reach the API server to record its outcome ({outcome.message}); "
        "the operator recorded it from the worker's termination message"
    )
    if recovered.get("resultOmitted"):
        why += " (the result did not fit in it and is lost)"
    if final == "completed":
        reason, message, event = c.Reasons.COMPLETED, f"the operation completed; {why}", "Normal"
    else:
        detail = str(result.get("errorMessage") or result.get("error") or "").strip()
        reason, event = c.Reasons.OPERATOR_FAILED, "Warning"
        message = (f"{detail}; " if detail else "the operator failed; ") + why
        result.setdefault("errorMessage", _clip(message))
    step = Terminate(
        required_state=state,
        state=final,
        reason=reason,
        message=_clip(message),
        archive_pod=_archive_pod(view, outcome),
        stop_job=None,
        event=Event(event, c.EventReasons.COMPLETED if final == "completed" else c.EventReasons.FAILED, _clip(message)),
        sync_labels=True,
        recovered_result=result,
    )
    return Plan((step,), note=f"record the worker's {final} outcome", outcome=outcome)


def run_link(view: View, pod: str) -> str | None:
    target = view.target
    template = effective_template(
        target.run_link_template if target is not None else None,
        view.settings.run_link_template,
        view.settings.api_server_url or view.server_url,
    )
    attempt = view.status.get("attempt")
    try:
        return render_run_link(
            template,
            namespace=view.namespace,
            pod=pod,
            job=view.status.get("jobName") or "",
            operation=view.name,
            attempt=attempt if attempt is not None else "",
        )
    except ValueError:
        return None


def _mark_running(view: View, outcome: Outcome) -> WriteStatus | None:
    status = view.status
    pod = outcome.pod
    cond = get_condition(status, c.CONDITION_RUNNING)
    ops: list[JSON] = [_test("running")]
    if pod and not status.get("podName"):
        ops.append(_add("podName", pod))
    if pod and not status.get("runLink"):
        link = run_link(view, pod)
        if link:
            ops.append(_add("runLink", link))
    if cond is None or cond.get("status") != "True":
        message = f"worker pod {pod or status.get('podName')} of Job {status.get('jobName')} is running"
        ops.append(
            _add(
                "conditions",
                conditions(
                    status,
                    view.now,
                    _generation(view),
                    running=(True, c.Reasons.RUNNING, message),
                    succeeded=("Unknown", c.Reasons.RUNNING, message),
                ),
            )
        )
    if len(ops) == 1:
        return None
    return WriteStatus(ops)


# Field managers of dops' own status writes: the service and worker ("dops") and the operator. A `failed` written by
# any other manager (`kubectl patch --subresource=status`, a script of the user's) is a cancel by that manager.
DOPS_FIELD_MANAGERS = frozenset({"dops", "dops-operator"})


def canceller(view: View) -> str | None:
    """Who cancelled the operation, from the write that made it `failed`: the `cancelledBy` the dops service
    records (`set_failed`, `dops cancel`), else the field manager of a status write that was not dops' own
    (the API server records it in managedFields: `kubectl-patch` for `kubectl patch`). None: not a cancel
    (the worker recorded its own failure)."""
    recorded = cancelled_by(view.status)
    if recorded is not None or view.status.get("runState") != "failed":
        return recorded
    manager = view.meta.get("statusManager")
    if manager and manager not in DOPS_FIELD_MANAGERS:
        return str(manager)
    return None


def _plan_terminal(view: View, state: str) -> Plan:
    status = view.status
    now = view.now
    jname = status.get("jobName")
    job = view.job if jname else None
    outcome = observe(view.op, job, view.pods, now, view.settings)
    processed = finished_processed(status)
    job_exists = job is not None and not job.get("gone")
    job_active = bool(job_exists and outcome.job_active and not (job or {}).get("deletionTimestamp"))
    at = terminal_time(status, state) or now
    # An earlier attempt's Job that still runs (its stop was lost) is stopped whatever else happens: a
    # finished operation never keeps a Job running.
    steps: list[Step] = _stop_older_jobs(view, current_too=False)
    requeue: float | None = None
    cancelled = canceller(view)
    wait: float | None = None
    waiting_for = "the worker to exit"
    if job_active and not processed and cancelled is None:
        # The worker exits right after recording its outcome, and its pod's events may lag behind the
        # operation's: give it time before stopping the Job (and archiving a partial log). The wait is timed
        # on this operator's own clock, from when it first saw this state: never from a client's timestamp.
        seen = view.seen_at or now
        waited = (now - seen).total_seconds()
        grace = float(view.settings.worker_exit_grace_seconds)
        if waited < grace:
            wait = grace - waited
    elif outcome.awaiting_pod_end and not processed and cancelled is None:
        wait = outcome.requeue_after  # the pod's end may carry an infrastructure reason (PodDeleted, OOMKilled)
        waiting_for = "the worker pod's end"
    if wait is not None:
        # The label mirror follows the state now, not after the wait.
        label = run_state_label_out_of_date(view.meta.get("labels"), state, run_state=_mirrors(view))
        return Plan(
            (*steps, SyncRunStateLabel(state)) if label else tuple(steps),
            requeue_after=wait,
            note=f"waiting for {waiting_for}",
            outcome=outcome,
        )
    if not processed:
        reason, message, event = _terminal_reason(view, state, outcome, job_active)
        steps.append(
            Terminate(
                required_state=state,
                state=state,
                reason=reason,
                message=message,
                archive_pod=_archive_pod(view, outcome),
                stop_job=str(jname) if job_active else None,
                event=event,
                sync_labels=run_state_label_out_of_date(view.meta.get("labels"), state, run_state=_mirrors(view)),
            )
        )
    elif job_active:
        steps.append(StopJob(str(jname), "the operation is finished"))
    finishing = processed or any(isinstance(step, Terminate) for step in steps)
    needs_ttl = job is not None and job.get("ttlSecondsAfterFinished") is None and not job.get("deletionTimestamp")
    if job_exists and not job_active and finishing and needs_ttl:
        steps.append(SetJobTTL(str(jname), view.settings.job_ttl_seconds))
    ttl = _retention(view)
    if ttl and finishing and not view.spec.get("pinned"):
        due = at + dt.timedelta(seconds=ttl)
        if now >= due:
            steps.append(DeleteOperation(f"finished {ttl} s ago (ttlSecondsAfterFinished)"))
        else:
            requeue = (due - now).total_seconds()
    return Plan(tuple(steps), requeue_after=requeue, note=f"terminal {state}", outcome=outcome)


def _retention(view: View) -> int:
    value = view.spec.get("ttlSecondsAfterFinished")
    if isinstance(value, int) and not isinstance(value, bool):
        return max(value, 0)
    target = view.target
    if target is not None and target.ttl_seconds_after_finished is not None:
        return max(target.ttl_seconds_after_finished, 0)
    return view.settings.ttl_seconds_after_finished


def _terminal_reason(view: View, state: str, outcome: Outcome, job_active: bool) -> tuple[str, str, Event]:
    status = view.status
    jname = status.get("jobName")
    if state == "completed":
        message = "the operation completed"
        started = parse_time(status.get("startedAt"))
        done = terminal_time(status, state)
        if started is not None and done is not None:
            message += f" in {max((done - started).total_seconds(), 0.0):.1f} s"
        if job_active:
            message += f"; the operator stopped Job {jname}, whose worker was still running"
        return c.Reasons.COMPLETED, message, Event("Normal", c.EventReasons.COMPLETED, message)
    why = worker_error(view.op)
    stopped = f"; the operator stopped Job {jname}, whose worker was still running" if job_active else ""
    who = canceller(view)
    if who is not None:
        # Recorded by the write that cancelled it: whatever the Job did (queued, running, already ended).
        message = f"cancelled by {who}" + (f": {why}" if why else "") + stopped
        return c.Reasons.CANCELLED, _clip(message), Event("Warning", c.EventReasons.CANCELLED, _clip(message))
    if outcome.failed and outcome.reason in INFRASTRUCTURE_REASONS:
        message = outcome.message + (f" (the worker recorded: {why})" if why else "")
        return outcome.reason, _clip(message), Event("Warning", c.EventReasons.FAILED, _clip(message))
    if (status.get("result") or {}).get("error"):
        message = (why or "the operator raised an error") + stopped
        return c.Reasons.OPERATOR_FAILED, _clip(message), Event("Warning", c.EventReasons.FAILED, _clip(message))
    message = "the operation was set to failed" + (f": {why}" if why else "") + stopped
    return c.Reasons.FAILED, _clip(message), Event("Warning", c.EventReasons.FAILED, _clip(message))


# ------------------------------------------------------------------------------------------ scheduler view


@dataclass(frozen=True)
class QueueEntry:
    """What the scheduler knows of an operation: where it runs, its place in line, whether it is active."""

    namespace: str
    name: str
    target: tuple[str, str]
    state: str | None
    priority: int
    queued_at: str
    terminal: bool

    @property
    def key(self) -> tuple[str, str]:
        return self.namespace, self.name

    @property
    def active(self) -> bool:
        """Counts against maxConcurrent: scheduled or running."""
        return self.state in ("scheduled", "running")

    @property
    def waiting(self) -> bool:
        return self.state == "queued"


def queue_entry(op: Mapping[str, Any]) -> QueueEntry:
    """The scheduler's view of a (compact) operation."""
    meta = op.get("metadata") or {}
    spec = op.get("spec") or {}
    status = op.get("status") or {}
    priority = spec.get("priority")
    state = status.get("runState")
    namespace = str(meta.get("namespace") or "")
    return QueueEntry(
        namespace=namespace,
        name=str(meta.get("name")),
        target=target_key(namespace, spec.get("delegationTarget")),
        state=str(state) if state else None,
        priority=priority if isinstance(priority, int) and not isinstance(priority, bool) else 0,
        queued_at=str(status.get("queuedAt") or meta.get("creationTimestamp") or ""),
        terminal=state in TERMINAL,
    )


# ------------------------------------------------------------------------------------------ refused Job creates

CREATE_RETRY_BASE_SECONDS = 1.0  # first retry after a refused create; doubles per failure
CREATE_RETRY_MAX_SECONDS = 30.0  # ... up to this: a freed quota or an RBAC fix is picked up this soon
# A kube-apiserver refuses an ownerReference with blockOwnerDeletion to a kind its admission RESTMapper has not
# discovered yet (OwnerReferencesPermissionEnforcement), and refreshes that mapper every 30 s: right after a
# `helm install` creates the CRDs, the first Job creates are refused with "cannot find RESTMapping". It is a
# wait, not a refusal: retry at this pace, quietly, until it has lasted longer than a refresh should take.
UNDISCOVERED_RETRY_SECONDS = 2.0
UNDISCOVERED_PATIENCE = 45  # refusals in a row (about 90 s, three refreshes) before it is recorded as persistent
UNDISCOVERED_MARK = "cannot find RESTMapping"


class CreateErrorKind(enum.Enum):
    TRANSIENT = "transient"  # the API server did not decide (5xx, 429, 408, no answer): retry quietly
    INVALID = "invalid"  # the Job as built fails validation: no retry can help, fail InvalidSpec
    PERSISTENT = "persistent"  # refused (403, 422 from admission, 400, 409, 404): record it, keep retrying
    UNDISCOVERED = "undiscovered"  # the API server has not discovered the operation's kind yet: wait for it


def classify_create_error(
    code: int, *, field_causes: bool = False, message: str = "", failures: int = 1
) -> CreateErrorKind:
    """What a failed Job create means. `field_causes`: the Status names invalid fields of the Job;
    `failures`: the refused creates in a row, this one included."""
    if code == 0 or code in (408, 429) or code >= 500:
        return CreateErrorKind.TRANSIENT
    if code == 403 and UNDISCOVERED_MARK in message and failures <= UNDISCOVERED_PATIENCE:
        return CreateErrorKind.UNDISCOVERED
    if code in (400, 422) and field_causes:
        return CreateErrorKind.INVALID
    return CreateErrorKind.PERSISTENT


def create_retry_delay(failures: int) -> float:
    """Seconds before the next create after `failures` refused ones in a row (capped exponential)."""
    exponent = min(max(failures, 1) - 1, 16)
    return float(min(CREATE_RETRY_BASE_SECONDS * 2.0**exponent, CREATE_RETRY_MAX_SECONDS))


@dataclass(frozen=True)
class CreateFailure:
    """The decision after a failed Job create: steps to run now (a condition write, or the InvalidSpec
    failure), when to try again (None: leave it to the work queue's own retries), and what to log."""

    kind: CreateErrorKind
    steps: tuple[Step, ...]
    retry_after: float | None
    log: str


def _condition_reason(api_reason: str) -> str:
    reason = api_reason.strip()
    ok = reason.isascii() and reason[:1].isalpha() and reason.isalnum()
    return reason if ok else c.Reasons.JOB_CREATE_FAILED


def job_create_failed(
    op: Mapping[str, Any],
    job: str,
    *,
    code: int,
    api_reason: str,
    message: str,
    field_causes: bool,
    failures: int,
    now: dt.datetime,
) -> CreateFailure:
    """Decide what a failed create of Job `job` for (compact) operation `op` leads to; `failures` counts
    the refused creates in a row, this one included."""
    meta = op.get("metadata") or {}
    status = op.get("status") or {}
    state = str(status.get("runState") or "")
    ref = f"{meta.get('namespace')}/{meta.get('name')}"
    kind = classify_create_error(code, field_causes=field_causes, message=message, failures=failures)
    what = f"{code} {api_reason}".strip() if code else "no answer"
    if kind is CreateErrorKind.TRANSIENT:
        return CreateFailure(kind, (), None, f"creating Job {job} of {ref} failed ({what}): {message}; retrying")
    if kind is CreateErrorKind.UNDISCOVERED:
        waiting = (
            f"creating Job {job} of {ref} waits for the API server to discover the DelegatedOperation kind "
            f"(its CRD was installed moments ago; kube-apiserver refreshes what it knows every 30 s); "
            f"retrying in {UNDISCOVERED_RETRY_SECONDS:.0f} s ({failures} in a row)"
        )
        return CreateFailure(kind, (), UNDISCOVERED_RETRY_SECONDS, waiting)
    if kind is CreateErrorKind.INVALID:
        text = _clip(f"the Job for this operation was rejected by the API server: {message}")
        failing = _refused(state, c.Reasons.INVALID_SPEC, c.EventReasons.INVALID_SPEC, text)
        return CreateFailure(kind, (failing,), None, f"Job {job} of {ref} is invalid ({what}): {message}")
    delay = create_retry_delay(failures)
    # The message must not change from one retry to the next (no counters, no delays): the condition is
    # written, and the Event posted, only when what the API server says changes.
    text = _clip(
        f"creating Job {job} was refused by the API server ({what}): {message}; "
        f"the operator keeps retrying (at least every {CREATE_RETRY_MAX_SECONDS:.0f} s)"
    )
    reason = _condition_reason(api_reason)
    log = f"creating Job {job} of {ref} was refused ({what}, {failures} in a row): {message}; retrying in {delay:.0f} s"
    current = get_condition(status, c.CONDITION_JOB_CREATE_FAILED)
    recorded = current is not None and (current.get("status"), current.get("reason"), current.get("message")) == (
        "True",
        reason,
        text,
    )
    if recorded or state not in ("queued", "scheduled"):
        return CreateFailure(kind, (), delay, log)
    work: JSON = {"conditions": copy.deepcopy(list(status.get("conditions") or []))}
    set_condition(work, c.CONDITION_JOB_CREATE_FAILED, True, reason, text, now=now, generation=_gen(meta))
    write = WriteStatus(
        [_test(state), _add("conditions", work["conditions"])],
        Event("Warning", c.EventReasons.JOB_CREATE_FAILED, text),
    )
    return CreateFailure(kind, (write,), delay, log)


def job_create_recovered(op: Mapping[str, Any], job: str, now: dt.datetime) -> WriteStatus | None:
    """The Job exists: clear a `JobCreateFailed` condition that is still True (else nothing to write)."""
    status = op.get("status") or {}
    state = status.get("runState")
    cond = get_condition(status, c.CONDITION_JOB_CREATE_FAILED)
    if not state or cond is None or cond.get("status") != "True":
        return None
    work: JSON = {"conditions": copy.deepcopy(list(status.get("conditions") or []))}
    message = f"Job {job} was created after the API server had refused it"
    set_condition(
        work,
        c.CONDITION_JOB_CREATE_FAILED,
        False,
        c.Reasons.JOB_CREATED,
        message,
        now=now,
        generation=_gen(op.get("metadata") or {}),
    )
    return WriteStatus(
        [_test(str(state)), _add("conditions", work["conditions"])],
        Event("Normal", c.EventReasons.JOB_CREATED, message),
    )


def _gen(meta: Mapping[str, Any]) -> int | None:
    value = meta.get("generation")
    return value if isinstance(value, int) and not isinstance(value, bool) else None


__all__ = [
    "CREATE_RETRY_BASE_SECONDS",
    "CREATE_RETRY_MAX_SECONDS",
    "EXIT_GRACE_SECONDS",
    "FIRST_SIGHT_GRACE_SECONDS",
    "RUNNING_MARK_DELAY_SECONDS",
    "Admit",
    "ArchiveResult",
    "CreateErrorKind",
    "CreateFailure",
    "CreateJob",
    "DeleteOperation",
    "Event",
    "Plan",
    "QueueEntry",
    "QueueOperation",
    "SetJobTTL",
    "Step",
    "StopJob",
    "SyncRunStateLabel",
    "Terminate",
    "View",
    "WriteStatus",
    "attempt_job_names",
    "classify_create_error",
    "compact_operation",
    "conditions",
    "create_retry_delay",
    "explained",
    "finished_processed",
    "job_create_failed",
    "job_create_recovered",
    "job_name",
    "plan",
    "queue_entry",
    "run_link",
    "settled_job_needs_work",
    "state_mark",
    "terminal_patch",
]
