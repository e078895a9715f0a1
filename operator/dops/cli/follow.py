"""Following operations as they change: list once, then watch from the list's resourceVersion.

`Follower.changes()` yields `Change`s until a deadline; it resumes a watch the server ended (the
watch's own timeout, a dropped connection) from the last resourceVersion seen, relists after a
410 Gone, and reports a burst of connection failures instead of retrying forever.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from ..k8s import ApiUnavailable, Gone, ResourceClient
from ..k8s.streams import BOOKMARK, watch

JSON = dict[str, Any]

MAX_WATCH_SECONDS = 300
MAX_CONSECUTIVE_FAILURES = 5


@dataclass
class Change:
    """ADDED / MODIFIED / DELETED of one object, or SYNC: `objects` is the full current list (after a relist)."""

    type: str
    obj: JSON | None = None
    objects: list[JSON] | None = None


class Follower:
    """Watch one resource type in one namespace (or all: None) with optional selectors."""

    def __init__(
        self,
        resource: ResourceClient,
        namespace: str | None,
        *,
        label_selector: str = "",
        field_selector: str = "",
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.resource = resource
        self.namespace = namespace
        self.label_selector = label_selector
        self.field_selector = field_selector
        self.clock = clock
        self.sleep = sleep
        self.resource_version = ""

    def list(self) -> list[JSON]:
        """Every matching object now; later changes are watched from this list's resourceVersion."""
        items: list[JSON] = []
        token: str | None = None
        while True:
            page = self.resource.list(
                self.namespace,
                label_selector=self.label_selector,
                field_selector=self.field_selector,
                limit=500,
                continue_token=token,
            )
            items.extend(page.items)
            self.resource_version = page.resource_version
            token = page.continue_token
            if not token:
                return items

    def changes(self, deadline: float | None = None) -> Iterator[Change]:
        """Changes after `resource_version` (call `list()` first, or set it) until `deadline` (monotonic)."""
        failures = 0
        while True:
            remaining = MAX_WATCH_SECONDS if deadline is None else deadline - self.clock()
            if remaining <= 0:
                return
            started = self.clock()
            events = 0
            try:
                for kind, obj in watch(
                    self.resource,
                    self.namespace,
                    resource_version=self.resource_version,
                    label_selector=self.label_selector,
                    field_selector=self.field_selector,
                    timeout_seconds=max(1, min(MAX_WATCH_SECONDS, int(remaining + 0.999))),
                ):
                    failures = 0
                    events += 1
                    rv = str((obj.get("metadata") or {}).get("resourceVersion") or "")
                    if rv:
                        self.resource_version = rv
                    if kind != BOOKMARK:
                        yield Change(kind, obj)
                    if deadline is not None and self.clock() >= deadline:
                        return
            except Gone:
                yield Change("SYNC", objects=self.list())
            except ApiUnavailable:
                failures += 1
                if failures >= MAX_CONSECUTIVE_FAILURES:
                    raise
                self.sleep(min(0.2 * 2**failures, 2.0))
                continue
            if not events and self.clock() - started < 0.1:
                self.sleep(0.2)  # a server that ends watches at once must not make this spin
