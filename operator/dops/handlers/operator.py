"""Kopf handlers of the dops operator (glue only: every decision lives in dops.reconcile / dops.domain).

Registered in Kopf's default registry at import, so `kopf run -m dops.handlers` and
`dops.handlers.run_operator()` run the same operator.

- startup: Kopf settings (project-prefixed progress/diff-base storages and finalizer name, bounded
  timeouts, posting level, watch timeouts),
  then the runtime: a wait until the API server's discovery lists dops' resources (Kopf watches only
  what its discovery scan, right after this handler, finds; dops.handlers.discovery guards it after
  that), one listing of the unfinished operations (finished ones come through Kopf's own listing,
  after), targets, Jobs and pods fills the cache *before* any admission (after a restart the scheduler
  knows every running operation before it admits a queued one), then the reconcile workers, the
  scheduler, metrics and the bookmark watch start. A failed listing is retried (backoff, a WARNING per
  failure) until it succeeds, never skipped. With leader election (DOPS_LEADER_ELECTION) the startup
  only starts the elector (after the discovery wait): the listing and everything after
  it run when this replica becomes the Lease's holder, and stop the moment it is deposed;
- login: credentials from the same kubeconfig / service account as the rest of dops;
- probes: watch freshness (liveness fails when no watch event or bookmark arrived for
  `watch_stale_seconds`), the operator's own health (fails while the replica that should reconcile has
  not completed its start-up listing — retried until it succeeds — or a long-running task stopped; a
  standby of leader election is healthy) and the reconcile backlog;
- event handlers on DelegatedOperations and DelegationTargets hand every event to the reconcile's cache and
  work queue. dops' own Jobs and pods (labelled `app.kubernetes.io/managed-by=dops`) are not Kopf's: the
  runtime's informers (dops.k8s.informer) list and watch them and feed the same cache, at a fraction of
  Kopf's cost per event (they change about twelve times per operation and need no handler machinery).

Why no `@kopf.index`: Kopf holds every handler until all indexes are populated, and its readiness
toggle wakes every waiting object worker for every listed object (quadratic: minutes at 10,000
operations). The start-up listing gives the same guarantee (a complete view before admitting) in one
request per resource and page. Why no change-detecting (on.create/update/resume) or deletion
handlers: they cost a PATCH per object (diff-base annotations, finalizers) and nothing needs them —
the reconcile is level-triggered and ownerReferences clean up Jobs and pods — so Kopf never adds its
finalizer, and its diff-base essence (built for every event) is skipped (`EssenceFreeDiffBaseStorage`).
"""

from __future__ import annotations

import asyncio
import logging
import os
from typing import Any

import kopf

try:  # Kopf's per-object memories have no public name (see SettledMemories)
    from kopf._core.reactor import inventory
except ImportError:  # a Kopf that moved them: the operator runs with Kopf's own memories (kopf_memories())
    inventory = None  # type: ignore[assignment]

from ..api import constants as c
from ..domain.settings import OperatorSettings
from .discovery import DiscoveryGuard
from .runtime import Runtime

log = logging.getLogger("dops.operator")

OPERATIONS = (c.GROUP, c.VERSION, c.PLURAL)
TARGETS = (c.GROUP, c.VERSION, c.TARGET_PLURAL)
RUNTIME_KEY = "dops_runtime"
INSIGHTS_KEY = "dops_insights"  # Kopf's view of what it watches, when run_operator() passed one to Kopf
# The registry the handlers below register into: Kopf's default one *at import time* (what `kopf run -m
# dops.handlers` runs). Kept, because code running in the same process may install another default later.
REGISTRY = kopf.get_default_registry()
# Bounded retries and timeouts on every handler that supports them (Kopf's default retries forever).
RETRIES = 3
BACKOFF = 1.0
TIMEOUT = 30.0


def runtime_of(memo: Any) -> Runtime:
    """The runtime of this operator run (built on first use from the memo's settings, else the environment)."""
    runtime = memo.get(RUNTIME_KEY)
    if runtime is None:
        settings = memo.get("dops_settings") or OperatorSettings.from_env(os.environ)
        # run_operator() says which namespaces it serves; under `kopf run -m dops.handlers`, DOPS_WATCH_NAMESPACES.
        namespaces = memo.get("dops_namespaces")
        runtime = Runtime.build(
            settings,
            kubeconfig=memo.get("dops_kubeconfig"),
            namespaces=tuple(namespaces) if namespaces is not None else settings.watch_namespaces,
        )
        memo[RUNTIME_KEY] = runtime
    assert isinstance(runtime, Runtime)
    return runtime


