"""Kopf glue of the dops operator: `kopf run -m dops.handlers`, or `run_operator()` (what `dops operator` calls).

Importing this package registers the handlers (`dops.handlers.operator`) in Kopf's default registry.
"""

from __future__ import annotations

from . import operator
from .runner import run_operator
from .runtime import Runtime

__all__ = ["Runtime", "operator", "run_operator"]
