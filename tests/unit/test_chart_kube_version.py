"""The chart's `kubeVersion` claim covers every API feature the CRDs use.

The real apiserver drops fields whose feature is off: on a cluster older than a feature's default-on
release, `selectableFields` would vanish from the CRD and every server-side field selector of the
service would fail with 400. So the floor the chart claims must be at least the newest feature's.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]
# CRD schema feature → first Kubernetes minor where it is on by default (beta or GA).
FEATURE_MINOR = {
    "x-kubernetes-validations": 25,
    "messageExpression": 27,
    "reason": 28,  # x-kubernetes-validations[].reason / fieldPath
    "fieldPath": 28,
    "optionalOldSelf": 30,
    "selectableFields": 31,
}


def _keys(node: Any) -> set[str]:
    if isinstance(node, dict):
        return set(node) | {k for value in node.values() for k in _keys(value)}
    if isinstance(node, list):
        return {k for item in node for k in _keys(item)}
    return set()


def test_kube_version_floor_covers_every_crd_feature() -> None:
    used: set[str] = set()
    for path in (REPO / "crds").glob("*.yaml"):
        for manifest in yaml.safe_load_all(path.read_text()):
            used |= _keys(manifest) & set(FEATURE_MINOR)
    assert "selectableFields" in used  # the service's server-side filters rely on it
    claim = yaml.safe_load((REPO / "helm" / "dops" / "Chart.yaml").read_text())["kubeVersion"]
    match = re.fullmatch(r">=1\.(\d+)\.0-0", claim)
    assert match, claim
    assert int(match.group(1)) >= max(FEATURE_MINOR[feature] for feature in used)
