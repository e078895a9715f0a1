"""`dops wait NAME`: block until an operation completes or fails, with a live progress bar."""

from __future__ import annotations

from typing import Annotated

import typer

from ..command import register as add
from ..ops import resolve
from ..options import NamespaceOption, TimeoutOption, parse_duration
from ..session import session
from ..waiting import Target, report, wait_for


def wait(
    name: Annotated[str, typer.Argument(help="Operation name (or NAMESPACE/NAME).", show_default=False)],
    for_: Annotated[
        Target,
        typer.Option(
            "--for",
            case_sensitive=False,
            help="completed, failed, or terminal (completed or failed).",
        ),
    ] = Target.terminal,
    timeout: TimeoutOption = None,
    namespace: NamespaceOption = None,
    quiet: Annotated[bool, typer.Option("-q", "--quiet", help="No progress display.")] = False,
) -> None:
    """Wait for an operation to finish.

    Exits 0 when the operation reached the awaited state, 1 when it cannot any more (it failed while
    waiting for completed or terminal, it completed while waiting for failed) or the timeout passed,
    3 when it does not exist or was deleted.
    """
    sess = session()
    seconds = parse_duration(timeout)
    svc, op = resolve(sess, name, namespace)
    doc, code = wait_for(sess, svc, op, for_, seconds, quiet=quiet)
    report(sess, doc, code, for_)
    raise typer.Exit(code)


def register(app: typer.Typer) -> None:
    add(app, wait)
