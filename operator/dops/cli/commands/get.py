"""`dops get NAME…`: operations in detail (status, timeline, result, conditions, events), as kubectl names them.

Names may be written as kubectl writes them (`dop/NAME`, `delegatedoperation.dops.io/NAME`, `NS/NAME`) and
several may be given. `-w` follows one operation, a line per change, as `kubectl get -w` does. A worker pod
stuck before it starts (ErrImagePull, ImagePullBackOff, …) is shown at once, long before the operator gives
up on it.
"""

from __future__ import annotations

from typing import Annotated

import typer

from ...api.types import DelegatedOperationDocument
from .. import render
from ..command import register as add
from ..errors import CliError, describe
from ..ops import events_for, get_operation, job_pods, now, pod_events
from ..options import NamespaceOption, OutputOption, parse_output, parse_ref
from ..session import session


def get(
    names: Annotated[
        list[str],
        typer.Argument(help="Operation names (NAME, NAMESPACE/NAME or dop/NAME); several allowed.", show_default=False),
    ],
    namespace: NamespaceOption = None,
    output: OutputOption = "table",
    events: Annotated[bool, typer.Option("--events/--no-events", help="Show the related events.")] = True,
    watch_: Annotated[
        bool, typer.Option("-w", "--watch", help="After printing it, a line for every change (kubectl get -w).")
    ] = False,
) -> None:
    """Show operations: state, timeline, result or error, conditions and events.

    With -o json or -o yaml, print the DelegatedOperation resource as kubectl would (a List for several).
    """
    fmt = parse_output(output)
    sess = session()
    if watch_:
        if len(names) != 1:
            raise typer.BadParameter("-w/--watch follows one operation: give one NAME")
        from .watch import watch_lines

        ns, name = parse_ref(names[0], sess.resolve_namespace(namespace))
        get_operation(sess, names[0], namespace)  # not found: one line, exit 3
        watch_lines(
            sess,
            namespace=ns,
            all_namespaces=False,
            state=None,
            operator=None,
            target=None,
            search=None,
            include_archived=True,
            limit=None,
            selector=None,
            field_selector=f"metadata.name={name}",
        )
        return
    docs: list[DelegatedOperationDocument] = []
    worst = 0
    for ref in names:
        try:
            docs.append(get_operation(sess, ref, namespace)[1])
        except CliError as exc:
            if len(names) == 1:
                raise
            sess.err.print(f"error: {exc.message}", markup=False, soft_wrap=True)
            worst = max(worst, exc.code)
        except Exception as exc:
            if len(names) == 1:
                raise
            message, code = describe(exc, sess.server)
            sess.err.print(f"error: {message}", markup=False, soft_wrap=True)
            worst = max(worst, code)
    if fmt.machine:
        if docs:
            text = render.machine_output(docs, fmt.kind, single=len(names) == 1, arg=fmt.arg)
            sess.out.print(text, markup=False, soft_wrap=True, end=fmt.end)
    else:
        for i, doc in enumerate(docs):
            if i:
                sess.out.print("")
            pods = job_pods(sess, doc)
            hints = [h for h in (render.pod_hint(p) for p in pods) if h]
            related = events_for(sess, doc) if events else None
            if related is not None and pods and not doc.pod_name:
                related = [*related, *pod_events(sess, doc.namespace or "", pods)]
            sess.out.print(render.details(doc, now(), related, hints))
    if worst:
        raise typer.Exit(worst)


def register(app: typer.Typer) -> None:
    add(app, get)
