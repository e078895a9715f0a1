"""dops.execution (no cluster): registry, parameter validation, context and progress throttling, operator
kinds, pipelines, result bounds, error messages; plus the worker's pure helpers (reference parsing,
termination message).

Aspects covered (fiftyone-semantics.md sections in brackets):
- registry: the four built-ins come from the `dops.operators` entry points; unknown URIs fail with
  "operator not found: X; known operators: ..."; `py:module:function` only when allowed, with readable
  errors for a missing module/attribute or a malformed path; code registration; FiftyOne-shaped classes. [§4.4]
- parameter validation: FiftyOne's "Validation error. Path: p. Reason: r" form, every problem listed,
  defaults filled in, unknown parameters refused for declared operators. [§4.4 step 3]
- context: params/request_params, `ctx.delegated` from the request (False without the flag), `set_progress`
  validation never raises, `ctx.log`. [§4.5]
- progress throttling: ≤ 1 write per interval (2/s by default), newest value wins, the last value is
  never lost (flushed or handed back). [§4.5; dops difference]
- operator kinds: sync (in a thread), async, generator, async generator (exhausted, result None, yielded
  ExecutionProgress reported), FiftyOne-style objects with `execute`. [§4.4 step 4, §7 #17–18]
- failures: traceback in `error`, one line in `error_message`; result over 64 KiB or not JSON → clear
  size/JSON error. [§4.3, compat "Results and size limits"]
- pipelines: stage order, first error wins, `always_run` stages still run, later stages skipped, per-stage
  params and non-cumulative overrides, `ctx.pipeline`, pipeline run-info callbacks, success stores no
  result. [§3.3]
- `run_sync` works from inside a running event loop. [§7 #12]
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import threading
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from dops.api.types import ExecutionProgress, Pipeline, PipelineRunInfo, PipelineStage
from dops.execution import (
    Engine,
    ExecutionContext,
    ExecutionRequest,
    InvalidParams,
    OperatorLoadError,
    OperatorNotFound,
    OperatorRegistry,
    Param,
    ProgressReporter,
    default_registry,
    operator,
)
from dops.execution.examples import ExampleFailure
from dops.worker.run import UsageError, parse_ref
from dops.worker.termination import MAX_BYTES, render

BUILTINS = ["@dops/examples/count", "@dops/examples/echo", "@dops/examples/fail", "@dops/examples/sleep"]


# ------------------------------------------------------------------------------------------- test operators


def plain_op(ctx: ExecutionContext) -> dict[str, Any]:
    return {"kind": "sync", "thread": threading.current_thread().name, "params": ctx.params}


async def async_op(ctx: ExecutionContext) -> dict[str, Any]:
    await asyncio.sleep(0)
    return {"kind": "async", "params": ctx.params}


def generator_op(ctx: ExecutionContext) -> Iterator[Any]:
    for i in range(1, 4):
        yield ExecutionProgress(i / 3, f"step {i}")
    yield "ignored"
    return "discarded"  # FiftyOne discards a generator's return value


async def async_generator_op(ctx: ExecutionContext) -> AsyncIterator[Any]:
    for i in range(1, 3):
        await asyncio.sleep(0)
        ctx.set_progress(i / 2, "async gen")
        yield {"trigger": i}


def boom(ctx: ExecutionContext) -> None:
    raise ValueError("boom: something went wrong")


def huge(ctx: ExecutionContext) -> str:
    return "x" * (10 * 1024 * 1024)


def not_json(ctx: ExecutionContext) -> Any:
    return {1, 2, 3}


class FiftyOneStyle:
    """An object with `execute(ctx)`, as FiftyOne operators are."""

    def execute(self, ctx: ExecutionContext) -> dict[str, Any]:
        return {"class": True, "x": ctx.params.get("x")}


@operator(params=[Param("n", "integer", required=True, minimum=1), Param("mode", "string", default="fast")])
def declared(ctx: ExecutionContext) -> dict[str, Any]:
    return dict(ctx.params)


def registry(**ops: Any) -> OperatorRegistry:
    return OperatorRegistry(group=None, operators={f"@t/{k}": v for k, v in ops.items()})


def run(engine: Engine, uri: str, params: dict[str, Any] | None = None, **kwargs: Any) -> Any:
    return engine.run_sync(ExecutionRequest(uri, {"params": params or {}}), **kwargs)


# ------------------------------------------------------------------------------------------- registry


def test_builtins_come_from_entry_points() -> None:
    """§4.4: the dops.operators entry-point group provides the four built-in examples (among whatever else is
    installed: issue 14 #9, tests must not depend on what else is installed)."""
    reg = OperatorRegistry()
    assert set(BUILTINS) <= set(reg.known())
    for uri in BUILTINS:
        op = reg.resolve(uri)
        assert op.uri == uri and callable(op.execute)
    assert default_registry().resolve("@dops/examples/echo").uri == "@dops/examples/echo"


def test_unknown_operator_lists_known_operators() -> None:
    """§4.4 step 3 (FiftyOne: "Operator ... does not exist"): the message names the known operators."""
    with pytest.raises(OperatorNotFound) as info:
        OperatorRegistry().resolve("@acme/nope/missing")
    message = str(info.value)
    assert message.startswith("operator not found: @acme/nope/missing; known operators: ")
    for uri in BUILTINS:
        assert uri in message


def test_import_paths_only_when_allowed() -> None:
    """py:module:function resolves only with allow_import_paths; the refusal says how to allow it."""
    reg = OperatorRegistry(group=None)
    uri = "py:tests.unit.test_execution:plain_op"
    with pytest.raises(OperatorNotFound, match="allowImportPaths"):
        reg.resolve(uri)
    op = reg.resolve(uri, allow_import_paths=True)
    assert op.execute.__name__ == "plain_op" and op.uri == uri
    # issue 13: once loaded for a caller that allows import paths, it is not served from the cache to one that
    # does not (a long-lived executor serving several targets)
    with pytest.raises(OperatorNotFound, match="allowImportPaths"):
        reg.resolve(uri)


@pytest.mark.parametrize(
    ("uri", "error", "text"),
    [
        ("py:no_such_module_xyz:fn", OperatorLoadError, "cannot import operator py:no_such_module_xyz:fn"),
        ("py:tests.unit.test_execution:no_such_fn", OperatorNotFound, "has no attribute no_such_fn"),
        ("py:not a path", OperatorNotFound, "py:package.module:function"),
        ("py:json", OperatorNotFound, "py:package.module:function"),
        ("py:tests.unit.test_execution:BUILTINS", OperatorLoadError, "not an operator"),
    ],
)
def test_import_path_errors_are_readable(uri: str, error: type[Exception], text: str) -> None:
    with pytest.raises(error, match=text.replace("(", r"\(").replace(")", r"\)")):
        OperatorRegistry(group=None).resolve(uri, allow_import_paths=True)


def test_code_registration_and_fiftyone_style_class() -> None:
    reg = registry(cls=FiftyOneStyle, fn=plain_op)
    assert reg.known() == ["@t/cls", "@t/fn"]
    outcome = run(Engine(reg), "@t/cls", {"x": 5})
    assert outcome.succeeded and outcome.result.result == {"class": True, "x": 5}
    reg.unregister("@t/fn")
    with pytest.raises(OperatorNotFound, match="known operators: @t/cls"):
        reg.resolve("@t/fn")


# ------------------------------------------------------------------------------------------- params


def test_param_validation_messages() -> None:
    """FiftyOne's validation message form; every problem is listed."""
    op = declared.with_uri("@t/declared")
    with pytest.raises(InvalidParams) as info:
        op.validate_params({"mode": 3, "extra": True})
    message = str(info.value)
    assert message.startswith("invalid params for @t/declared: ")
    assert "Validation error. Path: n. Reason: required parameter is missing" in message
    assert "Validation error. Path: mode. Reason: must be a string, got 3" in message
    assert "Validation error. Path: extra. Reason: unknown parameter (expected: n, mode)" in message
    assert op.validate_params({"n": 2.0}) == {"n": 2, "mode": "fast"}
    with pytest.raises(InvalidParams, match=r"Path: n\. Reason: must be ≥ 1, got 0"):
        op.validate_params({"n": 0})


@pytest.mark.parametrize(
    ("uri", "params", "reason"),
    [
        ("@dops/examples/count", {"n": "ten"}, "Path: n. Reason: must be an integer, got 'ten'"),
        ("@dops/examples/count", {"n": 5, "delay": -1}, "Path: delay. Reason: must be ≥ 0, got -1"),
        ("@dops/examples/count", {"m": 5}, "Path: m. Reason: unknown parameter (expected: n, delay)"),
        ("@dops/examples/sleep", {"seconds": "1"}, "Path: seconds. Reason: must be a finite number, got '1'"),
        ("@dops/examples/fail", {"message": ["x"]}, "Path: message. Reason: must be a string, got ['x']"),
    ],
)
def test_builtin_invalid_params_fail_with_validation_message(uri: str, params: dict[str, Any], reason: str) -> None:
    outcome = run(Engine(), uri, params)
    assert not outcome.succeeded
    assert outcome.result.error == outcome.result.error_message  # a message, not a traceback
    assert outcome.result.error.startswith(f"invalid params for {uri}: Validation error.")
    assert reason in outcome.result.error


# ------------------------------------------------------------------------------------------- context / progress


def test_context_progress_validation_never_raises(caplog: pytest.LogCaptureFixture) -> None:
    """§4.5: bad progress reports are logged, never raised; good ones reach the writer."""
    written: list[ExecutionProgress] = []
    ctx = ExecutionContext({"params": {"a": 1}, "dataset_name": "d"}, operator_uri="@t/x", progress=written.append)
    assert ctx.params == {"a": 1} and ctx.request_params["dataset_name"] == "d"
    with caplog.at_level(logging.WARNING):
        ctx.set_progress(1.5)
        ctx.set_progress()  # neither value nor label
        ctx.set_progress(float("nan"), "x")
    assert written == []
    assert caplog.text.count("ignored progress report") == 3
    ctx.set_progress(0.25, "quarter")
    ctx.set_progress(label="only a label")
    assert [(p.progress, p.label) for p in written] == [(0.25, "quarter"), (None, "only a label")]


@pytest.mark.parametrize(
    ("request_params", "delegated"),
    [({}, False), ({"delegated": True}, True), ({"delegated": False}, False), ({"params": {"delegated": True}}, False)],
)
def test_ctx_delegated_comes_from_the_request(request_params: dict[str, Any], delegated: bool) -> None:
    """Issue 12 item 8: FiftyOne's `ctx.delegated` is the request's `delegated` flag (its App and SDK set it
    when they delegate), False without one; it is not forced True for every run."""
    assert ExecutionContext(request_params, operator_uri="@t/x").delegated is delegated


def test_ctx_delegated_reaches_the_operator() -> None:
    """The engine builds the operator's context from the stored request params, flag included."""
    seen: list[Any] = []

    def record(ctx: ExecutionContext) -> None:
        seen.append(ctx.delegated)

    engine = Engine(registry(delegated=record))
    assert run(engine, "@t/delegated").succeeded
    assert engine.run_sync(ExecutionRequest("@t/delegated", {"delegated": True, "params": {}})).succeeded
    assert seen == [False, True]


def test_context_progress_writer_errors_are_warnings(caplog: pytest.LogCaptureFixture) -> None:
    def broken(progress: ExecutionProgress) -> None:
        raise ConnectionError("API down")

    ctx = ExecutionContext({}, operator_uri="@t/x", progress=broken)
    with caplog.at_level(logging.WARNING):
        ctx.set_progress(0.5)
    assert "could not record progress: API down" in caplog.text


def test_ctx_log_goes_to_the_operation_logger(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="dops.operator"):
        outcome = run(Engine(), "@dops/examples/echo", {"message": "hi"})
    assert outcome.succeeded and outcome.result.result == {"message": "hi"}
    assert any(r.name == "dops.operator.@dops/examples/echo" and "echo" in r.getMessage() for r in caplog.records)


def test_progress_reporter_throttles_and_keeps_the_newest_value() -> None:
    """≤ 1 write per min_interval; the newest value wins; close(flush=True) writes the last one."""
    writes: list[tuple[float, float | None]] = []
    reporter = ProgressReporter(lambda p: writes.append((time.monotonic(), p.progress)), min_interval=0.2)
    start = time.monotonic()
    values = [i / 200 for i in range(1, 201)]
    for value in values:
        reporter.report(ExecutionProgress(value))
        time.sleep(0.003)
    elapsed = time.monotonic() - start
    reporter.close(flush=True)
    assert writes[-1][1] == values[-1], "the last value must always be written"
    assert len(writes) <= elapsed / 0.2 + 2, f"{len(writes)} writes in {elapsed:.2f}s"
    gaps = [b[0] - a[0] for a, b in itertools.pairwise(writes[:-1])]  # the last one is the flush on close
    assert all(gap >= 0.19 for gap in gaps), gaps
    assert [v for _, v in writes] == sorted(v for _, v in writes)


def test_progress_reporter_close_hands_back_the_unwritten_value() -> None:
    """Default 0.5 s interval (2 writes/s): a second report right after the first is held, then returned."""
    written: list[float | None] = []
    reporter = ProgressReporter(lambda p: written.append(p.progress))
    reporter.report(ExecutionProgress(0.1))
    deadline = time.monotonic() + 5
    while not written and time.monotonic() < deadline:
        time.sleep(0.01)
    reporter.report(ExecutionProgress(0.2))
    reporter.report(ExecutionProgress(0.3))
    pending = reporter.close()
    assert written == [0.1]
    assert pending is not None and pending.progress == 0.3
    reporter.report(ExecutionProgress(0.9))  # after close: ignored
    assert written == [0.1]


def test_progress_reporter_failed_write_keeps_the_value_for_the_terminal_write() -> None:
    """Fault twin of the coalescing: the last report's write fails; close() still hands it back (the terminal
    write carries it), unless a newer report replaced it meanwhile."""
    attempts: list[float | None] = []

    def failing(progress: ExecutionProgress) -> None:
        attempts.append(progress.progress)
        raise RuntimeError("API down")

    reporter = ProgressReporter(failing, min_interval=60)
    reporter.report(ExecutionProgress(1.0, "done"))
    deadline = time.monotonic() + 5
    while not attempts and time.monotonic() < deadline:
        time.sleep(0.01)
    pending = reporter.close()
    assert attempts == [1.0], "the first report is written at once"
    assert pending is not None and (pending.progress, pending.label) == (1.0, "done"), "the final value is kept"
    assert reporter.failures == 1 and reporter.writes == 0


def test_progress_reporter_failed_flush_on_close_returns_the_value() -> None:
    """close(flush=True) whose write fails returns the value instead of losing it."""
    reporter = ProgressReporter(lambda p: (_ for _ in ()).throw(RuntimeError("API down")), min_interval=60)
    reporter._pending = ExecutionProgress(0.7)  # a value held back by the interval, never written
    pending = reporter.close(flush=True)
    assert pending is not None and pending.progress == 0.7


def test_progress_reporter_newer_report_wins_over_a_failed_one() -> None:
    """A write fails while a newer report arrives: the newer one is pending, the failed one is not restored."""
    gate = threading.Event()
    release = threading.Event()

    def slow_failure(progress: ExecutionProgress) -> None:
        gate.set()
        release.wait(5)
        raise RuntimeError("API down")

    reporter = ProgressReporter(slow_failure, min_interval=60)
    reporter.report(ExecutionProgress(0.1))
    assert gate.wait(5)
    reporter.report(ExecutionProgress(0.2))
    release.set()
    pending = reporter.close()
    assert pending is not None and pending.progress == 0.2


def test_engine_returns_pending_progress_for_the_terminal_write() -> None:
    """count with no delay reports n times within one interval: 1 write, the final 1.0 is handed back."""
    written: list[float | None] = []
    outcome = run(
        Engine(), "@dops/examples/count", {"n": 50, "delay": 0}, write_progress=lambda p: written.append(p.progress)
    )
    assert outcome.succeeded and outcome.result.result == {"count": 50}
    assert len(written) <= 2
    final = outcome.pending_progress.progress if outcome.pending_progress else written[-1]
    assert final == 1.0


# ------------------------------------------------------------------------------------------- operator kinds


def test_sync_operator_runs_in_a_worker_thread() -> None:
    outcome = run(Engine(registry(op=plain_op)), "@t/op", {"a": 1})
    assert outcome.succeeded
    assert outcome.result.result["params"] == {"a": 1}
    assert outcome.result.result["thread"] != threading.main_thread().name


def test_async_operator() -> None:
    outcome = run(Engine(registry(op=async_op)), "@t/op", {"b": 2})
    assert outcome.succeeded and outcome.result.result == {"kind": "async", "params": {"b": 2}}


def test_generator_operator_is_exhausted_and_returns_none() -> None:
    """§4.4: generators are exhausted, the result is None (§7 #18); yielded ExecutionProgress is reported."""
    written: list[ExecutionProgress] = []
    outcome = run(Engine(registry(op=generator_op)), "@t/op", write_progress=written.append, progress_interval=0)
    assert outcome.succeeded and outcome.result.result is None
    values = [p.progress for p in written] + ([outcome.pending_progress.progress] if outcome.pending_progress else [])
    assert values and values[-1] == 1.0


def test_async_generator_operator() -> None:
    written: list[ExecutionProgress] = []
    outcome = run(Engine(registry(op=async_generator_op)), "@t/op", write_progress=written.append, progress_interval=0)
    assert outcome.succeeded and outcome.result.result is None
    labels = {p.label for p in written} | ({outcome.pending_progress.label} if outcome.pending_progress else set())
    assert labels == {"async gen"}


def test_builtin_examples() -> None:
    engine = Engine()
    assert run(engine, "@dops/examples/echo", {"k": [1, 2]}).result.result == {"k": [1, 2]}
    assert run(engine, "@dops/examples/sleep", {"seconds": 0.01}).result.result == {"slept": 0.01}
    assert run(engine, "@dops/examples/count", {"n": 3, "delay": 0}).result.result == {"count": 3}
    failed = run(engine, "@dops/examples/fail", {"message": "on purpose"})
    assert not failed.succeeded
    assert failed.result.error_message == "ExampleFailure: on purpose"
    assert "Traceback (most recent call last)" in failed.result.error
    assert f"{ExampleFailure.__module__}.ExampleFailure: on purpose" in failed.result.error


def test_operator_exception_carries_traceback_and_one_line_message() -> None:
    """§4.3 / §7 #21: the stored error is the traceback; error_message is one line."""
    outcome = run(Engine(registry(op=boom)), "@t/op")
    assert not outcome.succeeded
    assert outcome.result.error_message == "ValueError: boom: something went wrong"
    assert outcome.result.error.startswith("Traceback (most recent call last)")
    assert "in boom" in outcome.result.error and outcome.result.error.rstrip().endswith("something went wrong")
    assert outcome.message == "ValueError: boom: something went wrong"


def test_unknown_operator_fails_the_run_with_the_known_list() -> None:
    outcome = run(Engine(), "@acme/unknown")
    assert not outcome.succeeded
    assert outcome.result.error.startswith("operator not found: @acme/unknown; known operators: ")
    assert "@dops/examples/count" in outcome.result.error


def test_huge_result_fails_with_a_size_error() -> None:
    """A 10 MiB result cannot be stored in the status: failed with the limit named."""
    outcome = run(Engine(registry(op=huge)), "@t/op")
    assert not outcome.succeeded
    assert outcome.result.result is None
    assert outcome.result.error.startswith("result is too large: 10485762 bytes of JSON, the limit is 65536 bytes")
    assert len(json.dumps(outcome.result.error)) < 1024


def test_non_json_result_fails_clearly() -> None:
    outcome = run(Engine(registry(op=not_json)), "@t/op")
    assert not outcome.succeeded and "not JSON-serializable" in outcome.result.error


async def test_run_sync_from_inside_an_event_loop() -> None:
    """§7 #12: usable from code that already runs an event loop."""
    outcome = Engine(registry(op=async_op)).run_sync(ExecutionRequest("@t/op", {"params": {"z": 1}}))
    assert outcome.succeeded and outcome.result.result["params"] == {"z": 1}


# ------------------------------------------------------------------------------------------- pipelines


class Recorder:
    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, Any], dict[str, Any], Any]] = []

    def op(self, name: str, fail: bool = False) -> Any:
        def execute(ctx: ExecutionContext) -> None:
            pipe = ctx.pipeline
            snapshot = {
                "index": pipe.curr_stage_index if pipe else None,
                "total": pipe.total_stages if pipe else None,
                "active": pipe.active if pipe else None,
            }
            request = {k: v for k, v in ctx.request_params.items() if k != "params"}
            self.calls.append((name, dict(ctx.params), request, snapshot))
            if fail:
                raise RuntimeError(f"{name} failed")

        return execute


