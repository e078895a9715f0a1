"""The node agent's pure parts: kubeconfig loading, the image-map flags, token refresh times, projected
volumes (against a fake API client), and the watchdog that outlives an agent killed with -9."""

from __future__ import annotations

import asyncio
import base64
import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from dops.emulator.node.__main__ import kubelet_options, parse_args
from dops.emulator.node.agent import Watchdog, _normalised
from dops.emulator.node.client import ApiError, Credentials, KubeconfigError, load_kubeconfig
from dops.emulator.node.volumes import SERVICE_ACCOUNT_MOUNT, PodVolumes, VolumeError, refresh_deadline

JSON = dict[str, Any]


def _kubeconfig(path: Path, user: JSON, cluster: JSON | None = None) -> Path:
    document = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "c", "cluster": cluster or {"server": "https://127.0.0.1:6443/"}}],
        "users": [{"name": "u", "user": user}],
        "contexts": [{"name": "ctx", "context": {"cluster": "c", "user": "u"}}],
        "current-context": "ctx",
    }
    path.write_text(yaml.safe_dump(document))
    return path


def test_inline_credentials_become_private_files(tmp_path: Path) -> None:
    cluster = {"server": "https://127.0.0.1:6443/", "certificate-authority-data": base64.b64encode(b"CA").decode()}
    user = {
        "client-certificate-data": base64.b64encode(b"CERT").decode(),
        "client-key-data": base64.b64encode(b"KEY").decode(),
    }
    credentials = load_kubeconfig(_kubeconfig(tmp_path / "k", user, cluster), tmp_path / "secrets")
    assert credentials.server == "https://127.0.0.1:6443"
    assert credentials.host_port == ("127.0.0.1", 6443)
    assert Path(credentials.key_file or "").read_bytes() == b"KEY"
    assert Path(credentials.key_file or "").stat().st_mode & 0o777 == 0o600
    assert credentials.ca_bytes() == b"CA"


def test_token_and_relative_file_paths(tmp_path: Path) -> None:
    (tmp_path / "ca.pem").write_text("CA")
    cluster = {"server": "http://localhost", "certificate-authority": "ca.pem"}
    credentials = load_kubeconfig(_kubeconfig(tmp_path / "k", {"token": "t"}, cluster), tmp_path / "s")
    assert credentials.token == "t"
    assert credentials.ca_file == str(tmp_path / "ca.pem")
    assert credentials.host_port == ("localhost", 80)
    assert credentials.ssl_context() is False  # plain HTTP (the embedded API server)


def test_a_kubeconfig_without_the_context_is_one_clear_error(tmp_path: Path) -> None:
    path = _kubeconfig(tmp_path / "k", {"token": "t"})
    with pytest.raises(KubeconfigError, match='context "nope" not found'):
        load_kubeconfig(path, tmp_path / "s", context="nope")


def test_image_map_flags_and_config_file_merge(tmp_path: Path) -> None:
    config = tmp_path / "kubelet.yaml"
    config.write_text(yaml.safe_dump({"image_map": {"python:*": {"mode": "process", "command": ["python3"]}}}))
    args = parse_args(
        ["--kubeconfig", "k", "--name", "n", "--config", str(config), "--image-map", "ghcr.io/acme/*=simulated"]
    )
    options = kubelet_options(args)
    rules = options.image_rules()
    assert rules.resolve("python:3.12").command == ("python3",)
    assert rules.resolve("ghcr.io/acme/worker:1").mode == "simulated"
    assert rules.resolve("busybox").mode == "missing"
    assert options.node_name == "n" and options.schedule is False
    with pytest.raises(ValueError, match="PATTERN=MODE"):
        kubelet_options(parse_args(["--kubeconfig", "k", "--name", "n", "--image-map", "x=run"]))


def test_tokens_are_refreshed_at_80_percent_of_their_life_or_max_age() -> None:
    issued = 1000.0
    year = issued + 365 * 86400  # --service-account-extend-token-expiration grants a year for 3607 s
    assert refresh_deadline(issued, 3607, year, 86400) == pytest.approx(issued + 0.8 * 3607)
    assert refresh_deadline(issued, 3600, issued + 600, 86400) == pytest.approx(issued + 480)  # granted less
    assert refresh_deadline(issued, 3600, None, 2.0) == issued + 2.0  # --token-max-age


def test_status_comparison_ignores_what_the_api_server_drops() -> None:
    sent = {"conditions": [{"type": "Ready", "lastProbeTime": None, "status": "True"}], "imageID": "", "x": {}}
    stored = {"conditions": [{"type": "Ready", "status": "True"}], "x": {}}
    assert _normalised(sent) == _normalised(stored)


