"""The worker against a misbehaving or moving control plane (issue 11, items 4, 5 and 10).

The worker runs as the Job container does (`python -m dops.worker run NS/NAME`, a real process) against the
embedded API server; faults come from its fault hooks (HTTP errors) or from a TCP proxy that cuts every
connection (an unreachable API server). `py:tests.worker_ops:handshake` lets a test act between the claim
and the outcome write.

- Item 5, "one API error fails a healthy operation": one 500 on the claim, a 500 on the best-effort label
  write after the claim, a 500 on the outcome write, a 20 s outage (every connection reset) while the
  outcome is recorded: the operation still completes with its result.
- Item 5, the last resort: when the outcome cannot be recorded at all, it is in the termination message
  (state, result, attempt) and the worker exits 4.
- Item 4, fencing: an operation re-queued and re-admitted (attempt 2) while attempt 1's worker runs:
  attempt 1's result and progress never land on attempt 2; the old worker exits 0 with one clear line.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from dops import DelegatedOperationService
from dops.emulator import EmbeddedServer
from dops.k8s import DelegatedOperationRepository
from dops.worker.run import EXIT_UNRECORDED
from tests.helpers import eventually
from tests.tcp_proxy import TcpProxy, proxied

REPO = Path(__file__).resolve().parent.parent.parent
JSON = dict[str, Any]


@pytest.fixture
def kubeconfig(dops_server: EmbeddedServer) -> str:
    return str(dops_server.kubeconfig)  # type: ignore[attr-defined]


@pytest.fixture
def proxy(dops_server: EmbeddedServer) -> Iterator[TcpProxy]:
    with proxied(dops_server.url) as p:
        yield p


@pytest.fixture(autouse=True)
def no_faults_left(dops_server: EmbeddedServer) -> Iterator[None]:
    yield
    dops_server.call(dops_server.faults.clear)


class Worker:
    """One `python -m dops.worker run` process, as the Job container runs it (attempt identity in its env)."""

    def __init__(self, tmp_path: Path, kubeconfig: str, ref: str, *, pod: str, **env: str) -> None:
        self.termination = tmp_path / f"termination-{pod}"
        full = {k: v for k, v in os.environ.items() if not k.startswith("DOPS_")}
        full.update(
            {
                "KUBECONFIG": kubeconfig,
                "PYTHONPATH": f"{REPO}{os.pathsep}{REPO / 'operator'}",
                "DOPS_TERMINATION_MESSAGE_PATH": str(self.termination),
                "DOPS_ALLOW_IMPORT_PATHS": "true",
                "DOPS_POD_NAME": pod,
                **env,
            }
        )
        self.process = subprocess.Popen(
            [sys.executable, "-m", "dops.worker", "run", ref],
            env=full,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )

    def wait(self, timeout: float = 120) -> tuple[int, str]:
        output, _ = self.process.communicate(timeout=timeout)
        return self.process.returncode, output

    def message(self) -> JSON:
        data = self.termination.read_bytes()
        assert len(data) <= 4096
        decoded: JSON = json.loads(data)
        return decoded


def admitted(
    service: DelegatedOperationService, repo: DelegatedOperationRepository, params: JSON, attempt: int = 1
) -> str:
    """Queue a handshake operation and admit it as the operator does (scheduled, jobName, attempt)."""
    doc = service.queue_operation("py:tests.worker_ops:handshake", context={"request_params": {"params": params}})
    assert doc.id is not None
    admit(repo, service.namespace, doc.id, "queued", attempt)
    return doc.id


def admit(repo: DelegatedOperationRepository, namespace: str, name: str, required: str, attempt: int) -> None:
    repo.patch_status(
        namespace,
        name,
        [
            {"op": "test", "path": "/status/runState", "value": required},
            {"op": "add", "path": "/status/runState", "value": "scheduled"},
            {"op": "add", "path": "/status/jobName", "value": f"{name}-{attempt}"},
            {"op": "add", "path": "/status/attempt", "value": attempt},
        ],
        json_patch=True,
    )


def identity(repo: DelegatedOperationRepository, namespace: str, name: str, attempt: int) -> dict[str, str]:
    """The env the operator's Job gives attempt `attempt`'s worker."""
    uid = repo.get(namespace, name)["metadata"]["uid"]
    return {"DOPS_JOB_NAME": f"{name}-{attempt}", "DOPS_ATTEMPT": str(attempt), "DOPS_OPERATION_UID": uid}


def handshake_params(tmp_path: Path, **extra: Any) -> JSON:
    return {"ready": str(tmp_path / "ready"), "go": str(tmp_path / "go"), **extra}


def status(repo: DelegatedOperationRepository, namespace: str, name: str) -> JSON:
    value: JSON = repo.get(namespace, name).get("status") or {}
    return value


def fault(server: EmbeddedServer, code: int, method: str, path: str, times: int = 1) -> Any:
    return server.call(lambda: server.faults.add(code, method, path, times=times))


def matched(server: EmbeddedServer, rule: Any) -> int:
    count: int = server.call(lambda: rule.matched)
    return count


# ------------------------------------------------------------------------------------------- item 5


def test_one_500_on_the_claim_still_completes(
    dops_server: EmbeddedServer,
    service: DelegatedOperationService,
    repo: DelegatedOperationRepository,
    kubeconfig: str,
    tmp_path: Path,
) -> None:
    """A single 500 on the claim's status PATCH: retried (one log line), the operation completes."""
    ns = service.namespace
    name = admitted(service, repo, handshake_params(tmp_path))
    (tmp_path / "go").touch()
    rule = fault(dops_server, 500, "PATCH", rf"/delegatedoperations/{name}/status$")
    worker = Worker(tmp_path, kubeconfig, f"{ns}/{name}", pod="claim-pod", **identity(repo, ns, name, 1))
    code, output = worker.wait()
    assert code == 0, output
    assert matched(dops_server, rule) == 1
    st = status(repo, ns, name)
    assert st["runState"] == "completed" and st["result"]["result"] == {"handshake": "done"}, st
    assert [line for line in output.splitlines() if "claiming" in line and "retry 1" in line], output


