"""Restart and memory at 100,000 stored operations (issue 15), without a cluster.

A restart used to list (and decode) every stored operation before admitting anything: about two minutes at
100,000. Now the start-up listing asks only for the unfinished ones (the field selector
`status.runState!=completed,status.runState!=failed`, where the server serves the CRD's selectableFields) and
falls back to the full listing where it does not (400); the finished ones reach the cache through Kopf's own
listing while admissions already run. Aspects covered:

- the listing's requests: unfinished operations by field selector; the 400 fallback lists them all and keeps the
  run-state label mirror (the server cannot select); a 500 on the unfinished listing fails the attempt (retried by
  the runtime's loop, never skipped);
- a settled operation that arrives after its still-running Job (Kopf streams operations and Jobs side by side) is
  reconciled, so its Job is still stopped;
- memory per finished operation: Kopf keeps no per-object memory for it (`SettledMemories`), the admission
  queue no entry, the slim record shares its repeated strings, and only what the start-up listing found is
  tracked for the ghost check.
"""

from __future__ import annotations

import asyncio
import dataclasses
import sys
from collections.abc import Iterator
from typing import Any

import pytest

from dops.domain.reconciling import QueueEntry
from dops.domain.settings import OperatorSettings
from dops.handlers.operator import SettledMemories, finished_operation
from dops.handlers.runtime import Engine, Runtime
from dops.k8s import ApiError, BadRequest
from dops.reconcile.gateway import UNFINISHED_SELECTOR
from dops.scheduler import AdmissionQueue, Scheduler
from tests.unit.test_reconcile_ghosts import ScriptedGateway, reconciler
from tests.workload_builders import job, operation

JSON = dict[str, Any]
T1 = "2026-01-01T00:00:05Z"


def settled(name: str, uid: str, rv: str = "30") -> JSON:
    """A completed operation the operator has processed (its Succeeded condition written after the end)."""
    op = operation(name, state="completed", uid=uid, rv=rv, completedAt=T1, job=f"{name}-1")
    op["status"]["conditions"] = [
        {"type": "Succeeded", "status": "True", "reason": "Completed", "message": "done", "lastTransitionTime": T1}
    ]
    return op


class ListingGateway(ScriptedGateway):
    """Records every listing request; answers the selector listing with 400 (`selects=False`) or another
    error (`fail`)."""

    def __init__(self, selects: bool = True, fail: ApiError | None = None) -> None:
        super().__init__()
        self.listed["target"] = []
        self.selects = selects
        self.fail = fail
        self.requests: list[tuple[str, str]] = []

    def list_pages(
        self, kind: str, namespaces: tuple[str, ...] = (), page_size: int = 500, field_selector: str = ""
    ) -> Iterator[list[JSON]]:
        self.requests.append((kind, field_selector))
        if field_selector and self.fail is not None:
            raise self.fail
        if field_selector and not self.selects:
            raise BadRequest('field label not supported: "status.runState"', code=400, reason="BadRequest")
        items = self.listed[kind]
        if field_selector:
            items = [o for o in items if o.get("status", {}).get("runState") not in ("completed", "failed")]
        yield list(items)

    def fields_selectable(self, namespaces: tuple[str, ...] = ()) -> bool:
        raise AssertionError("the start-up listing already says whether the server selects by status.runState")


def listed_runtime(gateway: ListingGateway, kopf_lists: bool = True) -> Runtime:
    r, admission = reconciler(gateway)
    r.settings = OperatorSettings(default_max_concurrent=1, log_archive="/tmp/unused", run_state_label="auto")
    runtime = Runtime.__new__(Runtime)  # only what the listing uses: the engine and the namespaces
    runtime.namespaces = ()
    runtime.engine = Engine(admission, Scheduler(admission, r.enqueue), r, kopf_lists=kopf_lists)
    gateway.listed["op"] = [
        operation("queued", state="queued", job=None, attempt=None, uid="uid-q"),
        operation("running", state="running", uid="uid-r"),
        settled("done", "uid-d"),
    ]
    asyncio.run(runtime._list(runtime.engine))
    return runtime


def test_the_start_up_listing_asks_only_for_unfinished_operations() -> None:
    gateway = ListingGateway()
    runtime = listed_runtime(gateway)
    assert gateway.requests == [("target", ""), ("job", ""), ("pod", ""), ("op", UNFINISHED_SELECTOR)]
    assert sorted(k[1] for k in runtime.reconciler.cache.ops) == ["queued", "running"]  # the finished one later
    assert runtime.reconciler.settings.run_state_label == "never"  # selectable: no label mirror


def test_a_server_that_cannot_select_gets_the_full_listing() -> None:
    """The twin: a 400 on the selector (before Kubernetes 1.31) lists every operation, and the label is kept."""
    gateway = ListingGateway(selects=False)
    runtime = listed_runtime(gateway)
    assert gateway.requests[-2:] == [("op", UNFINISHED_SELECTOR), ("op", "")]
    assert sorted(k[1] for k in runtime.reconciler.cache.ops) == ["done", "queued", "running"]
    assert runtime.reconciler.settings.run_state_label == "always"


