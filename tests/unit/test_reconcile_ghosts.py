"""The reconcile never keeps ghosts (issue 11 #3), without a cluster: the `Reconciler` with a scripted gateway.

Aspects covered:
- a write that meets 404 drops the operation from the cache and the admission queue (its slot is free),
  but never a newer operation of the same name;
- an admission that did not happen (lost race) takes the operation out of the admission queue for a
  while (not re-picked at once: no tight loop of PATCHes), and puts it back afterwards;
- a lost compare-and-set reads the operation that won into the cache: the next reconcile plans from it, not
  from the stale copy that lost (no second losing write), and a read that finds nothing drops it as a 404 does;
- the periodic resync drops cached operations and Jobs a fresh listing lacks (confirmed gone by a GET),
  keeps one created after the listing, and takes in listed objects the cache lacks.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from typing import Any

from dops.domain.settings import OperatorSettings
from dops.reconcile import Reconciler
from dops.reconcile.gateway import Gone
from dops.scheduler import AdmissionQueue
from tests.workload_builders import job, operation

JSON = dict[str, Any]


class ScriptedGateway:
    """What the tests need of `dops.reconcile.gateway.Gateway`: listings, UIDs by name, status patches."""

    def __init__(self) -> None:
        self.listed: dict[str, list[JSON]] = {"op": [], "job": [], "pod": []}
        self.stored: dict[tuple[str, str, str], str] = {}  # (kind, namespace, name) → uid
        self.patches: list[str] = []
        self.cas_answer: str = "gone"  # "gone" (404) or "lost" (422 test failed)
        self.current: dict[str, JSON] = {}  # name → the operation a GET finds after a lost race (absent: 404)
        self.reads: list[str] = []

    def list_pages(self, kind: str, namespaces: tuple[str, ...] = (), page_size: int = 500) -> Iterator[list[JSON]]:
        yield list(self.listed[kind])

    def uid_of(self, kind: str, namespace: str, name: str) -> str | None:
        return self.stored.get((kind, namespace, name))

    def patch_status_cas(self, namespace: str, name: str, ops: list[JSON]) -> JSON | None:
        self.patches.append(name)
        if self.cas_answer == "gone":
            raise Gone("op", namespace, name)
        return None

    def read(self, kind: str, namespace: str, name: str) -> JSON | None:
        self.reads.append(name)
        return self.current.get(name) if kind == "op" else None

    def post_event(self, *args: Any) -> None:
        pass

    def list_policies(self) -> list[JSON]:
        return []  # no DelegationPolicy (issue 13)


def reconciler(gateway: ScriptedGateway) -> tuple[Reconciler, AdmissionQueue]:
    settings = OperatorSettings(default_max_concurrent=1, log_archive="/tmp/unused")
    holder: dict[str, Reconciler] = {}
    admission = AdmissionQueue(lambda target: holder["r"].capacity(target), 0)
    r = Reconciler(settings=settings, gateway=gateway, admission=admission, kick=lambda: None)  # type: ignore[arg-type]
    holder["r"] = r
    return r, admission


def test_a_404_drops_the_operation_and_frees_its_slot() -> None:
    gateway = ScriptedGateway()
    r, admission = reconciler(gateway)
    r.operation_seen(operation("ghost", state="queued", job=None, attempt=None, uid="uid-ghost"))
    r.operation_seen(operation("later", state="queued", job=None, attempt=None, uid="uid-later", rv="11"))
    assert admission.pick() == [("ns", "ghost")]  # first in line, takes the only slot
    asyncio.run(r.reconcile(("ns", "ghost")))
    assert gateway.patches == ["ghost"]  # one PATCH, then it is known to be gone
    assert ("ns", "ghost") not in r.cache.ops
    assert admission.pick() == [("ns", "later")]


def test_a_404_never_drops_a_newer_operation_of_the_same_name() -> None:
    gateway = ScriptedGateway()
    r, _ = reconciler(gateway)
    old = operation("op", state="queued", job=None, attempt=None, uid="uid-old")
    r.operation_seen(old)
    view = r.view(("ns", "op"), r.cache.ops[("ns", "op")])
    r.operation_seen(operation("op", state="queued", job=None, attempt=None, uid="uid-new", rv="3"))
    assert r._gone(view, Gone("op", "ns", "op")) is False
    assert r.cache.operation_uid(("ns", "op")) == "uid-new"


def test_an_admission_that_did_not_happen_backs_off() -> None:
    gateway = ScriptedGateway()
    gateway.cas_answer = "lost"  # the cache is stale (say, a missed event): every CAS fails its test
    r, admission = reconciler(gateway)
    r.operation_seen(operation("stale", state="queued", job=None, attempt=None))
    gateway.current["stale"] = operation("stale", state="queued", job=None, attempt=None)  # a GET tells no more
    assert admission.pick() == [("ns", "stale")]
    asyncio.run(r.reconcile(("ns", "stale")))
    assert admission.pick() == []  # not offered again at once
    assert r.queue.delayed == 1
    r._readmit_at[("ns", "stale")] = time.monotonic()  # the backoff is over
    asyncio.run(r.reconcile(("ns", "stale")))  # picked? no: it only goes back in line
    assert admission.pick() == [("ns", "stale")]
    asyncio.run(r.reconcile(("ns", "stale")))
    assert r._admit_failures[("ns", "stale")] == 2 and gateway.patches == ["stale", "stale"]


def test_a_lost_compare_and_set_reads_the_operation_that_won() -> None:
    gateway = ScriptedGateway()
    gateway.cas_answer = "lost"
    r, admission = reconciler(gateway)
    r.operation_seen(operation("op", state="queued", job=None, attempt=None, rv="10"))
    # Cancelled meanwhile (FiftyOne's set_failed); its watch event has not arrived.
    gateway.current["op"] = operation("op", state="failed", job=None, attempt=None, rv="11")
    assert admission.pick() == [("ns", "op")]
    asyncio.run(r.reconcile(("ns", "op")))
    assert gateway.patches == ["op"] and gateway.reads == ["op"]
    assert r.cache.ops[("ns", "op")]["status"]["runState"] == "failed"  # what won, not the stale copy
    assert admission.pick() == []  # a failed operation is not admitted again


def test_a_lost_compare_and_set_on_a_deleted_operation_drops_it() -> None:
    gateway = ScriptedGateway()
    gateway.cas_answer = "lost"
    r, admission = reconciler(gateway)
    r.operation_seen(operation("op", state="queued", job=None, attempt=None))
    assert admission.pick() == [("ns", "op")]
    asyncio.run(r.reconcile(("ns", "op")))  # the CAS lost, and the GET found nothing: deleted meanwhile
    assert ("ns", "op") not in r.cache.ops and admission.pick() == []


def test_the_resync_drops_what_is_gone_and_takes_in_what_is_missing() -> None:
    gateway = ScriptedGateway()
    r, admission = reconciler(gateway)
    kept = operation("kept", state="running", job="kept-1", uid="uid-kept")
    r.operation_seen(operation("ghost", state="queued", job=None, attempt=None, uid="uid-ghost"))
    r.operation_seen(kept)
    r.operation_seen(operation("young", state="queued", job=None, attempt=None, uid="uid-young"))
    r.job_seen(job("kept-1", operation="kept", owner_uid="uid-kept", uid="uid-kept-job", active=1))
    gateway.listed["op"] = [kept, operation("missed", state="queued", job=None, attempt=None, uid="uid-missed")]
    gateway.stored[("op", "ns", "young")] = "uid-young"  # created after the listing: a GET finds it
    gateway.stored[("op", "ns", "ghost")] = "uid-another"  # the name now holds another operation
    counts = asyncio.run(r.resync())
    assert counts == {"job": (0, 1), "pod": (0, 0), "op": (1, 1)}
    assert sorted(k[1] for k in r.cache.ops) == ["kept", "missed", "young"]
    assert r.cache.job_for(r.cache.ops[("ns", "kept")])["gone"]  # type: ignore[index]
    assert ("ns", "ghost") not in [key for key in admission.pick(10)]
