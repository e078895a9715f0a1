"""Refused Job creates (issue 11 item 2): what the operator decides when the API server will not create
an operation's Job, table-tested without a cluster (`dops.domain.reconciling`).

Aspects covered:
- classification: 5xx/429/408/no answer are transient (quiet work-queue retries); a validation error that
  names fields of the Job fails the operation InvalidSpec; any other refusal (403, 422 from admission,
  400, 409, 404, 401) is persistent, except the 403 of a kind the API server has not discovered yet
  (a CRD installed moments ago), which is waited for quietly until it outlasts its patience;
- the retry delay doubles and is capped;
- a persistent refusal writes the `JobCreateFailed` condition (CAS on the run state, the server's reason
  and message) with a Warning Event, once: the same refusal again writes nothing, a different one
  rewrites it; nothing is written once the operation left queued/scheduled;
- once the Job exists, the plan clears the condition (status False, reason JobCreated) in a step of its
  own, and only while the condition is True;
- the work queue's retries are logged, and giving up is a WARNING naming what retries the key next.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from typing import Any

import pytest

from dops.api import constants as c
from dops.api.conditions import get_condition
from dops.domain.observe import compact_job
from dops.domain.reconciling import (
    CREATE_RETRY_MAX_SECONDS,
    UNDISCOVERED_PATIENCE,
    UNDISCOVERED_RETRY_SECONDS,
    CreateErrorKind,
    CreateJob,
    Terminate,
    View,
    WriteStatus,
    classify_create_error,
    compact_operation,
    create_retry_delay,
    job_create_failed,
    job_create_recovered,
    plan,
)
from dops.domain.settings import OperatorSettings
from dops.domain.targets import builtin_target
from dops.reconcile.workqueue import WorkQueue
from tests.workload_builders import job, operation

NOW = dt.datetime(2026, 1, 1, 0, 0, 30, tzinfo=dt.UTC)
SETTINGS = OperatorSettings()
QUOTA = 'jobs.batch "op-1" is forbidden: exceeded quota: jobs, requested: count/jobs.batch=1, used: 5, limited: 5'


@pytest.mark.parametrize(
    ("code", "field_causes", "kind"),
    [
        (0, False, CreateErrorKind.TRANSIENT),  # no answer (connection reset, timeout)
        (500, False, CreateErrorKind.TRANSIENT),
        (503, False, CreateErrorKind.TRANSIENT),
        (504, False, CreateErrorKind.TRANSIENT),
        (429, False, CreateErrorKind.TRANSIENT),
        (408, False, CreateErrorKind.TRANSIENT),
        (403, False, CreateErrorKind.PERSISTENT),  # RBAC, admission webhook, ResourceQuota
        (422, False, CreateErrorKind.PERSISTENT),  # admission policy denial
        (400, False, CreateErrorKind.PERSISTENT),
        (409, False, CreateErrorKind.PERSISTENT),  # another operation's Job holds the name
        (404, False, CreateErrorKind.PERSISTENT),
        (401, False, CreateErrorKind.PERSISTENT),
        (422, True, CreateErrorKind.INVALID),  # schema validation of the Job as built
        (400, True, CreateErrorKind.INVALID),
        (403, True, CreateErrorKind.PERSISTENT),  # causes only make 400/422 final
        (500, True, CreateErrorKind.TRANSIENT),
    ],
)
def test_classify_create_error(code: int, field_causes: bool, kind: CreateErrorKind) -> None:
    assert classify_create_error(code, field_causes=field_causes) is kind


@pytest.mark.parametrize(
    ("failures", "delay"),
    [(0, 1.0), (1, 1.0), (2, 2.0), (3, 4.0), (5, 16.0), (6, CREATE_RETRY_MAX_SECONDS), (100, CREATE_RETRY_MAX_SECONDS)],
)
def test_retry_delay_doubles_and_is_capped(failures: int, delay: float) -> None:
    assert create_retry_delay(failures) == delay


UNDISCOVERED = (
    'jobs.batch "op-1" is forbidden: cannot set blockOwnerDeletion in this case because cannot find RESTMapping for '
    'APIVersion dops.io/v1alpha1 Kind DelegatedOperation: no matches for kind "DelegatedOperation" in version '
    '"dops.io/v1alpha1"'
)


@pytest.mark.parametrize(
    ("code", "message", "failures", "kind"),
    [
        (403, UNDISCOVERED, 1, CreateErrorKind.UNDISCOVERED),  # a CRD installed moments ago
        (403, UNDISCOVERED, UNDISCOVERED_PATIENCE, CreateErrorKind.UNDISCOVERED),
        (403, UNDISCOVERED, UNDISCOVERED_PATIENCE + 1, CreateErrorKind.PERSISTENT),  # longer than refreshes take
        (403, QUOTA, 1, CreateErrorKind.PERSISTENT),
        (422, UNDISCOVERED, 1, CreateErrorKind.PERSISTENT),  # only the admission plugin's 403 is the wait
        (500, UNDISCOVERED, 1, CreateErrorKind.TRANSIENT),
    ],
)
def test_a_kind_the_api_server_has_not_discovered_yet_is_waited_for_then_recorded(
    code: int, message: str, failures: int, kind: CreateErrorKind
) -> None:
    assert classify_create_error(code, message=message, failures=failures) is kind


def test_waiting_for_discovery_writes_nothing_and_retries_at_a_steady_pace() -> None:
    """The wait after `helm install`: no condition, no Event (a newcomer's first operations would show a
    Warning for something that heals itself), a retry every UNDISCOVERED_RETRY_SECONDS, and a log line
    that says what is awaited instead of repeating the server's 'forbidden'."""
    for failures in (1, 5, UNDISCOVERED_PATIENCE):
        decided = refused(scheduled(), message=UNDISCOVERED, failures=failures)
        assert decided.kind is CreateErrorKind.UNDISCOVERED
        assert decided.steps == () and decided.retry_after == UNDISCOVERED_RETRY_SECONDS
        assert "discover the DelegatedOperation kind" in decided.log and "forbidden" not in decided.log.lower()
    outlasted = refused(scheduled(), message=UNDISCOVERED, failures=UNDISCOVERED_PATIENCE + 1)
    (step,) = outlasted.steps
    assert isinstance(step, WriteStatus) and step.event is not None
    assert "cannot find RESTMapping" in step.event.message


