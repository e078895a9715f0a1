"""`dops pin NAME…` / `dops unpin NAME…`: pinned operations are kept by retention (TTL) cleanup."""

from __future__ import annotations

from typing import Annotated

import typer

from ...api.types import DelegatedOperationDocument
from ...service import DelegatedOperationService
from ..command import register as add
from ..ops import for_each
from ..options import NamespaceOption
from ..session import session

Names = Annotated[list[str], typer.Argument(help="Operation names (or NAMESPACE/NAME).", show_default=False)]


def _set(names: list[str], namespace: str | None, pinned: bool) -> None:
    sess = session()

    def action(svc: DelegatedOperationService, doc: DelegatedOperationDocument) -> str:
        assert doc.id is not None
        svc.set_pinned(doc.id, pinned)
        return f"operation {doc.id} {'pinned' if pinned else 'unpinned'}"

    raise typer.Exit(for_each(sess, names, namespace, action))


def pin(names: Names, namespace: NamespaceOption = None) -> None:
    """Pin operations (the retention TTL never deletes pinned operations)."""
    _set(names, namespace, True)


def unpin(names: Names, namespace: NamespaceOption = None) -> None:
    """Unpin operations."""
    _set(names, namespace, False)


def register(app: typer.Typer) -> None:
    add(app, pin)
    add(app, unpin)
