"""issue 13 hole 1 and 5, the operator's half: DelegationPolicy decisions (dops.domain.policy) and the plan that
fails an operation on a violating target with reason PolicyViolation, without a Job.

Table-tested without a cluster: each row is a target, the policies and what the operator says. The API server's
half (the chart's ValidatingAdmissionPolicy) is tests/integration/test_security_real.py.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from dops.api import constants as c
from dops.domain.policy import (
    DelegationPolicy,
    namespace_ceiling,
    namespace_weight,
    policy_from_resource,
    violations,
)
from dops.domain.reconciling import Admit, Terminate, View, compact_operation, plan
from dops.domain.settings import OperatorSettings
from dops.domain.targets import builtin_target, target_from_resource
from tests.workload_builders import operation, target

SETTINGS = OperatorSettings(worker_image="ghcr.io/dops-dev/dops:1")
NOW = dt.datetime(2026, 1, 1, 0, 0, 30, tzinfo=dt.UTC)


def policy(name: str = "tenants", **spec: Any) -> DelegationPolicy:
    return policy_from_resource({"metadata": {"name": name}, "spec": spec})


STRICT = policy(
    namespaces=["ns"],
    allowedImagePrefixes=["registry.example.com/team-a/"],
    allowedServiceAccounts=["runner"],
    allowSecretEnv=False,
    allowedNodePlacementKeys=["pool"],
    allowImportPaths=False,
    maxConcurrent=5,
)
SECRET_ENV = [{"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "db", "key": "password"}}}]

CASES: list[tuple[str, dict[str, Any], list[DelegationPolicy], list[str]]] = [
    ("no policy: anything goes", {"image": "evil.io/x", "allowImportPaths": True}, [], []),
    ("a compliant target", {"image": "registry.example.com/team-a/w:1", "maxConcurrent": 5,
                            "podTemplate": {"serviceAccountName": "runner", "nodeSelector": {"pool": "gpu"}}},
     [STRICT], []),
    ("no image: the operator's worker image is allowed", {"maxConcurrent": 1}, [STRICT], []),
    ("an image outside the prefixes", {"image": "docker.io/evil:1", "maxConcurrent": 1}, [STRICT],
     ["image docker.io/evil:1 is not allowed by DelegationPolicy tenants (allowed prefixes: "
      "registry.example.com/team-a/)"]),
    ("a ServiceAccount not listed", {"maxConcurrent": 1, "podTemplate": {"serviceAccountName": "admin-sa"}},
     [STRICT], ["serviceAccountName admin-sa is not allowed by DelegationPolicy tenants (allowed: runner)"]),
    ("env from a Secret", {"maxConcurrent": 1, "podTemplate": {"env": SECRET_ENV}}, [STRICT],
     ["env from Secrets (TOKEN) is not allowed by DelegationPolicy tenants"]),
    ("plain env is fine", {"maxConcurrent": 1, "podTemplate": {"env": [{"name": "A", "value": "1"}]}}, [STRICT], []),
    ("a placement key not listed", {"maxConcurrent": 1, "podTemplate": {
        "nodeSelector": {"kubernetes.io/hostname": "n1"},
        "tolerations": [{"key": "node-role.kubernetes.io/control-plane", "operator": "Exists"}]}},
     [STRICT], ["node placement keys kubernetes.io/hostname, node-role.kubernetes.io/control-plane are not allowed"]),
    ("import paths", {"maxConcurrent": 1, "allowImportPaths": True}, [STRICT],
     ["allowImportPaths (py: operator URIs) is not allowed by DelegationPolicy tenants"]),
    ("above the ceiling (CRD default 10)", {}, [STRICT], ["maxConcurrent 10 is above DelegationPolicy tenants's"
                                                          " ceiling of 5"]),
    ("a policy of other namespaces", {"image": "evil.io/x"}, [policy(namespaces=["other"],
                                                                     allowedImagePrefixes=[])], []),
    ("a policy of every namespace", {"image": "evil.io/x"}, [policy("all", allowedImagePrefixes=[])],
     ["image evil.io/x is not allowed by DelegationPolicy all (allowed prefixes: none)"]),
    ("every applicable policy must be met", {"image": "a.io/x"},
     [policy("a", allowedImagePrefixes=["a.io/"]), policy("b", allowedImagePrefixes=["b.io/"])],
     ["image a.io/x is not allowed by DelegationPolicy b"]),
    ("fields left out allow anything", {"image": "evil.io/x", "allowImportPaths": True, "maxConcurrent": 10000,
                                        "podTemplate": {"env": SECRET_ENV, "serviceAccountName": "x"}},
     [policy(namespaces=["ns"])], []),
]  # fmt: skip


@pytest.mark.parametrize(("what", "spec", "policies", "expected"), CASES, ids=[c[0] for c in CASES])
def test_violations(what: str, spec: dict[str, Any], policies: list[DelegationPolicy], expected: list[str]) -> None:
    found = violations(target_from_resource(target("t", **spec), SETTINGS), policies, SETTINGS)
    assert len(found) == len(expected), found
    for line, fragment in zip(found, expected, strict=True):
        assert line.startswith("DelegationTarget ns/t: ") and fragment in line, line


def test_effective_import_paths_are_judged() -> None:
    """A target that leaves allowImportPaths out inherits the chart's default (DOPS_ALLOW_IMPORT_PATHS): the
    operator judges what the Job would get, which the API server cannot see."""
    permissive = OperatorSettings(worker_image="w", allow_import_paths=True)
    t = target_from_resource(target("t", maxConcurrent=1), permissive)
    assert violations(t, [STRICT], permissive) == [
        "DelegationTarget ns/t: allowImportPaths (py: operator URIs) is not allowed by DelegationPolicy tenants"
    ]


def test_the_builtin_default_target_is_the_administrators_own() -> None:
    assert violations(builtin_target("ns", SETTINGS), [policy("all", allowedImagePrefixes=[])], SETTINGS) == []


def test_namespace_ceiling_is_the_lowest_applicable() -> None:
    policies = [policy("a", maxConcurrent=7), policy("b", namespaces=["ns"], maxConcurrent=3),
                policy("c", namespaces=["other"], maxConcurrent=1), policy("d")]  # fmt: skip
    assert namespace_ceiling("ns", policies) == 3
    assert namespace_ceiling("other", policies) == 1
    assert namespace_ceiling("third", policies) == 7
    assert namespace_ceiling("ns", [policy("d")]) is None


def test_namespace_weight_is_the_highest_applicable() -> None:
    policies = [policy("a", weight=2), policy("b", namespaces=["ns"], weight=5), policy("c", namespaces=["x"])]
    assert namespace_weight("ns", policies) == 5
    assert namespace_weight("x", policies) == 2
    assert namespace_weight("ns", []) == 1


def _view(state: str, t: Any, policies: tuple[DelegationPolicy, ...], *, reserved: bool = True) -> View:
    op = operation(state=state, job=None, attempt=None)
    op["spec"]["delegationTarget"] = "t"
    return View(op=compact_operation(op), target=t, job=None, pods=[], now=NOW, settings=SETTINGS,
                reserved=reserved, policies=policies)  # fmt: skip


@pytest.mark.parametrize("reserved", [True, False])
def test_an_operation_on_a_violating_target_fails_without_a_job(reserved: bool) -> None:
    """Before the scheduler reserves a slot for it, or when it has: failed (CAS from queued), reason
    PolicyViolation, the policy's message in the condition, the Event and status.result; no Job."""
    t = target_from_resource(target("t", image="docker.io/evil:1", maxConcurrent=1), SETTINGS)
    (step,) = plan(_view("queued", t, (STRICT,), reserved=reserved)).steps
    assert isinstance(step, Terminate)
    assert (step.required_state, step.state, step.reason) == ("queued", "failed", c.Reasons.POLICY_VIOLATION)
    assert step.stop_job is None and step.event.reason == c.EventReasons.POLICY_VIOLATION
    assert "image docker.io/evil:1 is not allowed by DelegationPolicy tenants" in step.message
    assert step.result_error is not None and step.result_error.startswith("PolicyViolation: ")


def test_a_hand_scheduled_operation_on_a_violating_target_fails_too() -> None:
    t = target_from_resource(target("t", allowImportPaths=True, maxConcurrent=1), SETTINGS)
    (step,) = plan(_view("scheduled", t, (STRICT,))).steps
    assert isinstance(step, Terminate) and step.required_state == "scheduled"


@pytest.mark.parametrize("policies", [(), (policy(namespaces=["ns"]),), (STRICT,)])
def test_upgrade_compatibility_a_compliant_or_unpoliced_target_is_admitted_as_before(
    policies: tuple[DelegationPolicy, ...],
) -> None:
    """Without a policy (or with one it meets) the plan is exactly the one without policies: Admit."""
    t = target_from_resource(target("t", maxConcurrent=5), SETTINGS)
    with_policies = plan(_view("queued", t, policies))
    assert with_policies == plan(_view("queued", t, ()))
    (step,) = with_policies.steps
    assert isinstance(step, Admit)
