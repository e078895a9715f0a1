"""Service-account tokens are re-read (issue 11, item 6), on the real control plane, which issues and checks them.

A pod's projected token is rotated by the kubelet and stops working when it expires or when the object it
is bound to goes away. Here a token is bound (TokenRequest `boundObjectRef`) to a Secret: deleting the
Secret revokes it, as deleting a pod revokes the pod's token. The service-account directory is written as
the kubelet writes it (token file replaced atomically); after the old token is revoked and the file holds a
new one:

- `KubeClient` (pykube-ng, the custom-resource path of the operator and the worker) re-reads the file on
  the 401 and the request succeeds;
- the official client (Jobs, pods, logs, Events) re-reads it (its refresh hook), at most a minute late,
  and at once when forced;
- Kopf's login handler (`connection_info`, re-called by Kopf after a 401) hands out the new token.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any
from urllib.parse import urlsplit

import kubernetes
import pytest
import requests

from dops.handlers.operator import connection_info
from dops.k8s import KubeClient, Unauthorized, load_config
from tests.helpers import eventually
from tests.planes import RealPlane

JSON = dict[str, Any]


@pytest.fixture
def real(real_plane: RealPlane) -> Iterator[RealPlane]:
    yield real_plane
    real_plane.reset()


class Account:
    """A ServiceAccount allowed to read ConfigMaps in its namespace, and its tokens, bound to Secrets."""

    def __init__(self, plane: RealPlane) -> None:
        self.plane = plane
        self.admin = plane.session()
        self.ns = f"tok-{uuid.uuid4().hex[:8]}"
        self.post("/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": self.ns}})
        base = f"/api/v1/namespaces/{self.ns}"
        self.post(f"{base}/serviceaccounts", {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "w"}})
        self.post(f"{base}/configmaps", {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "probe"}})
        rbac = f"/apis/rbac.authorization.k8s.io/v1/namespaces/{self.ns}"
        rule = {"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get"]}
        self.post(f"{rbac}/roles", {"kind": "Role", "metadata": {"name": "read"}, "rules": [rule]})
        subject = {"kind": "ServiceAccount", "name": "w", "namespace": self.ns}
        role_ref = {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "read"}
        self.post(
            f"{rbac}/rolebindings",
            {"kind": "RoleBinding", "metadata": {"name": "read"}, "subjects": [subject], "roleRef": role_ref},
        )

    def post(self, path: str, body: JSON) -> JSON:
        body.setdefault("apiVersion", "rbac.authorization.k8s.io/v1")
        response = self.admin.post(f"{self.plane.url}{path}", json=body, timeout=30)
        assert response.status_code < 300, response.text
        decoded: JSON = response.json()
        return decoded

    def token_bound_to(self, secret: str) -> str:
        """A token of the account that stops working when Secret `secret` is deleted (as a pod's does with its pod)."""
        holder = self.post(
            f"/api/v1/namespaces/{self.ns}/secrets",
            {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": secret}},
        )
        request = {
            "apiVersion": "authentication.k8s.io/v1",
            "kind": "TokenRequest",
            "spec": {
                "expirationSeconds": 600,
                "boundObjectRef": {
                    "apiVersion": "v1",
                    "kind": "Secret",
                    "name": secret,
                    "uid": holder["metadata"]["uid"],
                },
            },
        }
        answer = self.post(f"/api/v1/namespaces/{self.ns}/serviceaccounts/w/token", request)
        token: str = answer["status"]["token"]
        return token

    def revoke(self, secret: str) -> None:
        response = self.admin.delete(f"{self.plane.url}/api/v1/namespaces/{self.ns}/secrets/{secret}", timeout=30)
        assert response.status_code < 300, response.text

    def status_with(self, token: str) -> int:
        response = requests.get(
            f"{self.plane.url}/api/v1/namespaces/{self.ns}/configmaps/probe",
            headers={"Authorization": f"Bearer {token}"},
            verify=str(self.plane.cluster.ca_file),
            timeout=10,
        )
        return response.status_code


def write_token(directory: Path, token: str) -> None:
    """As the kubelet does: a new file renamed over the old one (never a half-written token)."""
    staged = directory / f".token-{uuid.uuid4().hex}"
    staged.write_text(token)
    os.replace(staged, directory / "token")


def test_a_rotated_token_is_used_after_the_old_one_is_revoked(
    real: RealPlane, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    account = Account(real)
    first = account.token_bound_to("holder-1")
    directory = tmp_path / "serviceaccount"
    directory.mkdir()
    write_token(directory, first)
    (directory / "ca.crt").write_bytes(real.cluster.ca_file.read_bytes())
    (directory / "namespace").write_text(account.ns)
    url = urlsplit(real.url)
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", str(url.hostname))
    monkeypatch.setenv("KUBERNETES_SERVICE_PORT", str(url.port))
    config = load_config(in_cluster=True, service_account_dir=directory)
    client = KubeClient(config)
    probe = f"/api/v1/namespaces/{account.ns}/configmaps/probe"
    try:
        assert client.request("GET", probe)["metadata"]["name"] == "probe"
        core = kubernetes.client.CoreV1Api(config.api_client())

        def read() -> str:
            return str(core.read_namespaced_config_map("probe", account.ns).metadata.name)

        assert read() == "probe"

        second = account.token_bound_to("holder-2")
        write_token(directory, second)
        account.revoke("holder-1")
        eventually(lambda: account.status_with(first), lambda code: code == 401, timeout=60, describe="revocation")

        # pykube-ng path: the 401 makes it re-read the token file, and the request goes through.
        assert client.request("GET", probe)["metadata"]["name"] == "probe"
        assert config.kube_config.user["token"] == second
        # Kopf's login (re-called by Kopf on a 401) hands out the new token.
        info = connection_info(SimpleNamespace(cluster=config))  # type: ignore[arg-type]
        assert info.token == second and info.scheme == "Bearer"
        # The official client reads the same, refreshed, token.
        assert read() == "probe"
    finally:
        client.close()
        config.close()


def test_without_a_new_token_the_401_is_reported(
    real: RealPlane, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The fault twin: the old token revoked and no new one written → Unauthorized, once, not a retry loop."""
    account = Account(real)
    only = account.token_bound_to("holder-only")
    directory = tmp_path / "serviceaccount"
    directory.mkdir()
    write_token(directory, only)
    (directory / "ca.crt").write_bytes(real.cluster.ca_file.read_bytes())
    (directory / "namespace").write_text(account.ns)
    url = urlsplit(real.url)
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", str(url.hostname))
    monkeypatch.setenv("KUBERNETES_SERVICE_PORT", str(url.port))
    client = KubeClient(load_config(in_cluster=True, service_account_dir=directory))
    try:
        account.revoke("holder-only")
        eventually(lambda: account.status_with(only), lambda code: code == 401, timeout=60, describe="revocation")
        with pytest.raises(Unauthorized):
            client.request("GET", f"/api/v1/namespaces/{account.ns}/configmaps/probe")
    finally:
        client.close()
