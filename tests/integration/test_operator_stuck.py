"""Operations that would be stuck, and outcomes that were mislabelled, against the embedded control plane
with real worker processes (issue 11, items 2 and 7).

Aspects covered:
- a worker pod no node fits stays Pending `Unschedulable` → the operation fails `StartDeadlineExceeded`
  after the target's short `startDeadlineSeconds`, with the scheduler's message, and its Job is stopped;
  its twin: the same target with a node that fits completes;
- a Job suspended before its worker starts (as Kueue does) fails the same way, saying it is suspended;
- the Job controller's FailedCreate Event (how a missing ServiceAccount, a quota or a PodSecurity denial
  shows; the emulator has no such admission, see docs/GAPS.md) is what the reconcile adds to the failure;
- a burst of 30 operations of which 15 fail by design under CPU contention: every failure is reported as
  the worker's (OperatorFailed), none Cancelled;
- a real cancel of a queued operation is reported Cancelled, naming who and why.
"""

from __future__ import annotations

from typing import Any

from dops.api import constants as c
from dops.api.types import ExecutionResult
from dops.logs.archive import LogArchive
from dops.reconcile.gateway import Gateway
from dops.service.delegated import caller_identity
from tests.helpers import eventually
from tests.integration.operator_env import OperatorEnv, condition, namespace, operator_env
from tests.op_builders import delegation_target, operation

__all__ = ["namespace", "operator_env"]  # fixtures

NO_NODE = {"nodeSelector": {"dops.io/test-pool": "does-not-exist"}}


def job_of(env: OperatorEnv, namespace: str, name: str) -> dict[str, Any]:
    jobs = eventually(lambda: env.jobs_of(namespace, name), describe=f"the Job of {name}")
    return jobs[0]


def test_an_unschedulable_pod_fails_at_the_start_deadline(operator_env: OperatorEnv, namespace: str) -> None:
    env = operator_env
    env.create(namespace, delegation_target("nowhere", startDeadlineSeconds=3, podTemplate=NO_NODE))
    env.create(
        namespace,
        operation("stuck", namespace).operator("@dops/examples/echo").spec(delegationTarget="nowhere").build(),
    )
    obj = env.wait_processed(namespace, "stuck", timeout=60)
    reason = condition(obj, "Succeeded")
    assert (obj["status"]["runState"], reason["reason"]) == ("failed", c.Reasons.START_DEADLINE), reason
    assert reason["message"].startswith("the worker did not start within 3 s of admission (startDeadlineSeconds): ")
    assert (
        "is Unschedulable: 0/1 nodes are available: 1 node(s) didn't match Pod's node affinity/selector"
        in (reason["message"])
    ), reason
    eventually(lambda: env.jobs_of(namespace, "stuck"), lambda j: j == [], timeout=30, describe="the Job stopped")


def test_a_schedulable_pod_on_the_same_kind_of_target_completes(operator_env: OperatorEnv, namespace: str) -> None:
    env = operator_env
    env.create(namespace, delegation_target("somewhere", startDeadlineSeconds=60))
    env.create(
        namespace,
        operation("fine", namespace).operator("@dops/examples/echo").spec(delegationTarget="somewhere").build(),
    )
    obj = env.wait_processed(namespace, "fine", timeout=60)
    assert obj["status"]["runState"] == "completed", obj["status"]


def test_a_suspended_job_fails_at_the_start_deadline(operator_env: OperatorEnv, namespace: str) -> None:
    env = operator_env
    env.create(namespace, delegation_target("held", startDeadlineSeconds=4, podTemplate=NO_NODE))
    env.create(
        namespace, operation("held", namespace).operator("@dops/examples/echo").spec(delegationTarget="held").build()
    )
    job = job_of(env, namespace, "held")
    env.kube.request(
        "PATCH",
        f"/apis/batch/v1/namespaces/{namespace}/jobs/{job['metadata']['name']}",
        body={"spec": {"suspend": True}},
        content_type="application/merge-patch+json",
    )
    obj = env.wait_processed(namespace, "held", timeout=60)
    reason = condition(obj, "Succeeded")
    assert reason["reason"] == c.Reasons.START_DEADLINE, reason
    assert f"Job {job['metadata']['name']} is suspended" in reason["message"], reason


