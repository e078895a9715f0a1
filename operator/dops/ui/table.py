"""The dashboard's operations table: rows, filters, counts and pages computed from the watch cache.

Everything here is pure (no I/O) so that the table's rules are unit-tested without a cluster, and so
that a browser asking for page 37 of 10,000 operations costs one pass over in-memory rows instead of
an API request: the UI server answers every table request from its single shared watch.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from ..api.times import parse_time

JSON = dict[str, Any]

STATES = ("queued", "scheduled", "running", "completed", "failed")
DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 500
# The target an operation without spec.delegationTarget runs on (the operator's built-in default).
DEFAULT_TARGET = "default"


@dataclass(frozen=True)
class Row:
    """One operation as the table shows it (derived once per watch event, not per request)."""

    namespace: str
    name: str
    state: str
    progress: float | None
    progress_label: str
    label: str
    operator: str
    target: str
    dataset: str
    queued_at: str  # ISO timestamps sort as text
    created: str
    pinned: bool
    archived: bool
    # lower-cased text the search box matches against
    haystack: str

    @property
    def key(self) -> tuple[str, str]:
        return self.namespace, self.name

    @property
    def sort_key(self) -> str:
        return self.queued_at or self.created

    def to_json(self) -> JSON:
        return {
            "namespace": self.namespace,
            "name": self.name,
            "state": self.state,
            "progress": self.progress,
            "progressLabel": self.progress_label,
            "label": self.label,
            "operator": self.operator,
            "target": self.target,
            "dataset": self.dataset,
            "queuedAt": self.queued_at,
            "created": self.created,
            "pinned": self.pinned,
            "archived": self.archived,
        }


def row_of(obj: Mapping[str, Any]) -> Row:
    """The table row of a DelegatedOperation resource (a dict as the API returns it)."""
    meta = obj.get("metadata") or {}
    spec = obj.get("spec") or {}
    status = obj.get("status") or {}
    progress = status.get("progress") or {}
    value = progress.get("progress")
    try:
        fraction: float | None = None if value is None else max(0.0, min(1.0, float(value)))
    except (TypeError, ValueError):
        fraction = None
    operator = str(spec.get("operator") or "")
    label = str(spec.get("label") or operator)
    request = spec.get("context") or {}  # FiftyOne's request_params
    dataset = str(request.get("dataset_name") or spec.get("datasetId") or "") if isinstance(request, dict) else ""
    name = str(meta.get("name") or "")
    target = str(spec.get("delegationTarget") or DEFAULT_TARGET)
    return Row(
        namespace=str(meta.get("namespace") or ""),
        name=name,
        state=str(status.get("runState") or "pending"),
        progress=fraction,
        progress_label=str(progress.get("label") or ""),
        label=label,
        operator=operator,
        target=target,
        dataset=dataset,
        queued_at=str(status.get("queuedAt") or ""),
        created=str(meta.get("creationTimestamp") or ""),
        pinned=bool(spec.get("pinned", False)),
        archived=bool(spec.get("archived", False)),
        haystack=" ".join((name, label, operator, target, dataset)).lower(),
    )


class FilterError(ValueError):
    """A filter the table cannot apply (e.g. an unknown state); its message is one readable line."""


@dataclass(frozen=True)
class Filters:
    """What the browser asked for; empty strings mean "any"."""

    state: str = ""
    operator: str = ""
    target: str = ""
    label: str = ""
    dataset: str = ""
    namespace: str = ""
    search: str = ""
    include_archived: bool = False

    @classmethod
    def from_query(cls, params: Mapping[str, str]) -> Filters:
        state = (params.get("state") or "").strip().lower()
        if state and state not in (*STATES, "pending"):
            raise FilterError(f'unknown state "{state}" (one of {", ".join(STATES)})')
        return cls(
            state=state,
            operator=(params.get("operator") or "").strip(),
            target=(params.get("target") or "").strip(),
            label=(params.get("label") or "").strip(),
            dataset=(params.get("dataset") or "").strip(),
            namespace=(params.get("namespace") or "").strip(),
            search=(params.get("q") or "").strip().lower(),
            include_archived=(params.get("archived") or "") in ("1", "true", "yes"),
        )

    def matches(self, row: Row, *, ignore_state: bool = False) -> bool:
        if row.archived and not self.include_archived:
            return False
        if self.state and not ignore_state and row.state != self.state:
            return False
        if self.operator and row.operator != self.operator:
            return False
        if self.target and row.target != self.target:
            return False
        if self.dataset and row.dataset != self.dataset:
            return False
        if self.namespace and row.namespace != self.namespace:
            return False
        if self.label and self.label.lower() not in row.label.lower():
            return False
        return not self.search or all(word in row.haystack for word in self.search.split())


@dataclass(frozen=True)
class Page:
    rows: list[Row]
    total: int  # rows matching every filter
    counts: dict[str, int]  # per state, over rows matching every filter but the state
    page: int
    pages: int
    size: int

    def to_json(self) -> JSON:
        return {
            "items": [r.to_json() for r in self.rows],
            "total": self.total,
            "counts": self.counts,
            "page": self.page,
            "pages": self.pages,
            "size": self.size,
        }


def parse_int(text: str | None, default: int, low: int, high: int, what: str) -> int:
    if text is None or text == "":
        return default
    if not re.fullmatch(r"\d{1,9}", text.strip()):
        raise FilterError(f'{what} must be a whole number, not "{text}"')
    return max(low, min(high, int(text)))


def select(rows: Iterable[Row], filters: Filters, page: int = 1, size: int = DEFAULT_PAGE_SIZE) -> Page:
    """Filter, count by state, sort newest first and cut one page, in one pass plus one sort.

    The counts ignore the state filter (so the state chips show what each state would give);
    `page` past the end yields the last page, so a page that shrank under the user stays useful.
    """
    counts = dict.fromkeys(STATES, 0)
    matching: list[Row] = []
    for row in rows:
        if not filters.matches(row, ignore_state=True):
            continue
        counts[row.state] = counts.get(row.state, 0) + 1
        if not filters.state or row.state == filters.state:
            matching.append(row)
    matching.sort(key=lambda r: (r.sort_key, r.namespace, r.name), reverse=True)
    size = max(1, min(MAX_PAGE_SIZE, size))
    pages = max(1, -(-len(matching) // size))
    page = max(1, min(page, pages))
    start = (page - 1) * size
    return Page(matching[start : start + size], len(matching), counts, page, pages, size)


def facets(rows: Iterable[Row]) -> JSON:
    """The distinct operators, targets, datasets and namespaces (the filters' drop-down choices)."""
    operators: set[str] = set()
    targets: set[str] = set()
    datasets: set[str] = set()
    namespaces: set[str] = set()
    for row in rows:
        operators.add(row.operator)
        targets.add(row.target)
        namespaces.add(row.namespace)
        if row.dataset:
            datasets.add(row.dataset)
    return {
        "operators": sorted(operators),
        "targets": sorted(targets),
        "datasets": sorted(datasets),
        "namespaces": sorted(namespaces),
    }


def target_counts(rows: Iterable[Row], namespace: str, target: str) -> dict[str, int]:
    """How many operations of one target are in each state (the target page)."""
    counts = dict.fromkeys(STATES, 0)
    for row in rows:
        if row.namespace == namespace and row.target == target:
            counts[row.state] = counts.get(row.state, 0) + 1
    return counts


_PHASES = (("queued", "queuedAt"), ("scheduled", "scheduledAt"), ("running", "startedAt"))


def timeline(status: Mapping[str, Any]) -> list[JSON]:
    """queued → scheduled → running → terminal, each with its time and how long it lasted (seconds).

    A phase not reached has no time; the last reached phase of an unfinished operation has no end.
    """
    steps: list[tuple[str, str | None]] = [(phase, status.get(field)) for phase, field in _PHASES]
    state = str(status.get("runState") or "")
    if state == "completed":
        steps.append(("completed", status.get("completedAt")))
    elif state == "failed":
        steps.append(("failed", status.get("failedAt")))
    else:
        steps.append(("finished", None))
    out: list[JSON] = []
    for i, (phase, when) in enumerate(steps):
        start = parse_time(when) if when else None
        duration = None
        if start is not None:
            later = next((parse_time(w) for _, w in steps[i + 1 :] if w), None)
            if later is not None:
                duration = round((later - start).total_seconds(), 3)
        out.append({"phase": phase, "at": when or None, "seconds": duration})
    return out
