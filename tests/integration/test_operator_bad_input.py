"""Bad input through the whole operator path, with real worker processes (issue 5 acceptance, "Bad input").

Each case ends in a readable terminal state (or is refused at admission), never in a crash loop or an
endless retry: exactly one Job, one pod, and the operation failed with a message that names the cause.

Aspects covered:
- an unknown operator URI → failed with "operator not found" and the list of known operators;
- invalid params for a built-in operator → failed with the validation message;
- an operator returning 10 MiB → failed with a clear size error, the status stays far below etcd's limit;
- a malformed context (not an object) → rejected by the CRD at admission; `py:` URIs on a target that
  does not allow import paths → failed, saying how to allow them.
"""

from __future__ import annotations

import json

import pytest

from dops.k8s import Invalid
from tests.integration.operator_env import (
    JobRecorder,
    OperatorEnv,
    condition,
    namespace,
    operator_env,
)
from tests.op_builders import delegation_target, operation

__all__ = ["namespace", "operator_env"]  # fixtures
OPS = "/apis/dops.io/v1alpha1/namespaces/{ns}/delegatedoperations"


def run_to_failure(env: OperatorEnv, namespace: str, body: dict[str, object]) -> dict[str, object]:
    name = str(body["metadata"]["name"])  # type: ignore[index]
    with JobRecorder(env, namespace) as jobs:
        env.create(namespace, body)
        obj = env.wait_processed(namespace, name, timeout=60)
        assert obj["status"]["runState"] == "failed", obj["status"]
        jobs.assert_one_job_per_attempt(name)
    assert len(env.pods_of(namespace, f"{name}-1")) == 1  # no retries, no crash loop
    return obj


def test_unknown_operator_uri(operator_env: OperatorEnv, namespace: str) -> None:
    """Issue 5 bad input: an unknown operator URI → failed, "operator not found", known operators listed."""
    obj = run_to_failure(operator_env, namespace, operation("nope", namespace).operator("@acme/does/not-exist").build())
    error = obj["status"]["result"]["error"]
    assert "operator not found" in error.lower()
    assert "@acme/does/not-exist" in error
    assert "@dops/examples/echo" in error and "@dops/examples/count" in error
    assert condition(obj, "Succeeded")["reason"] == "OperatorFailed"


def test_invalid_params(operator_env: OperatorEnv, namespace: str) -> None:
    """Issue 5 bad input: params a built-in operator rejects → failed with the validation message."""
    body = operation("badparams", namespace).operator("@dops/examples/count").params(n="many", delay=-1).build()
    obj = run_to_failure(operator_env, namespace, body)
    message = obj["status"]["result"].get("errorMessage") or obj["status"]["result"]["error"]
    assert "n" in message and "integer" in message.lower(), message


def test_oversized_result(operator_env: OperatorEnv, namespace: str) -> None:
    """Issue 5 bad input: an operator returning 10 MiB → failed with a clear size error; the stored status
    stays far below etcd's object limit."""
    operator_env.create(namespace, delegation_target("trusted", allowImportPaths=True))
    body = (
        operation("huge", namespace)
        .operator("py:tests.integration.operator_helpers:big_result")
        .target("trusted")
        .build()
    )
    obj = run_to_failure(operator_env, namespace, body)
    text = json.dumps(obj["status"])
    assert "too large" in text and "65536" in text
    assert len(json.dumps(obj)) < 256 * 1024


def test_import_paths_need_permission(operator_env: OperatorEnv, namespace: str) -> None:
    """Issue 5: `py:` operator URIs run only where the target allows import paths; elsewhere the operation
    fails saying so (and naming allowImportPaths)."""
    body = operation("sneaky", namespace).operator("py:tests.integration.operator_helpers:print_and_return").build()
    obj = run_to_failure(operator_env, namespace, body)
    assert "allowImportPaths" in obj["status"]["result"]["error"]


def test_malformed_context_is_rejected_at_admission(operator_env: OperatorEnv, namespace: str) -> None:
    """Issue 5 bad input: a context that is not an object is refused by the CRD schema; nothing is created."""
    body = operation("malformed", namespace).build()
    body["spec"]["context"] = "params=1"
    with pytest.raises(Invalid) as caught:
        operator_env.create(namespace, body)
    assert "spec.context" in caught.value.message
    assert operator_env.kube.request("GET", OPS.format(ns=namespace))["items"] == []
    service = operator_env.service(namespace)
    with pytest.raises(ValueError, match="context must be"):
        service.queue_operation("@dops/examples/echo", context="params=1")