def test_the_job_controllers_failed_create_event_explains_a_job_without_pods(
    operator_env: OperatorEnv, namespace: str, tmp_path: Any
) -> None:
    env = operator_env
    message = (
        'Error creating: pods "x-1-" is forbidden: error looking up service account ns/nope: '
        'serviceaccount "nope" not found'
    )
    for reason, kind, text, stamp in (
        ("FailedCreate", "Warning", "an older refusal", "2026-01-01T00:00:00Z"),
        ("FailedCreate", "Warning", message, "2026-01-01T00:00:09Z"),
        ("SuccessfulCreate", "Normal", "Created pod: x", "2026-01-01T00:00:10Z"),
    ):
        env.kube.request(
            "POST",
            f"/api/v1/namespaces/{namespace}/events",
            body={
                "apiVersion": "v1",
                "kind": "Event",
                "metadata": {"generateName": "x-1."},
                "involvedObject": {"apiVersion": "batch/v1", "kind": "Job", "name": "x-1", "namespace": namespace},
                "reason": reason,
                "message": text,
                "type": kind,
                "firstTimestamp": stamp,
                "lastTimestamp": stamp,
                "source": {"component": "job-controller"},
            },
        )
    gateway = Gateway(env.kube, LogArchive(str(tmp_path)))
    assert gateway.job_warning(namespace, "x-1") == f"FailedCreate: {message}"
    assert gateway.job_warning(namespace, "no-such-job") is None


def test_a_burst_of_failures_is_never_reported_as_cancelled(operator_env: OperatorEnv, namespace: str) -> None:
    env = operator_env
    env.create(namespace, delegation_target("burst", maxConcurrent=30))
    names = [f"b{i:02d}" for i in range(30)]
    for i, name in enumerate(names):
        builder = operation(name, namespace).spec(delegationTarget="burst")
        if i % 2:
            builder = builder.operator("@dops/examples/fail").params(message=f"failure {i} on purpose")
        else:
            builder = builder.operator("@dops/examples/echo")
        env.create(namespace, builder.build())
    outcomes = {name: env.wait_processed(namespace, name, timeout=300) for name in names}
    reasons = {name: condition(obj, "Succeeded")["reason"] for name, obj in outcomes.items()}
    assert c.Reasons.CANCELLED not in reasons.values(), reasons
    for i, name in enumerate(names):
        expected = c.Reasons.OPERATOR_FAILED if i % 2 else c.Reasons.COMPLETED
        assert reasons[name] == expected, (name, outcomes[name]["status"])


def test_a_cancel_of_a_queued_operation_is_cancelled(operator_env: OperatorEnv, namespace: str) -> None:
    env = operator_env
    # A target that does not exist keeps the operation queued.
    env.create(
        namespace,
        operation("waiting", namespace).operator("@dops/examples/echo").spec(delegationTarget="later").build(),
    )
    env.wait_state(namespace, "waiting", "queued")
    message = "not needed any more"
    env.service(namespace).set_failed("waiting", result=ExecutionResult(error=message, error_message=message))
    obj = env.wait_processed(namespace, "waiting", timeout=60)
    reason = condition(obj, "Succeeded")
    assert reason["reason"] == c.Reasons.CANCELLED, reason
    assert reason["message"] == f"cancelled by {caller_identity()}: {message}"
    # Events are posted in the background, after the status write that wait_processed saw.
    eventually(
        lambda: {e["reason"] for e in env.events_of(namespace, "waiting")},
        lambda reasons: c.EventReasons.CANCELLED in reasons,
        timeout=30,
        describe="the Cancelled event",
    )


def test_a_requeued_running_operation_has_its_earlier_job_stopped(operator_env: OperatorEnv, namespace: str) -> None:
    """Issue 11 item 4 (operator side): re-queuing a running operation stops attempt 1's Job before attempt 2
    runs; the operation completes on attempt 2."""
    env = operator_env
    env.create(namespace, operation("again", namespace).operator("@dops/examples/sleep").params(seconds=6).build())
    env.wait_state(namespace, "again", "running")
    assert env.service(namespace).set_queued("again", required_state="running") is not None
    stopped = eventually(
        lambda: [e for e in env.events_of(namespace, "again") if e.get("reason") == c.EventReasons.JOB_STOPPED],
        describe="attempt 1's Job stopped",
        timeout=60,
    )
    assert "stopped Job again-1: it ran an earlier attempt of the operation" in stopped[0]["message"]
    obj = env.wait_processed(namespace, "again", timeout=120)
    assert (obj["status"]["runState"], obj["status"]["attempt"]) == ("completed", 2), obj["status"]
    assert [j["metadata"]["name"] for j in env.jobs_of(namespace, "again")] == ["again-2"]


def test_a_job_create_refused_for_good_fails_at_the_start_deadline(operator_env: OperatorEnv, namespace: str) -> None:
    """A quota that never frees up: the refused creates are recorded (JobCreateFailed) and bounded by the
    start deadline, whose failure carries the API server's message."""
    env = operator_env
    quota = 'jobs.batch "refused-1" is forbidden: exceeded quota: dops-jobs, requested: count/jobs.batch=1'
    env.create(namespace, delegation_target("capped", startDeadlineSeconds=3))
    rule = env.server.call(
        lambda: env.server.faults.add(403, "POST", f"/namespaces/{namespace}/jobs$", times=-1, message=quota)
    )
    try:
        env.create(
            namespace,
            operation("refused", namespace).operator("@dops/examples/echo").spec(delegationTarget="capped").build(),
        )
        obj = env.wait_processed(namespace, "refused", timeout=60)
    finally:
        env.server.call(env.server.faults.clear)
    assert env.server.call(lambda: rule.matched) >= 1
    reason = condition(obj, "Succeeded")
    assert reason["reason"] == c.Reasons.START_DEADLINE, reason
    assert quota in reason["message"] and "403 Forbidden" in reason["message"], reason
    assert env.jobs_of(namespace, "refused") == []


