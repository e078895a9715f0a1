"""`dops list`: operations as a table (or JSON, YAML, names)."""

from __future__ import annotations

from typing import Annotated

import typer

from .. import render
from ..command import register as add
from ..ops import list_operations, now
from ..options import AllNamespacesOption, NamespaceOption, Output, OutputOption, State
from ..session import session


def list_(
    namespace: NamespaceOption = None,
    all_namespaces: AllNamespacesOption = False,
    state: Annotated[
        State | None, typer.Option("-s", "--state", case_sensitive=False, help="Only operations in this state.")
    ] = None,
    operator: Annotated[str | None, typer.Option("--operator", help="Only this operator URI.")] = None,
    target: Annotated[str | None, typer.Option("-t", "--target", help="Only this delegation target.")] = None,
    dataset: Annotated[str | None, typer.Option("-d", "--dataset", help="Only this dataset (name).")] = None,
    dataset_id: Annotated[str | None, typer.Option("--dataset-id", help="Only this dataset id.")] = None,
    search: Annotated[
        str | None,
        typer.Option("-m", "--search", help="Regular expression matched against operator and label (unanchored)."),
    ] = None,
    sort_by: Annotated[
        str,
        typer.Option(
            "--sort-by",
            help="Sort field: queued_at, scheduled_at, started_at, completed_at, failed_at, updated_at, "
            "operator, label, state, name.",
        ),
    ] = "queued_at",
    reverse: Annotated[bool, typer.Option("--reverse", help="Ascending order (default: descending).")] = False,
    limit: Annotated[int | None, typer.Option("-l", "--limit", min=0, help="At most this many (0: all).")] = None,
    include_archived: Annotated[
        bool, typer.Option("-a", "--include-archived", help="Include archived operations.")
    ] = False,
    pinned: Annotated[bool, typer.Option("--pinned", help="Only pinned operations.")] = False,
    output: OutputOption = Output.table,
) -> None:
    """List delegated operations, newest first.

    Archived operations are hidden unless --include-archived is given, as in FiftyOne.
    """
    sess = session()
    docs = list_operations(
        sess,
        namespace=namespace,
        all_namespaces=all_namespaces,
        state=state.value if state is not None else None,
        operator=operator,
        target=target,
        dataset=dataset,
        dataset_id=dataset_id,
        search=search,
        sort_by=sort_by,
        reverse=reverse,
        limit=limit,
        include_archived=include_archived,
        pinned=True if pinned else None,
    )
    if output in (Output.json, Output.yaml, Output.name):
        text = render.machine_output(docs, output.value, single=False, namespaces=all_namespaces)
        if text:
            sess.out.print(text, markup=False, soft_wrap=True)
        return
    if not docs:
        where = "any namespace" if all_namespaces else f'namespace "{sess.resolve_namespace(namespace)}"'
        sess.err.print(f"No operations found in {where}.", markup=False, soft_wrap=True)
        return
    table = render.operations_table(docs, now(), namespaces=all_namespaces, wide=output is Output.wide)
    sess.out.print(table)


def register(app: typer.Typer) -> None:
    add(app, list_, name="list")
