"""Issue 11 (found by the real-plane chaos run): Kopf watches only what API discovery listed when it looked.

A kube-apiserver that has just restarted serves discovery before it has registered the custom groups (`/apis`
without dops.io, `/apis/dops.io/v1alpha1` 503, for 0.1–0.3 s). Kopf scans discovery once, right after the
startup handler, and again only when a CRD changes, so an operator that started at that moment never watched
operations again (its bookmark watch kept /healthz green). The embedded control plane's fault hooks make the
group version answer 404 here, which Kopf reads as "no resources", as it reads a group that `/apis` omits:

- an operator that starts while discovery does not list dops.io waits (a WARNING per attempt, nothing
  admitted) and, once discovery lists it, watches and runs operations;
- its twin, the residual race: discovery lists dops.io for the operator's own check and not for Kopf's scan
  right after it. /healthz fails (its logged reason names what Kopf does not watch), and the operator asks
  Kopf to scan again until it does; then an operation applied meanwhile runs, without a restart.
"""

from __future__ import annotations

import logging

import pytest

from dops.emulator.faults import FaultRule
from tests.helpers import eventually
from tests.integration.operator_env import OperatorEnv, Started, namespace, operator_env, own_operator, start_own
from tests.op_builders import operation

__all__ = ["namespace", "operator_env", "own_operator"]  # fixtures

DISCOVERY = r"^/apis/dops\.io/v1alpha1$"


@pytest.mark.parametrize(
    ("code", "said"),
    [
        (404, "does not list delegatedoperations.dops.io, delegationtargets.dops.io"),
        (503, "failed ("),  # what a real kube-apiserver answers while it registers the group
    ],
    ids=["404-not-listed", "503-registering"],
)
def test_an_operator_waits_until_discovery_lists_its_resources(
    operator_env: OperatorEnv,
    own_operator: list[Started],
    namespace: str,
    caplog: pytest.LogCaptureFixture,
    code: int,
    said: str,
) -> None:
    env = operator_env
    caplog.set_level(logging.INFO, logger="dops.operator")
    rule: FaultRule = env.server.call(lambda: env.server.faults.add(code, "GET", DISCOVERY, times=-1))
    run = start_own(env, own_operator, namespace)
    env.create(namespace, operation("while-undiscovered", namespace).params(x=1).build())
    eventually(lambda: rule.matched, lambda n: n >= 5, timeout=30, describe="the discovery check retried")
    waits = [r.getMessage() for r in caplog.records if "discovery of dops.io/v1alpha1" in r.getMessage()]
    assert waits and said in waits[0], waits
    assert all(
        r.levelno == logging.WARNING and "retrying in" in r.getMessage()
        for r in caplog.records
        if "discovery of dops.io/v1alpha1" in r.getMessage()
    )
    assert not run.running.ready.is_set(), "Kopf started (and scanned discovery) before discovery listed dops.io"
    assert (env.get_op(namespace, "while-undiscovered").get("status") or {}) == {}, "admitted while waiting"
    env.server.call(env.server.faults.clear)
    assert run.running.ready.wait(30), "the operator did not start once discovery listed dops.io"
    obj = env.wait_processed(namespace, "while-undiscovered", timeout=60)
    assert obj["status"]["result"]["result"] == {"x": 1}
    # Kopf watches operations: one applied after the start runs too (before the fix, none did).
    env.create(namespace, operation("after-start", namespace).params(x=2).build())
    assert env.wait_processed(namespace, "after-start", timeout=60)["status"]["result"]["result"] == {"x": 2}
    assert run.healthz().status_code == 200


@pytest.mark.parametrize("leader_election", [False, True], ids=["single", "leader-election"])
def test_a_discovery_scan_that_missed_dops_is_repeated_and_reported(
    operator_env: OperatorEnv,
    own_operator: list[Started],
    namespace: str,
    caplog: pytest.LogCaptureFixture,
    leader_election: bool,
) -> None:
    env = operator_env
    caplog.set_level(logging.WARNING, logger="dops.operator")
    # The operator's own check passes; Kopf's scan right after it (and its next rescans) gets the 404.
    rule: FaultRule = env.server.call(lambda: env.server.faults.add(404, "GET", DISCOVERY, times=-1, skip=1))
    run = start_own(env, own_operator, namespace, leader_election=leader_election)
    assert run.running.ready.wait(30), run.running.errors
    # Kopf answers a failed probe with a bare 500 and logs the probe's reason.
    missing = "Kopf does not watch delegatedoperations.dops.io, delegationtargets.dops.io"

    def probed() -> tuple[int, list[str]]:
        reasons = [r.getMessage() for r in caplog.records if r.name == "kopf.activities.probe"]
        return run.healthz().status_code, reasons

    eventually(
        probed,
        lambda seen: seen[0] == 500 and any(missing in reason for reason in seen[1]),
        timeout=30,
        describe="/healthz to fail because Kopf does not watch operations and targets",
    )
    eventually(lambda: rule.matched, lambda n: n >= 2, timeout=30, describe="Kopf's scan repeated")
    rescans = [r.getMessage() for r in caplog.records if "Kopf does not watch" in r.getMessage()]
    assert rescans and "scanning again" in rescans[0], rescans
    env.create(namespace, operation("unwatched", namespace).params(x=3).build())
    env.server.call(env.server.faults.clear)
    eventually(lambda: run.healthz().status_code, lambda code: code == 200, timeout=30, describe="/healthz passes")
    obj = env.wait_processed(namespace, "unwatched", timeout=60)
    assert obj["status"]["result"]["result"] == {"x": 3}
