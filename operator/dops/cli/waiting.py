"""Waiting for an operation to reach a state, with a live progress bar (or one line per change when
stderr is not a terminal). Shared by `wait`, `submit --wait` and `rerun --wait`."""

from __future__ import annotations

import enum
import time

from rich.progress import (
    BarColumn,
    Progress,
    SpinnerColumn,
    TaskID,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
)

from ..api.types import DelegatedOperationDocument, ExecutionRunState, OperationNotFound
from ..service import DelegatedOperationService
from . import render
from .errors import EXIT_FAILED, EXIT_OK, EXIT_UNAVAILABLE, CliError, crds_missing, not_found
from .follow import Follower
from .ops import crds_installed, job_pods, now
from .session import Session


class Target(enum.StrEnum):
    completed = "completed"
    failed = "failed"
    terminal = "terminal"


def verdict(doc: DelegatedOperationDocument, target: Target) -> int | None:
    """The exit code once `doc` decides the wait (None while it does not).

    terminal: 0 completed, 1 failed. completed: 0 completed, 1 failed (it can no longer complete).
    failed: 0 failed, 1 completed.
    """
    state = doc.run_state
    if state not in (ExecutionRunState.COMPLETED, ExecutionRunState.FAILED):
        return None
    if target is Target.failed:
        return EXIT_OK if state is ExecutionRunState.FAILED else EXIT_FAILED
    return EXIT_OK if state is ExecutionRunState.COMPLETED else EXIT_FAILED


class _Display:
    """A progress bar on a terminal; otherwise a line on stderr for every change of state or progress."""

    def __init__(self, sess: Session, quiet: bool) -> None:
        self.sess = sess
        self.quiet = quiet
        self.progress: Progress | None = None
        self.task: TaskID | None = None
        self.last = ""

    def __enter__(self) -> _Display:
        if not self.quiet and self.sess.interactive():
            self.progress = Progress(
                SpinnerColumn(),
                TextColumn("{task.description}"),
                BarColumn(),
                TaskProgressColumn(),
                TimeElapsedColumn(),
                console=self.sess.err,
                transient=True,
            )
            self.progress.start()
            self.task = self.progress.add_task("", total=None)
        return self

    def update(self, doc: DelegatedOperationDocument, hint: str = "") -> None:
        if self.quiet:
            return
        value = doc.status.progress if doc.status is not None else None
        if self.progress is not None and self.task is not None:
            done = 1.0 if doc.run_state is ExecutionRunState.COMPLETED else value
            self.progress.update(
                self.task,
                description=render.wait_description(doc, hint),
                total=1.0 if done is not None else None,
                completed=done or 0.0,
            )
            return
        line = render.wait_description(doc, hint)
        extra = render.progress_text(doc) if doc.run_state is ExecutionRunState.RUNNING else ""
        if extra:
            line = f"{doc.id}: {render.state_name(doc)} {extra}"
        if line != self.last:
            self.sess.err.print(line, markup=False, soft_wrap=True)
            self.last = line

    def __exit__(self, *exc: object) -> None:
        if self.progress is not None:
            self.progress.stop()


def wait_for(
    sess: Session,
    svc: DelegatedOperationService,
    name: str,
    target: Target = Target.terminal,
    timeout: float | None = None,
    *,
    quiet: bool = False,
) -> tuple[DelegatedOperationDocument, int]:
    """Wait until the operation decides `target`; returns the last document and the exit code.

    Raises CliError: exit 3 when the operation is (or gets) deleted, exit 1 on timeout.
    """
    started = time.monotonic()
    deadline = None if timeout is None else started + timeout
    try:
        doc = svc.get(name)
    except OperationNotFound:
        if not crds_installed(sess):
            raise crds_missing(sess.server) from None
        raise not_found(name, svc.namespace) from None
    follower = Follower(svc.repo, svc.namespace, field_selector=f"metadata.name={name}")
    follower.resource_version = doc.resource_version or ""
    hint = ""
    with _Display(sess, quiet) as display:
        display.update(doc)
        code = verdict(doc, target)
        while code is None:
            if deadline is not None and time.monotonic() >= deadline:
                break
            # Until the worker runs, look at its pod every few seconds: one stuck in ErrImagePull changes
            # nothing on the operation for minutes, and the user should hear of it now.
            chunk = deadline
            if _before_start(doc):
                soon = time.monotonic() + POD_CHECK_SECONDS
                chunk = soon if deadline is None else min(deadline, soon)
            for change in follower.changes(chunk):
                if change.type == "SYNC":
                    mine = [o for o in change.objects or [] if (o.get("metadata") or {}).get("name") == name]
                    if not mine:
                        raise CliError(f'operation "{name}" was deleted while waiting', EXIT_UNAVAILABLE)
                    obj = mine[0]
                elif change.type == "DELETED":
                    raise CliError(f'operation "{name}" was deleted while waiting', EXIT_UNAVAILABLE)
                elif change.obj is not None:
                    obj = change.obj
                else:
                    continue
                doc = DelegatedOperationDocument.from_resource(obj)
                hint = hint if _before_start(doc) else ""
                display.update(doc, hint)
                code = verdict(doc, target)
                if code is not None:
                    break
            else:
                # The watch ended (deadline, a pod check, or a resumable end): re-read once before deciding.
                try:
                    doc = svc.get(name)
                except OperationNotFound:
                    raise CliError(f'operation "{name}" was deleted while waiting', EXIT_UNAVAILABLE) from None
                hint = _stuck_pod(sess, doc) if _before_start(doc) else ""
                display.update(doc, hint)
                code = verdict(doc, target)
    if code is None:
        waited = render.precise_duration(time.monotonic() - started)
        raise CliError(
            f'timed out after {waited} waiting for operation "{name}" to be {target.value} '
            f"(it is {render.state_name(doc)}{'; ' + hint if hint else ''})",
            EXIT_FAILED,
        )
    return doc, code


# How often `wait` looks at the pod of an operation whose worker has not started yet.
POD_CHECK_SECONDS = 3.0


def _before_start(doc: DelegatedOperationDocument) -> bool:
    """Scheduled (or running by the Job's account) but no worker has said it runs: its pod may be stuck."""
    return doc.run_state is ExecutionRunState.SCHEDULED or (
        doc.run_state is ExecutionRunState.RUNNING and not doc.pod_name
    )


def _stuck_pod(sess: Session, doc: DelegatedOperationDocument) -> str:
    hints = [h for h in (render.pod_hint(p) for p in job_pods(sess, doc)) if h]
    return hints[0] if hints else ""


def report(sess: Session, doc: DelegatedOperationDocument, code: int, target: Target) -> None:
    """Print the outcome line (and the result of a completed operation) on stdout when the wait succeeded,
    as an error otherwise."""
    line = render.outcome(doc, now())
    if code == EXIT_OK:
        sess.out.print(line, markup=False, soft_wrap=True)
        result = render.result_line(doc)
        if result:
            sess.out.print(result, markup=False, soft_wrap=True)
    else:
        if target is Target.failed:
            line += " (waited for failed)"
        sess.err.print(f"error: {line}", markup=False, soft_wrap=True)
