"""dops on a kind cluster: the e2e scenario (tests/e2e/scenario.py) against kind. Issue 6, kind e2e.

Opt-in (`make e2e`; skipped with the reason otherwise, see tests/e2e/conftest.py). One kind cluster per session
with the locally built `dops:e2e` image loaded (`docker build` + `kind load`); the same scenario runs on the real
control plane with the node agent in tests/e2e/test_realplane.py.
"""

from __future__ import annotations

import pytest

from tests.e2e.common import E2ECluster
from tests.e2e.kind import KindCluster
from tests.e2e.scenario import E2EScenario

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def e2e_cluster(kind_cluster: KindCluster, dops_image: str) -> E2ECluster:
    """The session's kind cluster, with `dops:e2e` built and loaded."""
    return kind_cluster


class TestKind(E2EScenario):
    """The scenario on kind."""
