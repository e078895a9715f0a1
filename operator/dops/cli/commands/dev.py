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
    image_map: Annotated[
        list[str] | None,
        typer.Option(
            "--image-map",
            metavar="PATTERN=MODE",
            help="Run more images: PATTERN (shell-style, e.g. 'ghcr.io/acme/*') = process (as this dops "
            "installation), simulated, or missing (ErrImagePull). Repeatable.",
        ),
    ] = None,
    python_path: Annotated[
        list[Path] | None,
        typer.Option(
            "--python-path",
            metavar="DIR",
            help="Put DIR on every worker pod's PYTHONPATH (for py:module:function operators). Repeatable.",
        ),
    ] = None,
) -> None:
    """Run dops on an embedded Kubernetes control plane — no cluster needed.

    Starts the API server, the controllers and a kubelet that runs the dops image as this
    installation, installs the CRDs and a default DelegationTarget, runs the operator, writes a
    kubeconfig (--kubeconfig PATH, default STATE_DIR/kubeconfig) and serves until Ctrl-C or SIGTERM.
    Stopping leaves no process behind. Paths are printed absolute; one dops dev at a time may use a
    state dir (a second one exits with code 2, naming the pid of the first).
    """
    from ..dev import DevError, DevOptions, parse_image_rule, run_dev

    try:
        rules = dict(parse_image_rule(rule) for rule in image_map or [])
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    # `--kubeconfig PATH` is the root option (also accepted after `dev`): here it names the file to write.
    kubeconfig = Path(session().kubeconfig or state_dir / "kubeconfig")
    options = DevOptions(
        port=port,
        kubeconfig=kubeconfig,
        state_dir=state_dir,
        with_operator=not no_operator,
        crds=crds,
        image_rules=rules,
        python_path=list(python_path or []),
    )
    try:
        code = run_dev(options)
    except DevError as exc:
        raise CliError(str(exc), exc.code) from exc
    if code:
        raise typer.Exit(code)


def register(app: typer.Typer) -> None:
    add(app, dev, panel=RUNTIME_PANEL)
