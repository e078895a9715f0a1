"""The dops operator driven through DelegatedOperationService, with real worker processes (issue 5 acceptance).

One embedded control plane (all controllers, process kubelet running `python -m dops worker run ...`)
and one in-process operator for the module; a fresh namespace per test.

Aspects covered:
- queue → completed with its result; status.jobName/podName/attempt/runLink/logPath/logSize, conditions
  (Running, Succeeded with observedGeneration), events with constant reasons, the run-state label,
  exactly one Job (ownerReference, labels), the Job's TTL set once the log is archived;
- progress observed while running (at least 3 distinct values for `count`) and the Running condition;
- a failure carries the traceback (reason OperatorFailed); a rerun is a new operation that completes;
- retention: finished, unpinned operations past ttlSecondsAfterFinished are deleted (their Job with
  them), pinned ones stay;
- targets: `mode: external` targets are left alone; an unknown target waits (UnknownTarget) and runs
  once the DelegationTarget exists;
- a re-queued operation runs as attempt 2 with a Job of its own (one Job per attempt).
"""

from __future__ import annotations

from typing import Any

from tests.helpers import eventually
from tests.integration.operator_env import (
    JobRecorder,
    OperatorEnv,
    condition,
    namespace,
    operator_env,
)
from tests.op_builders import delegation_target, operation

__all__ = ["namespace", "operator_env"]  # fixtures


def params(**values: Any) -> dict[str, Any]:
    return {"request_params": {"params": values}}


