"""`dops rerun NAME`: queue a copy of an operation (a new operation; the original is untouched)."""

from __future__ import annotations

from typing import Annotated

import typer

from ..command import register as add
from ..errors import CliError
from ..ops import get_operation
from ..options import NamespaceOption, TimeoutOption, parse_duration, parse_output
from ..session import session
from ..waiting import Target, report, wait_for
from .submit import show_new


def rerun(
    name: Annotated[str, typer.Argument(help="Operation name (or NAMESPACE/NAME).", show_default=False)],
    namespace: NamespaceOption = None,
    wait: Annotated[
        bool, typer.Option("-w", "--wait", help="Wait until the new operation finishes; exit 1 if it fails.")
    ] = False,
    timeout: TimeoutOption = None,
    output: Annotated[
        str,
        typer.Option("-o", "--output", help="How to print the new operation: table, name, json, yaml or jsonpath=…."),
    ] = "table",
) -> None:
    """Rerun an operation: queue a new operation with the same operator, parameters, label and target.

    Pipeline children and operations marked not rerunnable are refused (FiftyOne's rules).
    """
    fmt = parse_output(output, ("table", "json", "yaml", "name"))
    sess = session()
    seconds = parse_duration(timeout)
    svc, original = get_operation(sess, name, namespace)
    if original.parent_id:
        raise CliError(f'operation "{original.id}" is a pipeline child: rerun its parent "{original.parent_id}"')
    if not original.rerunnable:
        raise CliError(f'operation "{original.id}" is not marked as rerunnable')
    assert original.id is not None
    doc = svc.rerun_operation(original.id)
    show_new(sess, doc, fmt, f'operation {doc.id} queued as a rerun of {original.id} in namespace "{doc.namespace}"')
    if wait:
        assert doc.id is not None
        final, code = wait_for(sess, svc, doc.id, Target.terminal, seconds)
        report(sess, final, code, Target.terminal)
        raise typer.Exit(code)


def register(app: typer.Typer) -> None:
    add(app, rerun)
