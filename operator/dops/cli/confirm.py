"""Consent for destructive bulk commands (`cleanup`, `delete` of several operations).

Deleting many operations by filter is easy to get wrong and cannot be undone, so these commands ask
first on a terminal, and `-y/--yes` answers for the user. Without a terminal (a script, CI, a pipe)
nobody can answer, and silently going ahead would make the question pointless: they refuse, before
touching the cluster, with one line saying to pass --yes, so a script that deletes says so.
"""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from .errors import EXIT_FAILED, EXIT_USAGE, CliError

YesOption = Annotated[
    bool,
    typer.Option("-y", "--yes", help="Do not ask for confirmation (required when stdin is not a terminal)."),
]


def stdin_is_terminal() -> bool:
    """True when a person can answer a question on stdin."""
    stream = sys.stdin
    try:
        return stream is not None and not stream.closed and stream.isatty()
    except (ValueError, OSError):
        return False


def require_consent(yes: bool, what: str) -> None:
    """Refuse (exit 2) when --yes was not given and stdin is not a terminal; `what` says what would be deleted."""
    if not yes and not stdin_is_terminal():
        raise CliError(f"{what}: pass --yes to confirm (stdin is not a terminal)", EXIT_USAGE)


def confirm(question: str, yes: bool) -> None:
    """Ask `question` on stderr (default no) unless --yes; CliError (exit 1, nothing done) unless answered yes.

    The prompt goes to stderr and nothing to stdout, so stdout stays the command's output alone. End of
    input counts as no; Ctrl-C interrupts (exit 130).
    """
    if yes:
        return
    sys.stderr.write(f"{question} [y/N]: ")
    sys.stderr.flush()
    answer = sys.stdin.readline()
    if answer.strip().lower() not in ("y", "yes"):
        raise CliError("not confirmed: nothing deleted", EXIT_FAILED)
