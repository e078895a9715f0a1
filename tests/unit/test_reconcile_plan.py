"""plan(view): the operator's level-triggered reconcile decision, table-tested without a cluster.

Aspects covered (issue 5, "Operator"):
- first sight → `queued` with queuedAt and conditions, conditional on the resourceVersion, after a grace;
- admission only when the scheduler reserved the operation: CAS queued→scheduled (jobName, attempt)
  plus the Job; attempts count up on re-admission; unknown targets wait with an UnknownTarget condition;
  external targets are left alone; a hand-`scheduled` operation is admitted from `scheduled`;
- a missing Job of a `scheduled` operation is (re)created with its recorded name; a deleted Job fails
  it (JobMissing) and never gets a second Job; a `running` operation without its Job fails;
- a running worker gets the Running condition (and podName/runLink only when missing), once;
- failures observed on the Job/pods become CAS failures from the observed state, archiving the log
  of a pod that started and stopping a still-active Job;
- a failed Job whose pod's end is not in view yet (the pod watch lags) is decided once it is, or after a
  bounded wait, for a running operation and one the worker already failed;
- terminal states: wait for the worker to exit (timed on the operator's clock from when it saw the state,
  never from a client's timestamp; a slow exit keeps the worker's reason), then process once (archive,
  conditions; Completed, OperatorFailed, infrastructure reasons); a cancel recorded by the write that failed
  the operation (`cancelledBy`) is Cancelled with who/why whatever the Job did, its Job stopped at once, and a
  stale marker labels nothing; Job TTL after;
- earlier attempts: a re-queued operation's Job is stopped at once and again before the next admission,
  in the same plan; an earlier attempt's Job still running while a later one is active is stopped first;
  retention deletes unpinned finished operations past ttlSecondsAfterFinished;
- terminal_patch / finished_processed: log fields, forced transition time, clock skew.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from dops.api import constants as c
from dops.domain.observe import FINAL_POD_STATUS_WAIT_SECONDS, compact_job, compact_pod
from dops.domain.reconciling import (
    EXIT_GRACE_SECONDS,
    RUNNING_MARK_DELAY_SECONDS,
    Admit,
    ArchiveResult,
    CreateJob,
    DeleteOperation,
    Plan,
    QueueOperation,
    SetJobTTL,
    StopJob,
    Terminate,
    View,
    WriteStatus,
    attempt_job_names,
    compact_operation,
    finished_processed,
    plan,
    settled_job_needs_work,
    terminal_patch,
)
from dops.domain.settings import OperatorSettings
from dops.domain.targets import builtin_target, target_from_resource
from tests.workload_builders import job, operation, pod, target

T0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
NOW = T0 + dt.timedelta(seconds=30)
SETTINGS = OperatorSettings(image_pull_grace_seconds=10, job_ttl_seconds=600)


def view(
    op: dict[str, Any],
    j: dict[str, Any] | None = None,
    pods: tuple[dict[str, Any], ...] = (),
    *,
    target_: Any = "builtin",
    reserved: bool = False,
    now: dt.datetime = NOW,
    gone_job: bool = False,
    settings: OperatorSettings = SETTINGS,
    seen_at: dt.datetime | None = None,
) -> View:
    resolved = builtin_target("ns", settings) if target_ == "builtin" else target_
    return View(
        op=compact_operation(op),
        target=resolved,
        job=compact_job(j, gone=gone_job) if j is not None else None,
        pods=[compact_pod(p) for p in pods],
        now=now,
        settings=settings,
        reserved=reserved,
        server_url="https://k",
        seen_at=seen_at,
    )


def kinds(p: Plan) -> list[str]:
    return [type(s).__name__ for s in p.steps]


def cond(conditions: list[dict[str, Any]], ctype: str) -> dict[str, Any]:
    return next(x for x in conditions if x["type"] == ctype)


def ops_value(patch: list[dict[str, Any]], path: str) -> Any:
    return next(o["value"] for o in patch if o.get("path") == path and o["op"] == "add")


def finished(state: str, at: str = "2026-01-01T00:00:20Z", **status: Any) -> dict[str, Any]:
    field = "completedAt" if state == "completed" else "failedAt"
    return operation(state=state, pod="op-1-abcde", startedAt="2026-01-01T00:00:05Z", **{field: at}, **status)


def complete_job(**kwargs: Any) -> dict[str, Any]:
    return job(conditions=(("Complete", "CompletionsReached", ""),), succeeded=1, **kwargs)


# --------------------------------------------------------------------------------------------- first sight


def test_being_deleted_does_nothing() -> None:
    op = operation()
    op["metadata"]["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    assert plan(view(op, job(active=1))).steps == ()


def service_created(**labels: str) -> dict[str, Any]:
    """A new operation without a status, as the dops service creates it (name-order marker) or not."""
    op = operation(state=None, job=None, attempt=None)
    op["metadata"]["labels"] = {"app.kubernetes.io/managed-by": "dops", **labels}
    return op


@pytest.mark.parametrize(
    ("labels", "created_ago", "seen_ago", "wait"),
    [
        # issue 15: `kubectl apply`'d (no name-order marker) is queued at once, whatever its age
        ({}, 0.0, None, None),
        ({}, 0.0, 0.0, None),
        # the dops service's own creates: left FIRST_SIGHT_GRACE_SECONDS for its status write, on our clock
        ({"dops.io/name-order": "queued-at"}, 0.5, None, 2.0),
        ({"dops.io/name-order": "queued-at"}, 0.5, 0.5, 1.5),
        ({"dops.io/name-order": "queued-at"}, 2.5, 2.0, None),
        # never timed from creationTimestamp: a busy operator sees the create late, the creator's status write
        # still behind it in the watch stream (a wasted, conflicting write per operation before issue 15)
        ({"dops.io/name-order": "queued-at"}, 2.5, 0.0, 2.0),
        ({"dops.io/name-order": "queued-at"}, 30.0, 0.0, 2.0),
    ],
)
def test_first_sight_waits_only_for_the_dops_service(
    labels: dict[str, str], created_ago: float, seen_ago: float | None, wait: float | None
) -> None:
    now = T0 + dt.timedelta(seconds=created_ago)
    seen = None if seen_ago is None else now - dt.timedelta(seconds=seen_ago)
    p = plan(view(service_created(**labels), now=now, seen_at=seen))
    if wait is None:
        assert kinds(p) == ["QueueOperation"]
    else:
        assert p.steps == ()
        assert p.requeue_after == pytest.approx(wait)


def test_first_sight_queues_conditionally() -> None:
    op = operation(state=None, job=None, attempt=None, rv="77")
    op["metadata"]["labels"] = {}
    p = plan(view(op))
    (step,) = p.steps
    assert isinstance(step, QueueOperation)
    assert step.patch["metadata"] == {"resourceVersion": "77"}
    status = step.patch["status"]
    assert status["runState"] == "queued"
    assert status["queuedAt"] == "2026-01-01T00:00:30.000000Z"
    assert cond(status["conditions"], "Succeeded")["status"] == "Unknown"
    assert cond(status["conditions"], "Running")["reason"] == c.Reasons.QUEUED
    assert step.labels["app.kubernetes.io/managed-by"] == "dops"
    assert step.labels["dops.io/run-state"] == "queued"
    assert step.event.reason == c.EventReasons.QUEUED


def test_first_sight_on_an_unknown_target() -> None:
    op = operation(state=None, job=None, attempt=None)
    op["spec"]["delegationTarget"] = "gpu"
    (step,) = plan(view(op, target_=None)).steps
    assert isinstance(step, QueueOperation)
    running = cond(step.patch["status"]["conditions"], "Running")
    assert running["reason"] == c.Reasons.UNKNOWN_TARGET
    assert "DelegationTarget gpu does not exist in namespace ns" in running["message"]


# --------------------------------------------------------------------------------------------- queued


def test_queued_waits_for_the_scheduler() -> None:
    assert plan(view(operation(state="queued", job=None, attempt=None))).steps == ()


def test_admission_is_a_cas_then_the_job() -> None:
    p = plan(view(operation(state="queued", job=None, attempt=None), reserved=True))
    (step,) = p.steps
    assert isinstance(step, Admit)
    assert step.required_state == "queued"
    assert step.patch[0] == {"op": "test", "path": "/status/runState", "value": "queued"}
    assert ops_value(step.patch, "/status/runState") == "scheduled"
    assert ops_value(step.patch, "/status/jobName") == "op-1" == step.job["metadata"]["name"]
    assert ops_value(step.patch, "/status/attempt") == 1
    assert ops_value(step.patch, "/status/scheduledAt") == "2026-01-01T00:00:30.000000Z"
    conditions = ops_value(step.patch, "/status/conditions")
    assert cond(conditions, "Running")["reason"] == c.Reasons.SCHEDULED
    assert "Job op-1 (attempt 1)" in step.event.message


def test_readmission_counts_attempts() -> None:
    (step,) = plan(view(operation(state="queued", job="op-1", attempt=1), reserved=True)).steps
    assert isinstance(step, Admit)
    assert step.job["metadata"]["name"] == "op-2"
    assert ops_value(step.patch, "/status/attempt") == 2


def test_unknown_target_condition_is_written_once() -> None:
    op = operation(state="queued", job=None, attempt=None)
    op["spec"]["delegationTarget"] = "gpu"
    (step,) = plan(view(op, target_=None, reserved=True)).steps
    assert isinstance(step, WriteStatus)
    assert step.patch[0]["value"] == "queued"
    op["status"]["conditions"] = ops_value(step.patch, "/status/conditions")
    assert plan(view(op, target_=None)).steps == ()


def test_external_targets_are_left_alone() -> None:
    external = target_from_resource(target("ext", mode="external"), SETTINGS)
    assert plan(view(operation(state="queued", job=None), target_=external, reserved=True)).steps == ()
    assert plan(view(operation(state="running", job=None), target_=external)).steps == ()


def test_hand_scheduled_operation_is_admitted_from_scheduled() -> None:
    (step,) = plan(view(operation(state="scheduled", job=None, attempt=None))).steps
    assert isinstance(step, Admit) and step.required_state == "scheduled"


def test_running_without_a_job_name_belongs_to_an_external_worker() -> None:
    assert plan(view(operation(state="running", job=None, attempt=None))).steps == ()


# --------------------------------------------------------------------------------------------- scheduled / running


def test_scheduled_without_its_job_creates_it_with_the_recorded_name() -> None:
    (step,) = plan(view(operation(state="scheduled", job="op-1", attempt=1))).steps
    assert isinstance(step, CreateJob)
    assert step.job["metadata"]["name"] == "op-1"


def test_deleted_job_fails_the_operation_and_is_never_recreated() -> None:
    for state in ("scheduled", "running"):
        (step,) = plan(view(operation(state=state), job(active=1), gone_job=True)).steps
        assert isinstance(step, Terminate)
        assert (step.required_state, step.state, step.reason) == (state, "failed", c.Reasons.JOB_MISSING)
        assert step.stop_job is None


def test_running_whose_job_is_unknown_fails() -> None:
    (step,) = plan(view(operation(state="running"))).steps
    assert isinstance(step, Terminate) and step.reason == c.Reasons.JOB_MISSING
    assert "Job op-1 no longer exists" in step.message


RUNNING_A_WHILE = NOW - dt.timedelta(seconds=RUNNING_MARK_DELAY_SECONDS)


def test_running_condition_waits_for_a_run_that_lasts() -> None:
    """Issue 15: the Running condition (a write of its own) waits RUNNING_MARK_DELAY_SECONDS on the operator's
    clock: a run that finishes sooner never needs it (its terminal write sets the condition)."""
    op = operation(state="running", pod="op-1-abcde", runLink="https://elsewhere")
    fresh = plan(view(op, job(active=1), (pod(running=True),), seen_at=NOW - dt.timedelta(seconds=0.25)))
    assert fresh.steps == ()
    assert fresh.requeue_after == pytest.approx(RUNNING_MARK_DELAY_SECONDS - 0.25)
    (step,) = plan(view(op, job(active=1), (pod(running=True),), seen_at=RUNNING_A_WHILE)).steps
    assert isinstance(step, WriteStatus)
    assert cond(ops_value(step.patch, "/status/conditions"), "Running")["status"] == "True"


def test_running_condition_and_fallbacks_are_written_once() -> None:
    op = operation(state="running")
    (step,) = plan(view(op, job(active=1), (pod(running=True),), seen_at=RUNNING_A_WHILE)).steps
    assert isinstance(step, WriteStatus)
    assert step.patch[0] == {"op": "test", "path": "/status/runState", "value": "running"}
    assert ops_value(step.patch, "/status/podName") == "op-1-abcde"
    assert (
        ops_value(step.patch, "/status/runLink")
        == "https://k/api/v1/namespaces/ns/pods/op-1-abcde/log?container=worker"
    )
    assert cond(ops_value(step.patch, "/status/conditions"), "Running")["status"] == "True"
    # The worker set podName and runLink itself: only the condition.
    op = operation(state="running", pod="op-1-abcde", runLink="https://elsewhere")
    (step,) = plan(view(op, job(active=1), (pod(running=True),), seen_at=RUNNING_A_WHILE)).steps
    assert [o["path"] for o in step.patch] == ["/status/runState", "/status/conditions"]
    # Already marked: nothing.
    op["status"]["conditions"] = ops_value(step.patch, "/status/conditions")
    assert plan(view(op, job(active=1), (pod(running=True),), seen_at=RUNNING_A_WHILE)).steps == ()


def test_the_claiming_pod_is_archived_even_before_its_events_arrive() -> None:
    op = finished("completed", at="2026-01-01T00:00:20Z")
    (step, _) = plan(view(op, complete_job())).steps  # no pod known to the operator yet
    assert isinstance(step, Terminate) and step.archive_pod == "op-1-abcde"


def test_the_operator_claims_for_a_worker_that_does_not() -> None:
    """architecture §3: scheduled → running by the worker, the operator as fallback once the pod runs."""
    running_pod = pod(running=True)  # its container started at T0, 30 s before NOW
    (step,) = plan(view(operation(state="scheduled"), job(active=1), (running_pod,))).steps
    assert isinstance(step, WriteStatus)
    assert step.patch[0] == {"op": "test", "path": "/status/runState", "value": "scheduled"}
    assert ops_value(step.patch, "/status/runState") == "running"
    assert ops_value(step.patch, "/status/podName") == "op-1-abcde"
    assert (
        "did not claim the operation within 30 s"
        in cond(ops_value(step.patch, "/status/conditions"), "Running")["message"]
    )
    early = plan(view(operation(state="scheduled"), job(active=1), (running_pod,), now=T0 + dt.timedelta(seconds=10)))
    assert early.steps == () and early.requeue_after == pytest.approx(20.0)


def test_observed_failure_is_a_cas_failure_with_the_log() -> None:
    failed_job = job(conditions=(("Failed", "BackoffLimitExceeded", ""),), failed=1)
    (step,) = plan(view(operation(state="running"), failed_job, (pod(phase="Failed", exit_code=137),))).steps
    assert isinstance(step, Terminate)
    assert (step.required_state, step.state, step.reason) == ("running", "failed", c.Reasons.NON_ZERO_EXIT)
    assert step.archive_pod == "op-1-abcde"
    assert step.stop_job is None
    assert step.sync_labels


def test_image_pull_failure_stops_the_job() -> None:
    stuck = pod(phase="Pending", waiting=("ImagePullBackOff", "nope"), created="2026-01-01T00:00:00Z")
    (step,) = plan(view(operation(state="scheduled"), job(active=1), (stuck,))).steps
    assert isinstance(step, Terminate)
    assert (step.reason, step.stop_job, step.archive_pod) == (c.Reasons.IMAGE_PULL, "op-1", None)


def test_pending_image_pull_requeues_at_the_grace() -> None:
    stuck = pod(phase="Pending", waiting=("ErrImagePull", "nope"), created="2026-01-01T00:00:25Z")
    p = plan(view(operation(state="scheduled"), job(active=1), (stuck,)))
    assert p.steps == ()
    assert p.requeue_after == pytest.approx(5.0)


# --------------------------------------------------------------------------------------------- terminal


def test_terminal_waits_for_the_worker_to_exit() -> None:
    op = finished("completed", at="2026-01-01T00:00:29.500000Z")
    p = plan(view(op, job(active=1), (pod(running=True),), seen_at=NOW - dt.timedelta(seconds=0.5)))
    assert p.steps == ()
    assert p.requeue_after == pytest.approx(EXIT_GRACE_SECONDS - 0.5)
    # Also when the pod's events lag behind the operation's (not seen running yet).
    assert plan(view(op, job(active=1))).steps == ()


def test_exit_grace_runs_on_the_operators_clock_not_the_writers() -> None:
    # The worker's failedAt is long past (slow client clock, or a slow exit under load): the operator still
    # waits the whole grace from when it first saw the state, and never calls the failure a cancel.
    op = finished("failed", at="2025-12-31T23:00:00Z", result={"error": "Traceback", "errorMessage": "boom"})
    p = plan(view(op, job(active=1), (pod(running=True),), seen_at=NOW))
    assert p.steps == () and p.requeue_after == pytest.approx(EXIT_GRACE_SECONDS)
    late = plan(view(op, job(active=1), (pod(running=True),), seen_at=NOW - dt.timedelta(seconds=EXIT_GRACE_SECONDS)))
    (step,) = late.steps
    assert isinstance(step, Terminate)
    assert (step.reason, step.stop_job) == (c.Reasons.OPERATOR_FAILED, "op-1")
    assert step.message == "boom; the operator stopped Job op-1, whose worker was still running"
    assert step.event.reason == c.EventReasons.FAILED


def status_write_by(op: dict[str, Any], manager: str) -> dict[str, Any]:
    """`op` as the API server returns it after `manager` wrote its status (managedFields records who)."""
    op["metadata"]["managedFields"] = [
        {"manager": manager, "operation": "Update", "subresource": "status", "time": "2026-01-01T00:00:20Z"}
    ]
    return op


@pytest.mark.parametrize(
    ("manager", "recorded", "cancel_by"),
    [
        ("kubectl-patch", {}, "kubectl-patch"),  # `kubectl patch --subresource=status`: a cancel by kubectl
        ("my-script", {}, "my-script"),
        ("dops", {}, None),  # the worker (or the service) recorded its own failure
        ("dops-operator", {}, None),
        # The dops service's set_failed records the cancel explicitly, whoever's manager it is.
        ("dops", {"cancelledBy": "ann@host", "cancelledAt": "2026-01-01T00:00:20Z"}, "ann@host"),
    ],
)
def test_a_failure_written_by_someone_else_while_the_worker_runs_is_their_cancel(
    manager: str, recorded: dict[str, Any], cancel_by: str | None
) -> None:
    op = status_write_by(finished("failed", result={"errorMessage": "stopped"}, **recorded), manager)
    p = plan(view(op, job(active=1), (pod(running=True),), seen_at=NOW))
    if cancel_by is None:  # the worker's own failure: it gets its exit grace first
        assert p.steps == () and p.requeue_after == pytest.approx(EXIT_GRACE_SECONDS)
        return
    (step,) = p.steps  # a cancel stops the worker at once
    assert isinstance(step, Terminate)
    assert (step.reason, step.stop_job) == (c.Reasons.CANCELLED, "op-1")
    assert step.message.startswith(f"cancelled by {cancel_by}: stopped")


def test_completed_is_processed_once_then_the_job_gets_its_ttl() -> None:
    op = finished("completed")
    p = plan(view(op, complete_job(), (pod(phase="Succeeded", exit_code=0),)))
    assert kinds(p) == ["Terminate", "SetJobTTL"]
    step = p.steps[0]
    assert isinstance(step, Terminate)
    assert (step.required_state, step.state, step.reason, step.archive_pod) == (
        "completed",
        "completed",
        "Completed",
        "op-1-abcde",
    )
    assert step.message == "the operation completed in 15.0 s"
    ttl = p.steps[1]
    assert isinstance(ttl, SetJobTTL) and (ttl.job, ttl.seconds) == ("op-1", 600)


def test_processed_operation_only_needs_the_job_ttl() -> None:
    op = finished("completed")
    op["status"]["conditions"] = [
        {
            "type": "Succeeded",
            "status": "True",
            "reason": "Completed",
            "message": "",
            "lastTransitionTime": "2026-01-01T00:00:21Z",
        }
    ]
    assert kinds(plan(view(op, complete_job(), (pod(phase="Succeeded", exit_code=0),)))) == ["SetJobTTL"]
    assert plan(view(op, complete_job(ttl=600), (pod(phase="Succeeded", exit_code=0),))).steps == ()


def test_worker_failure_is_operator_failed() -> None:
    op = finished("failed", result={"error": "Traceback...\nRuntimeError: boom", "errorMessage": "RuntimeError: boom"})
    failed_job = job(conditions=(("Failed", "PodFailurePolicy", "exit code 1"),), failed=1)
    step = plan(view(op, failed_job, (pod(phase="Failed", exit_code=1),))).steps[0]
    assert isinstance(step, Terminate)
    assert (step.reason, step.message) == (c.Reasons.OPERATOR_FAILED, "RuntimeError: boom")


def test_infrastructure_reason_wins_for_a_failed_operation() -> None:
    op = finished("failed")
    failed_job = job(conditions=(("Failed", "BackoffLimitExceeded", ""),), failed=1)
    step = plan(view(op, failed_job, (pod(phase="Failed", exit_code=143, deleting=True),))).steps[0]
    assert isinstance(step, Terminate) and step.reason == c.Reasons.POD_DELETED


def test_a_failed_job_is_decided_once_its_pods_end_is_in_view() -> None:
    """The Job watch ran ahead of the pod watch: nothing is written until the pod's end (exit code, deletion)
    arrives, or FINAL_POD_STATUS_WAIT_SECONDS after the Job failed."""
    failed_job = job(conditions=(("Failed", "BackoffLimitExceeded", ""),), failed=1)
    soon = T0 + dt.timedelta(seconds=2)
    waiting = plan(view(operation(state="running"), failed_job, (pod(running=True),), now=soon))
    assert waiting.steps == () and waiting.requeue_after == pytest.approx(FINAL_POD_STATUS_WAIT_SECONDS - 2)
    (ended,) = plan(view(operation(state="running"), failed_job, (pod(phase="Failed", exit_code=137),), now=soon)).steps
    assert isinstance(ended, Terminate) and ended.reason == c.Reasons.NON_ZERO_EXIT and "SIGKILL" in ended.message
    late = T0 + dt.timedelta(seconds=FINAL_POD_STATUS_WAIT_SECONDS)
    (unseen,) = plan(view(operation(state="running"), failed_job, (pod(running=True),), now=late)).steps
    assert isinstance(unseen, Terminate) and unseen.reason == c.Reasons.JOB_FAILED
    # An operation the worker already failed waits too: the pod's end may name the infrastructure's reason.
    op = finished("failed")
    deleting = pod(running=True, deleting=True)
    held = plan(view(op, failed_job, (deleting,), now=soon, seen_at=T0))
    assert not any(isinstance(s, Terminate) for s in held.steps) and held.requeue_after is not None
    deleted = plan(view(op, failed_job, (pod(phase="Failed", exit_code=143, deleting=True),), now=soon)).steps[0]
    assert isinstance(deleted, Terminate) and deleted.reason == c.Reasons.POD_DELETED
    assert "SIGTERM" in deleted.message


def cancelled(at: str = "2026-01-01T00:00:20Z", who: str = "dops fail (ann@laptop)", **status: Any) -> dict[str, Any]:
    return {
        "failedAt": at,
        "cancelledBy": who,
        "cancelledAt": at,
        "result": {"errorMessage": "no longer needed"},
        **status,
    }


def test_cancel_stops_the_running_job_at_once_and_says_who_and_why() -> None:
    op = operation(state="failed", pod="op-1-abcde", startedAt="2026-01-01T00:00:05Z", **cancelled())
    (step,) = plan(view(op, job(active=1), (pod(running=True),), seen_at=NOW)).steps
    assert isinstance(step, Terminate)
    assert step.reason == c.Reasons.CANCELLED
    assert step.stop_job == "op-1" and step.archive_pod == "op-1-abcde"
    assert step.message == (
        "cancelled by dops fail (ann@laptop): no longer needed; "
        "the operator stopped Job op-1, whose worker was still running"
    )
    assert step.event.reason == c.EventReasons.CANCELLED


@pytest.mark.parametrize(
    ("status", "j", "pods"),
    [
        pytest.param({"job": None, "attempt": None}, None, (), id="queued"),
        pytest.param({}, job(active=1), (pod(phase="Pending"),), id="scheduled, pod not started"),
        pytest.param(
            {"pod": "op-1-abcde", "startedAt": "2026-01-01T00:00:05Z"},
            job(conditions=(("Failed", "PodFailurePolicy", ""),), failed=1),
            (pod(phase="Failed", exit_code=1),),
            id="running, Job already ended",
        ),
    ],
)
def test_a_recorded_cancel_is_cancelled_whatever_the_job_did(
    status: dict[str, Any], j: dict[str, Any] | None, pods: tuple[dict[str, Any], ...]
) -> None:
    op = operation(state="failed", **{**cancelled(), **status})
    step = plan(view(op, j, pods)).steps[0]  # no seen_at: also right after an operator restart
    assert isinstance(step, Terminate)
    assert step.reason == c.Reasons.CANCELLED
    assert step.message.startswith("cancelled by dops fail (ann@laptop): no longer needed")


def test_a_cancel_marker_from_an_earlier_failure_labels_nothing() -> None:
    op = finished(
        "failed",
        result={"error": "Traceback", "errorMessage": "boom"},
        **{"cancelledBy": "ann", "cancelledAt": "2026-01-01T00:00:01Z"},
    )
    failed_job = job(conditions=(("Failed", "PodFailurePolicy", ""),), failed=1)
    (step, _) = plan(view(op, failed_job, (pod(phase="Failed", exit_code=1),))).steps
    assert isinstance(step, Terminate) and step.reason == c.Reasons.OPERATOR_FAILED


def test_completed_with_a_lingering_worker_stops_its_job() -> None:
    late = NOW - dt.timedelta(seconds=EXIT_GRACE_SECONDS)
    (step,) = plan(view(finished("completed"), job(active=1), (pod(running=True),), seen_at=late)).steps
    assert isinstance(step, Terminate)
    assert step.reason == "Completed" and step.stop_job == "op-1"


def test_failed_while_queued_has_no_job_to_handle() -> None:
    op = operation(state="failed", job=None, attempt=None, failedAt="2026-01-01T00:00:20Z")
    (step,) = plan(view(op)).steps
    assert isinstance(step, Terminate)
    assert (step.reason, step.stop_job, step.archive_pod) == ("Failed", None, None)


def test_processed_but_still_active_job_is_stopped() -> None:
    op = finished("failed")
    op["status"]["conditions"] = [
        {
            "type": "Succeeded",
            "status": "False",
            "reason": "Cancelled",
            "message": "",
            "lastTransitionTime": "2026-01-01T00:00:25Z",
        }
    ]
    (step,) = plan(view(op, job(active=1), (pod(running=True),))).steps
    assert isinstance(step, StopJob)


@pytest.mark.parametrize(
    ("spec", "target_ttl", "settings_ttl", "now", "expected", "requeue"),
    [
        ({}, None, 0, NOW, [], None),
        ({"ttlSecondsAfterFinished": 5}, None, 0, NOW, ["DeleteOperation"], None),
        ({"ttlSecondsAfterFinished": 5, "pinned": True}, None, 0, NOW, [], None),
        ({"ttlSecondsAfterFinished": 60}, None, 0, NOW, [], 50.0),
        ({}, 5, 0, NOW, ["DeleteOperation"], None),
        ({}, None, 5, NOW, ["DeleteOperation"], None),
        ({"ttlSecondsAfterFinished": 0}, 5, 5, NOW, [], None),
    ],
)
def test_retention(
    spec: dict[str, Any],
    target_ttl: int | None,
    settings_ttl: int,
    now: dt.datetime,
    expected: list[str],
    requeue: float | None,
) -> None:
    op = finished("completed")
    op["spec"].update(spec)
    op["status"]["conditions"] = [
        {
            "type": "Succeeded",
            "status": "True",
            "reason": "Completed",
            "message": "",
            "lastTransitionTime": "2026-01-01T00:00:21Z",
        }
    ]
    settings = OperatorSettings(ttl_seconds_after_finished=settings_ttl)
    resolved = target_from_resource(
        target("default", **({"ttlSecondsAfterFinished": target_ttl} if target_ttl is not None else {})), settings
    )
    p = plan(view(op, complete_job(ttl=600), target_=resolved, now=now, settings=settings))
    assert kinds(p) == expected
    assert p.requeue_after == (pytest.approx(requeue) if requeue is not None else None)
    if expected:
        assert isinstance(p.steps[0], DeleteOperation)


# --------------------------------------------------------------------------------------------- patches


def test_terminal_patch_of_a_worker_written_state() -> None:
    op = finished("completed")
    v = view(op, complete_job())
    step = plan(v).steps[0]
    assert isinstance(step, Terminate)
    patch = terminal_patch(v, step, ArchiveResult(path="/logs/ns/op/1-p.log", size=12), NOW)
    assert patch[0] == {"op": "test", "path": "/status/runState", "value": "completed"}
    assert ops_value(patch, "/status/logPath") == "/logs/ns/op/1-p.log"
    assert ops_value(patch, "/status/logSize") == 12
    assert not any(o.get("path") == "/status/runState" and o["op"] == "add" for o in patch)
    succeeded = cond(ops_value(patch, "/status/conditions"), "Succeeded")
    assert succeeded["status"] == "True"
    assert succeeded["lastTransitionTime"] == "2026-01-01T00:00:30.000000Z"
    op["status"]["conditions"] = ops_value(patch, "/status/conditions")
    assert finished_processed(compact_operation(op)["status"])


def test_terminal_patch_of_an_operator_failure() -> None:
    v = view(operation(state="running"), job(active=1), gone_job=True)
    step = plan(v).steps[0]
    assert isinstance(step, Terminate)
    patch = terminal_patch(v, step, ArchiveResult(error="attempt 1: pod p no longer exists"), NOW)
    assert patch[0]["value"] == "running"
    assert ops_value(patch, "/status/runState") == "failed"
    assert ops_value(patch, "/status/failedAt") == "2026-01-01T00:00:30.000000Z"
    assert ops_value(patch, "/status/result")["errorMessage"].startswith("Job op-1 was deleted")
    assert ops_value(patch, "/status/result")["error"].startswith("JobMissing: ")
    assert ops_value(patch, "/status/logUploadError") == "attempt 1: pod p no longer exists"
    assert cond(ops_value(patch, "/status/conditions"), "Succeeded")["reason"] == c.Reasons.JOB_MISSING


def test_writer_clock_ahead_still_marks_processed() -> None:
    op = finished("completed", at="2026-01-01T00:01:00Z")  # the worker's clock is 30 s ahead
    v = view(op, complete_job())
    step = plan(v).steps[0]
    assert isinstance(step, Terminate)
    patch = terminal_patch(v, step, None, NOW)
    op["status"]["conditions"] = ops_value(patch, "/status/conditions")
    assert finished_processed(compact_operation(op)["status"])


def test_refailing_later_is_processed_again() -> None:
    op = finished("failed", at="2026-01-01T00:00:20Z")
    op["status"]["conditions"] = [
        {
            "type": "Succeeded",
            "status": "False",
            "reason": "Failed",
            "message": "",
            "lastTransitionTime": "2026-01-01T00:00:21Z",
        }
    ]
    assert finished_processed(compact_operation(op)["status"])
    op["status"]["failedAt"] = "2026-01-01T00:00:25Z"
    assert not finished_processed(compact_operation(op)["status"])


# --------------------------------------------------------------------------------------------- earlier attempts


def test_attempt_job_names_are_the_other_attempts_newest_first() -> None:
    assert attempt_job_names(operation(attempt=3, job="op-3")) == ["op-2", "op-1"]
    assert attempt_job_names(operation(state="queued", attempt=2, job="op-2")) == ["op-1"]
    assert attempt_job_names(operation(state="queued", job=None, attempt=None)) == []


def requeued(**status: Any) -> dict[str, Any]:
    """Running attempt 1, then re-queued (FiftyOne's set_queued): jobName still names attempt 1's Job."""
    return operation(state="queued", pod="op-1-abcde", startedAt="2026-01-01T00:00:05Z", **status)


def test_a_requeued_operation_stops_its_running_job_at_once() -> None:
    p = plan(view(requeued(), job(active=1), (pod(running=True),)))
    (step,) = p.steps
    assert isinstance(step, StopJob) and step.job == "op-1"
    # Being deleted already: nothing more to do.
    assert plan(view(requeued(), job(active=1, deleting=True), (pod(running=True),))).steps == ()


def test_readmission_stops_the_earlier_attempts_job_before_admitting() -> None:
    p = plan(view(requeued(), job(active=1), (pod(running=True),), reserved=True))
    assert kinds(p) == ["StopJob", "Admit"]
    stop, admit = p.steps
    assert isinstance(stop, StopJob) and stop.job == "op-1"
    assert isinstance(admit, Admit) and admit.job["metadata"]["name"] == "op-2"


def test_readmission_after_a_finished_attempt_stops_nothing() -> None:
    done = job(conditions=(("Complete", "CompletionsReached", ""),), succeeded=1)
    assert kinds(plan(view(requeued(), done, (), reserved=True))) == ["Admit"]


def test_an_earlier_attempts_job_still_running_is_stopped_first() -> None:
    # Attempt 2 is scheduled, but attempt 1's Job still runs (its stop was lost, or the operator was away).
    op = operation(state="scheduled", attempt=2, job="op-2")
    v = view(op, job(name="op-2", active=1), (pod(name="op-2-x", job_name="op-2", phase="Pending"),))
    older = compact_job(job(name="op-1", active=1))
    p = plan(View(**{**v.__dict__, "older_jobs": (older,)}))
    (step,) = p.steps
    assert isinstance(step, StopJob) and step.job == "op-1"
    gone = compact_job(job(name="op-1", active=1), gone=True)
    assert not any(isinstance(s, StopJob) for s in plan(View(**{**v.__dict__, "older_jobs": (gone,)})).steps)


def test_a_finished_operation_stops_an_earlier_attempts_job_still_running() -> None:
    """Attempt 2 ended, but attempt 1's Job still runs (its stop was lost): a finished operation keeps no Job
    running, processed or not, and whether or not its own Job still waits out the exit grace."""
    older = compact_job(job(name="op-1", active=1))
    done = job(name="op-2", conditions=(("Complete", "CompletionsReached", ""),), succeeded=1, ttl=60)
    processed = finished("completed", attempt=2, job="op-2")
    processed["status"]["conditions"] = [
        {
            "type": "Succeeded",
            "status": "True",
            "reason": "Completed",
            "message": "",
            "lastTransitionTime": "2026-01-01T00:00:21Z",
        }
    ]
    for op, own, pods in (
        (processed, done, ()),  # processed: only the stop
        (finished("completed", attempt=2, job="op-2"), done, ()),  # not yet: the stop, then the end
        (
            finished("completed", attempt=2, job="op-2"),
            job(name="op-2", active=1),
            (pod(name="op-2-x", job_name="op-2", running=True),),
        ),
    ):
        v = view(op, own, pods, seen_at=NOW)
        p = plan(View(**{**v.__dict__, "older_jobs": (older,)}))
        assert isinstance(p.steps[0], StopJob) and p.steps[0].job == "op-1", p.steps
        assert not any(isinstance(s, StopJob) and s.job == "op-2" for s in p.steps)
    twin = plan(view(processed, done, ()))
    assert twin.steps == (), twin.steps  # no earlier Job running: nothing to do


@pytest.mark.parametrize(
    ("name", "state", "needs"),
    [
        ("op-2", {"active": 1}, True),  # its last attempt's Job runs: stopped
        ("op-1", {"active": 1}, True),  # an earlier attempt's Job runs: stopped too
        ("op-2", {"succeeded": 1, "conditions": (("Complete", "", ""),)}, True),  # finished, no TTL yet: SetJobTTL
        ("op-1", {"succeeded": 1, "conditions": (("Complete", "", ""),)}, False),  # earlier, finished: no plan acts
        ("op-2", {"succeeded": 1, "conditions": (("Complete", "", ""),), "ttl": 60}, False),
        ("op-2", {"active": 1, "deleting": True}, False),  # being deleted
    ],
)
def test_what_a_settled_operation_still_does_with_its_jobs(name: str, state: dict[str, Any], needs: bool) -> None:
    op = finished("completed", attempt=2, job="op-2")
    assert settled_job_needs_work(op, compact_job(job(name=name, **state))) is needs
    assert settled_job_needs_work(op, compact_job(job(name=name, **state), gone=True)) is False


def test_a_requeued_operation_whose_target_is_gone_still_stops_its_job() -> None:
    p = plan(view(requeued(), job(active=1), (pod(running=True),), target_=None))
    assert kinds(p) == ["StopJob", "WriteStatus"]


# --------------------------------------------------------------------------------------------- run-state label


@pytest.mark.parametrize(
    ("mode", "label", "write"),
    [
        ("always", "running", False),  # in step: nothing
        ("always", "scheduled", True),  # the worker's claim (it may not write labels): the operator follows
        ("auto", "scheduled", True),  # an unresolved auto keeps the label (the safe side)
        ("never", None, False),  # field selectors do the job: no label, nothing to write
        ("never", "scheduled", True),  # a label left from earlier is removed, never left to lie
    ],
)
def test_run_state_label_follows_a_claim_only_where_it_is_kept(mode: str, label: str | None, write: bool) -> None:
    """Issue 15: the run-state mirror label is kept in step only in the `always` mode (DOPS_RUN_STATE_LABEL)."""
    op = operation(state="running", pod="op-1-abcde", runLink="https://elsewhere")
    op["metadata"]["labels"] = {} if label is None else {"dops.io/run-state": label}
    settings = OperatorSettings(image_pull_grace_seconds=10, job_ttl_seconds=600, run_state_label=mode)
    steps = plan(view(op, job(active=1), (pod(running=True),), seen_at=NOW, settings=settings)).steps
    assert kinds(Plan(steps)) == (["SyncRunStateLabel"] if write else [])


@pytest.mark.parametrize(("mode", "sync"), [("always", True), ("never", False)])
def test_admission_moves_the_label_only_where_it_is_kept(mode: str, sync: bool) -> None:
    op = operation(state="queued", job=None, attempt=None)
    op["metadata"]["labels"] = {"dops.io/run-state": "queued"} if mode == "always" else {}
    settings = OperatorSettings(image_pull_grace_seconds=10, job_ttl_seconds=600, run_state_label=mode)
    (step,) = plan(view(op, reserved=True, settings=settings)).steps
    assert isinstance(step, Admit) and step.sync_labels is sync


def test_first_sight_without_the_run_state_label() -> None:
    op = operation(state=None, job=None, attempt=None)
    op["metadata"]["labels"] = {}
    settings = OperatorSettings(image_pull_grace_seconds=10, job_ttl_seconds=600, run_state_label="never")
    (step,) = plan(view(op, settings=settings)).steps
    assert isinstance(step, QueueOperation) and "dops.io/run-state" not in step.labels


@pytest.mark.parametrize(("mode", "write"), [("always", True), ("never", False)])
def test_the_label_follows_a_terminal_state_before_the_exit_grace(mode: str, write: bool) -> None:
    """Issue 15: the worker wrote `completed` and still runs (exit grace): the label follows at once, not after."""
    op = finished("completed")
    op["metadata"]["labels"] = {"dops.io/run-state": "running"} if mode == "always" else {}
    settings = OperatorSettings(image_pull_grace_seconds=10, job_ttl_seconds=600, run_state_label=mode)
    p = plan(view(op, job(active=1), (pod(running=True),), seen_at=NOW, settings=settings))
    assert kinds(p) == (["SyncRunStateLabel"] if write else [])
    assert p.requeue_after == pytest.approx(EXIT_GRACE_SECONDS)
