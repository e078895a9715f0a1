"""dops.k8s against the embedded control plane: configuration, the repository, and error mapping.

Aspects covered:
- load_config: an explicit kubeconfig (and its context's namespace), KUBECONFIG with a `:`-separated list,
  a missing file → ConfigurationError, the in-cluster service account (token, namespace, CA) for pykube-ng and
  for the official client; the official `kubernetes` client built from the same configuration works.
- DelegatedOperationRepository: create, get, list with label and field selectors, limit/continue paging
  (remainingItemCount only without selectors, as kube-apiserver reports it),
  merge and JSON patches on the object and on /status (metadata changes through /status are ignored, as
  in Kubernetes), delete returning the object, delete-collection by selector, count (remainingItemCount
  without selectors, Table rows with them).
- errors from real responses: NotFound (404), AlreadyExists (409), Invalid with field causes (422), a failed
  JSON Patch `test` (422 without field causes), BadRequest for an unknown field selector (400).
"""

from __future__ import annotations

import logging
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import kubernetes
import pytest

from dops.emulator import EmbeddedServer
from dops.k8s import (
    AlreadyExists,
    BadRequest,
    ConfigurationError,
    DelegatedOperationRepository,
    Invalid,
    KubeClient,
    NotFound,
    load_config,
)
from dops.k8s.config import API_CLIENT_POOL_SIZE
from tests.op_builders import operation


def test_load_config_from_kubeconfig(
    dops_server: EmbeddedServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = dops_server.write_kubeconfig(tmp_path / "kc", namespace="team-a")
    config = load_config(path)
    assert config.namespace == "team-a" and config.server == dops_server.url and config.source == f"kubeconfig:{path}"
    monkeypatch.setenv("KUBECONFIG", os.pathsep.join([str(tmp_path / "missing"), str(path)]))
    assert load_config(in_cluster=False).kubeconfig_path == path
    with pytest.raises(ConfigurationError, match="does not exist"):
        load_config(tmp_path / "nope")
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "missing"))
    with pytest.raises(ConfigurationError, match="no kubeconfig file found"):
        load_config(in_cluster=False)


def test_official_client_from_the_same_config(dops_server: EmbeddedServer, tmp_path: Path) -> None:
    config = load_config(dops_server.write_kubeconfig(tmp_path / "kc"))
    try:
        core = kubernetes.client.CoreV1Api(config.api_client())
        names = {ns.metadata.name for ns in core.list_namespace().items}
        assert {"default", "kube-system"} <= names
    finally:
        config.close()


