"""issue 13 hole 3: `spec.delegationTarget` is frozen once the operation leaves `queued`.

The operator admits an operation under its target's `maxConcurrent` and builds its Job from that target (image,
ServiceAccount, allowImportPaths). Moving a running operation to another target would free the slot it holds on
the old one and let the worker believe it runs under the new one. The DelegatedOperation CRD's root-level
transition rule (x-kubernetes-validations with oldSelf, beside the spec.context/spec.pipeline ones) refuses the
change; both control planes enforce it (on the real one, the CRD itself is created through the API, so its cost
estimator accepted the rule).
"""

from __future__ import annotations

import pytest

from dops import DelegatedOperationService
from dops.k8s import Invalid, KubeClient
from dops.k8s.client import MERGE_PATCH

pytestmark = pytest.mark.both_planes

MESSAGE = "spec.delegationTarget is immutable once the operation has left the queued state"


def retarget(kube: KubeClient, namespace: str, name: str, target: str | None) -> None:
    kube.request(
        "PATCH",
        f"/apis/dops.io/v1alpha1/namespaces/{namespace}/delegatedoperations/{name}",
        body={"spec": {"delegationTarget": target}},
        content_type=MERGE_PATCH,
    )


def test_target_changes_while_queued_and_is_frozen_once_scheduled(
    kube: KubeClient, service: DelegatedOperationService, namespace: str
) -> None:
    doc = service.queue_operation("@dops/examples/echo", delegation_target="small")
    name = str(doc.id)
    retarget(kube, namespace, name, "big")  # still queued: the operator has not chosen anything yet
    assert service.get(name).delegation_target == "big"
    service.set_scheduled(name)  # admitted: the slot and the Job's target are decided
    for change in ("other", None, ""):
        with pytest.raises(Invalid) as refused:
            retarget(kube, namespace, name, change)
        assert MESSAGE in str(refused.value)
    assert service.get(name).delegation_target == "big"


def test_target_stays_frozen_after_a_default_target_admission(
    kube: KubeClient, service: DelegatedOperationService, namespace: str
) -> None:
    """An operation admitted on the namespace's default target (no delegationTarget) cannot gain one later."""
    doc = service.queue_operation("@dops/examples/echo")
    service.set_running(str(doc.id))
    with pytest.raises(Invalid) as refused:
        retarget(kube, namespace, str(doc.id), "elsewhere")
    assert MESSAGE in str(refused.value)
