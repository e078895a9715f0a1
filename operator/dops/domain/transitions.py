"""Status changes of an operation, as pure data, and the two patch forms that carry them.

Every state transition sets `runState` and `updatedAt` plus FiftyOne's per-state extras
(`queuedAt`, `scheduledAt`, `startedAt`+`monitored`, `completedAt`+`result`(+`outputsSchema`),
`failedAt`+`result`); optional `runLink`, `logPath` and `progress` ride along. Nothing is ever
cleared: timestamps and results of earlier states persist (FiftyOne surprise 2). There is no
transition table either: any state may follow any state, as in FiftyOne; atomicity comes from
`required_state`.

A `StatusChange` is rendered as:

- `cas_patch(change, required_state)`: a JSON Patch for `/status` whose first operation is
  `{"op": "test", "path": "/status/runState", "value": required_state}`; the API server applies it
  atomically or answers 422 (lost the race). Each field is an `add` (which replaces an existing
  member), so the patch never fails for a reason other than the test. The test is exact, like
  FiftyOne's MongoDB filter: "QUEUED" or an unknown name is not an error, it just never matches;
- `merge_patch(change)`: a JSON merge patch `{"status": {...}}` for unconditional writes (it also
  works on an operation that has no status yet, e.g. one created with kubectl).

Nested objects (`progress`, `result`) are replaced whole: the change carries every known key, with
None for "absent" (a null in a merge patch deletes; the JSON Patch form drops them).
"""

from __future__ import annotations

import datetime as dt
import enum
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ..api import constants as c
from ..api.conditions import set_condition
from ..api.times import format_time
from ..api.types import ExecutionProgress, ExecutionResult, ExecutionRunState
from .names import name_time
from .results import outputs_schema_of, result_status, truncate_tail

JSON = dict[str, Any]
MAX_CANCELLED_BY_CHARS = 253
_TIMESTAMP_FIELD = {
    ExecutionRunState.QUEUED: "queuedAt",
    ExecutionRunState.SCHEDULED: "scheduledAt",
    ExecutionRunState.RUNNING: "startedAt",
    ExecutionRunState.COMPLETED: "completedAt",
    ExecutionRunState.FAILED: "failedAt",
}


@dataclass(frozen=True)
class StatusChange:
    """Top-level status fields to set; nested dicts hold None for keys to remove."""

    fields: JSON = field(default_factory=dict)

    @property
    def run_state(self) -> str | None:
        value = self.fields.get("runState")
        return str(value) if value is not None else None


# --------------------------------------------------------------------------------------------- validation


def storable_state(run_state: object) -> ExecutionRunState:
    """The state to store; ValueError("Invalid run_state: ...") for unknown states and for `processing`."""
    state = ExecutionRunState.parse(run_state)
    if state not in _TIMESTAMP_FIELD:
        raise ValueError(f"Invalid run_state: {str(state)!r} cannot be stored (FiftyOne's store rejects it too)")
    return state


def state_value(value: object) -> object:
    """What a run-state argument is compared with: an enum member's value, anything else as given.

    FiftyOne compares `required_state` and run-state filters with the stored string by plain equality
    (a MongoDB query on `run_state`): no case folding and no validation, so "QUEUED" or "bogus" simply
    match nothing. The same rule here keeps a compare-and-set from succeeding where FiftyOne's would not.
    """
    return value.value if isinstance(value, enum.Enum) else value


def required_state_value(required_state: object) -> str | int | float | bool:
    """The value a compare-and-set tests `status.runState` against (exact, see `state_value`).

    Scalars pass through (a value no operation can be in makes the CAS lose, as in FiftyOne); containers
    and other objects raise ValueError, because FiftyOne would hand them to MongoDB as a query
    (`{"$in": [...]}`) and a JSON Patch `test` cannot express one.
    """
    value = state_value(required_state)
    if isinstance(value, str | int | float | bool):
        return value
    raise ValueError(f"required_state must be a run state name, not {type(required_state).__name__}")


