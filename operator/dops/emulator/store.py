"""In-memory object storage with one global resourceVersion, a bounded event history and watch fan-out.

Design decisions:
- Everything runs on one asyncio loop and every store method is synchronous, so a write, its
  history entry and its fan-out to watchers happen atomically: a watcher registered in the same
  step as a snapshot can never miss or duplicate an event (that is what makes `resourceVersion`
  resumption and `sendInitialEvents` exact).
- Stored objects are never mutated in place; a write stores a new dict. Events, history and
  list snapshots can therefore share references without copying.
- Each watcher decides ADDED/MODIFIED/DELETED by matching its filter against the old and the new
  version (an object leaving a label selector is a DELETED for that watcher, entering is ADDED).
- The JSON encoding of an object is cached per event so fan-out to N watchers encodes once, and the response
  to the write that stored it reuses it too (`encoded`).
- Selector indexes (value → keys, per label key or field path) are built on the first list that asks for
  them and kept up to date by every write, so a selective list of 100,000 objects looks at its matches
  only instead of running the selector over every object. An index forgets an object's old value by
  re-reading the old stored version, which is exact because stored objects are never mutated in place.
"""

from __future__ import annotations

import asyncio
import json
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

JSON = dict[str, Any]
ResourceKey = tuple[str, str]  # (group, plural)
ObjectKey = tuple[str, str]  # (namespace, name); namespace "" for cluster-scoped objects
IndexName = tuple[str, str]  # ("label", key) or ("field", path)
# The indexed value of one object: a string, or None to leave the object out (a label it lacks).
Extractor = Callable[[JSON], str | None]

ADDED = "ADDED"
MODIFIED = "MODIFIED"
DELETED = "DELETED"


# One encoder for every response: `json.dumps` with options builds a new JSONEncoder per call (~1 µs, which
# adds up over the per-item encoding of 10,000-object lists).
_encode = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode


def dumps(obj: Any) -> bytes:
    return _encode(obj).encode()


@dataclass
class Event:
    rv: int
    type: str
    resource: ResourceKey
    obj: JSON
    old: JSON | None
    _encoded: bytes | None = None

    def encoded_object(self) -> bytes:
        if self._encoded is None:
            self._encoded = dumps(self.obj)
        return self._encoded


Filter = Callable[[JSON], bool]


@dataclass(eq=False)
class Watcher:
    """One open watch stream. The HTTP layer drains `pending` whenever `wakeup` is set."""

    resource: ResourceKey
    namespace: str | None
    matches: Filter | None = None
    max_pending: int = 50_000
    pending: deque[tuple[str, Event]] = field(default_factory=deque)
    wakeup: asyncio.Event = field(default_factory=asyncio.Event)
    overflowed: bool = False
    closed: bool = False
    # Set by fault injection / expiry: the stream sends one ERROR with this Status, then closes.
    error: JSON | None = None

    def _visible(self, obj: JSON | None) -> bool:
        if obj is None:
            return False
        if self.namespace is not None and obj["metadata"].get("namespace", "") != self.namespace:
            return False
        return self.matches is None or self.matches(obj)

    def offer(self, event: Event) -> None:
        if self.closed:
            return
        new_visible = event.type != DELETED and self._visible(event.obj)
        old_visible = self._visible(event.old) if event.type != ADDED else False
        if event.type == DELETED:
            kind = DELETED if self._visible(event.obj) or old_visible else None
        elif new_visible and old_visible:
            kind = MODIFIED
        elif new_visible:
            kind = ADDED
        elif old_visible:
            kind = DELETED
        else:
            kind = None
        if kind is None:
            return
        if len(self.pending) >= self.max_pending:
            # A consumer this far behind is closed, as the real watch cache does; it re-watches from its RV.
            self.overflowed = True
            self.wakeup.set()
            return
        self.pending.append((kind, event))
        self.wakeup.set()

    def fail(self, status: JSON) -> None:
        self.error = status
        self.wakeup.set()

    def close(self) -> None:
        self.closed = True
        self.wakeup.set()


class HistoryExpired(Exception):
    """The requested resourceVersion is older than the retained history."""

    def __init__(self, requested: int, oldest: int) -> None:
        super().__init__(f"too old resource version: {requested} ({oldest})")
        self.requested = requested
        self.oldest = oldest


