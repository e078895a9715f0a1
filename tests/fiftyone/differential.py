"""The call sequences of the differential suite, and how their results are normalised for comparison.

Each scenario is a function of a `Run` (one service: FiftyOne's over mongomock, dops', or FiftyOne's over the
bridge) returning plain data: documents become dicts of the attributes FiftyOne defines, ids become aliases
(`op0`, `op1`, ... in queue order), timestamps become the set of those present plus the order relations the
scenario asks about, exceptions become `("raises", <builtin type>)`. Two services behave the same on a
scenario when the returned data are equal.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections.abc import Callable
from typing import Any

TIMES = ("queued_at", "scheduled_at", "started_at", "completed_at", "failed_at", "updated_at")
BUILTIN_ERRORS = (KeyError, AttributeError, TypeError, ValueError, PermissionError, RuntimeError, Exception)


class Run:
    """One service under test, with the aliases of the operations it made."""

    def __init__(self, service: Any, missing_id: Any) -> None:
        self.svc = service
        self.missing_id = missing_id
        self.alias: dict[str, str] = {}

    def q(self, operator: str = "@test/plugin/op", **kwargs: Any) -> Any:
        """Queue an operation and give it the next alias."""
        doc = self.svc.queue_operation(operator, **kwargs)
        self.alias.setdefault(str(doc.id), f"op{len(self.alias)}")
        # MongoDB keeps datetimes to the millisecond: two operations queued within one tie on queued_at and
        # FiftyOne lists them in insertion order (dops keeps microseconds). Listings compare orders, so every
        # operation gets its own millisecond; the tie itself is a documented difference.
        time.sleep(0.002)
        return doc

    def name(self, ident: Any) -> str:
        return self.alias.setdefault(str(ident), f"op{len(self.alias)}")

    def doc(self, doc: Any) -> Any:
        """A document as comparable data (None stays None)."""
        if doc is None:
            return None
        ctx = doc.context
        params = getattr(ctx, "request_params", None) if ctx is not None else None
        status = doc.status
        result = doc.result
        pipeline = doc.pipeline
        return {
            "id": self.name(doc.id),
            "operator": doc.operator,
            "label": doc.label,
            "delegation_target": doc.delegation_target,
            "run_state": str(doc.run_state) if doc.run_state is not None else None,
            "context": None if ctx is None else dict(params or {}),
            "pinned": bool(doc.pinned),
            "archived": bool(doc.archived),
            "rerunnable": bool(doc.rerunnable),
            "monitored": bool(doc.monitored),
            "run_link": doc.run_link,
            "status": None if status is None else (status.progress, status.label, status.updated_at is not None),
            "result": None if result is None else (result.result, result.error),
            "metadata": dict(doc.metadata or {}),
            "parent_id": doc.parent_id,
            "pipeline": None if pipeline is None else pipeline.to_json(),
            "times": sorted(t for t in TIMES if getattr(doc, t) is not None),
        }

    def docs(self, docs: list[Any]) -> list[Any]:
        return [self.doc(d) for d in docs]

    def ids(self, docs: list[Any]) -> list[str]:
        return [self.name(d.id) for d in docs]


def attempt(fn: Callable[[], Any]) -> Any:
    """The value of `fn()`, or `("raises", <the builtin error type it is>)`."""
    try:
        return fn()
    except BUILTIN_ERRORS as exc:
        for kind in BUILTIN_ERRORS:
            if isinstance(exc, kind):
                return ("raises", kind.__name__)
        raise


SCENARIOS: dict[str, Callable[[Run], Any]] = {}


def scenario(fn: Callable[[Run], Any]) -> Callable[[Run], Any]:
    SCENARIOS[fn.__name__] = fn
    return fn


CTX = {"request_params": {"params": {"a": 1}, "dataset_name": "ds", "delegated": True}}

# ------------------------------------------------------------------------------------------------ queueing


@scenario
def queue_defaults(r: Run) -> Any:
    return r.doc(r.q(context={"request_params": {"params": {}}}))


@scenario
def queue_every_argument(r: Run) -> Any:
    doc = r.q(
        label="my label",
        delegation_target="gpu",
        context=CTX,
        metadata={"inputs_schema": {"type": "object"}, "extra": 1},
        rerunnable=False,
    )
    return r.doc(doc), r.doc(r.svc.get(doc.id))


@scenario
def queue_without_context(r: Run) -> Any:
    return r.doc(r.svc.get(r.q().id))


@scenario
def queue_empty_target_and_label(r: Run) -> Any:
    doc = r.q(label="", delegation_target="", context=CTX)
    return r.doc(r.svc.get(doc.id)), r.svc.count(filters={"delegation_target": ""})


@scenario
def queue_context_without_request_params(r: Run) -> Any:
    return attempt(lambda: r.doc(r.q(context={"params": {"a": 1}})))


# ------------------------------------------------------------------------------------------------ reads


@scenario
def get_missing(r: Run) -> Any:
    return attempt(lambda: r.svc.get(r.missing_id))


@scenario
def get_by_state(r: Run) -> Any:
    a, b, c = r.q(context=CTX), r.q(context=CTX), r.q(context=CTX, operator="@test/plugin/other")
    r.svc.set_scheduled(b.id)
    r.svc.set_running(c.id)
    return (
        r.ids(r.svc.get_queued_operations()),
        r.ids(r.svc.get_scheduled_operations()),
        r.ids(r.svc.get_running_operations()),
        r.ids(r.svc.get_running_operations(operator="@test/plugin/op")),
        r.ids(r.svc.get_queued_operations(dataset_name="ds")),
        r.ids(r.svc.get_queued_operations(dataset_name="other")),
        a.id is not None,
    )


# ------------------------------------------------------------------------------------------------ state changes

SETTERS: dict[str, Callable[[Any, Any, Any], Any]] = {
    "queued": lambda s, i, req: s.set_queued(i, required_state=req),
    "scheduled": lambda s, i, req: s.set_scheduled(i, required_state=req),
    "running": lambda s, i, req: s.set_running(i, required_state=req),
    "completed": lambda s, i, req: s.set_completed(i, result={"n": 1}, required_state=req),
    "failed": lambda s, i, req: s.set_failed(i, required_state=req),
}


@scenario
def every_transition(r: Run) -> Any:
    out = {}
    for first in SETTERS:
        for second in SETTERS:
            doc = r.q(context=CTX)
            SETTERS[first](r.svc, doc.id, None)
            after = SETTERS[second](r.svc, doc.id, None)
            out[f"{first}->{second}"] = (after.run_state, sorted(t for t in TIMES if getattr(after, t) is not None))
    return out


@scenario
def compare_and_set(r: Run) -> Any:
    out = {}
    for state in SETTERS:
        for required in ("queued", "running", "QUEUED", "bogus", "processing", ""):
            doc = r.q(context=CTX)
            won = SETTERS[state](r.svc, doc.id, required)
            out[f"{state}/{required}"] = (won is not None, str(r.svc.get(doc.id).run_state))
    return out


@scenario
def setters_on_a_missing_id(r: Run) -> Any:
    return {name: attempt(lambda s=setter: s(r.svc, r.missing_id, None)) for name, setter in SETTERS.items()}


@scenario
def running_with_progress_and_link(r: Run) -> Any:
    doc = r.q(context=CTX)
    return r.doc(r.svc.set_running(doc.id, progress={"progress": 0.5, "label": "half"}, run_link="http://x"))


@scenario
def completed_and_failed_results(r: Run) -> Any:
    a, b, c = r.q(context=CTX), r.q(context=CTX), r.q(context=CTX)
    return (
        r.doc(r.svc.set_completed(a.id, result={"answer": 42})),
        r.doc(r.svc.set_completed(b.id)),
        r.doc(r.svc.set_failed(c.id, result={"x": 1})),
    )


@scenario
def timestamps_move_forward(r: Run) -> Any:
    doc = r.svc.get(r.q(context=CTX).id)  # as stored (FiftyOne returns its in-memory document from the queue)
    running = r.svc.set_running(doc.id)
    done = r.svc.set_completed(doc.id, result={"n": 1})
    return (
        doc.queued_at <= running.started_at <= done.completed_at,
        done.updated_at >= running.updated_at,
        done.started_at == running.started_at,
        abs((done.completed_at - done.queued_at).total_seconds()) < 60,
    )


@scenario
def timestamps_are_naive_utc(r: Run) -> Any:
    doc = r.svc.get(r.q(context=CTX).id)
    return doc.queued_at.tzinfo is None, isinstance(doc.queued_at, dt.datetime)


@scenario
def progress_updates(r: Run) -> Any:
    doc = r.q(context=CTX)
    return (
        r.doc(r.svc.set_progress(doc.id, {"progress": 0.25, "label": "a quarter"})),
        r.doc(r.svc.set_progress(doc.id, {"label": "only a label"})),
        attempt(lambda: r.svc.set_progress(doc.id, {})),
        attempt(lambda: r.svc.set_progress(doc.id, "half")),
    )


@scenario
def progress_out_of_range(r: Run) -> Any:
    doc = r.q(context=CTX)
    return attempt(lambda: r.doc(r.svc.set_progress(doc.id, {"progress": 5})))


@scenario
def progress_on_a_missing_id(r: Run) -> Any:
    return attempt(lambda: r.svc.set_progress(r.missing_id, {"progress": 0.5}))


# ------------------------------------------------------------------------------------------------ other updates


@scenario
def label_pin_archive(r: Run) -> Any:
    doc = r.q(context=CTX)
    return (
        r.doc(r.svc.set_label(doc.id, "renamed")),
        r.doc(r.svc.set_pinned(doc.id)),
        r.doc(r.svc.set_pinned(doc.id, False)),
        r.doc(r.svc.archive_operation(doc.id)),
        r.ids(r.svc.list_operations()),
        r.ids(r.svc.list_operations(include_archived=True)),
        r.svc.count(filters={}),
        r.doc(r.svc.unarchive_operation(doc.id)),
        r.ids(r.svc.list_operations()),
    )


@scenario
def empty_label(r: Run) -> Any:
    doc = r.q(context=CTX)
    return r.doc(r.svc.set_label(doc.id, "")), r.doc(r.svc.get(doc.id))


@scenario
def updates_on_a_missing_id(r: Run) -> Any:
    return (
        attempt(lambda: r.svc.set_label(r.missing_id, "x")),
        attempt(lambda: r.svc.set_pinned(r.missing_id)),
        r.svc.archive_operation(r.missing_id),
        r.svc.unarchive_operation(r.missing_id),
        r.svc.delete_operation(r.missing_id),
    )


# ------------------------------------------------------------------------------------------------ delete / rerun


@scenario
def delete_returns_the_deleted(r: Run) -> Any:
    doc = r.q(context=CTX)
    gone = r.svc.delete_operation(doc.id)
    return r.doc(gone)["id"], attempt(lambda: r.svc.get(doc.id)), r.svc.count(filters={})


@scenario
def rerun_copies_the_request(r: Run) -> Any:
    doc = r.q(label="l", delegation_target="t", context=CTX, metadata={"inputs_schema": {"a": 1}})
    r.svc.set_completed(doc.id, result={"n": 1})
    again = r.svc.rerun_operation(doc.id)
    return r.doc(again), r.doc(r.svc.get(doc.id)), r.svc.count(filters={})


@scenario
def rerun_copies_queued_metadata(r: Run) -> Any:
    doc = r.q(context=CTX, metadata={"outputs_schema": {"b": 2}})
    return r.doc(r.svc.rerun_operation(doc.id))["metadata"]


@scenario
def rerun_not_rerunnable(r: Run) -> Any:
    doc = r.q(context=CTX, rerunnable=False)
    return attempt(lambda: r.svc.rerun_operation(doc.id)), r.svc.count(filters={})


@scenario
def rerun_missing(r: Run) -> Any:
    return attempt(lambda: r.svc.rerun_operation(r.missing_id))


# ------------------------------------------------------------------------------------------------ listing


def _three(r: Run) -> list[Any]:
    a = r.q("@test/plugin/b", label="beta", delegation_target="gpu", context=CTX)
    b = r.q("@test/plugin/a", label="alpha", context={"request_params": {"dataset_name": "other"}})
    c = r.q("@test/plugin/c", label="gamma", delegation_target="cpu", context=CTX)
    return [a, b, c]


@scenario
def list_filters(r: Run) -> Any:
    a, b, c = _three(r)
    r.svc.set_running(c.id)
    r.svc.set_pinned(b.id)
    s = r.svc
    return {
        "all": r.ids(s.list_operations()),
        "operator": r.ids(s.list_operations(operator="@test/plugin/a")),
        "state": r.ids(s.list_operations(run_state="running")),
        "state_upper": r.ids(s.list_operations(run_state="RUNNING")),
        "state_bogus": r.ids(s.list_operations(run_state="bogus")),
        "target": r.ids(s.list_operations(delegation_target="gpu")),
        "dataset": r.ids(s.list_operations(dataset_name="ds")),
        "pinned_kwarg": r.ids(s.list_operations(pinned=True)),
        "label_kwarg": r.ids(s.list_operations(label="gamma")),
        "in": r.ids(s.list_operations(run_state={"$in": ["running", "queued"]})),
        "empty_operator_is_no_filter": r.ids(s.list_operations(operator="")),
        "a_is": a.id is not None,
    }


@scenario
def list_paging_and_sorting(r: Run) -> Any:
    _three(r)
    s = r.svc
    return {
        "default": r.ids(s.list_operations()),
        "limit2": r.ids(s.list_operations(paging={"limit": 2})),
        "skip1": r.ids(s.list_operations(paging={"skip": 1, "limit": 10})),
        "limit0": r.ids(s.list_operations(paging={"limit": 0})),
        "negative": r.ids(s.list_operations(paging={"limit": -2})),
        "operator_asc": r.ids(s.list_operations(paging={"sort_by": "operator", "sort_direction": 1})),
        "operator_desc": r.ids(s.list_operations(paging={"sort_by": "operator", "sort_direction": -1})),
        "queued_asc": r.ids(s.list_operations(paging={"sort_by": "queued_at", "sort_direction": 1})),
        "label_desc_skip": r.ids(s.list_operations(paging={"sort_by": "label", "sort_direction": -1, "skip": 1})),
    }


@scenario
def list_paging_errors(r: Run) -> Any:
    r.q(context=CTX)
    s = r.svc
    return {
        "unknown_key": attempt(lambda: s.list_operations(paging={"page": 1})),
        "text_limit": attempt(lambda: s.list_operations(paging={"limit": "2"})),
    }


@scenario
def list_negative_skip(r: Run) -> Any:
    r.q(context=CTX)
    return attempt(lambda: r.ids(r.svc.list_operations(paging={"skip": -1})))


@scenario
def list_bad_sort_direction(r: Run) -> Any:
    r.q(context=CTX)
    return attempt(lambda: r.svc.list_operations(paging={"sort_by": "operator", "sort_direction": 2}))


@scenario
def list_unknown_sort_field(r: Run) -> Any:
    _three(r)
    return attempt(lambda: r.ids(r.svc.list_operations(paging={"sort_by": "nope", "sort_direction": 1})))


@scenario
def search(r: Run) -> Any:
    _three(r)
    s = r.svc
    return {
        "operator": r.ids(s.list_operations(search={"plugin/a": ["operator"]})),
        "label": r.ids(s.list_operations(search={"a$": ["label"]})),
        "or": r.ids(s.list_operations(search={"gam": ["label"], "plugin/b": ["operator"]})),
        "case": r.ids(s.list_operations(search={"ALPHA": ["label"]})),
        "delegated_operation": r.ids(s.list_operations(search={"a": ["delegated_operation"]})),
        "count": s.count(search={"plugin": ["operator"]}),
        "bad_field": attempt(lambda: s.list_operations(search={"a": ["context"]})),
    }


@scenario
def count_filters(r: Run) -> Any:
    a, b, c = _three(r)
    r.svc.set_running(c.id)
    r.svc.archive_operation(a.id)
    s = r.svc
    return {
        "state": s.count(filters={"run_state": "queued"}),
        "upper": s.count(filters={"run_state": "QUEUED"}),
        "bogus": s.count(filters={"run_state": "bogus"}),
        "dataset": s.count(filters={"dataset_name": "ds"}),
        "archived_counted": s.count(filters={"operator": "@test/plugin/b"}),
        "empty": s.count(filters={}),
        "in": s.count(filters={"run_state": {"$in": ["running", "queued"]}}),
        "b_is": b.id is not None,
    }


@scenario
def count_without_arguments(r: Run) -> Any:
    r.q(context=CTX)
    return attempt(lambda: r.svc.count())


# ------------------------------------------------------------------------------------------------ races


@scenario
def racing_claims(r: Run) -> Any:
    """Eight threads claim the same queued operation with a compare-and-set: exactly one wins."""
    doc = r.q(context=CTX)
    wins: list[bool] = []
    lock = threading.Lock()
    start = threading.Barrier(8)

    def claim() -> None:
        start.wait()
        won = r.svc.set_running(doc.id, required_state="queued") is not None
        with lock:
            wins.append(won)

    threads = [threading.Thread(target=claim) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return sorted(wins), str(r.svc.get(doc.id).run_state)


# ------------------------------------------------------------------------------------------------ execution


@scenario
def execute_missing_operators(r: Run) -> Any:
    """Operators nobody provides fail the run; `limit=0` is no limit (FiftyOne's falsy limit)."""
    for _ in range(2):
        r.q("@test/nobody/nothing", context={"request_params": {"params": {}}})
    results = r.svc.execute_queued_operations(limit=0)
    states = sorted(str(d.run_state) for d in r.svc.list_operations())
    return len(results), [x is not None and x.error is not None for x in results], states


@scenario
def execute_limit(r: Run) -> Any:
    for _ in range(3):
        r.q("@test/nobody/nothing", context={"request_params": {"params": {}}})
    results = r.svc.execute_queued_operations(limit=2)
    return len(results), sorted(str(d.run_state) for d in r.svc.list_operations())


# ------------------------------------------------------------------------------------------------ more


@scenario
def monitored_running(r: Run) -> Any:
    doc = r.q(context=CTX)
    return r.doc(r.svc.set_running(doc.id, monitored=True)), r.doc(r.svc.set_queued(doc.id))["monitored"]


@scenario
def delete_for_no_dataset(r: Run) -> Any:
    r.q(context=CTX)
    r.q(context=CTX)
    return attempt(lambda: r.svc.delete_for_dataset(None)), r.svc.count(filters={})


@scenario
def racing_outcomes(r: Run) -> Any:
    """A completion and a failure race from `running`: exactly one outcome is written, and it stays."""
    doc = r.q(context=CTX)
    r.svc.set_running(doc.id)
    start = threading.Barrier(2)
    won: dict[str, bool] = {}

    def finish(state: str) -> None:
        start.wait()
        won[state] = SETTERS[state](r.svc, doc.id, "running") is not None

    threads = [threading.Thread(target=finish, args=(s,)) for s in ("completed", "failed")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    final = str(r.svc.get(doc.id).run_state)
    return sum(won.values()), won[final]


@scenario
def search_with_filters_and_paging(r: Run) -> Any:
    _three(r)
    s = r.svc
    return (
        r.ids(s.list_operations(search={"plugin": ["operator"]}, delegation_target="gpu")),
        r.ids(s.list_operations(search={"a": ["label"]}, paging={"sort_by": "label", "sort_direction": 1, "limit": 2})),
        s.count(filters={"run_state": "queued"}, search={"gamma": ["label"]}),
    )
