"""The FiftyOne-compatible service layer: `DelegatedOperationService` over the Kubernetes gateway."""

from __future__ import annotations

from .delegated import DelegatedOperationService

__all__ = ["DelegatedOperationService"]
