"""`dops fail NAME…`: mark operations as failed, which cancels them (the operator stops their Jobs)."""

from __future__ import annotations

from typing import Annotated

import typer

from ...api.types import DelegatedOperationDocument, ExecutionResult
from ...service import DelegatedOperationService
from ...service.delegated import caller_identity
from ..command import register as add
from ..errors import CliError
from ..ops import for_each
from ..options import NamespaceOption
from ..session import session

DEFAULT_REASON = "marked as failed with dops fail"


def fail(
    names: Annotated[list[str], typer.Argument(help="Operation names (or NAMESPACE/NAME).", show_default=False)],
    reason: Annotated[
        str, typer.Option("-r", "--reason", help="Why: recorded as the operation's error message.")
    ] = DEFAULT_REASON,
    namespace: NamespaceOption = None,
) -> None:
    """Mark queued, scheduled or running operations as failed (cancel them).

    The state changes only if nobody changed it meanwhile (compare-and-set); the operator then stops
    the operation's Job. Completed and failed operations are left alone (exit 1).
    """
    sess = session()
    who = f"dops fail ({caller_identity()})"

    def action(svc: DelegatedOperationService, doc: DelegatedOperationDocument) -> str:
        assert doc.id is not None
        for _ in range(3):
            if doc.run_state is not None and doc.run_state.is_terminal():
                raise CliError(f'operation "{doc.id}" is already {doc.run_state}: nothing to fail')
            result = ExecutionResult(error=reason, error_message=reason)
            updated = svc.set_failed(doc.id, result=result, required_state=doc.run_state, cancelled_by=who)
            if updated is not None:
                return f"operation {doc.id} marked as failed: {reason}"
            doc = svc.get(doc.id)  # the state moved on meanwhile: look again
        raise CliError(f'operation "{doc.id}" keeps changing state; try again')

    raise typer.Exit(for_each(sess, names, namespace, action))


def register(app: typer.Typer) -> None:
    add(app, fail)
