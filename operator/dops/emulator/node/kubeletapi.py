"""The node agent's kubelet API (HTTPS): what the API server proxies `kubectl logs` to.

`kubectl logs` asks the API server for `pods/<name>/log`; the API server finds the pod's node,
dials `https://<InternalIP>:<daemonEndpoints.kubeletEndpoint.Port>/containerLogs/<ns>/<pod>/<container>`
with its kubelet client certificate, checks our serving certificate against its
`--kubelet-certificate-authority`, and streams our answer back. So this server does what the
kubelet's does for that path, with the same pieces the embedded kubelet's pods/log endpoint uses
(logs.py: option parsing, choosing the container instance, CRI log streaming with follow):

- TLS with a serving certificate (for a real cluster: signed by the cluster CA, SAN = the node's
  InternalIP); clients authenticate with certificates signed by `client_ca` (`--client-ca-file`);
- authorization as a kubelet's `Webhook` mode: a SubjectAccessReview for the caller (user and
  groups from its certificate) on `nodes/<subresource>` of this node (`proxy` for containerLogs,
  `log`, `spec`, `stats`… for the others), cached (allowed 5 min, denied 30 s) as the kubelet does;
  `AlwaysAllow` skips it;
- `GET /containerLogs/...`, `GET /pods` (the pods this node runs), `GET /healthz`. exec, attach,
  port-forward and the stats/metrics endpoints are not served (404).

Errors are plain text with the kubelet's wording and status, which the API server relays to the client.
"""

from __future__ import annotations

import logging
import ssl
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from aiohttp import web

from .. import errors
from ..controllers.kubelet.logs import LogWriter, container_log_id, parse_log_options, stream_log
from .client import ApiClient, ApiError

JSON = dict[str, Any]
SUBJECT_ACCESS_REVIEWS = "/apis/authorization.k8s.io/v1/subjectaccessreviews"
ALWAYS_ALLOW = "AlwaysAllow"
WEBHOOK = "Webhook"
ALLOWED_TTL = 300.0
DENIED_TTL = 30.0
_VERBS = {"GET": "get", "HEAD": "get", "POST": "create", "PUT": "update", "PATCH": "patch", "DELETE": "delete"}
_SUBRESOURCES = {"stats": "stats", "metrics": "metrics", "logs": "log", "spec": "spec", "checkpoint": "checkpoint"}

log = logging.getLogger("dops.emulator.node.kubeletapi")


class PodSource(Protocol):
    """What the server needs from the agent: the pods it runs and their log files."""

    node_name: str

    def pod_by_name(self, namespace: str, name: str) -> JSON | None: ...

    def pods(self) -> list[JSON]: ...

    def log_writer(self, uid: str, container_id: str) -> tuple[bool, LogWriter | None]: ...


@dataclass(frozen=True)
class ServingConfig:
    cert_file: str
    key_file: str
    client_ca_file: str | None = None
    authorization: str = WEBHOOK


def server_ssl_context(config: ServingConfig) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(config.cert_file, config.key_file)
    if config.client_ca_file:
        context.load_verify_locations(cafile=config.client_ca_file)
        context.verify_mode = ssl.CERT_OPTIONAL  # no certificate: 401 from us, not a failed handshake
    return context


def identity(request: web.Request) -> tuple[str, list[str]] | None:
    """(user, groups) of a verified client certificate: CN and O, as the API server reads them."""
    transport = request.transport
    cert = transport.get_extra_info("peercert") if transport is not None else None
    if not cert:
        return None
    user, groups = "", []
    for rdn in cert.get("subject", ()):
        for key, value in rdn:
            if key == "commonName":
                user = str(value)
            elif key == "organizationName":
                groups.append(str(value))
    return (user, [*groups, "system:authenticated"]) if user else None


def _text(status: int, message: str) -> web.Response:
    return web.Response(status=status, text=message + "\n", content_type="text/plain")


