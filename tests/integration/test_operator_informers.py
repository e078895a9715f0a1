"""The operator's informers of its Jobs and pods (dops.k8s.informer) under a broken watch.

- the watch of pods fails for longer than DOPS_WATCH_STALE_SECONDS (every GET of the pods collection answers 500
  and the open watch has expired): one WARNING names it, /healthz fails with the reason, and an operation
  created meanwhile still runs (what the operator needs of it comes from the operation and its Job); once the
  fault is lifted the informer relists, logs that it works again, and /healthz passes;
- the liveness probe stays about the watch of operations: busy Jobs and pods never keep it green (covered by
  tests/integration/test_operator_restart.py::test_metrics_and_liveness).
"""

from __future__ import annotations

import logging

import pytest

from dops.emulator import errors
from dops.emulator.faults import FaultRule
from tests.helpers import eventually
from tests.integration.operator_env import OperatorEnv, Started, namespace, operator_env, own_operator, start_own
from tests.op_builders import operation

__all__ = ["namespace", "operator_env", "own_operator"]  # fixtures

PODS = r"^/api/v1/pods$"


def test_a_failing_pod_watch_is_reported_and_outlived(
    operator_env: OperatorEnv, own_operator: list[Started], namespace: str, caplog: pytest.LogCaptureFixture
) -> None:
    env = operator_env
    caplog.set_level(logging.INFO, logger="dops.k8s.informer")
    run = start_own(env, own_operator, namespace, watch_stale_seconds=3)
    assert run.running.ready.wait(30), run.running.errors
    eventually(lambda: run.healthz().status_code, lambda code: code == 200, timeout=30, describe="/healthz passes")

    def expire_pod_watches() -> int:
        watchers = [w for w in env.server.api.store.all_watchers() if w.resource[1] == "pods"]
        for watcher in watchers:
            watcher.fail(errors.expired("too old resource version (injected watch gap)").status())
        return len(watchers)

    rule: FaultRule = env.server.call(lambda: env.server.faults.add(500, "GET", PODS, times=-1))
    assert env.server.call(expire_pod_watches) > 0, "no open watch of pods"
    env.create(namespace, operation("runs-anyway", namespace).params(x=7).build())

    def probed() -> tuple[int, list[str]]:  # Kopf answers a failed probe with a bare 500 and logs its reason
        reasons = [r.getMessage() for r in caplog.records if r.name == "kopf.activities.probe"]
        return run.healthz().status_code, reasons

    eventually(
        probed,
        lambda seen: seen[0] == 500 and any("the watch of pods has failed for" in reason for reason in seen[1]),
        timeout=30,
        describe="/healthz to fail naming the failing watch of pods",
    )
    informer_log = [r for r in caplog.records if r.name == "dops.k8s.informer"]
    warnings = [r.getMessage() for r in informer_log if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "the watch of pods failed" in warnings[0], warnings
    obj = env.wait_processed(namespace, "runs-anyway", timeout=60)
    assert obj["status"]["runState"] == "completed" and obj["status"]["result"]["result"] == {"x": 7}

    env.server.call(lambda: env.server.faults.rules.remove(rule))
    eventually(lambda: run.healthz().status_code, lambda code: code == 200, timeout=30, describe="/healthz passes")
    assert any("the watch of pods works again" in r.getMessage() for r in caplog.records)
