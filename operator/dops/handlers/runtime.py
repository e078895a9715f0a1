"""The operator's runtime: everything one operator run owns, built from settings and the cluster configuration.

Kopf's handlers stay thin: they hand events to the `Reconciler` (cache + work queue) and the
scheduler's `AdmissionQueue`; this object wires the pieces, starts their tasks, serves Prometheus
metrics, runs the bookmark watch behind the liveness probe and the informers of dops' own Jobs and pods
(dops.k8s.informer, which feed the current term's cache as Kopf's handlers feed it operations), elects a
leader, and stops it all on cleanup.

Two lifetimes:

- the runtime (one per process run): settings, clients, metrics, bookmark watches, informers, the leader elector;
- the *engine* (one per leadership term): admission queue, scheduler and reconciler (cache, work
  queue, safety net). Without leader election there is one term, started by Kopf's startup handler.
  With it, a term starts when this replica becomes the leader and ends when it is deposed; a deposed
  engine is thrown away (its reservations and delays belong to a term that is over) and a fresh,
  idle one collects watch events until the next term lists everything again.

Each term begins with the start-up listing (the unfinished operations, targets, Jobs, pods) that fills
the cache before any admission; the finished operations follow through Kopf's own listing. A failed
listing (5xx, 429, a dropped connection, an expired `continue` token) is retried from scratch, with
backoff and one WARNING per failure, until it succeeds; until then the replica reports not ready
(see `health()`), so a start-up that keeps failing never looks healthy.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import socket
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import Gauge

from ..api import constants as c
from ..domain.settings import OperatorSettings
from ..k8s import BadRequest, ClusterConfig, KubeClient, load_config
from ..k8s.informer import Informer
from ..k8s.lease import FencedKubeClient, LeaderElector, LeaseClient, WriteFence
from ..k8s.workloads import BookmarkWatch, JobRepository, PodRepository
from ..logs import LogArchive
from ..reconcile import Gateway, Metrics, Reconciler
from ..reconcile.engine import release_memory
from ..reconcile.gateway import MANAGED_SELECTOR, UNFINISHED_SELECTOR, USER_AGENT
from ..scheduler import AdmissionQueue, Scheduler
from .discovery import DiscoveryGuard

log = logging.getLogger("dops.operator")

# Backoff of the start-up listing's retries: 0.5 s doubling, at most 30 s between attempts.
LIST_RETRY_BASE = 0.5
LIST_RETRY_MAX = 30.0


@dataclass
class Engine:
    """What one leadership term owns: admissions, the scheduler and the reconcile (cache + work queue)."""

    admission: AdmissionQueue
    scheduler: Scheduler
    reconciler: Reconciler
    tasks: list[asyncio.Task[None]] = field(default_factory=list)
    started: bool = False  # the reconciler's tasks run (they wait for the listing)
    listed: bool = False  # the start-up listing succeeded: reconciles and admissions run
    list_failures: int = 0
    # Kopf's own initial listing feeds this engine's cache (the first engine of a process: Kopf's watches start
    # with it), so the term's listing may leave the finished operations to it. An engine made after a deposition
    # sees only the changes Kopf streams from then on: its term lists every operation.
    kopf_lists: bool = True


@dataclass
class Runtime:
    settings: OperatorSettings
    cluster: ClusterConfig
    client: KubeClient  # reads and the bookmark watch (never fenced)
    writes: KubeClient  # everything the reconcile sends (fenced when leader election is on)
    metrics: Metrics
    engine: Engine
    fence: WriteFence
    archive: LogArchive
    namespaces: tuple[str, ...] = ()
    identity: str = ""
    elector: LeaderElector | None = None
    last_alive: float = field(default_factory=time.monotonic)
    started: bool = False  # Kopf's startup handler completed (metrics, watches, elector or the one term)
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)
    _stopping: list[asyncio.Task[None]] = field(default_factory=list)  # deposed terms winding down
    _term: asyncio.Task[None] | None = None
    _metrics_server: Any = None
    _bookmarks: list[BookmarkWatch] = field(default_factory=list)
    _informers: list[Informer] = field(default_factory=list)  # dops' Jobs and pods (Kopf watches the rest)
    _leader_gauge: Gauge | None = None
    _lease_client: KubeClient | None = None
    discovery: DiscoveryGuard | None = None  # what Kopf watches once it scanned (see dops.handlers.discovery)

    @classmethod
    def build(
        cls,
        settings: OperatorSettings | None = None,
        *,
        kubeconfig: str | os.PathLike[str] | None = None,
        namespaces: tuple[str, ...] = (),
    ) -> Runtime:
        settings = settings or OperatorSettings.from_env(os.environ)
        cluster = load_config(kubeconfig)
        client = KubeClient(cluster, user_agent=USER_AGENT)
        fence = WriteFence(always_open=not settings.leader_election)
        writes: KubeClient = (
            FencedKubeClient(cluster, fence, user_agent=USER_AGENT) if settings.leader_election else client
        )
        metrics = Metrics()
        archive = LogArchive(settings.log_archive)
        engine = new_engine(settings, cluster, writes, archive, metrics)
        runtime = cls(settings, cluster, client, writes, metrics, engine, fence, archive, namespaces)
        runtime.identity = leader_identity(settings, os.environ)

        def counts() -> Any:
            return runtime.reconciler.cache.counts()

        def queues() -> tuple[dict[tuple[str, str], int], dict[tuple[str, str], int]]:
            stats = runtime.admission.stats()
            return stats.waiting, stats.active

        metrics.watch_state(counts, queues)
        runtime._leader_gauge = Gauge(
            "dops_leader",
            "1 while this replica is the leader (reconciles and admits), else 0; always 1 without leader election",
            ["identity"],
            registry=metrics.registry,
        )
        runtime._leader_gauge.labels(runtime.identity).set(0)
        return runtime

    # The current term's pieces (Kopf's event handlers feed them; the probes read them).
    @property
    def admission(self) -> AdmissionQueue:
        return self.engine.admission

    @property
    def scheduler(self) -> Scheduler:
        return self.engine.scheduler

    @property
    def reconciler(self) -> Reconciler:
        return self.engine.reconciler

    @property
    def leading(self) -> bool:
        return self.elector.leading if self.elector is not None else True

    # ------------------------------------------------------------------------------------ lifecycle
    async def start(self) -> None:
        """Kopf's startup handler. Retrying it is safe: each step runs once, and whatever failed runs again."""
        if self.started:
            return
        if self.settings.metrics_port and self._metrics_server is None:
            from prometheus_client import start_http_server

            self._metrics_server = start_http_server(
                self.settings.metrics_port, addr=self.settings.bind_address, registry=self.metrics.registry
            )
        # Kopf reads discovery once, right after this handler: it must list dops' resources by then.
        await self._wait_until_served()
        if not self.settings.leader_election:
            # One term, listed before Kopf starts its watches (and before /healthz is served at all).
            await self._run_term(self.engine)
            self._set_leader_gauge(True)
            self._start_bookmarks()
            self._start_informers()
        else:
            self._start_bookmarks()
            self._start_informers()  # a standby's cache stays warm, as Kopf's watches keep its operations'
            self._start_elector()
        self.started = True
        log.info(
            "dops operator started (%s; archive %s; global cap %s; %s)",
            ", ".join(self.namespaces) if self.namespaces else "all namespaces",
            self.settings.log_archive,
            self.settings.global_max_concurrent or "unlimited",
            f"leader election on, identity {self.identity}" if self.settings.leader_election else "leader election off",
        )

    async def stop(self) -> None:
        """Kopf's cleanup handler (also called when the startup handler is cancelled half-way)."""
        self.started = False
        for task in self._tasks:  # the elector first: it must not renew (or re-acquire) while we release
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()
        if self.elector is not None:
            await self.elector.release()  # closes the fence first, then frees the Lease for the standby
        await asyncio.gather(*self._stopping, return_exceptions=True)  # let deposed terms release their threads
        self._stopping.clear()
        await self._end_term()
        if self._metrics_server is not None:
            server, thread = self._metrics_server
            server.shutdown()
            server.server_close()
            thread.join(5)
            self._metrics_server = None
        watches, self._bookmarks = self._bookmarks, []
        informers, self._informers = self._informers, []
        stops: list[Callable[[], None]] = [w.stop for w in watches] + [i.stop for i in informers]
        await asyncio.gather(*(asyncio.to_thread(stop) for stop in stops))
        for client in {id(x): x for x in (self.client, self.writes, self._lease_client) if x is not None}.values():
            client.close()
        self.cluster.close()

    def guard_discovery(self, guard: DiscoveryGuard) -> None:
        """Run `guard` (what Kopf watches) until the runtime stops; the health probe reports its problem."""
        self.discovery = guard
        self._tasks.append(asyncio.create_task(guard.run(), name="dops-discovery-guard"))

    async def _wait_until_served(self) -> None:
        """Until discovery lists the operations and the targets (retried with backoff, a WARNING each time)."""
        wanted = {c.PLURAL, c.TARGET_PLURAL}

        async def check() -> None:
            absent = wanted - await asyncio.to_thread(self.client.served_resources, c.GROUP, c.VERSION)
            if absent:
                raise NotServed("does not list " + ", ".join(f"{p}.{c.GROUP}" for p in sorted(absent)))

        def failed(attempt: int, exc: Exception, delay: float) -> None:
            why = exc if isinstance(exc, NotServed) else f"failed ({exc})"  # else: an API server down or restarting
            log.warning(
                "the API server's discovery of %s/%s %s (CRDs not installed, or an API server still starting); "
                "retrying in %.1f s (attempt %d): Kopf watches only what discovery lists when it starts",
                c.GROUP,
                c.VERSION,
                why,
                delay,
                attempt,
            )

        if await retry_until_done(check, failed):
            log.info("the API server's discovery lists dops' resources now")

    # ------------------------------------------------------------------------------------ terms
    async def _run_term(self, engine: Engine) -> None:
        """Start a term: the reconciler's tasks, the listing (retried until it succeeds), then the scheduler."""
        if not engine.started:
            await engine.reconciler.start()
            engine.started = True
        assert engine.reconciler.ready is not None
        if not engine.listed:
            await self._list_until_done(engine)
        engine.reconciler.mark_ready()
        release_memory()
        engine.tasks.append(asyncio.create_task(engine.scheduler.run(engine.reconciler.ready), name="dops-scheduler"))

    async def _list_until_done(self, engine: Engine) -> None:
        def failed(attempt: int, exc: Exception, delay: float) -> None:
            engine.list_failures += 1
            log.warning(
                "the start-up listing failed (attempt %d): %s; retrying in %.1f s (no operation is admitted "
                "and this replica reports not ready until it succeeds)",
                engine.list_failures,
                exc,
                delay,
            )

        await retry_until_done(lambda: self._list(engine), failed)
        engine.listed = True

    async def _list(self, engine: Engine) -> None:
        """One complete listing, from scratch (an expired `continue` token restarts it; priming is idempotent).

        Of the operations only the unfinished ones are listed, where the API server selects by `status.runState`
        (the CRD's selectableFields: Kubernetes 1.31+, the embedded plane): they are all an admission decision
        needs (the queued in their order, the scheduled and running that fill the caps). The finished ones, nearly
        all of a large store, reach the cache through Kopf's own listing while admissions already run. A server
        that cannot select (400), and a term whose engine Kopf's listing does not feed (after a deposition), get
        the full listing, as before."""
        started = time.monotonic()
        counts: dict[str, int] = {}
        queued = 0
        reconciler = engine.reconciler
        reconciler.namespaces = self.namespaces  # the periodic resync lists the same scope
        for kind in ("target", "job", "pod"):  # operations last: their reconciles need the rest
            n, q = await self._list_kind(engine, kind)
            counts[kind], queued = n, queued + q
        selectable: bool | None = None
        if engine.kopf_lists:
            try:
                (counts["op"], q), selectable = await self._list_kind(engine, "op", UNFINISHED_SELECTOR), True
            except BadRequest as exc:  # fields not selectable here: every operation, finished or not
                log.info("the API server cannot select operations by status.runState (%s); listing all of them", exc)
                selectable = False
        if not selectable:
            counts["op"], q = await self._list_kind(engine, "op")
        queued += q
        await reconciler.resolve_run_state_label(selectable)  # DOPS_RUN_STATE_LABEL=auto: known from the listing
        log.info(
            "listed %d %soperations, %d targets, %d Jobs, %d pods in %.2f s; %d operations to reconcile",
            counts["op"],
            "unfinished " if selectable else "",
            counts["target"],
            counts["job"],
            counts["pod"],
            time.monotonic() - started,
            queued,
        )

    async def _list_kind(self, engine: Engine, kind: str, field_selector: str = "") -> tuple[int, int]:
        """Every page of `kind` into the cache: (objects listed, operations queued for reconcile)."""
        pages = engine.reconciler.gateway.list_pages(kind, self.namespaces, field_selector=field_selector)
        listed = queued = 0
        while (page := await asyncio.to_thread(next, pages, None)) is not None:
            listed += len(page)
            queued += engine.reconciler.prime(kind, page)
            del page
        return listed, queued

    async def _end_term(self) -> None:
        """Stop the current term's tasks (work queue, safety net, scheduler) and wait for them."""
        term, self._term = self._term, None
        if term is not None:
            term.cancel()
            await asyncio.gather(term, return_exceptions=True)
        engine = self.engine
        for task in engine.tasks:
            task.cancel()
        await asyncio.gather(*engine.tasks, return_exceptions=True)
        engine.tasks.clear()
        if engine.started:
            await engine.reconciler.stop()
            engine.started = False

    # ------------------------------------------------------------------------------------ leader election
    def _start_elector(self) -> None:
        if self.elector is not None:
            return
        namespace = self.settings.leader_election_namespace or os.environ.get("POD_NAMESPACE") or self.cluster.namespace
        # The elector's own client: no client-side retries (it retries every retry period itself) and a
        # request timeout well inside the renew deadline.
        self._lease_client = KubeClient(
            self.cluster,
            user_agent=USER_AGENT,
            retries=0,
            timeout=max(1.0, self.settings.lease_renew_deadline_seconds / 2),
        )
        self.elector = LeaderElector(
            LeaseClient(self._lease_client, namespace, self.settings.leader_election_lease_name),
            self.identity,
            fence=self.fence,
            lease_duration=self.settings.lease_duration_seconds,
            renew_deadline=self.settings.lease_renew_deadline_seconds,
            retry_period=self.settings.lease_retry_period_seconds,
            on_elected=self._elected,
            on_deposed=self._deposed,
        )
        self._tasks.append(asyncio.create_task(self.elector.run(), name="dops-leader-elector"))

    def _elected(self) -> None:
        self._set_leader_gauge(True)
        self._term = asyncio.create_task(self._run_term(self.engine), name="dops-term")

    def _deposed(self, reason: str) -> None:
        # The fence is closed already (no write leaves this process); now stop the term's tasks and give the
        # event handlers a fresh, idle engine: the next term lists everything again.
        self._set_leader_gauge(False)
        old_term, old_engine = self._term, self.engine
        self._term = None
        self.engine = new_engine(self.settings, self.cluster, self.writes, self.archive, self.metrics)
        self.engine.kopf_lists = False  # Kopf's watches run on: only changes reach this engine, never a listing
        if old_term is not None:
            old_term.cancel()
        for task in old_engine.tasks:
            task.cancel()
        stopping = asyncio.create_task(_stop_engine(old_engine, old_term), name="dops-term-stop")
        self._stopping.append(stopping)
        stopping.add_done_callback(lambda task: self._stopping.remove(task) if task in self._stopping else None)

    def _set_leader_gauge(self, leading: bool) -> None:
        if self._leader_gauge is not None:
            self._leader_gauge.labels(self.identity).set(1 if leading else 0)

    def _start_bookmarks(self) -> None:
        if self._bookmarks:
            return
        timeout = max(1, min(self.settings.watch_stale_seconds // 3, 60))
        for namespace in self.namespaces or ("",):
            where = f"/namespaces/{namespace}" if namespace else ""
            watch = BookmarkWatch(self.client, f"/apis/{c.GROUP}/{c.VERSION}{where}/{c.PLURAL}", self.alive, timeout)
            watch.start()
            self._bookmarks.append(watch)

    def _start_informers(self) -> None:
        """List and watch dops' own Jobs and pods (see dops.k8s.informer: why not Kopf), feeding the current term."""
        if self._informers:
            return
        loop = asyncio.get_running_loop()
        for repository, deliver in (
            (JobRepository(self.client), self._job_event),
            (PodRepository(self.client), self._pod_event),
        ):
            for namespace in self.namespaces or (None,):
                informer = Informer(
                    repository,
                    namespace,
                    deliver,
                    loop=loop,
                    label_selector=MANAGED_SELECTOR,
                    # Not `alive`: the liveness probe is about the watch of operations (Kopf's, and the bookmark
                    # watch beside it), which busy Jobs and pods must not hide; an informer's failures are
                    # reported by `health()`.
                    stale_after=float(self.settings.watch_stale_seconds),
                )
                informer.start()
                self._informers.append(informer)

    def _job_event(self, kind: str, body: dict[str, Any]) -> None:
        if kind == "DELETED":
            self.reconciler.job_deleted(body)
        else:
            self.reconciler.job_seen(body)

    def _pod_event(self, kind: str, body: dict[str, Any]) -> None:
        if kind == "DELETED":
            self.reconciler.pod_deleted(body)
        else:
            self.reconciler.pod_seen(body)

    # ------------------------------------------------------------------------------------ health
    def alive(self) -> None:
        self.last_alive = time.monotonic()

    def watch_age(self) -> float:
        return time.monotonic() - self.last_alive

    def health(self) -> tuple[str | None, dict[str, Any]]:
        """(why this replica is unhealthy or None, what the probe reports).

        Unhealthy: Kopf does not watch one of dops' resources (see dops.handlers.discovery); a task that must run
        forever (elector, work queue, safety net, scheduler, discovery guard) has ended; or this replica should
        reconcile (it leads, or runs without election) but its start-up listing has not succeeded yet. A standby is
        otherwise healthy: it is ready to take over.
        """
        engine = self.engine
        role = "leader" if self.leading else "standby"
        report: dict[str, Any] = {"role": role, "identity": self.identity, "listed": engine.listed}
        term = self._term
        if term is not None and term.done() and not term.cancelled() and term.exception() is not None:
            return f"starting the term failed ({term.exception()!r})", report  # it ends normally once listed
        problem = self.discovery.problem() if self.discovery is not None else None
        if problem is not None:
            return problem, report
        for informer in self._informers:
            problem = informer.problem()
            if problem is not None:
                return problem, report
        for task in [*self._tasks, *engine.tasks, *getattr(engine.reconciler, "_tasks", [])]:
            if task.done() and not task.cancelled():  # these run until cancelled
                error = task.exception()
                return f"the {task.get_name()} task stopped ({error!r})", report
        elector = self.elector
        silent = time.monotonic() - elector.last_contact if elector is not None else 0.0
        if elector is not None and not elector.leading and silent > max(60.0, 4.0 * elector.lease_duration):
            # A standby that cannot even read the Lease (RBAC, a missing namespace) could never take over.
            return f"the Lease API has not answered for {silent:.0f} s", report
        if self.leading and not engine.listed:
            failures = engine.list_failures
            why = f"{failures} failed attempts so far" if failures else "in progress"
            return f"the start-up listing has not succeeded yet ({why})", report
        return None, report


class NotServed(Exception):
    """Discovery does not list a resource the operator needs (yet)."""


async def retry_until_done(step: Callable[[], Awaitable[None]], failed: Callable[[int, Exception, float], None]) -> int:
    """Run `step` until it returns without raising (any failure: an API error, a dropped connection, a bad page):
    again LIST_RETRY_BASE s after a failure, doubling to at most LIST_RETRY_MAX, with `failed(attempt, error,
    delay)` told each time. Returns how many attempts failed."""
    delay, failures = LIST_RETRY_BASE, 0
    while True:
        try:
            await step()
            return failures
        except Exception as exc:
            failures += 1
            failed(failures, exc, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, LIST_RETRY_MAX)


async def _stop_engine(engine: Engine, term: asyncio.Task[None] | None) -> None:
    """Stop a deposed term's reconciler (work queue, safety net), wait for its tasks, release its threads."""
    if engine.started:
        await engine.reconciler.stop()
    if term is not None:
        await asyncio.gather(term, return_exceptions=True)
    await asyncio.gather(*engine.tasks, return_exceptions=True)


def new_engine(
    settings: OperatorSettings, cluster: ClusterConfig, writes: KubeClient, archive: LogArchive, metrics: Metrics
) -> Engine:
    gateway = Gateway(writes, archive)
    holder: dict[str, Reconciler] = {}
    admission = AdmissionQueue(
        lambda target: holder["r"].capacity(target),
        settings.global_max_concurrent,
        namespace_capacity=lambda namespace: holder["r"].namespace_capacity(namespace),
        namespace_weight=lambda namespace: holder["r"].namespace_weight(namespace),
    )
    scheduler = Scheduler(admission, lambda key: holder["r"].enqueue(key))
    reconciler = Reconciler(
        settings=settings,
        gateway=gateway,
        admission=admission,
        kick=scheduler.kick,
        metrics=metrics,
        server_url=settings.api_server_url or cluster.server,
    )
    holder["r"] = reconciler
    return Engine(admission, scheduler, reconciler)


def leader_identity(settings: OperatorSettings, environ: Any) -> str:
    """The identity written into the Lease: the setting, else the pod's name (downward API), else the host
    name with a random suffix (two operators in one host or process must never share an identity)."""
    if settings.leader_election_identity:
        return settings.leader_election_identity
    pod = (environ.get("POD_NAME") or "").strip()
    if pod:
        return pod
    return f"{socket.gethostname()}-{secrets.token_hex(4)}"