def test_a_cancel_made_while_the_operator_was_down_is_cancelled(operator_env: OperatorEnv, namespace: str) -> None:
    env = operator_env
    env.create(namespace, operation("later", namespace).operator("@dops/examples/sleep").params(seconds=120).build())
    env.wait_state(namespace, "later", "running")
    env.stop_operator()
    try:
        message = "cancelled during maintenance"
        env.service(namespace).set_failed("later", result=ExecutionResult(error=message, error_message=message))
    finally:
        env.start_operator()
    obj = env.wait_processed(namespace, "later", timeout=60)
    reason = condition(obj, "Succeeded")
    assert reason["reason"] == c.Reasons.CANCELLED, reason
    assert reason["message"].startswith(f"cancelled by {caller_identity()}: {message}"), reason


def evict(env: OperatorEnv, namespace: str, pod: dict[str, Any]) -> None:
    """What the Eviction API does: a DisruptionTarget condition on the pod, then its deletion."""
    name = pod["metadata"]["name"]
    path = f"/api/v1/namespaces/{namespace}/pods/{name}"
    current = env.kube.request("GET", path)
    conditions = [x for x in current["status"].get("conditions") or [] if x.get("type") != "DisruptionTarget"]
    conditions.append(
        {
            "type": "DisruptionTarget",
            "status": "True",
            "reason": "EvictionByEvictionAPI",
            "message": "Eviction API: evicting",
            "lastTransitionTime": current["metadata"]["creationTimestamp"],
        }
    )
    env.kube.request(
        "PATCH",
        f"{path}/status",
        body={"status": {"conditions": conditions}},
        content_type="application/merge-patch+json",
    )
    env.kube.request("DELETE", path, body={"kind": "DeleteOptions", "apiVersion": "v1", "gracePeriodSeconds": 1})


def running_pod(env: OperatorEnv, namespace: str, job: str, not_named: set[str]) -> dict[str, Any]:
    def pick(pods: list[dict[str, Any]]) -> dict[str, Any] | None:
        for p in pods:
            statuses = p.get("status", {}).get("containerStatuses") or [{}]
            if p["metadata"]["name"] not in not_named and "running" in (statuses[0].get("state") or {}):
                return p
        return None

    found = eventually(lambda: pick(env.pods_of(namespace, job)), describe=f"a running pod of {job}", timeout=60)
    assert found is not None
    return found


def test_disruptions_are_rerun_up_to_the_cap_then_fail(operator_env: OperatorEnv, namespace: str) -> None:
    """Issue 11 item 9: with `maxDisruptionRetries: 1` a first eviction re-runs the worker on a new pod (counted
    in status.disruptions, a Disrupted Event); a second fails the operation PodEvicted and stops the Job."""
    env = operator_env
    env.create(namespace, delegation_target("fragile", maxDisruptionRetries=1))
    env.create(
        namespace,
        operation("evictee", namespace)
        .operator("@dops/examples/sleep")
        .params(seconds=120)
        .spec(delegationTarget="fragile")
        .build(),
    )
    env.wait_state(namespace, "evictee", "running")
    first = running_pod(env, namespace, "evictee-1", set())
    evict(env, namespace, first)
    eventually(
        lambda: env.get_op(namespace, "evictee"),
        lambda o: o["status"].get("disruptions") == 1,
        describe="the first disruption counted",
        timeout=60,
    )
    second = running_pod(env, namespace, "evictee-1", {first["metadata"]["name"]})
    assert env.get_op(namespace, "evictee")["status"]["runState"] == "running"
    evict(env, namespace, second)
    obj = env.wait_processed(namespace, "evictee", timeout=60)
    reason = condition(obj, "Succeeded")
    assert (obj["status"]["runState"], reason["reason"]) == ("failed", c.Reasons.POD_EVICTED), reason
    assert reason["message"].startswith("the worker pod was disrupted 2 times (maxDisruptionRetries: 1)"), reason
    assert obj["status"]["disruptions"] == 2
    assert c.EventReasons.DISRUPTED in {e["reason"] for e in env.events_of(namespace, "evictee")}
    eventually(lambda: env.jobs_of(namespace, "evictee"), lambda j: j == [], timeout=30, describe="the Job stopped")
