"""`dops worker run NS/NAME` (dops.worker.run_operation) against the embedded API server with the dops CRDs.

The worker is run in-process and as a real process (`python -m dops worker run`, the Job container's
command, and `python -m dops.worker run`); operations are queued through DelegatedOperationService and
moved to `scheduled` as the operator's scheduler would.

Aspects covered (issue 5 "Worker" and "Bad input"; fiftyone-semantics.md §2.2, §4):
- claim: CAS scheduled → running sets startedAt, podName ($DOPS_POD_NAME) and runLink ($DOPS_RUN_LINK);
  two workers racing for one operation → exactly one runs it; cancelled (failed) / completed / queued /
  running-elsewhere operations are not run (exit 0, reason logged, termination message); `--from-queued`;
  an operation already running for this pod runs; a Job retry pod takes over from a gone pod (CAS on podName).
- run + record: completed with the result; progress written while running (≥ 3 distinct values for
  count, throttled); failed with the traceback and a one-line errorMessage; pipelines record pipelineRunInfo.
- bad input: unknown operator → failed listing the known operators; invalid params → validation message;
  10 MiB result → failed with the size error and a small status; `py:` URIs refused unless the
  DelegationTarget allows import paths.
- exit codes 0/2/3 (1 is left to crashes), the termination message (JSON ≤ 4096 bytes), SIGTERM → exit 143
  without a state write.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from dops import DelegatedOperationService, Pipeline, PipelineStage
from dops.api.types import ExecutionResult
from dops.emulator import EmbeddedServer
from dops.execution import registry as registry_module
from dops.k8s import DelegatedOperationRepository, KubeClient
from dops.worker import run_operation
from dops.worker.run import EXIT_FAILED
from tests.builders import pod
from tests.helpers import eventually, install_another_operator
from tests.op_builders import delegation_target
from tests.processes import Background

REPO = Path(__file__).resolve().parent.parent.parent


# ------------------------------------------------------------------------------------------- helpers


@pytest.fixture
def termination_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "termination-log"
    monkeypatch.setenv("DOPS_TERMINATION_MESSAGE_PATH", str(path))
    return path


@pytest.fixture
def kubeconfig(dops_server: EmbeddedServer) -> str:
    return str(dops_server.kubeconfig)  # type: ignore[attr-defined]


def scheduled(service: DelegatedOperationService, operator: str, params: Any = None, **kwargs: Any) -> str:
    """Queue an operation and admit it (queued → scheduled), as the operator's scheduler does."""
    doc = service.queue_operation(operator, context={"request_params": {"params": params or {}}}, **kwargs)
    assert service.set_scheduled(doc.id, required_state="queued") is not None
    return f"{service.namespace}/{doc.id}"


def status(repo: DelegatedOperationRepository, ref: str) -> dict[str, Any]:
    ns, name = ref.split("/")
    return repo.get(ns, name).get("status") or {}


