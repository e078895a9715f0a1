"""Executing delegated operations: FiftyOne's `execute_operation` / `execute_queued_operations`, and the
shared "run a claimed operation and record its outcome" step the dops worker uses too.

Flow of `execute_operation(operation, log, run_link, monitor, check_interval_seconds, log_path)`
(fiftyone-semantics.md §4.2–4.6):

1. **Claim**: `set_running(required_state=QUEUED, monitored=monitor)`; None (another executor won, or
   the operation is gone) → return None without running.
2. **Sync** (`monitor=False`): run the operator in this process (`dops.execution.Engine`), then
   `set_completed` / `set_failed` with `required_state=RUNNING`. A lost final CAS returns
   `ExecutionResult(error="Operation state changed externally during execution.")` and keeps the
   external state. There is no cancellation in this mode (FiftyOne's too).
3. **Monitor** (`monitor=True`): run `python -m dops.worker run NS/NAME --claimed` in its own session and
   poll every `check_interval_seconds`: the operation marked `failed` (cancelled) → terminate the
   child's process tree and return `"Operation marked as FAILED externally"` (or `"Operation FAILED
   (detected by monitor): <error>"`); the operation deleted → terminate and return `"Error in
   monitoring loop: ..."`; otherwise `ping` (heartbeat on `updated_at`). After the child exits, the
   stored outcome is returned. **Unlike FiftyOne**, a child that exits without a terminal state
   (crash, OOM, SIGKILL) leaves the operation `failed` with "Operation ended without terminal state
   (exit code X, run_state=running)", never `running`.
4. Anything escaping 1–3 marks the operation failed with the traceback (with `required_state=RUNNING`,
   so a terminal state written by someone else is never overwritten; FiftyOne writes without a CAS),
   and returns that result. SIGTERM/Ctrl-C (BaseException) do the same and are re-raised.

`run_claimed(service, doc)` is step 2 without the claim: the dops worker (`dops worker run`) claims
`scheduled → running` itself and then calls it.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import subprocess
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..api.types import (
    DelegatedOperationDocument,
    DelegatedOperationPagingParams,
    ExecutionProgress,
    ExecutionResult,
    ExecutionRunState,
    OperationNotFound,
    PipelineRunInfo,
)
from ..execution import Engine, ExecutionOutcome, ExecutionRequest
from ..execution.runner import failure
from ..k8s import ApiError, ApiUnavailable, DelegationTargetRepository, KubernetesError, NotFound
from ..k8s.retry import patiently
from .processes import describe_exit, kill_process_tree

if TYPE_CHECKING:
    from .delegated import DelegatedOperationService, Fence

_log = logging.getLogger("dops.executor")

ALLOW_IMPORT_PATHS_ENV = "DOPS_ALLOW_IMPORT_PATHS"
STATE_CHANGED = "Operation state changed externally during execution."
KILL_GRACE_SECONDS = 10.0  # SIGTERM → SIGKILL for a monitored child (FiftyOne: 10 s)
MONITOR_API_FAILURES = 3  # consecutive unreachable-API checks a monitor tolerates before giving up
RECORD_PATIENCE_SECONDS = 60.0  # the FiftyOne-style executors; the dops worker waits longer (dops.worker.run)


def parse_bool(value: str | None, default: bool = False) -> bool:
    if value is None or value.strip() == "":
        return default
    text = value.strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"{ALLOW_IMPORT_PATHS_ENV} must be true or false, got {value!r}")


def ref_of(doc: DelegatedOperationDocument, default_namespace: str) -> str:
    return f"{doc.namespace or default_namespace}/{doc.id}"


# ================================================================================== shared steps


def import_paths_allowed(service: DelegatedOperationService, doc: DelegatedOperationDocument) -> bool:
    """Whether `py:` operator URIs may run for `doc`: its DelegationTarget's `allowImportPaths`, or the
    `DOPS_ALLOW_IMPORT_PATHS` setting (default false) when it names no target or the target is unreadable."""
    try:
        default = parse_bool(os.environ.get(ALLOW_IMPORT_PATHS_ENV))
    except ValueError as exc:
        _log.warning("%s; import paths stay disallowed", exc)
        default = False
    if not doc.delegation_target:
        return default
    targets = DelegationTargetRepository(service.repo.client)
    try:
        target = targets.get(doc.namespace or service.namespace, doc.delegation_target)
    except NotFound:
        return default
    except KubernetesError as exc:
        _log.debug("cannot read DelegationTarget %s (%s); using %s", doc.delegation_target, exc, ALLOW_IMPORT_PATHS_ENV)
        return default
    value = (target.get("spec") or {}).get("allowImportPaths")
    return value if isinstance(value, bool) else default


@dataclasses.dataclass
class ClaimedRun:
    """Outcome of `run_claimed`: what the operator did and what got recorded.

    `recorded` is the document after the terminal write (None when the CAS lost: the state changed
    externally); `record_error` is set when the terminal write could not be made at all."""

    outcome: ExecutionOutcome
    recorded: DelegatedOperationDocument | None
    record_error: BaseException | None = None

    @property
    def state_changed_externally(self) -> bool:
        return self.recorded is None and self.record_error is None


def run_claimed(
    service: DelegatedOperationService,
    doc: DelegatedOperationDocument,
    *,
    engine: Engine | None = None,
    logger: logging.Logger | None = None,
    progress_interval: float | None = None,
    fence: Fence = (),
    owns: Callable[[DelegatedOperationDocument], bool] | None = None,
    on_superseded: Callable[[str], None] | None = None,
    write_patience: float = 0.0,
    record_patience: float = RECORD_PATIENCE_SECONDS,
) -> ClaimedRun:
    """Run a `running` operation claimed by the caller and record completed/failed with a CAS from running.

    The dops worker fences its writes (`fence`: JSON Patch tests of its attempt's identity, `owns`: the
    same identity as a predicate on a read document): a progress write that fails its tests means the
    attempt was superseded, and `on_superseded(message)` is called (the worker exits). Progress writes
    are retried on transient errors for `write_patience` seconds, the outcome for `record_patience`.
    """
    ref = ref_of(doc, service.namespace)
    engine = engine or Engine(allow_import_paths=import_paths_allowed(service, doc))
    request_params = dict(doc.context.request_params) if doc.context is not None else {}
    if not request_params.get("dataset_id") and doc.dataset_id:
        request_params["dataset_id"] = doc.dataset_id  # FiftyOne: execution loads the dataset by id
    request = ExecutionRequest(
        operator_uri=doc.operator or "",
        request_params=request_params,
        pipeline=doc.pipeline,
        operation_id=doc.id,
    )

    progress_fence = [{"op": "test", "path": "/status/runState", "value": "running"}, *fence] if fence else []

    def write_progress(progress: ExecutionProgress) -> None:
        written = patiently(
            f"recording the progress of {ref}",
            lambda: service.set_progress(ref, progress, fence=progress_fence),
            write_patience,
        )
        if written is None and fence and on_superseded is not None:
            why = _superseded_by(service, ref, owns)
            if why is not None:
                on_superseded(f"its progress write failed its attempt tests: {why}")

    def on_pipeline(info: PipelineRunInfo) -> None:
        service.set_pipeline_run_info(ref, info)

    extra: dict[str, Any] = {}
    if progress_interval is not None:
        extra["progress_interval"] = progress_interval
    outcome = engine.run_sync(request, write_progress=write_progress, on_pipeline=on_pipeline, logger=logger, **extra)
    recorded, error = record_outcome(
        service, ref, outcome, parent_id=doc.parent_id, fence=fence, owns=owns, patience=record_patience
    )
    return ClaimedRun(outcome, recorded, error)


def _superseded_by(
    service: DelegatedOperationService, ref: str, owns: Callable[[DelegatedOperationDocument], bool] | None
) -> str | None:
    """Why a fenced write lost, in words, when another attempt owns the operation now (or it is gone); None when
    it is still this attempt's (cancelled, or its outcome already written: the run carries on to its end)."""
    try:
        current = service.get(ref)
    except OperationNotFound:
        return f"operation {ref} no longer exists"
    except ApiError:
        return None  # cannot tell: carry on; the outcome write is fenced too
    if owns is None or owns(current):
        return None
    return (
        f"operation {ref} is now {current.run_state.value if current.run_state else 'without a state'}, "
        f"attempt {current.attempt}, Job {current.job_name}, pod {current.pod_name}"
    )


