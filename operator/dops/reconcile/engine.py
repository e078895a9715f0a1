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
"""

from __future__ import annotations

import asyncio
import ctypes
import datetime as dt
import gc
import logging
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Protocol, TypeVar

from ..api import constants as c
from ..api.times import parse_time, utcnow
from ..domain.jobs import job_ttl_patch
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
    Terminate,
    View,
    WriteStatus,
    finished_processed,
    job_create_failed,
    plan,
    queue_entry,
    terminal_patch,
)
from ..domain.settings import OperatorSettings
from ..domain.targets import resolve_target, target_from_resource
from ..k8s import ApiError
from .cache import Cache, Key
from .gateway import Gateway
from .metrics import Metrics
from .workqueue import WorkQueue

log = logging.getLogger(__name__)

JSON = dict[str, Any]
T = TypeVar("T")


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
        self._create_refusals: dict[Key, int] = {}  # refused Job creates in a row, per operation
        self._retry_after: dict[Key, float] = {}  # a sooner requeue asked for by a step (refused create)

    # =============================================================================== intake (no I/O)

    def operation_seen(self, body: Mapping[str, Any]) -> str | None:
        """An operation event: cache it, tell the scheduler, reconcile it if it may need work. Returns its state."""
        compact = self.cache.put_operation(body)
        key = _key_of(body)
        if self._tracking:
            self.confirmed.add(("op", key))
        if compact is None:
            return None
        self._observe_admission(compact)
        if self.needs_attention(compact):
            self.enqueue(key)
        state = compact["status"].get("runState")
        return str(state) if state else None

    def operation_deleted(self, body: Mapping[str, Any]) -> None:
        key = _key_of(body)
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
        key = self.cache.delete_pod(body)
        if key is not None and not self._settled(key):
            self.enqueue(key)

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
        for key, op in self.cache.iter_operations():
            if key[0] == namespace and op["status"].get("runState") in (None, "queued", "scheduled"):
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

    def _job_matters(self, key: Key, job: Mapping[str, Any]) -> bool:
        if not self._settled(key):
            return True
        finished = any(
            c.get("type") in ("Complete", "Failed") and c.get("status") == "True" for c in job.get("conditions") or []
        )
        # A settled operation still cares about a Job that runs (to stop it) or has no TTL yet.
        return not job.get("deletionTimestamp") and (not finished or job.get("ttlSecondsAfterFinished") is None)

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
                if self.needs_attention(compact):
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

    # =============================================================================== running

    async def start(self) -> None:
        self.ready = asyncio.Event()
        self._tasks = [
            asyncio.create_task(self.queue.run(self.ready), name="dops-workqueue"),
            asyncio.create_task(self._safety_net(), name="dops-safety-net"),
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
                status = op.get("status") or {}
                if status.get("runState") not in ("completed", "failed") or not finished_processed(status):
                    self.enqueue(key)

    async def _verify_unconfirmed(self) -> None:
        """Objects the start-up listing found but no watch event has shown since: deleted in between? Ask."""
        pending = [item for item in self._primed if item not in self.confirmed]
        self._tracking = False
        self._primed.clear()
        self.confirmed.clear()
        for kind, key in pending:
            exists = await self._io(self.gateway.exists, kind, key[0], key[1])
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
                    op_key = self.cache.delete_job(
                        {"metadata": {"name": key[1], "namespace": key[0], "uid": job.get("uid")}}
                    )
                    if op_key is not None:
                        self.enqueue(op_key)
            elif kind == "pod":
                for pods in self.cache.pods.values():
                    pod = pods.get(key[1])
                    if pod is not None and pod.get("namespace") == key[0]:
                        pod["gone"] = True

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
        return View(
            op=op,
            target=target,
            job=self.cache.job_for(op),
            pods=self.cache.pods_for(op),
            now=self.clock(),
            settings=self.settings,
            reserved=self.admission.is_reserved(key),
            server_url=self.server_url,
        )

    async def reconcile(self, key: Key) -> float | None:
        op = self.cache.ops.get(key)
        if op is None:
            self.admission.forget(key)
            self._create_refusals.pop(key, None)
            return None
        self.metrics.reconciles.inc()
        view = self.view(key, op)
        decided = plan(view)
        self._retry_after.pop(key, None)
        try:
            for step in decided.steps:
                if not await self.execute(view, step):
                    break
        finally:
            if view.reserved and self.admission.is_reserved(key):
                self.admission.release(key)
                self.kick()
        retry = self._retry_after.pop(key, None)
        if retry is None:
            return decided.requeue_after
        return retry if decided.requeue_after is None else min(retry, decided.requeue_after)

    # =============================================================================== steps

    def _stored(self, obj: JSON | None) -> JSON | None:
        if obj is not None:
            compact = self.cache.put_operation(obj)
            if compact is not None:
                self._observe_admission(compact)
        return obj

    async def execute(self, view: View, step: Step) -> bool:
        """Run one step; False when it lost a race (the rest of the plan no longer applies)."""
        ns, name = view.namespace, view.name
        if isinstance(step, QueueOperation):
            obj = self._stored(await self._io(self.gateway.patch_status_if_unchanged, ns, name, step.patch))
            self.metrics.write("patch", "delegatedoperations/status")
            if obj is None:
                return False
            if step.labels:
                self._background_io(self._sync_labels, obj)
            self._event(view, step.event.type, step.event.reason, step.event.message)
            return True
        if isinstance(step, WriteStatus):
            obj = self._stored(await self._io(self.gateway.patch_status_cas, ns, name, step.patch))
            self.metrics.write("patch", "delegatedoperations/status")
            if obj is None:
                return False
            if step.sync_labels:
                self._background_io(self._sync_labels, obj)
            if step.event is not None:
                self._event(view, step.event.type, step.event.reason, step.event.message)
            return True
        if isinstance(step, Admit):
            return await self._admit(view, step)
        if isinstance(step, CreateJob):
            return await self._create_job(view, step.job)
        if isinstance(step, Terminate):
            return await self._terminate(view, step)
        if isinstance(step, StopJob):
            await self._io(self.gateway.delete_job, ns, step.job)
            self.metrics.write("delete", "jobs")
            self.cache.mark_job_deleted(ns, step.job, self.clock())
            self._event(view, "Normal", c.EventReasons.JOB_STOPPED, f"stopped Job {step.job}: {step.reason}")
            return True
        if isinstance(step, SetJobTTL):
            job = await self._io(self.gateway.patch_job, ns, step.job, job_ttl_patch(step.seconds))
            self.metrics.write("patch", "jobs")
            if job is not None:
                self.cache.put_job(job)
            return True
        if isinstance(step, DeleteOperation):
            deleted = await self._io(self.gateway.delete_operation, ns, name, view.meta.get("uid"))
            self.metrics.write("delete", "delegatedoperations")
            if deleted:
                log.info("deleted %s/%s: %s", ns, name, step.reason)
            return deleted
        raise TypeError(f"unknown step {step!r}")

    def _sync_labels(self, obj: JSON) -> None:
        updated = self.gateway.sync_labels(obj)
        if updated is not None:
            self.metrics.write("patch", "delegatedoperations")

    def _event(self, view: View, event_type: str, reason: str, message: str) -> None:
        self.metrics.write("create", "events")
        self._background_io(self.gateway.post_event, view.op, event_type, reason, message)

    async def _admit(self, view: View, step: Admit) -> bool:
        ns, name = view.namespace, view.name
        obj = self._stored(await self._io(self.gateway.patch_status_cas, ns, name, step.patch))
        self.metrics.write("patch", "delegatedoperations/status")
        if obj is None:
            return False
        if self.first_admission is None:
            self.first_admission = asyncio.get_running_loop().time()
        queued = parse_time(view.status.get("queuedAt"))
        if queued is not None:
            self.metrics.admission_latency.observe(max((self.clock() - queued).total_seconds(), 0.0))
        if not await self._create_job(view, step.job):
            return False
        self._event(view, step.event.type, step.event.reason, step.event.message)
        return True

    async def _create_job(self, view: View, job: JSON) -> bool:
        ns = view.namespace
        key = (ns, view.name)
        try:
            created = await self._io(self.gateway.create_job, ns, job)
        except ApiError as exc:
            self.metrics.write("create", "jobs")
            refusals = self._create_refusals.get(key, 0) + 1
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
            log.warning("%s", decided.log)
            if decided.kind is CreateErrorKind.PERSISTENT:
                self._create_refusals[key] = refusals
                self.metrics.reconcile_errors.labels("JobCreateRefused").inc()
            else:
                self._create_refusals.pop(key, None)
            if decided.retry_after is not None:
                self._retry_after[key] = decided.retry_after
            for step in decided.steps:
                if not await self.execute(current, step):
                    break
            return False
        self.metrics.write("create", "jobs")
        refused = self._create_refusals.pop(key, None)
        if refused:
            log.info("created Job %s/%s after %d refused attempts", ns, job["metadata"]["name"], refused)
        self.cache.put_job(created)
        return True

    async def _terminate(self, view: View, step: Terminate) -> bool:
        ns, name = view.namespace, view.name
        attempt = view.status.get("attempt") or 1
        archive: ArchiveResult | None = None
        if step.archive_pod:
            archive = await self._io(self.gateway.archive_log, ns, name, attempt, step.archive_pod)
        elif view.status.get("jobName") and step.state != "completed":
            archive = ArchiveResult(error=f"attempt {attempt}: no worker log to archive (the worker never started)")
        now = self.clock()
        patch = terminal_patch(view, step, archive, now)
        obj = self._stored(await self._io(self.gateway.patch_status_cas, ns, name, patch))
        self.metrics.write("patch", "delegatedoperations/status")
        if obj is None:
            return False
        self._observe_duration(obj)
        if step.stop_job:
            await self._io(self.gateway.delete_job, ns, step.stop_job)
            self.metrics.write("delete", "jobs")
            self.cache.mark_job_deleted(ns, step.stop_job, self.clock())
        self._event(view, step.event.type, step.event.reason, step.event.message)
        if archive is not None and archive.error and step.archive_pod:
            self._event(view, "Warning", c.EventReasons.LOG_UPLOAD_FAILED, archive.error)
        if step.sync_labels:
            self._background_io(self._sync_labels, obj)
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


def _key_of(body: Mapping[str, Any]) -> Key:
    meta = body.get("metadata") or {}
    return str(meta.get("namespace") or ""), str(meta.get("name") or "")


def describe(plan_: Plan) -> str:
    """A short description of a plan (for logs)."""
    return ", ".join(type(s).__name__ for s in plan_.steps) or plan_.note