def test_500_on_the_label_write_after_the_claim_does_not_abort_the_run(
    dops_server: EmbeddedServer,
    service: DelegatedOperationService,
    repo: DelegatedOperationRepository,
    kubeconfig: str,
    tmp_path: Path,
) -> None:
    """The run-state label mirror is best effort: a 500 on it is logged and the run goes on. (A worker run by
    hand, without a Job: a Job's worker leaves the label to the operator, tests/integration/test_worker_confined.
    The label kept, as on a server without selectableFields: DOPS_RUN_STATE_LABEL=always.)"""
    ns = service.namespace
    name = admitted(service, repo, handshake_params(tmp_path))
    (tmp_path / "go").touch()
    rule = fault(dops_server, 500, "PATCH", rf"/delegatedoperations/{name}$")
    worker = Worker(tmp_path, kubeconfig, f"{ns}/{name}", pod="label-pod", DOPS_RUN_STATE_LABEL="always")
    code, output = worker.wait()
    assert code == 0, output
    assert matched(dops_server, rule) == 1
    assert status(repo, ns, name)["runState"] == "completed"
    assert "could not update the labels" in output


def test_a_500_while_recording_the_outcome_does_not_lose_it(
    dops_server: EmbeddedServer,
    service: DelegatedOperationService,
    repo: DelegatedOperationRepository,
    kubeconfig: str,
    tmp_path: Path,
) -> None:
    """The run finished: a 500 on the outcome write is retried, and the result lands."""
    ns = service.namespace
    name = admitted(service, repo, handshake_params(tmp_path, value="after a 500"))
    worker = Worker(tmp_path, kubeconfig, f"{ns}/{name}", pod="record-pod", **identity(repo, ns, name, 1))
    eventually(lambda: (tmp_path / "ready").exists(), timeout=60, describe="the run to start")
    rule = fault(dops_server, 500, "PATCH", rf"/delegatedoperations/{name}/status$")
    (tmp_path / "go").touch()
    code, output = worker.wait()
    assert code == 0, output
    assert matched(dops_server, rule) == 1
    st = status(repo, ns, name)
    assert st["runState"] == "completed" and st["result"]["result"] == {"handshake": "after a 500"}, st


def test_an_unreachable_api_server_while_recording_the_outcome(
    dops_server: EmbeddedServer,
    proxy: TcpProxy,
    service: DelegatedOperationService,
    repo: DelegatedOperationRepository,
    kubeconfig: str,
    tmp_path: Path,
) -> None:
    """20 s during which every connection is reset (the API server is unreachable): the result still lands."""
    ns = service.namespace
    name = admitted(service, repo, handshake_params(tmp_path, value="through the outage"))
    config = yaml.safe_load(Path(kubeconfig).read_text())
    for cluster in config["clusters"]:
        cluster["cluster"]["server"] = proxy.url
    proxied_config = tmp_path / "kubeconfig-proxied"
    proxied_config.write_text(yaml.safe_dump(config))
    worker = Worker(tmp_path, str(proxied_config), f"{ns}/{name}", pod="outage-pod", **identity(repo, ns, name, 1))
    eventually(lambda: (tmp_path / "ready").exists(), timeout=60, describe="the run to start")
    proxy.down()
    (tmp_path / "go").touch()
    eventually(lambda: proxy.refused, timeout=30, describe="the outcome write to hit the outage")
    time.sleep(20)  # the outage lasts 20 s
    proxy.up()
    code, output = worker.wait()
    assert code == 0, output
    st = status(repo, ns, name)
    assert st["runState"] == "completed" and st["result"]["result"] == {"handshake": "through the outage"}, st
    assert "recording the outcome" in output and "retry" in output


