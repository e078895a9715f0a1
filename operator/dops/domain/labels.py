"""Mirror labels: spec/status fields copied into `metadata.labels` for `kubectl get -l` and older clusters.

The run-state mirror (`dops.io/run-state`) costs a write of the main resource per state change (a status
write cannot touch labels). Where the API server serves the CRD's `selectableFields` (Kubernetes 1.31+, the
emulator), `--field-selector status.runState=...` does its job exactly and at no cost, so it is written only
in the `always` mode (`RunStateLabel`; the operator's `DOPS_RUN_STATE_LABEL`, `auto` deciding by asking the
server once). Without the mirror, a run-state label left from earlier is removed rather than left to lie.

Label values must be at most 63 characters of `[A-Za-z0-9._-]`, alphanumeric at both ends. Values
that qualify are used as they are; others are replaced by `h.` + the first 40 hex digits of their
SHA-256 (`label_value`). Operator URIs (`@org/plugin/op`) never qualify, so the operator label is always
the hash (`operator_label_value`), which makes it uniform to compute.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from typing import Any

from ..api import constants as c

RUN_STATE_LABEL_MODES = ("auto", "always", "never")


def mirrors_run_state(mode: str) -> bool:
    """Whether the run-state label is written in `mode` (an unresolved `auto` keeps it: the safe side)."""
    return mode != "never"


def resolve_run_state_label(mode: str, fields_selectable: bool | None) -> str:
    """`always` or `never` for `mode`: `auto` writes the label only where the server cannot select
    `status.runState` by field (`fields_selectable` False, or unknown: None)."""
    if mode != "auto":
        return mode
    return "never" if fields_selectable else "always"


_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
_HASH_PREFIX = "h."


def is_valid_label_value(value: str) -> bool:
    return len(value) <= c.MAX_LABEL_VALUE_CHARS and bool(_LABEL_VALUE.match(value))


def hash_value(value: str) -> str:
    return _HASH_PREFIX + hashlib.sha256(value.encode()).hexdigest()[:40]


def label_value(value: str) -> str:
    """`value` if it is a valid label value, else its hash (deterministic, valid, 42 characters)."""
    return value if is_valid_label_value(value) else hash_value(value)


def operator_label_value(operator: str) -> str:
    return hash_value(operator)


def mirror_labels(spec: Mapping[str, Any], run_state: str | None = None) -> dict[str, str]:
    """The dops labels for an operation with this spec (and run state, when known)."""
    labels = {c.MANAGED_BY_LABEL: c.MANAGED_BY}
    operator = spec.get("operator")
    if operator:
        labels[c.OPERATOR_LABEL] = operator_label_value(str(operator))
    target = spec.get("delegationTarget")
    if target:
        labels[c.TARGET_LABEL] = label_value(str(target))
    dataset_id = spec.get("datasetId")
    if dataset_id:
        labels[c.DATASET_ID_LABEL] = label_value(str(dataset_id))
    if run_state:
        labels[c.RUN_STATE_LABEL] = str(run_state)
    return labels


def labels_out_of_date(obj: Mapping[str, Any], *, run_state: bool = True) -> dict[str, str | None]:
    """A `metadata.labels` merge patch bringing the mirrors of `obj` up to date ({} when they are).

    The run-state mirror follows `status.runState` (with `run_state`; without, a run-state label is removed);
    the name-order marker is left alone.
    """
    meta = obj.get("metadata") or {}
    current: Mapping[str, str] = meta.get("labels") or {}
    state = (obj.get("status") or {}).get("runState") if run_state else None
    wanted: dict[str, str | None] = dict(mirror_labels(obj.get("spec") or {}, state))
    for key in (c.TARGET_LABEL, c.DATASET_ID_LABEL, c.RUN_STATE_LABEL):
        if key not in wanted and key in current:
            wanted[key] = None
    return {k: v for k, v in wanted.items() if current.get(k) != v}


def run_state_label_out_of_date(labels: Mapping[str, str] | None, state: str | None, *, run_state: bool) -> bool:
    """Whether the run-state label of an object with `labels` disagrees with run state `state` (only the
    run-state mirror: what a state change can make stale)."""
    current = (labels or {}).get(c.RUN_STATE_LABEL)
    wanted = state if run_state and state else None
    return current != wanted
