"""The dops Helm chart (helm/dops), rendered by the real helm binary; no cluster needed.

Issue 6 acceptance: "`helm lint helm/dops` and `helm template` with default and non-default values pass; the rendered
RBAC contains no wildcard verbs/resources and no secrets access (asserted by a test that walks the rendered YAML)".

Covered:
- `helm lint` and `helm lint --strict` are clean (no WARNING/ERROR), with default and non-default values;
- Chart.yaml: apiVersion v2, appVersion = the Python package version; the default image is the settings contract's
  default worker image;
- every kind rendered is one the embedded control plane serves (ServiceMonitor only when enabled);
- the operator Deployment: 2 replicas, `RollingUpdate` (surge 1, none unavailable), leader election on (Lease RBAC
  in the release namespace only, POD_NAME identity), a PodDisruptionBudget, replicas kept on the node of a
  ReadWriteOnce log PVC or spread over nodes otherwise, `args: ["operator"]` with no `command` (the image entrypoint
  `dops`), probes on the health port at /healthz, the metrics port, /tmp and the log archive volumes;
- PodSecurity `restricted` (+ read-only root filesystem) on every container and init container of every pod spec;
- the DOPS_* environment: only the settings contract's variables, each exactly once, every one present, values
  derived from values.yaml (default and non-default), and, once `dops.domain.settings` exists, parsed cleanly by
  `OperatorSettings.from_env`;
- RBAC walker over every scenario: no wildcard apiGroups/resources/verbs/resourceNames, no nonResourceURLs, nothing
  on secrets, no pods/exec|attach|portforward|proxy, no escalate/bind/impersonate, no dangling roleRef;
- the exact effective permissions of the operator and worker ServiceAccounts, per namespace and cluster-wide:
  cluster-wide mode → ClusterRole/ClusterRoleBinding; watchNamespaces → Roles/RoleBindings in each namespace only
  (plus the read-only Kopf ClusterRole); workers only in their own namespace, never cluster-wide;
- metrics Service selects the operator pod and targets its metrics port; ServiceMonitor only when enabled;
  metrics.port 0 removes port, Service and ServiceMonitor;
- log archive: pvc (created or existingClaim), emptyDir, url (no volume, DOPS_LOG_ARCHIVE = the URL);
- CRDs: rendered with `helm.sh/resource-policy: keep` by default, without it when crds.keep is false, absent when
  crds.install is false (byte drift against crds/ is tests/unit/test_chart_crds_drift.py);
- values.schema.json rejects bad values (maxConcurrent 0, unknown top-level key, an integer image tag, unknown
  log archive type, url without URL, out-of-range port, bad namespace name, …) and the templates refuse a metrics
  port equal to the health port;
- NOTES.txt (rendered by a client-side dry-run install).
"""

from __future__ import annotations

import tomllib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.chart import CHART, NAMESPACE, REPO, Doc, Rendered, helm_cli, parse, template
from tests.helpers import CLI, find_binary

pytestmark = pytest.mark.helm

# The operator settings contract (dops.domain.settings.OperatorSettings.from_env): env var → field.
CONTRACT: dict[str, str] = {
    "DOPS_WATCH_NAMESPACES": "watch_namespaces",
    "DOPS_WORKER_IMAGE": "worker_image",
    "DOPS_WORKER_SERVICE_ACCOUNT": "worker_service_account",
    "DOPS_DEFAULT_MAX_CONCURRENT": "default_max_concurrent",
    "DOPS_GLOBAL_MAX_CONCURRENT": "global_max_concurrent",
    "DOPS_DEFAULT_TIMEOUT_SECONDS": "default_timeout_seconds",
    "DOPS_DEFAULT_RETRIES": "default_retries",
    "DOPS_RUN_LINK_TEMPLATE": "run_link_template",
    "DOPS_API_SERVER_URL": "api_server_url",
    "DOPS_LOG_ARCHIVE": "log_archive",
    "DOPS_TTL_SECONDS_AFTER_FINISHED": "ttl_seconds_after_finished",
    "DOPS_JOB_TTL_SECONDS": "job_ttl_seconds",
    "DOPS_IMAGE_PULL_GRACE_SECONDS": "image_pull_grace_seconds",
    "DOPS_ALLOW_IMPORT_PATHS": "allow_import_paths",
    "DOPS_RECONCILE_INTERVAL_SECONDS": "reconcile_interval_seconds",
    "DOPS_METRICS_PORT": "metrics_port",
    "DOPS_HEALTH_PORT": "health_port",
    "DOPS_WATCH_STALE_SECONDS": "watch_stale_seconds",
    "DOPS_LEADER_ELECTION": "leader_election",
    "DOPS_LEADER_ELECTION_LEASE_NAME": "leader_election_lease_name",
    "DOPS_LEASE_DURATION_SECONDS": "lease_duration_seconds",
    "DOPS_LEASE_RENEW_DEADLINE_SECONDS": "lease_renew_deadline_seconds",
    "DOPS_LEASE_RETRY_PERIOD_SECONDS": "lease_retry_period_seconds",
}
# Not passed by the chart on purpose: DOPS_LEADER_ELECTION_NAMESPACE and DOPS_LEADER_ELECTION_IDENTITY default to
# the downward API's POD_NAMESPACE (the release namespace) and POD_NAME.
CONTRACT_DEFAULT_WORKER_IMAGE = "ghcr.io/dops-dev/dops:0.1.0"
LOG_DIR = "/var/lib/dops/logs"

# Expected permissions: (apiGroup, resource) → verbs.
Perms = dict[tuple[str, str], set[str]]
OPERATOR: Perms = {
    ("dops.io", "delegatedoperations"): {"get", "list", "watch", "patch", "delete"},
    ("dops.io", "delegatedoperations/status"): {"get", "patch"},
    # blockOwnerDeletion on the Jobs' ownerReferences (OwnerReferencesPermissionEnforcement)
    ("dops.io", "delegatedoperations/finalizers"): {"update"},
    ("dops.io", "delegationtargets"): {"get", "list", "watch"},
    ("batch", "jobs"): {"create", "get", "list", "watch", "patch", "delete"},
    ("", "pods"): {"get", "list", "watch"},
    ("", "pods/log"): {"get"},
    # list: the start deadline reads a Job's FailedCreate Events to say why it got no pod
    ("", "events"): {"create", "patch", "list"},
}
# The Lease of leader election, in the release namespace only.
LEADER_ELECTION: Perms = {("coordination.k8s.io", "leases"): {"get", "create", "update"}}
KOPF_CLUSTER: Perms = {
    ("apiextensions.k8s.io", "customresourcedefinitions"): {"get", "list", "watch"},
    ("dops.io", "delegationpolicies"): {"list"},  # DelegationPolicies, judged before each admission (issue 13)
}
KOPF_NAMESPACES: Perms = {("", "namespaces"): {"list", "watch"}}
# issue 13: no patch on the operation itself (spec, labels, finalizers), no targets, no pods; which status a worker
# may patch is narrowed to its own operation's by the chart's ValidatingAdmissionPolicy.
WORKER: Perms = {
    ("dops.io", "delegatedoperations"): {"get"},
    ("dops.io", "delegatedoperations/status"): {"get", "patch"},
}
CLUSTER = "<cluster>"
Grant = tuple[str, str, str, str]  # (scope: namespace or CLUSTER, apiGroup, resource, verb)

