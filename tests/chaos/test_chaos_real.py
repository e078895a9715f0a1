"""The chaos suite on the real control plane (issue 11: "runs on the embedded control plane in `make test`, and
on the real control plane when that exists"): upstream kube-apiserver, etcd, controller manager and scheduler,
one node agent, two operators with leader election.

Smaller than the embedded run (each operation costs the real Job controller and scheduler more, and this runs
beside the other real-plane tests): REAL_OPERATIONS operations over REAL_CHAOS_SECONDS of faults unless the
DOPS_CHAOS_* variables say otherwise. The faults include kube-apiserver restarts and etcd stalls, which only a
real control plane has; the invariants are those of tests/chaos/run.py. `make chaos-real` runs it alone; `make
test` runs it in one of its embedded processes (it starts a control plane of its own).

Its first finding, fixed since: an operator that started while the kube-apiserver restarted found no dops.io
resources in discovery, and Kopf never watched them (tests/integration/test_operator_discovery.py).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.chaos.run import ChaosConfig, run_and_check

REAL_OPERATIONS = 120
REAL_CHAOS_SECONDS = 60.0
REAL_QUIESCE_SECONDS = 120.0  # the Job controller and the start deadlines after a late apiserver restart


@pytest.mark.slow
def test_chaos_on_the_real_control_plane(real_binaries: Path) -> None:
    """Under operator kills, kube-apiserver restarts, etcd stalls, pod/Job/operation deletions, cancels and
    re-queues on a real control plane: every operation terminal, never two active Jobs, no undeserved failure,
    reasons and results, the cap held."""
    sizes = {
        "operations": None if os.environ.get("DOPS_CHAOS_OPS") else REAL_OPERATIONS,
        "chaos_seconds": None if os.environ.get("DOPS_CHAOS_SECONDS") else REAL_CHAOS_SECONDS,
        "quiesce_seconds": None if os.environ.get("DOPS_CHAOS_QUIESCE_SECONDS") else REAL_QUIESCE_SECONDS,
    }
    report = run_and_check(ChaosConfig.from_env(os.environ, plane="real", **sizes))
    assert any(fault.kind == "apiserver-restart" for fault in report.faults), "the kube-apiserver was never restarted"
