"""`dops worker run NAMESPACE/NAME`: the Job container. Claims one operation, runs it, records the outcome.

1. **Claim** (`scheduled → running`, a CAS) with `startedAt`, `podName` (`$DOPS_POD_NAME`, else
   `$POD_NAME`) and `runLink` (`$DOPS_RUN_LINK`, when the operator renders one; otherwise the operator
   sets it). When the claim fails the worker reads the operation and says why, then exits **0**
   without running it: cancelled (`failed`), already `completed`, still `queued`, or `running` under
   another pod. Two exceptions: an operation already `running` *for this pod* (the operator's
   fallback claim, or a claim whose response was lost) is run; and an operation `running` under an
   *earlier pod of the same Job* (a retry after a crash/eviction: the Job only starts a replacement
   once the old pod failed) is taken over, after checking that the old pod is gone or finished, with a
   CAS that also tests the old `podName`.
   `--from-queued` claims from `queued` instead (running an operation by hand, without the operator);
   `--claimed` skips the claim because a supervisor (`execute_operation(monitor=True)`) made it.
2. **Run** the operator (`dops.service.executor.run_claimed` → `dops.execution`): progress is written
   to `status.progress` at most twice a second; pipelines run stage by stage.
3. **Record** `completed` + result or `failed` + error (traceback) with a CAS from `running` (a lost
   CAS means the operation was cancelled meanwhile: the external state stays), write the termination
   message, and exit **0** (completed, or nothing to do), **1** (the operation failed, or its outcome
   could not be recorded) or **2** (usage or configuration error).

SIGTERM (the operator deleted the Job to cancel the operation, the pod was deleted or evicted, or the
Job's deadline passed) stops the worker at once with exit code 143 and a termination message, without
writing the state: whoever sent it knows why and records it (the dops operator maps pod and Job
observations to the failure reason; a monitoring executor marks the operation failed). Ctrl-C
(SIGINT, i.e. a person at a terminal, with no supervisor) marks the operation failed, CAS from `running`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Iterator
from types import FrameType
from typing import Any

from ..api.times import utcnow
from ..api.types import DelegatedOperationDocument, ExecutionResult, ExecutionRunState, OperationNotFound
from ..domain import names, transitions
from ..k8s import (
    ApiError,
    ApiUnavailable,
    ConfigurationError,
    DelegatedOperationRepository,
    Invalid,
    KubeClient,
    NotFound,
    load_config,
)
from ..service import DelegatedOperationService
from ..service.executor import run_claimed
from .termination import write_termination_message

log = logging.getLogger("dops.worker")

POD_NAME_ENVS = ("DOPS_POD_NAME", "POD_NAME")
POD_NAMESPACE_ENVS = ("DOPS_POD_NAMESPACE", "POD_NAMESPACE")
RUN_LINK_ENV = "DOPS_RUN_LINK"
LOG_LEVEL_ENV = "DOPS_LOG_LEVEL"
EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_SIGTERM = 143
EXIT_SIGINT = 130
CLAIM_ATTEMPTS = 4
TAKEOVER_WAIT_SECONDS = 40.0  # how long a retry pod waits for a terminating predecessor to finish


class UsageError(ValueError):
    """Bad command-line input or configuration (exit code 2)."""


def _env(names_: tuple[str, ...]) -> str | None:
    for name in names_:
        value = os.environ.get(name, "").strip()
        if value:
            return value
    return None


def configure_logging() -> None:
    """Log to stdout (the pod log) unless the process already configured logging."""
    root = logging.getLogger()
    if root.handlers:
        return
    level_name = os.environ.get(LOG_LEVEL_ENV, "INFO").strip().upper() or "INFO"
    level = logging.getLevelNamesMapping().get(level_name, logging.INFO)
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root.addHandler(handler)
    root.setLevel(level)


def parse_ref(ref: str, namespace: str | None) -> tuple[str | None, str]:
    """`NS/NAME` or `NAME` (in `namespace`) → (namespace or None, name); UsageError for anything else."""
    if not isinstance(ref, str) or not ref.strip():
        raise UsageError("expected an operation reference NAMESPACE/NAME or NAME")
    parts = ref.strip().split("/")
    if len(parts) > 2 or not all(parts):
        raise UsageError(f"invalid operation reference {ref!r}: expected NAMESPACE/NAME or NAME")
    ns = parts[0] if len(parts) == 2 else namespace  # a namespace in the reference wins
    name = parts[-1]
    if ns is not None and not names.is_dns1123_label(ns):
        raise UsageError(f"invalid namespace {ns!r}")
    if not names.is_dns1123_subdomain(name):
        raise UsageError(f"invalid operation name {name!r}")
    return ns, name


@dataclasses.dataclass
class Claim:
    doc: DelegatedOperationDocument | None
    reason: str = ""
    exit_code: int = EXIT_OK


@dataclasses.dataclass
class _Run:
    """What the signal handler needs to know about the run in progress."""

    ref: str
    pod: str | None = None
    running: bool = False


# ================================================================================== claiming


def claim(
    service: DelegatedOperationService,
    ref: str,
    *,
    pod: str | None,
    run_link: str | None,
    mode: str = "scheduled",
) -> Claim:
    """Claim `ref` for this worker (see the module docstring); `mode` is scheduled, queued or claimed."""
    if mode == "claimed":
        try:
            doc = service.get(ref)
        except OperationNotFound:
            return Claim(None, f"operation {ref} not found", EXIT_FAILED)
        if doc.run_state is ExecutionRunState.RUNNING:
            return Claim(doc)
        return Claim(None, _why_not(ref, doc, pod))
    required = ExecutionRunState.QUEUED if mode == "queued" else ExecutionRunState.SCHEDULED
    for attempt in range(CLAIM_ATTEMPTS):
        try:
            doc_ = service.set_running(ref, run_link=run_link, required_state=required, pod_name=pod)
        except ApiUnavailable as exc:
            # The CAS may or may not have been applied: look before trying again.
            log.warning("claiming %s: %s (attempt %d/%d)", ref, exc, attempt + 1, CLAIM_ATTEMPTS)
            time.sleep(min(0.5 * 2**attempt, 4.0))
            try:
                if service.get(ref).run_state is required:
                    continue  # not applied: try again
            except ApiUnavailable:
                continue
            except OperationNotFound:
                pass
            break  # applied (by this worker or someone else): decided below
        if doc_ is not None:
            return Claim(doc_)
        break
    try:
        current = service.get(ref)
    except OperationNotFound:
        return Claim(None, f"operation {ref} not found (deleted?)", EXIT_FAILED)
    if current.run_state is ExecutionRunState.RUNNING and pod:
        if current.pod_name == pod:
            log.info("operation %s is already running for this pod (%s); running it", ref, pod)
            return Claim(current)
        if current.pod_name and current.pod_name != pod and mode == "scheduled" and _pod_finished(service, current):
            taken = _take_over(service, current, pod, run_link)
            if taken is not None:
                log.warning(
                    "operation %s was running in pod %s, which is gone: this pod (%s) takes over (Job retry)",
                    ref,
                    current.pod_name,
                    pod,
                )
                return Claim(taken)
    return Claim(None, _why_not(ref, current, pod))


def _pod_finished(service: DelegatedOperationService, doc: DelegatedOperationDocument) -> bool:
    """Whether the pod that claimed `doc` can no longer run it: gone, Succeeded or Failed (a terminating pod is
    waited for, up to TAKEOVER_WAIT_SECONDS). Unknown (e.g. no RBAC to read pods) counts as still running."""
    namespace = doc.namespace or service.namespace
    path = f"/api/v1/namespaces/{namespace}/pods/{doc.pod_name}"
    deadline = time.monotonic() + TAKEOVER_WAIT_SECONDS
    while True:
        try:
            pod = service.repo.client.request("GET", path)
        except NotFound:
            return True
        except ApiError as exc:
            log.warning("cannot tell whether pod %s still runs operation %s: %s", doc.pod_name, doc.id, exc)
            return False
        if ((pod.get("status") or {}).get("phase")) in ("Succeeded", "Failed"):
            return True
        if not (pod.get("metadata") or {}).get("deletionTimestamp") or time.monotonic() > deadline:
            return False
        time.sleep(1.0)


def _take_over(
    service: DelegatedOperationService, doc: DelegatedOperationDocument, pod: str, run_link: str | None
) -> DelegatedOperationDocument | None:
    """CAS: running under `doc.pod_name` → running under `pod` (fresh startedAt); None when it lost."""
    change = transitions.state_change(ExecutionRunState.RUNNING, utcnow(), run_link=run_link)
    change.fields["podName"] = pod
    ops = transitions.cas_patch(change, ExecutionRunState.RUNNING)
    ops.insert(1, {"op": "test", "path": "/status/podName", "value": doc.pod_name})
    namespace = doc.namespace or service.namespace
    assert doc.id is not None
    try:
        obj = service.repo.patch_status(namespace, doc.id, ops, json_patch=True)
    except NotFound:
        return None
    except Invalid as exc:
        if exc.is_patch_test_failure:
            return None
        raise
    return DelegatedOperationDocument.from_resource(obj)


def _why_not(ref: str, doc: DelegatedOperationDocument, pod: str | None) -> str:
    state = doc.run_state
    if state is ExecutionRunState.FAILED:
        detail = doc.result.error_message or doc.result.error if doc.result is not None else None
        why = f": {str(detail).strip().splitlines()[-1]}" if detail else ""
        return f"operation {ref} was cancelled or failed before this worker claimed it (state failed{why}); not run"
    if state is ExecutionRunState.COMPLETED:
        return f"operation {ref} is already completed; not running it again"
    if state is ExecutionRunState.QUEUED:
        return (
            f"operation {ref} is queued, not scheduled: the dops operator admits it first "
            "(`--from-queued` runs it without the operator); not running it"
        )
    if state is ExecutionRunState.RUNNING:
        owner = f"pod {doc.pod_name}" if doc.pod_name else "another executor"
        return f"operation {ref} is already running ({owner}); not running it twice"
    if state is ExecutionRunState.SCHEDULED:
        return f"operation {ref} is scheduled but could not be claimed (the API server kept failing); not running it"
    return f"operation {ref} has no run state yet (not queued); not running it"


# ================================================================================== signals


class Interrupted(BaseException):
    """Ctrl-C in the worker."""

    signal_name = "SIGINT"


@contextlib.contextmanager
def _signal_handlers(run: _Run) -> Iterator[None]:
    """SIGTERM: exit 143 now, with a termination message and no state write. Only in the main thread."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def on_sigterm(signum: int, frame: FrameType | None) -> None:
        if run.running:
            message = "terminated by SIGTERM while running; the operation's supervisor records the outcome"
        else:
            message = "terminated by SIGTERM"
        log.warning("operation %s: %s", run.ref, message)
        write_termination_message(
            {
                "operation": run.ref,
                "runState": "running" if run.running else None,
                "signal": "SIGTERM",
                "message": message,
            }
        )
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):
                stream.flush()
        os._exit(EXIT_SIGTERM)

    previous = signal.signal(signal.SIGTERM, on_sigterm)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


