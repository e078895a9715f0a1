"""dops on the real control plane with the process node agent: the e2e scenario (tests/e2e/scenario.py) without
Docker. Issue 10, "End to end on the real control plane".

Part of the default run (`make test`): it needs the control plane's binaries (built by `make k8s` when Go is on
PATH; without either it skips with the reason) and kubectl and helm (`make clients`). The cluster is the session's
own (tests/e2e/realplane.py: its own etcd, API server, controller manager, scheduler and node agent, all stopped at
the end whatever happened), so the chart's cluster-wide objects never meet the shared `real_cluster`. On this plane
the "image" `dops:e2e` is a rule of the node agent's image map that runs this checkout's dops.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.e2e.common import E2ECluster
from tests.e2e.realplane import RealPlaneCluster
from tests.e2e.scenario import E2EScenario


@pytest.fixture(scope="module")
def e2e_cluster(realplane_cluster: RealPlaneCluster) -> E2ECluster:
    """The real control plane and node agent with `dops:e2e` loaded (tests/e2e/conftest.py)."""
    return realplane_cluster


class TestRealPlane(E2EScenario):
    """The scenario on the real control plane + node agent."""

    def test_the_log_archive_is_the_claims_volume(
        self, realplane_cluster: RealPlaneCluster, examples: dict[str, dict[str, Any]]
    ) -> None:
        """The operator archived into the hostPath of the PV its PVC bound to (the entrypoint's mount), where the
        status' logPath points: on this node the chart's /var/lib/dops/logs is that directory."""
        volume = realplane_cluster.volume_dir.resolve()
        for name, operation in examples.items():
            path = Path(operation["status"]["logPath"])
            assert path.is_relative_to(volume), (name, path, volume)
            assert path.is_file() and path.stat().st_size == operation["status"]["logSize"], (name, path)
