"""The context an operator runs with, and the throttled progress reporter behind `ctx.set_progress`.

`ExecutionContext` extends the persisted context (`dops.api.types.ExecutionContext`: `request_params`,
`params`, `dataset_name`, `dataset_id`, `delegation_target`) with what only exists while running:
`set_progress(progress=None, label=None)`, a logger (`ctx.logger`, and `ctx.log(message)`), the
operator URI, the operation id, `delegated` and, inside a pipeline, `ctx.pipeline`. `delegated` is read
from the request, as in FiftyOne: its App and SDK put `"delegated": True` in the request params of the
operations they delegate, while an operation queued straight through the service (or with kubectl)
without that flag runs with `ctx.delegated` False, exactly as FiftyOne's executor would run it.

Progress follows FiftyOne: a report needs a value in [0, 1] or a label, and a bad report or a failed
write is logged as a warning and never fails the operation. Unlike FiftyOne, writes are coalesced:
`ProgressReporter` writes at most one report per `min_interval` seconds (default 0.5 s in-process; a Job's
worker uses its DelegationTarget's `progressIntervalSeconds`, default 10 s: `dops.domain.progress`) from a
background thread, always the latest value, so an operator reporting every millisecond costs the API server
one request per interval and never waits for one. `close()` hands back the last value not yet written (also
one whose write failed) so that the caller can carry it in the terminal state write (no final value is lost).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from ..api.types import ExecutionContext as StoredContext
from ..api.types import ExecutionProgress
from ..domain.progress import progress_write_delay
from ..domain.transitions import coerce_progress

log = logging.getLogger(__name__)

ProgressWriter = Callable[[ExecutionProgress], None]
DEFAULT_PROGRESS_INTERVAL = 0.5  # seconds between progress writes (≤ 2 writes/s)


class ProgressReporter:
    """Throttled, non-blocking progress writes: at most one per `min_interval`, always the newest value.

    `report()` never blocks on I/O; a daemon thread performs the writes. Write errors are logged as
    warnings (FiftyOne: progress errors never fail an operation).
    """

    def __init__(
        self,
        write: ProgressWriter,
        min_interval: float = DEFAULT_PROGRESS_INTERVAL,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._write = write
        self.min_interval = float(min_interval)
        self._clock = clock
        self._cond = threading.Condition()
        self._pending: ExecutionProgress | None = None
        self._last_write: float | None = None  # no write yet: the first report is written at once
        self._closed = False
        self._writing = False
        self._thread: threading.Thread | None = None
        self.writes = 0  # successful writes
        self.failures = 0

    def report(self, progress: ExecutionProgress) -> None:
        with self._cond:
            if self._closed:
                log.debug("progress after the operation finished is ignored: %s", progress)
                return
            had_pending, self._pending = self._pending is not None, progress
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="dops-progress", daemon=True)
                self._thread.start()
            if not had_pending:
                # Only a writer idle for want of a value needs waking: one with a value pending is waiting out
                # its interval (or writing) and takes the newest value when it gets there. An operator reporting
                # every millisecond thus costs a lock, not a thread wake-up, per report.
                self._cond.notify_all()

    def _run(self) -> None:
        while True:
            with self._cond:
                if self._closed:
                    return  # close() takes over the pending value
                wait = progress_write_delay(
                    pending=self._pending is not None,
                    now=self._clock(),
                    last_write=self._last_write,
                    interval=self.min_interval,
                )
                if wait is None or wait > 0:
                    self._cond.wait(wait)  # a new report, close() or the end of the interval wakes us
                    continue
                value, self._pending = self._pending, None
                self._writing = True
            assert value is not None
            self._write_one(value)

    def _write_one(self, value: ExecutionProgress) -> None:
        """Write `value`; on failure keep it pending unless a newer report replaced it (newest value wins, and the
        last one reaches the terminal write through close() even when its own write failed)."""
        try:
            self._write(value)
            self.writes += 1
        except Exception as exc:
            self.failures += 1
            log.warning("could not record progress %s: %s", _describe(value), exc)
            with self._cond:
                if self._pending is None:
                    self._pending = value
        finally:
            with self._cond:
                self._writing = False
                self._last_write = self._clock()
                self._cond.notify_all()

    def flush(self, timeout: float = 10.0) -> None:
        """Write the pending value now if there is one (waits for a write in flight first)."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._writing and time.monotonic() < deadline:
                self._cond.wait(max(0.0, deadline - time.monotonic()))
            value, self._pending = self._pending, None
            if value is not None:
                self._writing = True
        if value is not None:
            self._write_one(value)

    def close(self, *, flush: bool = False, timeout: float = 10.0) -> ExecutionProgress | None:
        """Stop the writer thread (after a write in flight). Returns the newest value not written, unless
        `flush` writes it here (then None)."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)
        with self._cond:
            value, self._pending = self._pending, None
        if flush and value is not None:
            self._write_one(value)
            with self._cond:
                value, self._pending = self._pending, None
            return value  # None once written; still the value when its write failed
        return value


def _describe(progress: ExecutionProgress | None) -> str:
    if progress is None:
        return "None"
    return f"(progress={progress.progress!r}, label={progress.label!r})"


@dataclass
class PipelineExecutionContext:
    """`ctx.pipeline` inside a pipeline (FiftyOne's PipelineExecutionContext)."""

    active: bool = True
    curr_stage_index: int = 0
    total_stages: int = 0
    pipeline_errors: dict[str, str] | None = None
    num_distributed_tasks: int = 0


class ExecutionContext(StoredContext):
    """What an operator receives: request params plus progress, logging and run information."""

    def __init__(
        self,
        request_params: Mapping[str, Any] | None = None,
        *,
        operator_uri: str = "",
        delegated_operation_id: str | None = None,
        progress: ProgressReporter | ProgressWriter | None = None,
        logger: logging.Logger | None = None,
        pipeline: PipelineExecutionContext | None = None,
    ) -> None:
        super().__init__(request_params)
        self.operator_uri = operator_uri
        self.delegated_operation_id = delegated_operation_id
        self._progress = progress
        self.logger = logger or logging.getLogger(f"dops.operator.{operator_uri or 'anonymous'}")
        self.pipeline = pipeline
        self.user: Any = None
        self.secrets: dict[str, str] = {}

    @property
    def delegated(self) -> Any:
        """Whether the operation was delegated: the request's `delegated` flag as given (False when absent)."""
        return self.request_params.get("delegated", False)

    def log(self, message: str) -> None:
        """Log a line to the operation's log (FiftyOne's `ctx.log`)."""
        self.logger.info("%s", message)

    def set_progress(self, progress: float | None = None, label: str | None = None) -> None:
        """Report progress (a value in [0, 1] and/or a label). Never raises: problems become warnings."""
        try:
            value = coerce_progress(ExecutionProgress(progress=progress, label=label))
        except ValueError as exc:
            self.logger.warning("ignored progress report: %s", exc)
            return
        target = self._progress
        if target is None:
            self.logger.info("Progress: %s - %s", progress, label)
            return
        try:
            if isinstance(target, ProgressReporter):
                target.report(value)
            else:
                target(value)
        except Exception as exc:
            self.logger.warning("could not record progress: %s", exc)

    def for_stage(
        self, request_params: Mapping[str, Any], operator_uri: str, pipeline: PipelineExecutionContext
    ) -> ExecutionContext:
        """A context for one pipeline stage (same progress reporter and logger)."""
        return ExecutionContext(
            request_params,
            operator_uri=operator_uri,
            delegated_operation_id=self.delegated_operation_id,
            progress=self._progress,
            logger=self.logger,
            pipeline=pipeline,
        )
