"""`dops submit OPERATOR`: queue a new operation (FiftyOne's `queue_operation`)."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from ...api.types import DelegatedOperationDocument
from .. import render
from ..command import register as add
from ..options import NamespaceOption, OutputFormat, TimeoutOption, parse_duration, parse_output, parse_params
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
    params_file: Annotated[
        str | None,
        typer.Option(
            "--params-file",
            help="All parameters from a YAML or JSON file holding an object; - reads stdin "
            "(--params-json and --param add to it).",
            show_default=False,
        ),
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
        str,
        typer.Option(
            "-o",
            "--output",
            help="How to print the new operation: table (a sentence), name, json, yaml, jsonpath=… "
            "or custom-columns=….",
        ),
    ] = "table",
    dry_run: Annotated[
        bool,
        typer.Option(
            "--dry-run",
            help="Validate (schema, target, operator) and print what would be queued; queue nothing.",
        ),
    ] = False,
) -> None:
    """Queue an operation for OPERATOR and print its name.

    Example: dops submit @dops/examples/count --param n=5 --label "count to five" --wait
    """
    fmt = parse_output(output, ("table", "json", "yaml", "name"))
    sess = session()
    params = parse_params(param, params_json, params_file)
    seconds = parse_duration(timeout)
    request: dict[str, Any] = {"params": params}
    if dataset:
        request["dataset_name"] = dataset
    if dataset_id:
        request["dataset_id"] = dataset_id
    svc = sess.service(namespace)
    if dry_run:
        from ..lint import dry_run_submit

        raise typer.Exit(
            dry_run_submit(
                sess,
                svc.namespace,
                operator=operator,
                params=params,
                request=request,
                label=label,
                target=target,
                rerunnable=not not_rerunnable,
                output=fmt,
            )
        )
    doc = svc.queue_operation(
        operator,
        label=label,
        delegation_target=target,
        context={"request_params": request},
        rerunnable=not not_rerunnable,
    )
    show_new(sess, doc, fmt, f'operation {doc.id} queued ({doc.operator}) in namespace "{doc.namespace}"')
    if wait:
        assert doc.id is not None
        final, code = wait_for(sess, svc, doc.id, Target.terminal, seconds)
        report(sess, final, code, Target.terminal)
        raise typer.Exit(code)


def show_new(sess: Session, doc: DelegatedOperationDocument, output: OutputFormat, sentence: str) -> None:
    """Print a new operation: `delegatedoperation.dops.io/NAME` (-o name, as kubectl create), its resource
    (-o json|yaml|jsonpath=…|custom-columns=…), else `sentence`."""
    if output.machine:
        text = render.machine_output([doc], output.kind, single=True, arg=output.arg)
        sess.out.print(text, markup=False, soft_wrap=True, end=output.end)
    else:
        sess.out.print(sentence, markup=False, soft_wrap=True)


def register(app: typer.Typer) -> None:
    add(app, submit)
