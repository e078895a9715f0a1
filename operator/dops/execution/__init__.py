"""The execution engine: operator registry, execution context, running operators and pipelines.

No Kubernetes access: status writes (progress, pipeline state) are callbacks injected by the caller
(`dops.service` for `execute_operation`, `dops.worker` for the Job container).

- `registry`: `OperatorRegistry` over the `dops.operators` entry points (+ `py:module:function` when allowed).
- `operators`: `Operator`, `Param`, the `operator(...)` decorator, parameter validation.
- `context`: `ExecutionContext` (what operators receive) and the throttled `ProgressReporter`.
- `runner`: `Engine` (resolve, validate, run sync/async/generator operators and pipelines, bound results).
- `examples`: the built-in `@dops/examples/*` operators.
"""

from __future__ import annotations

from .context import ExecutionContext, PipelineExecutionContext, ProgressReporter
from .operators import InvalidParams, Operator, Param, operator
from .registry import (
    ENTRY_POINT_GROUP,
    OperatorLoadError,
    OperatorNotFound,
    OperatorRegistry,
    default_registry,
)
from .runner import Engine, ExecutionOutcome, ExecutionRequest, OperationFailed, run_coroutine_sync, run_operator

__all__ = [
    "ENTRY_POINT_GROUP",
    "Engine",
    "ExecutionContext",
    "ExecutionOutcome",
    "ExecutionRequest",
    "InvalidParams",
    "OperationFailed",
    "Operator",
    "OperatorLoadError",
    "OperatorNotFound",
    "OperatorRegistry",
    "Param",
    "PipelineExecutionContext",
    "ProgressReporter",
    "default_registry",
    "operator",
    "run_coroutine_sync",
    "run_operator",
]
