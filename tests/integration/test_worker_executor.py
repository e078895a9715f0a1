"""The local executor: `DelegatedOperationService.execute_queued_operations` / `execute_operation` (sync and
monitored) and the external launcher `dops worker launch`, on the embedded API server with the dops CRDs.

Aspects covered (fiftyone-semantics.md §4.1–4.6 and §7; issue 5 "Local executor"):
- sync mode: queued ops run newest first, one result per op, docs completed with timestamps (§7 #16);
  an op that is not queued any more is not executed (None, state untouched, §7 #20); a failing operator →
  failed with the traceback (§7 #21); a state changed externally during the run is kept and reported (§4.3).
- monitor mode: the child (`python -m dops.worker run NS/NAME --claimed`) runs the op, the parent pings
  `updatedAt` and returns the stored result; `monitored: true`; external `failed` while running → the child's
  process tree (including a grandchild) is stopped within the grace period, "Operation marked as FAILED
  externally"; the op deleted while running → "Error in monitoring loop" and the tree stopped; a crashed child
  (exit code, SIGKILL) → the op ends `failed` with "Operation ended without terminal state" (FiftyOne leaves it
  running: fixed).
- launcher: serves only `mode: external` targets, oldest first, leaves job-mode and default-target ops alone;
  `--once`/`--limit`; refuses job-mode and unknown targets (exit 2).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from dops import DelegatedOperationService, ExecutionResult
from dops.api.types import DelegatedOperationDocument
from dops.emulator import EmbeddedServer
from dops.k8s import DelegatedOperationRepository, KubeClient
from dops.worker import launch
from tests.helpers import eventually
from tests.op_builders import delegation_target

REPO = Path(__file__).resolve().parent.parent.parent


@pytest.fixture(autouse=True)
def importable_test_operators(monkeypatch: pytest.MonkeyPatch) -> None:
    """Children of monitored executions import `py:tests.worker_ops:*` operators."""
    monkeypatch.setenv("DOPS_ALLOW_IMPORT_PATHS", "true")
    monkeypatch.setenv("PYTHONPATH", str(REPO))
    monkeypatch.delenv("DOPS_POD_NAME", raising=False)
    monkeypatch.delenv("DOPS_TERMINATION_MESSAGE_PATH", raising=False)


@pytest.fixture
def kubeconfig(dops_server: EmbeddedServer) -> str:
    return str(dops_server.kubeconfig)  # type: ignore[attr-defined]


def queue(
    service: DelegatedOperationService, operator: str, params: Any = None, **kwargs: Any
) -> DelegatedOperationDocument:
    return service.queue_operation(operator, context={"request_params": {"params": params or {}}}, **kwargs)


def raw_status(repo: DelegatedOperationRepository, doc: DelegatedOperationDocument) -> dict[str, Any]:
    assert doc.namespace is not None and doc.id is not None
    return repo.get(doc.namespace, doc.id).get("status") or {}


class Background:
    """Run a blocking call in a thread; `result()` waits for it."""

    def __init__(self, fn: Any, *args: Any, **kwargs: Any) -> None:
        self.value: Any = None
        self.error: BaseException | None = None
        self.finished_at: float | None = None
        self._thread = threading.Thread(target=self._run, args=(fn, args, kwargs), daemon=True)
        self._thread.start()

    def _run(self, fn: Any, args: Any, kwargs: Any) -> None:
        try:
            self.value = fn(*args, **kwargs)
        except BaseException as exc:
            self.error = exc
        finally:
            self.finished_at = time.monotonic()

    def result(self, timeout: float) -> Any:
        self._thread.join(timeout)
        assert not self._thread.is_alive(), f"still running after {timeout}s"
        if self.error is not None:
            raise self.error
        return self.value


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


@pytest.fixture
def pid_file(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "pids"
    yield path
    if path.exists():  # never leave a stray process behind, whatever the test did
        for pid in map(int, path.read_text().split()):
            if alive(pid):
                os.kill(pid, 9)


# ------------------------------------------------------------------------------------------- sync mode


def test_execute_queued_operations_sync(service: DelegatedOperationService) -> None:
    """§4.1 / §7 #16: newest first, one result per op, each op completed with its timestamps."""
    first = queue(service, "@dops/examples/echo", {"n": 1})
    second = queue(service, "@dops/examples/echo", {"n": 2})
    other = queue(service, "@dops/examples/count", {"n": 1, "delay": 0})
    results = service.execute_queued_operations(operator="@dops/examples/echo")
    assert [r.result for r in results] == [{"n": 2}, {"n": 1}]
    assert all(r.error is None for r in results)
    for doc in (first, second):
        done = service.get(doc.id)
        assert done.run_state == "completed"
        assert done.queued_at and done.started_at and done.completed_at and done.failed_at is None
        assert done.result is not None and done.result.error is None and not done.monitored
    assert service.get(other.id).run_state == "queued"
    assert service.execute_queued_operations(operator="@dops/examples/echo") == []


