"""`dops submit OPERATOR`: queue a new operation (FiftyOne's `queue_operation`)."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from ...api.types import DelegatedOperationDocument
from .. import render
from ..command import register as add
from ..options import NamespaceOption, Output, TimeoutOption, parse_duration, parse_params
from ..session import Session, session
from ..waiting import Target, report, wait_for


def submit(
    operator: Annotated[str, typer.Argument(help="Operator URI, e.g. @dops/examples/count.", show_default=False)],
    param: Annotated[
        list[str] | None,
        typer.Option(
            "-p",
            "--param",
            help="Operator parameter KEY=VALUE (repeatable); VALUE is JSON when it parses (5, true, [1,2]), else text.",
        ),
    ] = None,
    params_json: Annotated[
        str | None, typer.Option("--params-json", help="All parameters as one JSON object (--param adds to it).")
    ] = None,
    label: Annotated[str | None, typer.Option("--label", help="Display label (default: the operator URI).")] = None,
    target: Annotated[
        str | None, typer.Option("-t", "--target", help="DelegationTarget to run on (default: the default target).")
    ] = None,
    dataset: Annotated[
        str | None, typer.Option("-d", "--dataset", help="Dataset name (request_params.dataset_name).")
    ] = None,
    dataset_id: Annotated[
        str | None, typer.Option("--dataset-id", help="Dataset id (request_params.dataset_id).")
    ] = None,
    not_rerunnable: Annotated[bool, typer.Option("--not-rerunnable", help="Refuse reruns of this operation.")] = False,
    wait: Annotated[
        bool, typer.Option("-w", "--wait", help="Wait until the operation finishes; exit 1 if it fails.")
    ] = False,
    timeout: TimeoutOption = None,
    namespace: NamespaceOption = None,
    output: Annotated[
        Output,
        typer.Option(
            "-o",
            "--output",
            case_sensitive=False,
            help="How to print the new operation: table (a sentence), name, json or yaml.",
        ),
    ] = Output.table,
) -> None:
    """Queue an operation for OPERATOR and print its name.

    Example: dops submit @dops/examples/count --param n=5 --label "count to five" --wait
    """
    sess = session()
    params = parse_params(param, params_json)
    seconds = parse_duration(timeout)
    request: dict[str, Any] = {"params": params}
    if dataset:
        request["dataset_name"] = dataset
    if dataset_id:
        request["dataset_id"] = dataset_id
    svc = sess.service(namespace)
    doc = svc.queue_operation(
        operator,
        label=label,
        delegation_target=target,
        context={"request_params": request},
        rerunnable=not not_rerunnable,
    )
    show_new(sess, doc, output, f'operation {doc.id} queued ({doc.operator}) in namespace "{doc.namespace}"')
    if wait:
        assert doc.id is not None
        final, code = wait_for(sess, svc, doc.id, Target.terminal, seconds)
        report(sess, final, code, Target.terminal)
        raise typer.Exit(code)


def show_new(sess: Session, doc: DelegatedOperationDocument, output: Output, sentence: str) -> None:
    """Print a new operation: its name (-o name), its resource (-o json|yaml), else `sentence`."""
    if output is Output.name:
        sess.out.print(doc.id or "", markup=False, soft_wrap=True)
    elif output in (Output.json, Output.yaml):
        text = render.machine_output([doc], output.value, single=True, namespaces=False)
        sess.out.print(text, markup=False, soft_wrap=True)
    else:
        sess.out.print(sentence, markup=False, soft_wrap=True)


def register(app: typer.Typer) -> None:
    add(app, submit)
