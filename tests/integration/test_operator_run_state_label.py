"""The `dops.io/run-state` label mirror and first sight through the operator (issue 15), on the embedded plane.

- `DOPS_RUN_STATE_LABEL=auto` (the default) on a server that serves the CRD's selectableFields (the embedded
  plane, as Kubernetes 1.31+): no run-state label is written at any transition, neither by the operator nor by
  the service, and `status.runState` field selectors find the operation in every state;
- `always` (a server without selectableFields): the label follows every transition, including the ones the
  operator makes without a label write of the worker's (admission → `scheduled`, the worker's claim → `running`,
  which a Job's worker may not label itself);
- an operation created without a status (`kubectl apply`) is queued by the operator, which never waits for a
  status write that only the dops service promises.
"""

from __future__ import annotations

import dataclasses

from dops.api import constants as c
from dops.k8s import DelegatedOperationRepository
from tests.helpers import eventually
from tests.integration.operator_env import JSON, OperatorEnv, namespace, operator_env
from tests.op_builders import operation

__all__ = ["namespace", "operator_env"]  # fixtures


def run_state_label(obj: JSON) -> str | None:
    return (obj["metadata"].get("labels") or {}).get(c.RUN_STATE_LABEL)


def test_auto_writes_no_run_state_label_where_fields_are_selectable(operator_env: OperatorEnv, namespace: str) -> None:
    env = operator_env
    service = env.service(namespace)
    doc = service.queue_operation("@dops/examples/sleep", context={"request_params": {"params": {"seconds": 2}}})
    assert doc.id is not None
    running = env.wait_state(namespace, doc.id, "running")
    assert run_state_label(running) is None
    by_field = (
        DelegatedOperationRepository(env.kube).list(namespace, field_selector=f"{c.FIELD_RUN_STATE}=running").items
    )
    assert [o["metadata"]["name"] for o in by_field] == [doc.id]
    done = env.wait_processed(namespace, doc.id)
    assert done["status"]["runState"] == "completed"
    assert run_state_label(done) is None


def test_always_keeps_the_label_in_step_at_every_transition(operator_env: OperatorEnv, namespace: str) -> None:
    """Before issue 15 the label stayed `queued` while the operation was scheduled and running (the admission
    and a Job's worker's claim wrote no label)."""
    env = operator_env
    settings = env.settings
    env.stop_operator()
    env.start_operator(dataclasses.replace(settings, run_state_label="always"))
    try:
        env.create(
            namespace, operation("mirrored", namespace).operator("@dops/examples/sleep").params(seconds=3).build()
        )
        seen: set[str] = set()

        def in_step() -> set[str]:
            obj = env.get_op(namespace, "mirrored")
            state = obj["status"].get("runState")
            if state and run_state_label(obj) == state:
                seen.add(state)
            return seen

        eventually(in_step, lambda states: "running" in states, timeout=60, interval=0.05, describe="label running")
        done = env.wait_processed(namespace, "mirrored")
        assert run_state_label(done) == done["status"]["runState"] == "completed"
    finally:
        env.stop_operator()
        env.start_operator(settings)


def test_a_kubectl_created_operation_is_queued_by_the_operator(operator_env: OperatorEnv, namespace: str) -> None:
    """No status from its creator: the operator writes `queued` (with its conditions and Event) itself."""
    env = operator_env
    env.create(namespace, operation("applied", namespace).build())
    obj = env.wait_state(namespace, "applied", "queued", "scheduled", "running", "completed")
    assert obj["status"].get("queuedAt")
    assert any(m.get("manager") == "dops-operator" for m in obj["metadata"].get("managedFields") or [])
