"""Cluster configuration: kubeconfig or in-cluster service account → clients of both libraries.

Resolution order of `load_config()` (what kubectl and the official client do):

1. an explicit `kubeconfig` path (and optional `context`);
2. `in_cluster=True`, or, when neither a path nor `in_cluster` is given and the process runs in a pod
   (`KUBERNETES_SERVICE_HOST` set and a service-account token mounted), the service account. Its
   directory is the well-known `/var/run/secrets/kubernetes.io/serviceaccount`, or
   `$DOPS_SERVICE_ACCOUNT_DIR` where a node cannot mount at that path (the process node agent,
   `python -m dops.emulator.node`, gives each pod its own directory and sets the variable);
3. `$KUBECONFIG` (the first existing file of a `:`-separated list), else `~/.kube/config`.

The namespace is the kubeconfig context's namespace (or the service account's), else `default`.

In a pod the service-account token is a projected, expiring token that the kubelet rewrites (about every
hour; it expires after the `expirationSeconds` of the projection, an hour by default). A token read once
turns every request into 401 once it expires, so `ClusterConfig.refresh_token()` re-reads the file — at
most every `TOKEN_REFRESH_SECONDS` (what client-go does), and at once after a 401 (`force=True`) — and
hands the new token to both clients: pykube-ng reads it from the shared `KubeConfig` on every request,
the official client through its `refresh_api_key_hook`.

A kubeconfig is checked before pykube reads it (`check_kubeconfig`), because pykube reports a broken
file as the raw exception of whatever it tripped over (a YAML scanner error, `TypeError`,
`KeyError('nope')` for an unknown context). Every problem becomes one ConfigurationError sentence
that names the file and what is wrong with it.
"""

from __future__ import annotations

import base64
import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pykube
import yaml

from .errors import ConfigurationError

SERVICE_ACCOUNT_DIR = Path("/var/run/secrets/kubernetes.io/serviceaccount")
SERVICE_ACCOUNT_DIR_ENV = "DOPS_SERVICE_ACCOUNT_DIR"
TOKEN_REFRESH_SECONDS = 60.0  # client-go re-reads a token file every minute
# The connections the official client keeps: above the engine's I/O threads (16) and their callers.
API_CLIENT_POOL_SIZE = 32


def default_service_account_dir() -> Path:
    """The projected service-account directory: `$DOPS_SERVICE_ACCOUNT_DIR`, else the well-known path."""
    override = os.environ.get(SERVICE_ACCOUNT_DIR_ENV)
    return Path(override) if override else SERVICE_ACCOUNT_DIR


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
    _token_read_at: float = field(default_factory=time.monotonic, repr=False)
    _token_lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def token_file(self) -> Path | None:
        """The service-account token file this configuration authenticates with (None for a kubeconfig)."""
        return self.service_account_dir / "token" if self.service_account_dir is not None else None

    def refresh_token(self, *, force: bool = False) -> bool:
        """Re-read the service-account token when it is older than TOKEN_REFRESH_SECONDS (or `force`).

        Returns True when the token changed. A kubeconfig configuration has nothing to re-read (False).
        An unreadable file keeps the current token (the kubelet replaces the file atomically; a
        missing file is a pod being torn down), and the next call tries again.
        """
        path = self.token_file
        if path is None:
            return False
        now = time.monotonic()
        if not force and now - self._token_read_at < TOKEN_REFRESH_SECONDS:
            return False
        with self._token_lock:
            self._token_read_at = now
            try:
                token = path.read_text().strip()
            except OSError:
                return False
            user = self.kube_config.user
            if not token or token == str(user.get("token") or "").strip():
                return False
            user["token"] = token  # pykube-ng reads it from here on every request
            if self._api_client is not None:
                self._api_client.configuration.api_key["BearerToken"] = f"Bearer {token}"
            return True

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

        configuration = kubernetes.client.Configuration()
        # The official client sizes its connection pool by the CPU count (5 per CPU: 10 on 2 cores) while the
        # operator sends from more I/O threads than that; each request over the size opens a connection and
        # throws it away afterwards ("Connection pool is full"), CPU for both ends.
        configuration.connection_pool_maxsize = API_CLIENT_POOL_SIZE
        if self.kubeconfig_path is None and self.service_account_dir is None:
            # A configuration built in memory (`bearer_config`): its own document, never a mounted token.
            kubernetes.config.load_kube_config_from_dict(  # type: ignore[no-untyped-call]
                config_dict=self.kube_config.doc, client_configuration=configuration
            )
        elif self.kubeconfig_path is None:
            from kubernetes.config.incluster_config import InClusterConfigLoader

            account = self.service_account_dir or default_service_account_dir()
            loader = InClusterConfigLoader(  # type: ignore[no-untyped-call]
                token_filename=str(account / "token"), cert_filename=str(account / "ca.crt")
            )
            loader.load_and_set(client_configuration=configuration)  # type: ignore[no-untyped-call]

            def refresh(conf: Any) -> None:
                # One token source for both clients: re-read every minute, and at once after a 401.
                self.refresh_token()
                conf.api_key["BearerToken"] = f"Bearer {str(self.kube_config.user.get('token') or '').strip()}"

            configuration.refresh_api_key_hook = refresh  # type: ignore[assignment]
        else:
            kubernetes.config.load_kube_config(  # type: ignore[no-untyped-call]
                config_file=str(self.kubeconfig_path), context=self.context, client_configuration=configuration
            )
        return kubernetes.client.ApiClient(configuration)

    def close(self) -> None:
        if self._api_client is not None:
            self._api_client.close()
            self._api_client = None


