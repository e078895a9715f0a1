"""The dops operator driven with the real kubectl, on examples/ (issue 5 acceptance), with real worker processes.

Aspects covered:
- `kubectl apply -f examples/` → every example reaches its expected terminal state (echo, count and
  sleep completed with their results; fail failed with its traceback);
- `kubectl get dops` shows STATE and PROGRESS moving (sampled while `count` runs);
- `kubectl wait --for=jsonpath='{.status.runState}'=completed dop/NAME` returns;
- an HTTP GET of status.runLink returns the pod's log text, and the file at status.logPath holds the
  same log once the pod is gone;
- cancel with `kubectl patch` (status → failed) while the worker runs: the operator stops the Job and
  records who cancelled.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tests.helpers import CLI, eventually, find_binary
from tests.integration.operator_env import (
    REPO,
    JobRecorder,
    OperatorEnv,
    condition,
    namespace,
    operator_env,
    worker_pids,
)
from tests.op_builders import operation

__all__ = ["namespace", "operator_env"]  # fixtures

pytestmark = pytest.mark.kubectl


@pytest.fixture(scope="module")
def kubectl(operator_env: OperatorEnv, tmp_path_factory: pytest.TempPathFactory) -> CLI:
    binary = find_binary("kubectl")
    if binary is None:
        pytest.skip("kubectl binary not available: run `python scripts/fetch_clients.py` (make test does)")
    return CLI(binary, operator_env.kubeconfig, tmp_path_factory.mktemp("kubectl-home"), {})


def get_table(kubectl: CLI, namespace: str) -> dict[str, tuple[str, str]]:
    """NAME → (STATE, PROGRESS) from `kubectl get dops`."""
    out = kubectl.run("get", "dops", "-n", namespace, timeout=20).stdout.splitlines()
    header = out[0].split()
    rows: dict[str, tuple[str, str]] = {}
    state_at, progress_at = header.index("STATE"), header.index("PROGRESS")
    for line in out[1:]:
        cells = line.split()
        if len(cells) >= len(header) - 1:
            # LABEL may contain spaces; STATE and PROGRESS are columns 2 and 3.
            rows[cells[0]] = (cells[state_at], cells[progress_at])
    return rows


def test_examples_reach_their_terminal_states(operator_env: OperatorEnv, namespace: str, kubectl: CLI) -> None:
    """Issue 5 acceptance: `kubectl apply -f examples/`; `kubectl get dops` shows STATE/PROGRESS moving;
    `kubectl wait` on the run state returns; every example ends as its file says."""
    with JobRecorder(operator_env, namespace) as jobs:
        applied = kubectl.run("apply", "-n", namespace, "-f", str(REPO / "examples"))
        assert "delegatedoperation.dops.io/example-count created" in applied.stdout
        seen: dict[str, set[tuple[str, str]]] = {}

        def sample() -> dict[str, tuple[str, str]]:
            table = get_table(kubectl, namespace)
            for name, cells in table.items():
                seen.setdefault(name, set()).add(cells)
            return table

        eventually(
            sample,
            lambda t: t.get("example-count", ("", ""))[0] == "completed",
            timeout=90,
            interval=0.2,
            describe="example-count completed in `kubectl get dops`",
        )
        count_cells = seen["example-count"]
        states = {s for s, _ in count_cells}
        progress = {p for s, p in count_cells if s == "running" and p not in ("<none>", "")}
        assert {"running", "completed"} <= states, count_cells
        assert len(progress) >= 2, count_cells
        waited = kubectl.run(
            "wait",
            "-n",
            namespace,
            "--for=jsonpath={.status.runState}=completed",
            "dop/example-echo",
            "--timeout=90s",
            timeout=100,
        )
        assert "condition met" in waited.stdout
        kubectl.run(
            "wait", "-n", namespace, "--for=condition=Succeeded=False", "dop/example-fail", "--timeout=90s", timeout=100
        )
        for name in ("example-echo", "example-count", "example-sleep", "example-fail"):
            operator_env.wait_processed(namespace, name, timeout=90)
        result = json.loads(kubectl.run("get", "dops", "-n", namespace, "-o", "json").stdout)
        by_name = {o["metadata"]["name"]: o["status"] for o in result["items"]}
        assert by_name["example-echo"]["result"]["result"] == {"message": "hello from dops"}
        assert by_name["example-count"]["result"]["result"] == {"count": 10}
        assert by_name["example-sleep"]["result"]["result"] == {"slept": 2}
        assert by_name["example-fail"]["runState"] == "failed"
        assert "this example fails on purpose" in by_name["example-fail"]["result"]["error"]
        assert "Traceback" in by_name["example-fail"]["result"]["error"]
        for name in by_name:
            jobs.assert_one_job_per_attempt(name)
        # The examples target's pod template reached the worker pods.
        pod = operator_env.pods_of(namespace, "example-count-1")[0]
        assert pod["metadata"]["labels"]["app.kubernetes.io/part-of"] == "dops-examples"
        assert pod["spec"]["containers"][0]["resources"]["limits"]["memory"] == "256Mi"


def test_run_link_serves_the_log_and_the_archive_keeps_it(operator_env: OperatorEnv, namespace: str) -> None:
    """Issue 5 "run_link": GET on status.runLink returns the pod's log text; status.logPath holds the same log
    after the pod is gone."""
    body = operation("logged", namespace).operator("@dops/examples/count").params(n=3, delay=0).build()
    operator_env.create(namespace, body)
    obj = operator_env.wait_processed(namespace, "logged")
    link = obj["status"]["runLink"]
    response = requests.get(link, headers={"Authorization": "Bearer dops-emulator"}, timeout=10)
    assert response.status_code == 200, response.text
    assert "count: 3/3" in response.text
    archived = Path(obj["status"]["logPath"])
    assert archived.read_text() == response.text
    assert obj["status"]["logSize"] == len(response.content)
    # Remove the Job (and its pod): the run link no longer answers, the archive still does.
    operator_env.kube.request(
        "DELETE",
        f"/apis/batch/v1/namespaces/{namespace}/jobs/logged-1",
        body={"kind": "DeleteOptions", "apiVersion": "v1", "propagationPolicy": "Background"},
    )
    eventually(
        lambda: operator_env.pods_of(namespace, "logged-1"), lambda pods: pods == [], timeout=30, describe="pod gone"
    )
    gone = requests.get(link, headers={"Authorization": "Bearer dops-emulator"}, timeout=10)
    assert gone.status_code == 404
    assert archived.read_text() == response.text
    final = operator_env.get_op(namespace, "logged")
    assert final["status"]["runState"] == "completed"  # a Job deleted after the end changes nothing


def test_kubectl_patch_cancels_a_running_operation(operator_env: OperatorEnv, namespace: str, kubectl: CLI) -> None:
    """Issue 5 "Cancel": an operation set to failed from outside with kubectl while its worker runs → the
    operator deletes the Job (the worker process stops) and records who cancelled."""
    operator_env.create(
        namespace, operation("long", namespace).operator("@dops/examples/sleep").params(seconds=120).build()
    )
    operator_env.wait_state(namespace, "long", "running")
    pids = eventually(lambda: worker_pids(f"{namespace}/long"), describe="the worker process")
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S.000000Z", time.gmtime())
    patch = {"status": {"runState": "failed", "failedAt": stamp, "result": {"errorMessage": "stopped by an admin"}}}
    kubectl.run("patch", "-n", namespace, "dop/long", "--subresource=status", "--type=merge", "-p", json.dumps(patch))
    obj = operator_env.wait_processed(namespace, "long", timeout=30)
    cancelled = condition(obj, "Succeeded")
    assert cancelled["reason"] == "Cancelled"
    # Who: the field manager the API server recorded for the status write (kubectl patch → kubectl-patch).
    assert cancelled["message"].startswith("cancelled by kubectl-patch: stopped by an admin"), cancelled["message"]
    eventually(
        lambda: [p for p in pids if Path(f"/proc/{p}").exists()],
        lambda left: not left,
        timeout=30,
        describe="worker exit",
    )
    assert obj["status"]["runState"] == "failed"


@pytest.fixture(autouse=True)
def _no_leaks(operator_env: OperatorEnv) -> Iterator[None]:
    yield
    assert operator_env.operator_running