def coerce_progress(progress: Any) -> ExecutionProgress:
    """An ExecutionProgress from an ExecutionProgress or a dict; ValueError for anything unusable.

    FiftyOne's rules (a progress needs a value or a label) plus the CRD's bounds (value in [0, 1],
    label at most 1024 characters).
    """
    if isinstance(progress, ExecutionProgress):
        value = progress
    elif isinstance(progress, Mapping):
        try:
            value = ExecutionProgress(**dict(progress))
        except TypeError as exc:
            raise ValueError(f"Invalid progress: {exc}") from exc
    elif all(hasattr(progress, a) for a in ("progress", "label")) and not isinstance(progress, str | bytes):
        value = ExecutionProgress(progress=progress.progress, label=progress.label)
    else:
        raise ValueError(f"Invalid progress: expected an ExecutionProgress or a dict, not {type(progress).__name__}")
    if value.progress is not None:
        number = value.progress
        if isinstance(number, bool) or not isinstance(number, int | float) or not math.isfinite(number):
            raise ValueError(f"Invalid progress: progress must be a number between 0 and 1, not {number!r}")
        if not 0 <= number <= 1:
            raise ValueError(f"Invalid progress: progress must be between 0 and 1, got {number!r}")
    if value.label is not None and not isinstance(value.label, str):
        raise ValueError(f"Invalid progress: label must be a string, not {type(value.label).__name__}")
    if value.progress is None and not value.label:
        raise ValueError("Invalid progress: needs a progress value or a label")
    if value.label is not None and len(value.label) > c.MAX_LABEL_CHARS:
        raise ValueError(f"Invalid progress: label longer than {c.MAX_LABEL_CHARS} characters")
    return value


def _check_text(name: str, value: object, limit: int) -> str:
    if not isinstance(value, str):
        raise ValueError(f"{name} must be a string, not {type(value).__name__}")
    if len(value) > limit:
        raise ValueError(f"{name} is longer than {limit} characters")
    return value


def progress_fields(progress: Any, now: dt.datetime) -> JSON:
    value = coerce_progress(progress)
    return {
        "progress": float(value.progress) if value.progress is not None else None,
        "label": value.label,
        "updatedAt": format_time(now),
    }


# --------------------------------------------------------------------------------------------- changes


def queued_status(now: dt.datetime) -> StatusChange:
    """The status of a freshly queued operation (FiftyOne's local mode: QUEUED with queued_at)."""
    stamp = format_time(now)
    return StatusChange({"runState": ExecutionRunState.QUEUED.value, "queuedAt": stamp, "updatedAt": stamp})


def first_sight_status(obj: Mapping[str, Any], now: dt.datetime) -> StatusChange:
    """The `queued` status for an operation that has none yet (created with kubectl, or the service's status
    write was lost). A dops-named operation (NAME_ORDER_LABEL) is queued at the instant its name encodes, which
    keeps its name order equal to `queued_at` order; any other operation is queued `now`."""
    meta = obj.get("metadata") or {}
    queued_at = now
    if (meta.get("labels") or {}).get(c.NAME_ORDER_LABEL) == c.NAME_ORDER_QUEUED_AT:
        queued_at = name_time(str(meta.get("name", ""))) or now
    change = queued_status(queued_at)
    change.fields["updatedAt"] = format_time(now)
    return change


def state_change(
    run_state: object,
    now: dt.datetime,
    *,
    result: ExecutionResult | None = None,
    progress: Any = None,
    run_link: str | None = None,
    log_path: str | None = None,
    monitored: bool = False,
    cancelled_by: str | None = None,
) -> StatusChange:
    """FiftyOne's `update_run_state` as a status change (validated; raises ValueError for bad input).

    `cancelled_by` (only with `failed`) marks the write as a cancel by that party: `cancelledBy` plus
    `cancelledAt` equal to `failedAt`, so the operator can tell this cancel from any later failure
    (see `cancelled_by`)."""
    state = storable_state(run_state)
    stamp = format_time(now)
    fields: JSON = {"runState": state.value, "updatedAt": stamp, _TIMESTAMP_FIELD[state]: stamp}
    if cancelled_by is not None:
        if state is not ExecutionRunState.FAILED:
            raise ValueError(f"only a change to failed can be a cancel, not one to {state.value}")
        who = " ".join(str(cancelled_by).split())[:MAX_CANCELLED_BY_CHARS] or "a client"
        fields["cancelledBy"] = who
        fields["cancelledAt"] = stamp
    if state is ExecutionRunState.RUNNING:
        fields["monitored"] = bool(monitored)
    if state in (ExecutionRunState.COMPLETED, ExecutionRunState.FAILED):
        stored = result_status(result)
        fields["result"] = {"result": None, "error": None, "errorMessage": None, **stored}
        if state is ExecutionRunState.COMPLETED:
            schema = outputs_schema_of(result)
            if schema is not None:
                fields["outputsSchema"] = dict(schema)
    if run_link is not None:
        fields["runLink"] = _check_text("run_link", run_link, c.MAX_RUN_LINK_CHARS)
    if log_path is not None:
        fields["logPath"] = _check_text("log_path", log_path, c.MAX_RUN_LINK_CHARS)
    if progress is not None:
        fields["progress"] = progress_fields(progress, now)
    return StatusChange(fields)