def pipeline_engine(rec: Recorder) -> Engine:
    return Engine(
        registry(
            a=rec.op("a"), b=rec.op("b", fail=True), c=rec.op("c"), d=rec.op("d", fail=True), cleanup=rec.op("cleanup")
        )
    )


def test_pipeline_first_error_wins_and_always_run_stages_run() -> None:
    """§3.3: stages in order; first error kept; skipped stages; always_run stages still run."""
    rec = Recorder()
    pipeline = Pipeline(
        [
            PipelineStage("@t/a", params={"n": 1}, request_params_overrides={"view": "v1"}),
            PipelineStage("@t/b", params={"n": 2}),
            PipelineStage("@t/c", params={"n": 3}),
            PipelineStage("@t/d", always_run=True),
            PipelineStage("@t/cleanup", always_run=True, params={"n": 5}),
        ]
    )
    infos: list[PipelineRunInfo] = []
    request = ExecutionRequest("@dops/pipeline", {"params": {"top": True}, "dataset_name": "ds"}, pipeline, "op-1")
    outcome = pipeline_engine(rec).run_sync(request, on_pipeline=infos.append)
    assert [c[0] for c in rec.calls] == ["a", "b", "d", "cleanup"]
    assert [c[1] for c in rec.calls] == [{"n": 1}, {"n": 2}, {}, {"n": 5}]
    assert rec.calls[0][2]["view"] == "v1" and "view" not in rec.calls[1][2], "overrides are per stage"
    assert all(c[2]["dataset_name"] == "ds" and c[2]["run_doc"] == "op-1" for c in rec.calls)
    assert [c[3]["index"] for c in rec.calls] == [0, 1, 3, 4]
    assert [c[3]["active"] for c in rec.calls] == [True, True, False, False]
    assert all(c[3]["total"] == 5 for c in rec.calls)
    assert not outcome.succeeded
    assert outcome.result.error_message == "Failed to execute pipeline stage[1]: RuntimeError: b failed"
    assert "RuntimeError: b failed" in outcome.result.error and "d failed" not in outcome.result.error
    assert [(i.active, i.stage_index) for i in infos] == [(True, 0), (True, 1), (False, 3), (False, 4), (False, 4)]


