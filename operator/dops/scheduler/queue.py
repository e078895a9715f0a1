"""`AdmissionQueue`: which queued operations may be admitted now (synchronous, no I/O).

Per target (namespace, name): a heap of waiting operations ordered by (-priority, queuedAt, name) and
the set of active ones (scheduled or running). An operation the scheduler picked is *reserved*: it
counts as active from the pick until its admission succeeded (the operation shows up as `scheduled`)
or failed (`release`). Heaps are lazy: an entry whose operation changed since it was pushed is skipped
when it surfaces, so every update is O(log n) and nothing is ever scanned.

Capacity comes from `capacity(target_key)`: the target's maxConcurrent, or None when operations on
that target must not be admitted (unknown target, `mode: external`). The global cap (0 = unlimited)
bounds the sum over all targets.

Fair share (issue 13): when the global cap is the bottleneck, *namespaces* take turns (round robin, one
admission per namespace per pass), and within a namespace its targets take turns; so a tenant cannot take
over the cap by creating more targets or queueing more operations. A namespace's turn admits up to
`namespace_weight(namespace)` operations (a DelegationPolicy's weight; 1 by default): weighted round robin.
`namespace_capacity(namespace)` is the administrator's ceiling on a namespace's active operations over all its
targets (a DelegationPolicy's maxConcurrent; None = no ceiling).
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
    def __init__(
        self,
        capacity: Callable[[TargetKey], int | None],
        global_cap: int = 0,
        namespace_capacity: Callable[[str], int | None] | None = None,
        namespace_weight: Callable[[str], int] | None = None,
    ) -> None:
        self.capacity = capacity
        self.global_cap = global_cap
        self.namespace_capacity = namespace_capacity or (lambda namespace: None)
        self.namespace_weight = namespace_weight or (lambda namespace: 1)
        self._entries: dict[Key, QueueEntry] = {}
        self._version: dict[Key, int] = {}
        self._heaps: dict[TargetKey, list[tuple[int, str, str, int, Key]]] = {}
        self._waiting: dict[TargetKey, set[Key]] = {}
        self._active: dict[TargetKey, set[Key]] = {}
        self._reserved: dict[Key, TargetKey] = {}
        self._counter = itertools.count()
        self._turn = 0
        self._target_turn: dict[str, int] = {}  # per namespace: which of its targets goes first next time

    # ------------------------------------------------------------------------------------ updates
    def observe(self, entry: QueueEntry) -> bool:
        """Record the current state of an operation; True when it may change what can be admitted."""
        key = entry.key
        old = self._entries.get(key)
        if old == entry:
            return False
        if entry.terminal:
            # A finished operation is neither in line nor holding a slot: it is not kept (100,000 stored operations
            # are mostly finished). Its end may free a slot.
            self.forget(key)
            return old is not None
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
        """Reserve the operations to admit now: best first per target; namespaces take turns, then their targets."""
        picked: list[Key] = []
        reserved_per_target: dict[TargetKey, int] = {}
        for target in self._reserved.values():
            reserved_per_target[target] = reserved_per_target.get(target, 0) + 1
        total = sum(len(s) for s in self._active.values()) + len(self._reserved)
        waiting = sorted(self.waiting_targets())
        if not waiting:
            return picked
        free: dict[TargetKey, int] = {}
        by_namespace: dict[str, list[TargetKey]] = {}
        for target in waiting:
            cap = self.capacity(target)
            if cap is None:
                continue
            free[target] = cap - len(self._active.get(target, ())) - reserved_per_target.get(target, 0)
            by_namespace.setdefault(target[0], []).append(target)
        namespace_free: dict[str, int | None] = {}
        for namespace in by_namespace:
            ceiling = self.namespace_capacity(namespace)
            namespace_free[namespace] = None if ceiling is None else ceiling - self._namespace_active(namespace)
        namespaces = sorted(by_namespace)
        if not namespaces:
            return picked
        self._turn = (self._turn + 1) % len(namespaces)
        namespaces = namespaces[self._turn :] + namespaces[: self._turn]
        weights = {namespace: max(1, self.namespace_weight(namespace)) for namespace in namespaces}
        progress = True
        while progress:
            progress = False
            for namespace in namespaces:
                for _ in range(weights[namespace]):
                    if limit is not None and len(picked) >= limit:
                        return picked
                    if self.global_cap and total >= self.global_cap:
                        return picked
                    room = namespace_free[namespace]
                    if room is not None and room <= 0:
                        break
                    popped = self._pick_in(namespace, by_namespace[namespace], free)
                    if popped is None:
                        break
                    key, target = popped
                    self._reserved[key] = target
                    picked.append(key)
                    free[target] -= 1
                    if room is not None:
                        namespace_free[namespace] = room - 1
                    total += 1
                    progress = True
        return picked

    def _pick_in(
        self, namespace: str, targets: list[TargetKey], free: dict[TargetKey, int]
    ) -> tuple[Key, TargetKey] | None:
        """One operation of `namespace`, from the next of its targets (in turn) that has room and a waiter."""
        start = self._target_turn.get(namespace, 0) % len(targets)
        for i in range(len(targets)):
            target = targets[(start + i) % len(targets)]
            if free.get(target, 0) <= 0:
                continue
            key = self._pop(target)
            if key is None:
                free[target] = 0
                continue
            self._target_turn[namespace] = (start + i + 1) % len(targets)
            return key, target
        return None

    def _namespace_active(self, namespace: str) -> int:
        active = sum(len(keys) for target, keys in self._active.items() if target[0] == namespace)
        return active + sum(1 for target in self._reserved.values() if target[0] == namespace)

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
