"""The reconcile loop: watch events in, one level-triggered reconcile per operation out.

Event intake (`*_seen`, `*_deleted`) only updates the cache and queues the operation's key; it never
does I/O, so the Kopf handlers that call it are instant. The work queue runs `reconcile(key)`:

1. read the operation, its target, Job and pods from the cache;
2. `plan(view)` (pure, `dops.domain.reconciling`) decides the steps;
3. execute the steps in order, stopping at the first lost race (the next event reconciles again);
4. put every object a write returns into the cache at once (so the next reconcile does not repeat it);
5. release an admission reservation that did not turn into an admission;
6. requeue after the plan's delay (grace periods, retention) — one delay heap, no timer per operation.

A Job create the API server refuses (403, 422 from admission, ...) is not an error of the reconcile: the
domain decides (`job_create_failed`) and the reconcile records it on the operation (`JobCreateFailed`
condition, Warning Event) and retries with a capped backoff of its own for as long as the refusal
lasts, logging each retry; only transient errors go to the work queue's bounded retries.

Admission itself (choosing which queued operations run) belongs to the scheduler, injected as
`Admission` (the scheduler's queue) plus a `kick` callable, so this package does not import it.
A safety-net pass re-queues every unfinished operation each `reconcile_interval_seconds`.

The cache must not keep ghosts (issue 11 #3). After a watch's 410 Kopf relists and emits nothing for the
objects that vanished in the gap, so:

- a write that meets 404 (`Gone`) drops the operation (if the cached one still has the UID written: a
  new operation of the same name is not touched) from the cache and the admission queue, or turns the
  Job into a tombstone; it is never taken for a lost race, which would be retried forever;
- an admission that did not happen backs off: the operation leaves the admission queue for 0.5 s, doubling
  up to 30 s, instead of being picked again at once (`_admission_failed`);
- every `resync_interval_seconds` operations, Jobs and pods are listed afresh (paged) and the cache is
  reconciled against the listing: what is missing is added, what is cached but not listed is confirmed
  gone with a GET and dropped — the informer resync client-go has and Kopf lacks (`resync`).
"""

from __future__ import annotations

import asyncio
import ctypes
import dataclasses
import datetime as dt
import gc
import logging
import time
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Protocol, TypeVar

from ..api import constants as c
from ..api.times import parse_time, utcnow
from ..domain.jobs import job_ttl_patch
from ..domain.labels import labels_out_of_date, mirrors_run_state, resolve_run_state_label
from ..domain.policy import DelegationPolicy, namespace_ceiling, namespace_weight, policy_from_resource
from ..domain.reconciling import (
    Admit,
    ArchiveResult,
    CreateErrorKind,
    CreateJob,
    DeleteOperation,
    Plan,
    QueueEntry,
    QueueOperation,
    SetJobTTL,
    Step,
    StopJob,
    SyncRunStateLabel,
    Terminate,
    View,
    WriteStatus,
    attempt_job_names,
    explained,
    finished_processed,
    job_create_failed,
    plan,
    queue_entry,
    settled_job_needs_work,
    state_mark,
    terminal_patch,
)
from ..domain.settings import OperatorSettings
from ..domain.targets import resolve_target, target_from_resource
from ..k8s import ApiError
from .cache import Cache, Key, newer
from .gateway import Gateway, Gone
from .metrics import Metrics
from .workqueue import WorkQueue

log = logging.getLogger(__name__)

JSON = dict[str, Any]
T = TypeVar("T")
READMIT_BASE_SECONDS = 0.5  # an admission that did not happen: the operation waits this long, doubling ...
READMIT_MAX_SECONDS = 30.0  # ... up to this, before it is offered to the scheduler again
POLICY_REFRESH_SECONDS = 5.0  # DelegationPolicies are re-listed at most this often, and only to admit
# An operation `scheduled` or `running` in the same state for `verify_after_seconds` (on the operator's clock)
# has its Job and pods re-read from the API server before it is reconciled, then again at most every twice that:
# a fact a watch gap hid (a Job or pod deleted while Kopf re-listed, a listing older than a deletion) cannot keep
# it stuck until the periodic resync (minutes) or its start deadline (10 minutes by default).


class Admission(Protocol):
    """What the reconcile needs from the scheduler's queue."""

    def observe(self, entry: QueueEntry) -> bool: ...

    def forget(self, key: Key) -> None: ...

    def is_reserved(self, key: Key) -> bool: ...

    def release(self, key: Key) -> None: ...