def configure(settings: kopf.OperatorSettings, ours: OperatorSettings) -> None:
    """Kopf settings for dops (prior-art.md §4 baseline, adjusted)."""
    settings.persistence.finalizer = c.FINALIZER
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=c.KOPF_PREFIX)
    settings.persistence.diffbase_storage = EssenceFreeDiffBaseStorage(
        prefix=c.KOPF_PREFIX, key="last-handled-configuration"
    )
    settings.posting.level = logging.WARNING
    settings.execution.max_workers = 8
    settings.execution.default_backoff = 5
    settings.networking.request_timeout = 60
    settings.networking.connect_timeout = 10
    settings.watching.connect_timeout = 30
    settings.watching.server_timeout = 300
    settings.watching.client_timeout = 330
    settings.watching.inactivity_timeout = float(min(70, max(ours.watch_stale_seconds, 10)))
    settings.watching.chunk_size = 500  # Kopf's own listing in pages: no 10,000-object response in memory at once
    # Kopf runs one asyncio task per object with recent events; it exits `idle_timeout` s after the last one.
    # Unbounded (as by default) so that a large listing never stalls the watch stream behind a worker limit.
    settings.queueing.idle_timeout = 2.0


class EssenceFreeDiffBaseStorage(kopf.AnnotationsDiffBaseStorage):
    """Kopf's annotation diff-base storage (prefix `kopf.dops.io`), minus the per-event essence and diff base.

    Kopf builds a deep copy of every object's "essence" on every event, and parses the last handled one from
    an annotation, to diff them; but only change-detecting (and daemon) handlers use the diff and dops registers
    none: the essence is always empty here and there is never a diff base to read, which saves a deep copy and
    an annotation lookup per watch event (together about a twentieth of the operator's CPU).
    """

    def build(self, *, body: kopf.Body, extra_fields: Any = None) -> Any:
        return {}

    def fetch(self, *, body: kopf.Body) -> Any:
        return None


if inventory is not None:

    class SettledMemories(inventory.ResourceMemories):
        """Kopf's per-object memories, minus those of finished DelegatedOperations.

        Kopf remembers every object it has seen (a memo copy, an error throttler, daemon and indexing records:
        about a kilobyte each) until the object is deleted: 100,000 stored operations cost some 100 MiB for
        nothing. dops registers only event handlers (no daemons, timers, indexes or change-detecting handlers), so
        a memory holds nothing it needs; for a finished operation (most of a large store) it is made ephemeral —
        built for the event and dropped after it — and an earlier one (from while it ran) is forgotten.
        Passed by `run_operator()`; `kopf run -m dops.handlers` keeps Kopf's own.
        """

        async def recall(
            self,
            raw_body: Any,
            *,
            memobase: Any = None,
            noticed_by_listing: bool = False,
            ephemeral: bool = False,
        ) -> inventory.ResourceMemory:
            if finished_operation(raw_body):
                self._items.pop(self._build_key(raw_body), None)
                ephemeral = True
            return await super().recall(
                raw_body, memobase=memobase, noticed_by_listing=noticed_by_listing, ephemeral=ephemeral
            )


def kopf_memories() -> Any:
    """What `run_operator()` passes Kopf as its per-object memories: SettledMemories, or None (Kopf's own, about
    1 KiB per finished operation) with a warning when this Kopf keeps them elsewhere."""
    if inventory is None:
        log.warning("this Kopf keeps its per-object memories elsewhere: finished operations keep theirs (more memory)")
        return None
    return SettledMemories()


def finished_operation(raw_body: Any) -> bool:
    """A DelegatedOperation in a terminal state (completed, failed); only operations have `status.runState` (list
    items may come without `kind`, so that is not relied on)."""
    status = raw_body.get("status")
    return isinstance(status, dict) and status.get("runState") in ("completed", "failed")


