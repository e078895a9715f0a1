"""Listing semantics (pure): FiftyOne filters → server-side selectors + client-side checks; search; sort; paging.

A `Query` splits a FiftyOne filter into what the API server can evaluate and what the client must:

- field selectors on the CRD's selectableFields: `status.runState`, `spec.operator`,
  `spec.delegationTarget`, `spec.datasetId`, `spec.archived` (exact, authoritative);
- client-side checks for the rest (`dataset_name` is `spec.context.dataset_name`, `pinned`, `label`, ...)
  and for search.

`Query.matches(resource)` always re-checks *everything*, so a server-side prefilter can only make a
listing cheaper, never different.

FiftyOne's rules kept here: the named filters of `list_operations` apply only when truthy; extra
keyword filters and `count(filters=...)` are equality filters applied verbatim (None matches a
missing value, "" only an empty one); run states too are compared exactly, so "QUEUED" or an
unknown state matches nothing instead of raising; search terms are raw, unanchored, case-sensitive
regular expressions ORed over every (term, field) pair; allowed search fields are `operator`,
`label` and `delegated_operation` (accepted, matches nothing). Paging is MongoDB's as FiftyOne
drives it: no paging means limit 1000; `DelegatedOperationPagingParams()` means limit 10; a falsy
limit means unlimited and a negative one its absolute value; non-integer skip/limit raise TypeError
(pymongo's), as do unknown paging keys (the dataclass's); default sort `queued_at` descending.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from ..api import constants as c
from ..api.types import DelegatedOperationDocument, DelegatedOperationPagingParams, SortByField, SortDirection
from .transitions import state_value

JSON = dict[str, Any]
Resource = Mapping[str, Any]
Check = Callable[[Resource], bool]
T = TypeVar("T")

DEFAULT_LIMIT = 1000  # FiftyOne: no paging → 1000
SEARCH_FIELDS = frozenset({"operator", "label", "delegated_operation"})


# --------------------------------------------------------------------------------------------- accessors


def _spec(obj: Resource) -> Mapping[str, Any]:
    return obj.get("spec") or {}


def _status(obj: Resource) -> Mapping[str, Any]:
    return obj.get("status") or {}


def _dataset_name(obj: Resource) -> Any:
    context = _spec(obj).get("context") or {}
    return context.get("dataset_name") if isinstance(context, Mapping) else None


# FiftyOne attribute → value on a resource (what client-side checks compare against).
ACCESSORS: Mapping[str, Callable[[Resource], Any]] = {
    "id": lambda o: (o.get("metadata") or {}).get("name"),
    "operator": lambda o: _spec(o).get("operator"),
    "label": lambda o: _spec(o)["label"] if _spec(o).get("label") is not None else _spec(o).get("operator"),
    "delegation_target": lambda o: _spec(o).get("delegationTarget"),  # "" (the default target) stays ""
    "dataset_id": lambda o: _spec(o).get("datasetId") or None,
    "dataset_name": _dataset_name,
    "parent_id": lambda o: _spec(o).get("parentId") or None,
    "pinned": lambda o: bool(_spec(o).get("pinned", False)),
    "archived": lambda o: bool(_spec(o).get("archived", False)),
    "rerunnable": lambda o: bool(_spec(o).get("rerunnable", True)),
    "run_state": lambda o: _status(o).get("runState"),
    "run_link": lambda o: _status(o).get("runLink"),
    "log_path": lambda o: _status(o).get("logPath"),
    "monitored": lambda o: bool(_status(o).get("monitored", False)),
}
# Raw FiftyOne/Mongo paths accepted as filter keys, and what they mean here.
ALIASES = {
    "_id": "id",
    "context.request_params.dataset_name": "dataset_name",
    "context.request_params.dataset_id": "dataset_id",
    "status.runState": "run_state",
}
# FiftyOne attribute → selectable field path (server-side equality).
SELECTABLE: Mapping[str, str] = {
    "id": "metadata.name",
    "operator": c.FIELD_OPERATOR,
    "run_state": c.FIELD_RUN_STATE,
    "delegation_target": c.FIELD_TARGET,
    "dataset_id": c.FIELD_DATASET_ID,
    "archived": c.FIELD_ARCHIVED,
}


def escape_field_value(value: str) -> str:
    """Escape a field-selector value (`\\`, `,` and `=` are special)."""
    return value.replace("\\", "\\\\").replace(",", "\\,").replace("=", "\\=")


def _selector_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, enum.Enum):
        return str(value.value)
    return str(value)


# --------------------------------------------------------------------------------------------- search


@dataclass(frozen=True)
class Search:
    """Compiled search: (regex, field) pairs, ORed."""

    pairs: tuple[tuple[re.Pattern[str], str], ...]

    def matches(self, obj: Resource) -> bool:
        for pattern, field_name in self.pairs:
            if field_name == "delegated_operation":
                continue  # FiftyOne accepts it, but no such field exists: never matches
            value = ACCESSORS[field_name](obj)
            if isinstance(value, str) and pattern.search(value):
                return True
        return False


def compile_search(search: Mapping[str, Any] | None) -> Search | None:
    """FiftyOne's search dict `{term: fields}`; ValueError("Invalid search field: ...") for unknown fields."""
    if not search:
        return None
    if not isinstance(search, Mapping):
        raise ValueError(f"search must be a dict of {{term: fields}}, not {type(search).__name__}")
    pairs: list[tuple[re.Pattern[str], str]] = []
    for term, fields in search.items():
        if not isinstance(term, str):
            raise ValueError(f"search terms must be strings, not {term!r}")
        names: Iterable[Any] = [fields] if isinstance(fields, str) else fields
        try:
            names = list(names)
        except TypeError as exc:
            raise ValueError(f"search fields for {term!r} must be a set of field names") from exc
        try:
            pattern = re.compile(term)
        except re.error as exc:
            raise ValueError(f"Invalid search term {term!r}: not a regular expression ({exc})") from exc
        for name in names:
            if name not in SEARCH_FIELDS:
                raise ValueError(f"Invalid search field: {name}")
            pairs.append((pattern, str(name)))
    return Search(tuple(pairs))