@dataclass
class Index:
    """value → keys of the objects of one resource that have it (objects whose extractor says None are left out)."""

    extract: Extractor
    keys: dict[str, set[ObjectKey]] = field(default_factory=dict)

    def add(self, key: ObjectKey, obj: JSON) -> None:
        value = self.extract(obj)
        if value is not None:
            self.keys.setdefault(value, set()).add(key)

    def discard(self, key: ObjectKey, obj: JSON) -> None:
        value = self.extract(obj)
        if value is None:
            return
        keys = self.keys.get(value)
        if keys is not None:
            keys.discard(key)
            if not keys:
                del self.keys[value]

    def having(self, values: Iterable[str]) -> set[ObjectKey]:
        """The keys of objects whose value is one of `values` (maybe the index's own set: read it, never change it)."""
        return _union([self.keys.get(value) or _NO_KEYS for value in values])

    def indexed(self) -> set[ObjectKey]:
        """The keys of every object with a value at all (for a label: every object carrying the key); read-only."""
        return _union(list(self.keys.values()))


_NO_KEYS: set[ObjectKey] = set()


def _union(sets: list[set[ObjectKey]]) -> set[ObjectKey]:
    if len(sets) == 1:
        return sets[0]  # no copy: callers only read
    found: set[ObjectKey] = set()
    for keys in sets:
        found |= keys
    return found


