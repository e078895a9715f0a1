"""`dops dev`: the embedded default — control plane, CRDs, default target and operator on this machine."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ..command import RUNTIME_PANEL
from ..command import register as add
from ..errors import CliError
from ..session import session


def dev(
    port: Annotated[int, typer.Option("--port", help="API server port on 127.0.0.1 (0 = pick a free one).")] = 0,
    state_dir: Annotated[
        Path, typer.Option("--state-dir", help="Directory for pod logs, the log archive and process scratch space.")
    ] = Path(".dops/dev"),
    no_operator: Annotated[
        bool,
        typer.Option("--no-operator", help="Do not run the operator (install the Helm chart to run it instead)."),
    ] = False,
    crds: Annotated[
        Path | None,
        typer.Option("--crds", help="Directory of CRD manifests (default: the CRDs this dops installation ships)."),
    ] = None,
) -> None:
    """Run dops on an embedded Kubernetes control plane — no cluster needed.

    Starts the API server, the controllers and a kubelet that runs the dops image as this
    installation, installs the CRDs and a default DelegationTarget, runs the operator, writes a
    kubeconfig (--kubeconfig PATH, default STATE_DIR/kubeconfig) and serves until Ctrl-C or SIGTERM.
    Stopping leaves no process behind. Paths are printed absolute; one dops dev at a time may use a
    state dir (a second one exits with code 2, naming the pid of the first).
    """
    from ..dev import DevError, DevOptions, run_dev

    # `--kubeconfig PATH` is the root option (also accepted after `dev`): here it names the file to write.
    kubeconfig = Path(session().kubeconfig or state_dir / "kubeconfig")
    options = DevOptions(
        port=port, kubeconfig=kubeconfig, state_dir=state_dir, with_operator=not no_operator, crds=crds
    )
    try:
        code = run_dev(options)
    except DevError as exc:
        raise CliError(str(exc), exc.code) from exc
    if code:
        raise typer.Exit(code)


def register(app: typer.Typer) -> None:
    add(app, dev, panel=RUNTIME_PANEL)