def in_cluster_endpoint(ca_file: str | os.PathLike[str] | None = None) -> ClusterConfig:
    """The API server a pod reaches (KUBERNETES_SERVICE_HOST/PORT) and its CA, with no credentials at all.

    For a server that acts only with its users' tokens (`dops ui --auth passthrough`): it needs where the API
    server is and which CA to trust, never a token of its own (the chart mounts only `kube-root-ca.crt`).
    `ca_file` defaults to the service-account directory's ca.crt.
    """
    host = os.environ.get("KUBERNETES_SERVICE_HOST", "").strip()
    port = os.environ.get("KUBERNETES_SERVICE_PORT", "443").strip() or "443"
    if not host:
        raise ConfigurationError("not running in a pod: KUBERNETES_SERVICE_HOST is not set (use --kubeconfig instead)")
    ca = Path(ca_file) if ca_file is not None else default_service_account_dir() / "ca.crt"
    if not ca.is_file():
        raise ConfigurationError(f"the API server's CA certificate {ca} does not exist (mount kube-root-ca.crt there)")
    server = f"https://[{host}]:{port}" if ":" in host else f"https://{host}:{port}"
    cluster = {"server": server, "certificate-authority-data": base64.b64encode(ca.read_bytes()).decode()}
    return _in_memory(cluster, "", "default", f"in-cluster endpoint {server}")


def bearer_config(base: ClusterConfig, token: str) -> ClusterConfig:
    """`base`'s API server (address, CA, TLS settings) authenticated by `token` alone.

    `base`'s own credentials (client certificate, token, exec plugin) are dropped: what a request is allowed is
    decided by the API server for the token's owner, as when that user runs kubectl. An empty token is anonymous.
    """
    cluster = base.kube_config.cluster
    entry: dict[str, Any] = {"server": base.server}
    ca = cluster.get("certificate-authority")
    if ca is not None:
        entry["certificate-authority-data"] = base64.b64encode(ca.bytes()).decode()
    for key in ("insecure-skip-tls-verify", "tls-server-name"):
        if key in cluster:
            entry[key] = cluster[key]
    return _in_memory(entry, token, base.namespace, "bearer token")


def _in_memory(cluster: dict[str, Any], token: str, namespace: str, source: str) -> ClusterConfig:
    user: dict[str, Any] = {"token": token} if token else {}
    doc = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "api", "cluster": cluster}],
        "users": [{"name": "user", "user": user}],
        "contexts": [{"name": "user", "context": {"cluster": "api", "user": "user", "namespace": namespace}}],
        "current-context": "user",
    }
    return ClusterConfig(pykube.KubeConfig(doc), namespace, source)