def test_a_term_after_a_deposition_lists_every_operation() -> None:
    """Its engine is newer than Kopf's listing (only changes reach it): the finished ones must come from the term's
    own listing, or a re-elected leader would not know them until the periodic resync (never with it off)."""

    class Probed(ListingGateway):
        def fields_selectable(self, namespaces: tuple[str, ...] = ()) -> bool:
            return True

    gateway = Probed()
    runtime = listed_runtime(gateway, kopf_lists=False)
    assert gateway.requests[-1] == ("op", "")
    assert sorted(k[1] for k in runtime.reconciler.cache.ops) == ["done", "queued", "running"]
    assert runtime.reconciler.settings.run_state_label == "never"  # decided by the probe instead


def test_a_500_on_the_unfinished_listing_fails_the_attempt() -> None:
    """Not taken for "cannot select": the attempt fails, and `_list_until_done` retries it from scratch."""
    gateway = ListingGateway(fail=ApiError("Internal error", code=500, reason="InternalError"))
    with pytest.raises(ApiError):
        listed_runtime(gateway)
    assert gateway.requests[-1] == ("op", UNFINISHED_SELECTOR)


def test_a_settled_operation_seen_after_its_running_job_is_reconciled() -> None:
    r, _ = reconciler(ScriptedGateway())
    r.job_seen(job("done-1", operation="done", owner_uid="uid-d", uid="uid-job", active=1))  # no operation yet
    assert ("ns", "done") in r.queue._pending
    asyncio.run(r.reconcile(("ns", "done")))  # the work queue runs it: no operation cached, nothing to act for
    r.queue._pending.clear()
    r.operation_seen(settled("done", "uid-d"))
    assert ("ns", "done") in r.queue._pending  # its Job still runs: it is stopped


def test_a_settled_operation_without_a_lingering_job_is_not_reconciled() -> None:
    """The twin: a settled operation whose Job finished and has its TTL needs nothing."""
    r, _ = reconciler(ScriptedGateway())
    finished = job("done-1", operation="done", owner_uid="uid-d", uid="uid-job", ttl=60, succeeded=1)
    finished["status"]["conditions"] = [{"type": "Complete", "status": "True"}]
    r.job_seen(finished)
    r.queue._pending.clear()
    r.operation_seen(settled("done", "uid-d"))
    assert ("ns", "done") not in r.queue._pending


def test_a_term_after_a_deposition_stops_the_job_of_a_settled_operation() -> None:
    """A deposed leader wrote an operation's end, then its fence refused the Job's deletion. The next term's full
    listing finds the operation settled: its still-running Job must bring it into the work queue, because no event
    will ever come for a Job that just runs on (chaos-real, seed 754026: two Jobs active 140 s after quiescence)."""

    class Probed(ListingGateway):
        def fields_selectable(self, namespaces: tuple[str, ...] = ()) -> bool:
            return True

    gateway = Probed()
    gateway.listed["job"] = [job("done-1", operation="done", owner_uid="uid-d", uid="uid-job", active=1)]
    runtime = listed_runtime(gateway, kopf_lists=False)
    assert ("ns", "done") in runtime.reconciler.queue._pending


def test_a_term_after_a_deposition_leaves_a_settled_operation_with_a_finished_job_alone() -> None:
    """The twin: its Job finished and has its TTL, so only the unsettled operations are queued."""

    class Probed(ListingGateway):
        def fields_selectable(self, namespaces: tuple[str, ...] = ()) -> bool:
            return True

    gateway = Probed()
    finished = job("done-1", operation="done", owner_uid="uid-d", uid="uid-job", ttl=60, succeeded=1)
    finished["status"]["conditions"] = [{"type": "Complete", "status": "True"}]
    gateway.listed["job"] = [finished]
    runtime = listed_runtime(gateway, kopf_lists=False)
    assert sorted(k[1] for k in runtime.reconciler.queue._pending) == ["queued", "running"]


@pytest.mark.parametrize(
    ("job_state", "lingers"),
    [
        ({"active": 1}, True),  # runs on: to be stopped
        ({"succeeded": 1, "conditions": [{"type": "Complete", "status": "True"}]}, True),  # finished, no TTL yet
        ({"succeeded": 1, "ttl": 60, "conditions": [{"type": "Complete", "status": "True"}]}, False),
        ({"active": 1, "deleting": True}, False),  # being deleted already
    ],
)
def test_the_safety_net_finds_settled_operations_whose_job_lingers(job_state: JSON, lingers: bool) -> None:
    """The backstop for a lost step that no listing brings back either (the term had already started)."""
    r, _ = reconciler(ScriptedGateway())
    conditions = job_state.pop("conditions", None)
    lingering = job("done-1", operation="done", owner_uid="uid-d", uid="uid-job", **job_state)
    if conditions:
        lingering["status"]["conditions"] = conditions
    r.operation_seen(settled("done", "uid-d"))
    r.operation_seen(operation("running", state="running", uid="uid-r"))
    r.job_seen(lingering)
    r.job_seen(job("running-1", operation="running", owner_uid="uid-r", uid="uid-job-r", active=1))
    assert r.lingering_jobs() == ([("ns", "done")] if lingers else [])
    r.job_deleted(lingering)
    assert r.lingering_jobs() == []  # a tombstone needs nothing


