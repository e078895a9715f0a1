"""`dops worker run NAMESPACE/NAME`: the Job container. Claims one operation, runs it, records the outcome.

1. **Claim** (`scheduled → running`, a CAS) with `startedAt`, `podName` (`$DOPS_POD_NAME`, else
   `$POD_NAME`) and `runLink` (`$DOPS_RUN_LINK`, when the operator renders one; otherwise the operator
   sets it). When the claim fails the worker reads the operation and says why, then exits **0**
   without running it: cancelled (`failed`), already `completed`, still `queued`, or `running` under
   another pod. Two exceptions: an operation already `running` *for this pod* (the operator's
   fallback claim, or a claim whose response was lost) is run; and an operation `running` under an
   *earlier pod of the same Job* (a retry after a crash/eviction: the Job only starts a replacement
   once the old pod failed: `podReplacementPolicy: Failed`) is taken over, with a CAS that also tests the old
   `podName`. A Job's worker tells an earlier pod of its Job by name and never reads pods (its role has no
   `pods get`); one run by hand checks that the old pod is gone or finished.
   `--from-queued` claims from `queued` instead (running an operation by hand, without the operator);
   `--claimed` skips the claim because a supervisor (`execute_operation(monitor=True)`) made it.
2. **Run** the operator (`dops.service.executor.run_claimed` → `dops.execution`): progress is written
   to `status.progress` at most once per `$DOPS_PROGRESS_INTERVAL_SECONDS` (the target's
   `progressIntervalSeconds`, default 10; twice a second when run by hand without it), the newest value
   winning and the last one always written; pipelines run stage by stage.
3. **Record** `completed` + result or `failed` + error (traceback) with a CAS from `running` (a lost
   CAS means the operation was cancelled meanwhile: the external state stays), write the termination
   message, and exit (see the table below).

**Fenced by attempt.** A Job's worker knows its attempt from the Job (`$DOPS_JOB_NAME`, `$DOPS_ATTEMPT`,
`$DOPS_OPERATION_UID`, and its pod name). Its claim, progress and terminal writes are JSON Patches that
also `test` `status.jobName`, `status.attempt`, `metadata.uid` (and, once claimed, `status.podName`):
after a re-queue admitted attempt 2, attempt 1's writes fail their tests, so its progress and result
never land on attempt 2; the old worker then says so in one line and exits 0 without writing anything.

**Patient writes.** Every one of these writes is safe to repeat (a compare-and-set, or idempotent), so
transient API failures (no answer, 429, any 5xx) are retried with capped exponential backoff, one log
line per retry: the claim and progress for `$DOPS_WORKER_WRITE_RETRY_SECONDS` (default 300), the
outcome three times as long. The run-state label mirror written after the claim is best effort: its
failure is logged, never fatal. When the outcome still cannot be recorded, it goes into the termination
message (`recorded: false`, with the result when it fits), from which the operator records it.

Exit codes (the Job's podFailurePolicy fails the Job at once on 3 and 4, which no retry can fix):

| code | meaning |
|------|---------|
| 0    | completed and recorded, or nothing to do (not claimable, superseded by a newer attempt) |
| 1    | the worker crashed (an unhandled Python error: Python's own exit code); never used on purpose |
| 2    | usage or configuration error (bad reference, no cluster configuration, operation not found) |
| 3    | the operation failed, and its failure is recorded in the status |
| 4    | the API stayed unreachable: the outcome is only in the termination message (or nothing was claimed) |
| 130  | interrupted by Ctrl-C (the failure is recorded) |
| 143  | stopped by SIGTERM (whoever sent it records the outcome) |

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
from ..domain import jobs, names, progress, results, transitions
from ..execution import Engine
from ..k8s import (
    ApiError,
    ConfigurationError,
    DelegatedOperationRepository,
    KubeClient,
    NotFound,
    load_config,
)
from ..k8s.retry import OUTCOME_PATIENCE_FACTOR, patiently, write_retry_seconds
from ..service import DelegatedOperationService
from ..service.executor import ClaimedRun, parse_bool, run_claimed
from .termination import MAX_BYTES, render, write_termination_message

log = logging.getLogger("dops.worker")

POD_NAME_ENVS = ("DOPS_POD_NAME", "POD_NAME")
POD_NAMESPACE_ENVS = ("DOPS_POD_NAMESPACE", "POD_NAMESPACE")
RUN_LINK_ENV = "DOPS_RUN_LINK"
LOG_LEVEL_ENV = "DOPS_LOG_LEVEL"
EXIT_OK = 0
EXIT_CRASHED = 1  # Python's own code for an unhandled exception; the worker never returns it
EXIT_USAGE = 2
EXIT_FAILED = jobs.WORKER_FAILED_EXIT_CODE  # 3: the operation failed and its failure is recorded
EXIT_UNRECORDED = jobs.WORKER_UNRECORDED_EXIT_CODE  # 4: the API stayed unreachable (outcome in the message)
EXIT_SIGTERM = 143
EXIT_SIGINT = 130
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


@dataclasses.dataclass(frozen=True)
class Identity:
    """The attempt this worker belongs to, from its Job's env; None fields are unknown (not tested).

    A worker started by hand or by a launcher has no Job: only what it knows is tested."""

    pod: str | None = None
    job: str | None = None
    attempt: int | None = None
    uid: str | None = None

    @classmethod
    def from_env(cls, pod: str | None) -> Identity:
        raw_attempt = _env((jobs.ENV_ATTEMPT,))
        try:
            attempt = int(raw_attempt) if raw_attempt is not None else None
        except ValueError:
            log.warning("ignoring invalid %s=%r from the environment", jobs.ENV_ATTEMPT, raw_attempt)
            attempt = None
        return cls(pod=pod, job=_env((jobs.ENV_JOB_NAME,)), attempt=attempt, uid=_env((jobs.ENV_OPERATION_UID,)))

    def tests(self, *, claimed: bool) -> list[dict[str, Any]]:
        """JSON Patch tests of this attempt (besides the run state); `claimed` adds the pod that claimed it."""
        ops: list[dict[str, Any]] = []
        if self.uid:
            ops.append({"op": "test", "path": "/metadata/uid", "value": self.uid})
        if self.job:
            ops.append({"op": "test", "path": "/status/jobName", "value": self.job})
        if self.attempt is not None:
            ops.append({"op": "test", "path": "/status/attempt", "value": self.attempt})
        if claimed and self.pod:
            ops.append({"op": "test", "path": "/status/podName", "value": self.pod})
        return ops

    def owns(self, doc: DelegatedOperationDocument, *, claimed: bool = True) -> bool:
        """Whether `doc` (as read) is still this attempt's (the uid is checked by the writes' tests)."""
        if self.job and doc.job_name != self.job:
            return False
        if self.attempt is not None and doc.attempt != self.attempt:
            return False
        return not (claimed and self.pod and doc.pod_name != self.pod)

    def describe(self) -> str:
        parts = [f"attempt {self.attempt}" if self.attempt is not None else "", f"Job {self.job}" if self.job else ""]
        parts.append(f"pod {self.pod}" if self.pod else "")
        return ", ".join(p for p in parts if p) or "no Job"


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
    identity: Identity = dataclasses.field(default_factory=Identity)


# ================================================================================== claiming


def claim(
    service: DelegatedOperationService,
    ref: str,
    *,
    pod: str | None,
    run_link: str | None,
    mode: str = "scheduled",
    identity: Identity | None = None,
    patience: float | None = None,
) -> Claim:
    """Claim `ref` for this worker (see the module docstring); `mode` is scheduled, queued or claimed.

    Transient API failures are retried for `patience` seconds (default `$DOPS_WORKER_WRITE_RETRY_SECONDS`);
    ApiError when the API stays unreachable."""
    me = identity or Identity(pod=pod)
    wait = write_retry_seconds() if patience is None else patience
    if mode == "claimed":
        try:
            doc = patiently(f"reading {ref}", lambda: service.get(ref), wait)
        except OperationNotFound:
            return Claim(None, f"operation {ref} not found", EXIT_USAGE)
        if doc.run_state is ExecutionRunState.RUNNING:
            return Claim(doc)
        return Claim(None, _why_not(ref, doc, pod))
    required = ExecutionRunState.QUEUED if mode == "queued" else ExecutionRunState.SCHEDULED
    decided = object()  # the claim's answer was lost and the state moved on: decided below

    def write() -> Any:
        return service.set_running(
            ref, run_link=run_link, required_state=required, pod_name=pod, fence=me.tests(claimed=False)
        )

    def check() -> Any:
        # The CAS may or may not have been applied: look before trying again.
        try:
            return None if service.get(ref).run_state is required else decided
        except OperationNotFound:
            return decided

    claimed = patiently(f"claiming {ref}", write, wait, check=check)
    if isinstance(claimed, DelegatedOperationDocument):
        return Claim(claimed)
    try:
        current = patiently(f"reading {ref}", lambda: service.get(ref), wait)
    except OperationNotFound:
        return Claim(None, f"operation {ref} not found (deleted?)", EXIT_USAGE)
    if not me.owns(current, claimed=False):
        return Claim(None, _superseded(ref, current, me))
    if current.run_state is ExecutionRunState.RUNNING and pod:
        if current.pod_name == pod:
            log.info("operation %s is already running for this pod (%s); running it", ref, pod)
            return Claim(current)
        if (
            current.pod_name
            and current.pod_name != pod
            and mode == "scheduled"
            and _predecessor_done(service, current, me, pod)
        ):
            taken = _take_over(service, current, pod, run_link, me)
            if taken is not None:
                log.warning(
                    "operation %s was running in pod %s, which is gone: this pod (%s) takes over (Job retry)",
                    ref,
                    current.pod_name,
                    pod,
                )
                return Claim(taken)
    return Claim(None, _why_not(ref, current, pod))


def _predecessor_done(
    service: DelegatedOperationService, doc: DelegatedOperationDocument, me: Identity, pod: str
) -> bool:
    """Whether the pod that claimed `doc` can no longer run it, so that `pod` may take over.

    A Job's worker decides from names alone, never from a pod read (its role has no `pods get`): both pods are
    its Job's (`me.job`, whose attempt `claim` has checked) and the Job's `podReplacementPolicy: Failed` means
    the controller started this pod only once the earlier one had failed. A worker without a Job (run by hand)
    reads the pod, with its user's credentials."""
    assert doc.pod_name is not None
    if me.job is not None:
        return jobs.is_pod_of_job(doc.pod_name, me.job) and jobs.is_pod_of_job(pod, me.job)
    return _pod_finished(service, doc)


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
    service: DelegatedOperationService,
    doc: DelegatedOperationDocument,
    pod: str,
    run_link: str | None,
    identity: Identity | None = None,
) -> DelegatedOperationDocument | None:
    """CAS: running under `doc.pod_name` → running under `pod` (fresh startedAt); None when it lost."""
    change = transitions.state_change(ExecutionRunState.RUNNING, utcnow(), run_link=run_link)
    change.fields["podName"] = pod
    ops = transitions.cas_patch(change, ExecutionRunState.RUNNING)
    ops[1:1] = [{"op": "test", "path": "/status/podName", "value": doc.pod_name}]
    ops[1:1] = (identity or Identity()).tests(claimed=False)
    namespace = doc.namespace or service.namespace
    assert doc.id is not None
    return service.patch_status_guarded(namespace, doc.id, ops)


