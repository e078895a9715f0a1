"""observe(op, job, pods, now, settings): the single Job+Pod → run-outcome mapping, table-tested without a cluster.

Aspects covered (issue 5 "failure mapping", each with its distinct reason and a message naming the cause):
- no Job / Job deleted (tombstone) / Job being deleted → NoJob, JobMissing;
- pending (no pod, ContainerCreating), running, succeeded;
- worker exited 0 while the operation is not terminal → WorkerExitedWithoutResult;
- non-zero exit: termination message (log-tail fallback), the worker's recorded error, signal names;
- OOMKilled; DeadlineExceeded (Failed and the interim FailureTarget); BackoffLimitExceeded (retries > 0);
- pod deleted (deletionTimestamp or gone) and evicted (DisruptionTarget) while running;
- image pull errors and container config errors: pending within the grace (with requeue_after), failed after;
- the podFailurePolicy FailJob verdict; a Job failed without pods → JobFailed;
- a failed Job whose pod's end is not in view yet (the pod watch lags the Job watch) waits for it, bounded
  from the condition's time (clock skew included), then decides with what it has;
- a failed pod the Job will replace stays Pending (failed_pods lists it); pods of other Jobs are ignored;
- compact forms keep what observe needs (and tombstones).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from dops.api import constants as c
from dops.domain.observe import (
    FINAL_POD_STATUS_WAIT_SECONDS,
    Phase,
    compact_job,
    compact_pod,
    exit_detail,
    observe,
)
from dops.domain.reconciling import compact_operation
from dops.domain.settings import OperatorSettings
from tests.workload_builders import job, operation, pod

NOW = dt.datetime(2026, 1, 1, 0, 0, 10, tzinfo=dt.UTC)  # 10 s after the builders' T0
SETTINGS = OperatorSettings(image_pull_grace_seconds=60)


def run(
    op: dict[str, Any], j: dict[str, Any] | None, *pods: dict[str, Any], gone_job: bool = False, now: dt.datetime = NOW
) -> Any:
    compact = compact_job(j, gone=gone_job) if j is not None else None
    return observe(compact_operation(op), compact, [compact_pod(p) for p in pods], now, SETTINGS)


def failed_job(reason: str, message: str = "", **kwargs: Any) -> dict[str, Any]:
    return job(conditions=(("FailureTarget", reason, message), ("Failed", reason, message)), **kwargs)


# --------------------------------------------------------------------------------------------- table


CASES: list[tuple[str, dict[str, Any], dict[str, Any] | None, list[dict[str, Any]], Phase, str, str]] = [
    ("no job", operation(), None, [], Phase.NO_JOB, "", ""),
    ("no pod yet", operation(state="scheduled"), job(active=1), [], Phase.PENDING, "", "waiting for Job op-1"),
    (
        "container creating",
        operation(state="scheduled"),
        job(active=1),
        [pod(phase="Pending")],
        Phase.PENDING,
        "",
        "is starting",
    ),
    ("running", operation(), job(active=1), [pod(running=True)], Phase.RUNNING, "", ""),
    (
        "succeeded",
        operation(state="completed", completedAt="2026-01-01T00:00:05Z"),
        job(
            conditions=(("SuccessCriteriaMet", "CompletionsReached", ""), ("Complete", "CompletionsReached", "")),
            succeeded=1,
        ),
        [pod(phase="Succeeded", exit_code=0)],
        Phase.SUCCEEDED,
        "",
        "",
    ),
    (
        "exit 0 without a terminal state",
        operation(state="running"),
        job(conditions=(("Complete", "CompletionsReached", ""),), succeeded=1),
        [pod(phase="Succeeded", exit_code=0)],
        Phase.FAILED,
        c.Reasons.NO_RESULT,
        "exited with exit code 0 without recording a result (the operation was still running)",
    ),
    (
        "exit 0 pod, Job not yet complete, op still scheduled",
        operation(state="scheduled"),
        job(active=0),
        [pod(phase="Succeeded", exit_code=0)],
        Phase.FAILED,
        c.Reasons.NO_RESULT,
        "the operation was still scheduled",
    ),
    (
        "non-zero exit with a termination message",
        operation(),
        failed_job("BackoffLimitExceeded", "Job has reached the specified backoff limit", failed=1),
        [pod(phase="Failed", exit_code=2, message="dops worker run: invalid operation reference")],
        Phase.FAILED,
        c.Reasons.NON_ZERO_EXIT,
        "the worker exited with exit code 2: dops worker run: invalid operation reference",
    ),
    (
        "non-zero exit: the log tail (FallbackToLogsOnError) names the cause",
        operation(),
        failed_job("BackoffLimitExceeded", failed=1),
        [pod(phase="Failed", exit_code=3, message="Traceback ...\nImportError: no module named foo")],
        Phase.FAILED,
        c.Reasons.NON_ZERO_EXIT,
        "ImportError: no module named foo",
    ),
    (
        "non-zero exit: the worker's recorded error wins",
        operation(result={"error": "Traceback\nValueError: bad", "errorMessage": "ValueError: bad"}),
        failed_job("PodFailurePolicy", "Container worker for pod ns/op-1-abcde failed with exit code 3", failed=1),
        [pod(phase="Failed", exit_code=3, message='{"message": "failed"}')],
        Phase.FAILED,
        c.Reasons.NON_ZERO_EXIT,
        "the worker exited with exit code 3 (the operation failed): ValueError: bad",
    ),
    (
        "killed by SIGKILL",
        operation(),
        failed_job("BackoffLimitExceeded", failed=1),
        [pod(phase="Failed", exit_code=137)],
        Phase.FAILED,
        c.Reasons.NON_ZERO_EXIT,
        "exit code 137 (killed by SIGKILL)",
    ),
    (
        "OOMKilled",
        operation(),
        failed_job("BackoffLimitExceeded", failed=1),
        [pod(phase="Failed", exit_code=137, reason="OOMKilled")],
        Phase.FAILED,
        c.Reasons.OOM_KILLED,
        "ran out of memory",
    ),
    (
        "deadline exceeded",
        operation(),
        failed_job("DeadlineExceeded", "Job was active longer than specified deadline", deadline=30),
        [pod(phase="Failed", exit_code=143, deleting=True)],
        Phase.FAILED,
        c.Reasons.TIMED_OUT,
        "took longer than its time limit of 30 s (timeoutSeconds)",
    ),
    (
        "deadline exceeded (interim FailureTarget, pod still terminating)",
        operation(),
        job(
            conditions=(("FailureTarget", "DeadlineExceeded", "Job was active longer than specified deadline"),),
            deadline=5,
        ),
        [pod(running=True, deleting=True)],
        Phase.FAILED,
        c.Reasons.TIMED_OUT,
        "time limit of 5 s",
    ),
    (
        "every retry failed",
        operation(),
        failed_job("BackoffLimitExceeded", backoff_limit=2, failed=3),
        [
            pod("op-1-aaaaa", phase="Failed", exit_code=137, created="2026-01-01T00:00:01Z"),
            pod("op-1-bbbbb", phase="Failed", exit_code=137, created="2026-01-01T00:00:02Z"),
            pod("op-1-ccccc", phase="Failed", exit_code=139, created="2026-01-01T00:00:03Z"),
        ],
        Phase.FAILED,
        c.Reasons.BACKOFF_LIMIT,
        "the worker failed 3 times (retries: 2); last failure: "
        "the worker exited with exit code 139 (killed by SIGSEGV)",
    ),
    (
        "pod deleted while running",
        operation(),
        failed_job("BackoffLimitExceeded", failed=1),
        [pod(phase="Failed", exit_code=143, deleting=True)],
        Phase.FAILED,
        c.Reasons.POD_DELETED,
        "worker pod op-1-abcde was deleted while the worker was running (exit code 143 (killed by SIGTERM))",
    ),
    (
        "pod evicted",
        operation(),
        failed_job("BackoffLimitExceeded", failed=1),
        [pod(phase="Failed", exit_code=143, evicted=True)],
        Phase.FAILED,
        c.Reasons.POD_EVICTED,
        "worker pod op-1-abcde was evicted: Eviction API: evicting",
    ),
    (
        "evicted by the kubelet (status reason)",
        operation(),
        failed_job("BackoffLimitExceeded", failed=1),
        [pod(phase="Failed", pod_reason="Evicted", message="The node was low on resource: memory.")],
        Phase.FAILED,
        c.Reasons.POD_EVICTED,
        "The node was low on resource: memory.",
    ),
    (
        "image pull failing within the grace",
        operation(state="scheduled"),
        job(active=1),
        [pod(phase="Pending", waiting=("ImagePullBackOff", 'Back-off pulling image "x"'))],
        Phase.PENDING,
        "",
        "ImagePullBackOff",
    ),
    (
        "container config error after the grace",
        operation(state="scheduled"),
        job(active=1),
        [
            pod(
                phase="Pending",
                waiting=("CreateContainerConfigError", 'secret "creds" not found'),
                created="2025-12-31T23:00:00Z",
            )
        ],
        Phase.FAILED,
        c.Reasons.CONTAINER_CONFIG,
        'the worker container cannot start (CreateContainerConfigError): secret "creds" not found',
    ),
    (
        "image pull failing past the grace",
        operation(state="scheduled"),
        job(active=1),
        [pod(phase="Pending", waiting=("ErrImagePull", "not found"), created="2025-12-31T23:00:00Z", image="reg/x:1")],
        Phase.FAILED,
        c.Reasons.IMAGE_PULL,
        "the worker image reg/x:1 cannot be pulled (ErrImagePull): not found",
    ),
    (
        "failed without any pod",
        operation(),
        failed_job("PodFailurePolicy", "something odd"),
        [],
        Phase.FAILED,
        c.Reasons.JOB_FAILED,
        "Job op-1 failed: PodFailurePolicy: something odd",
    ),
    (
        "failed pod the Job may replace",
        operation(),
        job(backoff_limit=2, failed=1),
        [pod(phase="Failed", exit_code=137)],
        Phase.PENDING,
        "",
        "worker pod op-1-abcde ended",
    ),
    (
        "Job being deleted",
        operation(),
        job(active=1, deleting=True),
        [pod(running=True)],
        Phase.FAILED,
        c.Reasons.JOB_MISSING,
        "Job op-1 is being deleted",
    ),
    (
        "pods of another Job are ignored",
        operation(state="scheduled"),
        job(active=1),
        [pod("other-1-zzzzz", job_name="other-1", running=True)],
        Phase.PENDING,
        "",
        "waiting for Job op-1",
    ),
]


@pytest.mark.parametrize(
    ("case", "op", "j", "pods", "phase", "reason", "message"), CASES, ids=[case[0] for case in CASES]
)
def test_observe_table(
    case: str,
    op: dict[str, Any],
    j: dict[str, Any] | None,
    pods: list[dict[str, Any]],
    phase: Phase,
    reason: str,
    message: str,
) -> None:
    outcome = run(op, j, *pods)
    assert outcome.phase is phase, outcome
    assert outcome.reason == reason, outcome
    assert message in outcome.message, outcome


def test_job_tombstone_is_job_missing() -> None:
    outcome = run(operation(state="running"), job(active=1), pod(running=True), gone_job=True)
    assert (outcome.phase, outcome.reason) == (Phase.FAILED, c.Reasons.JOB_MISSING)
    assert outcome.message == "Job op-1 was deleted while the operation was running"


def test_pod_tombstone_is_pod_deleted() -> None:
    j = compact_job(failed_job("BackoffLimitExceeded", failed=1))
    gone = compact_pod(pod(running=True), gone=True)
    outcome = observe(compact_operation(operation()), j, [gone], NOW, SETTINGS)
    assert outcome.reason == c.Reasons.POD_DELETED


def test_exit_codes_and_signals() -> None:
    assert exit_detail(1) == "exit code 1 (the worker crashed)"  # 3 is "the operation failed" (issue 11 #10)
    assert exit_detail(137) == "exit code 137 (killed by SIGKILL)"
    assert exit_detail(143) == "exit code 143 (killed by SIGTERM)"
    assert exit_detail(255) == "exit code 255"


def test_image_pull_grace_requeues_until_it_expires() -> None:
    outcome = run(
        operation(state="scheduled"), job(active=1), pod(phase="Pending", waiting=("ErrImagePull", "not found"))
    )
    assert outcome.phase is Phase.PENDING
    assert outcome.requeue_after == pytest.approx(50.0)  # grace 60 s, pod created 10 s ago
    later = run(
        operation(state="scheduled"),
        job(active=1),
        pod(phase="Pending", waiting=("ErrImagePull", "not found")),
        now=NOW + dt.timedelta(seconds=50),
    )
    assert later.reason == c.Reasons.IMAGE_PULL
    assert later.job_active  # the reconcile stops the Job


T0 = NOW - dt.timedelta(seconds=10)  # the builders' timestamps: the Job's conditions changed then
SIGKILLED = failed_job("BackoffLimitExceeded", "Job has reached the specified backoff limit", failed=1)
LAG_CASES: list[tuple[str, dict[str, Any], list[dict[str, Any]], float, Phase, str, str]] = [
    # (case, Job, pods in view, seconds after the Job failed, phase, reason, message)
    ("pod still running in view", SIGKILLED, [pod(running=True)], 2, Phase.PENDING, "", "waiting for the final"),
    ("its end arrives", SIGKILLED, [pod(phase="Failed", exit_code=137)], 2, Phase.FAILED, "NonZeroExitCode", "SIGKILL"),
    ("it never arrives", SIGKILLED, [pod(running=True)], 10, Phase.FAILED, "JobFailed", "BackoffLimitExceeded"),
    (
        "deleted, its end not in view",
        SIGKILLED,
        [pod(running=True, deleting=True)],
        2,
        Phase.PENDING,
        "",
        "waiting for the final status of worker pod op-1-abcde",
    ),
    (
        "deleted, its end in view",
        SIGKILLED,
        [pod(phase="Failed", exit_code=143, deleting=True)],
        2,
        Phase.FAILED,
        "PodDeleted",
        "(exit code 143 (killed by SIGTERM))",
    ),
    ("no pod in view yet", SIGKILLED, [], 2, Phase.PENDING, "", "waiting for the final status of its worker pod"),
    (
        "no pod in view, no failed count yet (FailureTarget)",
        job(conditions=(("FailureTarget", "BackoffLimitExceeded", ""),)),
        [],
        2,
        Phase.PENDING,
        "",
        "waiting for the final status of its worker pod",
    ),
    ("no pod ever comes", failed_job("PodFailurePolicy", "odd"), [], 10, Phase.FAILED, "JobFailed", "odd"),
    (
        "deadline: the Job stops the pod itself",
        failed_job("DeadlineExceeded", deadline=5),
        [pod(running=True, deleting=True)],
        2,
        Phase.FAILED,
        "DeadlineExceeded",
        "time limit of 5 s",
    ),
    ("operator clock behind by < the bound", SIGKILLED, [pod(running=True)], -8, Phase.PENDING, "", "waiting"),
    ("operator clock behind by > the bound", SIGKILLED, [pod(running=True)], -11, Phase.FAILED, "JobFailed", ""),
]


@pytest.mark.parametrize(
    ("case", "j", "pods", "after", "phase", "reason", "message"), LAG_CASES, ids=[case[0] for case in LAG_CASES]
)
def test_a_failed_job_waits_for_its_pods_end_to_come_into_view(
    case: str, j: dict[str, Any], pods: list[dict[str, Any]], after: float, phase: Phase, reason: str, message: str
) -> None:
    """The Job watch can run ahead of the pod watch: the exit code (and the signal) is read from the pod's end,
    waited for at most FINAL_POD_STATUS_WAIT_SECONDS after the Job failed (on a slow CI machine the operator
    once wrote JobFailed for a worker killed with SIGKILL, and PodDeleted without its SIGTERM)."""
    outcome = run(operation(), j, *pods, now=T0 + dt.timedelta(seconds=after))
    assert outcome.phase is phase, outcome
    assert outcome.reason == reason, outcome
    assert message in outcome.message, outcome
    if phase is Phase.PENDING:
        assert outcome.requeue_after == pytest.approx(FINAL_POD_STATUS_WAIT_SECONDS - max(after, 0))
        assert not outcome.job_active  # nothing stops the Job or writes while waiting


def test_a_deleted_pods_tombstone_is_its_end() -> None:
    gone = compact_pod(pod(running=True, deleting=True), gone=True)
    outcome = observe(compact_operation(operation()), compact_job(SIGKILLED), [gone], T0, SETTINGS)
    assert (outcome.phase, outcome.reason) == (Phase.FAILED, c.Reasons.POD_DELETED)


def test_outcome_details_for_the_reconcile() -> None:
    running = run(operation(), job(active=1), pod(running=True))
    assert (running.pod, running.pod_started, running.pod_active, running.job_active) == (
        "op-1-abcde",
        True,
        True,
        True,
    )
    pending = run(operation(state="scheduled"), job(active=1), pod(phase="Pending", waiting=("ErrImagePull", "x")))
    assert (pending.pod_started, pending.pod_active) == (False, True)
    retry = run(operation(), job(backoff_limit=1, failed=1), pod(phase="Failed", exit_code=1))
    assert retry.failed_pods == ("op-1-abcde",)
    failed = run(operation(), failed_job("BackoffLimitExceeded", failed=1), pod(phase="Failed", exit_code=1))
    assert (failed.exit_code, failed.job_active, failed.pod_started) == (1, False, True)


def test_compact_forms_are_small_and_complete() -> None:
    j = compact_job(job(active=1, deadline=30, ttl=600))
    assert j["operation"] == "ns/op" and j["owner"] == "op" and j["ownerUid"] == "uid-op"
    assert (j["activeDeadlineSeconds"], j["ttlSecondsAfterFinished"], j["active"]) == (30, 600, 1)
    p = compact_pod(pod(phase="Failed", exit_code=1, message="x" * 10_000))
    assert p["job"] == "op-1" and p["operation"] == "ns/op"
    assert len(p["container"]["state"]["terminated"]["message"]) <= 4096
    op = compact_operation(operation(result={"result": {"big": "x" * 100_000}, "error": "e" * 100_000}))
    assert "result" not in op["status"]["result"]
    assert len(op["status"]["result"]["error"]) <= 4096
    assert "context" not in op["spec"]