def test_the_official_client_keeps_a_connection_per_io_thread(
    dops_server: EmbeddedServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The operator sends from 16 I/O threads; the official client's default pool (5 per CPU) discarded the
    connections over its size after each burst ("Connection pool is full") and opened new ones next time."""
    config = load_config(dops_server.write_kubeconfig(tmp_path / "kc"))
    try:
        core = kubernetes.client.CoreV1Api(config.api_client())
        assert core.api_client.configuration.connection_pool_maxsize == API_CLIENT_POOL_SIZE
        barrier = threading.Barrier(24)

        def list_together(_: int) -> int:
            barrier.wait(timeout=30)  # every thread holds a connection at once
            return len(core.list_namespace().items)

        with caplog.at_level(logging.WARNING, logger="urllib3.connectionpool"), ThreadPoolExecutor(24) as pool:
            assert all(n >= 2 for n in pool.map(list_together, range(24)))
        assert [r.getMessage() for r in caplog.records if "pool is full" in r.getMessage()] == []
    finally:
        config.close()


def test_in_cluster_configuration(dops_server: EmbeddedServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    account = tmp_path / "serviceaccount"
    account.mkdir()
    (account / "token").write_text("not-a-real-token")
    (account / "namespace").write_text("operators\n")
    (account / "ca.crt").write_text("-----BEGIN CERTIFICATE-----\nnot a real certificate\n-----END CERTIFICATE-----\n")
    host, port = dops_server.url.removeprefix("http://").split(":")
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", host)
    monkeypatch.setenv("KUBERNETES_SERVICE_PORT", port)
    config = load_config(service_account_dir=account)  # auto-detected: the env and the token exist
    assert config.source == "in-cluster" and config.namespace == "operators"
    assert config.server == f"https://{host}:{port}"  # in-cluster always speaks TLS
    client = config.api_client()
    assert client.configuration.host == f"https://{host}:{port}"
    assert client.configuration.api_key["BearerToken"] == "bearer not-a-real-token"
    config.close()
    (account / "ca.crt").write_text("")
    with pytest.raises(ConfigurationError, match="cannot configure the kubernetes client"):
        load_config(service_account_dir=account).api_client()
    with pytest.raises(ConfigurationError, match="service account"):
        load_config(in_cluster=True, service_account_dir=tmp_path / "absent")


def test_in_cluster_directory_from_the_environment(
    dops_server: EmbeddedServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A node that cannot mount the well-known path (the process node agent) names the pod's directory in
    $DOPS_SERVICE_ACCOUNT_DIR; a plain `load_config()` in the pod then finds it."""
    account = tmp_path / "pod-sa"
    account.mkdir()
    (account / "token").write_text("pod-token")
    (account / "namespace").write_text("team-b\n")
    (account / "ca.crt").write_text("")
    host, port = dops_server.url.removeprefix("http://").split(":")
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", host)
    monkeypatch.setenv("KUBERNETES_SERVICE_PORT", port)
    monkeypatch.delenv("KUBECONFIG", raising=False)
    monkeypatch.setenv("DOPS_SERVICE_ACCOUNT_DIR", str(account))
    config = load_config()
    assert config.source == "in-cluster" and config.namespace == "team-b"
    assert config.service_account_dir == account
    monkeypatch.setenv("DOPS_SERVICE_ACCOUNT_DIR", str(tmp_path / "elsewhere"))  # no token there: not in a pod
    monkeypatch.setenv("HOME", str(tmp_path))
    with pytest.raises(ConfigurationError, match="kubeconfig"):
        load_config()


def test_repository_round_trip(repo: DelegatedOperationRepository, namespace: str) -> None:
    for i in range(5):
        body = operation(f"op-{i}", namespace).labels(team="a" if i % 2 else "b").params(i=i).build()
        created = repo.create(namespace, body)
        assert created["metadata"]["uid"] and created["spec"]["rerunnable"] is True  # CRD defaults applied
    assert repo.get(namespace, "op-3")["spec"]["context"] == {"params": {"i": 3}}
    assert [o["metadata"]["name"] for o in repo.list(namespace, label_selector="team=a").items] == ["op-1", "op-3"]

    first = repo.list(namespace, limit=2)
    assert len(first.items) == 2 and first.continue_token and first.remaining == 3
    selected = repo.list(namespace, label_selector="team=b", limit=1)
    assert selected.continue_token and selected.remaining is None  # Kubernetes omits it with selectors
    rest = list(repo.iterate(namespace, page_size=2))
    assert [o["metadata"]["name"] for o in rest] == [f"op-{i}" for i in range(5)]

    patched = repo.patch(namespace, "op-0", {"spec": {"label": "L"}, "metadata": {"labels": {"x": "y"}}})
    assert patched["spec"]["label"] == "L" and patched["metadata"]["labels"]["x"] == "y"
    status = repo.patch_status(
        namespace, "op-0", {"status": {"runState": "queued"}, "metadata": {"labels": {"z": "1"}}}
    )
    assert status["status"]["runState"] == "queued" and "z" not in status["metadata"]["labels"]
    json_patched = repo.patch_status(
        namespace,
        "op-0",
        [
            {"op": "test", "path": "/status/runState", "value": "queued"},
            {"op": "add", "path": "/status/runState", "value": "running"},
        ],
        json_patch=True,
    )
    assert json_patched["status"]["runState"] == "running"
    assert [o["metadata"]["name"] for o in repo.list(namespace, field_selector="status.runState=running").items] == [
        "op-0"
    ]

    assert repo.count(namespace) == 5
    assert repo.count(namespace, label_selector="team=b") == 3
    assert repo.count(namespace, field_selector="status.runState=running", page_size=1) == 1

    deleted = repo.delete(namespace, "op-4")  # gone at once: kube-apiserver answers a Status, not the object
    assert deleted["kind"] == "Status" and deleted["details"]["name"] == "op-4"
    repo.delete_collection(namespace, label_selector="team=b")
    assert [o["metadata"]["name"] for o in repo.list(namespace).items] == ["op-1", "op-3"]


def test_errors_from_real_responses(repo: DelegatedOperationRepository, namespace: str) -> None:
    with pytest.raises(NotFound) as missing:
        repo.get(namespace, "nope")
    assert missing.value.code == 404 and missing.value.status["reason"] == "NotFound"
    repo.create(namespace, operation("dup", namespace).build())
    with pytest.raises(AlreadyExists):
        repo.create(namespace, operation("dup", namespace).build())
    with pytest.raises(Invalid) as invalid:
        repo.create(namespace, operation("no-operator", namespace).operator(None).build())
    assert invalid.value.field_causes and not invalid.value.is_patch_test_failure
    repo.patch_status(namespace, "dup", {"status": {"runState": "queued"}})
    with pytest.raises(Invalid) as lost:
        repo.patch_status(
            namespace, "dup", [{"op": "test", "path": "/status/runState", "value": "running"}], json_patch=True
        )
    assert lost.value.is_patch_test_failure
    with pytest.raises(BadRequest, match="field label not supported"):
        repo.list(namespace, field_selector="spec.label=x")


def test_client_reuses_sessions_per_thread(dops_server: EmbeddedServer) -> None:
    import threading

    client = KubeClient(load_config(dops_server.kubeconfig))  # type: ignore[attr-defined]
    seen: list[object] = []  # the sessions themselves: ids of collected ones could be reused

    def use() -> None:
        client.request("GET", "/version")
        seen.append(client._http())

    threads = [threading.Thread(target=use) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    use()
    use()
    assert len({id(s) for s in seen}) == 4 and seen[-1] is seen[-2]
    client.close()
