"""Results in the status: FiftyOne's ExecutionResult → `status.result`, with the size caps of the CRD.

- `result.result` must be JSON (the status is JSON) and at most `MAX_RESULT_BYTES` (65536) bytes
  encoded; larger values raise ValueError naming the limit. The API server cannot measure an
  arbitrary JSON value, so this check is where the cap is enforced; large outputs belong in the
  log/archive store.
- `result.error` (usually a traceback) keeps its last `MAX_ERROR_CHARS` characters: a failure must
  never be lost because its traceback is long, and a traceback's end is the informative part.
- `error_message` keeps its first `MAX_ERROR_MESSAGE_CHARS` characters.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any

from ..api import constants as c
from ..api.types import ExecutionResult

TRUNCATION_MARK = "...[truncated {n} characters]\n"


def encoded_size(value: Any) -> int:
    """Bytes of `value` as compact JSON; ValueError if it is not JSON."""
    try:
        text = json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"result is not JSON-serializable ({exc}); dops stores results as JSON") from exc
    return len(text.encode())


def check_result_size(value: Any, limit: int = c.MAX_RESULT_BYTES) -> int:
    """Raise ValueError when `value` is not JSON or encodes to more than `limit` bytes; returns the size."""
    size = encoded_size(value)
    if size > limit:
        raise ValueError(
            f"result is too large: {size} bytes of JSON, the limit is {limit} bytes "
            f"(MAX_RESULT_BYTES) because results are stored in the DelegatedOperation status; "
            "store large outputs elsewhere and return a reference"
        )
    return size


def truncate_tail(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    cut = len(text) - limit
    mark = TRUNCATION_MARK.format(n=cut)
    cut += len(mark)
    return mark + text[cut:]


def truncate_head(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def coerce_result(value: Any) -> ExecutionResult | None:
    """FiftyOne's rule: anything that is not an ExecutionResult is wrapped as ExecutionResult(result=value)."""
    if value is None:
        return None
    if isinstance(value, ExecutionResult):
        return value
    if all(hasattr(value, attr) for attr in ("result", "error", "to_json")):  # a FiftyOne ExecutionResult
        return ExecutionResult(
            result=getattr(value, "result", None),
            error=getattr(value, "error", None),
            error_message=getattr(value, "error_message", None),
            outputs_schema=getattr(value, "outputs_schema", None),
        )
    return ExecutionResult(result=value)


def result_status(result: ExecutionResult | None) -> dict[str, Any]:
    """The `status.result` object for `result` ({} for None: loads back as `doc.result is None`)."""
    if result is None:
        return {}
    out: dict[str, Any] = {}
    if result.result is not None:
        if isinstance(result.result, float) and not math.isfinite(result.result):
            raise ValueError("result is not JSON-serializable (NaN or infinity)")
        check_result_size(result.result)
        out["result"] = result.result
    if result.error is not None:
        out["error"] = truncate_tail(str(result.error), c.MAX_ERROR_CHARS)
    if result.error_message is not None:
        out["errorMessage"] = truncate_head(str(result.error_message), c.MAX_ERROR_MESSAGE_CHARS)
    return out


def outputs_schema_of(result: ExecutionResult | None) -> Mapping[str, Any] | None:
    """The outputs schema FiftyOne moves into `metadata.outputs_schema` on completion (when truthy)."""
    if result is None or not result.outputs_schema:
        return None
    schema = result.outputs_schema
    if not isinstance(schema, Mapping):
        raise ValueError("outputs_schema must be a JSON object")
    encoded_size(schema)
    return schema