# ================================================================================== the command


def run_operation(
    ref: str,
    *,
    namespace: str | None = None,
    claimed: bool = False,
    from_queued: bool = False,
    kubeconfig: str | None = None,
    context: str | None = None,
) -> int:
    """Claim, run and record one operation; returns the process exit code (0, 1 or 2; see the module docstring)."""
    configure_logging()
    try:
        if claimed and from_queued:
            raise UsageError("--claimed and --from-queued exclude each other")
        ns, name = parse_ref(ref, namespace)
        config = load_config(kubeconfig, context)
    except (UsageError, ConfigurationError) as exc:
        message = f"dops worker run: {exc}"
        print(message, file=sys.stderr)
        write_termination_message({"operation": ref, "runState": None, "message": message})
        return EXIT_USAGE
    ns = ns or _env(POD_NAMESPACE_ENVS) or config.namespace
    full_ref = f"{ns}/{name}"
    pod = _env(POD_NAME_ENVS)
    if pod is not None and not names.is_dns1123_subdomain(pod):
        log.warning("ignoring invalid pod name %r from the environment", pod)
        pod = None
    client = KubeClient(config)
    run = _Run(full_ref, pod)
    try:
        service = DelegatedOperationService(DelegatedOperationRepository(client), namespace=ns)
        with _signal_handlers(run):
            return _run(service, run, mode="claimed" if claimed else "queued" if from_queued else "scheduled")
    finally:
        client.close()


