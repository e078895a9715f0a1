"""The operator's cycle-collector thresholds (dops.handlers.runner.tune_garbage_collector): set from CPython's
defaults, never over thresholds the embedding process chose itself."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from dops.handlers.runner import DEFAULT_GC_THRESHOLDS, OPERATOR_GC_THRESHOLDS, tune_garbage_collector


@pytest.fixture
def thresholds() -> Iterator[None]:
    saved = gc.get_threshold()
    yield
    gc.set_threshold(*saved)


@pytest.mark.usefixtures("thresholds")
@pytest.mark.parametrize(
    ("before", "after"),
    [
        (DEFAULT_GC_THRESHOLDS, OPERATOR_GC_THRESHOLDS),
        (OPERATOR_GC_THRESHOLDS, OPERATOR_GC_THRESHOLDS),  # a second operator in the process: unchanged
        ((2000, 5, 5), (2000, 5, 5)),  # the embedder's own choice is kept
    ],
    ids=["defaults", "already-tuned", "embedder-chose"],
)
def test_the_operator_tunes_only_the_default_thresholds(
    before: tuple[int, int, int], after: tuple[int, int, int]
) -> None:
    gc.set_threshold(*before)
    tune_garbage_collector()
    assert gc.get_threshold() == after
