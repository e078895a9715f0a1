"""dops: Kubernetes-native delegated operations.

The FiftyOne-compatible API: `DelegatedOperationService` and the types its documents use.
Imports are lazy so that `import dops` (and `dops.emulator`) stay light.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_API_NAMES = (
    "DelegatedOperationDocument",
    "DelegatedOperationPagingParams",
    "ExecutionContext",
    "ExecutionProgress",
    "ExecutionResult",
    "ExecutionRunState",
    "OperationNotFound",
    "Pipeline",
    "PipelineRunInfo",
    "PipelineStage",
    "SortByField",
    "SortDirection",
)

if TYPE_CHECKING:  # for type checkers; at run time __getattr__ imports on first use
    from .api.types import (
        DelegatedOperationDocument as DelegatedOperationDocument,
    )
    from .api.types import (
        DelegatedOperationPagingParams as DelegatedOperationPagingParams,
    )
    from .api.types import (
        ExecutionContext as ExecutionContext,
    )
    from .api.types import (
        ExecutionProgress as ExecutionProgress,
    )
    from .api.types import (
        ExecutionResult as ExecutionResult,
    )
    from .api.types import (
        ExecutionRunState as ExecutionRunState,
    )
    from .api.types import (
        OperationNotFound as OperationNotFound,
    )
    from .api.types import (
        Pipeline as Pipeline,
    )
    from .api.types import (
        PipelineRunInfo as PipelineRunInfo,
    )
    from .api.types import (
        PipelineStage as PipelineStage,
    )
    from .api.types import (
        SortByField as SortByField,
    )
    from .api.types import (
        SortDirection as SortDirection,
    )
    from .service import DelegatedOperationService as DelegatedOperationService


def __getattr__(name: str) -> Any:
    if name == "DelegatedOperationService":
        from .service import DelegatedOperationService

        return DelegatedOperationService
    if name in _API_NAMES:
        from .api import types

        return getattr(types, name)
    raise AttributeError(f"module 'dops' has no attribute {name!r}")


__all__ = ["DelegatedOperationService", *_API_NAMES, "__version__"]
