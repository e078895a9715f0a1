"""`dops label NAME TEXT`: change an operation's display label (FiftyOne's `set_label`)."""

from __future__ import annotations

from typing import Annotated

import typer

from ..command import register as add
from ..ops import get_operation
from ..options import NamespaceOption
from ..session import session


def label(
    name: Annotated[str, typer.Argument(help="Operation name (or NAMESPACE/NAME).", show_default=False)],
    text: Annotated[str, typer.Argument(help="The new label.", show_default=False)],
    namespace: NamespaceOption = None,
) -> None:
    """Set the display label of an operation."""
    sess = session()
    svc, doc = get_operation(sess, name, namespace)
    assert doc.id is not None
    updated = svc.set_label(doc.id, text)
    sess.out.print(f'operation {updated.id} labelled "{updated.label}"', markup=False, soft_wrap=True)


def register(app: typer.Typer) -> None:
    add(app, label)
