"""Table tests, without a cluster, for the worker's exit codes, its attempt fence, its patient writes, the
termination message of an unrecorded outcome and what the operator makes of it (issue 11, items 4, 5, 6, 10).
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest

from dops.api.types import DelegatedOperationDocument, ExecutionResult
from dops.domain.observe import compact_job, compact_pod, exit_detail, pod_failure, unrecorded_outcome
from dops.domain.reconciling import Terminate, View, compact_operation, plan, terminal_patch
from dops.domain.settings import OperatorSettings
from dops.domain.targets import builtin_target
from dops.k8s import ApiUnavailable, Conflict, ServerError, load_config
from dops.k8s.errors import TooManyRequests, is_transient
from dops.k8s.retry import patiently, write_retry_seconds
from dops.worker.run import Identity, unrecorded_summary
from dops.worker.termination import MAX_BYTES, render
from tests.workload_builders import job, operation, pod

NOW = dt.datetime(2026, 1, 1, 0, 0, 30, tzinfo=dt.UTC)
SETTINGS = OperatorSettings(image_pull_grace_seconds=10, job_ttl_seconds=600)


# ------------------------------------------------------------------------------------------- item 10


@pytest.mark.parametrize(
    ("code", "text"),
    [
        (1, "exit code 1 (the worker crashed)"),
        (2, "exit code 2"),  # usage: its termination message says what was wrong
        (3, "exit code 3 (the operation failed)"),
        (4, "exit code 4 (the worker could not reach the API server to record its outcome)"),
        (137, "exit code 137 (killed by SIGKILL)"),
        (42, "exit code 42"),
    ],
)
def test_exit_codes_say_what_they_mean(code: int, text: str) -> None:
    assert exit_detail(code) == text


# ------------------------------------------------------------------------------------------- item 5: retries


@pytest.mark.parametrize(
    ("error", "transient"),
    [
        (ApiUnavailable("no answer"), True),
        (ServerError("boom", code=500), True),
        (ServerError("bad gateway", code=502), True),
        (TooManyRequests("slow down"), True),
        (Conflict("stale"), False),
        (ValueError("not an API error"), False),
    ],
)
def test_which_errors_are_transient(error: BaseException, transient: bool) -> None:
    assert is_transient(error) is transient


def test_patiently_retries_transient_errors_with_capped_backoff() -> None:
    answers: list[BaseException | str] = [ServerError("boom", code=500), ApiUnavailable("reset"), "done"]
    slept: list[float] = []

    def call() -> str:
        answer = answers.pop(0)
        if isinstance(answer, BaseException):
            raise answer
        return answer

    assert patiently("a write", call, 60, sleep=slept.append, max_delay=0.75) == "done"
    assert slept == [0.5, 0.75]


def test_patiently_raises_an_answer_at_once_and_gives_up_after_its_time() -> None:
    def conflict() -> None:
        raise Conflict("stale")

    with pytest.raises(Conflict):
        patiently("a write", conflict, 60, sleep=lambda _: pytest.fail("an answer is not retried"))

    def unavailable() -> None:
        raise ApiUnavailable("down")

    with pytest.raises(ApiUnavailable):
        patiently("a write", unavailable, 0, sleep=lambda _: None)


def test_patiently_asks_whether_a_lost_write_was_applied() -> None:
    def lost() -> str:
        raise ApiUnavailable("the answer was lost")

    assert patiently("a claim", lost, 60, check=lambda: "applied", sleep=lambda _: None) == "applied"


@pytest.mark.parametrize(("raw", "seconds"), [("", 300.0), ("12", 12.0), ("-1", 0.0), ("soon", 300.0)])
def test_write_retry_seconds(raw: str, seconds: float, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOPS_WORKER_WRITE_RETRY_SECONDS", raw)
    assert write_retry_seconds() == seconds


# ------------------------------------------------------------------------------------------- item 4: the fence


def doc(**status: Any) -> DelegatedOperationDocument:
    return DelegatedOperationDocument.from_resource(operation(**status))


def test_the_fence_tests_every_known_part_of_the_attempt() -> None:
    me = Identity(pod="op-1-abcde", job="op-1", attempt=1, uid="uid-op")
    assert me.tests(claimed=True) == [
        {"op": "test", "path": "/metadata/uid", "value": "uid-op"},
        {"op": "test", "path": "/status/jobName", "value": "op-1"},
        {"op": "test", "path": "/status/attempt", "value": 1},
        {"op": "test", "path": "/status/podName", "value": "op-1-abcde"},
    ]
    assert {"op": "test", "path": "/status/podName", "value": "op-1-abcde"} not in me.tests(claimed=False)
    assert Identity().tests(claimed=True) == []  # a worker without a Job (by hand, a launcher) tests nothing more


@pytest.mark.parametrize(
    ("status", "owns"),
    [
        ({"job": "op-1", "attempt": 1, "pod": "op-1-abcde"}, True),
        ({"job": "op-2", "attempt": 2, "pod": "op-2-xyz"}, False),  # re-queued and re-admitted
        ({"job": "op-1", "attempt": 1, "pod": "op-1-other"}, False),  # a retry pod took over
    ],
)
def test_owns(status: dict[str, Any], owns: bool) -> None:
    me = Identity(pod="op-1-abcde", job="op-1", attempt=1, uid="uid-op")
    assert me.owns(doc(**status)) is owns


def test_identity_from_the_job_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOPS_JOB_NAME", "op-2")
    monkeypatch.setenv("DOPS_ATTEMPT", "2")
    monkeypatch.setenv("DOPS_OPERATION_UID", "uid-op")
    assert Identity.from_env("op-2-x") == Identity(pod="op-2-x", job="op-2", attempt=2, uid="uid-op")
    monkeypatch.setenv("DOPS_ATTEMPT", "two")
    assert Identity.from_env(None).attempt is None


# ------------------------------------------------------------------------------------------- item 5: last resort


ME = Identity(pod="op-1-abcde", job="op-1", attempt=1, uid="uid-op")


def test_an_unrecorded_outcome_carries_its_result_when_it_fits() -> None:
    summary = unrecorded_summary("ns/op", ME, ExecutionResult(result={"count": 7}), "completed", "500 after 900 s")
    assert summary["result"] == {"result": {"count": 7}} and "resultOmitted" not in summary
    assert (summary["attempt"], summary["uid"], summary["recorded"]) == (1, "uid-op", False)


def test_a_result_too_large_for_the_message_is_left_out_and_said_so() -> None:
    summary = unrecorded_summary("ns/op", ME, ExecutionResult(result={"blob": "x" * 10_000}), "completed", "lost")
    assert summary["resultOmitted"] is True and "result" not in summary
    assert len(render(summary)) <= MAX_BYTES
    failed = ExecutionResult(error="Traceback...\n" + "y" * 10_000, error_message="Boom: it broke")
    summary = unrecorded_summary("ns/op", ME, failed, "failed", "lost")
    assert summary["result"] == {"errorMessage": "Boom: it broke"} and summary["resultOmitted"] is True


def message_of(summary: dict[str, Any]) -> str:
    return render(summary).decode()


@pytest.mark.parametrize(
    ("change", "recovered"),
    [
        ({}, True),
        ({"uid": "uid-of-a-predecessor"}, False),  # an operation re-created with the same name
        ({"attempt": 2}, False),  # another attempt's message
        ({"recorded": True}, False),
        ({"runState": "running"}, False),
    ],
)
def test_unrecorded_outcome_belongs_to_the_attempt(change: dict[str, Any], recovered: bool) -> None:
    summary = {**unrecorded_summary("ns/op", ME, ExecutionResult(result=1), "completed", "lost"), **change}
    found = unrecorded_outcome(message_of(summary), operation())
    assert (found is not None) is recovered
    assert unrecorded_outcome("not json", operation()) is None


def exit4_pod(summary: dict[str, Any]) -> dict[str, Any]:
    return pod(phase="Failed", exit_code=4, message=message_of(summary))


def failed_job() -> dict[str, Any]:
    return job(conditions=(("Failed", "PodFailurePolicy", "exit code 4"),), failed=1)


def test_the_operator_records_the_outcome_from_the_termination_message() -> None:
    summary = unrecorded_summary("ns/op", ME, ExecutionResult(result={"count": 7}), "completed", "500 for 900 s")
    outcome = pod_failure(compact_pod(exit4_pod(summary)), compact_operation(operation()))
    assert outcome is not None and outcome.extra["recovered"]["runState"] == "completed"
    view = View(
        op=compact_operation(operation(pod="op-1-abcde", startedAt="2026-01-01T00:00:05Z")),
        target=builtin_target("ns", SETTINGS),
        job=compact_job(failed_job()),
        pods=[compact_pod(exit4_pod(summary))],
        now=NOW,
        settings=SETTINGS,
    )
    (step,) = plan(view).steps
    assert isinstance(step, Terminate)
    assert (step.required_state, step.state, step.reason) == ("running", "completed", "Completed")
    assert "termination message" in step.message
    patch = terminal_patch(view, step, None, NOW)
    written = {o["path"]: o["value"] for o in patch if o["op"] == "add"}
    assert written["/status/runState"] == "completed" and written["/status/result"] == {"result": {"count": 7}}


def test_a_recovered_failure_is_recorded_as_the_worker_saw_it() -> None:
    result = ExecutionResult(error="Traceback ...", error_message="Boom: it broke")
    summary = unrecorded_summary("ns/op", ME, result, "failed", "500 for 900 s")
    view = View(
        op=compact_operation(operation(pod="op-1-abcde")),
        target=builtin_target("ns", SETTINGS),
        job=compact_job(failed_job()),
        pods=[compact_pod(exit4_pod(summary))],
        now=NOW,
        settings=SETTINGS,
    )
    (step,) = plan(view).steps
    assert isinstance(step, Terminate) and (step.state, step.reason) == ("failed", "OperatorFailed")
    assert step.recovered_result is not None and step.recovered_result["error"] == "Traceback ..."
    assert step.message.startswith("Boom: it broke; the worker could not reach the API server")


def test_an_exit_4_without_a_usable_message_is_a_failure() -> None:
    view = View(
        op=compact_operation(operation(pod="op-1-abcde")),
        target=builtin_target("ns", SETTINGS),
        job=compact_job(failed_job()),
        pods=[compact_pod(pod(phase="Failed", exit_code=4, message="garbled"))],
        now=NOW,
        settings=SETTINGS,
    )
    (step,) = plan(view).steps
    assert isinstance(step, Terminate) and (step.state, step.reason) == ("failed", "NonZeroExitCode")
    assert "exit code 4 (the worker could not reach the API server" in step.message


# ------------------------------------------------------------------------------------------- item 6: tokens


@pytest.fixture
def account(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    directory = tmp_path / "serviceaccount"
    directory.mkdir()
    (directory / "token").write_text("first\n")
    (directory / "ca.crt").write_text("not used here")
    (directory / "namespace").write_text("ns")
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "10.0.0.1")
    monkeypatch.setenv("KUBERNETES_SERVICE_PORT", "443")
    return directory


def test_the_token_file_is_re_read_every_minute_and_when_forced(account: Path) -> None:
    config = load_config(in_cluster=True, service_account_dir=account)
    (account / "token").write_text("second")
    assert config.refresh_token() is False, "read less than a minute ago"
    assert config.refresh_token(force=True) is True
    assert config.kube_config.user["token"] == "second"
    (account / "token").write_text("third")
    config._token_read_at -= 61  # a minute later
    assert config.refresh_token() is True and config.kube_config.user["token"] == "third"
    (account / "token").unlink()  # a pod being torn down: keep what works
    assert config.refresh_token(force=True) is False and config.kube_config.user["token"] == "third"


def test_a_kubeconfig_has_no_token_file_to_re_read(tmp_path: Path) -> None:
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        json.dumps(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "c", "cluster": {"server": "http://127.0.0.1:1"}}],
                "users": [{"name": "u", "user": {"token": "static"}}],
                "contexts": [{"name": "x", "context": {"cluster": "c", "user": "u"}}],
                "current-context": "x",
            }
        )
    )
    config = load_config(kubeconfig)
    assert config.token_file is None and config.refresh_token(force=True) is False
