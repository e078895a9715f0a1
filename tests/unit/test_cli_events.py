"""`dops get`'s events are matched by the involved object's UID, not its name (issue 11 #12), without a cluster.

An event about an object with the right UID (or naming no UID) is kept; one about an earlier object of the
same name is not; for a Job or pod that no longer exists (UID unknown) only events from the operation's
creation on are kept.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from dops.cli.ops import _about

CREATED = dt.datetime(2026, 1, 1, 12, 0, 0, tzinfo=dt.UTC)


def event(uid: str | None, when: str) -> dict[str, Any]:
    involved: dict[str, Any] = {"kind": "Job", "name": "op-1"}
    if uid is not None:
        involved["uid"] = uid
    return {"involvedObject": involved, "lastTimestamp": when}


@pytest.mark.parametrize(
    ("uid", "event_uid", "when", "kept"),
    [
        ("uid-new", "uid-new", "2026-01-01T12:00:05Z", True),
        ("uid-new", "uid-old", "2026-01-01T12:00:05Z", False),  # the predecessor's, even if later
        ("uid-new", None, "2026-01-01T11:00:00Z", True),  # no UID recorded: cannot tell, kept
        (None, "uid-old", "2026-01-01T11:59:59Z", False),  # object gone: before the operation existed
        (None, "uid-any", "2026-01-01T12:00:00Z", True),  # object gone: from the operation's creation on
    ],
)
def test_events_are_matched_by_uid(uid: str | None, event_uid: str | None, when: str, kept: bool) -> None:
    assert _about(event(event_uid, when), uid, CREATED) is kept
