"""metav1.Condition helpers: one way to set and read conditions in a status dict (pure, no I/O).

`set_condition` follows the Kubernetes convention: `lastTransitionTime` moves only when `status`
changes, `observedGeneration` is always refreshed, reasons are CamelCase constants
(`dops.api.constants.Reasons`) and messages are truncated to what the CRD allows.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping, MutableMapping
from typing import Any

from .times import format_time

MAX_MESSAGE_CHARS = 32_768
_REASON = re.compile(r"^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$")
_STATUSES = ("True", "False", "Unknown")


def _status_text(status: bool | str) -> str:
    if isinstance(status, bool):
        return "True" if status else "False"
    if status not in _STATUSES:
        raise ValueError(f"condition status must be one of {_STATUSES}, not {status!r}")
    return status


def set_condition(
    status: MutableMapping[str, Any],
    type_: str,
    condition_status: bool | str,
    reason: str,
    message: str = "",
    *,
    now: dt.datetime,
    generation: int | None = None,
) -> bool:
    """Set condition `type_` in `status["conditions"]` in place; returns True when anything changed.

    `condition_status` is a bool or "True"/"False"/"Unknown". Raises ValueError for a reason that
    is not CamelCase (the CRD would reject it).
    """
    if not _REASON.match(reason):
        raise ValueError(f"condition reason must be CamelCase, not {reason!r}")
    text = _status_text(condition_status)
    if len(message) > MAX_MESSAGE_CHARS:
        message = message[: MAX_MESSAGE_CHARS - 3] + "..."
    conditions: list[dict[str, Any]] = [dict(c) for c in status.get("conditions") or []]
    existing = next((c for c in conditions if c.get("type") == type_), None)
    new: dict[str, Any] = {
        "type": type_,
        "status": text,
        "reason": reason,
        "message": message,
        "lastTransitionTime": format_time(now),
    }
    if generation is not None:
        new["observedGeneration"] = generation
    if existing is not None:
        if existing.get("status") == text and existing.get("lastTransitionTime"):
            new["lastTransitionTime"] = existing["lastTransitionTime"]
        if existing == new:
            return False
        conditions[conditions.index(existing)] = new
    else:
        conditions.append(new)
    status["conditions"] = conditions
    return True


def get_condition(status: Mapping[str, Any] | None, type_: str) -> dict[str, Any] | None:
    """The condition of type `type_`, or None."""
    for condition in (status or {}).get("conditions") or []:
        if condition.get("type") == type_:
            return dict(condition)
    return None


def is_condition_true(status: Mapping[str, Any] | None, type_: str) -> bool:
    condition = get_condition(status, type_)
    return condition is not None and condition.get("status") == "True"
