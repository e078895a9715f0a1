"""`bearer_config` and `in_cluster_endpoint` (dops.k8s.config): what the in-cluster dashboard (`dops ui --auth
passthrough`) authenticates with — only each user's token, never its own credentials — without a cluster.

- bearer_config keeps the base's server and CA and drops its credentials (client certificate, token): the user is
  the token alone; an empty token is anonymous; the official client built from it carries that token, not a mounted
  service-account token;
- in_cluster_endpoint reads KUBERNETES_SERVICE_HOST/PORT (IPv6 in brackets) and a CA file, with no credentials;
  outside a pod, or without the CA, it says so in one line.
"""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from dops.k8s import ConfigurationError, bearer_config, in_cluster_endpoint, load_config

CA = b"-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"


@pytest.fixture
def admin_kubeconfig(tmp_path: Path) -> Path:
    (tmp_path / "ca.crt").write_bytes(CA)
    (tmp_path / "admin.crt").write_text("cert")
    (tmp_path / "admin.key").write_text("key")
    path = tmp_path / "kubeconfig"
    path.write_text(
        "apiVersion: v1\nkind: Config\ncurrent-context: c\n"
        "clusters: [{name: k, cluster: {server: 'https://10.1.2.3:6443', certificate-authority: ca.crt}}]\n"
        "contexts: [{name: c, context: {cluster: k, user: admin, namespace: team}}]\n"
        "users: [{name: admin, user: {client-certificate: admin.crt, client-key: admin.key, token: admin-token}}]\n"
    )
    return path


def test_bearer_config_keeps_the_server_and_ca_and_drops_the_credentials(admin_kubeconfig: Path) -> None:
    base = load_config(str(admin_kubeconfig))
    user = bearer_config(base, "alice-token")
    assert user.server == "https://10.1.2.3:6443" and user.namespace == "team"
    assert user.kube_config.user == {"token": "alice-token"}  # no client certificate, no admin token
    assert user.kube_config.cluster["certificate-authority"].bytes() == CA
    assert user.token_file is None and user.kubeconfig_path is None
    assert bearer_config(base, "").kube_config.user == {}  # anonymous


def test_the_official_client_of_a_bearer_config_carries_the_users_token(
    admin_kubeconfig: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    account = tmp_path / "sa"
    account.mkdir()
    (account / "token").write_text("the-pods-own-token")
    (account / "ca.crt").write_bytes(CA)
    monkeypatch.setenv("DOPS_SERVICE_ACCOUNT_DIR", str(account))
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "10.0.0.1")
    config = bearer_config(load_config(str(admin_kubeconfig)), "alice-token")
    api = config.api_client()
    try:
        assert api.configuration.api_key == {"BearerToken": "Bearer alice-token"}  # not the-pods-own-token
        assert api.configuration.host == "https://10.1.2.3:6443"
    finally:
        config.close()


@pytest.mark.parametrize(
    ("host", "port", "server"),
    [("10.96.0.1", "443", "https://10.96.0.1:443"), ("fd00::1", "6443", "https://[fd00::1]:6443")],
)
def test_in_cluster_endpoint_has_no_credentials(
    host: str, port: str, server: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "ca.crt").write_bytes(CA)
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", host)
    monkeypatch.setenv("KUBERNETES_SERVICE_PORT", port)
    monkeypatch.setenv("DOPS_SERVICE_ACCOUNT_DIR", str(tmp_path))  # holds a CA and no token, as the chart mounts it
    endpoint = in_cluster_endpoint()
    assert endpoint.server == server and endpoint.kube_config.user == {}
    cluster = endpoint.kube_config.doc["clusters"][0]["cluster"]
    assert base64.b64decode(cluster["certificate-authority-data"]) == CA


def test_in_cluster_endpoint_outside_a_pod_or_without_its_ca_is_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    with pytest.raises(ConfigurationError, match="KUBERNETES_SERVICE_HOST is not set"):
        in_cluster_endpoint(tmp_path / "ca.crt")
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "10.96.0.1")
    with pytest.raises(ConfigurationError, match=r"CA certificate .*ca\.crt does not exist"):
        in_cluster_endpoint(tmp_path / "ca.crt")
