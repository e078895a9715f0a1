"""Behaviours where dops' service used to differ from FiftyOne's without saying so (issue 12, part 1).

Run side by side with FiftyOne's own `DelegatedOperationService` (1.22, MongoDB), these call sequences
gave different answers. Each is now either FiftyOne's answer or a difference written down in
docs/fiftyone-compat.md; every test drives the public service against the embedded control plane and
checks the returned value and what is stored.

Aspects covered (issue 12 item in brackets):
- run-state names are compared exactly: `required_state="QUEUED"` loses the compare-and-set (None, nothing
  written); `list_operations(run_state="QUEUED")` → [], `count(filters={"run_state": "QUEUED"})` → 0. [1]
- unknown states ("bogus", "processing") are not errors: every `set_*` returns None and writes nothing;
  listing and counting find nothing. [2]
- `queue_operation` without a context stores an empty request and the run completes (documented: FiftyOne
  stores None and its executor then fails). [3]
- stored empty strings read back as "": delegation target, run link, log path, log upload error; "" and a
  missing target are told apart by count filters. [4]
- `set_log_size` refuses a negative or non-integer size and stores nothing (documented: the CRD's integer ≥ 0). [5]
- a negative paging limit is its absolute value, as in MongoDB. [6]
- error types: TypeError for a non-integer limit/skip and an unknown paging key (FiftyOne's); ValueError for a
  sort direction other than ±1 (documented: FiftyOne's is pymongo's OperationFailure). [7]
- the operator's `ctx.delegated` is the request's `delegated` flag, False without one. [8]
- found by the differential suite (tests/fiftyone): `set_label(id, "")` reads back "" (search and filters see
  ""), and `execute_queued_operations(limit=0)` is no limit (1001 operations, not the 1000 of no paging).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from dops import DelegatedOperationService, ExecutionRunState
from dops.api.types import DelegatedOperationDocument, DelegatedOperationPagingParams, SortDirection
from dops.emulator import EmbeddedServer
from dops.k8s import DelegatedOperationRepository

pytestmark = pytest.mark.both_planes

REPO = Path(__file__).resolve().parent.parent.parent
SetState = Callable[[DelegatedOperationService, str, Any], DelegatedOperationDocument | None]

SETTERS: dict[str, SetState] = {
    "set_queued": lambda s, i, r: s.set_queued(i, required_state=r),
    "set_scheduled": lambda s, i, r: s.set_scheduled(i, required_state=r),
    "set_running": lambda s, i, r: s.set_running(i, required_state=r),
    "set_completed": lambda s, i, r: s.set_completed(i, result={"x": 1}, required_state=r),
    "set_failed": lambda s, i, r: s.set_failed(i, required_state=r),
}


def stored(repo: DelegatedOperationRepository, doc: DelegatedOperationDocument) -> dict[str, Any]:
    assert doc.namespace is not None and doc.id is not None
    return repo.get(doc.namespace, doc.id)


def ident(doc: DelegatedOperationDocument) -> str:
    assert doc.id is not None
    return doc.id


# ------------------------------------------------------------------------------------------- [1] exact names


@pytest.mark.parametrize("name", sorted(SETTERS))
def test_upper_case_required_state_loses_the_cas(
    service: DelegatedOperationService, repo: DelegatedOperationRepository, name: str
) -> None:
    """FiftyOne filters `{"run_state": "QUEUED"}`: no operation is stored in that spelling, so None."""
    doc = service.queue_operation("@dops/examples/echo")
    before = stored(repo, doc)["status"]
    assert SETTERS[name](service, ident(doc), "QUEUED") is None
    assert stored(repo, doc)["status"] == before  # nothing written, updatedAt included
    assert service.get(ident(doc)).run_state == ExecutionRunState.QUEUED
    # the exact name wins the same compare-and-set
    won = SETTERS[name](service, ident(doc), "queued")
    assert won is not None and won.run_state == name.removeprefix("set_")


def test_upper_case_run_state_lists_and_counts_nothing(service: DelegatedOperationService) -> None:
    a = service.queue_operation("@dops/examples/echo")
    b = service.queue_operation("@dops/examples/echo")
    for spelling in ("QUEUED", "Queued"):
        assert service.list_operations(run_state=spelling) == []
        assert service.count(filters={"run_state": spelling}) == 0
        assert service.count(filters={"run_state": {"$in": [spelling]}}) == 0
    assert {d.id for d in service.list_operations(run_state="queued")} == {a.id, b.id}
    assert service.count(filters={"run_state": ExecutionRunState.QUEUED}) == 2


# ------------------------------------------------------------------------------------------- [2] unknown states


@pytest.mark.parametrize("state", ["bogus", "processing", ""])
def test_unknown_required_state_returns_none_and_writes_nothing(
    service: DelegatedOperationService, repo: DelegatedOperationRepository, state: str
) -> None:
    doc = service.queue_operation("@dops/examples/echo")
    before = stored(repo, doc)["status"]
    for name, setter in SETTERS.items():
        assert setter(service, ident(doc), state) is None, name
    assert stored(repo, doc)["status"] == before
    assert service.set_running("dop-missing", required_state=state) is None  # missing: None as well


@pytest.mark.parametrize("state", ["bogus", "processing"])
def test_unknown_run_state_lists_and_counts_nothing(service: DelegatedOperationService, state: str) -> None:
    service.queue_operation("@dops/examples/echo")
    assert service.list_operations(run_state=state) == []
    assert service.count(filters={"run_state": state}) == 0
    assert service.list_operations(run_state=state, include_archived=True, paging={"limit": 0}) == []


def test_query_shaped_required_state_is_refused(service: DelegatedOperationService) -> None:
    """FiftyOne would pass a dict to MongoDB as a query; a JSON Patch test cannot, so it is a ValueError."""
    doc = service.queue_operation("@dops/examples/echo")
    with pytest.raises(ValueError, match="required_state must be a run state name"):
        service.set_running(ident(doc), required_state={"$in": ["queued", "scheduled"]})
    assert service.get(ident(doc)).run_state == "queued"


# ------------------------------------------------------------------------------------------- [3] no context


def test_queue_without_context_stores_an_empty_request_and_runs(
    service: DelegatedOperationService, repo: DelegatedOperationRepository
) -> None:
    """Documented difference: FiftyOne stores `context: None` and its executor then fails on it."""
    doc = service.queue_operation("@dops/examples/echo")
    assert stored(repo, doc)["spec"]["context"] == {}
    assert doc.context is not None and doc.context.request_params == {} and doc.context.params == {}
    result = service.execute_operation(doc)
    assert result is not None and result.error is None and result.result == {}
    done = service.get(ident(doc))
    assert done.run_state == "completed" and done.completed_at is not None


# ------------------------------------------------------------------------------------------- [4] empty strings


def test_empty_strings_read_back_as_empty_strings(
    service: DelegatedOperationService, repo: DelegatedOperationRepository
) -> None:
    doc = service.queue_operation("@dops/examples/echo", delegation_target="")
    assert doc.delegation_target == "" and stored(repo, doc)["spec"]["delegationTarget"] == ""
    running = service.set_running(ident(doc), run_link="", log_path="")
    assert running is not None and (running.run_link, running.log_path) == ("", "")
    errored = service.set_log_upload_error(ident(doc), "")
    assert errored.log_upload_error == ""
    again = service.get(ident(doc))
    assert (again.delegation_target, again.run_link, again.log_path, again.log_upload_error) == ("", "", "", "")
    status = stored(repo, doc)["status"]
    assert (status["runLink"], status["logPath"], status["logUploadError"]) == ("", "", "")


def test_empty_label_reads_back_empty(service: DelegatedOperationService) -> None:
    """FiftyOne: `set_label(id, "")` stores and returns "" (only queueing turns a falsy label into the operator)."""
    doc = service.queue_operation("@dops/examples/echo", label="")
    assert doc.label == "@dops/examples/echo"
    relabelled = service.set_label(ident(doc), "")
    assert relabelled.label == "" and service.get(ident(doc)).label == ""
    # search and filters see the stored "", not the operator URI
    assert service.list_operations(search={"echo": ["label"]}) == []
    assert service.count(filters={"label": ""}) == 1


def test_empty_and_missing_targets_are_different_filter_values(service: DelegatedOperationService) -> None:
    """As in MongoDB: `{"delegation_target": ""}` matches only "", `None` only a missing target."""
    empty = service.queue_operation("@dops/examples/echo", delegation_target="")
    missing = service.queue_operation("@dops/examples/echo")
    named = service.queue_operation("@dops/examples/echo", delegation_target="gpu")
    assert service.count(filters={"delegation_target": ""}) == 1
    assert service.count(filters={"delegation_target": None}) == 1
    assert service.count(filters={"delegation_target": "gpu"}) == 1
    assert {d.id for d in service.list_operations(delegation_target="")} == {empty.id, missing.id, named.id}  # falsy


# ------------------------------------------------------------------------------------------- [5] log size


@pytest.mark.parametrize("size", [-5, "big", 1.5, True])
def test_log_size_must_be_a_byte_count(
    service: DelegatedOperationService, repo: DelegatedOperationRepository, size: Any
) -> None:
    """Documented difference: status.logSize is an integer ≥ 0 in the CRD; FiftyOne stores anything."""
    doc = service.queue_operation("@dops/examples/echo")
    with pytest.raises(ValueError, match="log_size must be a non-negative integer"):
        service.set_log_size(ident(doc), size)
    assert "logSize" not in stored(repo, doc)["status"] and service.get(ident(doc)).log_size is None
    assert service.set_log_size(ident(doc), 0).log_size == 0


# ------------------------------------------------------------------------------------------- [6] negative limit


def test_negative_limit_is_its_absolute_value(service: DelegatedOperationService) -> None:
    docs = [service.queue_operation("@dops/examples/echo", label=f"op {i}") for i in range(4)]
    newest_first = [d.id for d in reversed(docs)]
    assert [d.id for d in service.list_operations(paging=DelegatedOperationPagingParams(limit=-1))] == newest_first[:1]
    assert [d.id for d in service.list_operations(paging={"limit": -3})] == newest_first[:3]
    assert [d.id for d in service.list_operations(paging={"limit": -2, "skip": 1})] == newest_first[1:3]
    by_label = service.list_operations(
        paging={"sort_by": "label", "sort_direction": SortDirection.ASCENDING, "limit": -2}
    )
    assert [d.label for d in by_label] == ["op 0", "op 1"]


# ------------------------------------------------------------------------------------------- [7] error types


@pytest.mark.parametrize(
    ("paging", "error", "message"),
    [
        ({"limit": "5"}, TypeError, "limit must be an integer"),
        (DelegatedOperationPagingParams(limit=2.5), TypeError, "limit must be an integer"),  # type: ignore[arg-type]
        ({"skip": "1"}, TypeError, "skip must be an integer"),
        ({"bogus": 1}, TypeError, "bogus"),
        ({"sort_direction": 2}, ValueError, "sort_direction must be 1"),
        (DelegatedOperationPagingParams(sort_direction=0), ValueError, "sort_direction must be 1"),
    ],
)
def test_paging_error_types(
    service: DelegatedOperationService, paging: Any, error: type[Exception], message: str
) -> None:
    service.queue_operation("@dops/examples/echo")
    with pytest.raises(error, match=message):
        service.list_operations(paging=paging)


def test_sort_direction_is_only_checked_when_sorting(service: DelegatedOperationService) -> None:
    """FiftyOne hands the direction to MongoDB only with a sort field."""
    doc = service.queue_operation("@dops/examples/echo")
    assert [d.id for d in service.list_operations(paging={"sort_by": None, "sort_direction": 7})] == [doc.id]


# ------------------------------------------------------------------------------------------- [8] ctx.delegated


@pytest.mark.slow
def test_execute_queued_operations_limit_zero_is_no_limit(
    dops_server: EmbeddedServer, service: DelegatedOperationService
) -> None:
    """FiftyOne: `limit=0` pages with a falsy limit, i.e. every queued operation, not the 1000 of no paging.

    1001 operations are queued; every claim is then refused (404: another executor deleted it), so each
    execution is one cheap request and returns None, and the returned list has one entry per listed operation."""
    for _ in range(1001):
        service.queue_operation("@dops/examples/echo")
    rule = dops_server.call(
        lambda: dops_server.faults.add(404, "PATCH", "/delegatedoperations/[^/]+/status$", times=-1)
    )
    try:
        results = service.execute_queued_operations(limit=0)
    finally:
        dops_server.call(lambda: dops_server.faults.rules.remove(rule))
    assert len(results) == 1001 and results == [None] * 1001
    assert len(service.execute_queued_operations(limit=2)) == 2  # a positive limit still limits


@pytest.mark.parametrize(("request_params", "delegated"), [({}, False), ({"delegated": True}, True)])
def test_ctx_delegated_follows_the_request(
    service: DelegatedOperationService,
    monkeypatch: pytest.MonkeyPatch,
    request_params: dict[str, Any],
    delegated: bool,
) -> None:
    monkeypatch.setenv("DOPS_ALLOW_IMPORT_PATHS", "true")
    monkeypatch.syspath_prepend(str(REPO))
    doc = service.queue_operation(
        "py:tests.worker_ops:report_delegated", context={"request_params": {**request_params, "params": {}}}
    )
    result = service.execute_operation(doc)
    assert result is not None and result.error is None and result.result == {"delegated": delegated}
    done = service.get(ident(doc))
    assert done.run_state == "completed" and done.result is not None and done.result.result == {"delegated": delegated}