def _run(service: DelegatedOperationService, run: _Run, *, mode: str) -> int:
    ref = run.ref
    try:
        claimed = claim(service, ref, pod=run.pod, run_link=_env((RUN_LINK_ENV,)), mode=mode)
    except ApiError as exc:
        message = f"cannot claim operation {ref}: {exc}"
        log.error("%s", message)
        write_termination_message({"operation": ref, "runState": None, "message": message})
        return EXIT_FAILED
    if claimed.doc is None:
        log.info("%s", claimed.reason)
        write_termination_message({"operation": ref, "claimed": False, "message": claimed.reason})
        return claimed.exit_code
    doc = claimed.doc
    log.info("running operation %s: %s%s", ref, doc.operator, " (pipeline)" if doc.pipeline else "")
    run.running = True
    try:
        result = run_claimed(service, doc, logger=logging.getLogger(f"dops.operator.{doc.operator}"))
    except KeyboardInterrupt:
        return _interrupted(service, ref)
    finally:
        run.running = False
    outcome = result.outcome
    summary: dict[str, Any] = {"operation": ref, "runState": "completed" if outcome.succeeded else "failed"}
    if result.record_error is not None:
        message = f"could not record the outcome ({summary['runState']}: {outcome.message}): {result.record_error}"
        log.error("operation %s: %s", ref, message)
        write_termination_message({**summary, "recorded": False, "message": message})
        return EXIT_FAILED
    if result.state_changed_externally:
        log.warning(
            "operation %s %s, but its state changed meanwhile (cancelled?): the outcome was not recorded",
            ref,
            "completed" if outcome.succeeded else "failed",
        )
        summary["recorded"] = False
    if outcome.succeeded:
        log.info("operation %s completed", ref)
        write_termination_message({**summary, "message": "completed"})
        return EXIT_OK
    log.error("operation %s failed: %s", ref, outcome.message)
    if outcome.result.error and outcome.result.error != outcome.message:
        log.error("%s", outcome.result.error.rstrip())
    write_termination_message({**summary, "message": outcome.message})
    return EXIT_FAILED


def _interrupted(service: DelegatedOperationService, ref: str) -> int:
    message = "interrupted (SIGINT) while running"
    log.warning("operation %s: %s", ref, message)
    with contextlib.suppress(Exception):
        service.set_failed(ref, result=ExecutionResult(error=message, error_message=message), required_state="running")
    write_termination_message({"operation": ref, "runState": "failed", "message": message})
    return EXIT_SIGINT
