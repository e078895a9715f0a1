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


def rfc3339(moment: datetime) -> str:
    """`2026-11-29T16:38:19Z`: metav1.Time has second precision."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


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