def test_execute_operation_skips_ops_that_are_not_queued(service: DelegatedOperationService) -> None:
    """§7 #20: an op already running is not executed; None is returned and nothing changes."""
    doc = queue(service, "@dops/examples/echo", {"x": 1})
    running = service.set_running(doc.id, required_state="queued")
    assert running is not None
    assert service.execute_operation(running) is None
    after = service.get(doc.id)
    assert after.run_state == "running" and after.result is None and after.started_at == running.started_at


def test_execute_operation_failure_stores_traceback(service: DelegatedOperationService) -> None:
    """§7 #21: the returned result carries the error; the op is failed with started/queued/failed timestamps."""
    doc = queue(service, "@dops/examples/fail", {"message": "MockOperator failed"})
    result = service.execute_operation(doc, log=True)
    assert result.result is None and "ExampleFailure: MockOperator failed" in result.error
    failed = service.get(doc.id)
    assert failed.run_state == "failed"
    assert failed.started_at and failed.queued_at and failed.failed_at and failed.completed_at is None
    assert failed.result is not None and "ExampleFailure: MockOperator failed" in (failed.result.error or "")


def test_sync_state_changed_externally_is_kept(service: DelegatedOperationService) -> None:
    """§4.3: no cancellation in sync mode; the final CAS loses and the external state stays."""
    doc = queue(service, "@dops/examples/sleep", {"seconds": 1.5})
    run = Background(service.execute_operation, doc)
    eventually(lambda: service.get(doc.id).run_state, lambda s: s == "running", describe="running")
    service.set_failed(doc.id, result=ExecutionResult(error="stopped by a person"))
    result = run.result(timeout=30)
    assert result.error == "Operation state changed externally during execution."
    stored = service.get(doc.id)
    assert stored.run_state == "failed" and stored.result is not None and stored.result.error == "stopped by a person"


# ------------------------------------------------------------------------------------------- monitor mode


def test_monitor_mode_runs_in_a_child_and_returns_the_stored_result(
    service: DelegatedOperationService, repo: DelegatedOperationRepository
) -> None:
    """§4.6: the child runs the op; the parent pings (updatedAt moves after startedAt) and returns the result."""
    doc = queue(service, "@dops/examples/count", {"n": 6, "delay": 0.25})
    result = service.execute_operation(doc, log=True, monitor=True, check_interval_seconds=0.4)
    assert result.error is None and result.result == {"count": 6}
    done = service.get(doc.id)
    assert done.run_state == "completed" and done.monitored is True
    st = raw_status(repo, done)
    assert st["progress"]["progress"] == 1.0


def test_monitor_external_fail_kills_the_process_tree(service: DelegatedOperationService, pid_file: Path) -> None:
    """Cancel while monitored: the child and its grandchild are stopped within the grace period; the
    external state is kept; the result says "Operation marked as FAILED externally"."""
    doc = queue(service, "py:tests.worker_ops:pid_then_sleep", {"pid_file": str(pid_file), "seconds": 120})
    run = Background(service.execute_operation, doc, monitor=True, check_interval_seconds=0.5)
    pids = eventually(
        lambda: [int(p) for p in pid_file.read_text().split()], lambda p: len(p) == 2, timeout=30, describe="pids"
    )
    assert all(alive(pid) for pid in pids)
    cancelled_at = time.monotonic()
    service.set_failed(doc.id)  # FiftyOne's CLI `fail`: no result
    result = run.result(timeout=30)
    assert run.finished_at is not None and run.finished_at - cancelled_at < 10, "stopped within the grace period"
    assert result.error == "Operation marked as FAILED externally"
    eventually(lambda: [p for p in pids if alive(p)], lambda left: not left, timeout=5, describe="no process left")
    stored = service.get(doc.id)
    assert stored.run_state == "failed" and stored.result is None


def test_monitor_detects_failure_written_with_a_reason(service: DelegatedOperationService, pid_file: Path) -> None:
    """§7 #32: a stored error that is not a plain cancel is reported as "Operation FAILED (detected by monitor)"."""
    doc = queue(service, "py:tests.worker_ops:pid_then_sleep", {"pid_file": str(pid_file), "seconds": 120})
    run = Background(service.execute_operation, doc, monitor=True, check_interval_seconds=0.5)
    eventually(lambda: pid_file.read_text().split(), lambda p: len(p) == 2, timeout=30, describe="pids")
    service.set_failed(doc.id, result=ExecutionResult(error="OOMKilled: the pod ran out of memory"))
    result = run.result(timeout=30)
    assert result.error == "Operation FAILED (detected by monitor): OOMKilled: the pod ran out of memory"


def test_monitor_op_deleted_stops_the_child(service: DelegatedOperationService, pid_file: Path) -> None:
    """§4.6: the op deleted while monitored → the child tree is stopped, "Error in monitoring loop"."""
    doc = queue(service, "py:tests.worker_ops:pid_then_sleep", {"pid_file": str(pid_file), "seconds": 120})
    run = Background(service.execute_operation, doc, monitor=True, check_interval_seconds=0.5)
    pids = eventually(
        lambda: [int(p) for p in pid_file.read_text().split()], lambda p: len(p) == 2, timeout=30, describe="pids"
    )
    service.delete_operation(doc.id)
    result = run.result(timeout=30)
    assert "Error in monitoring loop" in result.error and "No operation found" in result.error
    eventually(lambda: [p for p in pids if alive(p)], lambda left: not left, timeout=5, describe="no process left")


@pytest.mark.parametrize(
    ("params", "how"),
    [({"code": 3}, "exit code 3"), ({"signal": "SIGKILL"}, "killed by signal SIGKILL")],
)
def test_monitor_crashed_child_leaves_the_op_failed(
    service: DelegatedOperationService, params: dict[str, Any], how: str
) -> None:
    """FiftyOne leaves a crashed child's op RUNNING; dops marks it failed (CAS from running)."""
    doc = queue(service, "py:tests.worker_ops:crash", params)
    result = service.execute_operation(doc, monitor=True, check_interval_seconds=0.5)
    expected = f"Operation ended without terminal state ({how}, run_state=running)"
    assert result.error == expected
    stored = service.get(doc.id)
    assert stored.run_state == "failed"
    assert stored.result is not None and stored.result.error == expected
    assert stored.status is not None and stored.status.label == "about to crash"


# ------------------------------------------------------------------------------------------- launcher


def _target(kube: KubeClient, namespace: str, name: str, **spec: Any) -> None:
    kube.request(
        "POST",
        f"/apis/dops.io/v1alpha1/namespaces/{namespace}/delegationtargets",
        body=delegation_target(name, namespace, **spec),
    )


