"""dops.domain.progress (pure): when a worker writes progress, and `$DOPS_PROGRESS_INTERVAL_SECONDS` parsing.

Aspects covered:
- nothing pending: nothing to write, final or not;
- the final value is written now whatever the interval or the last write;
- the first value (no write yet) and an interval of 0 are written now;
- otherwise the rest of the interval since the last write; a clock that went backwards waits one interval;
- 1,000 operations at the default interval stay under 100 writes/s (the issue 15 budget);
- the environment value: unset/empty → the default, numbers ≥ 0 accepted, anything else one readable line.
"""

from __future__ import annotations

import pytest

from dops.domain.progress import (
    DEFAULT_PROGRESS_INTERVAL_SECONDS,
    ENV_PROGRESS_INTERVAL,
    parse_progress_interval,
    progress_write_delay,
)


@pytest.mark.parametrize(
    ("pending", "now", "last_write", "interval", "expected"),
    [
        (False, 100.0, 95.0, 10.0, None),  # nothing pending
        (False, 100.0, None, 10.0, None),
        (True, 100.0, None, 10.0, 0.0),  # the first value: now
        (True, 100.0, 99.0, 0.0, 0.0),  # interval 0: every report as fast as writes go
        (True, 100.0, 99.0, -1.0, 0.0),
        (True, 100.0, 95.0, 10.0, 5.0),  # the rest of the interval
        (True, 100.0, 90.0, 10.0, 0.0),  # exactly one interval later
        (True, 100.0, 50.0, 10.0, 0.0),  # long after
        (True, 100.0, 120.0, 10.0, 10.0),  # the clock went backwards: one interval, not 30 s
    ],
)
def test_progress_write_delay(
    pending: bool, now: float, last_write: float | None, interval: float, expected: float | None
) -> None:
    got = progress_write_delay(pending=pending, now=now, last_write=last_write, interval=interval)
    assert got == expected


def test_default_interval_keeps_1000_running_operations_under_100_writes_per_second() -> None:
    assert 1000 / DEFAULT_PROGRESS_INTERVAL_SECONDS <= 100


@pytest.mark.parametrize(
    ("raw", "expected"),
    [(None, 7.0), ("", 7.0), ("  ", 7.0), ("0", 0.0), ("10", 10.0), (" 2.5 ", 2.5)],
)
def test_parse_progress_interval(raw: str | None, expected: float) -> None:
    assert parse_progress_interval(raw, 7.0) == expected


@pytest.mark.parametrize("raw", ["ten", "-1", "nan", "inf"])
def test_parse_progress_interval_refuses_with_one_line(raw: str) -> None:
    with pytest.raises(ValueError) as err:
        parse_progress_interval(raw, 7.0)
    message = str(err.value)
    assert ENV_PROGRESS_INTERVAL in message and repr(raw) in message and "\n" not in message
