"""Listing, paging, sorting, search and count over 100 operations (fiftyone-semantics §7 37-41, §5).

Aspects covered:
- 37: limit=25 sorted queued_at desc → 25, first = last queued; limit=1000 updated_at desc → 100, first = last
  updated; limit=1 queued_at asc → the first queued.
- 38: filtering by operator → exactly its 25 operations, all in the expected state.
- 39: paging QUEUED with limit=7, skip=page*7 → 4 non-empty pages totalling 25.
- 40/41: search counts (raw regexes over operator/label, ORed) for list_operations and count; count(filters).
- the two paging defaults (none → 1000, DelegatedOperationPagingParams() → 10) and falsy limit = unlimited.
- archived operations are hidden from list_operations unless include_archived, but counted by count (§11 surprise 6).
- other filters: dataset_name (stored name), dataset_id, delegation_target, pinned and extra kwargs.
- the newest-first fast path (server-side name order) equals a full client-side sort, including operations
  created with kubectl (foreign names, no name-order label) and re-queued ones, for every window.
- an operation the service created whose `queued` write has not landed sorts at its name's instant (first), a
  foreign one without status last;
- run states are filtered server-side (field selector on status.runState): the request carries it.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from dops import DelegatedOperationDocument, DelegatedOperationPagingParams, DelegatedOperationService, SortByField
from dops.api.times import format_time, utcnow
from dops.domain.names import new_operation_name
from dops.domain.resources import operation_resource
from dops.emulator import EmbeddedServer
from dops.k8s import DelegatedOperationRepository, KubeClient
from tests.op_builders import operation

pytestmark = pytest.mark.both_planes

OPERATORS = [f"@voxelfiftyone/operator/test_{i}" for i in range(4)]
STATES = ["queued", "running", "completed", "failed"]


@dataclass
class Store:
    service: DelegatedOperationService
    queued: list[DelegatedOperationDocument]  # in queueing order
    last_updated: str


@pytest.fixture(scope="module")
def store(kube: KubeClient) -> Iterator[Store]:
    namespace = "listing-100"
    kube.request(
        "POST", "/api/v1/namespaces", body={"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}}
    )
    service = DelegatedOperationService(DelegatedOperationRepository(kube), namespace=namespace)
    docs = []
    for operator in OPERATORS:
        for i in range(25):
            docs.append(
                service.queue_operation(
                    operator,
                    label=f"{operator.rsplit('/', 1)[-1]} #{i}",
                    context={"request_params": {"dataset_name": f"ds{i % 2}", "dataset_id": f"id{i % 2}"}},
                    delegation_target="gpu" if i % 5 == 0 else None,
                )
            )
    last = ""
    for operator, state in zip(OPERATORS, STATES, strict=True):
        for doc in docs:
            if doc.operator == operator and state != "queued":
                getattr(service, f"set_{state}")(doc.id)
                last = str(doc.id)
    yield Store(service, docs, last)


def ids(docs: list[DelegatedOperationDocument]) -> list[str]:
    return [str(d.id) for d in docs]


def test_sorting_and_limits(store: Store) -> None:
    """§7 37."""
    service = store.service
    newest = service.list_operations(paging=DelegatedOperationPagingParams(limit=25, sort_by=SortByField.QUEUED_AT))
    assert len(newest) == 25 and newest[0].id == store.queued[-1].id
    assert ids(newest) == ids(list(reversed(store.queued)))[:25]
    by_update = service.list_operations(paging={"limit": 1000, "sort_by": "updated_at", "sort_direction": -1})
    assert len(by_update) == 100 and by_update[0].id == store.last_updated
    first = service.list_operations(paging=DelegatedOperationPagingParams(limit=1, sort_direction=1))
    assert ids(first) == [store.queued[0].id]


def test_filter_by_operator(store: Store) -> None:
    """§7 38."""
    for operator, state in zip(OPERATORS, STATES, strict=True):
        docs = store.service.list_operations(operator=operator)
        assert len(docs) == 25 and {d.operator for d in docs} == {operator} and {d.run_state for d in docs} == {state}


def test_paging_queued_operations(store: Store) -> None:
    """§7 39: limit=7, skip=page*7 → 4 non-empty pages totalling 25, no duplicates."""
    pages = []
    for page in range(5):
        paging = DelegatedOperationPagingParams(limit=7, skip=page * 7)
        pages.append(ids(store.service.list_operations(run_state="queued", paging=paging)))
    assert [len(p) for p in pages] == [7, 7, 7, 4, 0]
    flat = [i for p in pages for i in p]
    assert len(set(flat)) == 25 and flat == ids(store.service.get_queued_operations())


def test_search(store: Store) -> None:
    """§7 40/41: search and count with search, then with two extra operations matching foo_baz."""
    service = store.service
    assert len(service.list_operations(search={"operator/test": {"operator"}})) == 100
    assert len(service.list_operations(search={"test_0": {"operator"}})) == 25
    assert len(service.list_operations(search={"test_0": {"operator", "label"}})) == 25
    assert service.count(search={"operator/test": {"operator"}}) == 100
    assert service.count(search={"test_0": {"operator"}}) == 25
    assert service.count(filters={"operator": OPERATORS[0]}) == 25
    extra = [
        service.queue_operation("@voxelfiftyone/operator/foo_baz", label="extra one"),
        service.queue_operation("@voxelfiftyone/operator/other", label="foo_baz"),
    ]
    try:
        assert len(service.list_operations(search={"foo_baz": {"operator", "label"}})) == 2
        assert len(service.list_operations(search={"foo_baz": {"label"}})) == 1
        assert len(service.list_operations(search={"foo_baz": {"operator"}})) == 1
        assert service.count(search={"foo_baz": {"label"}}) == 1
        assert len(service.list_operations(search={"^test_1 #1.$": {"label"}})) == 10
    finally:
        for doc in extra:
            service.delete_operation(doc.id)  # type: ignore[arg-type]


def test_paging_defaults(store: Store) -> None:
    """§5.2, §11 surprise 5: no paging → up to 1000; the class default → 10; limit None/0 → unlimited."""
    service = store.service
    assert len(service.list_operations()) == 100
    assert len(service.list_operations(paging=DelegatedOperationPagingParams())) == 10
    assert len(service.list_operations(paging={"limit": 0})) == 100
    assert len(service.list_operations(paging={"limit": None, "skip": 95})) == 5


def test_count(store: Store) -> None:
    service = store.service
    assert service.count() == 100  # FiftyOne raises TypeError here (documented difference)
    assert service.count(filters={}) == 100
    assert service.count(filters={"run_state": "queued"}) == 25
    assert service.count(filters={"run_state": "failed", "operator": OPERATORS[3]}) == 25
    assert service.count(filters={"run_state": "failed", "operator": OPERATORS[0]}) == 0
    assert service.count(filters={"dataset_name": "ds1"}) == 48
    assert service.count(filters={"delegation_target": "gpu"}) == 20


def test_other_filters(store: Store) -> None:
    service = store.service
    assert {d.context.dataset_name for d in service.list_operations(dataset_name="ds0")} == {"ds0"}  # type: ignore[union-attr]
    assert len(service.list_operations(dataset_name="ds0")) == 52
    assert len(service.list_operations(dataset_id="id1", run_state="queued")) == 12
    assert {d.delegation_target for d in service.list_operations(delegation_target="gpu")} == {"gpu"}
    pinned = store.queued[3]
    service.set_pinned(pinned.id)  # type: ignore[arg-type]
    try:
        assert ids(service.list_operations(pinned=True)) == [pinned.id]
        assert len(service.list_operations(pinned=None)) == 100
        assert len(service.list_operations(pinned=False)) == 99
        assert ids(service.list_operations(label=pinned.label)) == [pinned.id]
    finally:
        service.set_pinned(pinned.id, False)  # type: ignore[arg-type]


def test_archived_hidden_from_lists_but_counted(store: Store) -> None:
    """§7 14 and §11 surprise 6."""
    service = store.service
    target = store.queued[0]
    archived = service.archive_operation(target.id)  # type: ignore[arg-type]
    try:
        assert archived is not None and archived.archived is True
        assert target.id not in ids(service.list_operations())
        assert target.id not in ids(service.get_queued_operations())
        shown = {d.id: d for d in service.list_operations(include_archived=True)}
        assert shown[target.id].archived is True
        assert service.count() == 100 and service.count(filters={"archived": True}) == 1
        assert ids(service.list_operations(archived=True)) == [target.id]
    finally:
        unarchived = service.unarchive_operation(target.id)  # type: ignore[arg-type]
    assert unarchived is not None and unarchived.archived is False
    assert target.id in ids(service.list_operations())
    assert service.archive_operation("dop-missing") is None and service.unarchive_operation("dop-missing") is None


def test_run_state_filter_is_server_side(dops_server: EmbeddedServer, store: Store) -> None:
    dops_server.http.access_log = []
    try:
        store.service.list_operations(run_state="running")
        lists = [
            r for r in dops_server.http.access_log if r.method == "GET" and r.path.endswith("/delegatedoperations")
        ]
    finally:
        dops_server.http.access_log = None
    assert lists and all("status.runState=running" in r.query.get("fieldSelector", "") for r in lists)


def test_an_operation_whose_queued_write_has_not_landed_sorts_at_its_names_instant(
    service: DelegatedOperationService, repo: DelegatedOperationRepository
) -> None:
    """Between the service's create and its `queued` status write, another client's newest-first listing shows the
    operation first (at the instant its generated name holds, which that write stores), not last as a null."""
    older = service.queue_operation("@dops/examples/echo", label="older")
    now = utcnow() + dt.timedelta(seconds=1)
    name = new_operation_name("@dops/examples/echo", now, os.urandom(4))
    spec = {"operator": "@dops/examples/echo", "label": "in-flight"}
    repo.create(service.namespace, operation_resource(name, service.namespace, spec, name_ordered=True))
    repo.create(service.namespace, operation("aa-no-status", service.namespace).label("foreign").build())
    for paging in ({"limit": 0}, {"limit": 1}):  # the full client-side sort and the name-order fast path
        listed = service.list_operations(paging=paging)
        assert listed[0].label == "in-flight" and listed[0].queued_at is None, [(d.label, d.queued_at) for d in listed]
    assert [d.label for d in service.list_operations(paging={"limit": 0})] == ["in-flight", "older", "foreign"]
    assert older.queued_at is not None


def test_name_order_fast_path_matches_a_full_sort(
    service: DelegatedOperationService, repo: DelegatedOperationRepository
) -> None:
    """Operations without the name-order label (kubectl-created, re-queued) are merged in at their queued_at."""
    docs = [service.queue_operation("@dops/examples/echo", label=f"op{i}") for i in range(12)]
    # An operation created with kubectl: a foreign name, queued "between" op3 and op4.
    middle = docs[3].queued_at + (docs[4].queued_at - docs[3].queued_at) / 2  # type: ignore[operator]
    foreign = operation("zz-made-with-kubectl", service.namespace).label("foreign").build()
    repo.create(service.namespace, foreign)
    repo.patch_status(
        service.namespace, "zz-made-with-kubectl", {"status": {"runState": "queued", "queuedAt": format_time(middle)}}
    )
    # One without any status yet (sorts last when descending, like a null in MongoDB).
    repo.create(service.namespace, operation("aa-no-status", service.namespace).label("unqueued").build())
    # Re-queue an old operation: it becomes the newest.
    service.set_queued(docs[1].id)  # type: ignore[arg-type]
    full = service.list_operations(paging={"limit": 0})  # client-side sort of everything
    expected = ["op1", *[f"op{i}" for i in range(11, 3, -1)], "foreign", "op3", "op2", "op0", "unqueued"]
    assert [d.label for d in full] == expected
    for skip in range(0, 15, 3):
        for limit in (1, 2, 5, 20):
            fast = service.list_operations(paging={"skip": skip, "limit": limit})
            assert ids(fast) == ids(full)[skip : skip + limit], (skip, limit)
    queued_only = service.list_operations(run_state="queued", paging={"limit": 3})
    assert [d.label for d in queued_only] == ["op1", "op11", "op10"]
