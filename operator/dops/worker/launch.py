"""`dops worker launch`: the external executor for DelegationTargets with `mode: external`.

FiftyOne's `fiftyone delegated launch`, on DelegatedOperation resources: a loop that claims queued
operations (CAS `queued → running`) and runs them with `DelegatedOperationService.execute_operation`
— in this process, or with `--monitor` in a child process that is stopped when the operation is
cancelled. The dops operator never launches Jobs for `mode: external` targets, so these operations
wait for a launcher.

Which operations: with `--target T`, those of DelegationTarget T (which must exist and have
`mode: external`); without, those of every `mode: external` target in the namespace (re-read on
every poll). Operations of `mode: job` targets and of the default target are the operator's and
are never touched. Order: **oldest first** (FIFO; FiftyOne's launcher takes the newest first).

`once`: run what is queued now (at most `limit`), then return. Otherwise poll every `interval`
seconds until SIGTERM/SIGINT or until `limit` operations ran. A signal during a run stops it: the
operation is marked failed ("the executor was interrupted (SIGTERM) ...") and a monitored child's
process tree is stopped. Exit codes: 0 (stopped or done), 4 (the API stayed unreachable), 2 (usage); 1 is a crash.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import sys
import threading
import time
from collections.abc import Iterator
from types import FrameType

from ..api import constants as c
from ..api.types import (
    DelegatedOperationDocument,
    DelegatedOperationPagingParams,
    ExecutionRunState,
    SortDirection,
)
from ..k8s import (
    ApiError,
    ConfigurationError,
    DelegatedOperationRepository,
    DelegationTargetRepository,
    KubeClient,
    NotFound,
    load_config,
)
from ..service import DelegatedOperationService
from .run import EXIT_OK, EXIT_UNRECORDED, EXIT_USAGE, UsageError, configure_logging

log = logging.getLogger("dops.worker.launch")

MAX_API_FAILURES = 10  # consecutive failed polls before the launcher gives up (exit 4)


class Terminated(BaseException):
    """Raised in the main thread by SIGTERM/SIGINT while an operation runs."""

    def __init__(self, signal_name: str) -> None:
        super().__init__(signal_name)
        self.signal_name = signal_name


class _State:
    def __init__(self) -> None:
        self.stop = threading.Event()
        self.executing = False
        self.interrupted = False


@contextlib.contextmanager
def _signal_handlers(state: _State) -> Iterator[None]:
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: FrameType | None) -> None:
        name = signal.Signals(signum).name
        first = not state.stop.is_set()
        state.stop.set()
        if state.executing and not state.interrupted:
            state.interrupted = True
            log.warning("%s: stopping the running operation and exiting", name)
            raise Terminated(name)
        if first:
            log.info("%s: exiting", name)

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def _external_targets(targets: DelegationTargetRepository, namespace: str) -> list[str]:
    page = targets.list(namespace)
    return sorted(
        str(t["metadata"]["name"]) for t in page.items if (t.get("spec") or {}).get("mode") == c.MODE_EXTERNAL
    )


def next_queued(service: DelegatedOperationService, target_names: list[str]) -> DelegatedOperationDocument | None:
    """The oldest queued operation of any of these targets (None when there is none)."""
    paging = DelegatedOperationPagingParams(
        sort_by="queued_at", sort_direction=SortDirection.ASCENDING, skip=0, limit=1
    )
    candidates: list[DelegatedOperationDocument] = []
    for name in target_names:
        candidates += service.list_operations(run_state=ExecutionRunState.QUEUED, delegation_target=name, paging=paging)
    if not candidates:
        return None
    return min(candidates, key=lambda d: (d.queued_at is None, d.queued_at, d.id or ""))


def launch(
    *,
    target: str | None = None,
    monitor: bool = False,
    namespace: str | None = None,
    once: bool = False,
    interval: float = 5.0,
    limit: int | None = None,
    kubeconfig: str | None = None,
    context: str | None = None,
) -> int:
    """Run queued operations of `mode: external` targets until stopped; returns the exit code."""
    configure_logging()
    try:
        if not interval > 0:
            raise UsageError(f"--interval must be > 0 seconds, got {interval}")
        if limit is not None and limit < 1:
            raise UsageError(f"--limit must be ≥ 1, got {limit}")
        config = load_config(kubeconfig, context)
    except (UsageError, ConfigurationError) as exc:
        print(f"dops worker launch: {exc}", file=sys.stderr)
        return EXIT_USAGE
    ns = namespace or config.namespace
    client = KubeClient(config)
    try:
        service = DelegatedOperationService(DelegatedOperationRepository(client), namespace=ns)
        targets = DelegationTargetRepository(client)
        if target is not None:
            try:
                spec = targets.get(ns, target).get("spec") or {}
            except NotFound:
                print(f"dops worker launch: DelegationTarget {target} not found in namespace {ns}", file=sys.stderr)
                return EXIT_USAGE
            except ApiError as exc:
                print(f"dops worker launch: cannot read DelegationTarget {ns}/{target}: {exc}", file=sys.stderr)
                return EXIT_UNRECORDED
            if spec.get("mode") != c.MODE_EXTERNAL:
                print(
                    f"dops worker launch: DelegationTarget {ns}/{target} has mode {spec.get('mode', c.MODE_JOB)}: "
                    "the dops operator runs its operations as Jobs; launchers serve targets with mode: external",
                    file=sys.stderr,
                )
                return EXIT_USAGE
        state = _State()
        with _signal_handlers(state):
            return _loop(
                service, targets, state, target=target, monitor=monitor, once=once, interval=interval, limit=limit
            )
    finally:
        client.close()


def _loop(
    service: DelegatedOperationService,
    targets: DelegationTargetRepository,
    state: _State,
    *,
    target: str | None,
    monitor: bool,
    once: bool,
    interval: float,
    limit: int | None,
) -> int:
    ns = service.namespace
    where = f"DelegationTarget {ns}/{target}" if target else f"the mode: external DelegationTargets of namespace {ns}"
    log.info("launcher serving %s (%s, polling every %ss)", where, "monitored" if monitor else "in-process", interval)
    ran = 0
    failures = 0
    warned_no_targets = False
    while not state.stop.is_set():
        try:
            names = [target] if target else _external_targets(targets, ns)
            op = next_queued(service, names) if names else None
            failures = 0
        except ApiError as exc:
            failures += 1
            log.warning("cannot list queued operations (%d/%d): %s", failures, MAX_API_FAILURES, exc)
            if failures >= MAX_API_FAILURES:
                log.error("giving up: the API server stayed unreachable")
                return EXIT_UNRECORDED
            state.stop.wait(min(interval * failures, 60.0))
            continue
        if not names and not warned_no_targets:
            log.info("no DelegationTarget with mode: external in namespace %s yet", ns)
            warned_no_targets = True
        if op is None:
            if once:
                break
            state.stop.wait(interval)
            continue
        started = time.monotonic()
        try:
            state.executing = True
            result = service.execute_operation(op, log=True, monitor=monitor, check_interval_seconds=interval)
        except Terminated:
            log.info("stopped while running %s/%s", op.namespace, op.id)
            return EXIT_OK
        except ApiError as exc:
            failures += 1
            log.warning("could not execute %s/%s (%d/%d): %s", op.namespace, op.id, failures, MAX_API_FAILURES, exc)
            if failures >= MAX_API_FAILURES:
                return EXIT_UNRECORDED
            state.stop.wait(interval)
            continue
        finally:
            state.executing = False
        if result is not None:
            ran += 1
            outcome = "failed" if getattr(result, "error", None) else "completed"
            log.info("operation %s/%s %s in %.1fs", op.namespace, op.id, outcome, time.monotonic() - started)
        if limit is not None and ran >= limit:
            break
    return EXIT_OK
