"""The operator's runtime: everything one operator run owns, built from settings and the cluster configuration.

Kopf's handlers stay thin: they hand events to the `Reconciler` (cache + work queue) and the
scheduler's `AdmissionQueue`; this object wires the pieces, starts their tasks, serves Prometheus
metrics, runs the bookmark watch behind the liveness probe, and stops it all on cleanup.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from dataclasses import dataclass, field
from typing import Any

from ..api import constants as c
from ..domain.settings import OperatorSettings
from ..k8s import ClusterConfig, KubeClient, load_config
from ..k8s.workloads import BookmarkWatch
from ..logs import LogArchive
from ..reconcile import Gateway, Metrics, Reconciler
from ..reconcile.engine import release_memory
from ..reconcile.gateway import USER_AGENT
from ..scheduler import AdmissionQueue, Scheduler

log = logging.getLogger("dops.operator")


@dataclass
class Runtime:
    settings: OperatorSettings
    cluster: ClusterConfig
    client: KubeClient
    metrics: Metrics
    admission: AdmissionQueue
    scheduler: Scheduler
    reconciler: Reconciler
    namespaces: tuple[str, ...] = ()
    last_alive: float = field(default_factory=time.monotonic)
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)
    _metrics_server: Any = None
    _bookmarks: list[BookmarkWatch] = field(default_factory=list)
    started: bool = False

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
        metrics = Metrics()
        gateway = Gateway(client, LogArchive(settings.log_archive))
        holder: dict[str, Reconciler] = {}
        admission = AdmissionQueue(lambda target: holder["r"].capacity(target), settings.global_max_concurrent)
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

        def queues() -> tuple[dict[tuple[str, str], int], dict[tuple[str, str], int]]:
            stats = admission.stats()
            return stats.waiting, stats.active

        metrics.watch_state(reconciler.cache.counts, queues)
        return cls(settings, cluster, client, metrics, admission, scheduler, reconciler, namespaces)

    # ------------------------------------------------------------------------------------ lifecycle
    async def start(self) -> None:
        if self.started:
            return
        self.started = True
        await self.reconciler.start()
        assert self.reconciler.ready is not None
        started = time.monotonic()
        counts = {}
        queued = 0
        for kind in ("target", "job", "pod", "op"):  # operations last: their reconciles need the rest
            pages = self.reconciler.gateway.list_pages(kind, self.namespaces)
            counts[kind] = 0
            while (page := await asyncio.to_thread(next, pages, None)) is not None:
                counts[kind] += len(page)
                queued += self.reconciler.prime(kind, page)
                del page
        self.reconciler.mark_ready()
        release_memory()
        log.info(
            "listed %d operations, %d targets, %d Jobs, %d pods in %.2f s; %d operations to reconcile",
            counts["op"],
            counts["target"],
            counts["job"],
            counts["pod"],
            time.monotonic() - started,
            queued,
        )
        self._tasks.append(asyncio.create_task(self.scheduler.run(self.reconciler.ready), name="dops-scheduler"))
        if self.settings.metrics_port:
            from prometheus_client import start_http_server

            self._metrics_server = start_http_server(
                self.settings.metrics_port, addr=self.settings.bind_address, registry=self.metrics.registry
            )
        timeout = max(1, min(self.settings.watch_stale_seconds // 3, 60))
        scopes = self.namespaces or ("",)
        for namespace in scopes:
            where = f"/namespaces/{namespace}" if namespace else ""
            watch = BookmarkWatch(self.client, f"/apis/{c.GROUP}/{c.VERSION}{where}/{c.PLURAL}", self.alive, timeout)
            watch.start()
            self._bookmarks.append(watch)
        log.info(
            "dops operator started (%s; archive %s; global cap %s)",
            ", ".join(self.namespaces) if self.namespaces else "all namespaces",
            self.settings.log_archive,
            self.settings.global_max_concurrent or "unlimited",
        )

    async def stop(self) -> None:
        if not self.started:
            return
        self.started = False
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()
        await self.reconciler.stop()
        if self._metrics_server is not None:
            server, thread = self._metrics_server
            server.shutdown()
            server.server_close()
            thread.join(5)
            self._metrics_server = None
        watches, self._bookmarks = self._bookmarks, []
        await asyncio.gather(*(asyncio.to_thread(w.stop) for w in watches))
        self.client.close()
        self.cluster.close()

    # ------------------------------------------------------------------------------------ liveness
    def alive(self) -> None:
        self.last_alive = time.monotonic()

    def watch_age(self) -> float:
        return time.monotonic() - self.last_alive
