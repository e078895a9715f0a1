"""The container termination message: a short JSON summary the kubelet copies into the pod status.

Kubernetes reads at most 4096 bytes from `terminationMessagePath` (default `/dev/termination-log`) and
shows them in `status.containerStatuses[].state.terminated.message` (`kubectl describe pod`). The
worker writes `{"operation": "NS/NAME", "runState": ..., "message": ...}`; `message` is shortened so
the whole document fits. An outcome the worker could not record (exit code 4) also carries `recorded:
false`, the attempt's identity and, when it fits, the `status.result` to write: the operator records it
from there (`dops.domain.observe.unrecorded_outcome`).
The path is `$DOPS_TERMINATION_MESSAGE_PATH` when set (the embedded kubelet sets it), else
`/dev/termination-log` when that file exists and is writable; otherwise nothing is written.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

PATH_ENV = "DOPS_TERMINATION_MESSAGE_PATH"
DEFAULT_PATH = Path("/dev/termination-log")
MAX_BYTES = 4096


def termination_path() -> Path | None:
    configured = os.environ.get(PATH_ENV)
    if configured:
        return Path(configured)
    if DEFAULT_PATH.exists() and os.access(DEFAULT_PATH, os.W_OK):
        return DEFAULT_PATH
    return None


def render(summary: dict[str, Any], limit: int = MAX_BYTES) -> bytes:
    """Compact JSON of `summary`, at most `limit` bytes (the `message` field is shortened to fit)."""
    data = dict(summary)
    encoded = json.dumps(data, separators=(",", ":"), ensure_ascii=False, default=str).encode()
    if len(encoded) <= limit:
        return encoded
    message = str(data.get("message", ""))
    overflow = len(encoded) - limit
    keep = max(0, len(message.encode()) - overflow - 16)
    while True:
        data["message"] = message.encode()[:keep].decode(errors="ignore") + "..."
        encoded = json.dumps(data, separators=(",", ":"), ensure_ascii=False, default=str).encode()
        if len(encoded) <= limit or keep == 0:
            return encoded[:limit]
        keep = max(0, keep - (len(encoded) - limit) - 4)


def write_termination_message(summary: dict[str, Any]) -> Path | None:
    """Write the summary; returns the path written, None when there is nowhere to write (never raises)."""
    path = termination_path()
    if path is None:
        return None
    try:
        path.write_bytes(render(summary))
    except OSError as exc:
        log.warning("cannot write the termination message to %s: %s", path, exc)
        return None
    return path