def in_cluster_available(service_account_dir: Path | None = None) -> bool:
    account = service_account_dir if service_account_dir is not None else default_service_account_dir()
    return bool(os.environ.get("KUBERNETES_SERVICE_HOST")) and (account / "token").is_file()


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
    service_account_dir: str | os.PathLike[str] | None = None,
) -> ClusterConfig:
    """Load the cluster configuration (see the module docstring); ConfigurationError when there is none."""
    account = Path(service_account_dir) if service_account_dir is not None else default_service_account_dir()
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
    check_kubeconfig(path, context)
    try:
        kube_config = pykube.KubeConfig.from_file(str(path), current_context=context)
        namespace = str(kube_config.namespace or "default")
        _ = kube_config.cluster["server"]
    except Exception as exc:  # what check_kubeconfig does not foresee: still one readable line
        raise ConfigurationError(f"cannot use kubeconfig {path}: {_reason(exc)}") from exc
    return ClusterConfig(kube_config, namespace, f"kubeconfig:{path}", kubeconfig_path=path, context=context)


def _reason(exc: BaseException) -> str:
    """An exception as words: its message, not its repr (no `<object at 0x…>`, no `KeyError('x')`)."""
    if isinstance(exc, KeyError) and exc.args:
        return f"no entry {exc.args[0]!s}"
    text = " ".join(str(exc).split())
    return text or type(exc).__name__


def _named(doc: dict[Any, Any], section: str, path: Path) -> dict[str, dict[Any, Any]]:
    """The `clusters`/`contexts`/`users` list of a kubeconfig as {name: body}; ConfigurationError when malformed."""
    entries = doc.get(section) or []
    body_key = section[:-1]  # clusters → cluster, contexts → context, users → user
    if not isinstance(entries, list):
        raise ConfigurationError(f"kubeconfig {path} is malformed: {section} is not a list")
    found: dict[str, dict[Any, Any]] = {}
    for index, entry in enumerate(entries):
        if not isinstance(entry, dict) or not isinstance(entry.get("name"), str):
            raise ConfigurationError(f"kubeconfig {path} is malformed: {section}[{index}] has no name")
        body = entry.get(body_key)
        if not isinstance(body, dict):
            raise ConfigurationError(f'kubeconfig {path} is malformed: {body_key} "{entry["name"]}" has no {body_key}')
        found[entry["name"]] = body
    return found


def check_kubeconfig(path: Path, context: str | None = None) -> None:
    """Raise ConfigurationError, one sentence naming `path`, unless the file is a kubeconfig usable with `context`.

    Checks what every client needs: readable YAML, a mapping, the context (given, else the file's
    current-context) among its contexts, and that context's cluster among its clusters.
    """
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigurationError(f"cannot read kubeconfig {path}: {getattr(exc, 'strerror', None) or exc}") from exc
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        problem = getattr(exc, "problem", None) or _reason(exc)
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""
        raise ConfigurationError(f"kubeconfig {path} is not valid YAML: {problem}{where}") from None
    if doc is None or doc == {}:
        raise ConfigurationError(f"kubeconfig {path} is empty: it defines no cluster, context or user")
    if not isinstance(doc, dict):
        raise ConfigurationError(
            f"kubeconfig {path} is not a kubeconfig: expected a mapping with clusters, contexts and users, "
            f"found a YAML {type(doc).__name__}"
        )
    contexts = _named(doc, "contexts", path)
    clusters = _named(doc, "clusters", path)
    _named(doc, "users", path)
    listed = ", ".join(sorted(contexts))
    if not contexts:
        raise ConfigurationError(f"kubeconfig {path} defines no context")
    name = context or doc.get("current-context")
    if not name:
        raise ConfigurationError(f"kubeconfig {path} has no current-context: pass context=... (its contexts: {listed})")
    if name not in contexts:
        raise ConfigurationError(f'context "{name}" not found in kubeconfig {path} (its contexts: {listed})')
    cluster = contexts[name].get("cluster")
    if cluster not in clusters:
        raise ConfigurationError(
            f'context "{name}" of kubeconfig {path} uses cluster "{cluster}", which the file does not define'
        )
