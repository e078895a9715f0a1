"""The safety net outlives API errors (issue 11: never stuck), without a cluster: the `Reconciler` with a
scripted gateway.

The safety-net task re-queues every unfinished operation each interval; it is what retries a reconcile the
work queue gave up on. Its first pass checks, one GET each, whether the objects of the start-up listing
that no watch event has shown since still exist. An API error on one of those GETs used to end the task for
good (nothing restarted it: the operation whose reconcile had given up then stayed stuck). Now that object
is skipped with a WARNING and the others are still checked.
"""

from __future__ import annotations

import asyncio

from dops.k8s import ApiUnavailable
from tests.unit.test_reconcile_ghosts import ScriptedGateway, reconciler
from tests.workload_builders import operation


class FlakyGateway(ScriptedGateway):
    """Existence checks: `missing` are gone, `failing` answer with an API error, the rest exist."""

    def __init__(self) -> None:
        super().__init__()
        self.missing: set[str] = set()
        self.failing: set[str] = set()

    def exists(self, kind: str, namespace: str, name: str) -> bool:
        if name in self.failing:
            raise ApiUnavailable("cannot reach the API server: read timed out", method="GET", path=name)
        return name not in self.missing


def test_an_api_error_while_verifying_the_start_up_listing_is_not_fatal() -> None:
    gateway = FlakyGateway()
    gateway.failing = {"unsure"}
    gateway.missing = {"deleted"}
    r, _ = reconciler(gateway)
    for name in ("unsure", "deleted", "kept"):
        r.prime("op", [operation(name, state="queued", job=None, attempt=None, uid=f"uid-{name}")])
    asyncio.run(r._verify_unconfirmed())
    assert sorted(k[1] for k in r.cache.ops) == ["kept", "unsure"]  # the gone one dropped despite the error


def test_without_errors_every_unconfirmed_object_is_checked() -> None:
    """The twin: all answered, only the deleted one is dropped."""
    gateway = FlakyGateway()
    gateway.missing = {"deleted"}
    r, _ = reconciler(gateway)
    for name in ("deleted", "kept"):
        r.prime("op", [operation(name, state="queued", job=None, attempt=None, uid=f"uid-{name}")])
    asyncio.run(r._verify_unconfirmed())
    assert sorted(k[1] for k in r.cache.ops) == ["kept"]