def scheduled(**status: Any) -> dict[str, Any]:
    return compact_operation(operation(state="scheduled", **status))


def refused(op: dict[str, Any], *, code: int = 403, reason: str = "Forbidden", message: str = QUOTA, **kw: Any) -> Any:
    return job_create_failed(
        op,
        "op-1",
        code=code,
        api_reason=reason,
        message=message,
        field_causes=kw.pop("field_causes", False),
        failures=kw.pop("failures", 1),
        now=NOW,
    )


def applied(op: dict[str, Any], step: WriteStatus) -> dict[str, Any]:
    """The operation after the step's patch (only `add /status/conditions` matters here)."""
    out = {**op, "status": dict(op["status"])}
    for patch in step.patch:
        if patch["op"] == "add":
            out["status"][patch["path"].removeprefix("/status/")] = patch["value"]
    return out


def test_persistent_refusal_writes_the_condition_and_a_warning_once() -> None:
    op = scheduled()
    first = refused(op)
    assert first.kind is CreateErrorKind.PERSISTENT and first.retry_after == 1.0
    (step,) = first.steps
    assert isinstance(step, WriteStatus)
    assert step.patch[0] == {"op": "test", "path": "/status/runState", "value": "scheduled"}
    cond = get_condition(applied(op, step)["status"], c.CONDITION_JOB_CREATE_FAILED)
    assert cond is not None
    assert (cond["status"], cond["reason"]) == ("True", "Forbidden")
    assert QUOTA in cond["message"] and "403 Forbidden" in cond["message"]
    assert step.event is not None
    assert (step.event.type, step.event.reason) == ("Warning", c.EventReasons.JOB_CREATE_FAILED)
    assert QUOTA in step.event.message
    assert "retrying in 1 s" in first.log

    again = refused(applied(op, step), failures=4)
    assert again.steps == ()  # recorded already: no write, no second Event
    assert again.retry_after == 8.0 and "4 in a row" in again.log

    other = refused(
        applied(op, step), code=422, reason="Invalid", message="denied by policy require-labels", failures=5
    )
    (rewrite,) = other.steps
    assert isinstance(rewrite, WriteStatus)
    cond = get_condition(applied(op, rewrite)["status"], c.CONDITION_JOB_CREATE_FAILED)
    assert cond is not None and cond["reason"] == "Invalid" and "require-labels" in cond["message"]


