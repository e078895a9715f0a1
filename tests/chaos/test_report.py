"""The chaos suite's judgement without a cluster: which watched facts break which invariant (table tests).

Why: the chaos run takes minutes and its failures are read by people fixing the operator, so what it
calls "stuck", "double-Job" or "untouched failure" must be exactly what `tests/chaos/run.py` says. These
tests feed the ledger synthetic watch events and judge synthetic final states.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.chaos.run import (
    PROC_TARGET,
    QUIESCE_CAP_FACTOR,
    QUIESCE_STALL_SECONDS,
    SIM_TARGET,
    ChaosConfig,
    Ledger,
    OpRecord,
    Quiescence,
    Report,
)

JSON = dict[str, Any]
CAPS = {SIM_TARGET: 2, PROC_TARGET: 1}


def op(name: str, state: str, *, reason: str = "", message: str = "", result: Any = None, error: str = "") -> JSON:
    status: JSON = {"runState": state}
    if state in ("completed", "failed"):
        status["result"] = {"result": result, "error": error or None}
        status["conditions"] = [
            {
                "type": "Succeeded",
                "status": "True" if state == "completed" else "False",
                "reason": reason,
                "message": message,
            }
        ]
    return {"metadata": {"name": name, "uid": f"uid-{name}"}, "status": status}


def job(name: str, owner: str, *, finished: bool = False, deleting: bool = False) -> JSON:
    meta: JSON = {
        "name": name,
        "uid": f"uid-{name}",
        "ownerReferences": [{"kind": "DelegatedOperation", "name": owner}],
    }
    if deleting:
        meta["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    conditions = [{"type": "Complete", "status": "True"}] if finished else []
    return {"metadata": meta, "status": {"conditions": conditions}}


def record(name: str, kind: str = "fast", target: str = SIM_TARGET) -> OpRecord:
    expected: Any = "chaos designed failure" if kind == "fail" else {"ok": 1}
    return OpRecord(name, kind, target, {}, expected)


def report(ledger: Ledger, final: list[JSON]) -> Report:
    return Report(
        config=ChaosConfig(seed=1, operations=len(ledger.ops)),
        ops=ledger.ops,
        final={o["metadata"]["name"]: o for o in final},
        faults=ledger.faults,
        caps=ledger.caps,
        max_active_ops=ledger.max_active_ops,
        max_active_jobs=ledger.max_active_jobs,
        max_active_jobs_at=ledger.max_active_jobs_at,
        over_cap=ledger.over_cap,
        kills=0,
        operators=1,
        takeovers=[],
        seconds=1.0,
        quiesced=True,
    )


def ledger_with(*records: OpRecord) -> Ledger:
    ledger = Ledger(CAPS)
    for rec in records:
        ledger.ops[rec.name] = rec
    return ledger


FAILED_PLAIN = op("a", "failed", reason="NonZeroExitCode", message="exit 1", error="boom")

CASES = [
    # (id, kind, faults on it, final object, the invariant it breaks or None)
    ("completed with its result", "fast", [], op("a", "completed", reason="Completed", result={"ok": 1}), None),
    (
        "completed with another result",
        "fast",
        [],
        op("a", "completed", result={"ok": 2}),
        "completed without its result",
    ),
    (
        "designed failure",
        "fail",
        [],
        op("a", "failed", reason="OperatorFailed", message="m", error="chaos designed failure"),
        None,
    ),
    ("designed failure completed", "fail", [], op("a", "completed", result=None), "completed without its result"),
    ("failed, no fault", "fast", [], FAILED_PLAIN, "failed though no disruptive fault touched it"),
    ("failed after an API error", "fast", ["api-500"], FAILED_PLAIN, "failed though no disruptive fault touched it"),
    ("failed after an operator kill", "fast", [None], FAILED_PLAIN, "failed though no disruptive fault touched it"),
    ("failed after a re-queue", "fast", ["requeue"], FAILED_PLAIN, "failed though no disruptive fault touched it"),
    ("failed after its pod was deleted", "fast", ["delete-pod"], FAILED_PLAIN, None),
    ("failed after a cancel", "fast", ["cancel"], FAILED_PLAIN, None),
    ("failed without a reason", "fail", [], op("a", "failed"), "failed without a reason"),
    ("still running", "sleep", [], op("a", "running"), "stuck (not terminal after quiescence)"),
    ("never got a state", "sleep", [], {"metadata": {"name": "a"}}, "stuck (not terminal after quiescence)"),
    (
        "completed, never processed",
        "fast",
        [],
        {"metadata": {"name": "a"}, "status": {"runState": "completed", "result": {"result": {"ok": 1}}}},
        "stuck (not terminal after quiescence)",
    ),
]


@pytest.mark.parametrize(("kind", "faults", "final", "broken"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_outcomes_are_judged(kind: str, faults: list[str | None], final: JSON, broken: str | None) -> None:
    ledger = ledger_with(record("a", kind))
    ledger.op_event("ADDED", op("a", "queued"))
    for fault in faults:
        # None: a fault on every unfinished operation (an operator kill); else one aimed at "a"
        ledger.record_fault(fault or "operator-kill", "test", None if fault is None else ["a"])
    problems = report(ledger, [final]).problems()
    assert {title for title, items in problems.items() if items} == ({broken} if broken else set()), problems


def test_deleted_operations_must_be_gone_and_are_not_stuck_when_gone() -> None:
    ledger = ledger_with(record("a"), record("b"))
    ledger.ops["a"].deleted = ledger.ops["b"].deleted = True
    judged = report(ledger, [op("b", "running")]).problems()["stuck (not terminal after quiescence)"]
    assert [line.split()[0] for line in judged] == ["b"]
    assert "deleted by the harness but still present" in judged[0]


def test_two_active_jobs_of_one_operation_are_seen_and_finished_or_deleting_jobs_are_not_active() -> None:
    ledger = ledger_with(record("a"), record("b"))
    ledger.job_event("ADDED", job("a-1", "a"))
    ledger.job_event("MODIFIED", job("a-1", "a", deleting=True))
    ledger.job_event("ADDED", job("a-2", "a"))  # after attempt 1's Job was being deleted: fine
    ledger.job_event("ADDED", job("b-1", "b"))
    ledger.job_event("MODIFIED", job("b-1", "b", finished=True))
    ledger.job_event("ADDED", job("b-2", "b"))
    assert report(ledger, []).double_job() == []
    ledger.job_event("ADDED", job("b-3", "b"))  # b-2 still active
    assert report(ledger, []).double_job() == ["b: ['b-2', 'b-3'] active at once"]
    ledger.job_event("DELETED", job("a-2", "a"))
    assert report(ledger, []).jobs_left() == ["b: ['b-2', 'b-3']"]


def test_concurrency_counts_scheduled_and_running_operations_per_target() -> None:
    ledger = ledger_with(record("a", target=PROC_TARGET), record("b", target=PROC_TARGET), record("c"))
    ledger.op_event("MODIFIED", op("a", "scheduled"))
    ledger.op_event("MODIFIED", op("c", "running"))
    ledger.op_event("MODIFIED", op("a", "completed"))
    ledger.op_event("MODIFIED", op("b", "running"))
    assert ledger.max_active_ops == {SIM_TARGET: 1, PROC_TARGET: 1}
    assert report(ledger, []).problems()["maxConcurrent exceeded"] == []
    ledger.op_event("MODIFIED", op("a", "running"))  # re-queued and admitted while b still runs: 2 > 1
    assert report(ledger, []).problems()["maxConcurrent exceeded"][0] == f"{PROC_TARGET}: max 2 > 1"
    assert ledger.over_cap_ops == {"a", "b"}  # the operations the report explains
    ledger.op_event("DELETED", op("a", "running"))
    assert ledger.active_ops[PROC_TARGET] == {"b"}


def test_a_relist_is_judged_as_one_snapshot() -> None:
    """A relist comes in name order: "a" admitted during the gap is applied before "b", which ended during it.
    Judged one by one, 2 > 1 would be reported though the server never had both active."""
    ledger = ledger_with(record("a", target=PROC_TARGET), record("b", target=PROC_TARGET))
    ledger.op_event("MODIFIED", op("b", "running"))
    ledger.op_events([("MODIFIED", op("a", "scheduled")), ("MODIFIED", op("b", "completed"))], relisted=True)
    assert report(ledger, []).problems()["maxConcurrent exceeded"] == []
    assert ledger.active_ops[PROC_TARGET] == {"a"} and ledger.max_active_ops[PROC_TARGET] == 1
    assert ledger.ops["a"].seen[-1].split()[1:4] == ["relisted", "rv", "None"]
    # the same Jobs in the same order: attempt 2 created, attempt 1 finished during the gap; no double Job
    ledger.job_event("ADDED", job("b-1", "b"))
    ledger.job_events([("MODIFIED", job("b-1", "b", finished=True)), ("MODIFIED", job("b-2", "b"))], relisted=True)
    ledger.job_events([("MODIFIED", job("b-10", "b")), ("MODIFIED", job("b-2", "b", finished=True))], relisted=True)
    assert report(ledger, []).double_job() == []
    # its twin: the snapshot itself over the cap, and two Jobs active in it
    ledger.op_events([("MODIFIED", op("a", "running")), ("MODIFIED", op("b", "running"))], relisted=True)
    assert report(ledger, []).problems()["maxConcurrent exceeded"][0] == f"{PROC_TARGET}: max 2 > 1"
    ledger.job_events([("MODIFIED", job("b-10", "b")), ("MODIFIED", job("b-11", "b"))], relisted=True)
    assert report(ledger, []).double_job() == ["b: ['b-10', 'b-11'] active at once"]


def test_operations_of_other_tests_or_namespaces_are_ignored() -> None:
    ledger = ledger_with(record("a"))
    ledger.op_event("ADDED", op("stranger", "running"))
    ledger.job_event("ADDED", job("stranger-1", "stranger"))
    assert set(ledger.ops) == {"a"} and ledger.jobs == {}


def test_the_figures_line_names_the_seed_and_every_count() -> None:
    ledger = ledger_with(record("a"))
    line = report(ledger, [op("a", "completed", result={"ok": 1})]).line()
    expected = "chaos: embedded plane, seed 1, 1 ops, 1 terminal (1 completed), 0 deleted on purpose, 0 stuck, "
    assert line.startswith(expected)
    for part in ("0 double-Job", "0 untouched failures", "0 failures without reason", "max concurrency 0/1"):
        assert part in line
    assert "quiesced 0 s after the chaos" in line


BUDGET = 75.0
# Each look: (seconds since the chaos ended, the unsettled operations then, submitted so far) → the verdict
# of that look (None: look again). A budget of 75 s, no settling for QUIESCE_STALL_SECONDS gives up.
QUIESCENCE_CASES = [
    ("everything settled at once", [(1, set(), 3, True)]),
    ("settled, but not everything submitted yet", [(1, set(), 2, None), (2, set(), 3, True)]),
    ("within the budget it waits, progress or not", [(0, {"a", "b"}, 3, None), (74, {"a", "b"}, 3, None)]),
    (
        "past the budget it waits while operations settle",
        [
            (0, {"a", "b", "c"}, 3, None),
            (60, {"b", "c"}, 3, None),
            (85, {"b", "c"}, 3, None),
            (88, {"c"}, 3, None),
            (110, {"c"}, 3, None),
            (112, set(), 3, True),
        ],
    ),
    (
        "past the budget, no operation settling for the stall window gives up",
        [
            (0, {"a", "b"}, 3, None),
            (50, {"b"}, 3, None),
            (75, {"b"}, 3, None),
            (49 + QUIESCE_STALL_SECONDS, {"b"}, 3, None),
            (50 + QUIESCE_STALL_SECONDS, {"b"}, 3, False),
        ],
    ),
    (
        "a requeued operation coming back is not progress",
        [(0, {"a"}, 3, None), (10, {"a", "b"}, 3, None), (75 + QUIESCE_STALL_SECONDS, {"a", "b"}, 3, False)],
    ),
    (
        "steady settling still ends at the cap",
        [(0, {str(i) for i in range(500)}, 3, None)]
        + [(t, {str(i) for i in range(t, 500)}, 3, None) for t in range(1, int(BUDGET * QUIESCE_CAP_FACTOR))]
        + [(BUDGET * QUIESCE_CAP_FACTOR, {"499"}, 3, False)],
    ),
]


@pytest.mark.parametrize(("looks"), [c[1] for c in QUIESCENCE_CASES], ids=[c[0] for c in QUIESCENCE_CASES])
def test_quiescence_waits_while_operations_settle_and_gives_up_when_none_do(
    looks: list[tuple[float, set[str], int, bool | None]],
) -> None:
    quiescence = Quiescence(BUDGET, 0.0, expected=3)
    verdicts = [quiescence.verdict(busy, submitted, at) for at, busy, submitted, _ in looks]
    assert verdicts == [expected for *_, expected in looks]