# --------------------------------------------------------------------------------------------- filters


@dataclass
class Query:
    """Server-side selectors plus the exact client-side predicate of one FiftyOne filter."""

    field_terms: list[str] = field(default_factory=list)
    label_terms: list[str] = field(default_factory=list)
    checks: list[Check] = field(default_factory=list)
    search: Search | None = None
    # True when a server-side term alone decides some attribute (so `checks` hold only client-only ones).
    client_only: list[str] = field(default_factory=list)

    @property
    def field_selector(self) -> str:
        return ",".join(self.field_terms)

    @property
    def label_selector(self) -> str:
        return ",".join(self.label_terms)

    @property
    def exact_on_server(self) -> bool:
        """True when the selectors alone decide the result (no client-side check, no search)."""
        return not self.client_only and self.search is None

    def matches(self, obj: Resource) -> bool:
        if not all(check(obj) for check in self.checks):
            return False
        return self.search is None or self.search.matches(obj)

    def with_label(self, term: str) -> Query:
        return dataclasses.replace(self, label_terms=[*self.label_terms, term])


def _normalize_value(attr: str, value: Any) -> Any:
    if attr == "run_state":
        return state_value(value)  # exact, never validated: FiftyOne's query just matches nothing
    if isinstance(value, enum.Enum):
        return value.value
    if attr in ("pinned", "archived", "rerunnable", "monitored") and value is not None and not isinstance(value, bool):
        raise ValueError(f"filter {attr} must be a bool, not {value!r}")
    if attr == "dataset_id" and value is not None:
        return str(value)  # ObjectIds are accepted and compared as strings
    return value