def _superseded(ref: str, doc: DelegatedOperationDocument, me: Identity) -> str:
    now = ", ".join(
        p
        for p in (
            f"attempt {doc.attempt}" if doc.attempt is not None else "",
            f"Job {doc.job_name}" if doc.job_name else "",
        )
        if p
    )
    state = doc.run_state.value if doc.run_state else "without a state"
    return (
        f"operation {ref} was re-queued: it is now {state} ({now or 'no Job'}), and this worker belongs to "
        f"{me.describe()}, which was superseded; not writing anything"
    )


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
    """Claim, run and record one operation; returns the process exit code (see the module docstring)."""
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
    run = _Run(full_ref, pod, identity=Identity.from_env(pod))
    try:
        # A Job's worker writes only its operation's status (its role has no `patch` on the operation: issue 13);
        # the operator keeps the run-state mirror label in step. By hand, the worker mirrors it itself.
        service = DelegatedOperationService(
            DelegatedOperationRepository(client), namespace=ns, sync_labels=run.identity.job is None
        )
        with _signal_handlers(run):
            return _run(service, run, mode="claimed" if claimed else "queued" if from_queued else "scheduled")
    finally:
        client.close()


def _run(service: DelegatedOperationService, run: _Run, *, mode: str) -> int:
    ref = run.ref
    me = run.identity
    patience = write_retry_seconds()
    try:
        claimed = claim(service, ref, pod=run.pod, run_link=_env((RUN_LINK_ENV,)), mode=mode, identity=me)
    except ApiError as exc:
        message = f"cannot claim operation {ref}: the API server stayed unreachable for {patience:.0f} s: {exc}"
        log.error("%s", message)
        write_termination_message({"operation": ref, "runState": None, "claimed": False, "message": message})
        return EXIT_UNRECORDED
    if claimed.doc is None:
        log.info("%s", claimed.reason)
        write_termination_message({"operation": ref, "claimed": False, "message": claimed.reason})
        return claimed.exit_code
    doc = claimed.doc
    log.info("running operation %s (%s): %s%s", ref, me.describe(), doc.operator, " (pipeline)" if doc.pipeline else "")
    run.running = True
    try:
        result = run_claimed(
            service,
            doc,
            engine=job_engine(me),
            logger=logging.getLogger(f"dops.operator.{doc.operator}"),
            fence=me.tests(claimed=True),
            owns=me.owns,
            on_superseded=lambda why: _stop_superseded(ref, me, why),
            write_patience=patience,
            record_patience=patience * OUTCOME_PATIENCE_FACTOR,
            progress_interval=progress_interval(),
        )
    except KeyboardInterrupt:
        return _interrupted(service, ref)
    finally:
        run.running = False
    return _report(service, ref, me, result)