def test_pipeline_success_stores_no_result() -> None:
    rec = Recorder()
    pipeline = Pipeline([PipelineStage("@t/a"), PipelineStage("@t/c")])
    outcome = pipeline_engine(rec).run_sync(ExecutionRequest("@x/parent", {}, pipeline))
    assert outcome.succeeded and outcome.result.result is None and outcome.result.error is None
    assert [c[0] for c in rec.calls] == ["a", "c"]


def test_pipeline_stage_with_unknown_operator_or_bad_params() -> None:
    rec = Recorder()
    pipeline = Pipeline(
        [
            PipelineStage("@t/missing"),
            PipelineStage("@dops/examples/count", params={"n": "x"}, always_run=True),
            PipelineStage("@t/cleanup", always_run=True),
        ]
    )
    outcome = pipeline_engine(rec).run_sync(ExecutionRequest("@x/parent", {}, pipeline))
    assert outcome.result.error_message is not None
    assert outcome.result.error_message.startswith(
        "Failed to execute pipeline stage[0]: operator not found: @t/missing"
    )
    assert [c[0] for c in rec.calls] == ["cleanup"]


# ------------------------------------------------------------------------------------------- worker helpers


@pytest.mark.parametrize(
    ("ref", "namespace", "expected"),
    [
        ("ns1/op-a", None, ("ns1", "op-a")),
        ("op-a", "ns2", ("ns2", "op-a")),
        ("op-a", None, (None, "op-a")),
        ("ns1/op-a", "other", ("ns1", "op-a")),
    ],
)
def test_parse_ref(ref: str, namespace: str | None, expected: tuple[str | None, str]) -> None:
    assert parse_ref(ref, namespace) == expected


@pytest.mark.parametrize("ref", ["", "a/b/c", "/x", "Bad_Name", "NS/x"])
def test_parse_ref_rejects(ref: str) -> None:
    with pytest.raises(UsageError):
        parse_ref(ref, None)


def test_termination_message_fits_4096_bytes() -> None:
    summary = {"operation": "ns/op", "runState": "failed", "message": "é" * 10_000}
    data = render(summary)
    assert len(data) <= MAX_BYTES
    decoded = json.loads(data)
    assert decoded["operation"] == "ns/op" and decoded["message"].endswith("...")
    assert json.loads(render({"operation": "ns/op", "message": "short"})) == {"operation": "ns/op", "message": "short"}
