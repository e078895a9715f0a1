"""`dops completion bash|zsh|fish`: the shell completion script (commands, options, choices).

The script makes the shell ask `dops` itself for completions (`_DOPS_COMPLETE=complete_bash dops …`), so
they always match the installed version. typer (which vendors click) answers those requests; its
completion classes are registered when this module registers the command, so the script printed here and
the answers come from the same classes.
"""

from __future__ import annotations

import enum
from typing import Annotated

import typer
from typer._click.shell_completion import get_completion_class
from typer._completion_classes import completion_init

from ..command import RUNTIME_PANEL
from ..command import register as add
from ..session import session

COMPLETE_VAR = "_DOPS_COMPLETE"


class Shell(enum.StrEnum):
    bash = "bash"
    zsh = "zsh"
    fish = "fish"


def completion(
    ctx: typer.Context,
    shell: Annotated[Shell, typer.Argument(case_sensitive=False, help="bash, zsh or fish.", show_default=False)],
) -> None:
    """Print the shell completion script.

    bash: source <(dops completion bash), or add that line to ~/.bashrc. zsh: source <(dops completion zsh).
    fish: dops completion fish > ~/.config/fish/completions/dops.fish
    """
    cls = get_completion_class(shell.value)
    if cls is None:  # pragma: no cover - completion_init registers every Shell member
        raise typer.BadParameter(f"no completion for {shell.value}")
    script = cls(ctx.find_root().command, {}, "dops", COMPLETE_VAR).source()
    session().out.print(script, markup=False, soft_wrap=True, highlight=False)


def register(app: typer.Typer) -> None:
    completion_init()
    add(app, completion, panel=RUNTIME_PANEL)
