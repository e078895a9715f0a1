"""Plain-HTTP helpers for conformance tests: a thin REST client and a watch-stream reader.

The reader runs in its own thread and feeds parsed events into a queue, so a test can wait for the
next event with a timeout, close the stream mid-way (like a client that goes away) and see when the
server ended it.
"""

from __future__ import annotations

import contextlib
import json
import queue
import socket
import threading
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode

import requests

from tests.builders import WidgetCRD
from tests.planes import Target, as_plane, install_test_crd

JSON = dict[str, Any]
TABLE_ACCEPT = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json"
CM = "/api/v1/namespaces/default/configmaps"
WIDGETS = "/apis/example.com/v1/namespaces/default/widgets"
CRDS = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions"
MERGE = {"Content-Type": "application/merge-patch+json"}
JSON_PATCH = {"Content-Type": "application/json-patch+json"}


class Kube:
    """requests against a control plane (a Plane, an EmbeddedServer or a plain URL), one keep-alive session."""

    def __init__(self, target: Target) -> None:
        plane = self.plane = as_plane(target)
        self.url = plane.url.rstrip("/")
        self.session = plane.session()

    def request(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        kwargs.setdefault("timeout", 30)
        return self.session.request(method, self.url + path, **kwargs)

    def get(self, path: str, **kwargs: Any) -> requests.Response:
        return self.request("GET", path, **kwargs)

    def post(self, path: str, body: Any, **kwargs: Any) -> requests.Response:
        return self.request("POST", path, json=body, **kwargs)

    def put(self, path: str, body: Any, **kwargs: Any) -> requests.Response:
        return self.request("PUT", path, json=body, **kwargs)

    def patch(
        self, path: str, body: Any, content_type: str = "application/merge-patch+json", **kw: Any
    ) -> requests.Response:
        return self.request("PATCH", path, data=json.dumps(body), headers={"Content-Type": content_type}, **kw)

    def delete(self, path: str, **kwargs: Any) -> requests.Response:
        return self.request("DELETE", path, **kwargs)

    def ok(self, response: requests.Response, *codes: int) -> JSON:
        """The JSON body, asserting the status code (200/201 unless given)."""
        expected = codes or (200, 201)
        assert response.status_code in expected, f"{response.status_code}: {response.text}"
        body: JSON = response.json()
        return body

    def create(self, path: str, body: JSON) -> JSON:
        return self.ok(self.post(path, body), 201)

    def install_crd(self, crd: WidgetCRD | JSON | None = None) -> JSON:
        """Create a CRD (a builder or a built manifest) and wait until its resources are served."""
        return install_test_crd(self.plane, (crd or WidgetCRD()).build() if not isinstance(crd, dict) else crd)

    def close(self) -> None:
        self.session.close()


class WatchStream:
    """One streaming watch request; events arrive in `events` (a queue) from a reader thread.

    `None` in the queue marks the end of the stream (server closed it, or the client did).
    """

    END = None

    def __init__(
        self, target: Target, path: str, params: dict[str, Any] | None = None, headers: dict[str, str] | None = None
    ) -> None:
        query = dict(params or {})
        query.setdefault("watch", "true")
        self.conn = as_plane(target).connection(timeout=60)
        self.conn.request("GET", path + "?" + urlencode(query), headers=headers or {})
        self.response = self.conn.getresponse()
        self.status = self.response.status
        self.headers = dict(self.response.getheaders())
        self.events: queue.Queue[JSON | None] = queue.Queue()
        self.arrivals: list[float] = []  # monotonic arrival time of each event
        self.ended_at: float | None = None
        self.opened_at = time.monotonic()
        self.error: BaseException | None = None
        self._closed = False
        self._thread = threading.Thread(target=self._read, name="watch-reader", daemon=True)
        if self.status == 200:
            self._thread.start()
        else:
            self.body = self.response.read()
            self.ended_at = time.monotonic()

    def _read(self) -> None:
        try:
            while True:
                line = self.response.readline()
                if not line:
                    break
                if line.strip():
                    self.arrivals.append(time.monotonic())
                    self.events.put(json.loads(line))
        except Exception as exc:
            if not self._closed:
                self.error = exc
        finally:
            self.ended_at = time.monotonic()
            self.events.put(self.END)

    def next(self, timeout: float = 5.0) -> JSON:
        """The next event; fails if the stream ends or nothing arrives within `timeout`."""
        try:
            event = self.events.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"no watch event within {timeout}s") from None
        if event is None:
            self.events.put(None)
            raise AssertionError(f"watch stream ended (error: {self.error!r})")
        return event

    def take(self, count: int, timeout: float = 5.0) -> list[JSON]:
        return [self.next(timeout) for _ in range(count)]

    def until(self, predicate: Callable[[JSON], bool], timeout: float = 5.0) -> list[JSON]:
        """Events up to and including the first one matching `predicate`."""
        seen: list[JSON] = []
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"no matching watch event within {timeout}s; saw {json.dumps(seen)[:2000]}")
            event = self.next(remaining)
            seen.append(event)
            if predicate(event):
                return seen

    def rest(self, timeout: float = 10.0) -> list[JSON]:
        """Every event until the server ends the stream (fails if it does not within `timeout`)."""
        seen: list[JSON] = []
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"stream still open after {timeout}s; saw {json.dumps(seen)[:2000]}")
            try:
                event = self.events.get(timeout=remaining)
            except queue.Empty:
                continue
            if event is None:
                self.events.put(None)
                return seen
            seen.append(event)

    def quiet(self, seconds: float) -> list[JSON]:
        """Events (excluding bookmarks) arriving within `seconds`; used to assert that nothing happens."""
        seen: list[JSON] = []
        deadline = time.monotonic() + seconds
        while (remaining := deadline - time.monotonic()) > 0:
            try:
                event = self.events.get(timeout=remaining)
            except queue.Empty:
                break
            if event is None:
                self.events.put(None)
                break
            if event.get("type") != "BOOKMARK":
                seen.append(event)
        return seen

    def abort(self) -> None:
        """Go away mid-stream, as a killed client does: shut the socket down without reading further."""
        self._closed = True
        sock = self.conn.sock
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        if self._thread.is_alive():
            self._thread.join(5)
        self.conn.close()

    def close(self) -> None:
        if self.ended_at is None:
            self.abort()
        else:
            self.conn.close()

    def __enter__(self) -> WatchStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def names(items: list[JSON]) -> list[str]:
    return [item["metadata"]["name"] for item in items]


def summary(events: list[JSON]) -> list[tuple[str, str]]:
    """(type, name) per event; bookmarks and errors show their kind instead of a name."""
    out = []
    for event in events:
        obj = event["object"]
        out.append((event["type"], obj.get("metadata", {}).get("name") or obj.get("kind", "")))
    return out


class LineReader:
    """Lines of a subprocess's stdout, read in a thread so a test can wait for each with a timeout."""

    def __init__(self, stream: Any) -> None:
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.seen: list[str] = []
        self._thread = threading.Thread(target=self._read, args=(stream,), name="line-reader", daemon=True)
        self._thread.start()

    def _read(self, stream: Any) -> None:
        try:
            for line in stream:
                self.lines.put(line.rstrip("\n"))
        except (OSError, ValueError):
            pass
        finally:
            self.lines.put(None)

    def next(self, timeout: float = 10.0) -> str:
        try:
            line = self.lines.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"no output line within {timeout}s; so far: {self.seen}") from None
        if line is None:
            self.lines.put(None)
            raise AssertionError(f"output ended; so far: {self.seen}")
        self.seen.append(line)
        return line

    def take(self, count: int, timeout: float = 10.0) -> list[str]:
        return [self.next(timeout) for _ in range(count)]
