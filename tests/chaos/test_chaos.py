"""The chaos suite as a test (issue 11): one bounded run on the embedded control plane, in `make test`.

It prints the configuration (with the seed that replays it) and the figures in one line, and fails
listing every operation that breaks an invariant (see `tests/chaos/run.py` for what is asserted and why).
Sizes come from DOPS_CHAOS_* (defaults: 300 operations, 90 s of chaos); `make chaos` runs it alone.
"""

from __future__ import annotations

import os

import pytest

from tests.chaos.run import ChaosConfig, run_and_check


@pytest.mark.slow
def test_chaos_never_stuck_never_twice() -> None:
    """Under operator kills, pod/Job deletions, API errors, watch expiry, cancels and re-queues: every
    operation terminal, never two active Jobs, no undeserved failure, reasons and results, the cap held."""
    run_and_check(ChaosConfig.from_env(os.environ))