def test_launch_serves_external_targets_oldest_first(
    service: DelegatedOperationService, kube: KubeClient, namespace: str, kubeconfig: str
) -> None:
    """Only mode: external targets; FIFO; job-mode and default-target operations are left to the operator."""
    _target(kube, namespace, "ext", mode="external")
    _target(kube, namespace, "ext2", mode="external")
    _target(kube, namespace, "jobs", mode="job")
    ours = [queue(service, "@dops/examples/echo", {"i": i}, delegation_target="ext") for i in range(3)]
    ours.append(queue(service, "@dops/examples/echo", {"i": 3}, delegation_target="ext2"))
    theirs = [
        queue(service, "@dops/examples/echo", {"job": True}, delegation_target="jobs"),
        queue(service, "@dops/examples/echo", {"default": True}),
    ]
    assert launch(namespace=namespace, once=True, interval=0.2, kubeconfig=kubeconfig) == 0
    done = [service.get(d.id) for d in ours]
    assert all(d.run_state == "completed" for d in done)
    started = [d.started_at for d in done]
    assert started == sorted(started), "oldest first"
    assert [d.result.result for d in done if d.result] == [{"i": 0}, {"i": 1}, {"i": 2}, {"i": 3}]
    assert [service.get(d.id).run_state for d in theirs] == ["queued", "queued"]


def test_launch_target_limit_and_monitor(
    service: DelegatedOperationService, kube: KubeClient, namespace: str, kubeconfig: str
) -> None:
    _target(kube, namespace, "ext", mode="external")
    docs = [queue(service, "@dops/examples/echo", {"i": i}, delegation_target="ext") for i in range(2)]
    code = launch(
        target="ext", monitor=True, namespace=namespace, once=True, interval=0.3, limit=1, kubeconfig=kubeconfig
    )
    assert code == 0
    states = [service.get(d.id) for d in docs]
    assert [s.run_state for s in states] == ["completed", "queued"]
    assert states[0].monitored is True


def test_launch_refuses_job_mode_and_unknown_targets(
    kube: KubeClient, namespace: str, kubeconfig: str, capsys: pytest.CaptureFixture[str]
) -> None:
    _target(kube, namespace, "jobs", mode="job")
    assert launch(target="jobs", namespace=namespace, once=True, kubeconfig=kubeconfig) == 2
    assert "has mode job" in capsys.readouterr().err
    assert launch(target="nope", namespace=namespace, once=True, kubeconfig=kubeconfig) == 2
    assert f"DelegationTarget nope not found in namespace {namespace}" in capsys.readouterr().err
    assert launch(namespace=namespace, once=True, interval=0, kubeconfig=kubeconfig) == 2


@pytest.mark.parametrize("monitor", [False, True], ids=["sync", "monitor"])
def test_launcher_sigterm_fails_the_running_operation(
    monitor: bool,
    service: DelegatedOperationService,
    kube: KubeClient,
    namespace: str,
    kubeconfig: str,
    pid_file: Path,
) -> None:
    """SIGTERM to `python -m dops.worker launch` while it runs an operation: the launcher exits 0 promptly, the
    operation is failed ("the executor was interrupted (SIGTERM)"), a monitored child's tree is stopped."""
    _target(kube, namespace, "ext", mode="external", allowImportPaths=True)
    doc = queue(
        service,
        "py:tests.worker_ops:pid_then_sleep",
        {"pid_file": str(pid_file), "seconds": 120},
        delegation_target="ext",
    )
    command = [sys.executable, "-m", "dops.worker", "launch", "--target", "ext", "-n", namespace]
    command += ["--kubeconfig", kubeconfig, "--interval", "0.3"] + (["--monitor"] if monitor else [])
    log_file = pid_file.with_name("launcher.log")
    with log_file.open("wb") as log:  # a file, not a pipe: the operator's own grandchild inherits it in sync mode
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
    try:
        pids = eventually(
            lambda: [int(p) for p in pid_file.read_text().split()], lambda p: len(p) == 2, timeout=30, describe="pids"
        )
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=20)
    finally:
        if process.poll() is None:
            process.kill()
    output = log_file.read_text()
    assert process.returncode == 0, output
    assert "stopped while running" in output
    stored = service.get(doc.id)
    assert stored.run_state == "failed" and stored.result is not None
    assert stored.result.error_message == "the executor was interrupted (SIGTERM) while the operation was running"
    if monitor:
        eventually(lambda: [p for p in pids if alive(p)], lambda left: not left, timeout=5, describe="no process left")
