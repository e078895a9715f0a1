"""A level-triggered controller skeleton: store events enqueue keys, a worker reconciles each key.

Controllers run on the API server's own loop and use `ApiServer` in-process, so their writes go
through the same admission, resourceVersion and watch fan-out as client writes. Reconcile reads
the current state of the key (never the event payload), so duplicate or coalesced events are
harmless; `requeue_after` schedules time-based work (backoff, deadlines, TTLs) without timers
per object leaking past deletion.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import logging
import time
from collections.abc import Iterable

from ..apiserver import ApiServer
from ..store import Event

Key = tuple[str, str, str, str]  # (group, plural, namespace, name)

log = logging.getLogger("dops.emulator.controllers")


class WorkQueue:
    """Deduplicating queue of keys with delayed re-adds (the client-go workqueue, minus rate limiting)."""

    def __init__(self) -> None:
        self._ready: list[Key] = []
        self._queued: set[Key] = set()
        self._delayed: list[tuple[float, int, Key]] = []
        self._counter = 0
        self._wakeup = asyncio.Event()

    def add(self, key: Key) -> None:
        if key not in self._queued:
            self._queued.add(key)
            self._ready.append(key)
            self._wakeup.set()

    def add_after(self, key: Key, delay: float) -> None:
        if delay <= 0:
            self.add(key)
            return
        self._counter += 1
        heapq.heappush(self._delayed, (time.monotonic() + delay, self._counter, key))
        self._wakeup.set()

    def _promote(self) -> float | None:
        now = time.monotonic()
        while self._delayed and self._delayed[0][0] <= now:
            _, _, key = heapq.heappop(self._delayed)
            self.add(key)
        return self._delayed[0][0] - now if self._delayed else None

    async def get(self) -> Key:
        while True:
            wait = self._promote()
            if self._ready:
                key = self._ready.pop(0)
                self._queued.discard(key)
                return key
            self._wakeup.clear()
            if wait is None:
                await self._wakeup.wait()
            else:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wakeup.wait(), wait)

    def __len__(self) -> int:
        return len(self._ready) + len(self._delayed)


class Controller:
    """Subclasses set `watches` and implement `keys_for(event)` and `reconcile(key)`."""

    name = "controller"
    watches: tuple[tuple[str, str], ...] = ()

    def __init__(self, api: ApiServer) -> None:
        self.api = api
        self.queue = WorkQueue()
        self._task: asyncio.Task[None] | None = None

    def keys_for(self, event: Event) -> Iterable[Key]:
        meta = event.obj["metadata"]
        return [(event.resource[0], event.resource[1], meta.get("namespace", ""), meta["name"])]

    async def reconcile(self, key: Key) -> float | None:
        """Bring `key` towards its desired state; return seconds until it needs another look, or None."""
        raise NotImplementedError

    def _on_event(self, event: Event) -> None:
        if event.resource in self.watches:
            for key in self.keys_for(event):
                self.queue.add(key)

    def resync(self) -> None:
        """Enqueue every existing object (start-up: the state may predate the controller)."""
        for resource in self.watches:
            for obj in self.api.store.iter(resource):
                meta = obj["metadata"]
                self.queue.add((resource[0], resource[1], meta.get("namespace", ""), meta["name"]))

    def start(self) -> None:
        self.api.store.listeners.append(self._on_event)
        self.resync()
        self._task = asyncio.get_running_loop().create_task(self._run(), name=f"controller-{self.name}")

    async def stop(self) -> None:
        with contextlib.suppress(ValueError):
            self.api.store.listeners.remove(self._on_event)
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        while True:
            key = await self.queue.get()
            try:
                again = await self.reconcile(key)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("%s: reconcile of %s failed; retrying in 1s", self.name, key)
                again = 1.0
            if again is not None:
                self.queue.add_after(key, again)
            await asyncio.sleep(0)  # a busy queue must not starve the HTTP server sharing this loop
