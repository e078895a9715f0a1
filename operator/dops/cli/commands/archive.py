"""`dops archive NAME…` / `dops unarchive NAME…`: archived operations are hidden from `list`."""

from __future__ import annotations

from typing import Annotated

import typer

from ...api.types import DelegatedOperationDocument
from ...service import DelegatedOperationService
from ..command import register as add
from ..errors import CliError
from ..ops import for_each
from ..options import NamespaceOption
from ..session import session

Names = Annotated[list[str], typer.Argument(help="Operation names (or NAMESPACE/NAME).", show_default=False)]


def archive(names: Names, namespace: NamespaceOption = None) -> None:
    """Archive completed or failed operations (hidden from `dops list` unless --include-archived)."""
    sess = session()

    def action(svc: DelegatedOperationService, doc: DelegatedOperationDocument) -> str:
        assert doc.id is not None
        if doc.archived:
            raise CliError(f'operation "{doc.id}" is already archived')
        if doc.run_state is None or not doc.run_state.is_terminal():
            state = doc.run_state or "pending"
            raise CliError(f'operation "{doc.id}" is {state}: only completed or failed operations can be archived')
        svc.archive_operation(doc.id)
        return f"operation {doc.id} archived"

    raise typer.Exit(for_each(sess, names, namespace, action))


def unarchive(names: Names, namespace: NamespaceOption = None) -> None:
    """Unarchive operations."""
    sess = session()

    def action(svc: DelegatedOperationService, doc: DelegatedOperationDocument) -> str:
        assert doc.id is not None
        if not doc.archived:
            raise CliError(f'operation "{doc.id}" is not archived')
        svc.unarchive_operation(doc.id)
        return f"operation {doc.id} unarchived"

    raise typer.Exit(for_each(sess, names, namespace, action))


def register(app: typer.Typer) -> None:
    add(app, archive)
    add(app, unarchive)
