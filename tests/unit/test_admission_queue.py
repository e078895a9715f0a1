"""AdmissionQueue (dops.scheduler) and WorkQueue (dops.reconcile): the operator's in-memory scheduling state.

Aspects covered:
- FIFO per target by queuedAt, higher priority first, name as the tie-break;
- maxConcurrent per target counts scheduled + running + reserved operations; the global cap bounds
  the sum and targets take turns; unknown/external targets (capacity None) are never admitted;
- reservations: released on a lost race (back in line at its place), confirmed when the operation
  shows up scheduled; finished or forgotten operations free their slot; stale heap entries are skipped;
- the work queue runs each key once at a time, collapses duplicate adds, reruns a key added while it
  was processing, serves delayed adds, and retries failures a bounded number of times.
"""

from __future__ import annotations

import asyncio

import pytest

from dops.domain.reconciling import QueueEntry
from dops.reconcile.workqueue import WorkQueue
from dops.scheduler import AdmissionQueue


def entry(
    name: str, state: str | None = "queued", target: str = "t", priority: int = 0, queued_at: str = ""
) -> QueueEntry:
    return QueueEntry(
        namespace="ns",
        name=name,
        target=("ns", target),
        state=state,
        priority=priority,
        queued_at=queued_at or f"2026-01-01T00:00:{name[-2:]}Z",
        terminal=state in ("completed", "failed"),
    )


def queue(caps: dict[str, int | None], global_cap: int = 0) -> AdmissionQueue:
    return AdmissionQueue(lambda target: caps.get(target[1]), global_cap)


def test_fifo_within_a_target_with_priorities() -> None:
    q = queue({"t": 10})
    for name in ("op03", "op01", "op02"):
        q.observe(entry(name))
    q.observe(entry("op09", priority=5))
    assert q.pick() == [("ns", "op09"), ("ns", "op01"), ("ns", "op02"), ("ns", "op03")]


def test_max_concurrent_counts_active_and_reserved() -> None:
    q = queue({"t": 2})
    q.observe(entry("op01", state="running"))
    for name in ("op02", "op03", "op04"):
        q.observe(entry(name))
    assert q.pick() == [("ns", "op02")]
    assert q.pick() == []  # op01 running + op02 reserved
    q.observe(entry("op02", state="scheduled"))  # the admission went through
    assert q.pick() == []
    q.observe(entry("op01", state="completed"))  # a slot frees up
    assert q.pick() == [("ns", "op03")]
    assert q.active_count(("ns", "t")) == 2


def test_lost_race_puts_the_operation_back_in_line() -> None:
    q = queue({"t": 1})
    q.observe(entry("op01"))
    q.observe(entry("op02"))
    assert q.pick() == [("ns", "op01")]
    q.release(("ns", "op01"))
    assert q.pick() == [("ns", "op01")]  # still first in line


def test_cancelled_or_deleted_operations_leave_the_queue() -> None:
    q = queue({"t": 5})
    q.observe(entry("op01"))
    q.observe(entry("op02"))
    q.observe(entry("op01", state="failed"))
    q.forget(("ns", "op02"))
    assert q.pick() == []
    assert q.stats().waiting == {}


def test_global_cap_and_turns_between_targets() -> None:
    q = queue({"a": 10, "b": 10}, global_cap=3)
    for name in ("op01", "op02", "op03"):
        q.observe(entry(name, target="a"))
        q.observe(entry(name.replace("op", "ob"), target="b"))
    picked = q.pick()
    assert len(picked) == 3
    assert {k[1][:2] for k in picked} == {"op", "ob"}  # both targets got a turn
    assert q.total_active() == 3
    assert q.pick() == []


def ns_entry(namespace: str, name: str, target: str, i: int) -> QueueEntry:
    return QueueEntry(
        namespace=namespace,
        name=name,
        target=(namespace, target),
        state="queued",
        priority=0,
        queued_at=f"2026-01-01T00:{i // 60:02d}:{i % 60:02d}Z",
        terminal=False,
    )


@pytest.mark.parametrize("greedy_targets", [1, 50])
def test_a_small_namespace_is_not_starved_by_a_big_one(greedy_targets: int) -> None:
    """issue 13 fair share: namespace `big` has 500 queued operations (on 1 or on 50 targets, queued first),
    `small` has 5; the global cap is 20. One admission round (one `pick`) starts all 5 of `small`: namespaces
    take turns, not targets, so more targets or more operations buy no bigger share."""
    q = AdmissionQueue(lambda target: 100, global_cap=20)
    for i in range(500):
        q.observe(ns_entry("big", f"b{i:03d}", f"t{i % greedy_targets}", i))
    for i in range(5):
        q.observe(ns_entry("small", f"s{i}", "t", 600 + i))
    picked = q.pick()
    assert len(picked) == 20
    assert sorted(k for k in picked if k[0] == "small") == [("small", f"s{i}") for i in range(5)]


