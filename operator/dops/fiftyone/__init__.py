"""`dops.fiftyone`: FiftyOne's own delegated-operation machinery over DelegatedOperation resources.

Optional (`pip install 'dops[fiftyone]'`), never imported by the core packages (an import-linter contract
says so). Three parts:

- `DopsDelegatedOperationRepo` (`dops.fiftyone.repo`): a FiftyOne `DelegatedOperationRepo` whose store is
  the Kubernetes API, through dops' `DelegatedOperationService`. Every repo method returns FiftyOne's own
  `DelegatedOperationDocument`, so FiftyOne's service, SDK, CLI and App work on it unchanged.
- `install()` makes FiftyOne's `RepositoryFactory.delegated_operation_repo()` hand out that repo, so every
  `DelegatedOperationService()` FiftyOne builds queues `DelegatedOperation` resources;
  `install_from_env()` does it when `DOPS_FIFTYONE_BRIDGE=1`.
- `dops.fiftyone.worker`: the worker mode that runs FiftyOne plugin operators inside dops' Jobs
  (`DOPS_FIFTYONE_OPERATORS=1` in the worker's environment).

The names below are loaded on first use: the worker's operator resolver imports this package in every worker,
and importing FiftyOne takes seconds, so nothing imports it unless FiftyOne is actually wanted.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = ["DopsDelegatedOperationRepo", "install", "install_from_env", "installed", "uninstall"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        return getattr(importlib.import_module(".repo", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
