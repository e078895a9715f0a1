"""Timestamps: timezone-aware UTC datetimes in Python, RFC 3339 strings in resources.

dops writes microsecond precision (`2025-01-31T12:00:00.123456Z`) so that FiftyOne's time-based
sort orders stay stable for operations queued within the same second; it reads any RFC 3339 form
(`Z` or an offset, with or without fractional seconds) and always returns UTC.
"""

from __future__ import annotations

import datetime as dt

UTC = dt.UTC


def utcnow() -> dt.datetime:
    """The current time as an aware UTC datetime (FiftyOne uses naive `utcnow()`; dops never does)."""
    return dt.datetime.now(UTC)


def as_utc(value: dt.datetime) -> dt.datetime:
    """An aware UTC datetime; naive values are taken to be UTC already (as FiftyOne stores them)."""
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def format_time(value: dt.datetime) -> str:
    """RFC 3339 in UTC with microseconds and a `Z` suffix."""
    return as_utc(value).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_time(value: str | None) -> dt.datetime | None:
    """Parse an RFC 3339 timestamp to an aware UTC datetime; None and "" give None.

    Raises ValueError for text that is not RFC 3339.
    """
    if not value:
        return None
    text = value.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    parsed = dt.datetime.fromisoformat(text)
    if parsed.tzinfo is None:
        raise ValueError(f"timestamp without a time zone: {value!r}")
    return parsed.astimezone(UTC)
