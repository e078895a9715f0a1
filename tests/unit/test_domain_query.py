"""dops.domain.query: FiftyOne filters → selectors + client checks, search, paging and sort (pure, table-driven).

Aspects covered:
- list filters apply only when truthy; archived hidden by default (server-side `spec.archived!=true`);
  extra kwargs are equality filters; `pinned=None` is no filter.
- run states are compared exactly, as FiftyOne's MongoDB query does: "QUEUED", "bogus" and "processing"
  are not errors, they match nothing (issue 12 items 1 and 2).
- count filters: verbatim equality (None matches missing, "" only ""), aliases, `$in`/`$nin`/`$ne`,
  unknown keys rejected; None/"" values are decided on the client (a field selector cannot tell them apart).
- exact_on_server: only when nothing must be checked on the client.
- search: FiftyOne's allowed fields, raw unanchored case-sensitive regexes ORed, invalid fields/regexes → ValueError.
- paging: the two FiftyOne defaults (none → 1000; class → 10), falsy limit = unlimited, a negative limit is
  its absolute value (MongoDB); TypeError for non-integer skip/limit and unknown keys (pymongo / the
  dataclass), ValueError for a negative skip and a direction other than ±1 when sorting (issue 12 items 6, 7).
- sort order across types (MongoDB's), stable ties, the name-order fast path condition.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from dops.api.types import DelegatedOperationPagingParams, ExecutionRunState, SortByField
from dops.domain import query


def op(
    name: str = "x",
    operator: str = "@a/b/c",
    label: str | None = None,
    state: str | None = "queued",
    **spec: Any,
) -> dict[str, Any]:
    body: dict[str, Any] = {"metadata": {"name": name}, "spec": {"operator": operator, **spec}, "status": {}}
    if label is not None:
        body["spec"]["label"] = label
    if state is not None:
        body["status"]["runState"] = state
    return body


@pytest.mark.parametrize(
    ("kwargs", "fields", "labels", "client_only"),
    [
        ({}, ["spec.archived!=true"], [], []),
        ({"include_archived": True}, [], [], []),
        ({"operator": "@a/b/c"}, ["spec.operator=@a/b/c", "spec.archived!=true"], [], []),
        ({"operator": "", "run_state": None}, ["spec.archived!=true"], [], []),  # falsy = no filter
        ({"run_state": ExecutionRunState.QUEUED}, ["status.runState=queued", "spec.archived!=true"], [], []),
        ({"run_state": "QUEUED"}, ["status.runState=QUEUED", "spec.archived!=true"], [], []),  # exact
        ({"run_state": "bogus"}, ["status.runState=bogus", "spec.archived!=true"], [], []),
        ({"delegation_target": "gpu"}, ["spec.delegationTarget=gpu", "spec.archived!=true"], [], []),
        ({"dataset_id": "abc"}, ["spec.datasetId=abc", "spec.archived!=true"], [], []),
        ({"dataset_name": "ds"}, ["spec.archived!=true"], [], ["dataset_name"]),
        ({"pinned": True}, ["spec.archived!=true"], [], ["pinned"]),
        ({"pinned": None}, ["spec.archived!=true"], [], []),
        ({"archived": True}, ["spec.archived=true"], [], []),
        ({"operator": "@a/b,c=d"}, ["spec.operator=@a/b\\,c\\=d", "spec.archived!=true"], [], []),
    ],
)
def test_list_query(kwargs: dict[str, Any], fields: list[str], labels: list[str], client_only: list[str]) -> None:
    q = query.list_query(**kwargs)
    assert q.field_terms == fields and q.label_terms == labels and q.client_only == client_only
    assert q.exact_on_server is (not client_only)


def test_list_query_predicate_rechecks_everything() -> None:
    q = query.list_query(operator="@a/b/c", run_state="queued", dataset_name="ds", pinned=True)
    good = op(context={"dataset_name": "ds"}, pinned=True)
    assert q.matches(good)
    assert not q.matches(op(context={"dataset_name": "other"}, pinned=True))
    assert not q.matches(op(context={"dataset_name": "ds"}, pinned=False))
    assert not q.matches(op(state="running", context={"dataset_name": "ds"}, pinned=True))
    assert not q.matches({**good, "spec": {**good["spec"], "archived": True}})


@pytest.mark.parametrize("state", ["QUEUED", "Queued", "bogus", "processing", 5])
def test_run_states_match_exactly_and_never_raise(state: object) -> None:
    """FiftyOne: `{"run_state": state}` matches nothing for a name no operation has ([] / 0, no error)."""
    for q in (query.list_query(run_state=state), query.count_query({"run_state": state})):
        assert not q.matches(op(state="queued")) and not q.matches(op(state="running"))
    assert query.list_query(run_state="queued").matches(op(state="queued"))


@pytest.mark.parametrize(
    ("filters", "fields", "matching", "not_matching"),
    [
        ({"run_state": "queued"}, ["status.runState=queued"], op(), op(state="failed")),
        ({"delegation_target": None}, ["spec.delegationTarget="], op(), op(delegationTarget="t")),
        ({"delegation_target": None}, ["spec.delegationTarget="], op(), op(delegationTarget="")),
        ({"delegation_target": ""}, ["spec.delegationTarget="], op(delegationTarget=""), op()),
        ({"run_state": {"$in": ["QUEUED", "running"]}}, [], op(state="running"), op()),
        ({"status.runState": "failed"}, ["status.runState=failed"], op(state="failed"), op()),
        ({"dataset_name": "ds"}, [], op(context={"dataset_name": "ds"}), op()),
        ({"context.request_params.dataset_name": "ds"}, [], op(context={"dataset_name": "ds"}), op()),
        ({"label": "L"}, [], op(label="L"), op(label="M")),
        ({"label": "@a/b/c"}, [], op(), op(label="M")),  # a missing label reads as the operator URI
        ({"label": ""}, [], op(label=""), op()),  # a stored "" is "" (FiftyOne's set_label(id, "")), not the URI
        ({"label": "@a/b/c"}, [], op(), op(label="")),
        ({"run_state": {"$in": ["queued", "running"]}}, [], op(state="running"), op(state="failed")),
        ({"run_state": {"$nin": ["queued"]}}, [], op(state="running"), op()),
        ({"operator": {"$ne": "@a/b/c"}}, [], op(operator="@x/y/z"), op()),
        ({"archived": True}, ["spec.archived=true"], op(archived=True), op()),
        ({"_id": "x"}, ["metadata.name=x"], op(), op(name="y")),
    ],
)
def test_count_query(
    filters: dict[str, Any], fields: list[str], matching: dict[str, Any], not_matching: dict[str, Any]
) -> None:
    q = query.count_query(filters)
    assert q.field_terms == fields
    assert q.matches(matching) and not q.matches(not_matching)


@pytest.mark.parametrize(
    ("filters", "message"),
    [
        ({"bogus": 1}, "Unsupported filter field"),
        ({"run_state": {"$regex": "q"}}, "Unsupported filter operator"),
        ({"run_state": {"$in": "queued"}}, "needs a list"),
        ({"pinned": "yes"}, "must be a bool"),
        ("run_state=queued", "filters must be a dict"),
    ],
)
def test_count_query_rejects(filters: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        query.count_query(filters)


def test_empty_and_missing_values_are_decided_on_the_client() -> None:
    """`spec.delegationTarget=` selects both a missing and an empty target: count must not trust it alone."""
    assert not query.count_query({"delegation_target": ""}).exact_on_server
    assert not query.count_query({"delegation_target": None}).exact_on_server
    assert query.count_query({"delegation_target": "gpu"}).exact_on_server
    assert query.count_query({"archived": False}).exact_on_server


def test_count_query_counts_archived() -> None:
    assert query.count_query({}).field_terms == [] and query.count_query(None).exact_on_server


# ---------------------------------------------------------------------------------------- search


def test_search_semantics() -> None:
    ops = [op(operator="@x/operator/test_0"), op(operator="@x/operator/test_1", label="foo_baz"), op(label="L15")]

    def hits(search: dict[str, Any]) -> int:
        compiled = query.compile_search(search)
        assert compiled is not None
        return sum(compiled.matches(o) for o in ops)

    assert hits({"operator/test": {"operator"}}) == 2
    assert hits({"test_0": {"operator"}}) == 1
    assert hits({"foo_baz": {"operator", "label"}}) == 1
    assert hits({"foo_baz": {"operator"}}) == 0
    assert hits({"^L1.*5$": ["label"]}) == 1  # raw, anchors work
    assert hits({"TEST_0": {"operator"}}) == 0  # case-sensitive
    assert hits({"test_0": {"operator"}, "foo": {"label"}}) == 2  # ORed across terms
    assert hits({".*": {"delegated_operation"}}) == 0  # accepted, matches nothing
    assert hits({"@x": "operator"}) == 2  # a single field name is accepted
    assert query.compile_search(None) is None and query.compile_search({}) is None


@pytest.mark.parametrize(
    ("search", "message"),
    [
        ({"x": {"context"}}, "Invalid search field: context"),
        ({"(": {"label"}}, "Invalid search term"),
        ({1: {"label"}}, "search terms must be strings"),
        ({"x": 3}, "search fields"),
        (["x"], "search must be a dict"),
    ],
)
def test_search_errors(search: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        query.compile_search(search)


# ---------------------------------------------------------------------------------------- paging and sort


@pytest.mark.parametrize(
    ("paging", "expected"),
    [
        (None, query.Paging("queued_at", True, 0, 1000)),
        (DelegatedOperationPagingParams(), query.Paging("queued_at", True, 0, 10)),
        ({"limit": 0}, query.Paging("queued_at", True, 0, None)),
        ({"limit": None, "skip": 5}, query.Paging("queued_at", True, 5, None)),
        ({"sort_by": SortByField.UPDATED_AT, "sort_direction": 1, "limit": 3}, query.Paging("updated_at", False, 0, 3)),
        ({"sort_by": None}, query.Paging(None, True, 0, 10)),
        ({"sort_by": "label"}, query.Paging("label", True, 0, 10)),
        # MongoDB: a negative limit is its absolute value (one batch); FiftyOne passes it straight on.
        (DelegatedOperationPagingParams(limit=-1), query.Paging("queued_at", True, 0, 1)),
        ({"limit": -25, "skip": 2}, query.Paging("queued_at", True, 2, 25)),
        # falsy skip/limit are never handed to the cursor, whatever their type
        ({"limit": "", "skip": 0.0}, query.Paging("queued_at", True, 0, None)),
        ({"limit": True}, query.Paging("queued_at", True, 0, 1)),  # pymongo: a bool is an int
        # the direction only matters (and is only checked) when there is a sort field
        ({"sort_by": None, "sort_direction": 0}, query.Paging(None, False, 0, 10)),
    ],
)
def test_normalize_paging(paging: Any, expected: query.Paging) -> None:
    assert query.normalize_paging(paging) == expected


@pytest.mark.parametrize(
    ("paging", "error", "message"),
    [
        ({"skip": -3}, ValueError, "skip must be >= 0"),
        ({"sort_direction": 0}, ValueError, "sort_direction"),
        ({"sort_direction": 2}, ValueError, "sort_direction"),
        ({"sort_direction": "asc"}, ValueError, "sort_direction"),
        ({"sort_direction": 1.0}, ValueError, "sort_direction"),
        ({"sort_direction": True}, ValueError, "sort_direction"),
        ({"sort_by": "nonsense"}, ValueError, "invalid sort field"),
        ("limit=5", ValueError, "paging must be"),
        # FiftyOne's types: pymongo's cursor and the paging dataclass raise TypeError
        ({"limit": "5"}, TypeError, "limit must be an integer"),
        ({"limit": 2.5}, TypeError, "limit must be an integer"),
        ({"skip": "1"}, TypeError, "skip must be an integer"),
        ({"bogus": 1}, TypeError, "unexpected keyword argument 'bogus'"),
    ],
)
def test_normalize_paging_rejects(paging: Any, error: type[Exception], message: str) -> None:
    with pytest.raises(error, match=message):
        query.normalize_paging(paging)


def test_name_order_fast_path_condition() -> None:
    assert query.uses_name_order(query.normalize_paging(None))
    assert query.uses_name_order(query.normalize_paging(DelegatedOperationPagingParams()))
    assert not query.uses_name_order(query.normalize_paging({"limit": 0}))
    assert not query.uses_name_order(query.normalize_paging({"sort_direction": 1}))
    assert not query.uses_name_order(query.normalize_paging({"sort_by": "updated_at"}))


def test_sort_key_follows_mongodb_type_order() -> None:
    when = dt.datetime(2025, 1, 1, tzinfo=dt.UTC)
    values = [when, True, [1], {"a": 1}, "b", "a", 2.5, 1, None]
    ordered = sorted(values, key=query.sort_key)
    assert ordered == [None, 1, 2.5, "a", "b", {"a": 1}, [1], True, when]


def test_sort_documents_is_stable_and_windowed() -> None:
    rows = [("a", 2), ("b", 1), ("c", 2), ("d", None)]
    by_value = query.sort_documents(rows, "v", True, lambda r, _: r[1])
    assert [r[0] for r in by_value] == ["a", "c", "b", "d"]  # ties keep their order; null last when descending
    ascending = query.sort_documents(rows, "v", False, lambda r, _: r[1])
    assert [r[0] for r in ascending] == ["d", "b", "a", "c"]
    assert query.sort_documents(rows, None, True, lambda r, _: r[1]) == rows
    assert query.window(ascending, query.Paging("v", False, 1, 2)) == [("b", 1), ("a", 2)]
    assert query.window(ascending, query.Paging("v", False, 3, None)) == [("c", 2)]
