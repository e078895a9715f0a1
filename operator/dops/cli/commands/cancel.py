"""`dops cancel NAME…`: the word users look for; the same compare-and-set as `dops fail` (FiftyOne's word)."""

from __future__ import annotations

from typing import Annotated

import typer

from ..command import register as add
from ..options import NamespaceOption
from .fail import fail

DEFAULT_REASON = "cancelled with dops cancel"


def cancel(
    names: Annotated[list[str], typer.Argument(help="Operation names (or NAMESPACE/NAME).", show_default=False)],
    reason: Annotated[
        str, typer.Option("-r", "--reason", help="Why: recorded as the operation's error message.")
    ] = DEFAULT_REASON,
    namespace: NamespaceOption = None,
) -> None:
    """Cancel queued, scheduled or running operations (the same as `dops fail`).

    The operation becomes failed with REASON as its error, only if nobody changed its state meanwhile
    (compare-and-set); the operator then stops its Job. Completed and failed operations are left alone (exit 1).
    """
    fail(names, reason, namespace)


def register(app: typer.Typer) -> None:
    add(app, cancel)
