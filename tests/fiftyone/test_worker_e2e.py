"""End to end: a FiftyOne plugin operator queued through FiftyOne's own API, run by the dops operator as a Job.

With the bridge installed (`dops.fiftyone.install`), FiftyOne's `DelegatedOperationService()` (built by
FiftyOne's RepositoryFactory, as its SDK, CLI and App build it) queues a DelegatedOperation; the dops operator
on the embedded control plane starts a Job whose worker (`python -m dops worker run`, a real process) resolves
the operator through FiftyOne's plugin registry (tests/fiftyone/plugins/tiny, `DOPS_FIFTYONE_OPERATORS=1` from
the DelegationTarget's pod template) and runs it through FiftyOne's execution path. The result, the progress
and, in the fault twin, the operator's error are read back through FiftyOne.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fiftyone.operators.delegated import DelegatedOperationService as FiftyOneService
from fiftyone.operators.executor import ExecutionContext

from dops.fiftyone import DopsDelegatedOperationRepo, install, uninstall
from tests.fiftyone.conftest import PLUGINS
from tests.helpers import eventually
from tests.integration.operator_env import OperatorEnv, namespace, operator_env
from tests.op_builders import delegation_target

__all__ = ["namespace", "operator_env"]  # fixtures

pytestmark = pytest.mark.kopf

FIFTYONE_WORKER_ENV = [
    {"name": "DOPS_FIFTYONE_OPERATORS", "value": "1"},
    {"name": "FIFTYONE_PLUGINS_DIR", "value": str(PLUGINS)},
    {"name": "FIFTYONE_DO_NOT_TRACK", "value": "true"},
]


@pytest.fixture
def fiftyone(operator_env: OperatorEnv, namespace: str) -> Iterator[Any]:
    """FiftyOne's own service, as FiftyOne builds it, with the bridge to `namespace` installed."""
    operator_env.create(namespace, delegation_target("fiftyone", podTemplate={"env": FIFTYONE_WORKER_ENV}))
    bridge = install(DopsDelegatedOperationRepo(operator_env.service(namespace)))
    try:
        service = FiftyOneService()
        assert service._repo is bridge  # RepositoryFactory handed out the bridge
        yield service
    finally:
        uninstall()


def finished(service: Any, doc_id: Any) -> Any:
    return eventually(
        lambda: service.get(doc_id),
        lambda d: d.run_state in ("completed", "failed"),
        timeout=180,
        describe=f"operation {doc_id} to finish",
    )


def test_a_fiftyone_plugin_operator_runs_as_a_job(fiftyone: Any, operator_env: OperatorEnv, namespace: str) -> None:
    request = {"params": {"a": 2, "b": 3}, "delegated": True}
    doc = fiftyone.queue_operation(
        "@dops-tests/tiny/add", delegation_target="fiftyone", context=ExecutionContext(request_params=request)
    )
    assert doc.run_state == "queued" and isinstance(doc.id, str)
    done = finished(fiftyone, doc.id)
    assert done.run_state == "completed", done.result.error if done.result else done
    assert done.result.result == {"sum": 5, "delegated": True}
    assert (done.status.progress, done.status.label) == (0.5, "adding")  # the operator's ctx.set_progress
    assert done.started_at is not None and done.completed_at >= done.started_at
    assert [d.id for d in fiftyone.list_operations(run_state="completed")] == [doc.id]
    # it ran as a Job of the dops operator, and the resource says so
    stored = operator_env.get_op(namespace, str(doc.id))
    assert stored["status"]["jobName"] and operator_env.jobs_of(namespace, str(doc.id))


def test_a_failing_fiftyone_operator_fails_the_operation(fiftyone: Any) -> None:
    doc = fiftyone.queue_operation(
        "@dops-tests/tiny/explode",
        delegation_target="fiftyone",
        context=ExecutionContext(request_params={"params": {}, "delegated": True}),
    )
    done = finished(fiftyone, doc.id)
    assert done.run_state == "failed"
    assert "the tiny plugin exploded on purpose" in done.result.error


def test_invalid_inputs_fail_with_fiftyone_s_validation_message(fiftyone: Any) -> None:
    doc = fiftyone.queue_operation(
        "@dops-tests/tiny/add",
        delegation_target="fiftyone",
        context=ExecutionContext(request_params={"params": {"a": "two"}, "delegated": True}),
    )
    done = finished(fiftyone, doc.id)
    assert done.run_state == "failed"
    assert "Validation error" in done.result.error