def record_outcome(
    service: DelegatedOperationService,
    ref: str,
    outcome: ExecutionOutcome,
    *,
    parent_id: str | None = None,
    fence: Fence = (),
    owns: Callable[[DelegatedOperationDocument], bool] | None = None,
    patience: float = RECORD_PATIENCE_SECONDS,
) -> tuple[DelegatedOperationDocument | None, BaseException | None]:
    """Write completed/failed with `required_state=RUNNING` (and the `fence` tests), retrying transient errors
    (no answer, 429, 5xx) with backoff for `patience` seconds.

    A write whose response was lost may have been applied: before each retry the operation is read; a
    state other than `running` ends the retries (somebody, maybe this very write, recorded it), and so does
    a `running` state that `owns` says is no longer this executor's (another attempt runs it: lost)."""

    def write() -> DelegatedOperationDocument | None:
        if outcome.succeeded:
            try:
                return service.set_completed(
                    ref,
                    result=outcome.result,
                    progress=outcome.pending_progress,
                    required_state="running",
                    fence=fence,
                )
            except ValueError as exc:  # not storable after all (e.g. an outputs schema that is not JSON)
                outcome.result = failure(exc, with_traceback=False)
        return service.set_failed(
            ref,
            result=outcome.result,
            progress=outcome.pending_progress,
            required_state="running",
            update_pipeline=parent_id,
            cancel=False,
            fence=fence,
        )

    lost = object()  # `check`'s "decided: the write lost" (None would mean "retry")

    def check() -> Any:
        try:
            current = service.get(ref)
        except OperationNotFound:
            return lost
        if current.run_state is not ExecutionRunState.RUNNING:
            return current
        if owns is not None and not owns(current):
            return lost
        return None

    try:
        recorded = patiently(f"recording the outcome of {ref}", write, patience, check=check)
    except ApiError as exc:
        return None, exc
    return (None, None) if recorded is lost else (recorded, None)


