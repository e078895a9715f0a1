"""issue 13 hole 1, the operator's half: the operator judges a target against the DelegationPolicies before it
creates a Job (the embedded control plane enforces no ValidatingAdmissionPolicy, like a target created before its
policy existed on a real cluster).

- With a DelegationPolicy of the namespace: an operation on a violating target fails with reason PolicyViolation,
  the policy's message in its result, condition and a Warning Event, and never gets a Job; its twin, an operation
  on a compliant target of the same namespace, runs and completes.
- Upgrade compatibility: without the DelegationPolicy CRD at all (a cluster upgraded from a chart without it) the
  operator admits and runs operations exactly as before.
"""

from __future__ import annotations

from dops.api import constants as c
from tests.helpers import eventually
from tests.integration.operator_env import IMAGE, OperatorEnv, namespace, operator_env, operator_settings
from tests.op_builders import delegation_target, operation

__all__ = ["namespace", "operator_env"]  # fixtures

POLICIES = "/apis/dops.io/v1alpha1/delegationpolicies"


def test_an_operation_on_a_violating_target_fails_and_never_runs(operator_env: OperatorEnv, namespace: str) -> None:
    env = operator_env
    env.kube.request("POST", POLICIES, body={
        "apiVersion": "dops.io/v1alpha1", "kind": "DelegationPolicy", "metadata": {"name": f"p-{namespace}"},
        "spec": {"namespaces": [namespace], "allowImportPaths": False, "allowedImagePrefixes": ["ghcr.io/dops-dev/"],
                 "maxConcurrent": 3}})  # fmt: skip
    env.create(namespace, delegation_target("loose", namespace, image=IMAGE, maxConcurrent=2, allowImportPaths=True))
    env.create(namespace, delegation_target("strict", namespace, image=IMAGE, maxConcurrent=2))
    # The operator reads the policies at most every few seconds: restart it so that it judges with this one now.
    env.stop_operator()
    env.start_operator()
    env.create(namespace, operation("refused", namespace).target("loose").build())
    env.create(namespace, operation("fine", namespace).target("strict").build())

    refused = env.wait_processed(namespace, "refused")
    status = refused["status"]
    assert status["runState"] == "failed"
    expected = (
        f"DelegationTarget {namespace}/loose: allowImportPaths (py: operator URIs) is not allowed by "
        f"DelegationPolicy p-{namespace}"
    )
    assert status["result"]["error"].startswith(f"{c.Reasons.POLICY_VIOLATION}: {expected}"), status["result"]
    succeeded = next(x for x in status["conditions"] if x["type"] == "Succeeded")
    assert succeeded["reason"] == c.Reasons.POLICY_VIOLATION and expected in succeeded["message"]
    assert not status.get("jobName") and env.jobs_of(namespace, "refused") == []
    reasons = [e.get("reason") for e in env.events_of(namespace, "refused")]
    assert c.EventReasons.POLICY_VIOLATION in reasons

    fine = env.wait_processed(namespace, "fine")
    assert fine["status"]["runState"] == "completed", fine["status"]


def test_namespaces_share_the_global_cap_in_turns(operator_env: OperatorEnv) -> None:
    """issue 13 fair share, end to end: global cap 2; namespace `big` queued 6 long operations on 3 targets
    before namespace `small` queued 1. The first admission round admits one of each namespace (round robin by
    namespace, not by target: 3 targets of `big` buy no bigger share)."""
    env = operator_env
    env.stop_operator()
    big, small = env.new_namespace("big"), env.new_namespace("small")
    for t in ("t1", "t2", "t3"):
        env.create(big, delegation_target(t, big, image=IMAGE, maxConcurrent=5))
    env.create(small, delegation_target("t", small, image=IMAGE, maxConcurrent=5))
    context = {"request_params": {"params": {"seconds": 20}}}
    for i in range(6):
        env.service(big).queue_operation("@dops/examples/sleep", delegation_target=f"t{i % 3 + 1}", context=context)
    mine = env.service(small).queue_operation("@dops/examples/sleep", delegation_target="t", context=context)
    env.start_operator(operator_settings(env.archive, global_max_concurrent=2))
    try:
        env.wait_state(small, str(mine.id), "scheduled", "running", timeout=30)

        def active_in_big() -> list[tuple[str, str]]:
            docs = env.service(big).list_operations()
            return [(str(d.id), str(d.run_state)) for d in docs if d.run_state in ("scheduled", "running")]

        # The round's two admissions are two writes: `big`'s may land just after `small`'s.
        active = eventually(active_in_big, timeout=30, describe="an operation of `big` admitted")
        assert len(active) == 1, active
    finally:
        for ns in (big, small):
            for doc in env.service(ns).list_operations():
                if doc.run_state not in ("completed", "failed"):
                    env.service(ns).set_failed(str(doc.id), result={"error": "test over"})
        env.stop_operator()
        env.start_operator(operator_settings(env.archive))


def test_without_the_policy_crd_dops_works_as_before(operator_env: OperatorEnv, namespace: str) -> None:
    """A cluster whose dops predates DelegationPolicy: the CRD is absent, the listing is a 404, nothing refused."""
    env = operator_env
    env.stop_operator()
    env.kube.request("DELETE", f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{c.POLICY_CRD_NAME}")
    env.start_operator()
    env.create(namespace, delegation_target("anything", namespace, image=IMAGE, allowImportPaths=True))
    env.create(namespace, operation("runs", namespace).target("anything").build())
    done = env.wait_processed(namespace, "runs")
    assert done["status"]["runState"] == "completed", done["status"]
