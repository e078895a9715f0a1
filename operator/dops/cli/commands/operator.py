"""`dops operator`: run the dops operator (Kopf) in the foreground."""

from __future__ import annotations

from typing import Annotated

import typer

from ..command import RUNTIME_PANEL
from ..command import register as add
from ..errors import EXIT_USAGE, CliError
from ..session import session


def operator(
    namespace: Annotated[
        list[str] | None,
        typer.Option(
            "-n",
            "--namespace",
            help="Serve this namespace (repeatable). Default: $DOPS_WATCH_NAMESPACES, else the whole cluster.",
            show_default=False,
        ),
    ] = None,
    all_namespaces: Annotated[bool, typer.Option("-A", "--all-namespaces", help="Serve every namespace.")] = False,
    standalone: Annotated[
        bool, typer.Option("--standalone/--peering", help="Run without Kopf peering (one active replica).")
    ] = True,
    verbose: Annotated[bool, typer.Option("-v", "--verbose", help="Verbose (debug) logging.")] = False,
) -> None:
    """Run the dops operator: schedule queued operations as Jobs and reconcile their outcome.

    Settings come from DOPS_* environment variables (see the README's configuration table). Stops
    cleanly on Ctrl-C or SIGTERM.
    """
    sess = session()
    if namespace and all_namespaces:
        raise CliError("give either -n/--namespace or -A/--all-namespaces, not both", EXIT_USAGE)
    if sess.context:
        raise CliError("dops operator uses the kubeconfig's current context: --context is not supported", EXIT_USAGE)
    from ...handlers import run_operator

    namespaces = list(namespace) if namespace else None
    if namespaces is None and not all_namespaces and sess.namespace:
        namespaces = [sess.namespace]
    run_operator(
        namespaces=namespaces,
        all_namespaces=all_namespaces,
        standalone=standalone,
        verbose=verbose,
        kubeconfig=sess.kubeconfig,
    )


def register(app: typer.Typer) -> None:
    add(app, operator, panel=RUNTIME_PANEL)