def test_the_safety_net_looks_at_an_earlier_attempts_job_only_while_it_runs() -> None:
    """A finished Job of an earlier attempt without a TTL is no reason to reconcile (no plan acts on it: it would
    be queued every interval for nothing); one that still runs is (the terminal plan stops it)."""
    r, _ = reconciler(ScriptedGateway())
    op = settled("done", "uid-d")
    op["status"].update(attempt=2, jobName="done-2")
    r.operation_seen(op)
    earlier = job("done-1", operation="done", owner_uid="uid-d", uid="uid-job-1", succeeded=1)
    earlier["status"]["conditions"] = [{"type": "Failed", "status": "True"}]
    r.job_seen(earlier)
    assert r.lingering_jobs() == []
    r.job_seen(job("done-1", operation="done", owner_uid="uid-d", uid="uid-job-1b", active=1))
    assert r.lingering_jobs() == [("ns", "done")]


def test_kopf_keeps_no_memory_of_a_finished_operation() -> None:
    memories = SettledMemories()

    async def recall(body: JSON) -> None:
        await memories.recall(body, noticed_by_listing=True)

    running = operation("op", state="running", uid="uid-op")
    asyncio.run(recall(running))
    assert list(memories._items) == ["uid-op"]  # while it runs, as Kopf keeps it
    asyncio.run(recall(settled("op", "uid-op")))
    assert memories._items == {}  # finished: the earlier memory is dropped and none is kept
    asyncio.run(recall(job("op-1", uid="uid-job")))
    assert list(memories._items) == ["uid-job"]  # Jobs (no runState) as before
    assert finished_operation(settled("op", "uid-op")) and not finished_operation(running)


def test_a_slim_operation_shares_its_repeated_strings() -> None:
    r, _ = reconciler(ScriptedGateway())
    a, b = settled("a", "uid-a"), settled("b", "uid-b")
    b["metadata"]["namespace"] = "".join(["n", "s"])  # equal, but another string object (as JSON decoding makes)
    for op in (a, b):
        r.operation_seen(op)
    slim_a, slim_b = r.cache.ops[("ns", "a")], r.cache.ops[("ns", "b")]
    assert slim_a["slim"] and slim_b["metadata"]["namespace"] is slim_a["metadata"]["namespace"]
    assert slim_b["status"]["runState"] is sys.intern("completed")
    assert slim_b["status"]["conditions"][0]["reason"] is sys.intern("Completed")
    assert "deletionTimestamp" not in slim_b["metadata"]  # absent fields are not kept as None


def test_only_operations_the_start_up_listing_found_are_tracked() -> None:
    """Kopf's own listing of 100,000 operations used to fill a set of 100,000 keys until the ghost check."""
    r, _ = reconciler(ScriptedGateway())
    r.prime("op", [operation("listed", state="queued", job=None, attempt=None, uid="uid-l")])
    r.operation_seen(operation("listed", state="queued", job=None, attempt=None, uid="uid-l", rv="11"))
    r.operation_seen(settled("streamed", "uid-s"))
    assert r.confirmed == {("op", ("ns", "listed"))}


def test_the_admission_queue_keeps_no_entry_for_a_finished_operation() -> None:
    """Its end still frees its slot (the next in line is admitted); nothing of it stays behind."""
    q = AdmissionQueue(lambda target: 1, 0)
    running = QueueEntry("ns", "a", ("ns", "t"), "running", 0, "2026-01-01T00:00:01Z", False)
    q.observe(running)
    q.observe(QueueEntry("ns", "b", ("ns", "t"), "queued", 0, "2026-01-01T00:00:02Z", False))
    assert q.pick() == []  # the running one holds the only slot
    assert q.observe(dataclasses.replace(running, state="completed", terminal=True)) is True
    assert q.pick() == [("ns", "b")]
    assert len(q) == 1  # only b: the finished one left nothing
    assert q.observe(QueueEntry("ns", "c", ("ns", "t"), "failed", 0, "", True)) is False  # nothing changes
    assert len(q) == 1


def test_counting_operations_while_the_cache_fills() -> None:
    """`/metrics` counts the cache from its own thread while Kopf's listing still adds operations: it used to fail
    with "dictionary changed size during iteration" on every scrape during that listing (minutes at 100,000)."""
    r, _ = reconciler(ScriptedGateway())
    cache = r.cache

    class Racing(dict[str, Any]):
        """A cached operation whose read lets another operation in, as the event loop does between two reads."""

        def get(self, key: str, default: Any = None) -> Any:
            cache.ops[("ns", f"new-{len(cache.ops)}")] = {"metadata": {}, "status": {"runState": "queued"}}
            return super().get(key, default)

    cache.ops[("ns", "racing")] = Racing(metadata={}, status={"runState": "running"})
    assert cache.counts() == {"running": 1}  # a snapshot: what was cached when counting began
