"""The `dops ui` web server: an aiohttp app on 127.0.0.1 serving a small static page and a JSON API.

Why it is shaped this way:
- one `OperationCache` watch feeds every browser; table requests (filter, count, page) are answered
  from memory, and browsers learn about changes from one server-sent-event stream each (`/api/stream`),
  coalesced to at most a few messages a second, so an idle dashboard costs the API server one watch;
- the page's assets ship inside the package (no CDN, works offline);
- actions are POSTs that must carry the per-process token embedded in the page (a cross-site form or
  fetch cannot read it), and requests must name this server as their Host (no DNS rebinding);
- with `read_only` the actions are neither shown nor accepted;
- with `passthrough` (the chart's in-cluster dashboard) the server has no credentials of its own: every
  request must carry the user's token (`Authorization: Bearer`, an auth proxy's `X-Forwarded-Access-Token`,
  or the cookie the sign-in form sets), and everything done for it — the watch, events, logs, actions — is
  done with that token, so the API server's RBAC decides what each user sees and may do. Each token gets
  its own `View` (client, watch, cache), dropped when idle; a request without a token gets 401 and a page
  saying how to authenticate, a token the API refuses gets the API's own answer (401/403) in one line.
Kubernetes calls are blocking (requests), so handlers run them in threads.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import hashlib
import html
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
    Forbidden,
    KubeClient,
    NotFound,
    ResourceClient,
    Unauthorized,
    bearer_config,
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
# How often a log view whose log is quiet checks that its browser is still there (no I/O: the socket's state).
VIEWER_CHECK_SECONDS = 1.0
LOG_RECONNECT_FAILURES = 5
# After an operation finished, how long the log view waits for the operator to record the archive.
ARCHIVE_GRACE_SECONDS = 15.0
STATIC = "static"
# Passthrough: the cookie the sign-in form sets (HttpOnly, SameSite=Strict), and the proxy header read besides
# `Authorization: Bearer`.
TOKEN_COOKIE = "dops-token"
PROXY_TOKEN_HEADER = "X-Forwarded-Access-Token"
# Passthrough: a token the API accepted is asked again (one small list) after this long, so a revoked token
# stops seeing the cache its watch filled; a view nobody used for VIEW_IDLE_SECONDS (no open stream) is dropped.
RECHECK_SECONDS = 30.0
VIEW_IDLE_SECONDS = 600.0
MAX_VIEWS = 200


def _static(name: str) -> bytes:
    return (package_files.files(__package__) / STATIC / name).read_bytes()


@dataclass
class UiConfig:
    namespace: str | None  # None: every namespace
    read_only: bool = False
    token: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    # Act with each request's own bearer token (never this process's credentials): the in-cluster dashboard.
    passthrough: bool = False


def request_credential(headers: Any, cookies: Any) -> str | None:
    """The bearer token a passthrough request carries: its Authorization header, an auth proxy's
    X-Forwarded-Access-Token, else the sign-in cookie (None when there is none)."""
    authorization = str(headers.get("Authorization") or "").strip()
    scheme, _, value = authorization.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    for value in (headers.get(PROXY_TOKEN_HEADER), cookies.get(TOKEN_COOKIE)):
        if value and str(value).strip():
            return str(value).strip()
    return None


class Refused(Exception):
    """A passthrough request the API server (or the missing token) refused: status and one line."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


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


class View:
    """One identity's window on the cluster: its API client, the watch-fed cache, and the browsers it feeds."""

    def __init__(self, kube: KubeClient, namespace: str | None) -> None:
        self.kube = kube
        self.repo = DelegatedOperationRepository(kube)
        self.cache = OperationCache(self.repo, namespace)
        self.broadcaster: Broadcaster | None = None
        self._unsubscribe: Callable[[], None] | None = None
        self.used = time.monotonic()
        self.checked = 0.0  # when the API server last accepted this view's credentials (passthrough)
        self.streams = 0  # open event and log streams: a view with one is never idle

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        self.broadcaster = Broadcaster(loop)
        self._unsubscribe = self.cache.subscribe(self.broadcaster.from_thread)
        self.cache.start()

    def stop(self) -> None:
        if self._unsubscribe is not None:
            self._unsubscribe()
        self.cache.stop()
        if self.broadcaster is not None:
            for client in list(self.broadcaster.clients):
                client.event.set()  # let the streams end
            self.broadcaster.clients.clear()


# The view of the request being handled: set by the guard middleware, read by the handlers (same task).
_CURRENT_VIEW: contextvars.ContextVar[View] = contextvars.ContextVar("dops_ui_view")