NAMESPACED_VALUES: dict[str, Any] = {
    "image": {"tag": "1.2.3"},
    "imagePullSecrets": [{"name": "regcred"}],
    "watchNamespaces": ["team-a", "team-b"],
    "defaultTarget": {
        "image": "registry.example/dops-worker:2",
        "maxConcurrent": 3,
        "timeoutSeconds": 3600,
        "retries": 2,
    },
    "globalMaxConcurrent": 20,
    "runLinkTemplate": "https://grafana.example/explore?ns={namespace}&pod={pod}",
    "apiServerUrl": "https://k8s.example:6443",
    "logArchive": {"type": "url", "url": "s3://dops-logs/archive"},
    "retention": {"ttlSecondsAfterFinished": 2592000, "jobTtlSeconds": 300},
    "allowImportPaths": True,
    "imagePullGraceSeconds": 60,
    "reconcileIntervalSeconds": 30,
    "watchStaleSeconds": 600,
    "metrics": {"port": 9090, "serviceMonitor": {"enabled": True, "interval": "15s", "labels": {"release": "prom"}}},
    "health": {"port": 9091},
    "crds": {"install": False},
    "workerServiceAccount": {"name": "runner"},
    "priorityClassName": "dops-high",
    "nodeSelector": {"kubernetes.io/os": "linux"},
    "extraEnv": [{"name": "AWS_REGION", "value": "eu-west-1"}],
}
CLUSTERWIDE_VALUES: dict[str, Any] = {
    "workerServiceAccount": {"namespaces": ["ml", NAMESPACE]},
    "serviceAccount": {
        "name": "custom-operator",
        "annotations": {"eks.amazonaws.com/role-arn": "arn:aws:iam::1:role/x"},
    },
    "logArchive": {"type": "emptyDir"},
    "crds": {"keep": False},
    "metrics": {"port": 0},
}
BYO_VALUES: dict[str, Any] = {
    "rbac": {"create": False},
    "serviceAccount": {"create": False, "name": "preexisting"},
    "workerServiceAccount": {"create": False},
    "logArchive": {"pvc": {"create": False, "existingClaim": "my-logs"}},
}
SCENARIOS: dict[str, dict[str, Any] | None] = {
    "default": None,
    "namespaced": NAMESPACED_VALUES,
    "clusterwide": CLUSTERWIDE_VALUES,
    "byo": BYO_VALUES,
}


@pytest.fixture(scope="module")
def helm(tmp_path_factory: pytest.TempPathFactory) -> CLI:
    binary = find_binary("helm")
    if binary is None:
        pytest.skip("helm binary not available: run `python scripts/fetch_clients.py` (make test does)")
    return helm_cli(binary, tmp_path_factory.mktemp("helm-home"))


@pytest.fixture(scope="module")
def render(helm: CLI, tmp_path_factory: pytest.TempPathFactory) -> Callable[..., Any]:
    tmp = tmp_path_factory.mktemp("values")

    def _render(values: dict[str, Any] | None = None, *args: str, check: bool = True) -> Any:
        return template(helm, values, *args, tmp=tmp, check=check)

    return _render


@pytest.fixture(scope="module")
def rendered(render: Callable[..., Any]) -> dict[str, Rendered]:
    """Every scenario rendered once for the whole module."""
    return {name: parse(render(values).stdout) for name, values in SCENARIOS.items()}


def deployment(r: Rendered) -> Doc:
    return r.one("Deployment")


def container(r: Rendered) -> Doc:
    containers = deployment(r)["spec"]["template"]["spec"]["containers"]
    assert [c["name"] for c in containers] == ["operator"]
    return containers[0]


def env_of(r: Rendered) -> dict[str, str]:
    return {e["name"]: e.get("value", "") for e in container(r).get("env", []) if "value" in e}


def chart_yaml() -> Doc:
    return yaml.safe_load((CHART / "Chart.yaml").read_text())


def pyproject() -> Doc:
    return tomllib.loads((REPO / "pyproject.toml").read_text())


