"""Fixtures of the kind end-to-end suite.

Tests marked `@pytest.mark.e2e` run only when pytest gets `--run-e2e` (defined in tests/conftest.py; `make e2e`
passes it) AND Docker, kind, kubectl and helm are usable (tests/e2e/kind.detect). Otherwise they are skipped with
the precise reason, which `-ra` prints in the summary. With `--run-e2e` and DOPS_E2E_REQUIRED=1 (CI), a missing
tool aborts the run instead: a CI job must not pass by skipping everything.

Session fixtures: `kind_cluster` creates one uniquely named cluster (kubeconfig under the session's tmp dir, never
~/.kube/config) and always deletes it, also when creation or a test fails (after `kind export logs` into
DOPS_E2E_ARTIFACTS when a test failed); `dops_image` builds `dops:e2e` from the repository's Dockerfile and loads it
into the cluster.

The real-plane run of the same scenario (tests/e2e/test_realplane.py) is not marked e2e: it runs by default wherever
the real control plane can (`realplane_cluster`: skipped with the reason when neither Go nor the built binaries
are there, or kubectl/helm are missing; DOPS_TEST_PLANES=embedded or --planes embedded skips it too).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.common import IMAGE
from tests.e2e.kind import (
    ARTIFACTS_ENV,
    NODE_IMAGE_ENV,
    OPT_IN_REASON,
    Availability,
    KindCluster,
    Tools,
    cluster_name,
    detect,
    required,
)
from tests.e2e.realplane import RealPlaneCluster, control_plane_binaries, find_clients

_AVAILABILITY = pytest.StashKey[Availability]()


def _availability(config: pytest.Config) -> Availability:
    """Detect once per session (it runs `docker info`)."""
    if _AVAILABILITY not in config.stash:
        config.stash[_AVAILABILITY] = detect()
    return config.stash[_AVAILABILITY]


def e2e_skip_reason(config: pytest.Config) -> str | None:
    """Why e2e tests cannot run in this session, or None when they can."""
    if not config.getoption("--run-e2e"):
        return OPT_IN_REASON
    availability = _availability(config)
    return None if availability.usable else availability.reason


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    e2e_items = [item for item in items if item.get_closest_marker("e2e")]
    if not e2e_items:
        return
    reason = e2e_skip_reason(config)
    if reason is None:
        return
    if config.getoption("--run-e2e") and required():
        raise pytest.UsageError(f"{reason} (DOPS_E2E_REQUIRED is set, so this is an error, not a skip)")
    for item in e2e_items:
        item.add_marker(pytest.mark.skip(reason=reason))


@pytest.fixture(scope="session")
def e2e_tools(pytestconfig: pytest.Config) -> Tools:
    availability = _availability(pytestconfig)
    if availability.tools is None:  # only reachable if a non-e2e test asks for the fixture
        pytest.skip(availability.reason)
    return availability.tools


@pytest.fixture(scope="session")
def kind_cluster(
    e2e_tools: Tools, tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> Iterator[KindCluster]:
    """A fresh kind cluster for the session; deleted afterwards whatever happened."""
    cluster = KindCluster(
        name=cluster_name(),
        tools=e2e_tools,
        workdir=tmp_path_factory.mktemp("kind"),
        node_image=os.environ.get(NODE_IMAGE_ENV) or None,
    )
    print(f"\n› creating kind cluster {cluster.name} (kubeconfig {cluster.kubeconfig})", file=sys.stderr)
    try:
        cluster.create()
        yield cluster
    finally:
        if request.session.testsfailed:
            artifacts = Path(os.environ.get(ARTIFACTS_ENV) or cluster.workdir / "logs")
            print(f"› tests failed: exporting kind logs to {artifacts}", file=sys.stderr)
            cluster.export_logs(artifacts / cluster.name)
        print(f"› deleting kind cluster {cluster.name}", file=sys.stderr)
        cluster.delete()


@pytest.fixture(scope="session")
def dops_image(kind_cluster: KindCluster) -> str:
    """`docker build -t dops:e2e .` and `kind load docker-image dops:e2e` into the session's cluster."""
    kind_cluster.build_and_load_image(IMAGE)
    return IMAGE


@pytest.fixture(scope="module")
def realplane_cluster(
    tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> Iterator[RealPlaneCluster]:
    """The real control plane + node agent with `dops:e2e` loaded, for the module (so that nothing of it idles
    through the rest of the session); stopped whatever happened."""
    from tests.conftest import real_plane_unavailable

    reason = real_plane_unavailable()
    if reason is None and request.config.getoption("--planes") == "embedded":
        reason = "--planes embedded"
    if reason:
        pytest.skip(f"real-plane e2e skipped: {reason}")
    clients, problem = find_clients()
    if clients is None:
        pytest.skip(f"real-plane e2e skipped: {problem}")
    workdir = tmp_path_factory.mktemp("realplane")
    cluster = RealPlaneCluster(name="realplane", tools=clients, workdir=workdir, bin_dir=control_plane_binaries())
    print(f"\n› starting the real control plane and node agent (kubeconfig {cluster.kubeconfig})", file=sys.stderr)
    try:
        cluster.create()
        cluster.load_image(IMAGE)
        yield cluster
    finally:
        if request.session.testsfailed:
            artifacts = Path(os.environ.get(ARTIFACTS_ENV) or workdir / "logs")
            print(f"› tests failed: the real plane's logs are in {artifacts}", file=sys.stderr)
            cluster.export_logs(artifacts / "realplane")
        cluster.delete()