class Reconciler:
    def __init__(
        self,
        *,
        settings: OperatorSettings,
        gateway: Gateway,
        admission: Admission,
        kick: Callable[[], None],
        metrics: Metrics | None = None,
        server_url: str = "",
        clock: Callable[[], dt.datetime] = utcnow,
        workers: int = 16,
        io_threads: int = 16,
    ) -> None:
        self.settings = settings
        self.gateway = gateway
        self.admission = admission
        self.kick = kick
        self.metrics = metrics or Metrics()
        self.server_url = server_url
        self.clock = clock
        self.cache = Cache()
        self.queue: WorkQueue[Key] = WorkQueue(
            self.reconcile,
            workers=workers,
            on_error=self._on_error,
            give_up_note=(
                "it is retried on its next event or by the safety-net pass "
                f"(every {settings.reconcile_interval_seconds} s)"
            ),
        )
        self.ready: asyncio.Event | None = None
        self._executor = ThreadPoolExecutor(max_workers=io_threads, thread_name_prefix="dops-io")
        self._background: set[asyncio.Future[Any]] = set()
        self._tasks: list[asyncio.Task[None]] = []
        self.first_admission: float | None = None  # loop time of the first admission (for the benchmark)
        self.confirmed: set[tuple[str, Key]] = set()  # objects Kopf's watch streams have shown since start
        self._primed: set[tuple[str, Key]] = set()  # objects the start-up listing found (until confirmed)
        self._tracking = True  # until the start-up listing has been checked against the watch streams
        self._create_refusals: dict[str, int] = {}  # refused Job creates in a row, per operation UID
        self._admit_failures: dict[Key, int] = {}  # admissions in a row that did not happen
        self._readmit_at: dict[Key, float] = {}  # out of the admission queue until (monotonic time)
        # The scope of the periodic resync: the namespaces the operator watches (the runtime sets it; () = all).
        self.namespaces: tuple[str, ...] = settings.watch_namespaces
        self._resync_removed: set[str] | None = None  # UIDs removed while a resync lists (not to be re-added)
        self._verified_at: dict[str, float] = {}  # operation UID → when its Job and pods were last re-read
        self._retry_after: dict[Key, float] = {}  # a sooner requeue asked for by a step (refused create)
        # operation UID → (state mark, when this operator first saw that state): graces run on our own clock
        self._seen: dict[str, tuple[str, dt.datetime]] = {}
        # The cluster's DelegationPolicies (issue 13), listed when an operation is about to be admitted.
        self.policies: tuple[DelegationPolicy, ...] = ()
        self.policy_refresh_seconds = POLICY_REFRESH_SECONDS
        self._policies_read_at: float | None = None

    # =============================================================================== intake (no I/O)

    def operation_seen(self, body: Mapping[str, Any]) -> str | None:
        """An operation event: cache it, tell the scheduler, reconcile it if it may need work. Returns its state."""
        compact = self.cache.put_operation(body)
        key = _key_of(body)
        if self._tracking and ("op", key) in self._primed:  # only what the start-up listing found is checked
            self.confirmed.add(("op", key))
        if compact is None:
            return None
        self._observe_admission(compact)
        if self.needs_attention(compact) or self._lingering_job(key, compact):
            self.enqueue(key)
        state = compact["status"].get("runState")
        return str(state) if state else None

    def operation_deleted(self, body: Mapping[str, Any]) -> None:
        key = _key_of(body)
        self._forget(key, str((body.get("metadata") or {}).get("uid") or ""))
        self._seen.pop(str((body.get("metadata") or {}).get("uid")), None)
        self._verified_at.pop(str((body.get("metadata") or {}).get("uid")), None)
        if self.cache.remove_operation(key, (body.get("metadata") or {}).get("uid")) is not None:
            self.admission.forget(key)
            self.kick()

    def job_seen(self, body: Mapping[str, Any]) -> None:
        job, key = self.cache.put_job(body)
        if self._tracking:
            self.confirmed.add(("job", _key_of(body)))
        if key is not None and self._job_matters(key, job):
            self.enqueue(key)

    def job_deleted(self, body: Mapping[str, Any]) -> None:
        self._removed(body)
        key = self.cache.delete_job(body)
        if key is not None and not self._settled(key):
            self.enqueue(key)

    def pod_seen(self, body: Mapping[str, Any]) -> None:
        key = self.cache.put_pod(body)
        if self._tracking:
            self.confirmed.add(("pod", _key_of(body)))
        if key is not None and not self._settled(key):
            self.enqueue(key)

    def pod_deleted(self, body: Mapping[str, Any]) -> None:
        self._removed(body)
        key = self.cache.delete_pod(body)
        if key is not None and not self._settled(key):
            self.enqueue(key)

    def _removed(self, body: Mapping[str, Any]) -> None:
        """An object was deleted: a resync listing taken before must not bring it back."""
        if self._resync_removed is not None:
            self._resync_removed.add(str((body.get("metadata") or {}).get("uid") or ""))

    def _forget(self, key: Key, uid: str) -> None:
        """Forget what the operator remembers about operation `uid` (its name `key` may be reused at once)."""
        if self._resync_removed is not None and uid:
            self._resync_removed.add(uid)
        self._create_refusals.pop(uid, None)
        if self.cache.operation_uid(key) in (uid, None):
            self._admit_failures.pop(key, None)
            self._readmit_at.pop(key, None)

    def _drop_operation(self, key: Key, uid: str, why: str) -> None:
        """Operation `uid` no longer exists though no DELETED event said so: drop it (not a newer namesake)."""
        self._forget(key, uid)
        if self.cache.remove_operation(key, uid or None) is not None:
            log.info("%s/%s (uid %s) no longer exists (%s); forgetting it", key[0], key[1], uid, why)
            self.admission.forget(key)
            self.kick()

    def target_seen(self, body: Mapping[str, Any]) -> None:
        target = target_from_resource(body, self.settings)
        if self._tracking:
            self.confirmed.add(("target", (target.namespace, target.name)))
        if self.cache.targets.get((target.namespace, target.name)) == target:
            return
        self.cache.targets[(target.namespace, target.name)] = target
        self._targets_changed(target.namespace)

    def target_deleted(self, body: Mapping[str, Any]) -> None:
        meta = body.get("metadata") or {}
        self.cache.targets.pop((str(meta.get("namespace")), str(meta.get("name"))), None)
        self._targets_changed(str(meta.get("namespace")))

    def _targets_changed(self, namespace: str) -> None:
        for key in self.cache.unadmitted_in(namespace):  # indexed: no scan of every cached operation per event
            self.enqueue(key)
        self.kick()

    # The cheap filters below keep settled operations (finished and processed) out of the work queue: after a
    # restart with 10,000 stored operations only those that may need a write are reconciled.
    def needs_attention(self, op: Mapping[str, Any]) -> bool:
        status = op.get("status") or {}
        if status.get("runState") not in ("completed", "failed") or not finished_processed(status):
            return True
        if (op.get("metadata") or {}).get("deletionTimestamp"):
            return False
        return self._retention_possible(op)

    def _retention_possible(self, op: Mapping[str, Any]) -> bool:
        spec = op.get("spec") or {}
        if spec.get("pinned"):
            return False
        ttl = spec.get("ttlSecondsAfterFinished")
        if isinstance(ttl, int) and not isinstance(ttl, bool):
            return ttl > 0
        target = resolve_target(
            str((op.get("metadata") or {}).get("namespace")),
            spec.get("delegationTarget"),
            self.cache.targets,
            self.settings,
        )
        if target is not None and target.ttl_seconds_after_finished is not None:
            return target.ttl_seconds_after_finished > 0
        return self.settings.ttl_seconds_after_finished > 0

    def _settled(self, key: Key) -> bool:
        op = self.cache.ops.get(key)
        if op is None:
            return False
        status = op.get("status") or {}
        return status.get("runState") in ("completed", "failed") and finished_processed(status)

    def _lingering_job(self, key: Key, op: Mapping[str, Any]) -> bool:
        """A settled operation has a cached Job that still needs something (a stop, its TTL). Its Job's event may
        come first: the start-up listing leaves finished operations to Kopf's own listing, which streams
        operations and Jobs side by side, and that Job's reconcile found no operation to act for."""
        uid = str((op.get("metadata") or {}).get("uid") or "")
        return any(self._job_matters(key, job) for job in self.cache.jobs_owned_by(uid))

    def _job_matters(self, key: Key, job: Mapping[str, Any]) -> bool:
        op = self.cache.ops.get(key)
        return op is None or not self._settled(key) or settled_job_needs_work(op, job)

    def lingering_jobs(self) -> list[Key]:
        """The settled operations whose cached Job still needs a reconcile (`settled_job_needs_work`): the safety
        net's backstop for a step lost half-way (the end written, the Job not stopped) that no event will ever
        bring back. Cached Jobs are few (a TTL removes them), unlike cached operations."""
        owners = {key for job in self.cache.jobs.values() if (key := self.cache.operation_of_job(job)) is not None}
        return sorted(key for key in owners if self._settled(key) and self._lingering_job(key, self.cache.ops[key]))

    def enqueue(self, key: Key, delay: float = 0.0) -> None:
        if delay > 0:
            self.queue.add_after(key, delay)
        else:
            self.queue.add(key)

    def prime(self, kind: str, items: Iterable[Mapping[str, Any]]) -> int:
        """Fill the cache from the start-up listing (one page of `kind`: op, target, job or pod at a time).

        Call `mark_ready()` once every page of every kind is in: only then may reconciles and admissions
        start. Kopf streams every object again (its own listing, then changes); objects it has not shown
        some time after start were deleted between the two listings, which the safety net checks with a
        GET (`_verify_unconfirmed`). Returns the number of operations queued for reconcile.
        """
        queued = 0
        for body in items:
            key = _key_of(body)
            self._primed.add((kind, key))
            if kind == "target":
                target = target_from_resource(body, self.settings)
                self.cache.targets[(target.namespace, target.name)] = target
            elif kind == "job":
                self.cache.put_job(body)
            elif kind == "pod":
                self.cache.put_pod(body)
            else:
                compact = self.cache.put_operation(body)
                if compact is None:
                    continue
                self.admission.observe(queue_entry(compact))
                # Jobs are primed before operations: a settled operation whose Job still runs is found here (a
                # deposed leader may have written the end but not stopped the Job; no event will come for it).
                if self.needs_attention(compact) or self._lingering_job(key, compact):
                    self.enqueue(key)
                    queued += 1
        return queued

    def mark_ready(self) -> None:
        """The cache is complete (primed): reconciles and admissions may start."""
        if self.ready is not None and not self.ready.is_set():
            self.ready.set()
            self.kick()

    def _observe_admission(self, compact: JSON) -> None:
        if self.admission.observe(queue_entry(compact)):
            self.kick()

    def capacity(self, target_key: tuple[str, str]) -> int | None:
        """maxConcurrent of a target (None: do not admit — unknown or external)."""
        target = resolve_target(target_key[0], target_key[1], self.cache.targets, self.settings)
        if target is None or target.external:
            return None
        return target.max_concurrent

    def namespace_capacity(self, namespace: str) -> int | None:
        """The DelegationPolicies' ceiling on a namespace's active operations (None: none applies)."""
        return namespace_ceiling(namespace, self.policies)

    def namespace_weight(self, namespace: str) -> int:
        """The namespace's admissions per turn under the global cap (DelegationPolicy weight; 1 without one)."""
        return namespace_weight(namespace, self.policies)

    # =============================================================================== running

    async def start(self) -> None:
        self.ready = asyncio.Event()
        self._tasks = [
            asyncio.create_task(self.queue.run(self.ready), name="dops-workqueue"),
            asyncio.create_task(self._safety_net(), name="dops-safety-net"),
            asyncio.create_task(self._resync_loop(), name="dops-resync"),
        ]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for future in list(self._background):
            future.cancel()
        self._executor.shutdown(wait=True, cancel_futures=True)

    async def _safety_net(self) -> None:
        """Re-queue every operation that is not finished (or not finished processing) each interval."""
        assert self.ready is not None
        await self.ready.wait()
        interval = float(self.settings.reconcile_interval_seconds)
        verified = False
        while True:
            await asyncio.sleep(interval)
            if not verified:
                verified = True
                await self._verify_unconfirmed()
                release_memory()  # Kopf's own start-up listing is over by now
            self.cache.sweep()
            for key, op in self.cache.iter_operations():
                if op.get("slim"):
                    continue  # settled (finished and processed) by construction: no need to parse its times again
                status = op.get("status") or {}
                if status.get("runState") not in ("completed", "failed") or not finished_processed(status):
                    self.enqueue(key)
            for key in self.lingering_jobs():
                self.enqueue(key)

    async def _resync_loop(self) -> None:
        """Every `resync_interval_seconds`: `resync()` (a failed one is logged and tried again next time)."""
        assert self.ready is not None
        await self.ready.wait()
        interval = float(self.settings.resync_interval_seconds)
        if interval <= 0:
            return
        while True:
            await asyncio.sleep(interval)
            try:
                await self.resync()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("the periodic resync failed (tried again in %.0f s): %s", interval, exc)

    async def resync(self) -> dict[str, tuple[int, int]]:
        """List operations, Jobs and pods afresh (paged) and reconcile the cache against the listing.

        Listed objects the cache lacks (or holds older) go through the usual intake, unless deleted since
        the listing began; cached objects the listing lacks are asked for with a GET (they may have been
        created after the listing) and dropped when that says they are gone. Returns, per kind, how many
        objects were (added or updated, dropped)."""
        out: dict[str, tuple[int, int]] = {}
        for kind in ("job", "pod", "op"):  # operations last: their reconciles need the rest
            self._resync_removed = set()
            try:
                out[kind] = await self._resync_kind(kind)
            finally:
                self._resync_removed = None
        if any(added or dropped for added, dropped in out.values()):
            counts = (f"{kind}s {added} added or updated, {dropped} dropped" for kind, (added, dropped) in out.items())
            log.info("resync: %s", ", ".join(counts))
        return out

    async def _resync_kind(self, kind: str) -> tuple[int, int]:
        present: set[tuple[str, str, str]] = set()  # (namespace, name, uid)
        added = 0
        pages = self.gateway.list_pages(kind, self.namespaces)
        while (page := await self._io(next, pages, None)) is not None:
            for body in page:
                meta = body.get("metadata") or {}
                uid = str(meta.get("uid") or "")
                present.add((str(meta.get("namespace") or ""), str(meta.get("name") or ""), uid))
                if self._resync_removed is not None and uid in self._resync_removed:
                    continue  # deleted since the listing was taken
                added += self._resync_put(kind, body)
        dropped = 0
        for namespace, name, uid in self._cached(kind):
            if (namespace, name, uid) in present or (self.namespaces and namespace not in self.namespaces):
                continue
            if await self._io(self.gateway.uid_of, kind, namespace, name) == uid:
                continue  # created after the listing
            dropped += 1
            if kind == "op":
                self._drop_operation((namespace, name), uid, "not found by the periodic resync")
            elif kind == "job":
                self._job_gone(namespace, name, uid)
            else:
                op_key = self.cache.pod_gone(namespace, name, uid)
                if op_key is not None:
                    self.enqueue(op_key)
        return added, dropped

    def _resync_put(self, kind: str, body: Mapping[str, Any]) -> int:
        """One listed object through the usual intake; 1 when the cache lacked it or held it older."""
        meta = body.get("metadata") or {}
        key = _key_of(body)
        rv, uid = meta.get("resourceVersion"), meta.get("uid")
        if kind == "op":
            current = self.cache.ops.get(key)
            known = current["metadata"] if current is not None else None
        elif kind == "job":
            known = self.cache.jobs.get(key)
        else:
            known = self.cache.cached_pod(body)
        if known is not None and known.get("uid") == uid and not known.get("gone"):
            cached_rv = known.get("resourceVersion")
            if rv == cached_rv or not newer(rv, cached_rv):
                return 0  # as cached, or the cache already holds a later version
        if kind == "op":
            self.operation_seen(body)
        elif kind == "job":
            self.job_seen(body)
        else:
            self.pod_seen(body)
        return 1

    def _cached(self, kind: str) -> list[tuple[str, str, str]]:
        """(namespace, name, uid) of the live objects of `kind` in the cache (tombstones excluded)."""
        if kind == "op":
            return [(k[0], k[1], str(op["metadata"].get("uid") or "")) for k, op in self.cache.iter_operations()]
        if kind == "job":
            items: Iterable[JSON] = list(self.cache.jobs.values())
        else:
            items = list(self.cache.iter_pods())
        return [
            (str(o.get("namespace") or ""), str(o.get("name") or ""), str(o.get("uid") or ""))
            for o in items
            if not o.get("gone")
        ]

    async def _verify_unconfirmed(self) -> None:
        """Objects the start-up listing found but no watch event has shown since: deleted in between? Ask."""
        pending = [item for item in self._primed if item not in self.confirmed]
        self._tracking = False
        self._primed.clear()
        self.confirmed.clear()
        for kind, key in pending:
            try:
                exists = await self._io(self.gateway.exists, kind, key[0], key[1])
            except ApiError as exc:
                # Never fatal: this runs in the safety-net task, which must outlive any API error (a stopped
                # safety net leaves every operation whose reconcile gave up stuck). The periodic resync and the
                # re-read of waiting operations catch what this check could not.
                log.warning("could not check whether %s %s/%s still exists: %s", kind, key[0], key[1], exc)
                continue
            if exists:
                continue
            log.info("%s %s/%s was deleted while the operator started; forgetting it", kind, key[0], key[1])
            if kind == "op":
                self.cache.remove_operation(key)
                self.admission.forget(key)
                self.kick()
            elif kind == "target":
                self.cache.targets.pop(key, None)
                self._targets_changed(key[0])
            elif kind == "job":
                job = self.cache.jobs.get(key)
                if job is not None:
                    self._job_gone(key[0], key[1], str(job.get("uid")))
            elif kind == "pod":
                op_key = self.cache.pod_gone(key[0], key[1], None)
                if op_key is not None:
                    self.enqueue(op_key)

    async def _io(self, fn: Callable[..., T], *args: Any) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, fn, *args)

    def _background_io(self, fn: Callable[..., Any], *args: Any) -> None:
        """Fire and forget (events, label mirrors): never delays a reconcile."""
        loop = asyncio.get_running_loop()
        future = loop.run_in_executor(self._executor, fn, *args)
        self._background.add(future)
        future.add_done_callback(self._background.discard)

    def _on_error(self, key: Key, exc: BaseException) -> None:
        self.metrics.reconcile_errors.labels(type(exc).__name__).inc()
        log.warning("reconcile of %s/%s failed (retried with backoff): %s", key[0], key[1], exc)

    # =============================================================================== reconcile

    def view(self, key: Key, op: JSON) -> View:
        spec = op.get("spec") or {}
        target = resolve_target(key[0], spec.get("delegationTarget"), self.cache.targets, self.settings)
        now = self.clock()
        return View(
            op=op,
            target=target,
            job=self.cache.job_for(op),
            pods=self.cache.pods_for(op),
            now=now,
            settings=self.settings,
            reserved=self.admission.is_reserved(key),
            server_url=self.server_url,
            seen_at=self._seen_at(op, now),
            older_jobs=self._older_jobs(key[0], op),
            policies=self.policies,
        )

    def _older_jobs(self, namespace: str, op: JSON) -> tuple[JSON, ...]:
        """Cached Jobs of the operation's earlier attempts (looked up by their deterministic names)."""
        found = (self.cache.job_named(op, name) for name in attempt_job_names(op))  # this operation's, by UID
        return tuple(j for j in found if j is not None)

    def _seen_at(self, op: JSON, now: dt.datetime) -> dt.datetime | None:
        """When this operator first saw `op` in its current state (None for settled operations)."""
        uid = str((op.get("metadata") or {}).get("uid"))
        if op.get("slim"):
            self._seen.pop(uid, None)
            return None
        mark = state_mark(op)
        seen = self._seen.get(uid)
        if seen is None or seen[0] != mark:
            seen = self._seen[uid] = (mark, now)
        return seen[1]

    async def reconcile(self, key: Key) -> float | None:
        op = self.cache.ops.get(key)
        if op is None:
            self.admission.forget(key)
            self._admit_failures.pop(key, None)
            self._readmit_at.pop(key, None)
            return None
        readmit = self._readmit_at.get(key)
        if readmit is not None and time.monotonic() >= readmit:
            del self._readmit_at[key]
            self._observe_admission(op)  # its admission backoff is over: back in line
        self.metrics.reconciles.inc()
        if _admittable(op):
            await self._refresh_policies()
        if self._verification_due(op):
            await self._verify_attempt(key, op)
            op = self.cache.ops.get(key)
            if op is None:
                return None
        view = self.view(key, op)
        decided = plan(view)
        if log.isEnabledFor(logging.DEBUG):
            log.debug("reconcile %s/%s: %s", key[0], key[1], describe(decided))
        self._retry_after.pop(key, None)
        try:
            for step in decided.steps:
                if not await self.execute(view, step):
                    break
        except Gone as gone:
            if not self._gone(view, gone):
                return None
        finally:
            if view.reserved and self.admission.is_reserved(key):
                self._admission_failed(key)
        retry = self._retry_after.pop(key, None)
        if retry is None:
            return decided.requeue_after
        return retry if decided.requeue_after is None else min(retry, decided.requeue_after)

    def _verification_due(self, op: JSON) -> bool:
        """Whether `op` has waited long enough in `scheduled`/`running` for its Job and pods to be re-read."""
        status = op.get("status") or {}
        uid = str((op.get("metadata") or {}).get("uid") or "")
        if status.get("runState") not in ("scheduled", "running") or not status.get("jobName"):
            self._verified_at.pop(uid, None)
            return False
        seen = self._seen.get(uid)
        if seen is None or seen[0] != state_mark(op):
            return False  # first sight of this state: the view below starts timing it
        after = float(self.settings.verify_after_seconds)
        if (self.clock() - seen[1]).total_seconds() < after:
            return False
        last = self._verified_at.get(uid)
        return last is None or time.monotonic() - last >= 2 * after

    async def _verify_attempt(self, key: Key, op: JSON) -> None:
        """Re-read the Job of `op`'s attempt and that Job's pods, and bring the cache in line with what is stored.

        The cache is fed by watch events, and a watch can miss a deletion (after a 410 Kopf re-lists and emits
        nothing for what vanished) or be overtaken by an older listing: the operation then waits on a Job or pod
        that no longer exists, or never sees the pod that runs. What the reads find goes through the usual intake
        (a cached object is never replaced by an older one); a Job that is gone becomes a tombstone (its operation
        fails `JobMissing` as usual), and so does a cached pod of the Job the listing lacks once a GET confirms it.
        A failed read is logged and tried again at the next verification."""
        uid = str((op.get("metadata") or {}).get("uid") or "")
        self._verified_at[uid] = time.monotonic()
        namespace, jname = key[0], str((op.get("status") or {}).get("jobName"))
        try:
            stored = await self._io(self.gateway.read, "job", namespace, jname)
            cached = self.cache.job_named(op, jname)
            if stored is None:
                if cached is not None and not cached.get("gone"):
                    log.info("Job %s/%s of %s no longer exists though no event said so", namespace, jname, key[1])
                    self._job_gone(namespace, jname, str(cached.get("uid")))
                return
            self.job_seen(stored)
            job_uid = str((stored.get("metadata") or {}).get("uid") or "")
            pods = await self._io(self.gateway.job_pods, namespace, jname)
            listed = set()
            for pod in pods:
                listed.add(str((pod.get("metadata") or {}).get("uid") or ""))
                self.pod_seen(pod)
            for pod in list(self.cache.pods.get(job_uid, {}).values()):
                if pod.get("gone") or str(pod.get("uid")) in listed:
                    continue
                if await self._io(self.gateway.uid_of, "pod", namespace, str(pod.get("name"))) == pod.get("uid"):
                    continue  # created after the listing
                log.info("pod %s/%s of %s no longer exists though no event said so", namespace, pod.get("name"), key[1])
                self.cache.pod_gone(namespace, str(pod.get("name")), str(pod.get("uid")))
        except ApiError as exc:
            log.warning("re-reading the Job and pods of %s/%s failed (tried again later): %s", key[0], key[1], exc)

    async def resolve_run_state_label(self, selectable: bool | None = None) -> str:
        """Decide DOPS_RUN_STATE_LABEL=auto once per term: the label is mirrored only where the API server cannot
        select operations by `status.runState` (`selectable`, known from the start-up listing; else asked with one
        listing of at most one object)."""
        mode = self.settings.run_state_label
        if mode == "auto":
            if selectable is None:
                selectable = await self._io(self.gateway.fields_selectable, self.namespaces)
            mode = resolve_run_state_label(mode, selectable)
            log.info(
                "the run-state label (dops.io/run-state) is %s: the API server %s select operations by status.runState",
                "not written" if mode == "never" else "kept in step with status.runState",
                "can" if selectable else "cannot",
            )
            self.settings = dataclasses.replace(self.settings, run_state_label=mode)
        return mode

    @property
    def mirrors_run_state(self) -> bool:
        return mirrors_run_state(self.settings.run_state_label)

    async def _refresh_policies(self) -> None:
        """Re-list the DelegationPolicies when the last listing is older than `policy_refresh_seconds`. A failed
        listing (e.g. 403) fails this reconcile (retried with backoff): nothing is admitted unjudged."""
        now = time.monotonic()
        if self._policies_read_at is not None and now - self._policies_read_at < self.policy_refresh_seconds:
            return
        items = await self._io(self.gateway.list_policies)
        policies = tuple(policy_from_resource(item) for item in items)
        self._policies_read_at = now
        if policies != self.policies:
            self.policies = policies
            self.kick()  # a namespace ceiling may have changed

    def _gone(self, view: View, gone: Gone) -> bool:
        """A write met 404; False when that was the operation itself (dropped: nothing more to do)."""
        if gone.kind == "op":
            self._drop_operation((gone.namespace, gone.name), str(view.meta.get("uid") or ""), "a write met 404")
            return False
        job = view.job if view.job is not None and view.job.get("name") == gone.name else None
        self._job_gone(gone.namespace, gone.name, str(job.get("uid")) if job is not None else None)
        return True

    def _job_gone(self, namespace: str, name: str, uid: str | None) -> None:
        if self._resync_removed is not None and uid:
            self._resync_removed.add(uid)
        op_key = self.cache.job_gone(namespace, name, uid)
        if op_key is not None:
            log.info("Job %s/%s no longer exists though no event said so; its operation is reconciled", namespace, name)
            self.enqueue(op_key)

    def _admission_failed(self, key: Key) -> None:
        """A picked operation was not admitted (a lost race, an error): free its slot, and keep it out of the
        admission queue for a while (doubling) so that it is not picked again in a tight loop."""
        failures = self._admit_failures.get(key, 0) + 1
        self._admit_failures[key] = failures
        delay = min(READMIT_BASE_SECONDS * 2.0 ** min(failures - 1, 16), READMIT_MAX_SECONDS)
        self.admission.forget(key)
        self._readmit_at[key] = time.monotonic() + delay
        self.enqueue(key, delay)
        self.kick()
        log.debug("%s/%s was not admitted (%d in a row); offered again in %.1f s", key[0], key[1], failures, delay)

    # =============================================================================== steps

    def _stored(self, obj: JSON | None) -> JSON | None:
        if obj is not None:
            compact = self.cache.put_operation(obj)
            if compact is not None:
                self._observe_admission(compact)
        return obj

    async def _write_status(self, view: View, write: Callable[..., JSON | None], patch: Any) -> JSON | None:
        """One compare-and-set status patch of the operation (`gateway.patch_status_cas` or `_if_unchanged`): the
        stored result (also into the cache), or None when it lost the race.

        A lost race means someone wrote the operation after the cached copy the plan came from: what won is read
        into the cache (never over a newer copy), so the next reconcile plans from it instead of sending the same
        losing write again, from the same stale copy, until the winner's watch event arrives (under load, several
        failed writes in a row). A read that finds nothing raises Gone, as a 404 of the write would."""
        obj = self._stored(await self._io(write, view.namespace, view.name, patch))
        self.metrics.write("patch", "delegatedoperations/status")
        if obj is not None:
            return obj
        try:
            current = await self._io(self.gateway.read, "op", view.namespace, view.name)
        except ApiError as exc:  # the watch event brings it anyway; this read only saves writes
            log.debug("re-reading %s/%s after a lost race failed: %s", view.namespace, view.name, exc)
            return None
        if current is None:
            raise Gone("op", view.namespace, view.name)
        self._stored(current)
        return None

    async def execute(self, view: View, step: Step) -> bool:
        """Run one step; False when it lost a race (the rest of the plan no longer applies)."""
        ns, name = view.namespace, view.name
        if isinstance(step, QueueOperation):
            obj = await self._write_status(view, self.gateway.patch_status_if_unchanged, step.patch)
            if obj is None:
                return False
            self._event(view, step.event.type, step.event.reason, step.event.message)
            if step.labels:
                await self._sync_labels(obj)
            return True
        if isinstance(step, WriteStatus):
            obj = await self._write_status(view, self.gateway.patch_status_cas, step.patch)
            if obj is None:
                return False
            if step.event is not None:
                self._event(view, step.event.type, step.event.reason, step.event.message)
            if step.sync_labels:
                await self._sync_labels(obj)
            return True
        if isinstance(step, SyncRunStateLabel):
            updated = self._stored(await self._io(self.gateway.sync_run_state_label, view.op, self.mirrors_run_state))
            if updated is not None:
                self.metrics.write("patch", "delegatedoperations")
            return True
        if isinstance(step, Admit):
            return await self._admit(view, step)
        if isinstance(step, CreateJob):
            return await self._create_job(view, step.job)
        if isinstance(step, Terminate):
            return await self._terminate(view, step)
        if isinstance(step, StopJob):
            if not await self._io(self.gateway.delete_job, ns, step.job):
                self._job_gone(ns, step.job, self._job_uid(view, step.job))
            self.metrics.write("delete", "jobs")
            self.cache.mark_job_deleted(ns, step.job, self.clock())
            self._event(view, "Normal", c.EventReasons.JOB_STOPPED, f"stopped Job {step.job}: {step.reason}")
            return True
        if isinstance(step, SetJobTTL):
            job = await self._io(self.gateway.patch_job, ns, step.job, job_ttl_patch(step.seconds))
            self.metrics.write("patch", "jobs")
            self.cache.put_job(job)
            return True
        if isinstance(step, DeleteOperation):
            deleted = await self._io(self.gateway.delete_operation, ns, name, view.meta.get("uid"))
            self.metrics.write("delete", "delegatedoperations")
            if deleted:
                log.info("deleted %s/%s: %s", ns, name, step.reason)
            return deleted
        raise TypeError(f"unknown step {step!r}")

    @staticmethod
    def _job_uid(view: View, name: str) -> str | None:
        return str(view.job.get("uid")) if view.job is not None and view.job.get("name") == name else None

    async def _sync_labels(self, obj: JSON) -> None:
        """The mirror labels of `obj` (a write's answer) in step, awaited and cached at once, so that the next
        reconcile neither repeats the write nor sees a stale label (best effort: a failure is logged)."""
        if not labels_out_of_date(obj, run_state=self.mirrors_run_state):
            return
        updated = self._stored(await self._io(self.gateway.sync_labels, obj, self.mirrors_run_state))
        if updated is not None:
            self.metrics.write("patch", "delegatedoperations")

    def _event(self, view: View, event_type: str, reason: str, message: str) -> None:
        self.metrics.write("create", "events")
        self._background_io(self.gateway.post_event, view.op, event_type, reason, message)

    async def _admit(self, view: View, step: Admit) -> bool:
        ns, name = view.namespace, view.name
        obj = await self._write_status(view, self.gateway.patch_status_cas, step.patch)
        if obj is None:
            return False
        self._admit_failures.pop((ns, name), None)
        if self.first_admission is None:
            self.first_admission = asyncio.get_running_loop().time()
        queued = parse_time(view.status.get("queuedAt"))
        if queued is not None:
            self.metrics.admission_latency.observe(max((self.clock() - queued).total_seconds(), 0.0))
        if step.sync_labels:
            await self._sync_labels(obj)  # first: the label disagrees from this moment on
        if not await self._create_job(view, step.job):
            return False
        self._event(view, step.event.type, step.event.reason, step.event.message)
        return True

    async def _create_job(self, view: View, job: JSON) -> bool:
        ns = view.namespace
        key = (ns, view.name)
        uid = str(view.meta.get("uid") or "")
        try:
            created = await self._io(self.gateway.create_job, ns, job)
        except ApiError as exc:
            self.metrics.write("create", "jobs")
            refusals = self._create_refusals.get(uid, 0) + 1
            # Decide on the operation as it is now (an admission has just made it `scheduled`).
            current = self.view(key, self.cache.ops.get(key) or view.op)
            decided = job_create_failed(
                current.op,
                str(job["metadata"]["name"]),
                code=exc.code,
                api_reason=exc.reason,
                message=exc.message,
                field_causes=any(cause.get("field") for cause in exc.causes),
                failures=refusals,
                now=self.clock(),
            )
            if decided.kind is CreateErrorKind.TRANSIENT:
                raise  # the work queue's bounded retries, then the next event or the safety net
            # A wait on the API server (UNDISCOVERED) is not a refusal: INFO, no condition, no Event. It is counted
            # as one, though: a wait that outlasts its patience is recorded as a refusal.
            waiting = decided.kind is CreateErrorKind.UNDISCOVERED
            log.log(logging.INFO if waiting else logging.WARNING, "%s", decided.log)
            if decided.kind is CreateErrorKind.INVALID:
                self._create_refusals.pop(uid, None)
            else:
                self._create_refusals[uid] = refusals
            if decided.kind is CreateErrorKind.PERSISTENT:
                self.metrics.reconcile_errors.labels("JobCreateRefused").inc()
            if decided.retry_after is not None:
                self._retry_after[key] = decided.retry_after
            for step in decided.steps:
                if not await self.execute(current, step):
                    break
            return False
        self.metrics.write("create", "jobs")
        refused = self._create_refusals.pop(uid, None)
        if refused:
            log.info("created Job %s/%s after %d refused attempts", ns, job["metadata"]["name"], refused)
        self.cache.put_job(created)
        return True

    async def _terminate(self, view: View, step: Terminate) -> bool:
        ns, name = view.namespace, view.name
        synced = False
        if step.sync_labels and step.state == step.required_state:
            # Finishing a state someone else wrote: the label follows it first, so that an operation shown
            # processed never shows a stale label.
            await self.execute(view, SyncRunStateLabel(step.state))
            synced = True
        if step.explain_job:
            step = explained(step, await self._io(self.gateway.job_warning, ns, step.explain_job))
        attempt = view.status.get("attempt") or 1
        archive: ArchiveResult | None = None
        if step.archive_pod:
            archive = await self._io(self.gateway.archive_log, ns, name, attempt, step.archive_pod)
        elif view.status.get("jobName") and step.state != "completed":
            archive = ArchiveResult(error=f"attempt {attempt}: no worker log to archive (the worker never started)")
        now = self.clock()
        patch = terminal_patch(view, step, archive, now)
        obj = await self._write_status(view, self.gateway.patch_status_cas, patch)
        if obj is None:
            return False
        self._observe_duration(obj)
        if step.stop_job:
            if not await self._io(self.gateway.delete_job, ns, step.stop_job):
                self._job_gone(ns, step.stop_job, self._job_uid(view, step.stop_job))
            self.metrics.write("delete", "jobs")
            self.cache.mark_job_deleted(ns, step.stop_job, self.clock())
        self._event(view, step.event.type, step.event.reason, step.event.message)
        if archive is not None and archive.error and step.archive_pod:
            self._event(view, "Warning", c.EventReasons.LOG_UPLOAD_FAILED, archive.error)
        if step.sync_labels and not synced:
            await self._sync_labels(obj)
        return True

    def _observe_duration(self, obj: Mapping[str, Any]) -> None:
        status = obj.get("status") or {}
        state = status.get("runState")
        started = parse_time(status.get("startedAt"))
        ended = parse_time(status.get("completedAt" if state == "completed" else "failedAt"))
        if started is not None and ended is not None and ended >= started:
            self.metrics.run_duration.labels(str(state)).observe((ended - started).total_seconds())


def release_memory() -> None:
    """Return freed heap to the OS after a large transient allocation (start-up listings); glibc only."""
    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def _admittable(op: Mapping[str, Any]) -> bool:
    """Whether the plan may admit `op` now (queued, or scheduled by hand without a Job): DelegationPolicies matter."""
    status = op.get("status") or {}
    state = status.get("runState")
    return state == "queued" or (state == "scheduled" and not status.get("jobName"))


def _key_of(body: Mapping[str, Any]) -> Key:
    meta = body.get("metadata") or {}
    return str(meta.get("namespace") or ""), str(meta.get("name") or "")


def describe(plan_: Plan) -> str:
    """A short description of a plan (for logs)."""
    return ", ".join(type(s).__name__ for s in plan_.steps) or plan_.note
