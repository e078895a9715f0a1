"""Fixtures for the service tests: one embedded API server per module with the dops CRDs loaded from crds/,
and a fresh namespace (hence an empty store) per test, so modules share the server start-up cost."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from dops import DelegatedOperationService
from dops.emulator import EmbeddedServer, ServerSettings
from dops.emulator.bootstrap import apply_manifest_paths
from dops.k8s import DelegatedOperationRepository, KubeClient, load_config

REPO = Path(__file__).resolve().parent.parent.parent


@pytest.fixture(scope="module")
def dops_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedServer]:
    """An embedded API server with crds/ applied (as the emulator loads them: straight into the store)."""
    with EmbeddedServer.run_in_thread(ServerSettings(history_size=50_000)) as server:
        server.call(lambda: apply_manifest_paths(server.api, [REPO / "crds"]))
        kubeconfig = server.write_kubeconfig(tmp_path_factory.mktemp("kube") / "kubeconfig")
        server.kubeconfig = kubeconfig  # type: ignore[attr-defined]
        yield server


@pytest.fixture(scope="module")
def kube(dops_server: EmbeddedServer) -> Iterator[KubeClient]:
    client = KubeClient(load_config(dops_server.kubeconfig))  # type: ignore[attr-defined]
    yield client
    client.close()


@pytest.fixture
def namespace(kube: KubeClient) -> str:
    name = f"t-{uuid.uuid4().hex[:10]}"
    kube.request(
        "POST", "/api/v1/namespaces", body={"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}
    )
    return name


@pytest.fixture
def repo(kube: KubeClient) -> DelegatedOperationRepository:
    return DelegatedOperationRepository(kube)


@pytest.fixture
def service(repo: DelegatedOperationRepository, namespace: str) -> DelegatedOperationService:
    return DelegatedOperationService(repo, namespace=namespace)