@kopf.on.startup(id="dops.startup", retries=RETRIES, backoff=BACKOFF, timeout=120)
async def startup(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
    runtime = runtime_of(memo)
    configure(settings, runtime.settings)
    try:
        # Without leader election: lists (retrying a failed listing until it succeeds), fills the cache, then
        # starts reconciles and admissions. With it: starts the elector; the leader's term lists and starts.
        await runtime.start()
        insights = memo.get(INSIGHTS_KEY)
        if insights is not None and runtime.discovery is None:
            runtime.guard_discovery(DiscoveryGuard(insights, REGISTRY, settings, (OPERATIONS, TARGETS)))
    except asyncio.CancelledError:
        # Stopped while the listing was still being retried: Kopf runs no cleanup handler after a cancelled
        # startup, so release what was started (threads, the metrics port) here.
        await runtime.stop()
        raise


@kopf.on.cleanup(id="dops.cleanup", retries=1, timeout=60)
async def cleanup(memo: kopf.Memo, **_: Any) -> None:
    runtime = memo.get(RUNTIME_KEY)
    if isinstance(runtime, Runtime):
        await runtime.stop()


@kopf.on.login(id="dops.login", retries=RETRIES, backoff=BACKOFF, timeout=TIMEOUT)
def login(memo: kopf.Memo, **_: Any) -> kopf.ConnectionInfo:
    runtime = runtime_of(memo)
    return connection_info(runtime)


def connection_info(runtime: Runtime) -> kopf.ConnectionInfo:
    """Kopf credentials from the official client's configuration (kubeconfig or in-cluster).

    Kopf calls login again after a 401: the service-account token file is re-read then, not only once a
    minute, so a rotated (or revoked-and-replaced) token is picked up at once."""
    runtime.cluster.refresh_token(force=True)
    config = runtime.cluster.api_client().configuration
    header = config.get_api_key_with_prefix("BearerToken") or config.get_api_key_with_prefix("authorization")
    parts = header.split(" ", 1) if header else []
    scheme, token = (None, None) if not parts else (None, parts[0]) if len(parts) == 1 else (parts[0], parts[1])
    return kopf.ConnectionInfo(
        server=config.host,
        ca_path=config.ssl_ca_cert,
        insecure=not config.verify_ssl,
        username=config.username or None,
        password=config.password or None,
        scheme=scheme,
        token=token,
        certificate_path=config.cert_file,
        private_key_path=config.key_file,
        default_namespace=runtime.cluster.namespace,
    )


@kopf.on.probe(id="watch_age_seconds", retries=1, timeout=5)
def watch_freshness(memo: kopf.Memo, **_: Any) -> float:
    """Liveness: seconds since the last watch event or bookmark; fails past DOPS_WATCH_STALE_SECONDS."""
    runtime = runtime_of(memo)
    age = runtime.watch_age()
    if age > runtime.settings.watch_stale_seconds:
        raise kopf.PermanentError(
            f"no watch event or bookmark for {age:.0f} s "
            f"(DOPS_WATCH_STALE_SECONDS={runtime.settings.watch_stale_seconds})"
        )
    return round(age, 1)


@kopf.on.probe(id="operator", retries=1, timeout=5)
def operator_health(memo: kopf.Memo, **_: Any) -> dict[str, Any]:
    """Liveness and readiness: fails while a replica that should reconcile (the leader, or the only
    operator) has not completed its start-up listing, or when one of its long-running tasks stopped."""
    runtime = runtime_of(memo)
    problem, report = runtime.health()
    if problem is not None:
        raise kopf.PermanentError(problem)
    return report


@kopf.on.probe(id="reconcile_backlog", retries=1, timeout=5)
def backlog(memo: kopf.Memo, **_: Any) -> dict[str, int]:
    runtime = runtime_of(memo)
    stats = runtime.admission.stats()
    return {
        "queued": sum(stats.waiting.values()),
        "active": stats.total_active,
        "reconciling": len(runtime.reconciler.queue),
        "delayed": runtime.reconciler.queue.delayed,
    }


# ---------------------------------------------------------------------------------------- events


@kopf.on.event(*OPERATIONS, id="dops.operations")
async def operation_events(type: str | None, body: kopf.Body, memo: Any, **_: Any) -> None:
    runtime = runtime_of(memo)
    runtime.alive()
    if type == "DELETED":
        runtime.reconciler.operation_deleted(body)
    else:
        runtime.reconciler.operation_seen(body)


@kopf.on.event(*TARGETS, id="dops.targets")
async def target_events(type: str | None, body: kopf.Body, memo: Any, **_: Any) -> None:
    runtime = runtime_of(memo)
    runtime.alive()
    if type == "DELETED":
        runtime.reconciler.target_deleted(body)
    else:
        runtime.reconciler.target_seen(body)
