"""Cluster configuration: kubeconfig or in-cluster service account → clients of both libraries.

Resolution order of `load_config()` (what kubectl and the official client do):

1. an explicit `kubeconfig` path (and optional `context`);
2. `in_cluster=True`, or, when neither a path nor `in_cluster` is given and the process runs in a pod
   (`KUBERNETES_SERVICE_HOST` set and a service-account token mounted), the service account;
3. `$KUBECONFIG` (the first existing file of a `:`-separated list), else `~/.kube/config`.

The namespace is the kubeconfig context's namespace (or the service account's), else `default`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pykube

from .errors import ConfigurationError

SERVICE_ACCOUNT_DIR = Path("/var/run/secrets/kubernetes.io/serviceaccount")


@dataclass
class ClusterConfig:
    """Where the API server is and how to authenticate, loaded once and shared by both clients."""

    kube_config: pykube.KubeConfig
    namespace: str
    source: str
    kubeconfig_path: Path | None = None
    context: str | None = None
    service_account_dir: Path | None = None
    _api_client: Any = field(default=None, repr=False)

    @property
    def server(self) -> str:
        return str(self.kube_config.cluster["server"]).rstrip("/")

    def http_client(self, timeout: float = 30.0) -> pykube.HTTPClient:
        """A pykube-ng HTTPClient (a requests session with the kubeconfig's TLS and credentials)."""
        return pykube.HTTPClient(self.kube_config, timeout=timeout)

    def api_client(self) -> Any:
        """An official `kubernetes.client.ApiClient` for typed built-in resources (Jobs, Pods, logs, Events)."""
        if self._api_client is None:
            try:
                self._api_client = self._new_api_client()
            except Exception as exc:  # kubernetes.config.ConfigException and friends
                raise ConfigurationError(f"cannot configure the kubernetes client ({self.source}): {exc}") from exc
        return self._api_client

    def _new_api_client(self) -> Any:
        import kubernetes

        if self.kubeconfig_path is None:
            from kubernetes.config.incluster_config import InClusterConfigLoader

            account = self.service_account_dir or SERVICE_ACCOUNT_DIR
            configuration = kubernetes.client.Configuration()
            loader = InClusterConfigLoader(  # type: ignore[no-untyped-call]
                token_filename=str(account / "token"), cert_filename=str(account / "ca.crt")
            )
            loader.load_and_set(client_configuration=configuration)  # type: ignore[no-untyped-call]
            return kubernetes.client.ApiClient(configuration)
        return kubernetes.config.new_client_from_config(  # type: ignore[no-untyped-call]
            config_file=str(self.kubeconfig_path), context=self.context
        )

    def close(self) -> None:
        if self._api_client is not None:
            self._api_client.close()
            self._api_client = None


def in_cluster_available(service_account_dir: Path = SERVICE_ACCOUNT_DIR) -> bool:
    return bool(os.environ.get("KUBERNETES_SERVICE_HOST")) and (service_account_dir / "token").is_file()


def default_kubeconfig_path() -> Path:
    listed = os.environ.get("KUBECONFIG", "")
    candidates = [Path(p).expanduser() for p in listed.split(os.pathsep) if p]
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    if candidates:
        raise ConfigurationError(f"no kubeconfig file found among KUBECONFIG={listed}")
    return Path("~/.kube/config").expanduser()


def load_config(
    kubeconfig: str | os.PathLike[str] | None = None,
    context: str | None = None,
    in_cluster: bool | None = None,
    service_account_dir: str | os.PathLike[str] = SERVICE_ACCOUNT_DIR,
) -> ClusterConfig:
    """Load the cluster configuration (see the module docstring); ConfigurationError when there is none."""
    account = Path(service_account_dir)
    if kubeconfig is None and (in_cluster or (in_cluster is None and in_cluster_available(account))):
        try:
            kube_config = pykube.KubeConfig.from_service_account(str(account))
        except (OSError, KeyError) as exc:
            raise ConfigurationError(f"cannot load the in-cluster service account: {exc!r}") from exc
        namespace = str(kube_config.namespace or "default").strip()
        return ClusterConfig(kube_config, namespace, "in-cluster", service_account_dir=account)
    path = Path(kubeconfig).expanduser() if kubeconfig is not None else default_kubeconfig_path()
    if not path.is_file():
        raise ConfigurationError(f"kubeconfig {path} does not exist (set KUBECONFIG or pass kubeconfig=...)")
    try:
        kube_config = pykube.KubeConfig.from_file(str(path), current_context=context)
        namespace = str(kube_config.namespace or "default")
        _ = kube_config.cluster["server"]
    except Exception as exc:  # pykube raises KeyError/TypeError/PyKubeError for broken files
        raise ConfigurationError(f"cannot use kubeconfig {path}: {exc!r}") from exc
    return ClusterConfig(kube_config, namespace, f"kubeconfig:{path}", kubeconfig_path=path, context=context)
