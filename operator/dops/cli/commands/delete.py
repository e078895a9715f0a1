"""`dops delete NAME…`: delete operations (their Jobs and pods go with them).

Deleting one named operation is explicit enough; deleting several at once is a bulk deletion, which
asks first on a terminal and needs `--yes` elsewhere (`dops.cli.confirm`), as `dops cleanup` does.
"""

from __future__ import annotations

from typing import Annotated

import typer

from ...api.types import DelegatedOperationDocument, ExecutionRunState
from ...service import DelegatedOperationService
from ..command import register as add
from ..confirm import YesOption, confirm, require_consent
from ..errors import CliError
from ..ops import for_each
from ..options import NamespaceOption
from ..session import session


def delete(
    names: Annotated[list[str], typer.Argument(help="Operation names (or NAMESPACE/NAME).", show_default=False)],
    force: Annotated[
        bool, typer.Option("--force", help="Delete running operations too (their pods are stopped).")
    ] = False,
    yes: YesOption = False,
    namespace: NamespaceOption = None,
) -> None:
    """Delete operations. Running operations are refused unless --force (as FiftyOne's CLI refuses them).

    Deleting several operations asks for confirmation on a terminal; elsewhere --yes is required.
    """
    sess = session()
    if len(names) > 1:
        require_consent(yes, f"this deletes {len(names)} operations")
        confirm(f"Delete {len(names)} operations ({', '.join(names)})?", yes)

    def action(svc: DelegatedOperationService, doc: DelegatedOperationDocument) -> str:
        assert doc.id is not None
        if doc.run_state is ExecutionRunState.RUNNING and not force:
            raise CliError(f'operation "{doc.id}" is running: fail it first (dops fail) or use --force')
        svc.delete_operation(doc.id)
        return f"operation {doc.id} deleted"

    raise typer.Exit(for_each(sess, names, namespace, action))


def register(app: typer.Typer) -> None:
    add(app, delete)
