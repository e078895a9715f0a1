"""`dops worker run REF` (the Job's container) and `dops worker launch` (an external executor)."""

from __future__ import annotations

from typing import Annotated

import typer

from ..command import RUNTIME_PANEL
from ..command import register as add
from ..session import session

worker_app = typer.Typer(
    name="worker",
    help="Run operations: the Job container (run) or an external executor (launch).",
    no_args_is_help=True,
)


def run(
    ref: Annotated[str, typer.Argument(help="The operation: NAMESPACE/NAME or NAME.", show_default=False)],
    namespace: Annotated[
        str | None, typer.Option("-n", "--namespace", help="Namespace when REF is a bare name.", show_default=False)
    ] = None,
    from_queued: Annotated[
        bool, typer.Option("--from-queued", help="Claim a queued operation (run it by hand, without the operator).")
    ] = False,
    claimed: Annotated[
        bool,
        typer.Option("--claimed", help="The operation is already running for this process (a supervisor claimed it)."),
    ] = False,
) -> None:
    """Claim one operation, run its operator, record the result (the container of the operator's Jobs).

    Exit codes: 0 completed (or nothing to do), 1 the operation failed, 2 usage or configuration error.
    """
    sess = session()
    from ...worker import run_operation

    code = run_operation(
        ref,
        namespace=namespace or sess.namespace,
        claimed=claimed,
        from_queued=from_queued,
        kubeconfig=sess.kubeconfig,
        context=sess.context,
    )
    raise typer.Exit(code)


def launch(
    target: Annotated[
        str | None, typer.Option("-t", "--target", help="Only operations of this DelegationTarget (mode: external).")
    ] = None,
    monitor: Annotated[
        bool, typer.Option("-m", "--monitor", help="Run each operation in a subprocess and watch for cancellation.")
    ] = False,
    namespace: Annotated[
        str | None, typer.Option("-n", "--namespace", help="Namespace to serve.", show_default=False)
    ] = None,
    once: Annotated[bool, typer.Option("--once", help="Run what is queued now, then exit.")] = False,
    interval: Annotated[float, typer.Option("--interval", help="Seconds between polls for queued operations.")] = 5.0,
    limit: Annotated[
        int | None, typer.Option("--limit", min=1, help="At most this many operations per poll.", show_default=False)
    ] = None,
) -> None:
    """Execute queued operations outside the operator's Jobs (FiftyOne's `delegated launch`), until Ctrl-C."""
    sess = session()
    from ...worker import launch as launch_

    code = launch_(
        target=target,
        monitor=monitor,
        namespace=namespace or sess.namespace,
        once=once,
        interval=interval,
        limit=limit,
        kubeconfig=sess.kubeconfig,
        context=sess.context,
    )
    raise typer.Exit(code)


def register(app: typer.Typer) -> None:
    add(worker_app, run, panel=None)
    add(worker_app, launch, panel=None)
    app.add_typer(worker_app, rich_help_panel=RUNTIME_PANEL)
