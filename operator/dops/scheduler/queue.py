"""`AdmissionQueue`: which queued operations may be admitted now (synchronous, no I/O).

Per target (namespace, name): a heap of waiting operations ordered by (-priority, queuedAt, name) and
the set of active ones (scheduled or running). An operation the scheduler picked is *reserved*: it
counts as active from the pick until its admission succeeded (the operation shows up as `scheduled`)
or failed (`release`). Heaps are lazy: an entry whose operation changed since it was pushed is skipped
when it surfaces, so every update is O(log n) and nothing is ever scanned.

Capacity comes from `capacity(target_key)`: the target's maxConcurrent, or None when operations on
that target must not be admitted (unknown target, `mode: external`). The global cap (0 = unlimited)
bounds the sum over all targets, and targets take turns (round robin) when it is the bottleneck.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Callable
from dataclasses import dataclass

from ..domain.reconciling import QueueEntry

Key = tuple[str, str]
TargetKey = tuple[str, str]


@dataclass(frozen=True)
class QueueStats:
    waiting: dict[TargetKey, int]
    active: dict[TargetKey, int]
    reserved: int
    total_active: int


class AdmissionQueue:
    def __init__(self, capacity: Callable[[TargetKey], int | None], global_cap: int = 0) -> None:
        self.capacity = capacity
        self.global_cap = global_cap
        self._entries: dict[Key, QueueEntry] = {}
        self._version: dict[Key, int] = {}
        self._heaps: dict[TargetKey, list[tuple[int, str, str, int, Key]]] = {}
        self._waiting: dict[TargetKey, set[Key]] = {}
        self._active: dict[TargetKey, set[Key]] = {}
        self._reserved: dict[Key, TargetKey] = {}
        self._counter = itertools.count()
        self._turn = 0

    # ------------------------------------------------------------------------------------ updates
    def observe(self, entry: QueueEntry) -> bool:
        """Record the current state of an operation; True when it may change what can be admitted."""
        key = entry.key
        old = self._entries.get(key)
        if old == entry:
            return False
        self._entries[key] = entry
        if old is not None and old.target != entry.target:
            self._drop_from(old.target, key)
        target = entry.target
        if entry.active:
            self._waiting.get(target, set()).discard(key)
            self._active.setdefault(target, set()).add(key)
            self._reserved.pop(key, None)
        else:
            self._active.get(target, set()).discard(key)
            if entry.waiting:
                self._waiting.setdefault(target, set()).add(key)
                version = next(self._counter)
                self._version[key] = version
                heapq.heappush(
                    self._heaps.setdefault(target, []), (-entry.priority, entry.queued_at, entry.name, version, key)
                )
            else:
                self._waiting.get(target, set()).discard(key)
                self._reserved.pop(key, None)
        return True

    def forget(self, key: Key) -> None:
        entry = self._entries.pop(key, None)
        self._version.pop(key, None)
        self._reserved.pop(key, None)
        if entry is not None:
            self._drop_from(entry.target, key)

    def _drop_from(self, target: TargetKey, key: Key) -> None:
        self._waiting.get(target, set()).discard(key)
        self._active.get(target, set()).discard(key)
        self._reserved.pop(key, None)

    def release(self, key: Key) -> None:
        """An admission did not happen (lost race, error): the operation no longer holds a slot."""
        self._reserved.pop(key, None)
        entry = self._entries.get(key)
        if entry is not None and entry.waiting:
            # Back in line at its original place.
            version = next(self._counter)
            self._version[key] = version
            heapq.heappush(
                self._heaps.setdefault(entry.target, []), (-entry.priority, entry.queued_at, entry.name, version, key)
            )

    # ------------------------------------------------------------------------------------ reads
    def is_reserved(self, key: Key) -> bool:
        return key in self._reserved

    def active_count(self, target: TargetKey) -> int:
        reserved = sum(1 for t in self._reserved.values() if t == target)
        return len(self._active.get(target, ())) + reserved

    def total_active(self) -> int:
        return sum(len(s) for s in self._active.values()) + len(self._reserved)

    def stats(self) -> QueueStats:
        return QueueStats(
            waiting={t: len(s) for t, s in self._waiting.items() if s},
            active={t: self.active_count(t) for t in set(self._active) | set(self._reserved.values())},
            reserved=len(self._reserved),
            total_active=self.total_active(),
        )

    def waiting_targets(self) -> list[TargetKey]:
        return [t for t, s in self._waiting.items() if s]

    # ------------------------------------------------------------------------------------ admission
    def pick(self, limit: int | None = None) -> list[Key]:
        """Reserve the operations to admit now (best first per target, targets taking turns)."""
        picked: list[Key] = []
        reserved_per_target: dict[TargetKey, int] = {}
        for target in self._reserved.values():
            reserved_per_target[target] = reserved_per_target.get(target, 0) + 1
        total = sum(len(s) for s in self._active.values()) + len(self._reserved)
        targets = sorted(self.waiting_targets())
        if not targets:
            return picked
        self._turn = (self._turn + 1) % len(targets)
        targets = targets[self._turn :] + targets[: self._turn]
        free: dict[TargetKey, int] = {}
        for target in targets:
            cap = self.capacity(target)
            if cap is None:
                continue
            free[target] = cap - len(self._active.get(target, ())) - reserved_per_target.get(target, 0)
        progress = True
        while progress:
            progress = False
            for target in targets:
                if limit is not None and len(picked) >= limit:
                    return picked
                if self.global_cap and total >= self.global_cap:
                    return picked
                if free.get(target, 0) <= 0:
                    continue
                popped = self._pop(target)
                if popped is None:
                    free[target] = 0
                    continue
                self._reserved[popped] = target
                picked.append(popped)
                free[target] -= 1
                total += 1
                progress = True
        return picked

    def _pop(self, target: TargetKey) -> Key | None:
        heap = self._heaps.get(target)
        while heap:
            _, _, _, version, key = heapq.heappop(heap)
            entry = self._entries.get(key)
            if entry is None or not entry.waiting or self._version.get(key) != version or key in self._reserved:
                continue
            return key
        return None

    def __len__(self) -> int:
        return len(self._entries)
