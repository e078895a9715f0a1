"""The dops API layer: constants, FiftyOne-compatible types and condition helpers.

Bottom of the layer stack (`dops.api` ← `dops.domain` ← `dops.k8s` ← `dops.service`/operator ←
CLI/handlers): no I/O, no Kubernetes client, no Kopf; everything here is plain data and pure
functions, type-checked with mypy --strict.
"""

from __future__ import annotations

from . import constants
from .conditions import get_condition, is_condition_true, set_condition
from .times import format_time, parse_time, utcnow
from .types import (
    STORABLE_STATES,
    TERMINAL_STATES,
    DelegatedOperationDocument,
    DelegatedOperationPagingParams,
    ExecutionContext,
    ExecutionError,
    ExecutionProgress,
    ExecutionResult,
    ExecutionRunState,
    OperationNotFound,
    Pipeline,
    PipelineRunInfo,
    PipelineStage,
    SortByField,
    SortDirection,
)

__all__ = [
    "STORABLE_STATES",
    "TERMINAL_STATES",
    "DelegatedOperationDocument",
    "DelegatedOperationPagingParams",
    "ExecutionContext",
    "ExecutionError",
    "ExecutionProgress",
    "ExecutionResult",
    "ExecutionRunState",
    "OperationNotFound",
    "Pipeline",
    "PipelineRunInfo",
    "PipelineStage",
    "SortByField",
    "SortDirection",
    "constants",
    "format_time",
    "get_condition",
    "is_condition_true",
    "parse_time",
    "set_condition",
    "utcnow",
]
