"""`dops list`: operations as a table (or JSON, YAML, names)."""

from __future__ import annotations

from typing import Annotated

import typer

from .. import render
from ..command import register as add
from ..ops import list_operations, now
from ..options import (
    AllNamespacesOption,
    FieldSelectorOption,
    NamespaceOption,
    OutputOption,
    SelectorOption,
    State,
    parse_output,
)
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
    limit: Annotated[int | None, typer.Option("--limit", min=0, help="At most this many (0: all).")] = None,
    selector: SelectorOption = None,
    field_selector: FieldSelectorOption = None,
    include_archived: Annotated[
        bool, typer.Option("-a", "--include-archived", help="Include archived operations.")
    ] = False,
    pinned: Annotated[bool, typer.Option("--pinned", help="Only pinned operations.")] = False,
    output: OutputOption = "table",
    watch_: Annotated[
        bool, typer.Option("-w", "--watch", help="After listing, print a line for every change (kubectl get -w).")
    ] = False,
) -> None:
    """List delegated operations, newest first.

    Archived operations are hidden unless --include-archived is given, as in FiftyOne. -l/--selector and
    --field-selector are kubectl's label and field selectors (-l used to mean --limit: use --limit).
    """
    fmt = parse_output(output)
    sess = session()
    if watch_:
        from .watch import watch_lines

        watch_lines(
            sess,
            namespace=namespace,
            all_namespaces=all_namespaces,
            state=state.value if state is not None else None,
            operator=operator,
            target=target,
            search=search,
            include_archived=include_archived,
            limit=limit,
            selector=selector,
            field_selector=field_selector,
        )
        return
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
        selector=selector,
        field_selector=field_selector,
    )
    if fmt.machine:
        text = render.machine_output(docs, fmt.kind, single=False, namespaces=all_namespaces, arg=fmt.arg)
        if text:
            sess.out.print(text, markup=False, soft_wrap=True, end=fmt.end)
        return
    if not docs:
        where = "any namespace" if all_namespaces else f'namespace "{sess.resolve_namespace(namespace)}"'
        sess.err.print(f"No operations found in {where}.", markup=False, soft_wrap=True)
        return
    table = render.operations_table(docs, now(), namespaces=all_namespaces, wide=fmt.kind == "wide")
    sess.out.print(table)


def register(app: typer.Typer) -> None:
    add(app, list_, name="list")
