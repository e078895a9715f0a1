"""Fault handling of the dops operator with real worker processes (issue 5 acceptance, "Fault tests").

Each test asserts the final state, the condition reason and that exactly one Job ever existed for the
attempt (a watch records every Job of the namespace from before the test acts).

Aspects covered:
- the worker pod deleted mid-run → failed, PodDeleted with the signal;
- the Job deleted mid-run → failed, JobMissing, and no second Job;
- an image that cannot be pulled → failed, ImagePullBackOff after the grace, the Job stopped;
- the deadline (timeoutSeconds) passed → failed, DeadlineExceeded;
- the worker killed with SIGKILL → failed, NonZeroExitCode naming the signal;
- `set_failed` from outside while running → the worker process is gone within the pod's grace period,
  the condition says Cancelled and who did it;
- `maxConcurrent: 2` never has more than 2 operations scheduled or running (sampled continuously);
- `spec.retries` (the Job's backoffLimit): after a crash the replacement pod takes the operation over.

The deleted pod and the SIGKILL run twice: with the watches in step, and with the pods' watch lagging the Jobs'
(an injected fault): the Job's Failed then arrives first, and the outcome must still carry the pod's detail.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from dops.api.types import ExecutionResult
from dops.service.delegated import caller_identity
from tests.helpers import eventually
from tests.integration.operator_env import (
    MISSING_IMAGE,
    JobRecorder,
    OperatorEnv,
    condition,
    kill,
    namespace,
    operator_env,
    wait_gone,
    worker_pids,
)
from tests.op_builders import delegation_target, operation

__all__ = ["namespace", "operator_env"]  # fixtures


def start_sleeper(env: OperatorEnv, namespace: str, name: str, seconds: float = 120, **spec: Any) -> list[int]:
    env.create(
        namespace,
        operation(name, namespace).operator("@dops/examples/sleep").params(seconds=seconds).spec(**spec).build(),
    )
    env.wait_state(namespace, name, "running")
    return eventually(lambda: worker_pids(f"{namespace}/{name}"), describe=f"the worker process of {name}")


@pytest.fixture(params=[0.0, 1.5], ids=["watches-in-step", "pod-watch-lags"])
def pod_watch_lag(request: pytest.FixtureRequest, operator_env: OperatorEnv) -> Iterator[float]:
    """The fault twin of a failure test: the pods' watch events reach the operator 1.5 s after the Jobs' (the Job
    controller's Failed arrives before the pod update with the worker's exit code or the pod's deletion)."""
    seconds = float(request.param)
    server = operator_env.server
    server.call(lambda: server.faults.lag_watches("pods", seconds))
    try:
        yield seconds
    finally:
        server.call(lambda: server.faults.lag_watches("pods", 0))


def delete(env: OperatorEnv, path: str) -> None:
    env.kube.request(
        "DELETE", path, body={"kind": "DeleteOptions", "apiVersion": "v1", "propagationPolicy": "Background"}
    )


def test_pod_deleted_mid_run(operator_env: OperatorEnv, namespace: str, pod_watch_lag: float) -> None:
    """Issue 5 fault: the worker pod is deleted while running → failed with reason PodDeleted, naming the
    signal that stopped the worker."""
    with JobRecorder(operator_env, namespace) as jobs:
        start_sleeper(operator_env, namespace, "victim")
        pod = operator_env.get_op(namespace, "victim")["status"]["podName"]
        delete(operator_env, f"/api/v1/namespaces/{namespace}/pods/{pod}")
        obj = operator_env.wait_processed(namespace, "victim")
        assert obj["status"]["runState"] == "failed"
        reason = condition(obj, "Succeeded")
        assert reason["reason"] == "PodDeleted", reason
        assert f"worker pod {pod} was deleted while the worker was running" in reason["message"]
        assert "SIGTERM" in reason["message"]
        assert obj["status"]["result"]["errorMessage"].startswith(f"worker pod {pod} was deleted")
        jobs.assert_one_job_per_attempt("victim")


def test_job_deleted_mid_run(operator_env: OperatorEnv, namespace: str) -> None:
    """Issue 5 fault: the Job is deleted while running → failed with reason JobMissing; never a second Job."""
    with JobRecorder(operator_env, namespace) as jobs:
        pids = start_sleeper(operator_env, namespace, "orphan")
        delete(operator_env, f"/apis/batch/v1/namespaces/{namespace}/jobs/orphan-1")
        obj = operator_env.wait_processed(namespace, "orphan")
        assert obj["status"]["runState"] == "failed"
        reason = condition(obj, "Succeeded")
        assert reason["reason"] == "JobMissing", reason
        assert "Job orphan-1 was deleted while the operation was running" in reason["message"]
        wait_gone(pids, 30)  # garbage collection took the pod, and the kubelet its process
        # A later operation completes: the operator has long reconciled the first one again.
        operator_env.create(namespace, operation("after", namespace).params(x=1).build())
        operator_env.wait_processed(namespace, "after")
        assert operator_env.get_op(namespace, "orphan")["status"]["runState"] == "failed"
        jobs.assert_one_job_per_attempt("orphan")


def test_image_not_runnable(operator_env: OperatorEnv, namespace: str) -> None:
    """Issue 5 fault: the worker image cannot be pulled → after the grace (3 s here) failed with reason
    ImagePullBackOff naming the image; the Job is stopped, not left waiting."""
    operator_env.create(namespace, delegation_target("broken", image=MISSING_IMAGE))
    with JobRecorder(operator_env, namespace) as jobs:
        operator_env.create(namespace, operation("unpullable", namespace).target("broken").params(x=1).build())
        obj = operator_env.wait_processed(namespace, "unpullable", timeout=60)
        assert obj["status"]["runState"] == "failed"
        reason = condition(obj, "Succeeded")
        assert reason["reason"] == "ImagePullBackOff", reason
        assert f"the worker image {MISSING_IMAGE} cannot be pulled" in reason["message"]
        assert "no worker log" in obj["status"]["logUploadError"]
        eventually(
            lambda: operator_env.jobs_of(namespace, "unpullable"), lambda j: j == [], timeout=30, describe="Job stopped"
        )
        jobs.assert_one_job_per_attempt("unpullable")


def test_deadline_exceeded(operator_env: OperatorEnv, namespace: str) -> None:
    """Issue 5 fault: the run outlives spec.timeoutSeconds (the Job's activeDeadlineSeconds) → failed with
    reason DeadlineExceeded."""
    with JobRecorder(operator_env, namespace) as jobs:
        operator_env.create(
            namespace,
            operation("slow", namespace)
            .operator("@dops/examples/sleep")
            .params(seconds=60)
            .spec(timeoutSeconds=3)
            .build(),
        )
        obj = operator_env.wait_processed(namespace, "slow", timeout=60)
        assert obj["status"]["runState"] == "failed"
        reason = condition(obj, "Succeeded")
        assert reason["reason"] == "DeadlineExceeded", reason
        assert "time limit of 3 s (timeoutSeconds)" in reason["message"]
        jobs.assert_one_job_per_attempt("slow")


def test_worker_killed_with_sigkill(operator_env: OperatorEnv, namespace: str, pod_watch_lag: float) -> None:
    """Issue 5 fault: the worker process is killed with SIGKILL → failed with reason NonZeroExitCode naming
    exit code 137 and the signal."""
    with JobRecorder(operator_env, namespace) as jobs:
        pids = start_sleeper(operator_env, namespace, "killed")
        for pid in pids:
            kill(pid)
        obj = operator_env.wait_processed(namespace, "killed")
        assert obj["status"]["runState"] == "failed"
        reason = condition(obj, "Succeeded")
        assert reason["reason"] == "NonZeroExitCode", reason
        assert "exit code 137 (killed by SIGKILL)" in reason["message"]
        assert obj["status"]["logPath"]  # what the worker printed before it died is archived
        jobs.assert_one_job_per_attempt("killed")


def test_set_failed_while_running_kills_the_worker(operator_env: OperatorEnv, namespace: str) -> None:
    """Issue 5 "Cancel": set_failed from outside while the worker runs → the operator deletes the Job and the
    worker process stops within the pod's grace period; the condition says Cancelled, by whom and why."""
    service = operator_env.service(namespace)
    with JobRecorder(operator_env, namespace) as jobs:
        pids = start_sleeper(operator_env, namespace, "cancelme")
        cancelled_at = time.monotonic()
        message = "the user changed their mind"
        service.set_failed("cancelme", result=ExecutionResult(error=message, error_message=message))
        took = wait_gone(pids, 30)
        assert time.monotonic() - cancelled_at < 15, f"the worker ran {took:.1f} s after the cancel"
        obj = operator_env.wait_processed(namespace, "cancelme")
        reason = condition(obj, "Succeeded")
        assert reason["reason"] == "Cancelled", reason
        assert reason["message"].startswith(f"cancelled by {caller_identity()}: {message}"), reason
        assert obj["status"]["runState"] == "failed"
        assert obj["status"]["result"]["errorMessage"] == message  # the canceller's result is kept
        eventually(
            lambda: operator_env.jobs_of(namespace, "cancelme"), lambda j: j == [], timeout=30, describe="Job deleted"
        )
        jobs.assert_one_job_per_attempt("cancelme")
        reasons = {e["reason"] for e in operator_env.events_of(namespace, "cancelme")}
        assert "Cancelled" in reasons


def test_max_concurrent_is_never_exceeded(operator_env: OperatorEnv, namespace: str) -> None:
    """Issue 5: a target with `maxConcurrent: 2` never has more than 2 operations scheduled or running,
    sampled continuously, and still runs them all."""
    operator_env.create(namespace, delegation_target("pair", maxConcurrent=2))
    names = [f"c{i}" for i in range(6)]
    samples: list[tuple[int, int]] = []
    stop = threading.Event()
    path = f"/apis/dops.io/v1alpha1/namespaces/{namespace}/delegatedoperations"

    def sampler() -> None:
        while not stop.is_set():
            states = [(o.get("status") or {}).get("runState") for o in operator_env.kube.request("GET", path)["items"]]
            samples.append((states.count("running"), sum(s in ("scheduled", "running") for s in states)))
            time.sleep(0.02)

    thread = threading.Thread(target=sampler, daemon=True)
    thread.start()
    try:
        for name in names:
            operator_env.create(
                namespace,
                operation(name, namespace).operator("@dops/examples/sleep").target("pair").params(seconds=1).build(),
            )
        for name in names:
            assert operator_env.wait_processed(namespace, name, timeout=90)["status"]["runState"] == "completed"
    finally:
        stop.set()
        thread.join(5)
    assert len(samples) > 50
    assert max(active for _, active in samples) == 2, max(samples)
    assert max(running for running, _ in samples) <= 2


def test_retries_take_over_after_a_crash(operator_env: OperatorEnv, namespace: str) -> None:
    """Issue 5: spec.retries is the Job's backoffLimit: after the worker is killed, the Job's replacement pod
    takes the operation over and completes it — still one Job for the attempt."""
    with JobRecorder(operator_env, namespace) as jobs:
        pids = start_sleeper(operator_env, namespace, "resilient", seconds=3, retries=1)
        first_pod = operator_env.get_op(namespace, "resilient")["status"]["podName"]
        for pid in pids:
            kill(pid)
        obj = operator_env.wait_processed(namespace, "resilient", timeout=60)
        assert obj["status"]["runState"] == "completed", obj["status"]
        assert obj["status"]["podName"] != first_pod
        assert len(operator_env.pods_of(namespace, "resilient-1")) == 2
        assert operator_env.jobs_of(namespace, "resilient")[0]["spec"]["backoffLimit"] == 1
        jobs.assert_one_job_per_attempt("resilient")
