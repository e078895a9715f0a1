"""The `dops ui` web server: an aiohttp app on 127.0.0.1 serving a small static page and a JSON API.

Why it is shaped this way:
- one `OperationCache` watch feeds every browser; table requests (filter, count, page) are answered
  from memory, and browsers learn about changes from one server-sent-event stream each (`/api/stream`),
  coalesced to at most a few messages a second, so an idle dashboard costs the API server one watch;
- the page's assets ship inside the package (no CDN, works offline);
- actions are POSTs that must carry the per-process token embedded in the page (a cross-site form or
  fetch cannot read it), and requests must name this server as their Host (no DNS rebinding);
- with `read_only` the actions are neither shown nor accepted.
Kubernetes calls are blocking (requests), so handlers run them in threads.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from importlib import resources as package_files
from typing import Any

from aiohttp import web

from ..api import constants as c
from ..k8s import (
    ApiError,
    ApiUnavailable,
    BadRequest,
    DelegatedOperationRepository,
    DelegationTargetRepository,
    KubeClient,
    NotFound,
    ResourceClient,
)
from ..k8s.streams import pod_log_path, stream_lines
from ..logs import ArchiveError, LogArchive
from ..service import DelegatedOperationService
from . import actions
from .cache import Key, OperationCache
from .table import DEFAULT_PAGE_SIZE, FilterError, Filters, facets, parse_int, row_of, select, target_counts, timeline

JSON = dict[str, Any]
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

TOKEN_HEADER = "X-Dops-Token"
# Changes are pushed at most this often per browser (the rest is coalesced into the next message).
PUSH_INTERVAL = 0.25
HEARTBEAT_SECONDS = 15.0
LOG_POLL_SECONDS = 0.5
# A followed log quiet this long is reconnected, so a closed log view frees its stream within this time.
LOG_IDLE_SECONDS = 30.0
LOG_RECONNECT_FAILURES = 5
# After an operation finished, how long the log view waits for the operator to record the archive.
ARCHIVE_GRACE_SECONDS = 15.0
STATIC = "static"


def _static(name: str) -> bytes:
    return (package_files.files(__package__) / STATIC / name).read_bytes()


@dataclass
class UiConfig:
    namespace: str | None  # None: every namespace
    read_only: bool = False
    token: str = field(default_factory=lambda: secrets.token_urlsafe(24))


class Broadcaster:
    """Fans cache changes out to the browsers' event streams, from the watch thread to the event loop."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.clients: set[Client] = set()

    def from_thread(self, keys: set[Key]) -> None:
        self.loop.call_soon_threadsafe(self._wake, keys)

    def _wake(self, keys: set[Key]) -> None:
        for client in self.clients:
            client.keys |= keys
            client.event.set()


@dataclass(eq=False)
class Client:
    event: asyncio.Event = field(default_factory=asyncio.Event)
    keys: set[Key] = field(default_factory=set)