def test_an_outcome_that_cannot_be_recorded_is_in_the_termination_message(
    dops_server: EmbeddedServer,
    service: DelegatedOperationService,
    repo: DelegatedOperationRepository,
    kubeconfig: str,
    tmp_path: Path,
) -> None:
    """Past its patience the worker gives up: exit 4, and the termination message carries state and result."""
    ns = service.namespace
    name = admitted(service, repo, handshake_params(tmp_path, value="kept"))
    ids = identity(repo, ns, name, 1)
    worker = Worker(tmp_path, kubeconfig, f"{ns}/{name}", pod="lost-pod", DOPS_WORKER_WRITE_RETRY_SECONDS="1", **ids)
    eventually(lambda: (tmp_path / "ready").exists(), timeout=60, describe="the run to start")
    fault(dops_server, 500, "PATCH", rf"/delegatedoperations/{name}/status$", times=-1)
    (tmp_path / "go").touch()
    code, output = worker.wait()
    assert code == EXIT_UNRECORDED == 4, output
    message = worker.message()
    assert message["runState"] == "completed" and message["recorded"] is False, message
    assert message["result"] == {"result": {"handshake": "kept"}}, message
    assert (message["attempt"], message["job"], message["pod"], message["uid"]) == (
        1,
        ids["DOPS_JOB_NAME"],
        "lost-pod",
        ids["DOPS_OPERATION_UID"],
    )
    assert status(repo, ns, name)["runState"] == "running"


# ------------------------------------------------------------------------------------------- item 4


def requeue_and_readmit(repo: DelegatedOperationRepository, namespace: str, name: str, pod: str) -> None:
    """What a re-queue (FiftyOne's set_queued) and the operator's next admission do: attempt 2, claimed by `pod`."""
    repo.patch_status(
        namespace,
        name,
        [
            {"op": "test", "path": "/status/runState", "value": "running"},
            {"op": "add", "path": "/status/runState", "value": "queued"},
        ],
        json_patch=True,
    )
    admit(repo, namespace, name, "queued", 2)
    repo.patch_status(
        namespace,
        name,
        [
            {"op": "test", "path": "/status/runState", "value": "scheduled"},
            {"op": "add", "path": "/status/runState", "value": "running"},
            {"op": "add", "path": "/status/podName", "value": pod},
        ],
        json_patch=True,
    )


@pytest.mark.parametrize("write", ["outcome", "progress"])
def test_a_superseded_attempt_never_writes_onto_the_next(
    write: str,
    service: DelegatedOperationService,
    repo: DelegatedOperationRepository,
    kubeconfig: str,
    tmp_path: Path,
) -> None:
    """Re-queued and re-admitted while attempt 1's worker runs: attempt 1's next write (its progress, or its
    outcome) fails its attempt tests; nothing of it lands on attempt 2, and it exits 0 saying why."""
    ns = service.namespace
    params = handshake_params(tmp_path, value="from attempt 1", progress=write == "progress", linger=30)
    name = admitted(service, repo, params)
    worker = Worker(tmp_path, kubeconfig, f"{ns}/{name}", pod="attempt-1-pod", **identity(repo, ns, name, 1))
    eventually(lambda: (tmp_path / "ready").exists(), timeout=60, describe="attempt 1 to run")
    requeue_and_readmit(repo, ns, name, "attempt-2-pod")
    (tmp_path / "go").touch()
    code, output = worker.wait(timeout=25)  # with progress, it stops at its progress write, not after lingering
    assert code == 0, output
    st = status(repo, ns, name)
    assert (st["runState"], st["attempt"], st["jobName"], st["podName"]) == (
        "running",
        2,
        f"{name}-2",
        "attempt-2-pod",
    ), st
    assert "result" not in st or not st["result"], st
    assert (st.get("progress") or {}).get("label") != "after the handshake", st
    superseded = [line for line in output.splitlines() if "superseded" in line]
    assert superseded and "attempt 1" in superseded[0] and "attempt 2" in superseded[0], output
    assert worker.message().get("superseded") is True
