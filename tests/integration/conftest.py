"""Fixtures for the service tests: one API server per module with the dops CRDs from crds/, and a fresh
namespace (hence an empty store) per test, so modules share the server start-up cost.

In a module marked `both_planes`, `dops_plane` is the embedded control plane for one half of the tests
and the real upstream one for the other: there the CRDs are created through the API, so the real
apiserver's structural-schema checks and CEL cost estimator judge them. Tests that name `dops_server`
use the embedded server's hooks (faults, access log) and run on the embedded plane only.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from dops import DelegatedOperationService
from dops.emulator import EmbeddedServer, ServerSettings
from dops.emulator.bootstrap import apply_manifest_paths
from dops.k8s import DelegatedOperationRepository, KubeClient, load_config
from tests.planes import EmbeddedPlane, Plane, with_dops_crds

REPO = Path(__file__).resolve().parent.parent.parent


@pytest.fixture(scope="module")
def dops_plane(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Plane]:
    """A control plane with the dops CRDs installed, shared by the module's tests."""
    if getattr(request, "param", "embedded") == "real":
        with with_dops_crds(request.getfixturevalue("real_plane")) as real:
            yield real
        return
    with EmbeddedServer.run_in_thread(ServerSettings(history_size=50_000)) as server:
        # As `dops dev` loads them: straight into the store.
        server.call(lambda: apply_manifest_paths(server.api, [REPO / "crds"]))
        kubeconfig = server.write_kubeconfig(tmp_path_factory.mktemp("kube") / "kubeconfig")
        server.kubeconfig = kubeconfig  # type: ignore[attr-defined]
        yield EmbeddedPlane(server, kubeconfig)


@pytest.fixture(scope="module")
def dops_server(dops_plane: Plane) -> EmbeddedServer:
    """The embedded API server (its fault hooks and access log); tests naming it run on the embedded plane only."""
    assert isinstance(dops_plane, EmbeddedPlane), "tests naming `dops_server` run on the embedded control plane only"
    return dops_plane.server


@pytest.fixture(scope="module")
def kube(dops_plane: Plane) -> Iterator[KubeClient]:
    client = KubeClient(load_config(dops_plane.kubeconfig))
    yield client
    client.close()


@pytest.fixture
def namespace(kube: KubeClient, dops_plane: Plane) -> Iterator[str]:
    name = f"t-{uuid.uuid4().hex[:10]}"
    kube.request(
        "POST", "/api/v1/namespaces", body={"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}
    )
    yield name
    if dops_plane.real:  # the shared real cluster keeps what is not deleted; an embedded server dies with its module
        kube.request("DELETE", f"/api/v1/namespaces/{name}")


@pytest.fixture
def repo(kube: KubeClient) -> DelegatedOperationRepository:
    return DelegatedOperationRepository(kube)


@pytest.fixture
def service(repo: DelegatedOperationRepository, namespace: str) -> DelegatedOperationService:
    return DelegatedOperationService(repo, namespace=namespace)