# ================================================================================== FiftyOne's API


def execute_queued_operations(
    service: DelegatedOperationService,
    operator: str | None = None,
    delegation_target: str | None = None,
    dataset_name: str | None = None,
    limit: int | None = None,
    log: bool = False,
    monitor: bool = False,
    check_interval_seconds: float = 60,
    **kwargs: Any,
) -> list[Any]:
    """List the queued operations once (FiftyOne's order: newest first), execute each; one entry per
    operation (None for those another executor claimed first)."""
    # As FiftyOne: any given limit pages, and a falsy one (0) pages without a limit; only None is no paging (1000)
    paging = DelegatedOperationPagingParams(limit=limit) if limit is not None else None
    queued = service.list_operations(
        operator=operator,
        dataset_name=dataset_name,
        delegation_target=delegation_target,
        run_state=ExecutionRunState.QUEUED,
        paging=paging,
        **kwargs,
    )
    return [
        execute_operation(service, op, log=log, monitor=monitor, check_interval_seconds=check_interval_seconds)
        for op in queued
    ]


def execute_operation(
    service: DelegatedOperationService,
    operation: DelegatedOperationDocument,
    log: bool = False,
    run_link: str | None = None,
    monitor: bool = False,
    check_interval_seconds: float = 60,
    log_path: str | None = None,
    *,
    child_command: Callable[[str], list[str]] | None = None,
) -> ExecutionResult | None:
    """Claim (queued → running) and run one operation; see the module docstring."""
    if not isinstance(operation, DelegatedOperationDocument):
        raise TypeError(f"operation must be a DelegatedOperationDocument, not {type(operation).__name__}")
    if monitor and not check_interval_seconds > 0:
        raise ValueError(f"check_interval_seconds must be > 0, got {check_interval_seconds!r}")
    ref = ref_of(operation, service.namespace)
    emit = _emitter(log)
    claimed = False
    try:
        doc = service.set_running(
            ref, run_link=run_link, log_path=log_path, required_state=ExecutionRunState.QUEUED, monitored=monitor
        )
        if doc is None:
            emit(logging.DEBUG, "Operation %s was not executed: it is no longer queued (or no longer exists)", ref)
            return None
        claimed = True
        emit(logging.INFO, "Running operation %s (%s)", ref, doc.operator)
        if monitor:
            return _execute_monitored(service, doc, ref, emit, float(check_interval_seconds), child_command)
        return _execute_sync(service, doc, ref, emit)
    except BaseException as exc:
        if not claimed:
            raise
        result = failure(exc)
        if not isinstance(exc, Exception):
            what = getattr(exc, "signal_name", None) or type(exc).__name__
            message = f"the executor was interrupted ({what}) while the operation was running"
            result = ExecutionResult(error=f"{message}\n{result.error}", error_message=message)
        emit(logging.ERROR, "Operation %s failed\n%s", ref, result.error)
        try:
            service.set_failed(
                ref, result=result, required_state="running", update_pipeline=operation.parent_id, cancel=False
            )
        except Exception as record_exc:
            _log.error("could not mark operation %s failed: %s", ref, record_exc)
        if not isinstance(exc, Exception):
            raise
        return result