def job_engine(me: Identity) -> Engine | None:
    """A Job's worker runs with what the operator decided at admission, from its Job's env; None elsewhere.

    The operator copies the DelegationTarget's `allowImportPaths` into `$DOPS_ALLOW_IMPORT_PATHS` when it builds
    the Job (a variable a target's env cannot replace). Re-reading the target here would let whoever edits it
    later enable `py:` code on the image and ServiceAccount of a Job admitted without it (issue 13), and the
    worker's role has no access to targets. A worker without a Job (run by hand, `dops worker launch`) is
    judged by `import_paths_allowed` as before."""
    if me.job is None:
        return None
    try:
        allowed = parse_bool(os.environ.get(jobs.ENV_ALLOW_IMPORT_PATHS))
    except ValueError as exc:
        log.warning("%s; import paths stay disallowed", exc)
        allowed = False
    return Engine(allow_import_paths=allowed)


def progress_interval() -> float | None:
    """Seconds between progress writes: the target's `progressIntervalSeconds`, which the operator puts in the
    Job's `$DOPS_PROGRESS_INTERVAL_SECONDS`; None (the engine's 0.5 s) for a worker run by hand without it. A
    bad value is one warning and the targets' default (10 s): progress never fails an operation."""
    raw = os.environ.get(progress.ENV_PROGRESS_INTERVAL, "").strip()
    if not raw:
        return None
    try:
        return progress.parse_progress_interval(raw, float(progress.DEFAULT_PROGRESS_INTERVAL_SECONDS))
    except ValueError as exc:
        log.warning("%s; progress is written every %d s", exc, progress.DEFAULT_PROGRESS_INTERVAL_SECONDS)
        return float(progress.DEFAULT_PROGRESS_INTERVAL_SECONDS)


