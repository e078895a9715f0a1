"""Informers: list, then watch from the list's resourceVersion, and hand every change to the event loop.

The operator's own Jobs and worker pods change about twelve times per operation (created, scheduled, running,
stopping, deleted, and the Job controller's status writes in between) and every change only updates the
reconcile's cache. Through a Kopf `@kopf.on.event` handler each of those events cost about 1 ms of the operator's
CPU (a per-object worker task, cause detection, the handler's keyword arguments): in `scripts/bench_operator.py`
Kopf's processing was about 70 % of the operator's CPU, more than half of it for Jobs and pods. An informer costs
the JSON decode and a dictionary update per event; Kopf keeps the DelegatedOperations and DelegationTargets.

What it does (client-go's reflector, in a thread of its own):

- LIST in pages (`limit`), each object delivered as ADDED; after a *re*list, every object delivered before and
  absent from the new listing is delivered as DELETED with its last known state (it was deleted while the watch
  could not say so: client-go's `DeletedFinalStateUnknown`), so no ghost outlives a relist;
- WATCH from the list's resourceVersion with bookmarks; a watch the server ends (its `timeoutSeconds`) or a
  dropped connection resumes from the last resourceVersion seen (an event's or a bookmark's) without a relist, at
  once (a stream that broke before its first line and within a second of opening counts as a failure instead);
- 410 Gone (the history no longer reaches that resourceVersion): relist;
- any other failure (5xx, 429, 401/403, the API server down): the same request again after a backoff (0.5 s
  doubling to 30 s), with a WARNING for the first failure of a streak and then one a minute, and an INFO when it
  recovers; `problem()` names a streak that lasted longer than `stale_after` seconds (the operator's health
  probe reports it).

Delivery: events are decoded in the informer's thread and passed to the event loop in batches
(`loop.call_soon_threadsafe`, one wake-up for everything that arrived meanwhile), in order, to
`deliver(type, object)`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import requests

from .client import JSON_TYPE, USER_AGENT, settle_environment
from .errors import ApiError, ApiUnavailable, Gone
from .resources import ResourceClient
from .streams import decode_event, response_error
from .workloads import interrupt

log = logging.getLogger(__name__)

JSON = dict[str, Any]
Deliver = Callable[[str, JSON], None]
Key = tuple[str, str]

RETRY_BASE = 0.5
RETRY_MAX = 30.0
WARNING_EVERY = 60.0  # while failures go on: one WARNING a minute, not one per attempt
PAGE_SIZE = 500
CONNECT_TIMEOUT = 10.0


class Informer:
    """List and watch `resource` (in `namespace`, or every namespace when None) matching `label_selector`."""

    def __init__(
        self,
        resource: ResourceClient,
        namespace: str | None,
        deliver: Deliver,
        *,
        loop: asyncio.AbstractEventLoop,
        label_selector: str = "",
        watch_timeout: int = 300,
        stale_after: float = 60.0,
        page_size: int = PAGE_SIZE,
    ) -> None:
        self.resource = resource
        self.namespace = namespace
        self.deliver = deliver
        self.loop = loop
        self.label_selector = label_selector
        self.watch_timeout = max(1, int(watch_timeout))
        self.stale_after = stale_after
        self.page_size = page_size
        self.path = resource.path(namespace)
        self.name = f"{resource.plural}" + (f" in {namespace}" if namespace else "")
        # What was delivered, by (namespace, name): the last known object as JSON bytes (an event's line as it came,
        # a listed object re-encoded without its managedFields), so a relist can deliver the deletions the watch
        # missed with the state they were last seen in. Bytes, not the decoded object: a few KiB per Job or pod
        # instead of the tens a decoded one takes (about 20 MiB for the Jobs and pods of 1,000 running operations).
        self.known: dict[Key, bytes] = {}
        self.resource_version = ""
        self.listed = threading.Event()  # the first listing was delivered (to the event loop's queue)
        self.lists = 0  # listings so far (the first, then one per 410 or failed resume)
        self.failing_since: float | None = None
        self.last_error: str = ""
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._response: requests.Response | None = None
        self._pending: list[tuple[str, JSON]] = []
        self._pending_lock = threading.Lock()
        self._warned_at = 0.0

    # ---------------------------------------------------------------------------------------------- lifecycle
    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name=f"dops-informer-{self.resource.plural}", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the thread: a blocked watch read is woken at once (its socket shut down)."""
        self._stop.set()
        response = self._response
        if response is not None:
            interrupt(response)
        if self._thread is not None:
            self._thread.join(timeout)

    def problem(self) -> str | None:
        """Why this informer cannot be trusted now (failing for longer than `stale_after`), or None."""
        since = self.failing_since
        if since is None or time.monotonic() - since < self.stale_after:
            return None
        return f"the watch of {self.name} has failed for {time.monotonic() - since:.0f} s ({self.last_error})"

    # ---------------------------------------------------------------------------------------------- the loop
    def _run(self) -> None:
        http = self.resource.client.config.http_client(timeout=self.watch_timeout + CONNECT_TIMEOUT)
        http.session.headers["User-Agent"] = USER_AGENT
        settle_environment(http.session, self.resource.client.config.server)
        delay = RETRY_BASE
        must_list = True
        try:
            while not self._stop.is_set():
                try:
                    if must_list:
                        self._list()
                        must_list = False
                    self._watch(http.session)
                    self._recovered()
                    delay = RETRY_BASE
                except Gone as exc:
                    if self._stop.is_set():
                        break
                    log.info("the watch of %s expired (%s); listing again", self.name, exc.message)
                    must_list = True
                except Interrupted as exc:  # after events arrived: resume at once (an API server restart, a proxy)
                    log.debug("the watch of %s was interrupted (%s); resuming", self.name, exc.message)
                except Exception as exc:  # ApiError, a dropped connection, an undecodable line
                    if self._stop.is_set():
                        break
                    self._failed(exc, delay)
                    # A resume needs the history from our resourceVersion: after a long outage it may be gone
                    # (410 on the next watch, which relists); a failed listing is retried from scratch.
                    self.resource.client.config.refresh_token(force=_unauthorized(exc))
                    self._stop.wait(delay)
                    delay = min(delay * 2, RETRY_MAX)
        finally:
            http.session.close()

    def _list(self) -> None:
        listed: dict[Key, bytes] = {}
        token: str | None = None
        resource_version = ""
        while True:
            page = self.resource.list(
                self.namespace, label_selector=self.label_selector, limit=self.page_size, continue_token=token
            )
            batch = []
            for obj in page.items:
                key = _key(obj)
                listed[key] = _remembered(obj)
                batch.append(("ADDED", obj))
            self._enqueue(batch)
            resource_version = page.resource_version or resource_version
            token = page.continue_token
            if self._stop.is_set():
                return  # a partial listing must not announce deletions
            if not token:
                break
        missed = [("DELETED", _recalled(raw)) for key, raw in self.known.items() if key not in listed]
        if missed:
            log.info("%d %s were deleted while their watch was down; forgetting them", len(missed), self.name)
            self._enqueue(missed)
        self.known = listed
        self.resource_version = resource_version
        self.lists += 1
        self.listed.set()

    def _watch(self, session: requests.Session) -> None:
        """One watch request, from `resource_version`, until the server ends it (returns) or it fails (raises)."""
        params = {
            "watch": "true",
            "resourceVersion": self.resource_version,
            "allowWatchBookmarks": "true",
            "labelSelector": self.label_selector or None,
            "timeoutSeconds": str(self.watch_timeout),
        }
        self.resource.client.config.refresh_token()
        try:
            response = session.get(
                self.resource.client.config.server + self.path,
                params={k: v for k, v in params.items() if v},
                headers={"Accept": JSON_TYPE},
                stream=True,
                timeout=(CONNECT_TIMEOUT, self.watch_timeout + CONNECT_TIMEOUT),
            )
        except requests.exceptions.RequestException as exc:
            raise ApiUnavailable(f"cannot reach the API server: {exc}", method="GET", path=self.path) from exc
        with response:
            self._response = response
            healthy = False  # the stream worked: it delivered a line, or stayed open for a second
            opened = time.monotonic()
            try:
                if response.status_code >= 400:
                    raise response_error(response, self.path)
                self._recovered()
                for line in response.iter_lines(chunk_size=None):
                    if self._stop.is_set():
                        return
                    if line:
                        self._event(line)
                        healthy = True
            except requests.exceptions.RequestException as exc:
                # A stream that worked is resumed at once; one that broke at once counts as a failure (backoff), so
                # a server that drops every watch as soon as it starts is not hammered.
                healthy = healthy or time.monotonic() - opened >= 1.0
                error = Interrupted if healthy else ApiUnavailable
                raise error(f"the watch stream was interrupted: {exc}", method="GET", path=self.path) from exc
            finally:
                self._response = None

    def _event(self, line: bytes) -> None:
        kind, obj = decode_event(line, self.path)
        version = (obj.get("metadata") or {}).get("resourceVersion")
        if version:
            self.resource_version = str(version)
        if kind == "BOOKMARK":
            return
        key = _key(obj)
        if kind == "DELETED":
            self.known.pop(key, None)
        else:
            self.known[key] = line  # an event line: {"type": ..., "object": ...}
        self._enqueue([(kind, obj)])

    # ---------------------------------------------------------------------------------------------- delivery
    def _enqueue(self, events: list[tuple[str, JSON]]) -> None:
        if not events:
            return
        with self._pending_lock:
            wake = not self._pending
            self._pending.extend(events)
        if wake:
            with contextlib.suppress(RuntimeError):  # the loop is closed: the operator is stopping
                self.loop.call_soon_threadsafe(self._drain)

    def _drain(self) -> None:
        """On the event loop: everything that arrived since the last drain, in order."""
        with self._pending_lock:
            events, self._pending = self._pending, []
        for kind, obj in events:
            try:
                self.deliver(kind, obj)
            except Exception:  # one bad object must not cost the others their delivery
                log.exception("handling a %s event of %s failed", kind, self.name)

    # ---------------------------------------------------------------------------------------------- failures
    def _failed(self, exc: Exception, delay: float) -> None:
        now = time.monotonic()
        self.last_error = str(exc.message if isinstance(exc, ApiError) else exc)
        first = self.failing_since is None
        if first:
            self.failing_since = now
        if first or now - self._warned_at >= WARNING_EVERY:
            self._warned_at = now
            log.warning(
                "the watch of %s failed: %s; retrying in %.1f s (and with backoff up to %.0f s while it fails)",
                self.name,
                self.last_error,
                delay,
                RETRY_MAX,
            )

    def _recovered(self) -> None:
        since = self.failing_since
        if since is not None:
            self.failing_since = None
            log.info("the watch of %s works again after %.1f s", self.name, time.monotonic() - since)


class Interrupted(ApiUnavailable):
    """A watch stream broke after it had delivered events (resumed at once, without backoff)."""


def _key(obj: JSON) -> Key:
    meta = obj.get("metadata") or {}
    return str(meta.get("namespace") or ""), str(meta.get("name") or "")


def _remembered(obj: JSON) -> bytes:
    """A listed object as `known` keeps it: an event-shaped line without its managedFields (the bulk of its
    metadata, and nothing a deletion needs)."""
    meta = obj.get("metadata")
    if isinstance(meta, dict) and "managedFields" in meta:
        obj = {**obj, "metadata": {k: v for k, v in meta.items() if k != "managedFields"}}
    return json.dumps({"object": obj}, separators=(",", ":")).encode()


def _recalled(raw: bytes) -> JSON:
    """The object `known` keeps as `raw` (an event's line, or `_remembered`'s)."""
    obj: JSON = json.loads(raw)["object"]
    return obj


def _unauthorized(exc: Exception) -> bool:
    return isinstance(exc, ApiError) and exc.code == 401


__all__ = ["Informer"]
