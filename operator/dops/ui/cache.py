"""One watch of DelegatedOperations shared by every browser of a `dops ui` process.

A thread lists once, then watches from the list's resourceVersion (resuming where a watch ended,
relisting after 410 Gone, backing off while the API is unreachable) and keeps the current objects and
their table rows in memory. Browsers never cause API reads of the table: they read this cache, and
are told about changes through `subscribe()` callbacks (the server turns them into server-sent events).
`api_requests` counts what the cache asked of the API server, for the idle-traffic benchmark.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from ..k8s import ApiError, Gone, ResourceClient
from ..k8s.streams import BOOKMARK, watch
from .table import Row, row_of

JSON = dict[str, Any]
Key = tuple[str, str]
Listener = Callable[[set[Key]], None]

WATCH_SECONDS = 300
PAGE_SIZE = 500


class OperationCache:
    """The operations of one namespace (or all: None), kept current by a background watch."""

    def __init__(self, resource: ResourceClient, namespace: str | None) -> None:
        self.resource = resource
        self.namespace = namespace
        self.lock = threading.Lock()
        self.objects: dict[Key, JSON] = {}
        self.rows: dict[Key, Row] = {}
        self.revision = 0
        self.resource_version = ""
        self.synced = threading.Event()
        self.error: str | None = None  # the last failure, shown in the page's banner
        self.api_requests = 0
        self._listeners: list[Listener] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------------------------ reading
    def snapshot(self) -> list[Row]:
        with self.lock:
            return list(self.rows.values())

    def get(self, namespace: str, name: str) -> JSON | None:
        with self.lock:
            return self.objects.get((namespace, name))

    def subscribe(self, listener: Listener) -> Callable[[], None]:
        """Call `listener(changed keys)` after each change (from the watch thread); returns the unsubscriber."""
        with self.lock:
            self._listeners.append(listener)

        def unsubscribe() -> None:
            with self.lock:
                if listener in self._listeners:
                    self._listeners.remove(listener)

        return unsubscribe

    # ------------------------------------------------------------------------------------ running
    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="dops-ui-watch", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        # The watch thread holds a streaming request; it is a daemon and notices the flag at the next event
        # or bookmark, so stopping never waits for the server to end the watch.
        self._stop.set()

    def _notify(self, keys: set[Key]) -> None:
        with self.lock:
            listeners = list(self._listeners)
        for listener in listeners:
            try:
                listener(keys)
            except Exception:  # a closed browser must not stop the watch
                pass

    def _relist(self) -> None:
        objects: dict[Key, JSON] = {}
        token: str | None = None
        while True:
            self.api_requests += 1
            page = self.resource.list(self.namespace, limit=PAGE_SIZE, continue_token=token)
            for obj in page.items:
                meta = obj.get("metadata") or {}
                objects[(str(meta.get("namespace") or ""), str(meta.get("name") or ""))] = obj
            token = page.continue_token
            if not token:
                break
        with self.lock:
            changed = set(self.objects) | set(objects)
            self.objects = objects
            self.rows = {k: row_of(o) for k, o in objects.items()}
            self.resource_version = page.resource_version
            self.revision += 1
        self.synced.set()
        self._notify(changed)

    def apply(self, kind: str, obj: JSON) -> Key:
        """Apply one watch event to the cache (public for tests and the benchmark)."""
        meta = obj.get("metadata") or {}
        key = (str(meta.get("namespace") or ""), str(meta.get("name") or ""))
        with self.lock:
            if kind == "DELETED":
                self.objects.pop(key, None)
                self.rows.pop(key, None)
            else:
                self.objects[key] = obj
                self.rows[key] = row_of(obj)
            self.revision += 1
        return key

    def _run(self) -> None:
        failures = 0
        need_list = True
        while not self._stop.is_set():
            try:
                if need_list:
                    self._relist()
                    need_list = False
                self.api_requests += 1
                for kind, obj in watch(
                    self.resource, self.namespace, resource_version=self.resource_version, timeout_seconds=WATCH_SECONDS
                ):
                    if self._stop.is_set():
                        return
                    failures = 0
                    self.error = None
                    rv = str((obj.get("metadata") or {}).get("resourceVersion") or "")
                    if rv:
                        self.resource_version = rv
                    if kind == BOOKMARK:
                        continue
                    self._notify({self.apply(kind, obj)})
            except Gone:
                need_list = True
            except ApiError as exc:  # unreachable, forbidden, ...: say so and try again
                failures += 1
                # One dropped stream is routine (a proxy, a restarting server): resume at once, quietly.
                # A second failure in a row is an outage the page must show.
                if failures > 1:
                    self.error = exc.message
                self._stop.wait(0.2 if failures == 1 else min(0.5 * 2 ** (failures - 1), 10.0))
            except Exception as exc:  # keep serving the last known state
                failures += 1
                self.error = f"{type(exc).__name__}: {exc}"
                self._stop.wait(min(0.5 * 2**failures, 10.0))
            else:
                time.sleep(0)  # the server ended the watch (its timeout): resume from the last resourceVersion
