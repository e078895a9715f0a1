"""Time as the emulator sees it: one injectable clock, so tests can fast-forward controllers."""

from __future__ import annotations

import time
from datetime import UTC, datetime


class Clock:
    """Wall clock for timestamps and monotonic time for delays; subclass to fake either."""

    def now(self) -> datetime:
        return datetime.now(UTC)

    def monotonic(self) -> float:
        return time.monotonic()


# The last (second, text) `rfc3339` formatted: every write stamps a time or two, and most writes of a busy second
# format that same second. One immutable tuple, replaced whole, so threads sharing it see a consistent pair.
_last_rfc3339: tuple[datetime, str] | None = None


def rfc3339(moment: datetime) -> str:
    """`2026-11-29T16:38:19Z`: metav1.Time has second precision."""
    global _last_rfc3339
    utc = moment if moment.tzinfo is UTC else moment.astimezone(UTC)
    second = utc.replace(microsecond=0)
    last = _last_rfc3339
    if last is not None and last[0] == second:
        return last[1]
    text = second.strftime("%Y-%m-%dT%H:%M:%SZ")
    _last_rfc3339 = (second, text)
    return text


def rfc3339_micro(moment: datetime) -> str:
    """metav1.MicroTime, as used by events.k8s.io eventTime and lease renewTime."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_time(value: str) -> datetime | None:
    """Parse RFC 3339 (with `Z`, offsets, or fractional seconds); None when it does not parse."""
    try:
        text = value.strip()
        if text.endswith("Z"):
            text = text[:-1] + "+00:00"
        moment = datetime.fromisoformat(text)
    except (ValueError, AttributeError):
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment
