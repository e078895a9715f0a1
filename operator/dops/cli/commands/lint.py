"""`dops lint FILE…`: validate DelegatedOperation (and DelegationTarget) manifests before applying them."""

from __future__ import annotations

from typing import Annotated

import typer

from ..command import register as add
from ..lint import lint_files
from ..options import NamespaceOption
from ..session import session


def lint(
    files: Annotated[
        list[str],
        typer.Argument(
            help="Manifest files or directories (*.yaml, *.yml, *.json); - reads stdin.", show_default=False
        ),
    ],
    namespace: NamespaceOption = None,
    offline: Annotated[
        bool, typer.Option("--offline", help="Do not contact the cluster (skip the target check).")
    ] = False,
) -> None:
    """Check manifests as the cluster would, before anything runs.

    The CRD's openAPI schema (unknown fields included), the DelegationTarget when a cluster is reachable,
    and the operator URI (known to the target when that can be known). One line per problem; exit 2 when
    any object is invalid, 0 when all are (warnings included).
    """
    raise typer.Exit(lint_files(session(), files, namespace, offline))


def register(app: typer.Typer) -> None:
    add(app, lint)
