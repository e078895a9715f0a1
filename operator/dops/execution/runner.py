"""Running one operation: resolve the operator, check its params, run it (or its pipeline), bound the result.

`execute(request, ...)` is the whole job of an executor minus the status writes, which the caller
injects as callbacks (`write_progress`, `on_pipeline`): this package never talks to Kubernetes.
It returns an `ExecutionOutcome`; it raises only for BaseExceptions (SIGTERM, Ctrl-C), so every
operator problem ends as a failed outcome with a readable message:

| problem | `result.error` | `result.error_message` |
|---|---|---|
| unknown operator URI | `operator not found: X; known operators: ...` | same |
| invalid params | `invalid params for X: Validation error. Path: p. Reason: r` | same |
| the operator raised | the traceback | `<ExceptionType>: <message>` |
| result not JSON / over 64 KiB | `result is too large: N bytes of JSON, the limit is 65536 ...` | same |
| pipeline stage failed (first error wins) | that stage's traceback | `Failed to execute pipeline stage[i]: ...` |

Operator kinds (FiftyOne's `do_execute_operator(..., exhaust=True)`): coroutine functions are awaited;
plain functions run in a worker thread (a daemon thread, so an abandoned run never blocks shutdown);
generators and async generators are exhausted and the result is None; yielded `ExecutionProgress`
values are reported as progress (a dops extension; FiftyOne discards yielded values).
"""

from __future__ import annotations

import asyncio
import copy
import inspect
import logging
import threading
import traceback
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from ..api import constants as c
from ..api.types import ExecutionProgress, ExecutionResult, Pipeline, PipelineRunInfo
from ..domain.results import coerce_result, result_status, truncate_head
from .context import DEFAULT_PROGRESS_INTERVAL, ExecutionContext, PipelineExecutionContext, ProgressReporter
from .operators import InvalidParams, Operator
from .registry import OperatorLoadError, OperatorNotFound, OperatorRegistry, default_registry

log = logging.getLogger(__name__)
T = TypeVar("T")
JSON = dict[str, Any]


@dataclass
class ExecutionRequest:
    """What to run: the operator URI, FiftyOne's request params, and an optional pipeline."""

    operator_uri: str
    request_params: JSON = field(default_factory=dict)
    pipeline: Pipeline | None = None
    operation_id: str | None = None


@dataclass
class ExecutionOutcome:
    """The result of a run. `result.error` is None on success. `pending_progress` is the newest
    progress report not yet written (carry it in the terminal write)."""

    result: ExecutionResult
    pending_progress: ExecutionProgress | None = None
    progress_writes: int = 0

    @property
    def succeeded(self) -> bool:
        return self.result.error is None

    @property
    def message(self) -> str:
        """One line saying what happened."""
        if self.succeeded:
            return "completed"
        return (self.result.error_message or str(self.result.error)).strip().splitlines()[0]


class OperationFailed(Exception):
    """A failure with a ready-made message (no traceback needed)."""


# ------------------------------------------------------------------------------------------- helpers


def failure(exc: BaseException, *, message: str | None = None, with_traceback: bool = True) -> ExecutionResult:
    """An ExecutionResult for `exc`: error = traceback (or the message), error_message = one line."""
    line = message or (_one_line(exc) if with_traceback else str(exc).strip() or type(exc).__name__)
    error = "".join(traceback.format_exception(exc)) if with_traceback else line
    return ExecutionResult(error=error, error_message=truncate_head(line, c.MAX_ERROR_MESSAGE_CHARS))


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip()
    first = text.splitlines()[0] if text else ""
    return f"{type(exc).__name__}: {first}" if first else type(exc).__name__


def _known_failure(exc: BaseException) -> bool:
    return isinstance(exc, OperatorNotFound | OperatorLoadError | InvalidParams | OperationFailed)