# --- lint ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("strict", [False, True], ids=["lint", "lint-strict"])
def test_helm_lint_is_clean(helm: CLI, strict: bool) -> None:
    """Issue 6: `helm lint helm/dops` passes (and `--strict`): no WARNING or ERROR findings."""
    result = helm.run("lint", str(CHART), *(["--strict"] if strict else []), check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 chart(s) linted, 0 chart(s) failed" in result.stdout
    assert "[WARNING]" not in result.stdout and "[ERROR]" not in result.stdout, result.stdout


def test_helm_lint_strict_with_non_default_values(helm: CLI, tmp_path: Path) -> None:
    """Issue 6: lint also passes with the non-default values the other tests render."""
    for name, values in SCENARIOS.items():
        if values is None:
            continue
        path = tmp_path / f"{name}.yaml"
        path.write_text(yaml.safe_dump(values))
        result = helm.run("lint", str(CHART), "--strict", "--values", str(path), check=False)
        assert result.returncode == 0, f"{name}:\n{result.stdout}{result.stderr}"
        assert "[WARNING]" not in result.stdout and "[ERROR]" not in result.stdout, result.stdout


def test_chart_metadata_matches_the_package() -> None:
    """Chart.yaml: apiVersion v2, appVersion = pyproject version; the default image is the contract's worker image."""
    chart = chart_yaml()
    assert chart["apiVersion"] == "v2"
    assert chart["name"] == "dops"
    assert str(chart["appVersion"]) == pyproject()["project"]["version"] == "0.1.0"
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    assert f"{values['image']['repository']}:{chart['appVersion']}" == CONTRACT_DEFAULT_WORKER_IMAGE


# --- what is rendered ---------------------------------------------------------------------------------------


def test_default_render_objects(rendered: dict[str, Rendered]) -> None:
    """Default values: cluster-wide RBAC, operator + worker ServiceAccounts, log PVC, metrics Service, both CRDs."""
    assert rendered["default"].summary() == sorted(
        [
            "ClusterRole//dops-admin",
            "ClusterRole//dops-edit",
            "ClusterRole//dops-kopf",
            "ClusterRole//dops-operator",
            "ClusterRole//dops-view",
            "ClusterRole//dops-worker",
            "ClusterRoleBinding//dops-kopf",
            "ClusterRoleBinding//dops-operator",
            "CustomResourceDefinition//delegatedoperations.dops.io",
            "CustomResourceDefinition//delegationpolicies.dops.io",
            "CustomResourceDefinition//delegationtargets.dops.io",
            f"Deployment/{NAMESPACE}/dops",
            f"PersistentVolumeClaim/{NAMESPACE}/dops-logs",
            f"PodDisruptionBudget/{NAMESPACE}/dops-operator",
            f"Role/{NAMESPACE}/dops-leader-election",
            f"RoleBinding/{NAMESPACE}/dops-leader-election",
            f"RoleBinding/{NAMESPACE}/dops-worker",
            f"Service/{NAMESPACE}/dops-metrics",
            f"ServiceAccount/{NAMESPACE}/dops",
            f"ServiceAccount/{NAMESPACE}/dops-worker",
            "ValidatingAdmissionPolicy//dops-worker-own-operation",
            "ValidatingAdmissionPolicyBinding//dops-worker-own-operation",
            "ValidatingAdmissionPolicy//dops-target-policy",
            "ValidatingAdmissionPolicyBinding//dops-target-policy",
        ]
    )


def test_namespaced_render_objects(rendered: dict[str, Rendered]) -> None:
    """watchNamespaces set: Roles/RoleBindings per watched namespace, no operator ClusterRole, no CRDs."""
    r = rendered["namespaced"]
    assert r.summary() == sorted(
        [
            "ClusterRole//dops-admin",
            "ClusterRole//dops-edit",
            "ClusterRole//dops-kopf",
            "ClusterRole//dops-view",
            "ClusterRoleBinding//dops-kopf",
            f"Deployment/{NAMESPACE}/dops",
            f"PodDisruptionBudget/{NAMESPACE}/dops-operator",
            f"Role/{NAMESPACE}/dops-leader-election",
            f"RoleBinding/{NAMESPACE}/dops-leader-election",
            f"Service/{NAMESPACE}/dops-metrics",
            f"ServiceAccount/{NAMESPACE}/dops",
            f"ServiceMonitor/{NAMESPACE}/dops",
            "ValidatingAdmissionPolicy//dops-worker-own-operation",
            "ValidatingAdmissionPolicyBinding//dops-worker-own-operation",
            "ValidatingAdmissionPolicy//dops-target-policy",
            "ValidatingAdmissionPolicyBinding//dops-target-policy",
        ]
        + [
            f"{kind}/{ns}/{name}"
            for ns in ("team-a", "team-b")
            for kind, name in [
                ("Role", "dops-operator"),
                ("RoleBinding", "dops-operator"),
                ("Role", "dops-worker"),
                ("RoleBinding", "dops-worker"),
                ("ServiceAccount", "runner"),
            ]
        ]
    )


def test_every_rendered_kind_is_served_by_the_embedded_control_plane(rendered: dict[str, Rendered]) -> None:
    """The chart installs on `dops dev --no-operator`: every kind (but an opted-in ServiceMonitor) is built in."""
    from dops.emulator.kinds import BUILTIN_TYPES

    served = {(f"{t.group}/{t.version}" if t.group else t.version, t.kind) for t in BUILTIN_TYPES}
    for name, r in rendered.items():
        kinds = {(d["apiVersion"], d["kind"]) for d in r.docs}
        unserved = kinds - served
        expected = {("monitoring.coreos.com/v1", "ServiceMonitor")} if name == "namespaced" else set()
        assert unserved == expected, name


def test_common_labels(rendered: dict[str, Rendered]) -> None:
    """Every chart object carries the app.kubernetes.io/* labels (CRDs keep their own labels from crds/)."""
    for r in rendered.values():
        for doc in r.docs:
            if doc["kind"] == "CustomResourceDefinition":
                continue
            labels = doc["metadata"]["labels"]
            assert labels["app.kubernetes.io/name"] == "dops", doc["metadata"]
            assert labels["app.kubernetes.io/instance"] == "dops"
            assert labels["app.kubernetes.io/managed-by"] == "Helm"
            assert labels["app.kubernetes.io/version"] == "0.1.0"
            assert labels["app.kubernetes.io/part-of"] == "dops"
            assert labels["app.kubernetes.io/component"] in {"operator", "worker", "user-roles", "policy"}


# --- the operator Deployment --------------------------------------------------------------------------------


def test_operator_deployment_shape(rendered: dict[str, Rendered]) -> None:
    """Issue 6 and issue 11 item 13: 2 replicas (one leads), RollingUpdate, `dops operator` via the image entrypoint,
    probes (startup, liveness, readiness) and metrics port."""
    r = rendered["default"]
    dep = deployment(r)
    assert dep["spec"]["replicas"] == 2
    assert dep["spec"]["strategy"] == {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}}
    pod = dep["spec"]["template"]
    assert dep["spec"]["selector"]["matchLabels"].items() <= pod["metadata"]["labels"].items()
    assert pod["spec"]["serviceAccountName"] == r.one("ServiceAccount", "dops")["metadata"]["name"]
    c = container(r)
    assert "command" not in c, "the image ENTRYPOINT (dops) runs; the emulator's image map substitutes it in dev"
    assert c["args"] == ["operator"]
    assert c["image"] == CONTRACT_DEFAULT_WORKER_IMAGE
    assert c["imagePullPolicy"] == "IfNotPresent"
    ports = {p["name"]: p["containerPort"] for p in c["ports"]}
    assert ports == {"health": 8081, "metrics": 8080}
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        assert c[probe]["httpGet"] == {"path": "/healthz", "port": "health"}, probe
    assert c["startupProbe"]["periodSeconds"] * c["startupProbe"]["failureThreshold"] == 300
    downward = {e["name"]: e["valueFrom"]["fieldRef"]["fieldPath"] for e in c["env"] if "valueFrom" in e}
    assert downward == {"POD_NAMESPACE": "metadata.namespace", "POD_NAME": "metadata.name"}
    assert c["resources"]["requests"] and c["resources"]["limits"]["memory"]


