"""DelegatedOperation resources: building a new operation, rerun copies, and spec/label patches (pure).

Input validation lives here so that bad input is refused with a clear ValueError before any
request is made: operator URIs, labels, delegation-target names, JSON-ness of context/metadata.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Mapping
from typing import Any

from ..api import constants as c
from ..api.types import Pipeline
from .labels import mirror_labels
from .names import validate_name

JSON = dict[str, Any]
_OPERATOR = re.compile(r"^\S+$")
# Run-policy fields copied on rerun and accepted by `new_operation(policy=...)`, with their bounds.
POLICY_FIELDS: Mapping[str, tuple[int, int]] = {
    "timeoutSeconds": (1, 2_592_000),
    "retries": (0, 20),
    "ttlSecondsAfterFinished": (0, 31_536_000),
    "priority": (-1000, 1000),
}
# Spec fields a rerun copies (FiftyOne: label, target, context, metadata, pipeline, rerunnable; plus dops' own).
RERUN_FIELDS = (
    "operator",
    "label",
    "delegationTarget",
    "context",
    "datasetId",
    "inputsSchema",
    "metadata",
    "pipeline",
    "rerunnable",
    *POLICY_FIELDS,
)


def validate_operator(operator: object) -> str:
    if not isinstance(operator, str) or not operator:
        raise ValueError(f"operator must be a non-empty operator URI string, not {operator!r}")
    if len(operator) > c.MAX_OPERATOR_CHARS or not _OPERATOR.match(operator):
        raise ValueError(
            f"invalid operator URI {operator!r}: must be at most {c.MAX_OPERATOR_CHARS} characters without whitespace"
        )
    return operator


def validate_label(label: object) -> str:
    if not isinstance(label, str):
        raise ValueError(f"label must be a string, not {type(label).__name__}")
    if len(label) > c.MAX_LABEL_CHARS:
        raise ValueError(f"label is longer than {c.MAX_LABEL_CHARS} characters")
    return label


def validate_target(target: object) -> str | None:
    """None or "" = the default target (kept apart: FiftyOne stores and returns "" as given); otherwise the
    name of a DelegationTarget (DNS-1123 subdomain)."""
    if target is None or target == "":
        return None if target is None else ""
    return validate_name(target, "delegation_target")


def _json_copy(value: Any, what: str) -> Any:
    try:
        return json.loads(json.dumps(value, allow_nan=False))
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{what} must be JSON-serializable: {exc}") from exc


def persisted_request_params(request_params: Mapping[str, Any]) -> JSON:
    """What FiftyOne persists of a context: a copy of request_params without `params.panel_state`.

    Unlike FiftyOne, the caller's dicts are not mutated.
    """
    params = dict(request_params)
    inner = params.get("params")
    if isinstance(inner, Mapping) and "panel_state" in inner:
        params["params"] = {k: v for k, v in inner.items() if k != "panel_state"}
    for transient in ("run_doc", "target", "results"):
        params.pop(transient, None)
    copied: JSON = _json_copy(params, "context request_params")
    return copied


def split_metadata(metadata: Mapping[str, Any] | None) -> tuple[JSON | None, JSON]:
    """FiftyOne metadata → (spec.inputsSchema, spec.metadata with the other keys)."""
    if metadata is None:
        return None, {}
    if not isinstance(metadata, Mapping):
        raise ValueError(f"metadata must be a dict, not {type(metadata).__name__}")
    rest: JSON = _json_copy(dict(metadata), "metadata")
    inputs = rest.get("inputs_schema")
    if isinstance(inputs, dict):
        del rest["inputs_schema"]
        return inputs, rest
    return None, rest


def validate_policy(policy: Mapping[str, Any] | None) -> JSON:
    out: JSON = {}
    for key, value in (policy or {}).items():
        if key not in POLICY_FIELDS:
            raise ValueError(f"unknown run-policy field {key!r} (expected one of {', '.join(POLICY_FIELDS)})")
        low, high = POLICY_FIELDS[key]
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise ValueError(f"{key} must be an integer between {low} and {high}, not {value!r}")
        out[key] = value
    return out


def build_spec(
    *,
    operator: str,
    label: str | None = None,
    delegation_target: str | None = None,
    request_params: Mapping[str, Any] | None = None,
    dataset_id: str | None = None,
    metadata: Mapping[str, Any] | None = None,
    pipeline: Any = None,
    rerunnable: bool = True,
    parent_id: str | None = None,
    policy: Mapping[str, Any] | None = None,
) -> JSON:
    """The spec of a new operation from FiftyOne's `queue_operation` arguments (validated)."""
    operator = validate_operator(operator)
    spec: JSON = {"operator": operator, "label": validate_label(label) if label else operator}
    target = validate_target(delegation_target)
    if target is not None:
        spec["delegationTarget"] = target  # "" reads back as "" (FiftyOne) and runs on the default target
    spec["context"] = persisted_request_params(request_params or {})
    if dataset_id is not None and dataset_id != "":
        dataset = str(dataset_id)
        if len(dataset) > 256:
            raise ValueError("dataset_id is longer than 256 characters")
        spec["datasetId"] = dataset
    if parent_id:
        spec["parentId"] = validate_name(parent_id, "parent_id")
    inputs_schema, rest = split_metadata(metadata)
    if inputs_schema is not None:
        spec["inputsSchema"] = inputs_schema
    if rest:
        spec["metadata"] = rest
    parsed = Pipeline.from_json(pipeline)
    if parsed is not None:
        spec["pipeline"] = _json_copy(parsed.to_resource(), "pipeline")
    if not isinstance(rerunnable, bool):
        raise ValueError(f"rerunnable must be a bool, not {type(rerunnable).__name__}")
    spec["rerunnable"] = rerunnable
    spec.update(validate_policy(policy))
    return spec


