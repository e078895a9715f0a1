"""Issue 11 item 1: a start-up listing that fails is retried until it succeeds, never skipped.

The operator lists targets, Jobs, pods and operations before it admits anything. Before the fix, one
failed request in that listing made Kopf retry the startup handler, which saw the runtime already
marked started and returned: the operator ran, its probes were green, and it never admitted anything.

Each test stops the module's operator, injects one fault on a listing request through the embedded
control plane's fault hooks, starts the operator again and asserts that an operation applied afterwards
is admitted and finished, and that the fault was really hit:
- one 500 on `GET /api/v1/pods` (the issue's reproduction);
- its twin on the operations listing (`GET .../delegatedoperations`);
- a 410 Expired on the Jobs listing (what an expired `continue` token answers: the listing restarts);
- a listing that fails on every attempt: retried (Kopf never reports the operator started), and the
  operator still stops cleanly when asked;
- issue 15: the start-up listing asks only for the unfinished operations (a field selector; the 500 above is
  that request), and the finished ones reach the cache through Kopf's own listing after it: a finished
  operation's retention still happens after a restart.
"""

from __future__ import annotations

import dataclasses
import logging
import socket
from collections.abc import Iterator

import pytest

from dops.emulator.faults import FaultRule
from dops.reconcile.gateway import UNFINISHED_SELECTOR
from tests.helpers import eventually
from tests.integration.operator_env import OperatorEnv, namespace, operator_env, operator_thread
from tests.op_builders import operation

__all__ = ["namespace", "operator_env"]  # fixtures


@pytest.fixture
def restartable(operator_env: OperatorEnv) -> Iterator[OperatorEnv]:
    """The module's operator; whatever a test does to it, it runs again (without faults) after."""
    yield operator_env
    operator_env.server.call(operator_env.server.faults.clear)
    if not operator_env.operator_running:
        operator_env.start_operator()


@pytest.mark.parametrize(
    ("code", "path"),
    [
        (500, "^/api/v1/pods$"),
        (500, "^/apis/dops.io/v1alpha1/delegatedoperations$"),
        (410, "^/apis/batch/v1/jobs$"),
    ],
    ids=["pods-500", "operations-500", "jobs-410-expired"],
)
def test_a_failed_start_up_listing_is_retried(
    restartable: OperatorEnv, namespace: str, code: int, path: str, caplog: pytest.LogCaptureFixture
) -> None:
    env = restartable
    env.stop_operator()
    caplog.set_level(logging.WARNING, logger="dops.operator")
    rule: FaultRule = env.server.call(lambda: env.server.faults.add(code, "GET", path, times=1))
    env.start_operator()
    assert rule.matched == 1, f"the fault on GET {path} was never hit: {rule.describe()}"
    env.create(namespace, operation("after-fault", namespace).params(x=1).build())
    obj = env.wait_processed(namespace, "after-fault", timeout=60)
    assert obj["status"]["runState"] == "completed"
    assert obj["status"]["result"]["result"] == {"x": 1}
    # One WARNING per failure, saying it retries.
    failures = [r.getMessage() for r in caplog.records if "start-up listing failed" in r.getMessage()]
    assert len(failures) == 1 and "(attempt 1)" in failures[0] and "retrying in" in failures[0], failures


def test_stopping_while_the_start_up_listing_fails(restartable: OperatorEnv) -> None:
    """The listing fails on every attempt (500 on `GET /api/v1/pods`): the operator keeps retrying (never
    reports started) and still stops cleanly when asked, releasing its metrics port."""
    env = restartable
    env.stop_operator()
    rule: FaultRule = env.server.call(lambda: env.server.faults.add(500, "GET", "^/api/v1/pods$", times=-1))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    settings = dataclasses.replace(env.settings, metrics_port=port, bind_address="127.0.0.1")
    run = operator_thread(settings, env.kubeconfig, "dops-operator-failing-start", ready_on_error=False)
    eventually(lambda: rule.matched, lambda n: n >= 3, timeout=30, describe="the listing retried twice")
    assert not run.ready.is_set(), "Kopf reported the operator started although its listing never succeeded"
    assert run.stop(), "the operator did not stop within 60 s"
    assert not run.errors, run.errors
    with socket.socket() as s:  # the metrics server is gone: the port can be bound again
        s.bind(("127.0.0.1", port))


def test_a_restart_lists_the_unfinished_operations_and_leaves_the_finished_to_kopf(
    restartable: OperatorEnv, namespace: str
) -> None:
    env = restartable
    env.create(namespace, operation("done-before", namespace).params(x=1).spec(ttlSecondsAfterFinished=10).build())
    env.wait_processed(namespace, "done-before", timeout=60)
    env.stop_operator()
    env.create(namespace, operation("queued-after", namespace).params(x=2).build())
    env.server.http.access_log = []
    try:
        env.start_operator()
        obj = env.wait_processed(namespace, "queued-after", timeout=60)
        # Retention needs the finished operation in the cache: only Kopf's listing can have brought it there.
        listing = f"/apis/dops.io/v1alpha1/namespaces/{namespace}/delegatedoperations"
        eventually(
            lambda: [o["metadata"]["name"] for o in env.kube.request("GET", listing)["items"]],
            lambda names: "done-before" not in names,
            timeout=60,
            describe="the finished operation deleted after its ttlSecondsAfterFinished",
        )
    finally:
        log, env.server.http.access_log = list(env.server.http.access_log or []), None
    assert obj["status"]["runState"] == "completed"
    listings = [
        r
        for r in log
        if r.method == "GET"
        and r.path == "/apis/dops.io/v1alpha1/delegatedoperations"
        and r.query.get("watch") not in ("true", "1")
    ]
    ours = [r for r in listings if r.user_agent.startswith("dops-operator")]
    kopf = [r for r in listings if r.user_agent.startswith("kopf")]
    seen = [(r.user_agent, r.query) for r in listings]
    assert ours and ours[0].query.get("fieldSelector") == UNFINISHED_SELECTOR, seen  # the start-up listing
    assert kopf and not kopf[0].query.get("fieldSelector"), seen  # Kopf's own listing: every operation ...
    assert listings.index(kopf[0]) > listings.index(ours[0]), seen  # ... after the start-up listing
