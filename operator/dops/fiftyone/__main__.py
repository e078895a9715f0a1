"""`python -m dops.fiftyone ARGS...`: FiftyOne's own command line with the bridge installed.

`python -m dops.fiftyone delegated list` is `fiftyone delegated list` over DelegatedOperation resources (the
kubeconfig's cluster; namespace: DOPS_FIFTYONE_NAMESPACE or the kubeconfig context's). Every `fiftyone`
command runs unchanged; only where delegated operations are stored differs, and the ids the `delegated`
commands take are resource names (FiftyOne would parse them as ObjectIds).
"""

from __future__ import annotations

import os
import sys


def _operation_id(value: object) -> str:
    """An id given on the command line, as the bridge takes it: the resource name (`name` or `ns/name`)."""
    return str(value)


def main(argv: list[str] | None = None) -> None:
    import fiftyone.core.cli as fiftyone_cli

    from .repo import install

    install(namespace=os.environ.get("DOPS_FIFTYONE_NAMESPACE") or None)
    # FiftyOne's `delegated info|fail|delete|archive|rerun|output ID` parse ID with bson.ObjectId; dops' ids are
    # resource names, so in this process the command line hands them over as they are.
    fiftyone_cli.ObjectId = _operation_id
    sys.argv = ["fiftyone", *(sys.argv[1:] if argv is None else argv)]
    fiftyone_cli.main()


if __name__ == "__main__":
    main()
