"""The dops Helm chart (helm/dops) installed with real helm into the embedded control plane (no operator runs).

Issue 6: "`helm upgrade` and `helm uninstall` work"; kind e2e "`helm upgrade` with a CRD change" — here on the
embedded control plane, which serves every kind the chart renders with default values (S9 / statement 62: helm
install/upgrade/uninstall through server-side apply).

Covered:
- `helm install` (logArchive.type emptyDir: the emulator binds no PVCs, see docs/GAPS.md) creates the CRDs,
  Established and annotated `helm.sh/resource-policy: keep`, the Deployment (2 replicas, RollingUpdate, args operator),
  the ServiceAccounts, the cluster-wide RBAC and the metrics Service;
- `helm upgrade` with a changed CRD (a new printer column in the chart's copy) updates the CRD in place — CRDs
  live in templates/, so upgrades reach them — and switching to watchNamespaces replaces the operator
  ClusterRole/ClusterRoleBinding with Roles/RoleBindings in the watched namespaces;
- `helm uninstall` removes every chart object but keeps the CRDs (and the DelegatedOperation in them).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.chart import CHART
from tests.helpers import CLI

pytestmark = [pytest.mark.helm, pytest.mark.kubectl]

NS = "dops-system"
CRDS = ("delegatedoperations.dops.io", "delegationpolicies.dops.io", "delegationtargets.dops.io")


def get_json(kubectl: CLI, *args: str) -> Any:
    return json.loads(kubectl.run("get", *args, "-o", "json").stdout)


def names(kubectl: CLI, kind: str, namespace: str | None = None) -> set[str]:
    scope = ["-n", namespace] if namespace else []
    items = get_json(kubectl, kind, *scope, "-l", "app.kubernetes.io/instance=dops")["items"]
    return {item["metadata"]["name"] for item in items}


def test_install_upgrade_with_crd_change_and_uninstall(helm: CLI, kubectl: CLI, tmp_path: Path) -> None:
    """S9 / statement 62 with the real chart: install, upgrade (CRD change + namespaced RBAC), uninstall keeps CRDs."""
    chart = tmp_path / "dops"
    shutil.copytree(CHART, chart)
    base = ["--namespace", NS, "--set", "logArchive.type=emptyDir"]
    out = helm.run("install", "dops", str(chart), "--create-namespace", *base)
    assert "STATUS: deployed" in out.stdout

    for name in CRDS:
        crd = get_json(kubectl, "crd", name)
        assert crd["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
        assert {c["type"]: c["status"] for c in crd["status"]["conditions"]}["Established"] == "True"
    dep = get_json(kubectl, "deployment", "dops", "-n", NS)
    assert dep["spec"]["replicas"] == 2 and dep["spec"]["strategy"]["type"] == "RollingUpdate"
    assert dep["spec"]["template"]["spec"]["containers"][0]["args"] == ["operator"]
    assert names(kubectl, "serviceaccounts", NS) == {"dops", "dops-worker"}
    people = {"dops-view", "dops-edit", "dops-admin"}  # aggregated into view/edit/admin, in every mode
    assert names(kubectl, "clusterroles") == {"dops-operator", "dops-kopf", "dops-worker", *people}
    assert names(kubectl, "clusterrolebindings") == {"dops-operator", "dops-kopf"}
    assert names(kubectl, "rolebindings", NS) == {"dops-worker", "dops-leader-election"}
    assert names(kubectl, "roles", NS) == {"dops-leader-election"}
    assert names(kubectl, "poddisruptionbudgets", NS) == {"dops-operator"}
    assert names(kubectl, "services", NS) == {"dops-metrics"}

    # An operation stored in the CRD survives everything below.
    op = {
        "apiVersion": "dops.io/v1alpha1",
        "kind": "DelegatedOperation",
        "metadata": {"name": "keep-me", "namespace": NS},
        "spec": {"operator": "@dops/examples/count"},
    }
    kubectl.run("create", "-f", "-", input=json.dumps(op))

    # A CRD change in the chart (what `cp crds/*.yaml helm/dops/files/crds/` brings) reaches the cluster on upgrade.
    crd_file = chart / "files" / "crds" / "dops.io_delegatedoperations.yaml"
    crd_doc = yaml.safe_load(crd_file.read_text())
    crd_doc["spec"]["versions"][0]["additionalPrinterColumns"].append(
        {"name": "Attempt", "type": "integer", "jsonPath": ".status.attempt", "priority": 1}
    )
    crd_file.write_text(yaml.safe_dump(crd_doc, sort_keys=False))
    kubectl.run("create", "namespace", "team-a")
    helm.run("upgrade", "dops", str(chart), *base, "--set", "watchNamespaces={team-a}")

    crd = get_json(kubectl, "crd", CRDS[0])
    assert "Attempt" in [c["name"] for c in crd["spec"]["versions"][0]["additionalPrinterColumns"]]
    assert names(kubectl, "clusterroles") == {"dops-kopf", *people}
    assert names(kubectl, "clusterrolebindings") == {"dops-kopf"}
    assert names(kubectl, "roles", "team-a") == {"dops-operator", "dops-worker"}
    assert names(kubectl, "rolebindings", "team-a") == {"dops-operator", "dops-worker"}
    assert names(kubectl, "serviceaccounts", "team-a") == {"dops-worker"}
    assert names(kubectl, "serviceaccounts", NS) == {"dops"}
    env = {
        e["name"]: e.get("value")
        for e in get_json(kubectl, "deployment", "dops", "-n", NS)["spec"]["template"]["spec"]["containers"][0]["env"]
    }
    assert env["DOPS_WATCH_NAMESPACES"] == "team-a"

    out = helm.run("uninstall", "dops", "--namespace", NS)
    assert "kept due to the resource policy" in out.stdout
    for kind, namespace in [
        ("deployments", NS),
        ("serviceaccounts", NS),
        ("services", NS),
        ("roles", NS),
        ("rolebindings", NS),
        ("poddisruptionbudgets", NS),
        ("clusterroles", None),
        ("clusterrolebindings", None),
        ("roles", "team-a"),
        ("rolebindings", "team-a"),
        ("serviceaccounts", "team-a"),
    ]:
        assert names(kubectl, kind, namespace) == set(), kind
    for name in CRDS:
        get_json(kubectl, "crd", name)
    assert get_json(kubectl, "delegatedoperations", "keep-me", "-n", NS)["metadata"]["name"] == "keep-me"
