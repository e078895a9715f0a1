"""A keyed work queue for asyncio, in the manner of client-go's: each key is processed by one worker at a time,
adds of a key that is already waiting collapse into one, an add during processing makes it run once
more afterwards, and delayed adds wait in one heap served by one task (no timer per key).

`process(key)` returns the seconds after which the key wants to run again (or None). An exception
is retried with exponential backoff (`base_backoff`·2ⁿ, at most `max_retries` times); after that the key
rests until its next event or the safety-net timer: nothing retries forever here. Neither step is
silent: each retry is logged (DEBUG: the caller's `on_error` reports the error itself) and giving up is
a WARNING that says what retries the key next (`give_up_note`). Failures a caller can act on (e.g. a
Job create the API server refuses) should be handled by `process` and returned as a delay instead.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import logging
import time
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar

log = logging.getLogger(__name__)

K = TypeVar("K", bound=Hashable)


class WorkQueue(Generic[K]):
    def __init__(
        self,
        process: Callable[[K], Awaitable[float | None]],
        *,
        workers: int = 16,
        max_retries: int = 5,
        base_backoff: float = 0.5,
        on_error: Callable[[K, BaseException], None] | None = None,
        give_up_note: str = "it is retried on its next event or by the safety-net timer",
    ) -> None:
        self.process = process
        self.workers = workers
        self.max_retries = max_retries
        self.base_backoff = base_backoff
        self.on_error = on_error
        self.give_up_note = give_up_note
        self._queue: asyncio.Queue[K] | None = None
        self._pending: set[K] = set()
        self._processing: set[K] = set()
        self._dirty: set[K] = set()
        self._delayed: list[tuple[float, int, K]] = []
        self._due: dict[K, float] = {}
        self._failures: dict[K, int] = {}
        self._counter = itertools.count()
        self._wake: asyncio.Event | None = None
        self._early: list[K] = []

    # ------------------------------------------------------------------------------------ adding
    def add(self, key: K) -> None:
        if key in self._processing:
            self._dirty.add(key)
            return
        if key in self._pending:
            return
        self._pending.add(key)
        if self._queue is None:
            self._early.append(key)
        else:
            self._queue.put_nowait(key)

    def add_after(self, key: K, delay: float) -> None:
        if delay <= 0:
            self.add(key)
            return
        when = time.monotonic() + delay
        due = self._due.get(key)
        if due is not None and due <= when:
            return
        self._due[key] = when
        heapq.heappush(self._delayed, (when, next(self._counter), key))
        if self._wake is not None:
            self._wake.set()

    def __len__(self) -> int:
        return len(self._pending) + len(self._processing)

    @property
    def delayed(self) -> int:
        return len(self._due)

    # ------------------------------------------------------------------------------------ running
    async def run(self, ready: asyncio.Event) -> None:
        self._queue = asyncio.Queue()
        self._wake = asyncio.Event()
        for key in self._early:
            self._queue.put_nowait(key)
        self._early.clear()
        await ready.wait()
        tasks = [asyncio.create_task(self._worker(), name=f"dops-reconcile-{i}") for i in range(self.workers)]
        tasks.append(asyncio.create_task(self._delayer(), name="dops-reconcile-delayer"))
        try:
            await asyncio.gather(*tasks)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _delayer(self) -> None:
        assert self._wake is not None
        while True:
            now = time.monotonic()
            while self._delayed and self._delayed[0][0] <= now:
                when, _, key = heapq.heappop(self._delayed)
                if self._due.get(key) == when:
                    del self._due[key]
                    self.add(key)
            timeout = self._delayed[0][0] - now if self._delayed else None
            self._wake.clear()
            try:
                await asyncio.wait_for(self._wake.wait(), timeout)
            except TimeoutError:
                pass

    async def _worker(self) -> None:
        assert self._queue is not None
        while True:
            key = await self._queue.get()
            self._pending.discard(key)
            self._processing.add(key)
            again: float | None = None
            try:
                again = await self.process(key)
                self._failures.pop(key, None)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                failures = self._failures.get(key, 0) + 1
                if self.on_error is not None:
                    self.on_error(key, exc)
                if failures <= self.max_retries:
                    self._failures[key] = failures
                    again = self.base_backoff * 2 ** (failures - 1)
                    log.debug("%s failed (attempt %d), retrying in %.1f s: %s", key, failures, again, exc)
                else:
                    self._failures.pop(key, None)
                    log.warning(
                        "giving up on %s after %d failed attempts (last error: %s); %s",
                        key,
                        failures,
                        exc,
                        self.give_up_note,
                    )
            finally:
                self._processing.discard(key)
            if key in self._dirty:
                self._dirty.discard(key)
                self.add(key)
            elif again is not None:
                self.add_after(key, again)