def _view(request: web.Request) -> View:
    """The view the guard chose for `request` (the shared one, or its token owner's)."""
    view = _CURRENT_VIEW.get()
    view.used = time.monotonic()
    return view


class UiServer:
    """The application: build with `app()`, or run with `serve()` (what `dops ui` does).

    With the user's kubeconfig (the default) one `View` serves every browser. With `config.passthrough`,
    `kube` only says where the API server is (its credentials are never used): each token gets its own view.
    """

    def __init__(self, kube: KubeClient, config: UiConfig) -> None:
        self.kube = kube
        self.config = config
        self.local: View | None = None if config.passthrough else View(kube, config.namespace)
        self.views: dict[str, View] = {}
        self._views_lock: asyncio.Lock | None = None
        self._reaper: asyncio.Task[None] | None = None
        self.allowed_hosts: set[str] = set()

    @property
    def cache(self) -> OperationCache:
        """The shared cache of the kubeconfig mode (tests and the benchmark read it)."""
        assert self.local is not None, "a passthrough dashboard has one cache per user (server.views)"
        return self.local.cache

    @property
    def repo(self) -> DelegatedOperationRepository:
        assert self.local is not None, "a passthrough dashboard has no repository of its own"
        return self.local.repo

    # ------------------------------------------------------------------------------------ lifecycle
    def app(self) -> web.Application:
        app = web.Application(middlewares=[self._guard])
        app.router.add_get("/", self.index)
        app.router.add_get("/healthz", self.healthz)
        app.router.add_post("/login", self.login)
        app.router.add_post("/logout", self.logout)
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
        self._views_lock = asyncio.Lock()
        if self.local is not None:
            self.local.start(asyncio.get_running_loop())
        else:
            self._reaper = asyncio.create_task(self._reap())

    async def _shutdown(self, app: web.Application) -> None:
        if self._reaper is not None:
            self._reaper.cancel()
        for view in [*([self.local] if self.local else []), *self.views.values()]:
            view.stop()
        self.views.clear()

    async def _reap(self) -> None:
        """Drop the views nobody used for VIEW_IDLE_SECONDS (their watch ends, their cache is freed)."""
        while True:
            await asyncio.sleep(min(60.0, VIEW_IDLE_SECONDS / 4))
            now = time.monotonic()
            for key, view in list(self.views.items()):
                if view.streams == 0 and now - view.used > VIEW_IDLE_SECONDS:
                    self.views.pop(key, None)
                    view.stop()

    # ------------------------------------------------------------------------------------ passthrough
    async def view_for(self, token: str) -> View:
        """The view of `token`'s owner, made (and checked with the API server) on first use and re-checked
        every RECHECK_SECONDS; raises Refused with the API server's answer when it rejects the token."""
        assert self._views_lock is not None
        key = hashlib.sha256(token.encode()).hexdigest()
        async with self._views_lock:
            view = self.views.get(key)
            if view is None:
                view = View(KubeClient(bearer_config(self.kube.config, token), retries=1), self.config.namespace)
                fresh = True
            else:
                fresh = False
        if time.monotonic() - view.checked > RECHECK_SECONDS:
            try:
                await asyncio.to_thread(view.repo.list, self.config.namespace, limit=1)
            except (Unauthorized, Forbidden, NotFound) as exc:
                if not fresh:
                    async with self._views_lock:
                        if self.views.get(key) is view:
                            del self.views[key]
                    view.stop()
                raise Refused(*_refusal(exc)) from None
            except ApiError as exc:
                raise Refused(502, f"the Kubernetes API at {self.kube.config.server} failed: {exc.message}") from None
            view.checked = time.monotonic()
        if fresh:
            async with self._views_lock:
                if key in self.views:  # another request made it meanwhile
                    return self.views[key]
                if len(self.views) >= MAX_VIEWS:
                    raise Refused(503, f"dops ui serves {MAX_VIEWS} users at most: try again later")
                self.views[key] = view
                view.start(asyncio.get_running_loop())
        return view

    # ------------------------------------------------------------------------------------ guard
    @web.middleware
    async def _guard(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        """Only requests addressed to this server (Host), and POSTs only with the page's token; in passthrough,
        only requests carrying a token the API server accepts (each then acts as that token's owner)."""
        host = request.headers.get("Host", "")
        if self.allowed_hosts and host not in self.allowed_hosts:
            return _error(f'requests must be addressed to this server, not "{host}"', 403)
        if request.path == "/healthz" or request.path.startswith("/static/"):
            return await handler(request)  # no cluster data: no credentials needed
        if request.path in ("/login", "/logout"):
            if not self.config.passthrough:
                raise web.HTTPNotFound()
            origin = request.headers.get("Origin")
            if origin and origin.split("://", 1)[-1] != host:
                return _error("sign-in requests must come from this server's own page", 403)
            return await handler(request)
        if self.local is not None:
            _CURRENT_VIEW.set(self.local)
        else:
            token = request_credential(request.headers, request.cookies)
            try:
                if token is None:
                    raise Refused(401, "no credentials: this dashboard acts only with your own Kubernetes token")
                _CURRENT_VIEW.set(await self.view_for(token))
            except Refused as exc:
                return self._refused(request, exc)
        if request.method == "POST":
            if self.config.read_only:
                return _error("dops ui runs read-only (--read-only): actions are disabled", 403)
            sent = request.headers.get(TOKEN_HEADER, "")
            if not secrets.compare_digest(sent, self.config.token):
                return _error("missing or wrong token: reload the page", 403)
        return await handler(request)

    def _refused(self, request: web.Request, exc: Refused) -> web.Response:
        """401/403/...: JSON for the page's script, else a readable page on how to authenticate."""
        headers = {"WWW-Authenticate": 'Bearer realm="dops ui"'} if exc.status == 401 else {}
        if request.path.startswith("/api/"):
            response = _error(exc.message, exc.status)
            response.headers.update(headers)
            return response
        page = _SIGN_IN.format(
            title="Sign in" if exc.status == 401 else "Not allowed",
            message=html.escape(exc.message),
            server=html.escape(self.kube.config.server),
        )
        return web.Response(
            text=page,
            status=exc.status,
            content_type="text/html",
            headers={**headers, "Cache-Control": "no-store", "Content-Security-Policy": _SIGN_IN_CSP},
        )

    async def healthz(self, request: web.Request) -> web.Response:
        return web.Response(text="ok\n", headers={"Cache-Control": "no-store"})

    async def login(self, request: web.Request) -> web.Response:
        """The sign-in form: keep a token the API server accepts in an HttpOnly, SameSite=Strict cookie."""
        form = await request.post()
        token = str(form.get("token") or "").strip()
        try:
            if not token:
                raise Refused(401, "paste a token first")
            await self.view_for(token)
        except Refused as exc:
            return self._refused(request, exc)
        response = web.HTTPSeeOther("/")
        secure = request.secure or request.headers.get("X-Forwarded-Proto", "").lower() == "https"
        response.set_cookie(TOKEN_COOKIE, token, httponly=True, samesite="Strict", secure=secure, path="/")
        raise response

    async def logout(self, request: web.Request) -> web.Response:
        response = web.HTTPSeeOther("/")
        response.del_cookie(TOKEN_COOKIE, path="/")
        raise response

    # ------------------------------------------------------------------------------------ pages
    async def index(self, request: web.Request) -> web.Response:
        page = _static("index.html").decode()
        settings = {
            "token": "" if self.config.read_only else self.config.token,
            "readOnly": self.config.read_only,
            "namespace": self.config.namespace,
            "passthrough": self.config.passthrough,
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
        view = _view(request)
        return web.json_response(
            {
                "namespace": self.config.namespace,
                "readOnly": self.config.read_only,
                "passthrough": self.config.passthrough,
                "server": self.kube.config.server,
                "synced": view.cache.synced.is_set(),
                "error": view.cache.error,
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
        cache = _view(request).cache
        rows = cache.snapshot()
        body = select(rows, filters, page, size).to_json()
        body["facets"] = facets(rows) if request.query.get("facets") else None
        body["revision"] = cache.revision
        body["synced"] = cache.synced.is_set()
        body["error"] = cache.error
        return web.json_response(body)

    async def api_operation(self, request: web.Request) -> web.Response:
        namespace, name = request.match_info["namespace"], request.match_info["name"]
        view = _view(request)
        obj = view.cache.get(namespace, name)
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
            body["events"] = await asyncio.to_thread(self._events, view, namespace, obj)
        return web.json_response(body)

    def _events(self, view: View, namespace: str, obj: JSON) -> list[JSON] | None:
        """Events about the operation, its Job and its pod (None when this user may not list events)."""
        meta = obj.get("metadata") or {}
        status = obj.get("status") or {}
        involved = [(c.KIND, meta.get("name")), ("Job", status.get("jobName")), ("Pod", status.get("podName"))]
        events = ResourceClient(view.kube, "", "v1", "events")
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
            items = await asyncio.to_thread(self._targets, _view(request))
        except (Unauthorized, Forbidden) as exc:
            return _error(_refusal(exc)[1], exc.code or 403)
        except ApiError as exc:
            return _error(exc.message, 502)
        return web.json_response({"items": items})

    def _targets(self, view: View) -> list[JSON]:
        targets = DelegationTargetRepository(view.kube).list(self.config.namespace).items
        rows = view.cache.snapshot()
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
        svc = DelegatedOperationService(_view(request).repo, namespace=namespace)
        try:
            answer = await asyncio.to_thread(actions.perform, svc, name, action, body)
        except actions.ActionRefused as exc:
            return _error(exc.message, exc.status)
        except (Unauthorized, Forbidden) as exc:
            return _error(_refusal(exc)[1], exc.code or 403)
        except ApiError as exc:
            return _error(exc.message, exc.code if exc.code and 400 <= exc.code < 600 else 502)
        return web.json_response(answer)

    # ------------------------------------------------------------------------------------ streams
    async def api_stream(self, request: web.Request) -> web.StreamResponse:
        """Server-sent events: `change` with the revision and the changed operations, coalesced."""
        view = _view(request)
        broadcaster, cache = view.broadcaster, view.cache
        assert broadcaster is not None
        response = await _sse(request)
        client = Client()
        broadcaster.clients.add(client)
        view.streams += 1
        try:
            await _send(response, "hello", {"revision": cache.revision})
            while True:
                try:
                    await asyncio.wait_for(client.event.wait(), HEARTBEAT_SECONDS)
                except TimeoutError:
                    await response.write(b": keep-alive\n\n")
                    continue
                if client not in broadcaster.clients:
                    break
                await asyncio.sleep(PUSH_INTERVAL)  # coalesce a burst into one message
                client.event.clear()
                keys, client.keys = client.keys, set()
                changed = [f"{ns}/{n}" for ns, n in list(keys)[:100]]
                message = {"revision": cache.revision, "changed": changed, "many": len(keys) > 100}
                await _send(response, "change", message)
        except ConnectionResetError:
            pass
        finally:
            broadcaster.clients.discard(client)
            view.streams -= 1
            view.used = time.monotonic()
        return response

    async def api_log(self, request: web.Request) -> web.StreamResponse:
        """The operation's log as server-sent events: from its pod (followed) while it exists, else the archive."""
        namespace, name = request.match_info["namespace"], request.match_info["name"]
        view = _view(request)
        if view.cache.get(namespace, name) is None:
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
                for item in self._log_events(view, namespace, name, stop):
                    if stop.is_set():
                        return
                    put(item)
            except Exception as exc:  # one readable line in the log view
                put(("problem", str(getattr(exc, "message", None) or exc)))
            finally:
                put(("end", ""))

        threading.Thread(target=produce, name=f"dops-ui-log-{name}", daemon=True).start()
        view.streams += 1
        written = time.monotonic()
        try:
            while True:
                try:
                    kind, data = await asyncio.wait_for(queue.get(), VIEWER_CHECK_SECONDS)
                except TimeoutError:
                    # aiohttp does not cancel a handler whose client left, and a quiet log writes nothing that
                    # would fail: look at the connection, or the producer would follow the pod until it ends.
                    if _client_gone(request):
                        break
                    if time.monotonic() - written >= HEARTBEAT_SECONDS:  # also finds half-open connections
                        await response.write(b": keep-alive\n\n")
                        written = time.monotonic()
                    continue
                written = time.monotonic()
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
            view.streams -= 1
            view.used = time.monotonic()
        return response

    def _follow_pod(self, view: View, namespace: str, pod: str, stop: threading.Event, shown: int = 0) -> Iterator[str]:
        """A pod's log after its first `shown` lines, followed until its container exits or `stop` is set.

        A blocked read cannot be interrupted from another thread, so the follow is bounded: after
        LOG_IDLE_SECONDS without a line it reconnects (the log replays from its start; lines already
        shown are skipped) unless the viewer left meanwhile.
        """
        failures = 0
        while not stop.is_set():
            seen = 0
            started = time.monotonic()
            try:
                for line in stream_lines(
                    view.kube,
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

    def _log_events(self, view: View, namespace: str, name: str, stop: threading.Event) -> Iterator[tuple[str, Any]]:
        """What `dops logs -f` does, as (kind, data) items: "source", "line", "problem"; the caller adds "end"."""
        streamed: set[str] = set()  # pods whose log was shown (the archive would repeat it)
        shown: dict[str, int] = {}  # lines shown per pod: a pod followed again, or its archive, goes on from there
        gone: set[str] = set()  # pods that no longer exist
        grace_until: float | None = None
        loop_clock = threading.Event()  # a sleep that `stop` cannot interrupt is fine: one poll interval
        while not stop.is_set():
            obj = view.cache.get(namespace, name)
            if obj is None:
                yield "problem", "the operation was deleted"
                return
            status = obj.get("status") or {}
            state = str(status.get("runState") or "")
            terminal = state in ("completed", "failed")
            pod = status.get("podName")
            if pod and pod not in streamed and pod not in gone:
                try:
                    for line in self._follow_pod(view, namespace, str(pod), stop, shown.get(str(pod), 0)):
                        shown[str(pod)] = shown.get(str(pod), 0) + 1
                        yield "line", line
                    if stop.is_set():
                        return
                    streamed.add(str(pod))
                    yield "source", f"end of pod {pod}"
                    continue
                except NotFound:
                    gone.add(
                        str(pod)
                    )  # the pod is gone (perhaps half-way through a reconnect): the archive has its log
                    continue
                except BadRequest:  # its container has not started yet
                    loop_clock.wait(LOG_POLL_SECONDS)
                    continue
            if terminal:
                if streamed:
                    return
                path = status.get("logPath")
                if path:
                    skip = shown.get(str(pod), 0) if pod else 0  # the archive is this pod's log from its start
                    yield "source", f"archived log {path}" + (f", after the {skip} lines shown" if skip else "")
                    try:
                        text = b"".join(LogArchive("/").open_stream(str(path))).decode("utf-8", "replace")
                    except ArchiveError as exc:
                        yield "problem", str(exc)
                        return
                    for line in text.splitlines()[skip:]:
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


def _refusal(exc: ApiError) -> tuple[int, str]:
    """The API server's refusal of a user's token as (HTTP status, one line that says what to do)."""
    said = " ".join(str(exc.message).split())
    if isinstance(exc, Unauthorized):
        return 401, f"the Kubernetes API rejected your token (401 Unauthorized): {said}"
    if isinstance(exc, Forbidden):
        return 403, f"the Kubernetes API refused your token (403 Forbidden): {said}"
    return 404, (
        "the dops CRDs are not installed in the cluster (the API has no delegatedoperations.dops.io): "
        "install them with helm install dops helm/dops, or kubectl apply -f crds/"
    )


# The page shown instead of the dashboard to a request without an accepted token.
_SIGN_IN = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>dops ui: {title}</title>
<link rel="stylesheet" href="/static/app.css"><link rel="icon" href="data:,"></head>
<body><main class="sign-in">
<h1>dops ui: {title}</h1>
<p id="reason">{message}</p>
<p>This dashboard has no access of its own: it shows and does what <em>your</em> Kubernetes token allows,
on the API server {server}. Give it a token the API server accepts, in one of these ways:</p>
<ul>
<li>paste one here (it is kept in a cookie of this site only; <code>kubectl create token NAME -n NAMESPACE</code>
prints a ServiceAccount's):
<form method="post" action="/login"><input type="password" name="token" autocomplete="off"
 placeholder="bearer token"> <button type="submit">Sign in</button></form></li>
<li>put an auth proxy in front of it that sends <code>Authorization: Bearer TOKEN</code>
(or <code>X-Forwarded-Access-Token</code>) with every request;</li>
<li>or run the dashboard on your own machine with your kubeconfig: <code>dops ui</code>.</li>
</ul>
<form method="post" action="/logout"><button type="submit">Forget the token</button></form>
</main></body></html>
"""
_SIGN_IN_CSP = (
    "default-src 'none'; style-src 'self'; img-src data:; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
)

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


def _client_gone(request: web.Request) -> bool:
    """True once the client's connection closed (aiohttp drops the transport when it sees the close)."""
    transport = request.transport
    return transport is None or transport.is_closing()


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
    if host in ("127.0.0.1", "localhost"):  # loopback: no other name may reach it (DNS rebinding)
        server.allowed_hosts = {f"127.0.0.1:{bound}", f"localhost:{bound}"}
    # Any other address serves Service and Ingress names the server cannot know; it is passthrough-only
    # (`dops ui` refuses otherwise), where every request needs the user's own token anyway.
    try:
        yield f"http://{host if ':' not in host else f'[{host}]'}:{bound}/"
    finally:
        await runner.cleanup()
