"""The differential suite: FiftyOne's real `DelegatedOperationService` (1.22, mongomock for MongoDB) against
dops' service on the embedded control plane, and against FiftyOne's service over the dops bridge, on the same
call sequences (tests/fiftyone/differential.py: every public method, filters, paging, sorting, search,
timestamps, errors, races and execution).

Each scenario's normalised result must be FiftyOne's, except the differences listed in KNOWN_DOPS /
KNOWN_BRIDGE, each documented in docs/fiftyone-compat.md (the phrase given must appear there). A listed
scenario must still differ: a difference that disappears, like a new one, fails the suite, so the tables
and the documentation stay exact.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from bson import ObjectId

from tests.fiftyone.differential import SCENARIOS, Run

COMPAT = Path(__file__).resolve().parents[2] / "docs" / "fiftyone-compat.md"

# Differences of FiftyOne's service over the bridge from it over MongoDB: scenario -> the phrase of
# docs/fiftyone-compat.md that documents it. Every one is a difference of dops' service as well.
KNOWN_BRIDGE: dict[str, str] = {
    "count_without_arguments": "`count()` without arguments counts every operation",
    "list_unknown_sort_field": "an unknown sort field raises ValueError",
    "progress_on_a_missing_id": "raise `AttributeError` by accident",
    "updates_on_a_missing_id": "raise `AttributeError` by accident",
    "progress_out_of_range": "**Progress is validated**",
    "queue_context_without_request_params": "raises ValueError instead of being stored as empty",
    "queue_without_context": "stores an empty request",
    "delete_for_no_dataset": '`delete_for_dataset(None)` / `("")` raises ValueError',
    # The reference runs on mongomock, which accepts what MongoDB and pymongo refuse (see "The reference").
    "list_bad_sort_direction": "mongomock sorts with any direction",
    "list_negative_skip": "mongomock accepts a negative skip",
}
# Differences of dops' own service: the bridge's, plus what the bridge converts back to FiftyOne's form.
KNOWN_DOPS: dict[str, str] = {
    **KNOWN_BRIDGE,
    "timestamps_are_naive_utc": "Timestamps are **timezone-aware UTC**",
}


def outcome(service: Any, missing_id: Any, name: str) -> Any:
    return SCENARIOS[name](Run(service, missing_id))


@pytest.fixture(scope="module")
def reference() -> dict[str, Any]:
    """FiftyOne's answers, computed once per scenario (each on a fresh collection)."""
    return {}


def fiftyone_outcome(reference: dict[str, Any], request: pytest.FixtureRequest, name: str) -> Any:
    if name not in reference:
        reference[name] = outcome(request.getfixturevalue("fiftyone_service"), ObjectId(), name)
    return reference[name]


def check(name: str, got: Any, expected: Any, known: dict[str, str]) -> None:
    if name in known:
        assert known[name] in COMPAT.read_text(), f"{name}: the documented reason is missing from {COMPAT.name}"
        assert got != expected, f"{name} no longer differs from FiftyOne: remove it from the table and the docs"
    else:
        assert got == expected


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_dops_service_matches_fiftyone(
    name: str, dops_service: Any, reference: dict[str, Any], request: pytest.FixtureRequest
) -> None:
    check(name, outcome(dops_service, "dop-missing", name), fiftyone_outcome(reference, request, name), KNOWN_DOPS)


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_fiftyone_over_the_bridge_matches_fiftyone(
    name: str, bridge_service: Any, reference: dict[str, Any], request: pytest.FixtureRequest
) -> None:
    check(name, outcome(bridge_service, "dop-missing", name), fiftyone_outcome(reference, request, name), KNOWN_BRIDGE)
