"""A small asynchronous Kubernetes API client for the node agent: kubeconfig, requests, list+watch.

The agent must talk to *any* API server (the real kube-apiserver over TLS with a client certificate
or a token, or the embedded one over plain HTTP) with nothing but the embedded emulator's own
dependencies (aiohttp, PyYAML): no product client (dops.k8s) and no kubernetes/pykube library.
It needs little: JSON requests, merge patches, and a watch that streams one event per line.
"""

from __future__ import annotations

import base64
import json
import os
import ssl
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import yaml

JSON = dict[str, Any]
MERGE_PATCH = "application/merge-patch+json"


class KubeconfigError(Exception):
    """The kubeconfig cannot be used; the message names the file and the problem."""


class ApiError(Exception):
    """A non-2xx answer: `code`, the Status `reason` and `message` (or the body text)."""

    def __init__(self, code: int, reason: str, message: str) -> None:
        super().__init__(f"{code} {reason}: {message}" if reason else f"{code}: {message}")
        self.code = code
        self.reason = reason
        self.message = message


@dataclass(frozen=True)
class Credentials:
    """Where the API server is and who we are, resolved from a kubeconfig (file paths, not inline data)."""

    server: str
    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None
    token: str | None = None
    token_file: str | None = None
    insecure: bool = False

    @property
    def host_port(self) -> tuple[str, int]:
        """The server's host and port: what a pod gets as KUBERNETES_SERVICE_HOST/PORT."""
        parts = urlsplit(self.server)
        default = 443 if parts.scheme == "https" else 80
        return parts.hostname or "127.0.0.1", parts.port or default

    def ca_bytes(self) -> bytes:
        """The CA bundle pods get as `ca.crt` when no kube-root-ca.crt ConfigMap provides it."""
        return Path(self.ca_file).read_bytes() if self.ca_file else b""

    def ssl_context(self) -> ssl.SSLContext | bool:
        if not self.server.startswith("https"):
            return False
        context = ssl.create_default_context(cafile=self.ca_file)
        if self.insecure:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        if self.cert_file and self.key_file:
            context.load_cert_chain(self.cert_file, self.key_file)
        return context


def load_kubeconfig(path: Path, secrets_dir: Path, context: str | None = None) -> Credentials:
    """Read the context's cluster and user; inline `*-data` is written to 0600 files under `secrets_dir`."""
    try:
        doc = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise KubeconfigError(f"cannot read kubeconfig {path}: {exc}") from exc
    if not isinstance(doc, dict):
        raise KubeconfigError(f"kubeconfig {path} is not a mapping")

    def named(section: str, name: str | None) -> JSON:
        for entry in doc.get(section) or []:
            if isinstance(entry, dict) and entry.get("name") == name:
                return dict(entry.get(section[:-1]) or {})
        raise KubeconfigError(f'kubeconfig {path}: {section[:-1]} "{name}" not found')

    ctx = named("contexts", context or doc.get("current-context"))
    cluster = named("clusters", ctx.get("cluster"))
    user = named("users", ctx.get("user")) if ctx.get("user") else {}
    if not cluster.get("server"):
        raise KubeconfigError(f"kubeconfig {path}: the cluster has no server")
    base = path.parent

    def material(file_key: str, data_key: str, section: JSON, filename: str) -> str | None:
        if section.get(data_key):
            secrets_dir.mkdir(parents=True, exist_ok=True)
            target = secrets_dir / filename
            target.write_bytes(base64.b64decode(section[data_key]))
            target.chmod(0o600)
            return str(target)
        if section.get(file_key):
            return str(base / os.path.expanduser(str(section[file_key])))
        return None

    return Credentials(
        server=str(cluster["server"]).rstrip("/"),
        ca_file=material("certificate-authority", "certificate-authority-data", cluster, "ca.crt"),
        cert_file=material("client-certificate", "client-certificate-data", user, "client.crt"),
        key_file=material("client-key", "client-key-data", user, "client.key"),
        token=str(user["token"]) if user.get("token") else None,
        token_file=str(base / str(user["tokenFile"])) if user.get("tokenFile") else None,
        insecure=bool(cluster.get("insecure-skip-tls-verify")),
    )


class ApiClient:
    """JSON over HTTP(S) to one API server; `watch` yields events until the server ends the stream."""

    def __init__(self, credentials: Credentials, user_agent: str = "dops-node-agent") -> None:
        self.credentials = credentials
        self._user_agent = user_agent
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> ApiClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def _headers(self) -> dict[str, str]:
        headers = {"Accept": "application/json", "User-Agent": self._user_agent}
        token = self.credentials.token
        if self.credentials.token_file:
            token = Path(self.credentials.token_file).read_text().strip()
        if token:
            headers["Authorization"] = f"Bearer {token}"
        return headers

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(ssl=self.credentials.ssl_context(), limit=32)
            self._session = aiohttp.ClientSession(
                connector=connector, timeout=aiohttp.ClientTimeout(total=None, sock_connect=10)
            )
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        body: Any = None,
        content_type: str = "application/json",
        timeout: float = 30.0,
    ) -> JSON:
        """One request; the decoded JSON answer, or ApiError for any non-2xx status."""
        headers = self._headers()
        data = None
        if body is not None:
            headers["Content-Type"] = content_type
            data = json.dumps(body).encode()
        async with self.session.request(
            method,
            self.credentials.server + path,
            params=params,
            data=data,
            headers=headers,
            timeout=aiohttp.ClientTimeout(total=timeout),
        ) as response:
            raw = await response.read()
            if response.status >= 300:
                raise _error(response.status, raw)
            if not raw:
                return {}
            decoded = json.loads(raw)
            return decoded if isinstance(decoded, dict) else {"items": decoded}

    async def get(self, path: str, params: Mapping[str, str] | None = None) -> JSON:
        return await self.request("GET", path, params=params)

    async def get_or_none(self, path: str) -> JSON | None:
        try:
            return await self.get(path)
        except ApiError as exc:
            if exc.code == 404:
                return None
            raise

    async def watch(self, path: str, params: Mapping[str, str]) -> AsyncIterator[JSON]:
        """Stream watch events (`{"type", "object"}`), one per line, until the server closes the stream."""
        query = {**params, "watch": "true"}
        async with self.session.get(
            self.credentials.server + path,
            params=query,
            headers=self._headers(),
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=10, sock_read=None),
        ) as response:
            if response.status >= 300:
                raise _error(response.status, await response.read())
            buffer = b""
            async for chunk in response.content.iter_any():
                buffer += chunk
                while b"\n" in buffer:
                    line, buffer = buffer.split(b"\n", 1)
                    if line.strip():
                        yield json.loads(line)
            if buffer.strip():
                yield json.loads(buffer)


def _error(code: int, raw: bytes) -> ApiError:
    try:
        status = json.loads(raw)
    except ValueError:
        status = None
    if isinstance(status, dict) and status.get("kind") == "Status":
        return ApiError(code, str(status.get("reason") or ""), str(status.get("message") or ""))
    return ApiError(code, "", raw.decode(errors="replace").strip()[:500])
