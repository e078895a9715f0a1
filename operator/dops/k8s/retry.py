"""`patiently(what, call, seconds)`: repeat a write that is safe to repeat until it gets an answer, for minutes.

Why: a worker that gives up on its first 500 turns a healthy run into a failed operation (issue 11, item 5),
and one that gives up on recording its outcome after a few seconds loses a finished result to a short
control-plane outage. `KubeClient` itself retries only a few seconds (it cannot know whether a write is
safe to repeat); callers whose write *is* safe to repeat — idempotent, or a compare-and-set whose
JSON Patch `test`s make a repeat harmless — wrap it here.

- Transient failures (`errors.is_transient`: no answer, 429, any 5xx) are retried with capped
  exponential backoff (0.5 s doubling up to `max_delay`) until `seconds` have passed; each retry is one
  log line naming the write, the error, the attempt and the time left.
- `check` (optional) runs before each retry of a compare-and-set whose answer was lost: the write may
  have been applied, and repeating it would then fail its own `test`. It returns a value to stop with
  (taken as the write's result), or None to retry.
- Any other error (404, 409, 422, ...) is raised at once: it is an answer.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from typing import TypeVar

from .errors import ApiError, is_transient

log = logging.getLogger("dops.k8s.retry")

T = TypeVar("T")

WRITE_RETRY_ENV = "DOPS_WORKER_WRITE_RETRY_SECONDS"
DEFAULT_WRITE_RETRY_SECONDS = 300.0
OUTCOME_PATIENCE_FACTOR = 3  # recording the outcome waits this many times longer than other writes


def write_retry_seconds() -> float:
    """How long a worker keeps retrying one write: `$DOPS_WORKER_WRITE_RETRY_SECONDS` (default 300)."""
    raw = os.environ.get(WRITE_RETRY_ENV, "").strip()
    if not raw:
        return DEFAULT_WRITE_RETRY_SECONDS
    try:
        value = float(raw)
    except ValueError:
        log.warning("%s=%r is not a number of seconds; using %.0f", WRITE_RETRY_ENV, raw, DEFAULT_WRITE_RETRY_SECONDS)
        return DEFAULT_WRITE_RETRY_SECONDS
    return max(value, 0.0)


def patiently(
    what: str,
    call: Callable[[], T],
    seconds: float,
    *,
    check: Callable[[], T | None] | None = None,
    first_delay: float = 0.5,
    max_delay: float = 15.0,
    sleep: Callable[[float], None] = time.sleep,
) -> T:
    """`call()`, repeated on transient errors for up to `seconds` (see the module docstring)."""
    deadline = time.monotonic() + seconds
    attempt = 0
    while True:
        try:
            return call()
        except ApiError as exc:
            if not is_transient(exc):
                raise
            attempt += 1
            left = deadline - time.monotonic()
            if left <= 0:
                log.error("%s: giving up after %d attempts in %.0f s: %s", what, attempt, seconds, exc)
                raise
            delay = min(first_delay * 2 ** (attempt - 1), max_delay, left)
            retry_after = getattr(exc, "retry_after", None)
            if isinstance(retry_after, int | float) and retry_after > delay:
                delay = min(float(retry_after), max_delay, left)
            log.warning("%s: %s; retry %d in %.1f s (gives up in %.0f s)", what, exc, attempt, delay, left)
            sleep(delay)
        if check is not None:
            try:
                decided = check()
            except ApiError as exc:
                if not is_transient(exc):
                    raise
                continue  # cannot look: try the write again (a lost test fails safe)
            if decided is not None:
                return decided
