"""required_state is an atomic compare-and-set on the server (fiftyone-semantics §2.2, §11 surprise 1).

Aspects covered:
- two claimers (separate clients, like two executor processes) race set_running(required_state=QUEUED) on the
  same operation, released together by a barrier, 100 times: exactly one wins each time, the loser gets None,
  and the stored state is RUNNING with the winner's run_link.
- completion vs cancellation: set_completed(required_state=RUNNING) racing set_failed(required_state=RUNNING):
  exactly one terminal state wins and the stored state is the winner's.
- the CAS is a JSON Patch whose first operation tests /status/runState (visible in the server's access log).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from dops import DelegatedOperationService, ExecutionResult, ExecutionRunState
from dops.emulator import EmbeddedServer
from dops.k8s import DelegatedOperationRepository, KubeClient, load_config

pytestmark = pytest.mark.both_planes

ROUNDS = 100


@pytest.fixture
def claimers(dops_server: EmbeddedServer, namespace: str) -> list[DelegatedOperationService]:
    """Two services with their own HTTP clients: two executors."""
    return [
        DelegatedOperationService(
            DelegatedOperationRepository(KubeClient(load_config(dops_server.kubeconfig))),  # type: ignore[attr-defined]
            namespace=namespace,
        )
        for _ in range(2)
    ]


def race(calls: list[Callable[[], Any]]) -> list[Any]:
    barrier = threading.Barrier(len(calls))

    def run(call: Callable[[], Any]) -> Any:
        barrier.wait(timeout=10)
        return call()

    with ThreadPoolExecutor(max_workers=len(calls)) as pool:
        return list(pool.map(run, calls))


def test_two_claimers_exactly_one_wins(
    service: DelegatedOperationService, claimers: list[DelegatedOperationService]
) -> None:
    for round_ in range(ROUNDS):
        doc = service.queue_operation("@dops/examples/echo")
        results = race(
            [
                lambda s=s, i=i, doc_id=doc.id: s.set_running(
                    doc_id, run_link=f"claimer-{i}", required_state=ExecutionRunState.QUEUED
                )
                for i, s in enumerate(claimers)
            ]
        )
        winners = [r for r in results if r is not None]
        assert len(winners) == 1, f"round {round_}: {len(winners)} winners"
        stored = service.get(doc.id)  # type: ignore[arg-type]
        assert stored.run_state == "running" and stored.run_link == winners[0].run_link


def test_complete_vs_cancel_exactly_one_terminal_state(
    service: DelegatedOperationService, claimers: list[DelegatedOperationService]
) -> None:
    worker, canceller = claimers
    outcomes = {"completed": 0, "failed": 0}
    for round_ in range(ROUNDS // 2):
        doc = service.queue_operation("@dops/examples/echo")
        service.set_running(doc.id)  # type: ignore[arg-type]
        done, cancelled = race(
            [
                lambda doc_id=doc.id, n=round_: worker.set_completed(doc_id, result={"n": n}, required_state="running"),
                lambda doc_id=doc.id: canceller.set_failed(
                    doc_id, result=ExecutionResult(error="cancelled"), required_state="running"
                ),
            ]
        )
        assert (done is None) != (cancelled is None), f"round {round_}"
        stored = service.get(doc.id)  # type: ignore[arg-type]
        winner = "completed" if done is not None else "failed"
        assert stored.run_state == winner
        assert (stored.completed_at is None) == (winner == "failed")
        outcomes[winner] += 1
    assert sum(outcomes.values()) == ROUNDS // 2


def test_cas_is_a_json_patch_testing_the_run_state(
    dops_server: EmbeddedServer, service: DelegatedOperationService
) -> None:
    doc = service.queue_operation("@dops/examples/echo")
    dops_server.http.access_log = []
    try:
        assert service.set_running(doc.id, required_state="queued") is not None  # type: ignore[arg-type]
        records = list(dops_server.http.access_log)
    finally:
        dops_server.http.access_log = None
    status_patches = [r for r in records if r.method == "PATCH" and r.path.endswith(f"/{doc.id}/status")]
    assert [r.content_type for r in status_patches] == ["application/json-patch+json"]
    assert status_patches[0].status == 200