def test_operator_deployment_non_default_values(rendered: dict[str, Rendered]) -> None:
    """Image tag, pull secrets, priority class, node selector, ports and extra env follow the values."""
    r = rendered["namespaced"]
    pod = deployment(r)["spec"]["template"]["spec"]
    c = container(r)
    assert c["image"] == "ghcr.io/dops-dev/dops:1.2.3"
    assert pod["imagePullSecrets"] == [{"name": "regcred"}]
    assert pod["priorityClassName"] == "dops-high"
    assert pod["nodeSelector"] == {"kubernetes.io/os": "linux"}
    assert {p["name"]: p["containerPort"] for p in c["ports"]} == {"health": 9091, "metrics": 9090}
    assert {"name": "AWS_REGION", "value": "eu-west-1"} in c["env"]
    custom = rendered["clusterwide"]
    assert deployment(custom)["spec"]["template"]["spec"]["serviceAccountName"] == "custom-operator"
    sa = custom.one("ServiceAccount", "custom-operator")
    assert sa["metadata"]["annotations"] == {"eks.amazonaws.com/role-arn": "arn:aws:iam::1:role/x"}
    byo = rendered["byo"]
    assert deployment(byo)["spec"]["template"]["spec"]["serviceAccountName"] == "preexisting"
    assert byo.of_kind("ServiceAccount") == []


RESTRICTED_VOLUME_TYPES = {
    "configMap",
    "csi",
    "downwardAPI",
    "emptyDir",
    "ephemeral",
    "persistentVolumeClaim",
    "projected",
    "secret",
}


def _containers(pod: Doc) -> Iterator[Doc]:
    for key in ("initContainers", "containers", "ephemeralContainers"):
        yield from pod.get(key) or []


@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_restricted_security_context_on_every_container(rendered: dict[str, Rendered], scenario: str) -> None:
    """PodSecurity `restricted` + read-only root filesystem with an emptyDir on /tmp, on every (init) container."""
    specs = list(rendered[scenario].pod_specs())
    assert specs, "no pod spec rendered"
    for ref, pod in specs:
        psc = pod.get("securityContext") or {}
        assert not any(pod.get(k) for k in ("hostNetwork", "hostPID", "hostIPC", "hostUsers")), ref
        volumes = {v["name"]: v for v in pod.get("volumes") or []}
        for volume in volumes.values():
            assert set(volume) - {"name"} <= RESTRICTED_VOLUME_TYPES, (ref, volume)
        for c in _containers(pod):
            where = f"{ref} container {c['name']}"
            sc = c.get("securityContext") or {}

            def effective(key: str, sc: Doc = sc, psc: Doc = psc) -> Any:
                return sc.get(key, psc.get(key))

            assert effective("runAsNonRoot") is True, where
            assert effective("runAsUser") == 65532, where
            assert sc.get("allowPrivilegeEscalation") is False, where
            assert sc.get("privileged", False) is False, where
            assert "ALL" in (sc.get("capabilities") or {}).get("drop", []), where
            assert not (sc.get("capabilities") or {}).get("add"), where
            assert (effective("seccompProfile") or {}).get("type") == "RuntimeDefault", where
            assert sc.get("readOnlyRootFilesystem") is True, where
            assert not any(p.get("hostPort") for p in c.get("ports") or []), where
            mounts = {m["mountPath"]: m["name"] for m in c.get("volumeMounts") or []}
            assert "/tmp" in mounts and "emptyDir" in volumes[mounts["/tmp"]], where


# --- environment (settings contract) ------------------------------------------------------------------------


@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_env_is_exactly_the_settings_contract(rendered: dict[str, Rendered], scenario: str) -> None:
    """Every DOPS_* variable is one of the contract's, none repeats, and the chart passes all of them."""
    names = [e["name"] for e in container(rendered[scenario]).get("env", [])]
    assert len(names) == len(set(names)), names
    dops_vars = {n for n in names if n.startswith("DOPS_")}
    assert dops_vars - CONTRACT.keys() == set(), "not in the settings contract"
    assert CONTRACT.keys() - dops_vars == set(), "contract variables the chart does not pass"


def test_env_defaults(rendered: dict[str, Rendered]) -> None:
    """Default values render the contract's defaults (worker image = operator image, log archive = the PVC dir)."""
    env = {k: v for k, v in env_of(rendered["default"]).items() if k.startswith("DOPS_")}
    assert env == {
        "DOPS_WATCH_NAMESPACES": "",
        "DOPS_WORKER_IMAGE": CONTRACT_DEFAULT_WORKER_IMAGE,
        "DOPS_WORKER_SERVICE_ACCOUNT": "dops-worker",
        "DOPS_DEFAULT_MAX_CONCURRENT": "10",
        "DOPS_GLOBAL_MAX_CONCURRENT": "100",
        "DOPS_DEFAULT_TIMEOUT_SECONDS": "0",
        "DOPS_DEFAULT_RETRIES": "0",
        "DOPS_RUN_LINK_TEMPLATE": "",
        "DOPS_API_SERVER_URL": "",
        "DOPS_LOG_ARCHIVE": LOG_DIR,
        "DOPS_TTL_SECONDS_AFTER_FINISHED": "0",
        "DOPS_JOB_TTL_SECONDS": "600",
        "DOPS_IMAGE_PULL_GRACE_SECONDS": "120",
        "DOPS_ALLOW_IMPORT_PATHS": "false",
        "DOPS_RECONCILE_INTERVAL_SECONDS": "60",
        "DOPS_METRICS_PORT": "8080",
        "DOPS_HEALTH_PORT": "8081",
        "DOPS_WATCH_STALE_SECONDS": "300",
        "DOPS_LEADER_ELECTION": "true",
        "DOPS_LEADER_ELECTION_LEASE_NAME": "dops-operator",
        "DOPS_LEASE_DURATION_SECONDS": "15",
        "DOPS_LEASE_RENEW_DEADLINE_SECONDS": "10",
        "DOPS_LEASE_RETRY_PERIOD_SECONDS": "2",
    }