class UiServer:
    """The application: build with `app()`, or run with `serve()` (what `dops ui` does)."""

    def __init__(self, kube: KubeClient, config: UiConfig) -> None:
        self.kube = kube
        self.config = config
        self.repo = DelegatedOperationRepository(kube)
        self.cache = OperationCache(self.repo, config.namespace)
        self.broadcaster: Broadcaster | None = None
        self._unsubscribe: Callable[[], None] | None = None
        self.allowed_hosts: set[str] = set()

    # ------------------------------------------------------------------------------------ lifecycle
    def app(self) -> web.Application:
        app = web.Application(middlewares=[self._guard])
        app.router.add_get("/", self.index)
        app.router.add_get("/static/{name}", self.static)
        app.router.add_get("/api/config", self.api_config)
        app.router.add_get("/api/operations", self.api_operations)
        app.router.add_get("/api/operations/{namespace}/{name}", self.api_operation)
        app.router.add_get("/api/operations/{namespace}/{name}/log", self.api_log)
        app.router.add_post("/api/operations/{namespace}/{name}/{action}", self.api_action)
        app.router.add_get("/api/targets", self.api_targets)
        app.router.add_get("/api/stream", self.api_stream)
        app.on_startup.append(self._start)
        app.on_shutdown.append(self._shutdown)
        return app

    async def _start(self, app: web.Application) -> None:
        self.broadcaster = Broadcaster(asyncio.get_running_loop())
        self._unsubscribe = self.cache.subscribe(self.broadcaster.from_thread)
        self.cache.start()

    async def _shutdown(self, app: web.Application) -> None:
        if self._unsubscribe is not None:
            self._unsubscribe()
        self.cache.stop()
        if self.broadcaster is not None:
            for client in list(self.broadcaster.clients):
                client.event.set()  # let the streams end
            self.broadcaster.clients.clear()

    # ------------------------------------------------------------------------------------ guard
    @web.middleware
    async def _guard(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        """Only requests addressed to this server (Host), and POSTs only with the page's token."""
        host = request.headers.get("Host", "")
        if self.allowed_hosts and host not in self.allowed_hosts:
            return _error(f'requests must be addressed to this server, not "{host}"', 403)
        if request.method == "POST":
            if self.config.read_only:
                return _error("dops ui runs read-only (--read-only): actions are disabled", 403)
            sent = request.headers.get(TOKEN_HEADER, "")
            if not secrets.compare_digest(sent, self.config.token):
                return _error("missing or wrong token: reload the page", 403)
        return await handler(request)

    # ------------------------------------------------------------------------------------ pages
    async def index(self, request: web.Request) -> web.Response:
        page = _static("index.html").decode()
        settings = {
            "token": "" if self.config.read_only else self.config.token,
            "readOnly": self.config.read_only,
            "namespace": self.config.namespace,
        }
        page = page.replace("__DOPS_CONFIG__", json.dumps(settings).replace("<", "\\u003c"))
        return web.Response(
            text=page,
            content_type="text/html",
            headers={"Cache-Control": "no-store", "Content-Security-Policy": _CSP},
        )

    async def static(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        types = {".js": "application/javascript", ".css": "text/css", ".svg": "image/svg+xml"}
        kind = next((t for ext, t in types.items() if name.endswith(ext)), None)
        if kind is None or "/" in name or name.startswith("."):
            raise web.HTTPNotFound()
        try:
            body = _static(name)
        except FileNotFoundError:
            raise web.HTTPNotFound() from None
        return web.Response(body=body, content_type=kind)

    async def api_config(self, request: web.Request) -> web.Response:
        return web.json_response(
            {
                "namespace": self.config.namespace,
                "readOnly": self.config.read_only,
                "server": self.kube.config.server,
                "synced": self.cache.synced.is_set(),
                "error": self.cache.error,
            }
        )

    # ------------------------------------------------------------------------------------ table
    async def api_operations(self, request: web.Request) -> web.Response:
        try:
            filters = Filters.from_query(request.query)
            page = parse_int(request.query.get("page"), 1, 1, 10**9, "page")
            size = parse_int(request.query.get("size"), DEFAULT_PAGE_SIZE, 1, 500, "size")
        except FilterError as exc:
            return _error(str(exc), 400)
        rows = self.cache.snapshot()
        body = select(rows, filters, page, size).to_json()
        body["facets"] = facets(rows) if request.query.get("facets") else None
        body["revision"] = self.cache.revision
        body["synced"] = self.cache.synced.is_set()
        body["error"] = self.cache.error
        return web.json_response(body)

    async def api_operation(self, request: web.Request) -> web.Response:
        namespace, name = request.match_info["namespace"], request.match_info["name"]
        obj = self.cache.get(namespace, name)
        if obj is None:
            return _error(f'operation "{name}" not found in namespace "{namespace}"', 404)
        status = obj.get("status") or {}
        body: JSON = {
            "row": row_of(obj).to_json(),
            "resource": obj,
            "timeline": timeline(status),
            "events": None,
        }
        if request.query.get("events"):
            body["events"] = await asyncio.to_thread(self._events, namespace, obj)
        return web.json_response(body)

    def _events(self, namespace: str, obj: JSON) -> list[JSON] | None:
        """Events about the operation, its Job and its pod (None when this user may not list events)."""
        meta = obj.get("metadata") or {}
        status = obj.get("status") or {}
        involved = [(c.KIND, meta.get("name")), ("Job", status.get("jobName")), ("Pod", status.get("podName"))]
        events = ResourceClient(self.kube, "", "v1", "events")
        found: list[JSON] = []
        try:
            for kind, name in involved:
                if name:
                    selector = f"involvedObject.name={name},involvedObject.kind={kind}"
                    found.extend(events.list(namespace, field_selector=selector).items)
        except ApiError:
            return None
        found.sort(key=lambda e: str(e.get("lastTimestamp") or e.get("eventTime") or ""))
        return [_event_json(e) for e in found]

    # ------------------------------------------------------------------------------------ targets
    async def api_targets(self, request: web.Request) -> web.Response:
        try:
            items = await asyncio.to_thread(self._targets)
        except ApiError as exc:
            return _error(exc.message, 502)
        return web.json_response({"items": items})

    def _targets(self) -> list[JSON]:
        targets = DelegationTargetRepository(self.kube).list(self.config.namespace).items
        rows = self.cache.snapshot()
        out: dict[tuple[str, str], JSON] = {}
        for t in targets:
            meta = t.get("metadata") or {}
            spec = t.get("spec") or {}
            key = (str(meta.get("namespace") or ""), str(meta.get("name") or ""))
            out[key] = {
                "namespace": key[0],
                "name": key[1],
                "mode": spec.get("mode") or "job",
                "image": spec.get("image"),
                "maxConcurrent": spec.get("maxConcurrent"),
                "status": t.get("status") or {},
                "defined": True,
            }
        for row in rows:  # targets operations name without a DelegationTarget resource (the built-in default)
            out.setdefault(
                (row.namespace, row.target),
                {"namespace": row.namespace, "name": row.target, "mode": None, "maxConcurrent": None, "defined": False},
            )
        for (namespace, name), item in out.items():
            item["counts"] = target_counts(rows, namespace, name)
        return sorted(out.values(), key=lambda i: (i["namespace"], i["name"]))

    # ------------------------------------------------------------------------------------ actions
    async def api_action(self, request: web.Request) -> web.Response:
        namespace, name = request.match_info["namespace"], request.match_info["name"]
        action = request.match_info["action"]
        try:
            body = await request.json() if request.can_read_body else {}
        except ValueError:
            return _error("the request body must be JSON", 400)
        if not isinstance(body, dict):
            return _error("the request body must be a JSON object", 400)
        if self.config.namespace is not None and namespace != self.config.namespace:
            return _error(f'this dashboard serves namespace "{self.config.namespace}" only', 403)
        svc = DelegatedOperationService(self.repo, namespace=namespace)
        try:
            answer = await asyncio.to_thread(actions.perform, svc, name, action, body)
        except actions.ActionRefused as exc:
            return _error(exc.message, exc.status)
        except ApiError as exc:
            return _error(exc.message, exc.code if exc.code and 400 <= exc.code < 600 else 502)
        return web.json_response(answer)

    # ------------------------------------------------------------------------------------ streams
    async def api_stream(self, request: web.Request) -> web.StreamResponse:
        """Server-sent events: `change` with the revision and the changed operations, coalesced."""
        assert self.broadcaster is not None
        response = await _sse(request)
        client = Client()
        self.broadcaster.clients.add(client)
        try:
            await _send(response, "hello", {"revision": self.cache.revision})
            while True:
                try:
                    await asyncio.wait_for(client.event.wait(), HEARTBEAT_SECONDS)
                except TimeoutError:
                    await response.write(b": keep-alive\n\n")
                    continue
                if client not in self.broadcaster.clients:
                    break
                await asyncio.sleep(PUSH_INTERVAL)  # coalesce a burst into one message
                client.event.clear()
                keys, client.keys = client.keys, set()
                changed = [f"{ns}/{n}" for ns, n in list(keys)[:100]]
                message = {"revision": self.cache.revision, "changed": changed, "many": len(keys) > 100}
                await _send(response, "change", message)
        except ConnectionResetError:
            pass
        finally:
            self.broadcaster.clients.discard(client)
        return response

    async def api_log(self, request: web.Request) -> web.StreamResponse:
        """The operation's log as server-sent events: from its pod (followed) while it exists, else the archive."""
        namespace, name = request.match_info["namespace"], request.match_info["name"]
        if self.cache.get(namespace, name) is None:
            return _error(f'operation "{name}" not found in namespace "{namespace}"', 404)
        response = await _sse(request)
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()
        stop = threading.Event()

        def put(item: tuple[str, Any]) -> None:
            with contextlib.suppress(RuntimeError):  # the server stopped meanwhile (its loop is closed)
                loop.call_soon_threadsafe(queue.put_nowait, item)

        def produce() -> None:
            try:
                for item in self._log_events(namespace, name, stop):
                    if stop.is_set():
                        return
                    put(item)
            except Exception as exc:  # one readable line in the log view
                put(("problem", str(getattr(exc, "message", None) or exc)))
            finally:
                put(("end", ""))

        threading.Thread(target=produce, name=f"dops-ui-log-{name}", daemon=True).start()
        try:
            while True:
                kind, data = await queue.get()
                lines = [data]
                if kind == "line":  # send what queued up meanwhile in one message
                    while not queue.empty() and len(lines) < 500:
                        more = queue.get_nowait()
                        if more[0] != "line":
                            await _send(response, "lines", lines)
                            lines = []
                            kind, data = more
                            break
                        lines.append(more[1])
                    if lines:
                        await _send(response, "lines", lines)
                    if kind == "line":
                        continue
                await _send(response, kind, data)
                if kind == "end":
                    break
        except ConnectionResetError:
            pass
        finally:
            stop.set()  # the producer ends at its next line (or when the followed container exits)
        return response

    def _follow_pod(self, namespace: str, pod: str, stop: threading.Event) -> Iterator[str]:
        """A pod's log, followed until its container exits or `stop` is set.

        A blocked read cannot be interrupted from another thread, so the follow is bounded: after
        LOG_IDLE_SECONDS without a line it reconnects (the log replays from its start; lines already
        shown are skipped) unless the viewer left meanwhile.
        """
        shown = 0
        failures = 0
        while not stop.is_set():
            seen = 0
            started = time.monotonic()
            try:
                for line in stream_lines(
                    self.kube,
                    pod_log_path(namespace, pod),
                    params={"follow": "true"},
                    read_timeout=LOG_IDLE_SECONDS,
                    accept="*/*",
                ):
                    seen += 1
                    if seen <= shown:
                        continue
                    shown += 1
                    failures = 0
                    yield line
                    if stop.is_set():
                        return
                return  # the container exited: its whole log was shown
            except ApiUnavailable:
                if time.monotonic() - started < LOG_IDLE_SECONDS / 2 and not seen:
                    failures += 1  # not a quiet log: the API server did not answer
                    if failures >= LOG_RECONNECT_FAILURES:
                        raise
                    stop.wait(min(0.5 * 2**failures, 5.0))

    def _log_events(self, namespace: str, name: str, stop: threading.Event) -> Iterator[tuple[str, Any]]:
        """What `dops logs -f` does, as (kind, data) items: "source", "line", "problem"; the caller adds "end"."""
        streamed: set[str] = set()  # pods whose log was shown (the archive would repeat it)
        gone: set[str] = set()  # pods that no longer exist
        grace_until: float | None = None
        loop_clock = threading.Event()  # a sleep that `stop` cannot interrupt is fine: one poll interval
        while not stop.is_set():
            obj = self.cache.get(namespace, name)
            if obj is None:
                yield "problem", "the operation was deleted"
                return
            status = obj.get("status") or {}
            state = str(status.get("runState") or "")
            terminal = state in ("completed", "failed")
            pod = status.get("podName")
            if pod and pod not in streamed and pod not in gone:
                try:
                    for line in self._follow_pod(namespace, str(pod), stop):
                        yield "line", line
                    if stop.is_set():
                        return
                    streamed.add(str(pod))
                    yield "source", f"end of pod {pod}"
                    continue
                except NotFound:
                    gone.add(str(pod))  # the pod is gone: the archive (below) has its log
                    continue
                except BadRequest:  # its container has not started yet
                    loop_clock.wait(LOG_POLL_SECONDS)
                    continue
            if terminal:
                if streamed:
                    return
                path = status.get("logPath")
                if path:
                    yield "source", f"archived log {path}"
                    try:
                        text = b"".join(LogArchive("/").open_stream(str(path))).decode("utf-8", "replace")
                    except ArchiveError as exc:
                        yield "problem", str(exc)
                        return
                    for line in text.splitlines():
                        yield "line", line
                    return
                if status.get("logUploadError"):
                    yield "problem", f"no archived log: {status.get('logUploadError')}"
                    return
                grace_until = grace_until or time.monotonic() + ARCHIVE_GRACE_SECONDS
                if time.monotonic() >= grace_until:
                    yield "problem", "its pod is gone and no archived log was recorded"
                    return
            loop_clock.wait(LOG_POLL_SECONDS)  # the cache changes with the watch: no API request here


_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)


def _event_json(event: JSON) -> JSON:
    involved = event.get("involvedObject") or {}
    meta = event.get("metadata") or {}
    return {
        "type": event.get("type"),
        "reason": event.get("reason"),
        "message": event.get("message"),
        "object": f"{involved.get('kind')}/{involved.get('name')}",
        "at": event.get("lastTimestamp") or event.get("eventTime") or meta.get("creationTimestamp"),
        "count": event.get("count"),
    }


def _error(message: str, status: int) -> web.Response:
    return web.json_response({"error": " ".join(message.split())}, status=status)


async def _sse(request: web.Request) -> web.StreamResponse:
    response = web.StreamResponse(
        headers={"Content-Type": "text/event-stream", "Cache-Control": "no-store", "X-Accel-Buffering": "no"}
    )
    await response.prepare(request)
    return response


async def _send(response: web.StreamResponse, event: str, data: Any) -> None:
    await response.write(f"event: {event}\ndata: {json.dumps(data)}\n\n".encode())


@contextlib.asynccontextmanager
async def running(server: UiServer, port: int = 0, host: str = "127.0.0.1") -> AsyncIterator[str]:
    """Serve on host:port (0: a free port) until the block ends; yields the URL."""
    runner = web.AppRunner(server.app(), handle_signals=False, shutdown_timeout=1.0)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    sockets = getattr(site._server, "sockets", None) or []
    bound = sockets[0].getsockname()[1] if sockets else port
    server.allowed_hosts = {f"127.0.0.1:{bound}", f"localhost:{bound}"}
    try:
        yield f"http://127.0.0.1:{bound}/"
    finally:
        await runner.cleanup()