def _report(service: DelegatedOperationService, ref: str, me: Identity, result: ClaimedRun) -> int:
    """Log the outcome, write the termination message, and choose the exit code."""
    outcome = result.outcome
    state = "completed" if outcome.succeeded else "failed"
    summary: dict[str, Any] = {"operation": ref, "runState": state}
    if result.record_error is not None:
        message = f"could not record the outcome ({state}: {outcome.message}): {result.record_error}"
        log.error("operation %s: %s; it is in the termination message for the operator to record", ref, message)
        write_termination_message(unrecorded_summary(ref, me, outcome.result, state, message))
        return EXIT_UNRECORDED
    if result.state_changed_externally:
        try:
            current = service.get(ref)
        except (ApiError, OperationNotFound):
            current = None
        if current is not None and not me.owns(current):
            why = _superseded(ref, current, me)
            log.warning("operation %s %s, but %s", ref, state, why)
            write_termination_message({**summary, "recorded": False, "superseded": True, "message": why})
            return EXIT_OK
        log.warning(
            "operation %s %s, but its state changed meanwhile (cancelled?): the outcome was not recorded", ref, state
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


def unrecorded_summary(
    ref: str, me: Identity, result: ExecutionResult, state: str, message: str, limit: int = MAX_BYTES
) -> dict[str, Any]:
    """The termination message of an outcome the worker could not record: enough for the operator to record it.

    `result` is the `status.result` object when the whole message fits in the kubelet's 4096 bytes; otherwise
    it is left out and `resultOmitted` says so (the operator then records the state without the result)."""
    summary: dict[str, Any] = {
        "operation": ref,
        "runState": state,
        "recorded": False,
        "attempt": me.attempt,
        "job": me.job,
        "pod": me.pod,
        "uid": me.uid,
        "message": message[:1024],
    }
    try:
        stored = results.result_status(result)
    except ValueError:
        stored = {}
    with_result = {**summary, "result": stored}
    if len(render(with_result, limit=limit * 2)) <= limit:
        return with_result
    if state == "failed":
        brief = {k: v for k, v in stored.items() if k == "errorMessage"}
        with_message = {**summary, "result": brief, "resultOmitted": True}
        if len(render(with_message, limit=limit * 2)) <= limit:
            return with_message
    return {**summary, "resultOmitted": True}


def _stop_superseded(ref: str, me: Identity, why: str) -> None:
    """A fenced write lost: another attempt owns the operation now. Exit at once, writing nothing more."""
    message = f"this worker ({me.describe()}) was superseded: {why}; stopping without writing anything"
    log.error("operation %s: %s", ref, message)
    write_termination_message({"operation": ref, "runState": None, "superseded": True, "message": message})
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    os._exit(EXIT_OK)  # called from the progress thread: the operator's code must not run on


def _interrupted(service: DelegatedOperationService, ref: str) -> int:
    message = "interrupted (SIGINT) while running"
    log.warning("operation %s: %s", ref, message)
    with contextlib.suppress(Exception):
        service.set_failed(
            ref, result=ExecutionResult(error=message, error_message=message), required_state="running", cancel=False
        )
    write_termination_message({"operation": ref, "runState": "failed", "message": message})
    return EXIT_SIGINT