class KubeletApi:
    """The HTTPS kubelet endpoint of one node agent."""

    def __init__(self, source: PodSource, client: ApiClient, config: ServingConfig) -> None:
        self.source = source
        self.client = client
        self.config = config
        self._decisions: dict[tuple[str, tuple[str, ...], str, str], tuple[bool, float]] = {}
        self._runner: web.AppRunner | None = None
        self.port = 0

    async def start(self, host: str, port: int) -> int:
        app = web.Application(middlewares=[self._guard])
        app.router.add_get("/healthz", self._healthz)
        app.router.add_get("/pods", self._pods)
        app.router.add_get("/containerLogs/{namespace}/{pod}/{container}", self._container_logs)
        # Followed logs end with their container; whatever is still streaming at shutdown gets 2 s.
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=2.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port, ssl_context=server_ssl_context(self.config))
        await site.start()
        server = getattr(site, "_server", None)
        sockets = getattr(server, "sockets", None) or []
        self.port = int(sockets[0].getsockname()[1]) if sockets else port
        return self.port

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    # ------------------------------------------------------------------------ authn/authz
    @web.middleware
    async def _guard(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        if request.path == "/healthz":
            return await handler(request)
        if self.config.authorization != ALWAYS_ALLOW:
            who = identity(request)
            if who is None:
                return _text(401, "Unauthorized")
            first = request.path.strip("/").split("/", 1)[0]
            subresource = _SUBRESOURCES.get(first, "proxy")
            verb = _VERBS.get(request.method, "get")
            if not await self._allowed(who[0], who[1], verb, subresource):
                return _text(
                    403,
                    f"Forbidden (user={who[0]}, verb={verb}, resource=nodes, subresource={subresource})",
                )
        try:
            return await handler(request)
        except errors.APIError as exc:
            return _text(exc.code, exc.message)

    async def _allowed(self, user: str, groups: list[str], verb: str, subresource: str) -> bool:
        key = (user, tuple(groups), verb, subresource)
        cached = self._decisions.get(key)
        now = time.monotonic()
        if cached is not None and cached[1] > now:
            return cached[0]
        review = {
            "apiVersion": "authorization.k8s.io/v1",
            "kind": "SubjectAccessReview",
            "spec": {
                "user": user,
                "groups": groups,
                "resourceAttributes": {
                    "verb": verb,
                    "resource": "nodes",
                    "subresource": subresource,
                    "name": self.source.node_name,
                },
            },
        }
        try:
            answer = await self.client.request(
                "POST", "/apis/authorization.k8s.io/v1/subjectaccessreviews", body=review
            )
        except ApiError as exc:
            log.warning("node agent: SubjectAccessReview failed (%s): denying %s", exc, user)
            return False
        allowed = bool((answer.get("status") or {}).get("allowed"))
        self._decisions[key] = (allowed, now + (ALLOWED_TTL if allowed else DENIED_TTL))
        return allowed

    # ------------------------------------------------------------------------ handlers
    async def _healthz(self, request: web.Request) -> web.StreamResponse:
        return _text(200, "ok")

    async def _pods(self, request: web.Request) -> web.StreamResponse:
        return web.json_response({"kind": "PodList", "apiVersion": "v1", "metadata": {}, "items": self.source.pods()})

    async def _container_logs(self, request: web.Request) -> web.StreamResponse:
        """The kubelet's getContainerLogs: find the pod and container instance, then stream its CRI log."""
        namespace = request.match_info["namespace"]
        name = request.match_info["pod"]
        container = request.match_info["container"]
        pod = self.source.pod_by_name(namespace, name)
        if pod is None:
            return _text(404, f'pod "{name}" does not exist')
        spec = pod.get("spec") or {}
        names = [str(c.get("name")) for key in ("initContainers", "containers") for c in spec.get(key) or []]
        if container not in names:
            return _text(404, f'container "{container}" not found in pod "{name}"')
        opts = parse_log_options(name, dict(request.query), datetime.now(UTC))
        opts.container = container
        container_id = container_log_id(pod, container, opts.previous)
        _, writer = self.source.log_writer(str(pod["metadata"]["uid"]), container_id)
        return await stream_log(request, writer, opts)
