"""The dashboard's actions, through the same `DelegatedOperationService` calls and rules as the CLI.

rerun refuses pipeline children and non-rerunnable operations; cancel is a compare-and-set from the
state last read (re-read and retried a few times, refused once terminal); archive only finished
operations; delete refuses a running operation unless forced (the page's confirm dialog asks first).
Each returns one line for the page or raises `ActionRefused` with one readable line.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..api.types import DelegatedOperationDocument, ExecutionResult, ExecutionRunState, OperationNotFound
from ..service import DelegatedOperationService
from ..service.delegated import caller_identity

ACTIONS = ("rerun", "cancel", "pin", "unpin", "label", "archive", "unarchive", "delete")
# Actions that cannot be undone: the page confirms them first.
DESTRUCTIVE = ("cancel", "delete")
CANCEL_REASON = "cancelled from dops ui"
CAS_ATTEMPTS = 3


class ActionRefused(Exception):
    """The action does not apply (wrong state, not rerunnable, ...): `status` is the HTTP status to answer."""

    def __init__(self, message: str, status: int = 409) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


def perform(svc: DelegatedOperationService, name: str, action: str, body: Mapping[str, Any]) -> dict[str, Any]:
    """Apply `action` to operation `name`; returns {"message": ..., "name": the operation to show next}."""
    if action not in ACTIONS:
        raise ActionRefused(f'unknown action "{action}" (one of {", ".join(ACTIONS)})', 400)
    try:
        doc = svc.get(name)
    except OperationNotFound:
        raise ActionRefused(f'operation "{name}" not found in namespace "{svc.namespace}"', 404) from None
    if action == "rerun":
        if doc.parent_id:
            raise ActionRefused(f'operation "{name}" is a pipeline child: rerun its parent "{doc.parent_id}"')
        if not doc.rerunnable:
            raise ActionRefused(f'operation "{name}" is not marked as rerunnable')
        new = svc.rerun_operation(name)
        return {"message": f"operation {new.id} queued as a rerun of {name}", "name": new.id}
    if action == "cancel":
        reason = str(body.get("reason") or CANCEL_REASON)
        return {"message": _cancel(svc, doc, reason), "name": name}
    if action in ("pin", "unpin"):
        svc.set_pinned(name, action == "pin")
        return {"message": f"operation {name} {action}ned", "name": name}
    if action == "label":
        text = body.get("label")
        if not isinstance(text, str) or not text.strip():
            raise ActionRefused("a label must be a non-empty text", 400)
        updated = svc.set_label(name, text.strip())
        return {"message": f'operation {name} labelled "{updated.label}"', "name": name}
    if action == "archive":
        if doc.archived:
            raise ActionRefused(f'operation "{name}" is already archived')
        if doc.run_state is None or not doc.run_state.is_terminal():
            state = doc.run_state or "pending"
            raise ActionRefused(f'operation "{name}" is {state}: only completed or failed operations can be archived')
        svc.archive_operation(name)
        return {"message": f"operation {name} archived", "name": name}
    if action == "unarchive":
        if not doc.archived:
            raise ActionRefused(f'operation "{name}" is not archived')
        svc.unarchive_operation(name)
        return {"message": f"operation {name} unarchived", "name": name}
    # delete
    if doc.run_state is ExecutionRunState.RUNNING and not body.get("force"):
        raise ActionRefused(f'operation "{name}" is running: cancel it first, or confirm deleting it anyway')
    svc.delete_operation(name)
    return {"message": f"operation {name} deleted", "name": None}


def _cancel(svc: DelegatedOperationService, doc: DelegatedOperationDocument, reason: str) -> str:
    """Mark as failed from the state just read (compare-and-set); re-read and retry when it moved on."""
    who = f"dops ui ({caller_identity()})"
    assert doc.id is not None
    for _ in range(CAS_ATTEMPTS):
        if doc.run_state is not None and doc.run_state.is_terminal():
            raise ActionRefused(f'operation "{doc.id}" is already {doc.run_state}: nothing to cancel')
        result = ExecutionResult(error=reason, error_message=reason)
        if svc.set_failed(doc.id, result=result, required_state=doc.run_state, cancelled_by=who) is not None:
            return f"operation {doc.id} cancelled: {reason}"
        doc = svc.get(doc.id)
    raise ActionRefused(f'operation "{doc.id}" keeps changing state; try again')
