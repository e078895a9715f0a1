"""When a worker writes its operation's progress (pure): the coalescing decision behind `ctx.set_progress`.

Every progress write rewrites the whole DelegatedOperation in etcd and fans out to every watcher, so a worker
coalesces its reports: the newest value wins, at most one write per interval, and the final value is always
written (it rides in the terminal state write when it was not written before). 1,000 operations running at
once on targets with the default interval (`DEFAULT_PROGRESS_INTERVAL_SECONDS`, 10 s) cost the API server at
most 100 progress writes a second, whatever their operators report. A DelegationTarget changes the interval
with `spec.progressIntervalSeconds`; the operator hands it to the worker in `$DOPS_PROGRESS_INTERVAL_SECONDS`.

`progress_write_delay` is the interval policy, so that it has table tests without threads or clocks:
`dops.execution.ProgressReporter` asks it what to do each time something changes. The final value needs no
policy: the reporter's `flush()`/`close()` write it at once, whatever the interval.
"""

from __future__ import annotations

import math

DEFAULT_PROGRESS_INTERVAL_SECONDS = 10  # a target's default: 1,000 running operations ≤ 100 writes/s
MAX_PROGRESS_INTERVAL_SECONDS = 3600  # the CRD's maximum of spec.progressIntervalSeconds
ENV_PROGRESS_INTERVAL = "DOPS_PROGRESS_INTERVAL_SECONDS"  # set on the worker container by the operator


def progress_write_delay(
    *,
    pending: bool,
    now: float,
    last_write: float | None,
    interval: float,
) -> float | None:
    """Seconds to wait before writing the pending progress: 0 writes now, None means nothing to write.

    - nothing pending: None;
    - the first value, or an interval of 0 or less: now;
    - otherwise what is left of `interval` since `last_write` (a clock that went backwards waits one interval
      at most, never forever).
    """
    if not pending:
        return None
    if last_write is None or interval <= 0:
        return 0.0
    elapsed = now - last_write
    if elapsed < 0:  # the clock went backwards: wait at most one interval from now
        return float(interval)
    return max(0.0, interval - elapsed)


def parse_progress_interval(raw: str | None, default: float) -> float:
    """`$DOPS_PROGRESS_INTERVAL_SECONDS` as seconds (a non-negative number); `default` when unset or empty.

    Raises ValueError with one readable line for anything else."""
    if raw is None or not raw.strip():
        return default
    try:
        value = float(raw.strip())
    except ValueError:
        raise ValueError(f"{ENV_PROGRESS_INTERVAL} must be a number of seconds, got {raw!r}") from None
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"{ENV_PROGRESS_INTERVAL} must be a number of seconds ≥ 0, got {raw!r}")
    return value
