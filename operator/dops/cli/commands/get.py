"""`dops get NAME`: one operation in detail (status, timeline, result, conditions, events)."""

from __future__ import annotations

from typing import Annotated

import typer

from .. import render
from ..command import register as add
from ..ops import events_for, get_operation, now
from ..options import NamespaceOption, Output, OutputOption
from ..session import session


def get(
    name: Annotated[str, typer.Argument(help="Operation name (or NAMESPACE/NAME).", show_default=False)],
    namespace: NamespaceOption = None,
    output: OutputOption = Output.table,
    events: Annotated[bool, typer.Option("--events/--no-events", help="Show the related events.")] = True,
) -> None:
    """Show one operation: state, timeline, result or error, conditions and events.

    With -o json or -o yaml, print the DelegatedOperation resource as kubectl would.
    """
    sess = session()
    _, doc = get_operation(sess, name, namespace)
    if output in (Output.json, Output.yaml, Output.name):
        sess.out.print(
            render.machine_output([doc], output.value, single=True, namespaces=False), markup=False, soft_wrap=True
        )
        return
    related = events_for(sess, doc) if events else None
    sess.out.print(render.details(doc, now(), related))


def register(app: typer.Typer) -> None:
    add(app, get)