def test_queue_runs_to_completed_with_result(operator_env: OperatorEnv, namespace: str) -> None:
    """Issue 5: queue_operation → the operator admits it, runs it as one Job, the worker completes it; the
    operator archives the log, sets conditions and events, and gives the finished Job its TTL."""
    service = operator_env.service(namespace)
    with JobRecorder(operator_env, namespace) as jobs:
        doc = service.queue_operation("@dops/examples/echo", context=params(message="hello"))
        assert doc.id is not None
        obj = operator_env.wait_processed(namespace, doc.id)
        status = obj["status"]
        assert status["runState"] == "completed"
        assert status["result"]["result"] == {"message": "hello"}
        assert status["attempt"] == 1
        assert status["jobName"] == f"{doc.id}-1"
        assert status["podName"].startswith(f"{doc.id}-1-")
        assert status["runLink"].endswith(
            f"/api/v1/namespaces/{namespace}/pods/{status['podName']}/log?container=worker"
        )
        assert status["logPath"].startswith(str(operator_env.archive))
        assert status["logSize"] > 0
        assert "scheduledAt" in status and "startedAt" in status and "completedAt" in status
        succeeded = condition(obj, "Succeeded")
        assert (succeeded["status"], succeeded["reason"]) == ("True", "Completed")
        assert succeeded["observedGeneration"] == obj["metadata"]["generation"]
        assert (condition(obj, "Running")["status"], condition(obj, "Running")["reason"]) == ("False", "Completed")
        # The embedded plane selects by status.runState: no run-state label (DOPS_RUN_STATE_LABEL=auto, issue 15).
        assert "dops.io/run-state" not in obj["metadata"]["labels"]
        reasons = eventually(
            lambda: {e["reason"] for e in operator_env.events_of(namespace, doc.id)},
            lambda r: {"Scheduled", "Completed"} <= r,
            describe="Scheduled and Completed events",
        )
        assert "Failed" not in reasons
        job = eventually(
            lambda: operator_env.jobs_of(namespace, doc.id)[0],
            lambda j: j["spec"].get("ttlSecondsAfterFinished") == operator_env.settings.job_ttl_seconds,
            describe="the finished Job's TTL",
        )
        assert job["metadata"]["ownerReferences"][0]["uid"] == obj["metadata"]["uid"]
        assert job["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "dops"
        jobs.assert_one_job_per_attempt(doc.id)


def test_progress_is_observed_while_running(operator_env: OperatorEnv, namespace: str) -> None:
    """Issue 5: `count` reports progress while it runs: at least 3 distinct values are observed through
    the service, and the operator marks the Running condition True meanwhile. (Issue 15: its target writes
    progress every second; the default, 10 s, would show the first and the last value of a 3 s run only.)"""
    operator_env.create(namespace, delegation_target("every-second", progressIntervalSeconds=1))
    service = operator_env.service(namespace)
    doc = service.queue_operation(
        "@dops/examples/count", delegation_target="every-second", context=params(n=6, delay=0.5)
    )
    assert doc.id is not None
    seen: set[float] = set()
    running_condition: list[bool] = []

    def probe() -> str:
        current = service.get(doc.id)
        if current.status is not None and current.status.progress is not None:
            seen.add(current.status.progress)
        if condition(current.resource or {}, "Running").get("status") == "True":
            running_condition.append(True)
        return str(current.run_state)

    eventually(probe, lambda state: state == "completed", timeout=60, interval=0.1, describe="count to complete")
    assert len(seen) >= 3, seen
    assert running_condition, "the Running condition was never True while the operation ran"
    final = service.get(doc.id)
    assert final.result is not None and final.result.result == {"count": 6}
    assert final.status is not None and final.status.progress == 1.0


def test_failure_carries_the_traceback_and_rerun_completes(operator_env: OperatorEnv, namespace: str) -> None:
    """Issue 5: a failing operator ends `failed` with its traceback (condition reason OperatorFailed, Warning
    event); rerunning an operation creates a new operation that completes."""
    service = operator_env.service(namespace)
    failing = service.queue_operation("@dops/examples/fail", context=params(message="broken on purpose"))
    assert failing.id is not None
    obj = operator_env.wait_processed(namespace, failing.id)
    assert obj["status"]["runState"] == "failed"
    error = obj["status"]["result"]["error"]
    assert "Traceback" in error and "broken on purpose" in error
    failed = condition(obj, "Succeeded")
    assert (failed["status"], failed["reason"]) == ("False", "OperatorFailed")
    assert "broken on purpose" in failed["message"]
    eventually(
        lambda: [e for e in operator_env.events_of(namespace, failing.id) if e["reason"] == "Failed"],
        lambda events: bool(events) and events[0]["type"] == "Warning",
        describe="a Failed warning event",
    )
    done = service.queue_operation("@dops/examples/echo", context=params(n=1))
    assert done.id is not None
    operator_env.wait_processed(namespace, done.id)
    rerun = service.rerun_operation(done.id)
    assert rerun.id is not None and rerun.id != done.id
    obj = operator_env.wait_processed(namespace, rerun.id)
    assert obj["status"]["runState"] == "completed"
    assert obj["status"]["result"]["result"] == {"n": 1}


def test_retention_deletes_unpinned_finished_operations(operator_env: OperatorEnv, namespace: str) -> None:
    """Issue 5 "Retention": a finished operation older than its ttlSecondsAfterFinished is deleted with its
    Job (ownerReference); a pinned one stays."""
    kept = operation("kept", namespace).spec(ttlSecondsAfterFinished=1, pinned=True).params(x=1).build()
    dropped = operation("dropped", namespace).spec(ttlSecondsAfterFinished=1).params(x=2).build()
    for body in (kept, dropped):
        operator_env.create(namespace, body)
    operator_env.wait_processed(namespace, "kept")
    eventually(
        lambda: [
            o["metadata"]["name"]
            for o in operator_env.kube.request(
                "GET", f"/apis/dops.io/v1alpha1/namespaces/{namespace}/delegatedoperations"
            )["items"]
        ],
        lambda names: names == ["kept"],
        timeout=30,
        describe="the unpinned operation deleted, the pinned one kept",
    )
    eventually(
        lambda: operator_env.jobs_of(namespace, "dropped"),
        lambda jobs: jobs == [],
        timeout=30,
        describe="the deleted operation's Job garbage-collected",
    )
    assert operator_env.get_op(namespace, "kept")["status"]["runState"] == "completed"


def test_targets_external_left_alone_and_unknown_waits(operator_env: OperatorEnv, namespace: str) -> None:
    """Issue 5: operations on a `mode: external` target are left to external workers (no Job, still queued);
    an operation naming a target that does not exist waits with an UnknownTarget condition and runs once
    the DelegationTarget is created."""
    operator_env.create(namespace, delegation_target("outside", mode="external"))
    service = operator_env.service(namespace)
    external = service.queue_operation("@dops/examples/echo", delegation_target="outside", context=params())
    waiting = service.queue_operation("@dops/examples/echo", delegation_target="later", context=params(w=1))
    assert external.id is not None and waiting.id is not None
    eventually(
        lambda: operator_env.get_op(namespace, waiting.id),  # type: ignore[arg-type]
        lambda o: condition(o, "Running").get("reason") == "UnknownTarget",
        describe="the UnknownTarget condition",
    )
    assert (
        "DelegationTarget later does not exist"
        in condition(operator_env.get_op(namespace, waiting.id), "Running")["message"]
    )
    operator_env.create(namespace, delegation_target("later", maxConcurrent=1))
    obj = operator_env.wait_processed(namespace, waiting.id)
    assert obj["status"]["result"]["result"] == {"w": 1}
    # By now the operator has handled everything queued before: the external operation is untouched.
    ext = operator_env.get_op(namespace, external.id)
    assert ext["status"]["runState"] == "queued"
    assert "jobName" not in ext["status"]
    assert operator_env.jobs_of(namespace, external.id) == []


def test_requeued_operation_runs_as_a_new_attempt(operator_env: OperatorEnv, namespace: str) -> None:
    """Issue 5: an operation queued again (set_queued) is admitted as attempt 2 with a Job of its own; each
    attempt has exactly one Job."""
    service = operator_env.service(namespace)
    with JobRecorder(operator_env, namespace) as jobs:
        doc = service.queue_operation("@dops/examples/echo", context=params(round=1))
        assert doc.id is not None
        first = operator_env.wait_processed(namespace, doc.id)
        assert first["status"]["attempt"] == 1
        service.set_queued(doc.id)
        second = eventually(
            lambda: operator_env.get_op(namespace, doc.id),  # type: ignore[arg-type]
            lambda o: (
                o["status"].get("attempt") == 2
                and o["status"]["runState"] == "completed"
                and condition(o, "Succeeded").get("status") == "True"
                and o["status"].get("logPath", "").find("/2-") > 0
            ),
            timeout=60,
            describe="attempt 2 completed and processed",
        )
        assert second["status"]["jobName"] == f"{doc.id}-2"
        jobs.assert_one_job_per_attempt(doc.id, attempts=2)
