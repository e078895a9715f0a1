"""Built-in resources the operator drives: batch/v1 Jobs, pod logs, core/v1 Events, and a bookmark watch.

- Jobs go through the dict-based `ResourceClient` (one request, no model classes): create, get,
  merge-patch, delete with a propagation policy.
- Pod logs are read with the official `kubernetes` client (`read_namespaced_pod_log`, streamed in
  chunks without loading the whole log into memory).
- Events: `EventRecorder.post()` writes a core/v1 Event about an object, as client-go's recorder does
  (`involvedObject`, `reason`, `message`, `source.component`, counts and timestamps).
- `BookmarkWatch`: a watch that matches no object (field selector on an impossible name) with
  bookmarks allowed; every bookmark or reconnect proves the API server still streams to this process
  (the operator's liveness probe fails when this goes quiet).

Errors are the gateway's (`dops.k8s.errors`); nothing from `requests`/`kubernetes` leaks out.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
import secrets
import socket
import threading
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import requests

from ..api.times import format_time, utcnow
from ..domain.names import event_name
from .client import KubeClient
from .errors import ApiError, ApiUnavailable, error_from_response
from .resources import ResourceClient

log = logging.getLogger(__name__)

JSON = dict[str, Any]
LOG_CHUNK = 64 * 1024
MAX_EVENT_MESSAGE = 1024


class JobRepository(ResourceClient):
    """`batch/v1` Jobs."""

    def __init__(self, client: KubeClient) -> None:
        super().__init__(client, "batch", "v1", "jobs")


class PodRepository(ResourceClient):
    """`v1` Pods (reads)."""

    def __init__(self, client: KubeClient) -> None:
        super().__init__(client, "", "v1", "pods")


def _api_exception(exc: Exception, method: str, path: str) -> ApiError:
    status = getattr(exc, "status", None)
    if not isinstance(status, int) or status == 0:
        return ApiUnavailable(f"cannot reach the API server: {exc}", method=method, path=path)
    body: Any = getattr(exc, "body", None)
    if isinstance(body, bytes):
        body = body.decode(errors="replace")
    if isinstance(body, str):
        try:
            body = json.loads(body)
        except ValueError:
            pass
    return error_from_response(status, body if body else getattr(exc, "reason", ""), method=method, path=path)


class PodLogs:
    """Pod logs through the official kubernetes client (`client.config.api_client()`)."""

    def __init__(self, client: KubeClient) -> None:
        self.client = client

    def stream(self, namespace: str, pod: str, container: str = "worker") -> Iterator[bytes]:
        """The container's log, chunk by chunk; raises a gateway error (NotFound, BadRequest, ...) up front."""
        import kubernetes

        api = kubernetes.client.CoreV1Api(self.client.config.api_client())
        path = f"/api/v1/namespaces/{namespace}/pods/{pod}/log"
        try:
            response = api.read_namespaced_pod_log(
                pod, namespace, container=container, _preload_content=False, _request_timeout=(10, 60)
            )
        except Exception as exc:  # kubernetes.client.ApiException, urllib3 errors
            raise _api_exception(exc, "GET", path) from exc
        return self._chunks(response, path)

    @staticmethod
    def _chunks(response: Any, path: str) -> Iterator[bytes]:
        try:
            yield from response.stream(LOG_CHUNK)
        except Exception as exc:
            raise ApiUnavailable(f"reading the log failed: {exc}", method="GET", path=path) from exc
        finally:
            response.release_conn()

    def read(self, namespace: str, pod: str, container: str = "worker") -> bytes:
        return b"".join(self.stream(namespace, pod, container))