def _emitter(enabled: bool) -> Callable[..., None]:
    def emit(level: int, message: str, *args: Any) -> None:
        _log.log(level if enabled else logging.DEBUG, message, *args)

    return emit


def _execute_sync(
    service: DelegatedOperationService, doc: DelegatedOperationDocument, ref: str, emit: Callable[..., None]
) -> ExecutionResult:
    run = run_claimed(service, doc)
    if run.record_error is not None:
        raise run.record_error
    if run.state_changed_externally:
        emit(
            logging.INFO,
            "Operation %s was not marked as %s because its state changed externally",
            ref,
            "completed" if run.outcome.succeeded else "failed",
        )
        return ExecutionResult(error=STATE_CHANGED)
    if run.outcome.succeeded:
        emit(logging.INFO, "Operation %s complete", ref)
    else:
        emit(logging.INFO, "Operation %s failed\n%s", ref, run.outcome.result.error)
    return run.outcome.result


def worker_command(ref: str, service: DelegatedOperationService) -> list[str]:
    """The child of a monitored execution: the dops worker, told that the operation is already claimed."""
    command = [sys.executable, "-m", "dops.worker", "run", ref, "--claimed"]
    config = service.repo.client.config
    if config.kubeconfig_path is not None:
        command += ["--kubeconfig", str(config.kubeconfig_path)]
        if config.context:
            command += ["--context", config.context]
    return command


def _execute_monitored(
    service: DelegatedOperationService,
    doc: DelegatedOperationDocument,
    ref: str,
    emit: Callable[..., None],
    interval: float,
    child_command: Callable[[str], list[str]] | None,
) -> ExecutionResult:
    command = child_command(ref) if child_command is not None else worker_command(ref, service)
    process: subprocess.Popen[bytes] = subprocess.Popen(command, start_new_session=True)
    emit(logging.INFO, "Operation %s runs in process %d", ref, process.pid)
    api_failures = 0
    try:
        while True:
            try:
                process.wait(timeout=interval)
                break
            except subprocess.TimeoutExpired:
                pass
            try:
                current = service.get(ref)
            except OperationNotFound as exc:
                kill_process_tree(process, KILL_GRACE_SECONDS)
                raise RuntimeError(f"Error in monitoring loop: {exc}") from None
            except ApiUnavailable as exc:
                api_failures += 1
                _log.warning(
                    "monitor of %s cannot reach the API (%d/%d): %s", ref, api_failures, MONITOR_API_FAILURES, exc
                )
                if api_failures >= MONITOR_API_FAILURES:
                    kill_process_tree(process, KILL_GRACE_SECONDS)
                    raise RuntimeError(f"Error in monitoring loop: {exc}") from None
                continue
            api_failures = 0
            if current.run_state is ExecutionRunState.FAILED:
                stored = (current.result.error if current.result is not None else None) or ""
                if not stored or "marked as failed" in stored.lower():
                    reason = "Operation marked as FAILED externally"
                else:
                    reason = f"Operation FAILED (detected by monitor): {stored}"
                code = kill_process_tree(process, KILL_GRACE_SECONDS)
                emit(logging.INFO, "%s: %s; its process was stopped (%s)", ref, reason, describe_exit(code))
                return ExecutionResult(error=reason)
            service.ping(ref)
        code = process.returncode
        try:
            current = service.get(ref)
        except Exception as exc:
            return ExecutionResult(error=f"Finalization error: {exc}")
        if current.run_state is not None and current.run_state.is_terminal():
            emit(logging.INFO, "Operation %s %s (process %s)", ref, current.run_state.value, describe_exit(code))
            return current.result or ExecutionResult()
        message = f"Operation ended without terminal state ({describe_exit(code)}, run_state={current.run_state})"
        result = ExecutionResult(error=message, error_message=message)
        if current.run_state is ExecutionRunState.RUNNING:
            # FiftyOne leaves the operation running here; dops records the failure (CAS: only if still running).
            service.set_failed(
                ref, result=result, required_state="running", update_pipeline=doc.parent_id, cancel=False
            )
        emit(logging.ERROR, "Operation %s: %s", ref, message)
        return result
    finally:
        if process.poll() is None:
            _log.info("stopping the process of operation %s (executor shutting down)", ref)
            kill_process_tree(process, KILL_GRACE_SECONDS)