def cancelled_by(status: Mapping[str, Any]) -> str | None:
    """Who cancelled the operation, when its current `failed` state was written as a cancel; else None.

    A cancel is recorded by the write that made the operation `failed` (`cancelledAt == failedAt`): a marker
    left from an earlier cancel (the operation was re-queued since) never labels a later failure."""
    if status.get("runState") != ExecutionRunState.FAILED.value:
        return None
    who = status.get("cancelledBy")
    at = status.get("cancelledAt")
    if not who or not at or at != status.get("failedAt"):
        return None
    return str(who)


def progress_change(progress: Any, now: dt.datetime) -> StatusChange:
    """`set_progress`: replaces `status.progress`; does not touch `updatedAt` (FiftyOne)."""
    return StatusChange({"progress": progress_fields(progress, now)})


def heartbeat(now: dt.datetime) -> StatusChange:
    """A monitor's ping: only `updatedAt` moves."""
    return StatusChange({"updatedAt": format_time(now)})


def log_upload_error_change(message: object) -> StatusChange:
    return StatusChange({"logUploadError": _check_text("log_upload_error", message, c.MAX_LOG_UPLOAD_ERROR_CHARS)})


def log_size_change(size: object) -> StatusChange:
    if isinstance(size, bool) or not isinstance(size, int) or size < 0:
        raise ValueError(f"log_size must be a non-negative integer, not {size!r}")
    return StatusChange({"logSize": size})


def child_error_change(child_id: str, error: str) -> StatusChange:
    """Record a pipeline child's error on its parent (`pipelineRunInfo.childErrors[child]`), merge form only."""
    return StatusChange({"pipelineRunInfo": {"childErrors": {child_id: truncate_tail(str(error), c.MAX_ERROR_CHARS)}}})


# --------------------------------------------------------------------------------------------- rendering


def _without_none(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _without_none(v) for k, v in value.items() if v is not None}
    return value


def merge_patch(change: StatusChange) -> JSON:
    """A JSON merge patch for the status subresource."""
    return {"status": dict(change.fields)}


def cas_patch(change: StatusChange, required_state: object) -> list[JSON]:
    """A JSON Patch for `/status` that applies only while `status.runState == required_state` (exactly)."""
    ops: list[JSON] = [{"op": "test", "path": "/status/runState", "value": required_state_value(required_state)}]
    for key, value in change.fields.items():
        if value is None:
            continue
        ops.append({"op": "add", "path": f"/status/{key}", "value": _without_none(value)})
    return ops


def conditions_for_state(
    run_state: str | None, now: dt.datetime, previous: list[JSON] | None = None, generation: int | None = None
) -> list[JSON]:
    """`Running` and `Succeeded` conditions implied by a run state (for the operator's reconcile)."""
    status: JSON = {"conditions": list(previous or [])}
    state = ExecutionRunState.parse(run_state) if run_state else None
    running = state is ExecutionRunState.RUNNING
    set_condition(
        status,
        c.CONDITION_RUNNING,
        running,
        c.Reasons.RUNNING if running else _reason(state),
        now=now,
        generation=generation,
    )
    succeeded: bool | str = "Unknown"
    if state is ExecutionRunState.COMPLETED:
        succeeded = True
    elif state is ExecutionRunState.FAILED:
        succeeded = False
    set_condition(status, c.CONDITION_SUCCEEDED, succeeded, _reason(state), now=now, generation=generation)
    conditions: list[JSON] = status["conditions"]
    return conditions


def _reason(state: ExecutionRunState | None) -> str:
    return {
        None: c.Reasons.QUEUED,
        ExecutionRunState.QUEUED: c.Reasons.QUEUED,
        ExecutionRunState.SCHEDULED: c.Reasons.SCHEDULED,
        ExecutionRunState.RUNNING: c.Reasons.RUNNING,
        ExecutionRunState.COMPLETED: c.Reasons.COMPLETED,
        ExecutionRunState.FAILED: c.Reasons.FAILED,
    }.get(state, c.Reasons.QUEUED)