def operation_resource(
    name: str, namespace: str, spec: Mapping[str, Any], *, name_ordered: bool = False, run_state: bool = True
) -> JSON:
    """The DelegatedOperation to create. `name_ordered` marks a dops-generated name (see NAME_ORDER_LABEL);
    `run_state`: whether it carries the run-state mirror label (see `dops.domain.labels`)."""
    validate_name(name, "operation name")
    validate_operator(spec.get("operator"))
    labels = mirror_labels(spec, "queued" if run_state else None)
    if name_ordered:
        labels[c.NAME_ORDER_LABEL] = c.NAME_ORDER_QUEUED_AT
    return {
        "apiVersion": c.API_VERSION,
        "kind": c.KIND,
        "metadata": {"name": name, "namespace": namespace, "labels": labels},
        "spec": copy.deepcopy(dict(spec)),
    }


def rerun_spec(resource: Mapping[str, Any]) -> JSON:
    """The spec of a rerun of `resource`; ValueError when FiftyOne refuses the rerun.

    Copied: operator, label, target, context, dataset, inputs schema, metadata, pipeline, rerunnable
    and run policy. Fresh: pin, archive, status. (FiftyOne also copies a stale outputs_schema; dops
    does not, since outputs belong to the new run.)
    """
    spec = resource.get("spec") or {}
    name = (resource.get("metadata") or {}).get("name")
    if spec.get("rerunnable") is False:
        raise ValueError(f"Operation {name} is not marked as rerunnable")
    if spec.get("parentId"):
        raise ValueError("Rerunning pipeline child operations is not supported in the SDK.")
    return {k: copy.deepcopy(spec[k]) for k in RERUN_FIELDS if k in spec}


def spec_patch(**fields: Any) -> JSON:
    """A merge patch of spec fields (label, pinned, archived), validated."""
    spec: JSON = {}
    for key, value in fields.items():
        if key == "label":
            spec["label"] = validate_label(value)
        elif key in ("pinned", "archived"):
            if not isinstance(value, bool):
                raise ValueError(f"{key} must be a bool, not {type(value).__name__}")
            spec[key] = value
        else:
            raise ValueError(f"spec field {key!r} cannot be patched")
    return {"spec": spec}


def labels_patch(labels: Mapping[str, str | None]) -> JSON:
    """A merge patch of metadata.labels (None removes a label)."""
    return {"metadata": {"labels": dict(labels)}}
