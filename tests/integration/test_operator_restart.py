"""The dops operator stopped and restarted mid-flight, and its liveness and metrics endpoints (issue 5 acceptance).

Real worker processes; the operator runs in-process and is stopped/started by the tests.

Aspects covered:
- restart (a) between the CAS to `scheduled` and the Job's creation (Job creation made to fail with an
  injected API fault, then the operator stopped): the new operator creates the Job once, the operation
  completes;
- restart (b) while 20 operations run (they finish while the operator is down): every one is processed
  after the restart (conditions, archived log, Job TTL), none lost, none run twice;
- restart (c) while 50 operations are queued: all complete after the restart, each with exactly one Job,
  FIFO admission resumes where it stopped;
- metrics: /metrics serves operations by state, queue depth per target, admission latency, run
  duration and reconcile errors; liveness: /healthz answers 200 while watches are fresh and 500 once
  no watch event or bookmark arrived for DOPS_WATCH_STALE_SECONDS (watch requests made to fail);
- `kopf run -m dops.handlers` runs the same operator (settings from DOPS_* variables).
"""

from __future__ import annotations

import dataclasses
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tests.helpers import eventually, free_port
from tests.integration.operator_env import (
    REPO,
    JobRecorder,
    OperatorEnv,
    condition,
    namespace,
    operator_env,
)
from tests.op_builders import delegation_target, operation

__all__ = ["namespace", "operator_env"]  # fixtures
OPS = "/apis/dops.io/v1alpha1/namespaces/{ns}/delegatedoperations"


def add_fault(env: OperatorEnv, **rule: object) -> None:
    response = requests.post(f"{env.server.url}/__emulator/faults", json=rule, timeout=5)
    assert response.status_code == 201, response.text


def clear_faults(env: OperatorEnv) -> None:
    requests.delete(f"{env.server.url}/__emulator/faults", timeout=5)


@pytest.fixture
def restartable(operator_env: OperatorEnv) -> Iterator[OperatorEnv]:
    """The module's operator; whatever a test does to it, it runs again (with the module settings) after."""
    settings = operator_env.settings
    yield operator_env
    clear_faults(operator_env)
    if operator_env.operator_running and operator_env.settings is not settings:
        operator_env.stop_operator()
    if not operator_env.operator_running:
        operator_env.start_operator(settings)


def states(env: OperatorEnv, namespace: str) -> dict[str, str]:
    items = env.kube.request("GET", OPS.format(ns=namespace))["items"]
    return {o["metadata"]["name"]: (o.get("status") or {}).get("runState") for o in items}


def test_restart_between_scheduling_and_job_creation(restartable: OperatorEnv, namespace: str) -> None:
    """Issue 5 restart (a): the operation was CAS'd to `scheduled` but its Job never got created (the API
    refused it, then the operator went away) → after the restart the Job is created once and the
    operation completes."""
    env = restartable
    add_fault(env, code=500, method="POST", path=f"^/apis/batch/v1/namespaces/{namespace}/jobs$", times=-1)
    with JobRecorder(env, namespace) as jobs:
        env.create(namespace, operation("interrupted", namespace).params(x=1).build())
        obj = env.wait_state(namespace, "interrupted", "scheduled")
        assert obj["status"]["jobName"] == "interrupted-1"
        env.stop_operator()
        assert env.jobs_of(namespace, "interrupted") == []
        clear_faults(env)
        env.start_operator()
        obj = env.wait_processed(namespace, "interrupted")
        assert obj["status"]["runState"] == "completed"
        assert obj["status"]["attempt"] == 1
        jobs.assert_one_job_per_attempt("interrupted")


def test_restart_while_twenty_operations_run(restartable: OperatorEnv, namespace: str) -> None:
    """Issue 5 restart (b): 20 operations run when the operator stops; they finish while it is down; after the
    restart every one is processed (conditions, archived log, Job TTL) and none ran twice."""
    env = restartable
    env.create(namespace, delegation_target("wide", maxConcurrent=20))
    names = [f"r{i:02d}" for i in range(20)]
    with JobRecorder(env, namespace) as jobs:
        for name in names:
            env.create(
                namespace,
                operation(name, namespace).operator("@dops/examples/sleep").target("wide").params(seconds=10).build(),
            )
        eventually(
            lambda: states(env, namespace),
            lambda s: sum(v == "running" for v in s.values()) >= 15,
            timeout=60,
            describe="at least 15 of the 20 operations running",
        )
        env.stop_operator()
        eventually(
            lambda: states(env, namespace),
            lambda s: all(v == "completed" for v in s.values()) and len(s) == 20,
            timeout=90,
            describe="all 20 completed by their workers while the operator is down",
        )
        env.start_operator()
        for name in names:
            obj = env.wait_processed(namespace, name)
            assert obj["status"]["attempt"] == 1
            assert obj["status"]["logPath"], name
            assert condition(obj, "Succeeded")["reason"] == "Completed"
        eventually(
            lambda: [j["spec"].get("ttlSecondsAfterFinished") for n in names for j in env.jobs_of(namespace, n)],
            lambda ttls: len(ttls) == 20 and all(t == env.settings.job_ttl_seconds for t in ttls),
            describe="every finished Job got its TTL",
        )
        for name in names:
            jobs.assert_one_job_per_attempt(name)


