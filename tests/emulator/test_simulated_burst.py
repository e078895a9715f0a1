"""Simulated kubelet at scale (issue: "2,000 Jobs created in a burst all reach Complete").

Aspects: a burst of Jobs through the whole runtime — Job controller creates pods, the kubelet
(simulated mode, no processes) drives them to Succeeded, the controller counts them and marks
each Job Complete — with nothing lost or left behind. Throughput is measured by
`python -m dops.emulator.bench_jobs`, not here.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from dops.emulator import EmbeddedServer, ServerSettings
from dops.emulator.apiserver import WriteOptions
from tests.builders import job
from tests.helpers import eventually

BURST = 2000


@pytest.fixture
def runtime() -> Iterator[EmbeddedServer]:
    settings = ServerSettings(
        controllers=("namespace", "gc", "job", "kubelet"),
        controller_options={"kubelet": {"image_map": {"bench/sim:*": "simulated"}}},
    )
    with EmbeddedServer.run_in_thread(settings) as server:
        yield server


def test_burst_of_simulated_jobs_all_complete(runtime: EmbeddedServer) -> None:
    api = runtime.api
    jobs = api.type_for("batch", "v1", "jobs")
    pods = api.type_for("", "v1", "pods")

    def create_all() -> None:
        for index in range(BURST):
            api.create(jobs, "default", job(f"burst-{index}", image="bench/sim:1", command=["true"]), WriteOptions())

    runtime.call(create_all)

    def complete_count() -> int:
        def count() -> int:
            items = api.list_objects(jobs, "default").items
            return sum(
                1
                for item in items
                if any(
                    c["type"] == "Complete" and c["status"] == "True"
                    for c in (item.get("status") or {}).get("conditions") or []
                )
            )

        return int(runtime.call(count))

    eventually(complete_count, lambda n: n == BURST, timeout=120, interval=0.5, describe=f"{BURST} Jobs Complete")

    def summary() -> tuple[int, int, int]:
        items = api.list_objects(pods, "default").items
        succeeded = sum(1 for p in items if (p.get("status") or {}).get("phase") == "Succeeded")
        tracked = sum(1 for p in items if "batch.kubernetes.io/job-tracking" in (p["metadata"].get("finalizers") or []))
        return len(items), succeeded, tracked

    total, succeeded, tracked = runtime.call(summary)
    assert (total, succeeded) == (BURST, BURST), "exactly one pod per Job, all Succeeded"
    assert tracked == 0, "every pod was counted and lost its job-tracking finalizer"