async def in_thread(fn: Callable[[], T], name: str = "dops-operator") -> T:
    """Run `fn` in a new daemon thread and await its result (cancelling the await abandons the thread)."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[T] = loop.create_future()

    def deliver(ok: bool, value: Any) -> None:
        if future.done():
            return
        if ok:
            future.set_result(value)
        else:
            future.set_exception(value)

    def body() -> None:
        ok = False
        out: Any
        try:
            out = fn()
            ok = True
        except BaseException as exc:
            out = exc
        try:
            loop.call_soon_threadsafe(deliver, ok, out)
        except RuntimeError:  # the loop is gone: nobody waits for this result any more
            pass

    threading.Thread(target=body, name=name, daemon=True).start()
    return await future


def _handle_yield(ctx: ExecutionContext, item: Any) -> None:
    if isinstance(item, ExecutionProgress):
        ctx.set_progress(item.progress, item.label)


async def run_operator(op: Operator, ctx: ExecutionContext) -> Any:
    """Run `op` with `ctx` according to its kind (see the module docstring); returns its result."""
    fn = op.execute
    if inspect.iscoroutinefunction(fn) or inspect.isasyncgenfunction(fn):
        value = fn(ctx)
    else:
        value = await in_thread(lambda: fn(ctx))
    if inspect.isawaitable(value):
        value = await value
    if inspect.isasyncgen(value):
        agen: AsyncIterator[Any] = value
        async for item in agen:
            _handle_yield(ctx, item)
        return None
    if inspect.isgenerator(value):
        gen: Iterator[Any] = value

        def exhaust() -> None:
            for item in gen:
                _handle_yield(ctx, item)

        await in_thread(exhaust)
        return None
    return value


def _stored_result(value: Any) -> ExecutionResult:
    """The result to store; OperationFailed when it cannot be stored (not JSON, over the size limit)."""
    result = coerce_result(value) or ExecutionResult()
    try:
        result_status(result)  # size and JSON checks (dops.domain.results)
    except ValueError as exc:
        raise OperationFailed(str(exc)) from None
    return result


# ------------------------------------------------------------------------------------------- the engine


class Engine:
    """Resolves and runs operations. `allow_import_paths` enables `py:` URIs."""

    def __init__(self, registry: OperatorRegistry | None = None, *, allow_import_paths: bool = False) -> None:
        self.registry = registry or default_registry()
        self.allow_import_paths = allow_import_paths

    def resolve(self, uri: str) -> Operator:
        return self.registry.resolve(uri, allow_import_paths=self.allow_import_paths)

    async def run(
        self,
        request: ExecutionRequest,
        *,
        write_progress: Callable[[ExecutionProgress], None] | None = None,
        on_pipeline: Callable[[PipelineRunInfo], None] | None = None,
        logger: logging.Logger | None = None,
        progress_interval: float = DEFAULT_PROGRESS_INTERVAL,
    ) -> ExecutionOutcome:
        reporter = ProgressReporter(write_progress, progress_interval) if write_progress is not None else None
        try:
            if request.pipeline is not None and request.pipeline.stages:
                result = await self._run_pipeline(request, reporter, on_pipeline, logger)
            else:
                result = await self._run_single(request, reporter, logger)
        finally:
            pending = reporter.close() if reporter is not None else None
        return ExecutionOutcome(result, pending, reporter.writes if reporter is not None else 0)

    def run_sync(self, request: ExecutionRequest, **kwargs: Any) -> ExecutionOutcome:
        """`run` from synchronous code (in a fresh event loop; in a helper thread if this thread has one)."""
        return run_coroutine_sync(lambda: self.run(request, **kwargs))

    async def _run_single(
        self, request: ExecutionRequest, reporter: ProgressReporter | None, logger: logging.Logger | None
    ) -> ExecutionResult:
        try:
            op = self.resolve(request.operator_uri)
            ctx = self._context(request, op, copy.deepcopy(request.request_params), reporter, logger, None)
            value = await run_operator(op, ctx)
            return _stored_result(value)
        except Exception as exc:
            return failure(exc, with_traceback=not _known_failure(exc))

    def _context(
        self,
        request: ExecutionRequest,
        op: Operator,
        request_params: JSON,
        reporter: ProgressReporter | None,
        logger: logging.Logger | None,
        pipeline: PipelineExecutionContext | None,
    ) -> ExecutionContext:
        raw = request_params.get("params")
        request_params["params"] = op.validate_params(raw if isinstance(raw, Mapping) else None)
        if request.operation_id:
            request_params.setdefault("run_doc", request.operation_id)
        return ExecutionContext(
            request_params,
            operator_uri=op.uri,
            delegated_operation_id=request.operation_id,
            progress=reporter,
            logger=logger or logging.getLogger(f"dops.operator.{op.uri}"),
            pipeline=pipeline,
        )

    async def _run_pipeline(
        self,
        request: ExecutionRequest,
        reporter: ProgressReporter | None,
        on_pipeline: Callable[[PipelineRunInfo], None] | None,
        logger: logging.Logger | None,
    ) -> ExecutionResult:
        """FiftyOne's `do_execute_pipeline`: stages in order; the first error wins and makes the pipeline
        inactive; later stages run only with `always_run`. Stage request params are a fresh copy of the
        operation's, updated with the stage's overrides, with `params` = the stage's params."""
        assert request.pipeline is not None
        stages = request.pipeline.stages
        pipe_ctx = PipelineExecutionContext(active=True, total_stages=len(stages))
        first_error: ExecutionResult | None = None

        def publish(index: int) -> None:
            if on_pipeline is None:
                return
            try:
                on_pipeline(PipelineRunInfo(active=pipe_ctx.active, stage_index=index))
            except Exception as exc:
                log.warning("could not record the pipeline state: %s", exc)

        for index, stage in enumerate(stages):
            if not pipe_ctx.active and not stage.always_run:
                continue
            pipe_ctx.curr_stage_index = index
            publish(index)
            params = copy.deepcopy(request.request_params)
            params.update(copy.deepcopy(stage.request_params_overrides or {}))
            params["params"] = copy.deepcopy(stage.params or {})
            label = stage.name or stage.operator_uri
            try:
                op = self.resolve(stage.operator_uri)
                ctx = self._context(request, op, params, reporter, logger, pipe_ctx)
                if logger is not None:
                    logger.info("pipeline stage %d/%d: %s", index + 1, len(stages), label)
                await run_operator(op, ctx)
            except Exception as exc:
                if first_error is None:
                    message = f"Failed to execute pipeline stage[{index}]: {_one_line(exc)}"
                    if _known_failure(exc):
                        message = f"Failed to execute pipeline stage[{index}]: {exc}"
                    first_error = failure(exc, message=message, with_traceback=not _known_failure(exc))
                    if not _known_failure(exc):
                        first_error.error = f"{message}\n{first_error.error}"
                    pipe_ctx.active = False
                else:
                    log.warning("pipeline stage[%d] (%s) failed after an earlier error: %s", index, label, exc)
        pipe_ctx.active = False
        publish(pipe_ctx.curr_stage_index)
        return first_error or ExecutionResult()


def run_coroutine_sync(factory: Callable[[], Awaitable[T]]) -> T:
    """Run a coroutine to completion from synchronous code, even when this thread runs an event loop."""

    async def main() -> T:
        return await factory()

    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(main())
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["value"] = asyncio.run(main())
        except BaseException as exc:
            box["error"] = exc

    thread = threading.Thread(target=target, name="dops-execution")
    thread.start()
    thread.join()
    if "error" in box:
        raise box["error"]
    value: T = box["value"]
    return value