class FakeApi:
    """The two calls PodVolumes makes, answered from memory."""

    def __init__(self, objects: dict[str, JSON]) -> None:
        self.objects = objects
        self.token_requests: list[tuple[str, JSON]] = []

    async def get_or_none(self, path: str) -> JSON | None:
        return self.objects.get(path)

    async def request(self, method: str, path: str, *, body: Any = None, **_: Any) -> JSON:
        assert method == "POST" and path.endswith("/token"), path
        self.token_requests.append((path, body))
        return {
            "spec": body["spec"],
            "status": {"token": f"token-{len(self.token_requests)}", "expirationTimestamp": "2099-01-01T00:00:00Z"},
        }


def _pod(**projected: Any) -> JSON:
    sources = projected.get("sources") or [
        {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token", "audience": "vault"}},
        {"configMap": {"name": "kube-root-ca.crt", "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
        {"downwardAPI": {"items": [{"path": "namespace", "fieldRef": {"fieldPath": "metadata.namespace"}}]}},
    ]
    return {
        "metadata": {"name": "p", "namespace": "ns", "uid": "u-1"},
        "spec": {
            "serviceAccountName": "worker",
            "volumes": [{"name": "kube-api-access-x", "projected": {"sources": sources}}],
            "containers": [
                {"name": "c", "volumeMounts": [{"name": "kube-api-access-x", "mountPath": SERVICE_ACCOUNT_MOUNT}]}
            ],
        },
    }


def test_the_service_account_volume_is_materialised_and_refreshed(tmp_path: Path) -> None:
    api = FakeApi({"/api/v1/namespaces/ns/configmaps/kube-root-ca.crt": {"data": {"ca.crt": "PEM"}}})
    pod = _pod()
    volumes = PodVolumes(pod, tmp_path, max_token_age=60)
    asyncio.run(volumes.setup(api, pod, b""))  # type: ignore[arg-type]
    directory = volumes.mounted_at(pod["spec"]["containers"][0], SERVICE_ACCOUNT_MOUNT)
    assert directory == tmp_path / "volumes" / "kube-api-access-x"
    assert {p.name: p.read_text() for p in directory.iterdir()} == {
        "token": "token-1",
        "ca.crt": "PEM",
        "namespace": "ns",
    }
    path, body = api.token_requests[0]
    assert path == "/api/v1/namespaces/ns/serviceaccounts/worker/token"
    assert body["spec"]["audiences"] == ["vault"]
    assert body["spec"]["boundObjectRef"] == {"apiVersion": "v1", "kind": "Pod", "name": "p", "uid": "u-1"}
    due = volumes.next_refresh
    assert due is not None and 55 < due - time.time() <= 60  # --token-max-age 60 comes before 80 % of 3607 s
    asyncio.run(volumes.refresh(api, pod, now=due - 1))  # type: ignore[arg-type]
    assert (directory / "token").read_text() == "token-1"
    asyncio.run(volumes.refresh(api, pod, now=due))  # type: ignore[arg-type]
    assert (directory / "token").read_text() == "token-2"


def test_a_missing_configmap_is_a_failed_mount(tmp_path: Path) -> None:
    pod = _pod(sources=[{"configMap": {"name": "absent"}}])
    volumes = PodVolumes(pod, tmp_path)
    with pytest.raises(VolumeError, match='volume "kube-api-access-x" : configmap "absent" not found'):
        asyncio.run(volumes.setup(FakeApi({}), pod, b""))  # type: ignore[arg-type]
    assert not volumes.ready


def test_the_watchdog_kills_registered_groups_and_removes_directories_when_the_pipe_closes(tmp_path: Path) -> None:
    victim = subprocess.Popen(["sleep", "60"], start_new_session=True)
    spared = subprocess.Popen(["sleep", "60"], start_new_session=True)
    scratch = tmp_path / "work"
    scratch.mkdir()
    try:
        watchdog = Watchdog()
        watchdog.add(victim.pid)
        watchdog.add(spared.pid)
        watchdog.remove(spared.pid)  # ended normally: the agent said so
        watchdog.remove_on_death(scratch)
        watchdog.close()  # end of file, as when the agent dies
        assert victim.wait(5) == -signal.SIGKILL
        assert spared.poll() is None
        assert not scratch.exists()
    finally:
        for proc in (victim, spared):
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


def test_api_errors_carry_the_status_reason() -> None:
    error = ApiError(403, "Forbidden", 'pods "x" is forbidden')
    assert (error.code, error.reason) == (403, "Forbidden")
    assert str(error) == '403 Forbidden: pods "x" is forbidden'
    assert Credentials("https://h:1").host_port == ("h", 1)