def test_env_non_default(rendered: dict[str, Rendered]) -> None:
    """Non-default values reach the operator; large integers render as plain digits (not 2.592e+06)."""
    env = env_of(rendered["namespaced"])
    assert env["DOPS_WATCH_NAMESPACES"] == "team-a,team-b"
    assert env["DOPS_WORKER_IMAGE"] == "registry.example/dops-worker:2"
    assert env["DOPS_WORKER_SERVICE_ACCOUNT"] == "runner"
    assert env["DOPS_DEFAULT_MAX_CONCURRENT"] == "3"
    assert env["DOPS_GLOBAL_MAX_CONCURRENT"] == "20"
    assert env["DOPS_DEFAULT_TIMEOUT_SECONDS"] == "3600"
    assert env["DOPS_DEFAULT_RETRIES"] == "2"
    assert env["DOPS_RUN_LINK_TEMPLATE"] == "https://grafana.example/explore?ns={namespace}&pod={pod}"
    assert env["DOPS_API_SERVER_URL"] == "https://k8s.example:6443"
    assert env["DOPS_LOG_ARCHIVE"] == "s3://dops-logs/archive"
    assert env["DOPS_TTL_SECONDS_AFTER_FINISHED"] == "2592000"
    assert env["DOPS_JOB_TTL_SECONDS"] == "300"
    assert env["DOPS_IMAGE_PULL_GRACE_SECONDS"] == "60"
    assert env["DOPS_ALLOW_IMPORT_PATHS"] == "true"
    assert env["DOPS_RECONCILE_INTERVAL_SECONDS"] == "30"
    assert env["DOPS_WATCH_STALE_SECONDS"] == "600"
    assert env["DOPS_METRICS_PORT"] == "9090"
    assert env["DOPS_HEALTH_PORT"] == "9091"
    # The default worker image follows the operator image when defaultTarget.image is empty.
    assert env_of(rendered["byo"])["DOPS_WORKER_IMAGE"] == container(rendered["byo"])["image"]


@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_env_parses_with_the_operator_settings(rendered: dict[str, Rendered], scenario: str) -> None:
    """The operator's own parser accepts what the chart renders (skipped until dops.domain.settings lands)."""
    settings_module = pytest.importorskip("dops.domain.settings")
    env = {k: v for k, v in env_of(rendered[scenario]).items() if k.startswith("DOPS_")}
    settings = settings_module.OperatorSettings.from_env(env)
    assert tuple(settings.watch_namespaces) == tuple(ns for ns in env["DOPS_WATCH_NAMESPACES"].split(",") if ns)
    assert settings.worker_image == env["DOPS_WORKER_IMAGE"]
    assert settings.worker_service_account == env["DOPS_WORKER_SERVICE_ACCOUNT"]
    assert settings.log_archive == env["DOPS_LOG_ARCHIVE"]
    assert settings.default_max_concurrent == int(env["DOPS_DEFAULT_MAX_CONCURRENT"])
    assert settings.ttl_seconds_after_finished == int(env["DOPS_TTL_SECONDS_AFTER_FINISHED"])
    assert settings.metrics_port == int(env["DOPS_METRICS_PORT"])
    assert settings.health_port == int(env["DOPS_HEALTH_PORT"])
    assert settings.allow_import_paths is (env["DOPS_ALLOW_IMPORT_PATHS"] == "true")
    for field in CONTRACT.values():
        assert hasattr(settings, field), f"OperatorSettings has no field {field}"


# --- RBAC ---------------------------------------------------------------------------------------------------

FORBIDDEN_RESOURCES = {
    "secrets",
    "pods/exec",
    "pods/attach",
    "pods/portforward",
    "pods/proxy",
    "nodes/proxy",
    "services/proxy",
    "serviceaccounts/token",
}
ALLOWED_VERBS = {"get", "list", "watch", "create", "patch", "update", "delete"}


def _walk_strings(node: Any) -> Iterator[str]:
    if isinstance(node, str):
        yield node
    elif isinstance(node, dict):
        for value in node.values():
            yield from _walk_strings(value)
    elif isinstance(node, list):
        for value in node:
            yield from _walk_strings(value)


@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_rbac_has_no_wildcards_secrets_or_exec(rendered: dict[str, Rendered], scenario: str) -> None:
    """Issue 6: no wildcard verbs/resources/apiGroups anywhere, nothing on secrets, no pods/exec (walks all rules)."""
    r = rendered[scenario]
    for role in r.of_kind("Role") + r.of_kind("ClusterRole"):
        ref = f"{role['kind']}/{role['metadata']['name']}"
        assert "aggregationRule" not in role, ref
        assert role["rules"], ref
        for rule in role["rules"]:
            assert not any("*" in s for s in _walk_strings(rule)), (ref, rule)
            assert "nonResourceURLs" not in rule, (ref, rule)
            assert rule["apiGroups"] and rule["resources"] and rule["verbs"], (ref, rule)
            assert not set(rule["resources"]) & FORBIDDEN_RESOURCES, (ref, rule)
            assert set(rule["verbs"]) <= ALLOWED_VERBS, (ref, rule)
    for binding in r.of_kind("RoleBinding") + r.of_kind("ClusterRoleBinding"):
        assert binding["roleRef"]["name"] not in {"cluster-admin", "admin", "edit", "view"}, binding


def effective_grants(r: Rendered) -> dict[tuple[str, str], set[Grant]]:
    """(subject namespace, ServiceAccount name) → every (scope, apiGroup, resource, verb) its bindings grant."""
    roles = {(d["metadata"]["namespace"], d["metadata"]["name"]): d["rules"] for d in r.of_kind("Role")}
    cluster_roles = {d["metadata"]["name"]: d["rules"] for d in r.of_kind("ClusterRole")}
    grants: dict[tuple[str, str], set[Grant]] = {}
    bindings = [(b, b["metadata"]["namespace"]) for b in r.of_kind("RoleBinding")]
    bindings += [(b, CLUSTER) for b in r.of_kind("ClusterRoleBinding")]
    for binding, scope in bindings:
        ref = binding["roleRef"]
        assert ref["apiGroup"] == "rbac.authorization.k8s.io"
        rules = roles.get((scope, ref["name"])) if ref["kind"] == "Role" else cluster_roles.get(ref["name"])
        assert rules is not None, f"dangling roleRef in {binding['kind']}/{binding['metadata']['name']}: {ref}"
        for subject in binding["subjects"]:
            assert subject["kind"] == "ServiceAccount", subject
            key = (subject["namespace"], subject["name"])
            for rule in rules:
                for group in rule["apiGroups"]:
                    for resource in rule["resources"]:
                        for verb in rule["verbs"]:
                            grants.setdefault(key, set()).add((scope, group, resource, verb))
    return grants