class Store:
    def __init__(self, history_size: int = 20_000, initial_rv: int = 1000) -> None:
        self.rv = initial_rv
        self._objects: dict[ResourceKey, dict[ObjectKey, JSON]] = {}
        self._sorted_keys: dict[ResourceKey, list[ObjectKey] | None] = {}
        self._history: deque[Event] = deque(maxlen=history_size)
        # The oldest RV a watch may resume from: every event after it is still in history.
        self._compacted_rv = initial_rv
        self._watchers: dict[ResourceKey, set[Watcher]] = {}
        self._indexes: dict[ResourceKey, dict[IndexName, Index]] = {}
        self.listeners: list[Callable[[Event], None]] = []

    # ----------------------------------------------------------------------------- reads
    def get(self, resource: ResourceKey, namespace: str, name: str) -> JSON | None:
        bucket = self._objects.get(resource)
        return bucket.get((namespace, name)) if bucket else None

    def count(self, resource: ResourceKey) -> int:
        return len(self._objects.get(resource) or ())

    def iter(
        self, resource: ResourceKey, namespace: str | None = None, after: ObjectKey | None = None
    ) -> Iterator[JSON]:
        """Objects in etcd key order (namespace, name), optionally only one namespace and after a key."""
        bucket = self._objects.get(resource)
        if not bucket:
            return
        keys = self._sorted_keys.get(resource)
        if keys is None:
            keys = sorted(bucket)
            self._sorted_keys[resource] = keys
        start = 0
        if namespace is not None or after is not None:
            import bisect

            lower: ObjectKey = (namespace, "") if namespace is not None else ("", "")
            if after is not None and after > lower:
                start = bisect.bisect_right(keys, after)
            else:
                start = bisect.bisect_left(keys, lower)
        for index in range(start, len(keys)):
            key = keys[index]
            if namespace is not None and key[0] != namespace:
                break
            obj = bucket.get(key)
            if obj is not None:
                yield obj

    def iter_keys(
        self,
        resource: ResourceKey,
        keys: Iterable[ObjectKey],
        namespace: str | None = None,
        after: ObjectKey | None = None,
    ) -> Iterator[JSON]:
        """The objects with these keys (an index's answer), in etcd key order, as `iter` filters them."""
        bucket = self._objects.get(resource)
        if not bucket:
            return
        chosen = sorted(k for k in keys if (namespace is None or k[0] == namespace) and (after is None or k > after))
        for key in chosen:
            obj = bucket.get(key)
            if obj is not None:
                yield obj

    def all_keys(self, resource: ResourceKey) -> set[ObjectKey]:
        return set(self._objects.get(resource) or ())

    def index(self, resource: ResourceKey, name: IndexName, extract: Extractor) -> Index:
        """The index `name` of `resource`, built now from every stored object if no list asked for it before."""
        indexes = self._indexes.setdefault(resource, {})
        index = indexes.get(name)
        if index is None:
            index = Index(extract)
            for key, obj in (self._objects.get(resource) or {}).items():
                index.add(key, obj)
            indexes[name] = index
        return index

    def resources(self) -> list[ResourceKey]:
        return list(self._objects)

    def encoded(self, obj: JSON) -> bytes:
        """`dumps(obj)`, taken from the latest event when `obj` is that event's object.

        A write's response body is the object the write just stored, which its event has encoded already (for the
        size check and for the watchers): the HTTP layer answers with those bytes instead of encoding it again.
        Identity is the test, and stored objects are never mutated, so the bytes are the object's encoding.
        """
        if self._history:
            last = self._history[-1]
            if last.obj is obj:
                return last.encoded_object()
        return dumps(obj)

    # ----------------------------------------------------------------------------- writes
    def next_rv(self) -> int:
        self.rv += 1
        return self.rv

    def put(self, resource: ResourceKey, obj: JSON, old: JSON | None) -> Event:
        """Store `obj` (already stamped with the RV from `next_rv`) and publish ADDED or MODIFIED."""
        meta = obj["metadata"]
        key = (meta.get("namespace", ""), meta["name"])
        bucket = self._objects.setdefault(resource, {})
        previous = bucket.get(key)
        if previous is None:
            self._sorted_keys[resource] = None
        bucket[key] = obj
        for index in (self._indexes.get(resource) or {}).values():
            if previous is not None:
                index.discard(key, previous)
            index.add(key, obj)
        return self._publish(Event(int(meta["resourceVersion"]), MODIFIED if old else ADDED, resource, obj, old))

    def remove(self, resource: ResourceKey, obj: JSON) -> Event:
        """Remove an object; `obj` is its final state already stamped with the deletion's RV."""
        meta = obj["metadata"]
        bucket = self._objects.get(resource) or {}
        key = (meta.get("namespace", ""), meta["name"])
        old = bucket.pop(key, None)
        self._sorted_keys[resource] = None
        if old is not None:
            for index in (self._indexes.get(resource) or {}).values():
                index.discard(key, old)
        return self._publish(Event(int(meta["resourceVersion"]), DELETED, resource, obj, old))

    def _publish(self, event: Event) -> Event:
        if len(self._history) == self._history.maxlen:
            self._compacted_rv = self._history[0].rv
        self._history.append(event)
        for watcher in list(self._watchers.get(event.resource, ())):
            watcher.offer(event)
        for listener in self.listeners:
            listener(event)
        return event

    # ----------------------------------------------------------------------------- watch
    def watch(
        self,
        watcher: Watcher,
        since_rv: int | None,
    ) -> list[tuple[str, Event]]:
        """Register a watcher; return the backlog it must send first.

        `since_rv=None` → synthetic ADDED for every current object; otherwise every retained
        event after `since_rv` (HistoryExpired when history no longer covers it).
        """
        backlog: list[tuple[str, Event]] = []
        if since_rv is None:
            for obj in self.iter(watcher.resource, watcher.namespace):
                if watcher.matches is None or watcher.matches(obj):
                    rv = int(obj["metadata"]["resourceVersion"])
                    backlog.append((ADDED, Event(rv, ADDED, watcher.resource, obj, None)))
        else:
            if since_rv < self._compacted_rv:
                raise HistoryExpired(since_rv, self._compacted_rv)
            collector = Watcher(watcher.resource, watcher.namespace, watcher.matches, max_pending=10**9)
            for event in self._events_after(since_rv):
                if event.resource == watcher.resource:
                    collector.offer(event)
            backlog = list(collector.pending)
        self._watchers.setdefault(watcher.resource, set()).add(watcher)
        return backlog

    def _events_after(self, rv: int) -> Iterable[Event]:
        history = self._history
        if not history or history[-1].rv <= rv:
            return ()
        # History is RV-ordered: binary search for the first event after rv.
        lo, hi = 0, len(history)
        while lo < hi:
            mid = (lo + hi) // 2
            if history[mid].rv <= rv:
                lo = mid + 1
            else:
                hi = mid
        return [history[i] for i in range(lo, len(history))]

    def unwatch(self, watcher: Watcher) -> None:
        watcher.closed = True
        watchers = self._watchers.get(watcher.resource)
        if watchers:
            watchers.discard(watcher)

    def all_watchers(self) -> list[Watcher]:
        return [w for ws in self._watchers.values() for w in ws]

    def compact(self) -> None:
        """Forget all history (fault injection: every resume from an old RV now gets 410)."""
        self._history.clear()
        self._compacted_rv = self.rv

    def drop_resource(self, resource: ResourceKey) -> None:
        self._objects.pop(resource, None)
        self._sorted_keys.pop(resource, None)
        self._indexes.pop(resource, None)
