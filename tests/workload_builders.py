"""Builders of the Jobs and worker pods the dops operator sees, in the states a Job controller and kubelet
(v1.35) put them in, for the table tests of `observe`/`plan` (tests/unit)."""

from __future__ import annotations

import copy
from typing import Any

JSON = dict[str, Any]
T0 = "2026-01-01T00:00:00Z"


def operation(
    name: str = "op",
    namespace: str = "ns",
    *,
    state: str | None = "running",
    uid: str = "uid-op",
    job: str | None = "op-1",
    attempt: int | None = 1,
    pod: str | None = None,
    rv: str = "10",
    created: str = T0,
    **status: Any,
) -> JSON:
    """A DelegatedOperation (full form) with the given status fields."""
    st: JSON = {}
    if state is not None:
        st["runState"] = state
        st["queuedAt"] = T0
    if job is not None:
        st["jobName"] = job
    if attempt is not None:
        st["attempt"] = attempt
    if pod is not None:
        st["podName"] = pod
    st.update(status)
    return {
        "apiVersion": "dops.io/v1alpha1",
        "kind": "DelegatedOperation",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "uid": uid,
            "resourceVersion": rv,
            "generation": 1,
            "creationTimestamp": created,
            # the run-state mirror in step, as the operator keeps it (DOPS_RUN_STATE_LABEL=always)
            "labels": {"app.kubernetes.io/managed-by": "dops", **({"dops.io/run-state": state} if state else {})},
        },
        "spec": {"operator": "@dops/examples/echo", "context": {"params": {"message": "hi"}}},
        "status": st,
    }


def job(
    name: str = "op-1",
    namespace: str = "ns",
    *,
    operation: str = "op",
    owner_uid: str = "uid-op",
    conditions: tuple[tuple[str, str, str], ...] = (),
    backoff_limit: int = 0,
    deadline: int | None = None,
    active: int = 0,
    failed: int = 0,
    succeeded: int = 0,
    deleting: bool = False,
    ttl: int | None = None,
    uid: str = "uid-job",
) -> JSON:
    """A dops Job; `conditions` are (type, reason, message) with status True."""
    meta: JSON = {
        "name": name,
        "namespace": namespace,
        "uid": uid,
        "resourceVersion": "20",
        "creationTimestamp": T0,
        "labels": {"app.kubernetes.io/managed-by": "dops"},
        "annotations": {"dops.io/operation": f"{namespace}/{operation}"},
        "ownerReferences": [
            {
                "apiVersion": "dops.io/v1alpha1",
                "kind": "DelegatedOperation",
                "name": operation,
                "uid": owner_uid,
                "controller": True,
            }
        ],
    }
    if deleting:
        meta["deletionTimestamp"] = T0
    spec: JSON = {"backoffLimit": backoff_limit}
    if deadline is not None:
        spec["activeDeadlineSeconds"] = deadline
    if ttl is not None:
        spec["ttlSecondsAfterFinished"] = ttl
    status: JSON = {"active": active, "failed": failed, "succeeded": succeeded, "startTime": T0}
    if conditions:
        status["conditions"] = [
            {"type": t, "status": "True", "reason": r, "message": m, "lastTransitionTime": T0} for t, r, m in conditions
        ]
    return {"apiVersion": "batch/v1", "kind": "Job", "metadata": meta, "spec": spec, "status": status}


def pod(
    name: str = "op-1-abcde",
    job_name: str = "op-1",
    namespace: str = "ns",
    *,
    phase: str = "Running",
    running: bool = False,
    waiting: tuple[str, str] | None = None,
    exit_code: int | None = None,
    reason: str = "",
    message: str = "",
    deleting: bool = False,
    evicted: bool = False,
    created: str = T0,
    pod_reason: str = "",
    image: str = "ghcr.io/dops-dev/dops:0.1.0",
    job_uid: str | None = "uid-job",
) -> JSON:
    """A worker pod: running, waiting (reason, message) or terminated (exit_code, reason, message).

    `job_uid`: the UID in its controller ownerReference to the Job (None: a pod no Job controls)."""
    state: JSON
    if running:
        state = {"running": {"startedAt": T0}}
    elif waiting is not None:
        state = {"waiting": {"reason": waiting[0], "message": waiting[1]}}
    elif exit_code is not None:
        state = {
            "terminated": {
                "exitCode": exit_code,
                "reason": reason or ("Completed" if exit_code == 0 else "Error"),
                "message": message,
                "startedAt": T0,
                "finishedAt": T0,
            }
        }
    else:
        state = {"waiting": {"reason": "ContainerCreating"}}
    conditions: list[JSON] = [{"type": "PodScheduled", "status": "True", "lastTransitionTime": T0}]
    if evicted:
        conditions.append(
            {
                "type": "DisruptionTarget",
                "status": "True",
                "reason": "EvictionByEvictionAPI",
                "message": "Eviction API: evicting",
                "lastTransitionTime": T0,
            }
        )
    meta: JSON = {
        "name": name,
        "namespace": namespace,
        "uid": f"uid-{name}",
        "creationTimestamp": created,
        "labels": {"app.kubernetes.io/managed-by": "dops", "batch.kubernetes.io/job-name": job_name},
        "annotations": {"dops.io/operation": f"{namespace}/op"},
    }
    if job_uid is not None:
        meta["ownerReferences"] = [
            {"apiVersion": "batch/v1", "kind": "Job", "name": job_name, "uid": job_uid, "controller": True}
        ]
    if deleting:
        meta["deletionTimestamp"] = T0
    status: JSON = {
        "phase": phase,
        "conditions": conditions,
        "containerStatuses": [{"name": "worker", "state": state, "lastState": {}, "restartCount": 0, "image": image}],
    }
    if pod_reason:
        status["reason"] = pod_reason
        status["message"] = message
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": meta,
        "spec": {"containers": [{"name": "worker", "image": image}], "restartPolicy": "Never"},
        "status": status,
    }


def target(name: str = "gpu", namespace: str = "ns", **spec: Any) -> JSON:
    return {
        "apiVersion": "dops.io/v1alpha1",
        "kind": "DelegationTarget",
        "metadata": {"name": name, "namespace": namespace, "generation": 1},
        "spec": copy.deepcopy(spec),
    }