def expand(scope: str, *perms: Perms) -> set[Grant]:
    return {(scope, g, res, v) for p in perms for (g, res), verbs in p.items() for v in verbs}


def test_cluster_wide_rbac_grants(rendered: dict[str, Rendered]) -> None:
    """Cluster-wide mode: the operator's exact set via ClusterRoleBinding; workers only in their own namespace."""
    r = rendered["default"]
    assert [d["metadata"]["name"] for d in r.of_kind("Role")] == ["dops-leader-election"]
    assert effective_grants(r) == {
        (NAMESPACE, "dops"): expand(CLUSTER, OPERATOR, KOPF_CLUSTER) | expand(NAMESPACE, LEADER_ELECTION),
        (NAMESPACE, "dops-worker"): expand(NAMESPACE, WORKER),
    }
    worker_role = r.one("ClusterRole", "dops-worker")
    bound = [b for b in r.of_kind("ClusterRoleBinding") if b["roleRef"]["name"] == "dops-worker"]
    assert worker_role and bound == [], "the worker ClusterRole is only ever bound per namespace"


def test_cluster_wide_worker_namespaces(rendered: dict[str, Rendered]) -> None:
    """workerServiceAccount.namespaces: worker ServiceAccount + RoleBinding in each (release namespace once)."""
    r = rendered["clusterwide"]
    grants = effective_grants(r)
    assert grants == {
        (NAMESPACE, "custom-operator"): expand(CLUSTER, OPERATOR, KOPF_CLUSTER) | expand(NAMESPACE, LEADER_ELECTION),
        (NAMESPACE, "dops-worker"): expand(NAMESPACE, WORKER),
        ("ml", "dops-worker"): expand("ml", WORKER),
    }
    assert {
        d["metadata"]["namespace"] for d in r.of_kind("ServiceAccount") if d["metadata"]["name"] == "dops-worker"
    } == {
        NAMESPACE,
        "ml",
    }


def test_namespaced_rbac_grants(rendered: dict[str, Rendered]) -> None:
    """watchNamespaces: operator Roles only in watched namespaces (+ read-only Kopf ClusterRole); no operator
    ClusterRole; worker ServiceAccounts and Roles in each watched namespace, each limited to its namespace."""
    r = rendered["namespaced"]
    names = sorted(d["metadata"]["name"] for d in r.of_kind("ClusterRole"))
    assert names == ["dops-admin", "dops-edit", "dops-kopf", "dops-view"]  # kopf's + the roles for people
    assert effective_grants(r) == {
        (NAMESPACE, "dops"): expand("team-a", OPERATOR)
        | expand("team-b", OPERATOR)
        | expand(CLUSTER, KOPF_CLUSTER, KOPF_NAMESPACES)
        | expand(NAMESPACE, LEADER_ELECTION),
        ("team-a", "runner"): expand("team-a", WORKER),
        ("team-b", "runner"): expand("team-b", WORKER),
    }


def test_rbac_create_false_renders_no_rbac(rendered: dict[str, Rendered]) -> None:
    """rbac.create false: no Role, ClusterRole or binding at all (bring your own)."""
    r = rendered["byo"]
    for kind in ("Role", "ClusterRole", "RoleBinding", "ClusterRoleBinding"):
        assert r.of_kind(kind) == [], kind


# --- metrics, log archive, CRDs -----------------------------------------------------------------------------


def test_metrics_service_selects_the_operator(rendered: dict[str, Rendered]) -> None:
    """The metrics Service selects the operator pod's labels and targets its named metrics port."""
    for name in ("default", "namespaced"):
        r = rendered[name]
        svc = r.one("Service")
        pod_labels = deployment(r)["spec"]["template"]["metadata"]["labels"]
        assert svc["spec"]["selector"].items() <= pod_labels.items()
        assert svc["spec"]["type"] == "ClusterIP"
        port_names = {p["name"] for p in container(r)["ports"]}
        assert [(p["name"], p["targetPort"]) for p in svc["spec"]["ports"]] == [("metrics", "metrics")]
        assert "metrics" in port_names
    assert rendered["default"].of_kind("ServiceMonitor") == []


def test_service_monitor_when_enabled(rendered: dict[str, Rendered]) -> None:
    """metrics.serviceMonitor.enabled: a monitoring.coreos.com/v1 ServiceMonitor for the metrics Service."""
    r = rendered["namespaced"]
    sm = r.one("ServiceMonitor")
    assert sm["apiVersion"] == "monitoring.coreos.com/v1"
    assert sm["metadata"]["labels"]["release"] == "prom"
    assert sm["spec"]["selector"]["matchLabels"].items() <= r.one("Service")["metadata"]["labels"].items()
    assert sm["spec"]["namespaceSelector"] == {"matchNames": [NAMESPACE]}
    assert sm["spec"]["endpoints"] == [{"port": "metrics", "path": "/metrics", "interval": "15s"}]


def test_metrics_port_zero_turns_metrics_off(rendered: dict[str, Rendered]) -> None:
    """metrics.port 0 (DOPS_METRICS_PORT=0): no metrics container port, no Service, no ServiceMonitor."""
    r = rendered["clusterwide"]
    assert [p["name"] for p in container(r)["ports"]] == ["health"]
    assert r.of_kind("Service") == [] and r.of_kind("ServiceMonitor") == []
    assert env_of(r)["DOPS_METRICS_PORT"] == "0"


def _log_volume(r: Rendered) -> Doc | None:
    pod = deployment(r)["spec"]["template"]["spec"]
    mounts = {m["mountPath"]: m["name"] for m in container(r)["volumeMounts"]}
    if LOG_DIR not in mounts:
        return None
    return next(v for v in pod["volumes"] if v["name"] == mounts[LOG_DIR])


