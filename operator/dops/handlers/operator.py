"""Kopf handlers of the dops operator (glue only: every decision lives in dops.reconcile / dops.domain).

Registered in Kopf's default registry at import, so `kopf run -m dops.handlers` and
`dops.handlers.run_operator()` run the same operator.

- startup: Kopf settings (project-prefixed progress/diff-base storages and finalizer name, bounded
  timeouts, posting level, watch timeouts, label selectors so only dops Jobs and Pods are watched),
  then the runtime (reconcile workers, scheduler, metrics, bookmark watch);
- login: credentials from the same kubeconfig / service account as the rest of dops;
- probe (liveness): fails when no watch event or bookmark arrived for `watch_stale_seconds`;
- indexes on DelegatedOperations, DelegationTargets, Jobs and Pods feed the reconcile's cache. Kopf
  invokes handlers only after every index is populated from the initial listing, so the first
  handler call marks the cache complete: admission never starts from a partial view (e.g. after a
  restart it knows every running operation before it admits a queued one);
- event handlers keep the liveness clock, pass deletions on and mark readiness.

No change-detecting handlers (on.create/update/resume) and no deletion handlers are used: they would
cost a PATCH per object (diff-base annotations, finalizers), and nothing needs them: the reconcile is
level-triggered and ownerReferences clean up Jobs and pods. Kopf therefore never adds its finalizer.
"""

from __future__ import annotations

import logging
import os
from typing import Any

import kopf

from ..api import constants as c
from ..domain.settings import OperatorSettings
from .runtime import Runtime

log = logging.getLogger("dops.operator")

OPERATIONS = (c.GROUP, c.VERSION, c.PLURAL)
TARGETS = (c.GROUP, c.VERSION, c.TARGET_PLURAL)
JOBS = ("batch", "v1", "jobs")
PODS = ("", "v1", "pods")
MANAGED = {c.MANAGED_BY_LABEL: c.MANAGED_BY}
MANAGED_SELECTOR = f"{c.MANAGED_BY_LABEL}={c.MANAGED_BY}"
RUNTIME_KEY = "dops_runtime"
# Bounded retries and timeouts on every handler that supports them (Kopf's default retries forever).
RETRIES = 3
BACKOFF = 1.0
TIMEOUT = 30.0


def runtime_of(memo: Any) -> Runtime:
    """The runtime of this operator run (built on first use from the memo's settings, else the environment)."""
    runtime = memo.get(RUNTIME_KEY) if hasattr(memo, "get") else None
    if runtime is None:
        settings = memo.get("dops_settings") if hasattr(memo, "get") else None
        runtime = Runtime.build(
            settings or OperatorSettings.from_env(os.environ),
            kubeconfig=memo.get("dops_kubeconfig") if hasattr(memo, "get") else None,
            namespaces=tuple(memo.get("dops_namespaces") or ()) if hasattr(memo, "get") else (),
        )
        memo[RUNTIME_KEY] = runtime
    assert isinstance(runtime, Runtime)
    return runtime


def configure(settings: kopf.OperatorSettings, ours: OperatorSettings) -> None:
    """Kopf settings for dops (prior-art.md §4 baseline, adjusted)."""
    settings.persistence.finalizer = c.FINALIZER
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=c.KOPF_PREFIX)
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
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
    # Only dops' own Jobs and Pods are watched (server-side selector), never the whole cluster's.
    settings.watching.label_selectors[JOBS] = MANAGED_SELECTOR
    settings.watching.label_selectors[PODS] = MANAGED_SELECTOR
    # queueing.worker_limit stays unbounded: with indexes, a bounded worker pool can deadlock Kopf's
    # "all indexed" readiness on a large initial listing (workers wait for readiness while holding slots).


@kopf.on.startup(id="dops.startup", retries=RETRIES, backoff=BACKOFF, timeout=120)
async def startup(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
    runtime = runtime_of(memo)
    configure(settings, runtime.settings)
    await runtime.start()


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
    """Kopf credentials from the official client's configuration (kubeconfig or in-cluster)."""
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
            f"no watch event or bookmark for {age:.0f} s (DOPS_WATCH_STALE_SECONDS={runtime.settings.watch_stale_seconds})"
        )
    return round(age, 1)


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


# ---------------------------------------------------------------------------------------- operations


@kopf.index(*OPERATIONS, id="dops.operations", retries=RETRIES, backoff=BACKOFF, timeout=TIMEOUT)
async def operations_index(body: kopf.Body, namespace: str | None, name: str, memo: Any, **_: Any) -> object:
    runtime = runtime_of(memo)
    state = runtime.reconciler.operation_seen(body)
    runtime.reconciler.enqueue((namespace or "", name))
    return {(namespace or "", name): state or "new"}


@kopf.on.event(*OPERATIONS, id="dops.operation-events")
async def operation_events(type: str | None, body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    runtime = runtime_of(memo)
    runtime.alive()
    runtime.reconciler.mark_ready()
    if type == "DELETED":
        runtime.reconciler.operation_deleted(body)


# ---------------------------------------------------------------------------------------- targets


@kopf.index(*TARGETS, id="dops.targets", retries=RETRIES, backoff=BACKOFF, timeout=TIMEOUT)
async def targets_index(body: kopf.Body, namespace: str | None, name: str, memo: Any, **_: Any) -> object:
    runtime_of(memo).reconciler.target_seen(body)
    return {(namespace or "", name): body.get("spec", {}).get("mode", c.MODE_JOB)}


@kopf.on.event(*TARGETS, id="dops.target-events")
async def target_events(type: str | None, body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    runtime = runtime_of(memo)
    runtime.alive()
    runtime.reconciler.mark_ready()
    if type == "DELETED":
        runtime.reconciler.target_deleted(body)


# ---------------------------------------------------------------------------------------- jobs and pods


@kopf.index(*JOBS, labels=MANAGED, id="dops.jobs", retries=RETRIES, backoff=BACKOFF, timeout=TIMEOUT)
async def jobs_index(body: kopf.Body, namespace: str | None, name: str, memo: Any, **_: Any) -> object:
    runtime_of(memo).reconciler.job_seen(body)
    return {(namespace or "", name): body.get("metadata", {}).get("annotations", {}).get("dops.io/operation")}


@kopf.on.event(*JOBS, labels=MANAGED, id="dops.job-events")
async def job_events(type: str | None, body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    runtime = runtime_of(memo)
    runtime.alive()
    runtime.reconciler.mark_ready()
    if type == "DELETED":
        runtime.reconciler.job_deleted(body)


@kopf.index(*PODS, labels=MANAGED, id="dops.pods", retries=RETRIES, backoff=BACKOFF, timeout=TIMEOUT)
async def pods_index(body: kopf.Body, namespace: str | None, name: str, memo: Any, **_: Any) -> object:
    runtime_of(memo).reconciler.pod_seen(body)
    return {(namespace or "", name): body.get("status", {}).get("phase")}


@kopf.on.event(*PODS, labels=MANAGED, id="dops.pod-events")
async def pod_events(type: str | None, body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    runtime = runtime_of(memo)
    runtime.alive()
    runtime.reconciler.mark_ready()
    if type == "DELETED":
        runtime.reconciler.pod_deleted(body)
