"""The `dops` command line (also `kubectl dops`, and `python -m dops`).

One module per command under `dops.cli.commands`; each exposes `register(app)`. `COMMAND_MODULES`
lists them in help order, so adding a command is adding a module and one line here. Commands are
plain functions: typer builds the options from their signatures and the help from their docstrings.
`register()` wraps each so that every failure is one line on stderr with a documented exit code
(see `dops.cli.errors`); `--debug` adds the traceback.
"""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Sequence
from typing import Annotated, Any

import typer
from typer.core import TyperGroup, TyperOption

from .. import __version__
from .command import print_error
from .errors import EXIT_INTERRUPTED, EXIT_USAGE
from .session import Session, start_session

# Command modules in help order. Each module defines `register(app: typer.Typer) -> None`.
COMMAND_MODULES: list[str] = [
    "dops.cli.commands.list",
    "dops.cli.commands.get",
    "dops.cli.commands.logs",
    "dops.cli.commands.wait",
    "dops.cli.commands.watch",
    "dops.cli.commands.submit",
    "dops.cli.commands.lint",
    "dops.cli.commands.rerun",
    "dops.cli.commands.cancel",
    "dops.cli.commands.fail",
    "dops.cli.commands.delete",
    "dops.cli.commands.pin",
    "dops.cli.commands.label",
    "dops.cli.commands.archive",
    "dops.cli.commands.cleanup",
    "dops.cli.commands.operator",
    "dops.cli.commands.worker",
    "dops.cli.commands.dev",
    "dops.cli.commands.ui",
    "dops.cli.commands.completion",
]


HELP_OPTION_NAMES = ["-h", "--help"]

# Root options that may also be written after the subcommand, as kubectl allows (`dops list --context x`).
_GLOBAL_FLAGS = {"--debug"}
_GLOBAL_VALUED = {"--kubeconfig", "--context"}

EPILOG = (
    "Exit codes: 0 success · 1 the operation failed (wait, submit --wait), a wait timed out, or a command could "
    "not act · 2 usage · 3 not found, or the cluster cannot be reached. Every option can also be set through a "
    "DOPS_ environment variable (DOPS_KUBECONFIG, DOPS_CONTEXT, DOPS_NAMESPACE, DOPS_DEBUG)."
)


def hoist_global_options(args: Sequence[str]) -> list[str]:
    """Move root options written after the subcommand to the front (stops at `--`)."""
    args = list(args)
    front: list[str] = []
    rest: list[str] = []
    i = 0
    while i < len(args):
        arg = args[i]
        if arg == "--":
            rest.extend(args[i:])
            break
        name = arg.split("=", 1)[0]
        if i > 0 and arg in _GLOBAL_FLAGS:
            front.append(arg)
        elif i > 0 and name in _GLOBAL_VALUED:
            if "=" in arg:
                front.append(arg)
            elif i + 1 < len(args):
                front += [arg, args[i + 1]]
                i += 1
            else:
                rest.append(arg)
        else:
            rest.append(arg)
        i += 1
    return front + rest


def hide_flag_types(command: Any) -> None:
    """Show flags as the bare switches they are (`--debug`), not `--debug <bool>`.

    typer's rich help prints every option's type, flags included, which reads as if `--debug true`
    were the syntax; an empty metavar leaves the type column blank. Walks subcommands too, and the
    help option, which each command creates on first use (with these names) and then keeps.
    """
    help_option = command.get_help_option(typer.Context(command, help_option_names=HELP_OPTION_NAMES))
    for param in [*getattr(command, "params", ()), help_option]:
        if isinstance(param, TyperOption) and param.is_flag and param.metavar is None:
            param.metavar = ""
    for sub in (getattr(command, "commands", None) or {}).values():
        hide_flag_types(sub)


class DopsGroup(TyperGroup):
    """The root group: one-line usage errors (exit 2) instead of typer's boxed usage panels."""

    def main(  # type: ignore[override]
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        **extra: Any,
    ) -> Any:
        argv = hoist_global_options(sys.argv[1:] if args is None else args)
        hide_flag_types(self)
        if prog_name is None:
            prog_name = program_name()
        try:
            code = super().main(argv, prog_name, complete_var, standalone_mode=False, **extra)
        except typer.TyperException as exc:  # usage errors (exit code 2) and other parser errors
            ctx = getattr(exc, "ctx", None)
            hint = f" (see '{ctx.command_path} --help')" if ctx is not None else ""
            code = int(getattr(exc, "exit_code", EXIT_USAGE))
            message = exc.format_message().replace("Value error, ", "").strip().rstrip(".")
            if message:  # (no message: the help was shown, e.g. `dops` alone)
                print_error(message + (hint if code == EXIT_USAGE else ""))
        except typer.Abort:
            code = EXIT_INTERRUPTED
        code = code if isinstance(code, int) else 0
        if standalone_mode:
            sys.exit(code)
        return code


def program_name() -> str:
    base = os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else "dops"
    if base.startswith("kubectl-"):
        return "kubectl " + base[len("kubectl-") :].replace("_", "-")
    if base in ("__main__.py", "-m", "-c", ""):
        return "dops"
    return base


def _version(value: bool) -> None:
    if value:
        typer.echo(f"dops {__version__}")
        raise typer.Exit()


def root(
    ctx: typer.Context,
    kubeconfig: Annotated[
        str | None,
        typer.Option(
            "--kubeconfig",
            envvar="DOPS_KUBECONFIG",
            help="Kubeconfig file (default: $KUBECONFIG, ~/.kube/config, or in-cluster).",
            show_default=False,
        ),
    ] = None,
    context: Annotated[
        str | None,
        typer.Option("--context", envvar="DOPS_CONTEXT", help="Kubeconfig context to use.", show_default=False),
    ] = None,
    namespace: Annotated[
        str | None,
        typer.Option(
            "-n",
            "--namespace",
            envvar="DOPS_NAMESPACE",
            help="Default namespace for every command.",
            show_default=False,
        ),
    ] = None,
    debug: Annotated[
        bool, typer.Option("--debug", envvar="DOPS_DEBUG", help="Show tracebacks of unexpected errors.")
    ] = False,
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit."),
    ] = False,
) -> None:
    """dops: delegated operations on Kubernetes.

    Queue, watch and manage DelegatedOperation resources (FiftyOne-compatible), and run the dops
    operator and workers. Works as `dops …` and as the kubectl plugin `kubectl dops …`.
    """
    ctx.obj = start_session(Session(kubeconfig=kubeconfig, context=context, namespace=namespace, debug=debug))


def build_app(modules: Sequence[str] = tuple(COMMAND_MODULES)) -> typer.Typer:
    app = typer.Typer(
        cls=DopsGroup,
        name="dops",
        no_args_is_help=True,
        add_completion=False,
        pretty_exceptions_enable=False,
        context_settings={"help_option_names": HELP_OPTION_NAMES, "max_content_width": 120},
        epilog=EPILOG,
        rich_markup_mode="markdown",
    )
    app.callback()(root)
    for module in modules:
        importlib.import_module(module).register(app)
    return app


app = build_app()


def main() -> None:
    """Console-script entry point (`dops`, `kubectl-dops`)."""
    app()


if __name__ == "__main__":  # pragma: no cover
    main()