def _membership(accessor: Callable[[Resource], Any], values: list[Any], inside: bool) -> Check:
    def check(obj: Resource) -> bool:
        return (accessor(obj) in values) == inside

    return check


def _add_equality(query: Query, key: str, value: Any) -> None:
    attr = ALIASES.get(key, key)
    if attr not in ACCESSORS:
        raise ValueError(f"Unsupported filter field: {key!r} (supported: {', '.join(sorted(ACCESSORS))})")
    accessor = ACCESSORS[attr]
    if isinstance(value, Mapping):
        unknown = set(value) - {"$in", "$ne", "$nin"}
        if unknown:
            raise ValueError(f"Unsupported filter operator(s) for {key!r}: {', '.join(sorted(unknown))}")
        for op, operand in value.items():
            if op in ("$in", "$nin"):
                if isinstance(operand, str | bytes) or not isinstance(operand, Iterable):
                    raise ValueError(f"{key} {op} needs a list of values")
                allowed = [_normalize_value(attr, v) for v in operand]
                query.checks.append(_membership(accessor, allowed, op == "$in"))
            else:
                query.checks.append(_membership(accessor, [_normalize_value(attr, operand)], False))
        query.client_only.append(attr)
        return
    wanted = _normalize_value(attr, value)
    query.checks.append(_membership(accessor, [wanted], True))
    path = SELECTABLE.get(attr)
    if path is None or not isinstance(wanted, str | int | float | bool | None):
        query.client_only.append(attr)  # no selector can express it: the client decides alone
        return
    if wanted is None or wanted == "":
        # A field selector sees a missing field as "": `path=` is a superset of both, the client decides.
        query.client_only.append(attr)
    if attr == "archived" and wanted is False:
        query.field_terms.append(f"{path}!=true")  # also matches resources that predate the default
    else:
        query.field_terms.append(f"{path}={escape_field_value(_selector_text(wanted))}")


def list_query(
    operator: str | None = None,
    dataset_name: str | None = None,
    dataset_id: Any = None,
    run_state: Any = None,
    delegation_target: str | None = None,
    search: Mapping[str, Any] | None = None,
    include_archived: bool = False,
    **kwargs: Any,
) -> Query:
    """`list_operations` filters: named ones only when truthy; `pinned=None` means no filter; others verbatim."""
    query = Query()
    for key, value in (
        ("operator", operator),
        ("dataset_name", dataset_name),
        ("dataset_id", dataset_id),
        ("run_state", run_state),
        ("delegation_target", delegation_target),
    ):
        if value:
            _add_equality(query, key, value)
    if "pinned" in kwargs and kwargs["pinned"] is None:
        del kwargs["pinned"]
    for key, value in kwargs.items():
        _add_equality(query, key, value)
    if not include_archived and "archived" not in kwargs:
        _add_equality(query, "archived", False)
    query.search = compile_search(search)
    return query


def count_query(filters: Mapping[str, Any] | None = None, search: Mapping[str, Any] | None = None) -> Query:
    """`count` filters: equality on each key (archived operations are counted, as in FiftyOne)."""
    if filters is not None and not isinstance(filters, Mapping):
        raise ValueError(f"filters must be a dict, not {type(filters).__name__}")
    query = Query()
    for key, value in (filters or {}).items():
        _add_equality(query, key, value)
    query.search = compile_search(search)
    return query


# --------------------------------------------------------------------------------------------- paging and sort

SORTABLE = frozenset(f.name for f in dataclasses.fields(DelegatedOperationDocument) if f.name != "resource")


@dataclass(frozen=True)
class Paging:
    sort_by: str | None
    descending: bool
    skip: int
    limit: int | None  # None = unlimited