def test_restart_while_fifty_operations_are_queued(restartable: OperatorEnv, namespace: str) -> None:
    """Issue 5 restart (c): with 50 operations queued behind `maxConcurrent`, the operator stops and starts
    again: every operation completes, each with exactly one Job, none stuck or duplicated."""
    env = restartable
    env.create(namespace, delegation_target("narrow", maxConcurrent=2))
    service = env.service(namespace)
    names: list[str] = []
    with JobRecorder(env, namespace) as jobs:
        for i in range(50):
            doc = service.queue_operation(
                "@dops/examples/echo", delegation_target="narrow", context={"request_params": {"params": {"i": i}}}
            )
            assert doc.id is not None
            names.append(doc.id)
        eventually(
            lambda: states(env, namespace),
            lambda s: any(v in ("scheduled", "running", "completed") for v in s.values()),
            describe="the first admissions",
        )
        env.stop_operator()
        queued = sum(v == "queued" for v in states(env, namespace).values())
        assert queued >= 40, queued
        env.start_operator()
        env.kube.request(
            "PATCH",
            f"/apis/dops.io/v1alpha1/namespaces/{namespace}/delegationtargets/narrow",
            body={"spec": {"maxConcurrent": 10}},
            content_type="application/merge-patch+json",
        )
        eventually(
            lambda: states(env, namespace),
            lambda s: all(v == "completed" for v in s.values()),
            timeout=180,
            interval=0.5,
            describe="all 50 completed",
        )
        for i, name in enumerate(names):
            obj = env.get_op(namespace, name)
            assert obj["status"]["result"]["result"] == {"i": i}
            assert obj["status"]["attempt"] == 1
            jobs.assert_one_job_per_attempt(name)
        # FIFO: operations were admitted in the order they were queued (scheduledAt follows queuedAt).
        order = sorted(names, key=lambda n: env.get_op(namespace, n)["status"]["scheduledAt"])
        assert order[:2] == names[:2]


def test_metrics_and_liveness(restartable: OperatorEnv, namespace: str) -> None:
    """Issue 5 "Kopf settings": Prometheus metrics (operations by state, queue depth per target, admission
    latency, run duration, reconcile errors) and a liveness probe that fails when the watch is stale."""
    env = restartable
    metrics_port, health_port = free_port(), free_port()
    env.stop_operator()
    env.start_operator(
        dataclasses.replace(
            env.settings,
            metrics_port=metrics_port,
            health_port=health_port,
            bind_address="127.0.0.1",
            watch_stale_seconds=2,
        )
    )
    env.create(namespace, operation("measured", namespace).params(x=1).build())
    env.wait_processed(namespace, "measured")
    text = eventually(
        lambda: requests.get(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5).text,
        lambda t: "dops_run_duration_seconds_count" in t and 'dops_operations{state="completed"}' in t,
        describe="metrics",
    )
    for name in (
        "dops_operations{",
        "dops_admission_latency_seconds_count",
        "dops_run_duration_seconds_bucket",
        "dops_reconciles_total",
        "dops_api_writes_total{",
    ):
        assert name in text, name
    assert "# HELP dops_queue_depth" in text and "# HELP dops_reconcile_errors_total" in text
    healthz = f"http://127.0.0.1:{health_port}/healthz"
    healthy = eventually(lambda: requests.get(healthz, timeout=5), lambda r: r.status_code == 200, describe="healthy")
    assert "watch_age_seconds" in healthy.json()
    # Every watch (re)connection on operations now fails: no bookmark arrives any more → liveness fails.
    add_fault(env, code=500, method="GET", path="^/apis/dops.io/v1alpha1/delegatedoperations$", times=-1)
    eventually(
        lambda: requests.get(healthz, timeout=5).status_code, lambda code: code == 500, timeout=30, describe="unhealthy"
    )
    clear_faults(env)
    eventually(
        lambda: requests.get(healthz, timeout=5).status_code,
        lambda code: code == 200,
        timeout=30,
        describe="healthy again",
    )


def test_kopf_run_module(restartable: OperatorEnv, namespace: str, tmp_path: Path) -> None:
    """Issue 5: the operator also runs as `kopf run -m dops.handlers` (settings from DOPS_* variables)."""
    env = restartable
    env.stop_operator()
    variables = {
        **os.environ,
        "KUBECONFIG": str(env.kubeconfig),
        "PYTHONPATH": str(REPO / "operator"),
        "DOPS_LOG_ARCHIVE": str(tmp_path / "archive"),
        "DOPS_METRICS_PORT": "0",
        "DOPS_HEALTH_PORT": "0",
        "DOPS_WORKER_SERVICE_ACCOUNT": "",
        "DOPS_WATCH_NAMESPACES": namespace,
    }
    log = (tmp_path / "kopf.log").open("w")
    process = subprocess.Popen(
        [sys.executable, "-m", "kopf", "run", "--standalone", "-n", namespace, "-m", "dops.handlers"],
        env=variables,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        env.create(namespace, operation("via-kopf", namespace).params(x=1).build())
        obj = env.wait_processed(namespace, "via-kopf", timeout=60)
        assert obj["status"]["result"]["result"] == {"x": 1}
        assert obj["status"]["logPath"].startswith(str(tmp_path / "archive"))
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            assert process.wait(30) == 0
        finally:
            if process.poll() is None:
                process.kill()
            log.close()
    output = (tmp_path / "kopf.log").read_text()
    assert "Traceback" not in output, output
