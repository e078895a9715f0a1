"""Operators the operator tests run through `py:tests.integration.operator_helpers:NAME` (the DelegationTarget
allows import paths; the kubelet's image map puts the repository on the worker's PYTHONPATH)."""

from __future__ import annotations

from typing import Any


def big_result(ctx: Any) -> dict[str, str]:
    """Returns 10 MiB of JSON: more than a status can hold."""
    return {"blob": "x" * (10 * 1024 * 1024)}


def print_and_return(ctx: Any) -> dict[str, int]:
    """Prints a recognisable line (for log archive tests) and returns."""
    print("operator-helpers: hello from the worker pod", flush=True)
    return {"printed": 1}
