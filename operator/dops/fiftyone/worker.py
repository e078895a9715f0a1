"""The FiftyOne worker mode: dops' Jobs run FiftyOne plugin operators through FiftyOne's own execution path.

dops' worker (`dops worker run NS/NAME`, the Job's container) claims the operation, runs its operator and
records progress and the outcome in the resource's status. Its operators come from the `dops.operators`
entry points; `resolve_operator` is registered in the `dops.operator_resolvers` group, so a URI no entry point
names is looked up here: when the worker's environment sets `DOPS_FIFTYONE_OPERATORS=1` and FiftyOne's plugin
registry (plugins under `FIFTYONE_PLUGINS_DIR`, and FiftyOne's built-ins) has the operator, the worker runs it
with FiftyOne's own `DelegatedOperationService._execute_operator` — the code `fiftyone delegated launch` runs:
`prepare_operator_executor` (FiftyOne's input validation and ExecutionContext), `do_execute_operator`, and the
outputs schema. Everything else stays dops': the claim with its compare-and-set, the attempt fencing,
`ctx.set_progress` (forwarded to dops' throttled, fenced progress writes), timeouts, cancellation, retries, the
outcome write. FiftyOne sees all of it through the bridge (`dops.fiftyone.repo`).

Why opt-in by environment: importing FiftyOne takes seconds; without the switch an unknown URI fails as fast as
ever, and workers without FiftyOne are untouched.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Mapping
from typing import Any

from ..execution import Operator

ENV_SWITCH = "DOPS_FIFTYONE_OPERATORS"


def enabled(environ: Mapping[str, str] | None = None) -> bool:
    """Whether the worker mode is switched on in this environment (and FiftyOne is installed)."""
    env = os.environ if environ is None else environ
    if env.get(ENV_SWITCH, "").strip().lower() not in ("1", "true", "yes", "on"):
        return False
    return importlib.util.find_spec("fiftyone") is not None


def resolve_operator(uri: str) -> Operator | None:
    """The `dops.operator_resolvers` entry: a dops operator running FiftyOne's operator `uri`, or None."""
    if not enabled():
        return None
    from fiftyone.operators.registry import OperatorRegistry

    registry = OperatorRegistry()
    if not registry.operator_exists(uri):
        return None
    description = getattr(getattr(registry.get_operator(uri), "config", None), "label", "") or ""
    return Operator(execute=_runner(uri), uri=uri, params=None, description=str(description))


def _runner(uri: str) -> Any:
    async def execute(ctx: Any) -> Any:
        """Run FiftyOne's operator `uri` with dops' context `ctx`; returns FiftyOne's ExecutionResult."""
        from fiftyone.factory.repos.delegated_operation import DelegatedOperationRepo
        from fiftyone.factory.repos.delegated_operation_doc import DelegatedOperationDocument
        from fiftyone.operators.delegated import DelegatedOperationService
        from fiftyone.operators.executor import ExecutionContext

        class JobService(DelegatedOperationService):  # type: ignore[misc]
            """FiftyOne's service whose progress writes are dops' (throttled, fenced by the worker's attempt)."""

            def set_progress(self, doc_id: Any, progress: Any) -> None:
                del doc_id
                ctx.set_progress(progress=getattr(progress, "progress", None), label=getattr(progress, "label", None))

        # FiftyOne reads its document's operator, context, id, dataset id and pipeline links; dops' worker has
        # already claimed the operation, so nothing here writes a state.
        doc = DelegatedOperationDocument(operator=uri)
        doc.id = ctx.delegated_operation_id
        doc.context = ExecutionContext(request_params=dict(ctx.request_params))
        doc.dataset_id = ctx.request_params.get("dataset_id")
        # No repo calls are made (set_progress is overridden; parent_id is None): the base repo refuses any.
        service = JobService(repo=DelegatedOperationRepo())
        result = await service._execute_operator(doc)
        return result

    return execute