@pytest.mark.parametrize("reason", ["", "not camel", "Überfall"])
def test_unusable_api_reasons_fall_back_to_job_create_failed(reason: str) -> None:
    (step,) = refused(scheduled(), reason=reason).steps
    assert isinstance(step, WriteStatus)
    cond = get_condition(applied(scheduled(), step)["status"], c.CONDITION_JOB_CREATE_FAILED)
    assert cond is not None and cond["reason"] == c.Reasons.JOB_CREATE_FAILED


def test_transient_errors_write_nothing_and_leave_retries_to_the_work_queue() -> None:
    decided = refused(scheduled(), code=500, reason="InternalError")
    assert (decided.kind, decided.steps, decided.retry_after) == (CreateErrorKind.TRANSIENT, (), None)


def test_invalid_job_fails_the_operation_invalid_spec() -> None:
    decided = refused(scheduled(), code=422, reason="Invalid", message="spec.template: bad", field_causes=True)
    (step,) = decided.steps
    assert isinstance(step, Terminate)
    assert (step.required_state, step.state, step.reason) == ("scheduled", "failed", c.Reasons.INVALID_SPEC)
    assert "spec.template: bad" in step.message and decided.retry_after is None


@pytest.mark.parametrize("state", ["running", "failed", "completed"])
def test_no_condition_once_the_operation_moved_on(state: str) -> None:
    decided = refused(compact_operation(operation(state=state)))
    assert decided.steps == () and decided.retry_after is not None


def test_recovery_clears_a_true_condition_only() -> None:
    op = scheduled()
    (step,) = refused(op).steps
    assert isinstance(step, WriteStatus)
    failing = applied(op, step)
    cleared = job_create_recovered(failing, "op-1", NOW)
    assert cleared is not None and cleared.event is not None
    assert (cleared.event.type, cleared.event.reason) == ("Normal", c.EventReasons.JOB_CREATED)
    after = applied(failing, cleared)
    cond = get_condition(after["status"], c.CONDITION_JOB_CREATE_FAILED)
    assert cond is not None and (cond["status"], cond["reason"]) == ("False", c.Reasons.JOB_CREATED)
    assert job_create_recovered(after, "op-1", NOW) is None  # already cleared
    assert job_create_recovered(op, "op-1", NOW) is None  # never failed


def _view(op: dict[str, Any], j: dict[str, Any] | None) -> View:
    return View(
        op=op,
        target=builtin_target("ns", SETTINGS),
        job=compact_job(j) if j is not None else None,
        pods=[],
        now=NOW,
        settings=SETTINGS,
    )


def test_plan_clears_the_condition_once_the_job_exists_and_retries_while_it_does_not() -> None:
    op = scheduled()
    (step,) = refused(op).steps
    assert isinstance(step, WriteStatus)
    failing = applied(op, step)
    (create,) = plan(_view(failing, None)).steps
    assert isinstance(create, CreateJob)  # no Job yet: try again
    (clear,) = plan(_view(failing, job(active=1))).steps
    assert isinstance(clear, WriteStatus) and clear.patch[0]["value"] == "scheduled"
    assert plan(_view(applied(failing, clear), job(active=1))).steps == ()  # nothing more to do


# --------------------------------------------------------------------------------------------- work queue


async def test_work_queue_giving_up_is_a_warning_that_names_what_retries_next(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def process(key: str) -> float | None:
        raise RuntimeError("403 Forbidden")

    wq: WorkQueue[str] = WorkQueue(
        process, workers=1, max_retries=1, base_backoff=0.01, give_up_note="the timer retries"
    )
    wq.add("op")
    ready = asyncio.Event()
    ready.set()
    with caplog.at_level(logging.DEBUG, logger="dops.reconcile.workqueue"):
        task = asyncio.create_task(wq.run(ready))
        await asyncio.sleep(0.2)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    retried = [r for r in caplog.records if "retrying in" in r.getMessage()]
    gave_up = [r for r in caplog.records if "giving up on op" in r.getMessage()]
    assert len(retried) == 1 and retried[0].levelno == logging.DEBUG
    assert len(gave_up) == 1 and gave_up[0].levelno == logging.WARNING
    assert "after 2 failed attempts (last error: 403 Forbidden); the timer retries" in gave_up[0].getMessage()