def test_log_archive_modes(rendered: dict[str, Rendered]) -> None:
    """pvc (created), pvc (existingClaim), emptyDir and url log archives; the pod is fsGroup 65532 for writes."""
    default = rendered["default"]
    pvc = default.one("PersistentVolumeClaim", "dops-logs")
    assert pvc["spec"]["accessModes"] == ["ReadWriteOnce"]
    assert pvc["spec"]["resources"]["requests"]["storage"] == "1Gi"
    assert "storageClassName" not in pvc["spec"]
    assert _log_volume(default) == {"name": "logs", "persistentVolumeClaim": {"claimName": "dops-logs"}}
    assert deployment(default)["spec"]["template"]["spec"]["securityContext"]["fsGroup"] == 65532

    byo = rendered["byo"]
    assert byo.of_kind("PersistentVolumeClaim") == []
    assert _log_volume(byo) == {"name": "logs", "persistentVolumeClaim": {"claimName": "my-logs"}}
    assert env_of(byo)["DOPS_LOG_ARCHIVE"] == LOG_DIR

    empty = rendered["clusterwide"]
    assert empty.of_kind("PersistentVolumeClaim") == []
    assert _log_volume(empty) == {"name": "logs", "emptyDir": {}}
    assert env_of(empty)["DOPS_LOG_ARCHIVE"] == LOG_DIR

    url = rendered["namespaced"]
    assert url.of_kind("PersistentVolumeClaim") == []
    assert _log_volume(url) is None
    assert [v["name"] for v in deployment(url)["spec"]["template"]["spec"]["volumes"]] == ["tmp"]


def test_pvc_storage_class(render: Callable[..., Any]) -> None:
    """logArchive.pvc.storageClassName and size reach the created claim."""
    r = parse(render({"logArchive": {"pvc": {"size": "20Gi", "storageClassName": "fast"}}}).stdout)
    spec = r.one("PersistentVolumeClaim")["spec"]
    assert (spec["storageClassName"], spec["resources"]["requests"]["storage"]) == ("fast", "20Gi")


def test_crds_install_and_keep(rendered: dict[str, Rendered]) -> None:
    """CRDs are rendered by default with helm.sh/resource-policy keep; crds.keep false drops the annotation;
    crds.install false renders none."""
    names = {"delegatedoperations.dops.io", "delegationpolicies.dops.io", "delegationtargets.dops.io"}
    default = rendered["default"].of_kind("CustomResourceDefinition")
    assert {d["metadata"]["name"] for d in default} == names
    for crd in default:
        assert crd["metadata"]["annotations"] == {"helm.sh/resource-policy": "keep"}
    unkept = rendered["clusterwide"].of_kind("CustomResourceDefinition")
    assert {d["metadata"]["name"] for d in unkept} == names
    for crd in unkept:
        assert "helm.sh/resource-policy" not in (crd["metadata"].get("annotations") or {})
    assert rendered["namespaced"].of_kind("CustomResourceDefinition") == []


# --- values.schema.json -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--set", "defaultTarget.maxConcurrent=0"], "/defaultTarget/maxConcurrent"),
        (["--set", "unknownKey=1"], "additional properties 'unknownKey' not allowed"),
        (["--set", "image.tag=5"], "/image/tag"),
        (["--set", "image.pullPolicy=Sometimes"], "/image/pullPolicy"),
        (["--set", "logArchive.type=s3"], "/logArchive/type"),
        (["--set", "logArchive.type=url"], "/logArchive/url"),
        (["--set", "logArchive.pvc.create=false"], "/logArchive/pvc/existingClaim"),
        (["--set", "metrics.port=70000"], "/metrics/port"),
        (["--set", "health.port=0"], "/health/port"),
        (["--set", "globalMaxConcurrent=-1"], "/globalMaxConcurrent"),
        (["--set", "retention.jobTtlSeconds=-5"], "/retention/jobTtlSeconds"),
        (["--set", "allowImportPaths=yes"], "/allowImportPaths"),
        (["--set", "watchNamespaces={Team_A}"], "/watchNamespaces/0"),
        (["--set", "watchNamespaces={a,a}"], "/watchNamespaces"),
        (["--set", "crds.install=maybe"], "/crds/install"),
        (["--set", "rbac.unknown=true"], "/rbac"),
        (["--set", "metrics.serviceMonitor.interval=often"], "/metrics/serviceMonitor/interval"),
        (["--set", "workerServiceAccount.name="], "/workerServiceAccount/name"),
    ],
    ids=lambda v: v if isinstance(v, str) else v[-1],
)
def test_schema_rejects_bad_values(render: Callable[..., Any], args: list[str], message: str) -> None:
    """values.schema.json: helm template fails and names the offending value."""
    result = render(None, *args, check=False)
    assert result.returncode != 0, result.stdout[:500]
    assert "values don't meet the specifications of the schema" in result.stderr, result.stderr
    assert message in result.stderr, result.stderr


def test_numeric_image_tag(render: Callable[..., Any], tmp_path: Path, helm: CLI) -> None:
    """helm parses `--set image.tag=5` (and `tag: 5` in a values file) as a number, which the schema rejects;
    `--set-string` (or a quoted tag) works."""
    ok = parse(render(None, "--set-string", "image.tag=5").stdout)
    assert container(ok)["image"] == "ghcr.io/dops-dev/dops:5"
    values = tmp_path / "tag.yaml"
    values.write_text("image:\n  tag: 5\n")
    result = template(helm, None, "--values", str(values), tmp=tmp_path, check=False)
    assert result.returncode != 0 and "/image/tag" in result.stderr, result.stderr
    values.write_text('image:\n  tag: "5"\n')
    assert container(parse(template(helm, None, "--values", str(values), tmp=tmp_path).stdout))["image"].endswith(":5")


def test_metrics_and_health_ports_must_differ(render: Callable[..., Any]) -> None:
    """The template refuses a metrics port equal to the health port (they are two listeners)."""
    result = render(None, "--set", "metrics.port=8081", check=False)
    assert result.returncode != 0
    assert "metrics.port and health.port must differ" in result.stderr, result.stderr


def test_every_value_is_described_by_the_schema() -> None:
    """values.schema.json covers every key of values.yaml (recursively, where the schema lists properties)."""
    import json

    schema = json.loads((CHART / "values.schema.json").read_text())
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    assert schema["additionalProperties"] is False

    def check(value: Any, node: Doc, path: str) -> None:
        props = node.get("properties")
        if not isinstance(value, dict) or props is None:
            return
        for key, sub in value.items():
            assert key in props, f"{path}.{key} is not in values.schema.json"
            check(sub, props[key], f"{path}.{key}")

    check(values, schema, "")


# --- NOTES.txt ----------------------------------------------------------------------------------------------


def test_notes(helm: CLI) -> None:
    """NOTES.txt tells how to check the operator and run an operation (client-side dry run, no cluster)."""
    result = helm.run("install", "dops", str(CHART), "--namespace", NAMESPACE, "--dry-run=client")
    notes = result.stdout.split("NOTES:", 1)[1]
    assert f"kubectl -n {NAMESPACE} rollout status deployment/dops" in notes
    assert "kubectl apply -f examples/" in notes
    assert "--clusterrole=dops-worker" in notes


