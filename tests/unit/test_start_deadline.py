"""The start deadline and the lost-pod rule (issue 11, item 2): no operation stays scheduled or running forever.

Table-tested without a cluster:
- a `scheduled` operation whose worker has not started within the target's `startDeadlineSeconds` (else the
  operator's default) fails `StartDeadlineExceeded`, saying what blocked it: a Job with no pod (its
  FailedCreate Event is added by the reconcile: `explain_job`), a suspended Job, an unschedulable pod, a
  container waiting (ContainerCreating, image pulls), a Job the API server keeps refusing (JobCreateFailed);
- before the deadline the plan asks to be woken at it; 0 disables it; a running worker is never affected;
- `explained` adds the Job controller's message to the failure;
- `observe`: a pod still shown running while terminating past its grace period, in phase Unknown or not
  ready because of its node fails `PodLost` after `lost_pod_grace_seconds` (and wakes the operator then).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from dops.api import constants as c
from dops.domain.observe import Phase, compact_job, compact_pod, observe, start_blocker
from dops.domain.reconciling import CreateJob, Event, Terminate, View, compact_operation, explained, plan
from dops.domain.settings import OperatorSettings
from dops.domain.targets import builtin_target, target_from_resource
from tests.workload_builders import job, operation, pod, target

T0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
SETTINGS = OperatorSettings(default_start_deadline_seconds=60, lost_pod_grace_seconds=120)
SCHEDULED_AT = "2026-01-01T00:00:00Z"


def view(
    op: dict[str, Any], j: dict[str, Any] | None, pods: tuple[dict[str, Any], ...], seconds: float, **kw: Any
) -> View:
    return View(
        op=compact_operation(op),
        target=kw.get("target_", builtin_target("ns", SETTINGS)),
        job=compact_job(j) if j is not None else None,
        pods=[compact_pod(p) for p in pods],
        now=T0 + dt.timedelta(seconds=seconds),
        settings=SETTINGS,
    )


def scheduled(**status: Any) -> dict[str, Any]:
    return operation(state="scheduled", scheduledAt=SCHEDULED_AT, **status)


def unschedulable() -> dict[str, Any]:
    p = pod(phase="Pending")
    p["status"]["conditions"] = [
        {
            "type": "PodScheduled",
            "status": "False",
            "reason": "Unschedulable",
            "message": "0/3 nodes are available: 3 Insufficient nvidia.com/gpu.",
            "lastTransitionTime": SCHEDULED_AT,
        }
    ]
    del p["status"]["containerStatuses"]
    return p


SUSPENDED = job(active=0, conditions=(("Suspended", "JobSuspended", "Job suspended"),))


@pytest.mark.parametrize(
    ("j", "pods", "blocker"),
    [
        pytest.param(job(active=0), (), "Job op-1 has created no pod", id="no pod"),
        pytest.param(SUSPENDED, (), "Job op-1 is suspended: Job suspended", id="suspended"),
        pytest.param(
            job(active=1),
            (unschedulable(),),
            "worker pod op-1-abcde is Unschedulable: 0/3 nodes are available: 3 Insufficient nvidia.com/gpu.",
            id="unschedulable",
        ),
        pytest.param(
            job(active=1),
            (pod(phase="Pending"),),
            "worker pod op-1-abcde is waiting (ContainerCreating)",
            id="creating",
        ),
        pytest.param(
            job(active=1),
            (pod(phase="Pending", waiting=("ErrImagePull", "pull access denied")),),
            "worker pod op-1-abcde is waiting (ErrImagePull): pull access denied",
            id="image pull",
        ),
    ],
)
def test_the_start_deadline_fails_with_what_blocked_the_start(
    j: dict[str, Any], pods: tuple[dict[str, Any], ...], blocker: str
) -> None:
    early = plan(view(scheduled(), j, pods, 45))
    assert early.steps == () and early.requeue_after is not None and early.requeue_after <= 15
    (step,) = plan(view(scheduled(), j, pods, 60)).steps
    assert isinstance(step, Terminate)
    assert (step.required_state, step.state, step.reason) == ("scheduled", "failed", c.Reasons.START_DEADLINE)
    assert step.message == f"the worker did not start within 60 s of admission (startDeadlineSeconds): {blocker}"
    assert step.stop_job == "op-1"  # a Job that may still start a worker is stopped
    assert step.explain_job == ("op-1" if not pods else None)


def test_refused_creates_are_bounded_by_the_same_deadline() -> None:
    refused = {
        "type": "JobCreateFailed",
        "status": "True",
        "reason": "Forbidden",
        "message": 'creating Job op-1 was refused by the API server (403 Forbidden): exceeded quota: "q"',
        "lastTransitionTime": SCHEDULED_AT,
    }
    op = scheduled(conditions=[refused])
    early = plan(view(op, None, (), 30))
    assert [type(s) for s in early.steps] == [CreateJob] and early.requeue_after == pytest.approx(30)
    (step,) = plan(view(op, None, (), 61)).steps
    assert isinstance(step, Terminate) and step.reason == c.Reasons.START_DEADLINE
    assert step.message.endswith('(403 Forbidden): exceeded quota: "q"') and step.stop_job is None


def test_the_deadline_comes_from_the_target_and_zero_disables_it() -> None:
    slow = target_from_resource(target(startDeadlineSeconds=3600), SETTINGS)
    assert slow.start_deadline_seconds == 3600
    assert plan(view(scheduled(), job(active=1), (pod(phase="Pending"),), 600, target_=slow)).steps == ()
    never = target_from_resource(target(startDeadlineSeconds=0), SETTINGS)
    p = plan(view(scheduled(), job(active=1), (pod(phase="Pending"),), 10**6, target_=never))
    assert p.steps == ()
    assert target_from_resource(target(), SETTINGS).start_deadline_seconds == 60  # the operator's default


def test_a_started_worker_is_not_subject_to_the_start_deadline() -> None:
    op = operation(state="running", scheduledAt=SCHEDULED_AT, pod="op-1-abcde")
    steps = plan(view(op, job(active=1), (pod(running=True),), 10_000)).steps
    assert not any(isinstance(step, Terminate) for step in steps)


def test_explained_adds_the_job_controllers_message() -> None:
    step = Terminate(
        "scheduled", "failed", "StartDeadlineExceeded", "no start", None, None, Event("Warning", "Failed", "x")
    )
    warning = 'FailedCreate: Error creating: pods "op-1-" is forbidden: error looking up service account ns/nope'
    out = explained(step, warning)
    assert out.message == f"no start; the Job controller reports: {warning}"
    assert out.event.message == f"StartDeadlineExceeded: {out.message}"
    assert out.result_error == f"StartDeadlineExceeded: {out.message}"
    assert explained(step, None) is step


# ------------------------------------------------------------------------------------------ lost pods


def lost_pod(kind: str) -> dict[str, Any]:
    p = pod(running=True)
    p["spec"]["nodeName"] = "node-a"
    if kind == "terminating":
        p["metadata"]["deletionTimestamp"] = "2026-01-01T00:01:00Z"
    elif kind == "unknown":
        p["status"]["phase"] = "Unknown"
        p["status"]["conditions"].append(
            {"type": "Ready", "status": "False", "reason": "", "lastTransitionTime": "2026-01-01T00:01:00Z"}
        )
    elif kind == "marked":  # what a v1.35 node lifecycle controller writes (MarkPodsNotReady): no reason
        p["status"]["conditions"] = [x for x in p["status"]["conditions"] if x["type"] not in READINESS]
        p["status"]["conditions"] += [
            {"type": "Ready", "status": "False", "lastTransitionTime": "2026-01-01T00:01:00Z"},
            {"type": "ContainersReady", "status": "True", "lastTransitionTime": "2026-01-01T00:00:10Z"},
        ]
    else:
        p["status"]["conditions"].append(
            {"type": "Ready", "status": "False", "reason": "NodeNotReady", "lastTransitionTime": "2026-01-01T00:01:00Z"}
        )
    return p


READINESS = ("Ready", "ContainersReady")


@pytest.mark.parametrize(
    ("kind", "why"),
    [
        ("terminating", "was deleted and is still shown running on node node-a past its grace period"),
        ("unknown", "is in phase Unknown on node node-a (its node stopped reporting)"),
        ("notready", "is not ready on node node-a: NodeNotReady"),
        (
            "marked",
            "was marked not ready on node node-a by the node lifecycle controller (its node stopped reporting)",
        ),
    ],
)
def test_a_lost_pod_fails_the_operation_after_the_grace(kind: str, why: str) -> None:
    op = compact_operation(operation(state="running", pod="op-1-abcde"))
    j = compact_job(job(active=1))
    pods = [compact_pod(lost_pod(kind))]
    during = observe(op, j, pods, T0 + dt.timedelta(seconds=60 + 100), SETTINGS)
    assert during.phase is Phase.RUNNING and during.requeue_after == pytest.approx(20)
    after = observe(op, j, pods, T0 + dt.timedelta(seconds=60 + 120), SETTINGS)
    assert after.phase is Phase.FAILED and after.reason == c.Reasons.POD_LOST
    assert after.message.startswith(f"worker pod op-1-abcde {why} for 120 s (lost-pod grace 120 s)")
    step = plan(view(operation(state="running", pod="op-1-abcde"), job(active=1), (lost_pod(kind),), 180)).steps[0]
    assert isinstance(step, Terminate) and step.reason == c.Reasons.POD_LOST and step.stop_job == "op-1"


def evicted_from_a_lost_node(marked: str, deleted: str) -> dict[str, Any]:
    """What v1.35 shows of a pod the taint eviction controller evicted from a lost node (checked on the real plane,
    tests/integration/test_operator_node_loss.py): marked not ready by the node lifecycle controller, then
    `DisruptionTarget` (DeletionByTaintManager) and a deletionTimestamp its termination grace period ahead; the
    phase, ContainersReady and the container state stay as the lost kubelet last reported them."""
    p = lost_pod("marked")
    p["status"]["conditions"][-2]["lastTransitionTime"] = marked
    p["status"]["conditions"].append(
        {"type": "DisruptionTarget", "status": "True", "reason": "DeletionByTaintManager", "lastTransitionTime": marked}
    )
    p["metadata"]["deletionTimestamp"] = deleted
    return p


@pytest.mark.parametrize(
    ("marked", "deleted", "lost_at", "why"),
    [
        # Evicted 1 s after it was marked (a 1 s toleration), with a 30 s grace: lost since it was marked.
        (
            "2026-01-01T00:01:00Z",
            "2026-01-01T00:01:31Z",
            60,
            "was marked not ready on node node-a by the node lifecycle controller (its node stopped reporting)",
        ),
        # Deleted (by anyone) before its node was lost: lost since the end of its grace period, the earlier.
        (
            "2026-01-01T00:01:00Z",
            "2026-01-01T00:00:40Z",
            40,
            "was deleted and is still shown running on node node-a past its grace period",
        ),
    ],
)
def test_a_lost_pod_is_lost_since_its_earliest_evidence(marked: str, deleted: str, lost_at: int, why: str) -> None:
    op = compact_operation(operation(state="running", pod="op-1-abcde"))
    j = compact_job(job(active=1))
    pods = [compact_pod(evicted_from_a_lost_node(marked, deleted))]
    during = observe(op, j, pods, T0 + dt.timedelta(seconds=lost_at + 119), SETTINGS)
    assert during.phase is Phase.RUNNING and during.requeue_after == pytest.approx(1)
    after = observe(op, j, pods, T0 + dt.timedelta(seconds=lost_at + 120), SETTINGS)
    assert after.phase is Phase.FAILED and after.reason == c.Reasons.POD_LOST, after
    assert after.message.startswith(f"worker pod op-1-abcde {why} for 120 s")


def test_a_pod_its_kubelet_reports_not_ready_is_not_lost() -> None:
    """A failing readiness probe (the kubelet's own report: reason ContainersNotReady) is not a lost node."""
    p = pod(running=True)
    p["status"]["conditions"] = [x for x in p["status"]["conditions"] if x["type"] not in READINESS] + [
        {
            "type": "Ready",
            "status": "False",
            "reason": "ContainersNotReady",
            "lastTransitionTime": "2026-01-01T00:01:00Z",
        },
        {"type": "ContainersReady", "status": "False", "reason": "ContainersNotReady"},
    ]
    outcome = observe(
        compact_operation(operation(state="running", pod="op-1-abcde")),
        compact_job(job(active=1)),
        [compact_pod(p)],
        T0 + dt.timedelta(hours=1),
        SETTINGS,
    )
    assert outcome.phase is Phase.RUNNING and outcome.requeue_after is None


def test_a_healthy_running_pod_is_not_lost() -> None:
    outcome = observe(
        compact_operation(operation()), compact_job(job(active=1)), [compact_pod(pod(running=True))], T0, SETTINGS
    )
    assert outcome.phase is Phase.RUNNING and outcome.requeue_after is None


def test_start_blocker_without_a_job() -> None:
    assert start_blocker(None, []) == "its Job does not exist"
