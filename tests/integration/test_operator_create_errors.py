"""Refused Job creates against the embedded control plane (issue 11 item 2: "persistent create errors show
as a condition and an Event, not a silent retry loop"). The operator runs in-process; faults are injected
on `POST .../jobs` of the test's namespace only.

Aspects covered:
- a 403 on every Job create (as RBAC, an admission webhook or a ResourceQuota answers) → within seconds
  the operation shows `JobCreateFailed=True` with the server's message and a Warning Event, stays
  `scheduled` without a Job, and is written once (no flapping); when the fault is lifted the Job is
  created, the operation completes and the condition turns False (reason JobCreated);
- its twin: a single transient 500 on the create → no condition, no Warning, the run completes;
- the 403 a real kube-apiserver answers while it has not discovered a CRD installed moments ago ("cannot find
  RESTMapping") → waited for at INFO, no condition, no Warning, the run completes.
"""

from __future__ import annotations

import logging
from typing import Any

import pytest

from dops.api import constants as c
from dops.emulator.faults import FaultRule
from tests.helpers import eventually
from tests.integration.operator_env import OperatorEnv, namespace, operator_env
from tests.op_builders import operation

__all__ = ["namespace", "operator_env"]  # fixtures

QUOTA_MESSAGE = (
    'jobs.batch "refused-1" is forbidden: exceeded quota: dops-jobs, requested: count/jobs.batch=1, '
    "used: count/jobs.batch=5, limited: count/jobs.batch=5"
)


def add_fault(env: OperatorEnv, code: int, namespace: str, times: int, message: str = "") -> FaultRule:
    rule: FaultRule = env.server.call(
        lambda: env.server.faults.add(code, "POST", f"/namespaces/{namespace}/jobs$", times=times, message=message)
    )
    return rule


def create_failed(obj: dict[str, Any]) -> dict[str, Any] | None:
    for cond in (obj.get("status") or {}).get("conditions") or []:
        if cond.get("type") == c.CONDITION_JOB_CREATE_FAILED:
            return dict(cond)
    return None


def warnings(env: OperatorEnv, namespace: str, name: str) -> list[dict[str, Any]]:
    return [
        e
        for e in env.events_of(namespace, name)
        if e.get("type") == "Warning" and e.get("reason") == c.EventReasons.JOB_CREATE_FAILED
    ]


def test_persistent_403_on_job_create_is_recorded_then_cleared(operator_env: OperatorEnv, namespace: str) -> None:
    env = operator_env
    rule = add_fault(env, 403, namespace, times=-1, message=QUOTA_MESSAGE)
    try:
        env.create(namespace, operation("refused", namespace).operator("@dops/examples/echo").build())
        obj = eventually(
            lambda: env.get_op(namespace, "refused"),
            lambda o: (create_failed(o) or {}).get("status") == "True",
            timeout=60,
            interval=0.1,
            describe="the JobCreateFailed condition",
        )
        cond = create_failed(obj)
        assert cond is not None
        assert cond["reason"] == "Forbidden", cond
        assert QUOTA_MESSAGE in cond["message"] and "403" in cond["message"]
        assert obj["status"]["runState"] == "scheduled"
        events = eventually(
            lambda: warnings(env, namespace, "refused"), describe="a JobCreateFailed Warning Event", timeout=60
        )
        assert QUOTA_MESSAGE in events[0]["message"]
        # Retries go on (the fault keeps answering) but the condition is written once: no flapping.
        eventually(lambda: env.server.call(lambda: rule.matched) >= 3, describe="create retries", timeout=60)
        again = env.get_op(namespace, "refused")
        assert create_failed(again) == cond
        assert env.jobs_of(namespace, "refused") == []
    finally:
        env.server.call(env.server.faults.clear)
    obj = env.wait_processed(namespace, "refused", timeout=60)
    assert obj["status"]["runState"] == "completed", obj["status"]
    cond = create_failed(obj)
    assert cond is not None and (cond["status"], cond["reason"]) == ("False", c.Reasons.JOB_CREATED), cond
    assert [j["metadata"]["name"] for j in env.jobs_of(namespace, "refused")] == ["refused-1"]
    assert len(warnings(env, namespace, "refused")) == 1


def test_single_transient_500_on_job_create_leaves_no_trace(operator_env: OperatorEnv, namespace: str) -> None:
    env = operator_env
    rule = add_fault(env, 500, namespace, times=1)
    try:
        env.create(namespace, operation("blip", namespace).operator("@dops/examples/echo").build())
        obj = env.wait_processed(namespace, "blip", timeout=60)
    finally:
        env.server.call(env.server.faults.clear)
    assert env.server.call(lambda: rule.matched) == 1  # the fault did hit the create
    assert obj["status"]["runState"] == "completed", obj["status"]
    assert create_failed(obj) is None
    assert warnings(env, namespace, "blip") == []


UNDISCOVERED_MESSAGE = (
    'jobs.batch "fresh-1" is forbidden: cannot set blockOwnerDeletion in this case because cannot find RESTMapping '
    'for APIVersion dops.io/v1alpha1 Kind DelegatedOperation: no matches for kind "DelegatedOperation" in version '
    '"dops.io/v1alpha1"'
)


def test_a_kind_not_yet_discovered_after_a_crd_install_is_waited_for_without_a_warning(
    operator_env: OperatorEnv, namespace: str, caplog: pytest.LogCaptureFixture
) -> None:
    """What a real kube-apiserver answers for up to 30 s after the dops CRDs are created (`helm install`, then an
    operation at once): 403 "cannot find RESTMapping" on the Job's blockOwnerDeletion owner reference. The operator
    waits it out at a steady pace: the run completes, no JobCreateFailed condition, no Warning Event, and the log
    says what it waits for at INFO, never WARNING."""
    env = operator_env
    rule = add_fault(env, 403, namespace, times=3, message=UNDISCOVERED_MESSAGE)
    with caplog.at_level(logging.INFO, logger="dops"):
        try:
            env.create(namespace, operation("fresh", namespace).operator("@dops/examples/echo").build())
            obj = env.wait_processed(namespace, "fresh", timeout=60)
        finally:
            env.server.call(env.server.faults.clear)
    assert env.server.call(lambda: rule.matched) == 3
    assert obj["status"]["runState"] == "completed", obj["status"]
    assert create_failed(obj) is None
    assert warnings(env, namespace, "fresh") == []
    about = [r for r in caplog.records if "fresh-1" in r.getMessage()]
    assert [r.levelno for r in about if "discover the DelegatedOperation kind" in r.getMessage()] == [logging.INFO] * 3
    assert not [r for r in about if r.levelno >= logging.WARNING], [r.getMessage() for r in about]
