"""Registering a command: every failure becomes one line on stderr with a documented exit code."""

from __future__ import annotations

import functools
import sys
import traceback
from collections.abc import Callable
from typing import Any, TypeVar

import typer

from .errors import EXIT_INTERRUPTED, describe
from .session import session

F = TypeVar("F", bound=Callable[..., Any])

OPERATIONS_PANEL = "Operations"
RUNTIME_PANEL = "Run dops"


def print_error(message: str) -> None:
    typer.echo(f"error: {' '.join(message.split())}", err=True)


def register(app: typer.Typer, func: F, name: str | None = None, panel: str | None = OPERATIONS_PANEL) -> F:
    """Add `func` as a command whose failures become one-line errors with the documented exit codes."""

    @functools.wraps(func)
    def command(*args: Any, **kwargs: Any) -> Any:
        sess = session()
        try:
            return func(*args, **kwargs)
        except (typer.Exit, typer.Abort, typer.TyperException):
            raise  # exits and usage errors: the root group reports them
        except KeyboardInterrupt:
            sess.err.print("interrupted", markup=False)
            raise typer.Exit(EXIT_INTERRUPTED) from None
        except Exception as exc:
            message, code = describe(exc, sess.server)
            if sess.debug:
                traceback.print_exception(exc, file=sys.stderr)
            print_error(message)
            raise typer.Exit(code) from None
        finally:
            sess.close()

    app.command(name=name, rich_help_panel=panel)(command)
    return func
