"""Disrupted worker pods are re-run a bounded number of times (issue 11, item 9).

Table-tested without a cluster:
- the Job's podFailurePolicy ignores DisruptionTarget (the Job replaces the pod) while the target allows
  re-runs (`maxDisruptionRetries`, default 3), and fails the Job at the first disruption when it is 0;
- `observe` lists the attempt's disrupted pods (evicted, preempted, deleted with DisruptionTarget) and why;
- each new disruption is counted in `status.disruptions` (a Warning Event says the code runs again); past
  the cap the operation fails PodEvicted, the Job is stopped and the count is written with the failure;
  the count never goes down when the evidence (a deleted pod's tombstone) is gone; admission resets it.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from dops.api import constants as c
from dops.domain.jobs import build_job
from dops.domain.observe import compact_job, compact_pod, observe
from dops.domain.reconciling import Admit, Terminate, View, WriteStatus, compact_operation, plan, terminal_patch
from dops.domain.settings import OperatorSettings
from dops.domain.targets import DEFAULT_MAX_DISRUPTION_RETRIES, builtin_target, target_from_resource
from tests.workload_builders import job, operation, pod, target

NOW = dt.datetime(2026, 1, 1, 0, 1, tzinfo=dt.UTC)
SETTINGS = OperatorSettings()


def evicted(n: int) -> dict[str, Any]:
    return pod(name=f"op-1-ev{n}", phase="Failed", evicted=True, exit_code=143, created=f"2026-01-01T00:00:0{n}Z")


def view(op: dict[str, Any], pods: tuple[dict[str, Any], ...], limit: int | None = None) -> View:
    spec = {} if limit is None else {"maxDisruptionRetries": limit}
    return View(
        op=compact_operation(op),
        target=target_from_resource(target("default", **spec), SETTINGS),
        job=compact_job(job(active=1)),
        pods=[compact_pod(p) for p in pods],
        now=NOW,
        settings=SETTINGS,
    )


def rule(limit: int) -> str:
    tgt = target_from_resource(target("t", maxDisruptionRetries=limit), SETTINGS)
    rules = build_job(operation(), tgt, SETTINGS, 1)["spec"]["podFailurePolicy"]["rules"]
    return next(r["action"] for r in rules if "onPodConditions" in r)


def test_the_pod_failure_policy_follows_the_target() -> None:
    assert rule(3) == "Ignore" and rule(0) == "FailJob"
    assert builtin_target("ns", SETTINGS).max_disruption_retries == DEFAULT_MAX_DISRUPTION_RETRIES == 3
    assert target_from_resource(target("t"), SETTINGS).max_disruption_retries == 3


def test_observe_lists_disrupted_pods() -> None:
    pods = [
        compact_pod(p)
        for p in (evicted(1), evicted(2), pod(name="op-1-ok", running=True, created="2026-01-01T00:00:09Z"))
    ]
    out = observe(compact_operation(operation()), compact_job(job(active=1)), pods, NOW, SETTINGS)
    assert out.disrupted_pods == ("op-1-ev1", "op-1-ev2")
    assert out.disruption.startswith("worker pod op-1-ev2 was evicted: Eviction API: evicting")


def test_each_disruption_is_counted_and_said() -> None:
    running = (evicted(1), pod(name="op-1-r", running=True, created="2026-01-01T00:00:09Z"))
    steps = plan(view(operation(pod="op-1-r"), running)).steps
    write = next(s for s in steps if isinstance(s, WriteStatus) and s.event is not None)
    assert {"op": "add", "path": "/status/disruptions", "value": 1} in write.patch
    assert write.event is not None and write.event.reason == c.EventReasons.DISRUPTED
    assert "1 of at most 3 re-runs" in write.event.message
    # Recorded already: nothing more to write about it.
    recorded = operation(pod="op-1-r", disruptions=1, startedAt="2026-01-01T00:00:09Z")
    assert not any(isinstance(s, WriteStatus) and s.event for s in plan(view(recorded, running)).steps)


@pytest.mark.parametrize(("limit", "pods", "recorded"), [(0, 1, 0), (3, 4, 3), (1, 0, 2)])
def test_past_the_cap_the_operation_fails_pod_evicted(limit: int, pods: int, recorded: int) -> None:
    op = operation(pod="op-1-r", disruptions=recorded)
    p = plan(view(op, tuple(evicted(n) for n in range(1, pods + 1)), limit))
    (step,) = p.steps
    assert isinstance(step, Terminate)
    assert (step.reason, step.state, step.stop_job) == (c.Reasons.POD_EVICTED, "failed", "op-1")
    count = max(pods, recorded)
    assert step.message.startswith(f"the worker pod was disrupted {count} times (maxDisruptionRetries: {limit})")
    patch = terminal_patch(view(op, ()), step, None, NOW)
    assert {"op": "add", "path": "/status/disruptions", "value": count} in patch


def test_admission_resets_the_count() -> None:
    op = operation(state="queued", disruptions=2)
    v = view(op, ())
    (step,) = plan(View(**{**v.__dict__, "job": None, "reserved": True})).steps
    assert isinstance(step, Admit)
    assert {"op": "add", "path": "/status/disruptions", "value": 0} in step.patch
