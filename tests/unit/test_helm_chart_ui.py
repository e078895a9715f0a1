"""The chart's optional dashboard (`ui`, issue 14), rendered by the real helm binary; no cluster needed.

- off by default: nothing of it is rendered;
- on: a ServiceAccount that gets no token and is bound to nothing (no Role, RoleBinding, ClusterRole or binding
  names it), a Deployment running `dops ui --auth=passthrough --in-cluster` on 0.0.0.0 that mounts only the
  cluster CA (the kube-root-ca.crt ConfigMap), probes on /healthz, PodSecurity `restricted` with a read-only root
  filesystem, and a Service that selects the dashboard's pods only (the operator's Service and PDB do not select
  them);
- `--read-only` unless `ui.actions: true`; every namespace unless `ui.namespace` is set;
- the schema rejects unknown `ui` keys and bad values.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.chart import CHART, NAMESPACE, Doc, Rendered, helm_cli, parse, template
from tests.helpers import CLI, find_binary
from tests.unit.test_helm_chart import RESTRICTED_VOLUME_TYPES

pytestmark = pytest.mark.helm

UI = "dops-ui"
RBAC_KINDS = ("Role", "RoleBinding", "ClusterRole", "ClusterRoleBinding")


@pytest.fixture(scope="module")
def render(tmp_path_factory: pytest.TempPathFactory) -> Callable[..., Rendered]:
    binary = find_binary("helm")
    if binary is None:
        pytest.skip("helm binary not available: run `python scripts/fetch_clients.py` (make test does)")
    helm: CLI = helm_cli(binary, tmp_path_factory.mktemp("helm-home"))
    tmp = tmp_path_factory.mktemp("values")

    def _render(values: dict[str, Any] | None = None) -> Rendered:
        return parse(template(helm, values, tmp=tmp).stdout)

    return _render


def ui_objects(r: Rendered) -> list[Doc]:
    return [d for d in r.docs if (d["metadata"].get("labels") or {}).get("app.kubernetes.io/component") == "ui"]


def ui_container(r: Rendered) -> Doc:
    pod = r.one("Deployment", UI)["spec"]["template"]["spec"]
    [container] = pod["containers"]
    assert container["name"] == "ui"
    return dict(container)


def test_off_by_default(render: Callable[..., Rendered]) -> None:
    r = render()
    assert ui_objects(r) == []
    assert UI not in {d["metadata"]["name"] for d in r.docs}


def test_on_it_runs_passthrough_with_no_access_of_its_own(render: Callable[..., Rendered]) -> None:
    r = render({"ui": {"enabled": True}})
    assert sorted(f"{d['kind']}/{d['metadata']['name']}" for d in ui_objects(r)) == [
        f"Deployment/{UI}",
        f"Service/{UI}",
        f"ServiceAccount/{UI}",
    ]
    account = r.one("ServiceAccount", UI, NAMESPACE)
    assert account["automountServiceAccountToken"] is False
    pod = r.one("Deployment", UI, NAMESPACE)["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == UI and pod["automountServiceAccountToken"] is False
    # bound to nothing: no role or binding of the chart names the dashboard's ServiceAccount
    for doc in (d for d in r.docs if d["kind"] in RBAC_KINDS):
        subjects = doc.get("subjects") or []
        assert all(s.get("name") != UI for s in subjects), doc["metadata"]["name"]
        assert UI not in doc["metadata"]["name"], doc["metadata"]["name"]
    # the only cluster data it mounts is the CA of the API server (no token, no projected service account)
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["kube-api-ca"]["projected"]["sources"] == [
        {"configMap": {"name": "kube-root-ca.crt", "items": [{"key": "ca.crt", "path": "ca.crt"}]}}
    ]
    assert not any("secret" in v for v in volumes.values())
    container = ui_container(r)
    args = container["args"]
    assert args == ["ui", "--auth=passthrough", "--in-cluster", "--all-namespaces", "--read-only"]
    assert {e["name"]: e["value"] for e in container["env"]} == {"DOPS_UI_ADDRESS": "0.0.0.0", "DOPS_UI_PORT": "8080"}
    assert "command" not in container  # the image's entrypoint is dops
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    # the CA where in-cluster clients look for it, in a directory that holds no token
    assert mounts["/var/run/secrets/kubernetes.io/serviceaccount"] == "kube-api-ca"
    assert "emptyDir" in volumes[mounts["/tmp"]]
    for probe in ("readinessProbe", "livenessProbe"):
        assert container[probe]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert container["ports"] == [{"name": "http", "containerPort": 8080, "protocol": "TCP"}]


def test_restricted_pod_security(render: Callable[..., Rendered]) -> None:
    r = render({"ui": {"enabled": True}})
    pod = r.one("Deployment", UI)["spec"]["template"]["spec"]
    for volume in pod["volumes"]:
        assert set(volume) - {"name"} <= RESTRICTED_VOLUME_TYPES, volume
    sc, psc = ui_container(r)["securityContext"], pod["securityContext"]
    assert psc["runAsNonRoot"] is True and psc["seccompProfile"]["type"] == "RuntimeDefault"
    assert sc["allowPrivilegeEscalation"] is False and sc["readOnlyRootFilesystem"] is True
    assert sc["capabilities"]["drop"] == ["ALL"]


def test_service_selects_the_dashboard_only(render: Callable[..., Rendered]) -> None:
    r = render({"ui": {"enabled": True}})
    pod_labels = r.one("Deployment", UI)["spec"]["template"]["metadata"]["labels"]
    operator_labels = r.one("Deployment", "dops")["spec"]["template"]["metadata"]["labels"]
    service = r.one("Service", UI)
    selector = service["spec"]["selector"]
    assert selector.items() <= pod_labels.items() and not selector.items() <= operator_labels.items()
    assert service["spec"]["ports"] == [{"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"}]
    for doc in r.docs:  # the operator's metrics Service and PDB do not pick up the dashboard pod
        if doc["metadata"]["name"] == UI:
            continue
        chosen = (doc.get("spec") or {}).get("selector")
        chosen = chosen.get("matchLabels", chosen) if isinstance(chosen, dict) else None
        if chosen and doc["kind"] in ("Service", "PodDisruptionBudget"):
            assert not chosen.items() <= pod_labels.items(), doc["metadata"]["name"]


def test_actions_and_namespace_values(render: Callable[..., Rendered]) -> None:
    values = {"ui": {"enabled": True, "actions": True, "namespace": "team-a", "port": 9000, "service": {"port": 8080}}}
    r = render(values)
    args = ui_container(r)["args"]
    assert "--read-only" not in args  # actions, as far as each user's own token allows
    assert "--namespace=team-a" in args and "--all-namespaces" not in args
    assert {"name": "DOPS_UI_PORT", "value": "9000"} in ui_container(r)["env"]
    assert r.one("Service", UI)["spec"]["ports"][0]["port"] == 8080


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"ui": {"enabled": True, "bogus": 1}}, "bogus"),
        ({"ui": {"enabled": "yes"}}, "enabled"),
        ({"ui": {"namespace": "Not_A_Namespace"}}, "namespace"),
        ({"ui": {"port": 0}}, "port"),
        ({"ui": {"service": {"type": "Ingress"}}}, "type"),
    ],
)
def test_schema_rejects_bad_ui_values(values: dict[str, Any], message: str, tmp_path: Path) -> None:
    binary = find_binary("helm")
    if binary is None:
        pytest.skip("helm binary not available: run `python scripts/fetch_clients.py` (make test does)")
    result = template(helm_cli(binary, tmp_path / "home"), values, tmp=tmp_path, check=False)
    assert result.returncode != 0 and message in result.stderr, result.stderr


def test_notes_say_how_to_reach_it(tmp_path: Path) -> None:
    binary = find_binary("helm")
    if binary is None:
        pytest.skip("helm binary not available: run `python scripts/fetch_clients.py` (make test does)")
    helm = helm_cli(binary, tmp_path / "home")
    args = ("install", "dops", str(CHART), "--namespace", NAMESPACE, "--dry-run=client")
    notes = helm.run(*args, "--set", "ui.enabled=true").stdout.split("NOTES:", 1)[1]
    assert f"kubectl -n {NAMESPACE} port-forward svc/{UI} 8080:80" in notes and "your own token" in notes
    assert "read-only (ui.actions=false)" in notes
    assert "dashboard" not in helm.run(*args).stdout.split("NOTES:", 1)[1]  # off: not mentioned
