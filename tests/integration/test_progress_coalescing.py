"""Progress coalescing through the API (issue 15): what a worker's progress reports cost the API server.

Aspects covered (the embedded control plane, in-process `run_claimed` as a Job's worker runs it):
- an operator reporting as fast as it can for 1.5 s with an interval of 0.5 s: at most one progress write per
  interval reaches the API server (plus the terminal write), progress visibly moved, and the final value
  ("done", 1.0) is stored with the outcome;
- fault twin: the write of the final value fails (an injected 500); the value is not lost, the terminal
  write carries it.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from dops import DelegatedOperationService
from dops.emulator import EmbeddedServer
from dops.emulator.server import AccessRecord
from dops.execution import Engine
from dops.k8s import DelegatedOperationRepository
from dops.service.executor import run_claimed

OPERATOR = "py:tests.worker_ops:report_fast"


@pytest.fixture(autouse=True)
def no_faults_left(dops_server: EmbeddedServer) -> Iterator[None]:
    yield
    dops_server.call(dops_server.faults.clear)
    dops_server.http.access_log = None


def running(service: DelegatedOperationService, seconds: float, linger: float = 0.0) -> str:
    params = {"seconds": seconds, "linger": linger}
    doc = service.queue_operation(OPERATOR, context={"request_params": {"params": params}})
    assert doc.id is not None
    service.set_running(doc.id)
    return doc.id


def test_progress_writes_are_coalesced_and_the_final_value_is_written(
    dops_server: EmbeddedServer, service: DelegatedOperationService, repo: DelegatedOperationRepository
) -> None:
    seconds, interval = 1.5, 0.5
    name = running(service, seconds)
    doc = service.get(name)
    log: list[AccessRecord] = []
    dops_server.http.access_log = log
    run = run_claimed(service, doc, engine=Engine(allow_import_paths=True), progress_interval=interval)
    dops_server.http.access_log = None
    assert run.outcome.succeeded and run.record_error is None, run
    reports = run.outcome.result.result["reports"]
    patches = [r for r in log if r.method == "PATCH" and r.path.endswith(f"/{name}/status")]
    progress_writes = len(patches) - 1  # the last one is the terminal write
    assert reports > 20, "the operator reported as fast as it could"
    assert 2 <= progress_writes <= seconds / interval + 2, f"{progress_writes} progress writes for {reports} reports"
    status = repo.get(service.namespace, name)["status"]
    assert status["runState"] == "completed"
    assert (status["progress"]["progress"], status["progress"]["label"]) == (1.0, "done")


def test_a_failed_write_of_the_final_value_does_not_lose_it(
    dops_server: EmbeddedServer, service: DelegatedOperationService, repo: DelegatedOperationRepository
) -> None:
    """The operator reports once (1.0 "done"; the first report is written at once) and returns 0.5 s later; that
    write fails and the 60 s interval allows no second try: the terminal write carries the value."""
    name = running(service, 0.0, linger=0.5)
    doc = service.get(name)
    rule = dops_server.call(
        lambda: dops_server.faults.add(500, "PATCH", rf"/delegatedoperations/{name}/status$", times=1)
    )
    run = run_claimed(service, doc, engine=Engine(allow_import_paths=True), progress_interval=60)
    assert rule.matched == 1, "the progress write failed"
    assert run.outcome.succeeded and run.record_error is None, run
    status = repo.get(service.namespace, name)["status"]
    assert status["runState"] == "completed"
    assert (status["progress"]["progress"], status["progress"]["label"]) == (1.0, "done")