def test_roles_for_people_aggregate_into_view_edit_admin(rendered: dict[str, Rendered]) -> None:
    """view reads operations and targets; edit also writes operations (and their status: cancel, re-queue);
    only admin writes DelegationTargets (they choose images and ServiceAccounts). Nothing is bound."""
    r = rendered["default"]
    people = {d["metadata"]["name"]: d for d in r.of_kind("ClusterRole") if d["metadata"]["name"] in
              ("dops-view", "dops-edit", "dops-admin")}  # fmt: skip
    aggregates = {
        name: sorted(
            k.rsplit("-", 1)[-1]
            for k in doc["metadata"]["labels"]
            if k.startswith("rbac.authorization.k8s.io/aggregate-to-")
        )
        for name, doc in people.items()
    }
    assert aggregates == {
        "dops-view": ["admin", "edit", "view"],
        "dops-edit": ["admin", "edit"],
        "dops-admin": ["admin"],
    }
    writes = {name: {(res, verb) for rule in doc["rules"] for res in rule["resources"] for verb in rule["verbs"]
                     if verb not in ("get", "list", "watch")} for name, doc in people.items()}  # fmt: skip
    assert writes["dops-view"] == set()
    assert {res for res, _ in writes["dops-edit"]} == {"delegatedoperations", "delegatedoperations/status"}
    assert {res for res, _ in writes["dops-admin"]} == {"delegationtargets"}
    assert not [b for b in r.of_kind("ClusterRoleBinding") + r.of_kind("RoleBinding")
                if b["roleRef"]["name"] in people]  # fmt: skip


# --- leader election (issue 11 item 13) ---------------------------------------------------------------------


def test_pod_disruption_budget(rendered: dict[str, Rendered], render: Callable[..., Any]) -> None:
    """A PodDisruptionBudget lets voluntary disruptions take at most one operator pod; it can be turned off."""
    pdb = rendered["default"].one("PodDisruptionBudget", "dops-operator")
    assert pdb["apiVersion"] == "policy/v1" and pdb["spec"]["maxUnavailable"] == 1
    assert pdb["spec"]["selector"]["matchLabels"] == deployment(rendered["default"])["spec"]["selector"]["matchLabels"]
    off = parse(render({"podDisruptionBudget": {"enabled": False}}).stdout)
    assert off.of_kind("PodDisruptionBudget") == []


def test_replicas_follow_the_log_archive(rendered: dict[str, Rendered], render: Callable[..., Any]) -> None:
    """A ReadWriteOnce log PVC can be mounted on one node only: the replicas are kept together there (required
    pod affinity); a URL or ReadWriteMany archive spreads them over nodes (preferred anti-affinity); one replica
    or an explicit `affinity` value get exactly what was asked."""
    selector = deployment(rendered["default"])["spec"]["selector"]["matchLabels"]
    term = {"topologyKey": "kubernetes.io/hostname", "labelSelector": {"matchLabels": selector}}
    together = deployment(rendered["default"])["spec"]["template"]["spec"]["affinity"]
    assert together == {"podAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [term]}}
    spread = {
        "podAntiAffinity": {
            "preferredDuringSchedulingIgnoredDuringExecution": [{"weight": 100, "podAffinityTerm": term}]
        }
    }
    assert deployment(rendered["namespaced"])["spec"]["template"]["spec"]["affinity"] == spread  # logArchive url
    rwx = parse(render({"logArchive": {"pvc": {"accessModes": ["ReadWriteMany"]}}}).stdout)
    assert deployment(rwx)["spec"]["template"]["spec"]["affinity"] == spread
    single = parse(render({"replicas": 1}).stdout)
    assert deployment(single)["spec"]["replicas"] == 1
    assert "affinity" not in deployment(single)["spec"]["template"]["spec"]
    mine = {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
        {"matchExpressions": [{"key": "pool", "operator": "In", "values": ["ops"]}]}]}}}  # fmt: skip
    assert deployment(parse(render({"affinity": mine}).stdout))["spec"]["template"]["spec"]["affinity"] == mine


def test_leader_election_values(render: Callable[..., Any]) -> None:
    """Timings reach the operator; disabled (one replica): DOPS_LEADER_ELECTION false and no Lease Role; disabled
    with two replicas: refused (two operators without a Lease would admit operations twice)."""
    custom = parse(
        render(
            {
                "leaderElection": {
                    "enabled": True,
                    "leaseDurationSeconds": 30,
                    "renewDeadlineSeconds": 20,
                    "retryPeriodSeconds": 4,
                }
            }
        ).stdout
    )
    env = env_of(custom)
    assert (env["DOPS_LEASE_DURATION_SECONDS"], env["DOPS_LEASE_RENEW_DEADLINE_SECONDS"]) == ("30", "20")
    assert env["DOPS_LEASE_RETRY_PERIOD_SECONDS"] == "4"
    disabled = {"enabled": False, "leaseDurationSeconds": 15, "renewDeadlineSeconds": 10, "retryPeriodSeconds": 2}
    off = parse(render({"replicas": 1, "leaderElection": disabled}).stdout)
    assert env_of(off)["DOPS_LEADER_ELECTION"] == "false"
    assert [d["metadata"]["name"] for d in off.of_kind("Role")] == []
    refused = render({"leaderElection": disabled}, check=False)
    assert refused.returncode != 0
    assert "replicas > 1 needs leaderElection.enabled" in refused.stderr, refused.stderr


@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_admission_policies_match_without_wildcards(rendered: dict[str, Rendered], scenario: str) -> None:
    """issue 13 "no wildcard anywhere": the ValidatingAdmissionPolicies' match rules name their groups, versions,
    resources and operations; each policy has exactly one binding, which denies (not only warns or audits)."""
    r = rendered[scenario]
    policies = r.of_kind("ValidatingAdmissionPolicy")
    for policy in policies:
        name = policy["metadata"]["name"]
        assert policy["spec"]["failurePolicy"] == "Fail", name
        for rule in policy["spec"]["matchConstraints"]["resourceRules"]:
            assert not any("*" in s for s in _walk_strings(rule)), (name, rule)
        [binding] = [b for b in r.of_kind("ValidatingAdmissionPolicyBinding") if b["spec"]["policyName"] == name]
        assert binding["spec"]["validationActions"] == ["Deny"], name
    assert {p["metadata"]["name"] for p in policies} >= {"dops-worker-own-operation", "dops-target-policy"}
