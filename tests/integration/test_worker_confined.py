"""issue 13 holes 2 and 3, the worker's half: a Job's worker decides nothing from reads its role no longer grants.

- A Job retry pod takes over from an earlier pod of its own Job by name (`dops.domain.jobs.is_pod_of_job`; the
  Job's `podReplacementPolicy: Failed` guarantees the earlier pod failed) without reading any Pod; a pod of
  another Job is never taken over from.
- `allowImportPaths` comes from the Job's env (`$DOPS_ALLOW_IMPORT_PATHS`, set by the operator at admission),
  never from the DelegationTarget read again: a target edited after admission changes nothing for the Job.

The embedded server's access log shows which requests the worker made.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from dops import DelegatedOperationService
from dops.emulator import EmbeddedServer
from dops.k8s import DelegatedOperationRepository, KubeClient
from dops.worker import run_operation
from dops.worker.run import EXIT_FAILED
from tests.op_builders import delegation_target

JOB = "op-1"


@pytest.fixture
def kubeconfig(dops_server: EmbeddedServer) -> str:
    return str(dops_server.kubeconfig)  # type: ignore[attr-defined]


@pytest.fixture(autouse=True)
def termination_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "termination-log"
    monkeypatch.setenv("DOPS_TERMINATION_MESSAGE_PATH", str(path))
    return path


@contextmanager
def requests_made(server: EmbeddedServer) -> Iterator[list[Any]]:
    log: list[Any] = []
    server.http.access_log = log
    try:
        yield log
    finally:
        server.http.access_log = None


def admitted(service: DelegatedOperationService, repo: DelegatedOperationRepository, operator: str, **kw: Any) -> str:
    """Queued, then scheduled as the operator admits it: Job JOB, attempt 1."""
    doc = service.queue_operation(operator, **kw)
    assert service.set_scheduled(str(doc.id), required_state="queued") is not None
    repo.patch_status(service.namespace, str(doc.id), {"status": {"jobName": JOB, "attempt": 1}})
    return f"{service.namespace}/{doc.id}"


def job_env(monkeypatch: pytest.MonkeyPatch, pod: str, allow_import_paths: str | None = None) -> None:
    monkeypatch.setenv("DOPS_POD_NAME", pod)
    monkeypatch.setenv("DOPS_JOB_NAME", JOB)
    monkeypatch.setenv("DOPS_ATTEMPT", "1")
    if allow_import_paths is None:
        monkeypatch.delenv("DOPS_ALLOW_IMPORT_PATHS", raising=False)
    else:
        monkeypatch.setenv("DOPS_ALLOW_IMPORT_PATHS", allow_import_paths)


def test_retry_pod_takes_over_from_its_jobs_earlier_pod_without_reading_pods(
    dops_server: EmbeddedServer,
    service: DelegatedOperationService,
    repo: DelegatedOperationRepository,
    kubeconfig: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ref = admitted(service, repo, "@dops/examples/echo", context={"request_params": {"params": {"r": 1}}})
    service.set_running(ref.split("/")[1], pod_name=f"{JOB}-aaaaa")  # the first pod claimed it, then crashed
    job_env(monkeypatch, f"{JOB}-bbbbb")
    with requests_made(dops_server) as log:
        assert run_operation(ref, kubeconfig=kubeconfig) == 0
    status = repo.get(*ref.split("/"))["status"]
    assert status["runState"] == "completed" and status["podName"] == f"{JOB}-bbbbb"
    assert not [r for r in log if "/pods" in r.path], [f"{r.method} {r.path}" for r in log]
    # and it wrote only the status: the run-state mirror label is the operator's to write
    assert not [r for r in log if r.method != "GET" and not r.path.split("?")[0].endswith("/status")]


def test_a_pod_of_another_job_is_not_taken_over_from(
    service: DelegatedOperationService,
    repo: DelegatedOperationRepository,
    kubeconfig: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ref = admitted(service, repo, "@dops/examples/echo")
    service.set_running(ref.split("/")[1], pod_name=f"{JOB}-1-aaaaa")  # op-1-1's pod (another operation's Job)
    job_env(monkeypatch, f"{JOB}-bbbbb")
    assert run_operation(ref, kubeconfig=kubeconfig) == 0  # not claimable: exit 0 without running
    status = repo.get(*ref.split("/"))["status"]
    assert status["runState"] == "running" and status["podName"] == f"{JOB}-1-aaaaa"


@pytest.mark.parametrize(("target_allows", "job_allows", "runs"), [(True, "false", False), (False, "true", True)])
def test_import_paths_come_from_the_job_not_the_target_read_again(
    dops_server: EmbeddedServer,
    service: DelegatedOperationService,
    repo: DelegatedOperationRepository,
    kube: KubeClient,
    namespace: str,
    kubeconfig: str,
    monkeypatch: pytest.MonkeyPatch,
    target_allows: bool,
    job_allows: str,
    runs: bool,
) -> None:
    """The target says one thing now (edited after admission), the Job what the operator decided: the Job wins,
    and the worker never reads the target."""
    kube.request(
        "POST",
        f"/apis/dops.io/v1alpha1/namespaces/{namespace}/delegationtargets",
        body=delegation_target("t", namespace, mode="job", allowImportPaths=target_allows),
    )
    ref = admitted(service, repo, "py:tests.worker_ops:sleep_then_echo", delegation_target="t")
    job_env(monkeypatch, f"{JOB}-aaaaa", allow_import_paths=job_allows)
    with requests_made(dops_server) as log:
        code = run_operation(ref, kubeconfig=kubeconfig)
    status = repo.get(*ref.split("/"))["status"]
    if runs:
        assert code == 0 and status["runState"] == "completed", status
    else:
        assert code == EXIT_FAILED and "py: import paths are not allowed" in status["result"]["error"]
    assert not [r for r in log if "delegationtargets" in r.path]