def test_targets_of_one_namespace_take_turns_within_its_share() -> None:
    q = AdmissionQueue(lambda target: 100, global_cap=4)
    for i in range(10):
        q.observe(ns_entry("a", f"x{i}", "x", i))
        q.observe(ns_entry("a", f"y{i}", "y", i))
    picked = q.pick()
    assert sorted(k[1][0] for k in picked) == ["x", "x", "y", "y"]


def test_weighted_turns_between_namespaces() -> None:
    """A DelegationPolicy weight of 3: three admissions per turn for `heavy` where `light` gets one."""
    q = AdmissionQueue(lambda target: 100, global_cap=8, namespace_weight=lambda ns: 3 if ns == "heavy" else 1)
    for i in range(20):
        q.observe(ns_entry("heavy", f"h{i:02d}", "t", i))
        q.observe(ns_entry("light", f"l{i:02d}", "t", i))
    picked = q.pick()
    assert sorted(k[0] for k in picked) == ["heavy"] * 6 + ["light"] * 2


def test_a_namespace_ceiling_bounds_all_its_targets() -> None:
    """A DelegationPolicy's maxConcurrent: at most 3 active operations in `capped` over all its targets
    (reserved and active both count); other namespaces are not limited by it."""
    q = AdmissionQueue(lambda target: 10, namespace_capacity=lambda ns: 3 if ns == "capped" else None)
    for i in range(5):
        q.observe(ns_entry("capped", f"a{i}", "a", i))
        q.observe(ns_entry("capped", f"b{i}", "b", i))
        q.observe(ns_entry("free", f"f{i}", "f", i))
    picked = q.pick()
    assert len([k for k in picked if k[0] == "capped"]) == 3
    assert len([k for k in picked if k[0] == "free"]) == 5
    assert q.pick() == []  # the reserved 3 hold the ceiling
    for key in [k for k in picked if k[0] == "capped"][:1]:
        q.observe(QueueEntry(namespace="capped", name=key[1], target=("capped", key[1][0]), state="completed",
                             priority=0, queued_at="", terminal=True))  # fmt: skip
    assert len(q.pick()) == 1  # one finished: one more of `capped` starts


def test_unknown_and_external_targets_are_never_admitted() -> None:
    q = queue({"t": 5, "ext": None})
    q.observe(entry("op01", target="ext"))
    q.observe(entry("op02", target="missing"))
    assert q.pick() == []
    assert q.stats().waiting == {("ns", "ext"): 1, ("ns", "missing"): 1}


def test_requeued_operation_takes_its_new_place() -> None:
    q = queue({"t": 1})
    q.observe(entry("op01", queued_at="2026-01-01T00:00:05Z"))
    q.observe(entry("op02", queued_at="2026-01-01T00:00:06Z"))
    q.observe(entry("op01", queued_at="2026-01-01T00:00:09Z"))  # re-queued later
    assert q.pick() == [("ns", "op02")]


def test_pick_limit() -> None:
    q = queue({"t": 100})
    for i in range(10):
        q.observe(entry(f"op{i:02d}"))
    assert len(q.pick(limit=4)) == 4
    assert len(q.pick()) == 6


# --------------------------------------------------------------------------------------------- work queue


async def _drain(wq: WorkQueue[str], ready: asyncio.Event, until: float = 1.0) -> None:
    task = asyncio.create_task(wq.run(ready))
    await asyncio.sleep(until)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_workqueue_collapses_and_reruns() -> None:
    calls: list[str] = []
    running: set[str] = set()
    overlap: list[str] = []

    async def process(key: str) -> float | None:
        if key in running:
            overlap.append(key)
        running.add(key)
        calls.append(key)
        await asyncio.sleep(0.05)
        if calls.count(key) == 1 and key == "a":
            wq.add("a")  # an event while processing: exactly one more run
        running.discard(key)
        return None

    wq: WorkQueue[str] = WorkQueue(process, workers=4)
    for key in ("a", "a", "b", "a"):
        wq.add(key)
    ready = asyncio.Event()
    ready.set()
    await _drain(wq, ready, 0.4)
    assert sorted(calls) == ["a", "a", "b"]
    assert overlap == []


async def test_workqueue_delays_and_bounded_retries() -> None:
    calls: list[tuple[str, float]] = []
    loop = asyncio.get_running_loop()
    start = loop.time()

    async def process(key: str) -> float | None:
        calls.append((key, loop.time() - start))
        if key == "flaky":
            raise RuntimeError("API unavailable")
        return None

    errors: list[str] = []
    wq: WorkQueue[str] = WorkQueue(
        process, workers=2, max_retries=2, base_backoff=0.05, on_error=lambda k, e: errors.append(k)
    )
    wq.add_after("later", 0.3)
    wq.add("flaky")
    ready = asyncio.Event()
    ready.set()
    await _drain(wq, ready, 0.8)
    later = [t for k, t in calls if k == "later"]
    assert len(later) == 1 and later[0] >= 0.28
    assert [k for k, _ in calls].count("flaky") == 3  # first try + 2 retries, then it rests
    assert errors == ["flaky"] * 3