def worker_env(kubeconfig: str, tmp_path: Path, pod: str | None = None, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DOPS_")}
    env.update(
        {
            "KUBECONFIG": kubeconfig,
            "PYTHONPATH": str(REPO),
            "DOPS_TERMINATION_MESSAGE_PATH": str(tmp_path / f"termination-{pod or 'x'}"),
        }
    )
    if pod:
        env["DOPS_POD_NAME"] = pod
    env.update(extra)
    return env


def make_pod(kube: KubeClient, namespace: str, name: str, phase: str | None = None) -> None:
    """A worker pod object (no kubelet here: it only exists, in `phase` when given)."""
    kube.request("POST", f"/api/v1/namespaces/{namespace}/pods", body=pod(name, namespace))
    if phase:
        path = f"/api/v1/namespaces/{namespace}/pods/{name}/status"
        kube.request("PATCH", path, body={"status": {"phase": phase}}, content_type="application/merge-patch+json")


def termination(path: Path) -> dict[str, Any]:
    data = path.read_bytes()
    assert len(data) <= 4096
    decoded: dict[str, Any] = json.loads(data)
    return decoded


# ------------------------------------------------------------------------------------------- claim + run


def test_echo_claims_runs_and_records(
    service: DelegatedOperationService,
    repo: DelegatedOperationRepository,
    kubeconfig: str,
    termination_file: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Claim sets startedAt/podName/runLink; completed with the params as result; exit 0; termination message."""
    monkeypatch.setenv("DOPS_POD_NAME", "example-echo-pod")
    monkeypatch.setenv("DOPS_RUN_LINK", "https://logs.example.com/ns/example-echo-pod")
    ref = scheduled(service, "@dops/examples/echo", {"message": "hello"})
    assert run_operation(ref, kubeconfig=kubeconfig) == 0
    st = status(repo, ref)
    assert st["runState"] == "completed"
    assert st["result"]["result"] == {"message": "hello"}
    assert st["podName"] == "example-echo-pod"
    assert st["runLink"] == "https://logs.example.com/ns/example-echo-pod"
    assert st["startedAt"] <= st["completedAt"] and "failedAt" not in st
    doc = service.get(ref)
    assert doc.result is not None and doc.result.result == {"message": "hello"}
    assert termination(termination_file) == {"operation": ref, "runState": "completed", "message": "completed"}


def test_count_as_the_container_command_reports_progress(
    service: DelegatedOperationService, repo: DelegatedOperationRepository, kubeconfig: str, tmp_path: Path
) -> None:
    """`python -m dops worker run NS/NAME`: ≥ 3 distinct progress values observed while running, final 1.0."""
    ref = scheduled(service, "@dops/examples/count", {"n": 10, "delay": 0.2})
    env = worker_env(kubeconfig, tmp_path, pod="count-pod")
    process = subprocess.Popen(
        [sys.executable, "-m", "dops", "worker", "run", ref], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    seen: list[float] = []

    def progress_done() -> bool:
        value = (status(repo, ref).get("progress") or {}).get("progress")
        if value is not None and (not seen or seen[-1] != value):
            seen.append(value)
        return process.poll() is not None

    eventually(progress_done, timeout=30, interval=0.02, describe="the worker process to exit")
    output = process.stdout.read().decode() if process.stdout else ""
    assert process.returncode == 0, output
    st = status(repo, ref)
    assert st["runState"] == "completed" and st["result"]["result"] == {"count": 10}
    assert st["progress"] == {"progress": 1.0, "label": "10/10", "updatedAt": st["progress"]["updatedAt"]}
    assert len(set(seen)) >= 3, f"progress values seen: {seen}"
    assert seen == sorted(seen)
    assert "count: 10/10" in output and "completed" in output


def test_failure_records_traceback_and_exits_3(
    service: DelegatedOperationService, repo: DelegatedOperationRepository, kubeconfig: str, tmp_path: Path
) -> None:
    """`python -m dops.worker run`: the operator raises → failed with the traceback; exit 3 (not 1, a crash);
    termination message."""
    ref = scheduled(service, "@dops/examples/fail", {"message": "it broke on purpose"})
    env = worker_env(kubeconfig, tmp_path, pod="fail-pod")
    done = subprocess.run(
        [sys.executable, "-m", "dops.worker", "run", ref], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == EXIT_FAILED == 3, done.stdout + done.stderr
    st = status(repo, ref)
    assert st["runState"] == "failed" and "failedAt" in st
    assert st["result"]["error"].startswith("Traceback (most recent call last)")
    assert "dops.execution.examples.ExampleFailure: it broke on purpose" in st["result"]["error"]
    assert st["result"]["errorMessage"] == "ExampleFailure: it broke on purpose"
    assert termination(tmp_path / "termination-fail-pod") == {
        "operation": ref,
        "runState": "failed",
        "message": "ExampleFailure: it broke on purpose",
    }
    assert "ExampleFailure: it broke on purpose" in done.stdout


def test_two_workers_race_exactly_one_runs(
    service: DelegatedOperationService,
    repo: DelegatedOperationRepository,
    kube: KubeClient,
    kubeconfig: str,
    tmp_path: Path,
) -> None:
    """Claim is a CAS: of two workers (pods) started together, exactly one runs the operation; both exit 0."""
    ref = scheduled(service, "@dops/examples/sleep", {"seconds": 0.5})
    for name in ("racer-a", "racer-b"):
        make_pod(kube, service.namespace, name)
    processes = {
        pod: subprocess.Popen(
            [sys.executable, "-m", "dops.worker", "run", ref],
            env=worker_env(kubeconfig, tmp_path, pod=pod),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        for pod in ("racer-a", "racer-b")
    }
    outputs = {pod: p.communicate(timeout=60)[0].decode() for pod, p in processes.items()}
    assert all(p.returncode == 0 for p in processes.values()), outputs
    messages = {pod: termination(tmp_path / f"termination-{pod}") for pod in processes}
    ran = [pod for pod, m in messages.items() if m.get("runState") == "completed"]
    skipped = [pod for pod, m in messages.items() if m.get("claimed") is False]
    assert len(ran) == 1 and len(skipped) == 1, messages
    assert "already running (pod " + ran[0] in messages[skipped[0]]["message"]
    st = status(repo, ref)
    assert st["runState"] == "completed" and st["podName"] == ran[0]
    assert sum("running operation" in out for out in outputs.values()) == 1


def test_cancelled_before_claim_is_not_run(
    service: DelegatedOperationService, repo: DelegatedOperationRepository, kubeconfig: str, termination_file: Path
) -> None:
    """An operation failed (cancelled) while scheduled: the worker exits 0 without running or writing it."""
    ref = scheduled(service, "@dops/examples/echo", {"x": 1})
    service.set_failed(ref, result=ExecutionResult(error="cancelled by test", error_message="cancelled by test"))
    before = status(repo, ref)
    assert run_operation(ref, kubeconfig=kubeconfig) == 0
    after = status(repo, ref)
    assert after == before and "startedAt" not in after
    message = termination(termination_file)
    assert (
        message["claimed"] is False and "cancelled" in message["message"] and "cancelled by test" in message["message"]
    )


@pytest.mark.parametrize(
    ("setup", "reason"),
    [
        ("completed", "already completed"),
        ("queued", "is queued, not scheduled"),
        ("running-elsewhere", "already running (pod other-pod)"),
        ("running-no-pod", "already running (another executor)"),
    ],
)
def test_not_runnable_states_exit_0_without_running(
    setup: str,
    reason: str,
    service: DelegatedOperationService,
    repo: DelegatedOperationRepository,
    kube: KubeClient,
    kubeconfig: str,
    termination_file: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Not scheduled → not run; a running operation is never taken over while its pod still exists."""
    monkeypatch.delenv("DOPS_POD_NAME", raising=False)
    ref = scheduled(service, "@dops/examples/echo", {"x": 1})
    if setup == "completed":
        service.set_completed(ref, result={"done": 1})
    elif setup == "queued":
        service.set_queued(ref)
    elif setup == "running-elsewhere":
        make_pod(kube, service.namespace, "other-pod", phase="Running")
        service.set_running(ref, pod_name="other-pod")
        monkeypatch.setenv("DOPS_POD_NAME", "this-pod")
    else:
        service.set_running(ref)
    before = status(repo, ref)
    assert run_operation(ref, kubeconfig=kubeconfig) == 0
    assert status(repo, ref) == before
    assert reason in termination(termination_file)["message"]


def test_from_queued_runs_without_the_operator(
    service: DelegatedOperationService, repo: DelegatedOperationRepository, kubeconfig: str, termination_file: Path
) -> None:
    doc = service.queue_operation("@dops/examples/echo", context={"request_params": {"params": {"q": 1}}})
    ref = f"{service.namespace}/{doc.id}"
    assert run_operation(doc.id, namespace=service.namespace, from_queued=True, kubeconfig=kubeconfig) == 0
    assert status(repo, ref)["result"]["result"] == {"q": 1}


def test_running_for_this_pod_runs_and_retry_pod_takes_over(
    service: DelegatedOperationService,
    repo: DelegatedOperationRepository,
    kube: KubeClient,
    kubeconfig: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Already running for this pod (operator fallback claim) → runs; running under an earlier pod of the Job
    that has failed (retry after a crash) → a CAS on podName takes it over."""
    monkeypatch.setenv("DOPS_POD_NAME", "job-x-pod-2")
    mine = scheduled(service, "@dops/examples/echo", {"m": 1})
    service.set_running(mine, pod_name="job-x-pod-2")
    assert run_operation(mine, kubeconfig=kubeconfig) == 0
    assert status(repo, mine)["runState"] == "completed"

    retried = scheduled(service, "@dops/examples/echo", {"r": 1})
    make_pod(kube, service.namespace, "job-x-pod-1", phase="Failed")
    service.set_running(retried, pod_name="job-x-pod-1", run_link="old-link")
    started_before = status(repo, retried)["startedAt"]
    assert run_operation(retried, kubeconfig=kubeconfig) == 0
    st = status(repo, retried)
    assert st["runState"] == "completed" and st["podName"] == "job-x-pod-2"
    assert st["startedAt"] > started_before and st["result"]["result"] == {"r": 1}


# ------------------------------------------------------------------------------------------- bad input


BUILTINS = {"@dops/examples/count", "@dops/examples/echo", "@dops/examples/fail", "@dops/examples/sleep"}


def listed_operators(message: str, uri: str) -> set[str]:
    """The operators an "operator not found: URI; known operators: a, b" message names."""
    prefix = f"operator not found: {uri}; known operators: "
    assert message.startswith(prefix), message
    return {name.strip() for name in message[len(prefix) :].splitlines()[0].split(",")}


@pytest.fixture
def another_operator_installed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A user's operator package installed next to dops (README "Writing your own operator"), for this test."""
    uri = install_another_operator(tmp_path / "site")
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    monkeypatch.setattr(registry_module, "_default", None)  # rediscover the entry points, restored afterwards
    return uri


def test_unknown_operator_fails_with_known_operators(
    service: DelegatedOperationService,
    repo: DelegatedOperationRepository,
    kubeconfig: str,
    termination_file: Path,
    another_operator_installed: str,
) -> None:
    """The failure lists the known operators: the built-in ones and whatever else is installed (issue 14 #9: an
    exact list failed as soon as a user installed an operator package of their own in the same environment)."""
    uri = "@acme/plugin/does-not-exist"
    ref = scheduled(service, uri)
    assert run_operation(ref, kubeconfig=kubeconfig) == EXIT_FAILED
    st = status(repo, ref)
    assert st["runState"] == "failed"
    for message in (st["result"]["error"], st["result"]["errorMessage"], termination(termination_file)["message"]):
        listed = listed_operators(message, uri)
        assert listed >= BUILTINS, message
        assert another_operator_installed in listed, message


def test_invalid_params_fail_with_validation_message(
    service: DelegatedOperationService, repo: DelegatedOperationRepository, kubeconfig: str, termination_file: Path
) -> None:
    ref = scheduled(service, "@dops/examples/count", {"n": "many", "delay": 0})
    assert run_operation(ref, kubeconfig=kubeconfig) == EXIT_FAILED
    st = status(repo, ref)
    assert st["runState"] == "failed"
    assert st["result"]["errorMessage"] == (
        "invalid params for @dops/examples/count: Validation error. Path: n. Reason: must be an integer, got 'many'"
    )


def _target(kube: KubeClient, namespace: str, name: str, **spec: Any) -> None:
    kube.request(
        "POST",
        f"/apis/dops.io/v1alpha1/namespaces/{namespace}/delegationtargets",
        body=delegation_target(name, namespace, **spec),
    )


def test_oversized_result_fails_with_size_error(
    service: DelegatedOperationService,
    repo: DelegatedOperationRepository,
    kube: KubeClient,
    namespace: str,
    kubeconfig: str,
    termination_file: Path,
) -> None:
    """A 10 MiB result → failed with a clear size error; the stored object stays small."""
    _target(kube, namespace, "dev", mode="job", allowImportPaths=True)
    ref = scheduled(service, "py:tests.worker_ops:huge_result", delegation_target="dev")
    assert run_operation(ref, kubeconfig=kubeconfig) == EXIT_FAILED
    ns, name = ref.split("/")
    obj = repo.get(ns, name)
    st = obj["status"]
    assert st["runState"] == "failed"
    assert st["result"]["error"].startswith("result is too large: 10485762 bytes of JSON, the limit is 65536 bytes")
    assert "result" not in st["result"] or st["result"]["result"] is None
    assert len(json.dumps(obj)) < 16 * 1024
    assert "result is too large" in termination(termination_file)["message"]


def test_import_paths_refused_unless_the_target_allows_them(
    service: DelegatedOperationService,
    repo: DelegatedOperationRepository,
    kube: KubeClient,
    namespace: str,
    kubeconfig: str,
) -> None:
    _target(kube, namespace, "locked", mode="job")
    ref = scheduled(service, "py:tests.worker_ops:sleep_then_echo", delegation_target="locked")
    assert run_operation(ref, kubeconfig=kubeconfig) == EXIT_FAILED
    error = status(repo, ref)["result"]["error"]
    assert error.startswith("operator not found: py:tests.worker_ops:sleep_then_echo (py: import paths are not allowed")
    assert "allowImportPaths: true" in error


def test_pipeline_runs_stages_and_records_run_info(
    service: DelegatedOperationService, repo: DelegatedOperationRepository, kubeconfig: str
) -> None:
    """spec.pipeline: first error wins, alwaysRun stages still run, pipelineRunInfo ends inactive at the last stage."""
    pipeline = Pipeline(
        [
            PipelineStage("@dops/examples/echo", params={"a": 1}),
            PipelineStage("@dops/examples/fail", params={"message": "stage two broke"}),
            PipelineStage("@dops/examples/echo", params={"skipped": True}),
            PipelineStage("@dops/examples/count", params={"n": 2, "delay": 0}, always_run=True),
        ]
    )
    ref = scheduled(service, "@dops/pipelines/demo", pipeline=pipeline)
    assert run_operation(ref, kubeconfig=kubeconfig) == EXIT_FAILED
    st = status(repo, ref)
    assert st["runState"] == "failed"
    assert st["result"]["errorMessage"] == "Failed to execute pipeline stage[1]: ExampleFailure: stage two broke"
    assert "ExampleFailure: stage two broke" in st["result"]["error"]
    assert st["pipelineRunInfo"] == {"active": False, "stageIndex": 3}
    assert st["progress"]["label"] == "2/2", "the alwaysRun count stage ran"


# ------------------------------------------------------------------------------------------- usage, signals


def test_usage_errors_exit_2(kubeconfig: str, termination_file: Path, tmp_path: Path) -> None:
    assert run_operation("a/b/c", kubeconfig=kubeconfig) == 2
    assert "invalid operation reference" in termination(termination_file)["message"]
    assert run_operation("ns/op", kubeconfig=str(tmp_path / "missing-kubeconfig")) == 2
    assert "does not exist" in termination(termination_file)["message"]
    assert run_operation("ns/op", claimed=True, from_queued=True, kubeconfig=kubeconfig) == 2


def test_missing_operation_exits_2(service: DelegatedOperationService, kubeconfig: str, termination_file: Path) -> None:
    assert run_operation(f"{service.namespace}/dop-does-not-exist", kubeconfig=kubeconfig) == 2
    assert "not found" in termination(termination_file)["message"]


def test_sigterm_exits_143_and_leaves_the_state_to_the_supervisor(
    service: DelegatedOperationService, repo: DelegatedOperationRepository, kubeconfig: str, tmp_path: Path
) -> None:
    """SIGTERM (Job deleted / pod evicted / deadline): exit 143 promptly, termination message, state untouched."""
    ref = scheduled(service, "@dops/examples/sleep", {"seconds": 60})
    worker = Background(
        [sys.executable, "-m", "dops.worker", "run", ref], tmp_path, worker_env(kubeconfig, tmp_path, pod="term-pod")
    )
    try:
        # The operation's own first line: the worker has claimed it and runs it. (`runState: running` in the API
        # alone comes a moment earlier, while the worker is still finishing its claim and not yet running it.)
        worker.wait_for_line("sleep: 60", timeout=60)
        assert status(repo, ref)["runState"] == "running"
        worker.proc.send_signal(signal.SIGTERM)
        worker.wait_for_line("terminated by SIGTERM", timeout=60)
        assert worker.proc.wait(60) == 143, worker.output
        assert status(repo, ref)["runState"] == "running"
        message = termination(tmp_path / "termination-term-pod")
        assert message["signal"] == "SIGTERM" and message["runState"] == "running"
    finally:
        worker.close()