class EventRecorder:
    """Posts core/v1 Events about objects (the operator's `kubectl describe` trail)."""

    def __init__(self, client: KubeClient, component: str = "dops-operator", instance: str | None = None) -> None:
        self.events = ResourceClient(client, "", "v1", "events")
        self.component = component
        self.instance = instance or socket.gethostname()

    def body(self, obj: Mapping[str, Any], event_type: str, reason: str, message: str, now: dt.datetime) -> JSON:
        meta = obj.get("metadata") or {}
        stamp = format_time(now).split(".")[0] + "Z"
        text = message if len(message) <= MAX_EVENT_MESSAGE else message[: MAX_EVENT_MESSAGE - 3] + "..."
        return {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {
                "name": event_name(str(meta.get("name")), secrets.token_hex(8)),
                "namespace": meta.get("namespace"),
            },
            "involvedObject": {
                "apiVersion": obj.get("apiVersion"),
                "kind": obj.get("kind"),
                "name": meta.get("name"),
                "namespace": meta.get("namespace"),
                "uid": meta.get("uid"),
                "resourceVersion": meta.get("resourceVersion"),
            },
            "reason": reason,
            "message": text,
            "type": event_type,
            "source": {"component": self.component},
            "firstTimestamp": stamp,
            "lastTimestamp": stamp,
            "count": 1,
            "reportingComponent": self.component,
            "reportingInstance": self.instance,
        }

    def post(self, obj: Mapping[str, Any], event_type: str, reason: str, message: str) -> None:
        """Best effort: a failed event write is logged, never raised (events are advisory)."""
        namespace = (obj.get("metadata") or {}).get("namespace")
        try:
            self.events.create(namespace, self.body(obj, event_type, reason, message, utcnow()))
        except ApiError as exc:
            log.debug("event %s about %s not posted: %s", reason, (obj.get("metadata") or {}).get("name"), exc)


class BookmarkWatch:
    """A watch on `path` that matches nothing; `on_alive()` is called on every bookmark and (re)connect.

    Runs in its own daemon thread until `stop()`; each watch request ends after `timeout` seconds
    (server side), so `stop()` takes effect within that time even when no bookmark arrives.
    """

    def __init__(self, client: KubeClient, path: str, on_alive: Callable[[], None], timeout: int = 30) -> None:
        self.client = client
        self.path = path
        self.on_alive = on_alive
        self.timeout = max(1, int(timeout))
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._response: requests.Response | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="dops-bookmark-watch", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        response = self._response
        if response is not None:
            interrupt(response)
        if self._thread is not None:
            self._thread.join(5)

    def _run(self) -> None:
        http = self.client.config.http_client(timeout=self.timeout + 15)  # pykube's session: TLS + credentials
        params = {
            "watch": "true",
            "allowWatchBookmarks": "true",
            "fieldSelector": "metadata.name=dops-liveness-never-exists",
            "timeoutSeconds": str(self.timeout),
        }
        while not self._stop.is_set():
            try:
                with http.session.get(
                    self.client.config.server + self.path,
                    params=params,
                    stream=True,
                    timeout=(10, self.timeout + 15),
                ) as response:
                    self._response = response
                    if response.status_code >= 400:
                        raise ApiUnavailable(f"watch answered {response.status_code}")
                    self.on_alive()
                    for line in response.iter_lines():
                        if self._stop.is_set():
                            break
                        if line:
                            self.on_alive()
            except Exception as exc:  # network trouble: the probe reports staleness; retry shortly
                if self._stop.is_set():
                    break
                log.debug("bookmark watch on %s failed: %s", self.path, exc)
                self._stop.wait(2.0)
            finally:
                self._response = None
        http.session.close()


def interrupt(response: requests.Response) -> None:
    """Wake a read blocked on `response` in another thread by shutting its socket down.

    `response.close()` from another thread blocks behind the reader's buffer lock until the server
    ends the request; shutting the socket down makes the blocked read return at once, and the
    reading thread then closes the response itself.
    """
    connection = getattr(response.raw, "_connection", None)
    sock = getattr(connection, "sock", None)
    if sock is None:
        fp = getattr(getattr(response.raw, "_fp", None), "fp", None)
        sock = getattr(getattr(fp, "raw", None), "_sock", None)
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)