def normalize_paging(paging: Any) -> Paging:
    """FiftyOne's paging as MongoDB applies it (see the module docstring for the rules).

    Errors: unknown paging keys and non-integer skip/limit raise TypeError (FiftyOne's dataclass, pymongo's
    cursor); a negative skip, a sort direction other than ±1 (MongoDB fails such a query with pymongo's
    OperationFailure, which dops does not have) and an unknown sort field raise ValueError.
    """
    if paging is None:
        params = DelegatedOperationPagingParams(limit=DEFAULT_LIMIT)
    elif isinstance(paging, DelegatedOperationPagingParams):
        params = paging
    elif isinstance(paging, Mapping):
        params = DelegatedOperationPagingParams(**dict(paging))  # unknown keys: TypeError, as in FiftyOne
    elif all(hasattr(paging, a) for a in ("sort_by", "sort_direction", "skip", "limit")):
        params = DelegatedOperationPagingParams(paging.sort_by, paging.sort_direction, paging.skip, paging.limit)
    else:
        raise ValueError(f"paging must be DelegatedOperationPagingParams or a dict, not {type(paging).__name__}")
    sort_by = params.sort_by.value if isinstance(params.sort_by, enum.Enum) else params.sort_by
    if sort_by and (not isinstance(sort_by, str) or sort_by not in SORTABLE):
        raise ValueError(f"invalid sort field {sort_by!r}: expected a document attribute such as {list(SortByField)}")
    direction = params.sort_direction
    # FiftyOne sorts (and MongoDB checks the direction) only when there is a sort field.
    valid_direction = isinstance(direction, int) and not isinstance(direction, bool) and direction in (1, -1)
    if sort_by and not valid_direction:
        raise ValueError(f"sort_direction must be 1 (ascending) or -1 (descending), not {direction!r}")
    skip = _paging_count("skip", params.skip)
    if skip < 0:
        raise ValueError(f"paging skip must be >= 0, not {skip!r}")
    limit = abs(_paging_count("limit", params.limit))  # MongoDB reads a negative limit as its absolute value
    return Paging(
        sort_by=sort_by or None,
        descending=direction == SortDirection.DESCENDING,
        skip=skip,
        limit=limit or None,
    )


def _paging_count(name: str, value: Any) -> int:
    """A skip or limit as pymongo takes it: falsy means 0 (FiftyOne never passes it on), else an int or TypeError."""
    if not value:
        return 0
    if not isinstance(value, int):  # bool is an int to pymongo as well
        raise TypeError(f"paging {name} must be an integer, not {type(value).__name__}")
    return int(value)


def uses_name_order(paging: Paging) -> bool:
    """True when FiftyOne's order is the API server's name order for dops-named operations (queued_at desc)."""
    return paging.sort_by == SortByField.QUEUED_AT and paging.descending and paging.limit is not None


def sort_key(value: Any) -> tuple[int, Any]:
    """MongoDB's cross-type order: null < numbers < strings < objects < arrays < booleans < dates."""
    if isinstance(value, enum.Enum):
        value = value.value
    if isinstance(value, bool):
        return 5, value
    if isinstance(value, dt.datetime):
        return 6, value
    if isinstance(value, int | float):
        return 1, value
    if isinstance(value, str):
        return 2, value
    if value is None:
        return 0, 0
    if isinstance(value, Mapping):
        return 3, repr(value)  # MongoDB compares documents field by field; dops only needs a total order
    if isinstance(value, list | tuple):
        return 4, repr(value)
    return 7, repr(value)  # other objects: stable, arbitrary


def sort_documents(
    docs: Sequence[T], sort_by: str | None, descending: bool, key_of: Callable[[T, str], Any]
) -> list[T]:
    """Stable sort by `sort_by` (ties keep their incoming order, which callers make name order)."""
    items = list(docs)
    if sort_by:
        items.sort(key=lambda d: sort_key(key_of(d, sort_by)), reverse=descending)
    return items


def window(items: Sequence[T], paging: Paging) -> list[T]:
    end = None if paging.limit is None else paging.skip + paging.limit
    return list(items[paging.skip : end])
