"""dops on a real cluster (kind): the Helm chart, the image, the operator, the workers, the CLI. Issue 6, kind e2e.

Opt-in (`make e2e`; skipped with the reason otherwise, see tests/e2e/conftest.py). One kind cluster per session;
the tests below form one scenario and run in file order against one Helm release:

- `helm install` of helm/dops with the locally built `dops:e2e` image (pullPolicy Never) → the operator
  Deployment becomes Available from the chart's own args, the CRDs are Established and annotated
  `helm.sh/resource-policy: keep`;
- `kubectl apply -f examples/` → every example reaches its expected terminal state (echo/count/sleep completed,
  fail failed with its message), with the Succeeded condition, timestamps, result/error, and `kubectl get dops`
  printer columns from the real API server;
- logs: the worker pod's log (`kubectl logs job/…`) and `dops logs NAME` show each example's expected text;
  status carries podName, jobName and a runLink;
- failure case: deleting the running sleep operation's pod → the operation ends `failed` with the pod-deleted
  reason, a message naming the cause, and never more than one Job;
- `helm upgrade` with a chart copy whose DelegatedOperation CRD gained a printer column and an annotation → the
  live CRD is upgraded in place (same uid, new column served by `kubectl get dops`, operations kept) and the
  operator still runs operations;
- `helm uninstall` → the operator Deployment and pods are gone, the release is gone, the CRDs and every
  DelegatedOperation remain (resource-policy keep).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from dops.api.constants import CONDITION_SUCCEEDED, OPERATION_LABEL, Reasons
from tests.e2e.kind import (
    CHART,
    EXAMPLES,
    EXAMPLES_EXPECTED,
    IMAGE,
    KEEP_ANNOTATION,
    OPERATIONS_CRD,
    OPERATOR_SELECTOR,
    OPS_NAMESPACE,
    RELEASE,
    RELEASE_NAMESPACE,
    TARGETS_CRD,
    KindCluster,
    chart_values,
    condition,
    copy_chart_with_crd_change,
    helm_install_cmd,
    helm_uninstall_cmd,
    helm_upgrade_cmd,
    operation_manifest,
    run,
    write_values,
)
from tests.helpers import eventually

pytestmark = pytest.mark.e2e

OPERATION_TIMEOUT = 300  # seconds: first pod start on a fresh node included


@dataclass
class Release:
    cluster: KindCluster
    values_file: Path


@pytest.fixture(scope="module")
def release(kind_cluster: KindCluster, dops_image: str, tmp_path_factory: pytest.TempPathFactory) -> Release:
    """`helm install dops helm/dops` into dops-system; the examples' namespace exists first (the chart puts the
    worker ServiceAccount there) and is the kubeconfig's default namespace (so `dops logs NAME` needs no -n)."""
    cluster = kind_cluster
    cluster.kubectl("create", "namespace", OPS_NAMESPACE)
    cluster.kubectl("config", "set-context", "--current", "--namespace", OPS_NAMESPACE)
    values_file = write_values(chart_values(), tmp_path_factory.mktemp("values") / "values.json")
    cluster.helm_command(helm_install_cmd(cluster.tools.helm, CHART, values_file))
    return Release(cluster, values_file)


@pytest.fixture(scope="module")
def examples(release: Release) -> Iterator[dict[str, dict[str, Any]]]:
    """`kubectl apply -f examples/` and wait (kubectl wait) until each example is in its expected state."""
    cluster = release.cluster
    cluster.kubectl("apply", "--namespace", OPS_NAMESPACE, "--filename", str(EXAMPLES))
    for name, expected in EXAMPLES_EXPECTED.items():
        cluster.wait_for_operation(name, expected.state, timeout=OPERATION_TIMEOUT)
    yield {name: get_operation(cluster, name) for name in EXAMPLES_EXPECTED}


def get_operation(cluster: KindCluster, name: str) -> dict[str, Any]:
    return cluster.kubectl_json("get", "delegatedoperation", name, "--namespace", OPS_NAMESPACE)


def operator_pods(cluster: KindCluster) -> list[dict[str, Any]]:
    pods: list[dict[str, Any]] = cluster.kubectl_json(
        "get", "pods", "--namespace", RELEASE_NAMESPACE, "--selector", OPERATOR_SELECTOR
    )["items"]
    return pods


def test_helm_install_runs_the_operator(release: Release) -> None:
    """helm install: release deployed, operator Deployment Available on the loaded image, CRDs Established + keep."""
    cluster = release.cluster
    helm_status = json.loads(
        cluster.helm("status", RELEASE, "--namespace", RELEASE_NAMESPACE, "--output", "json").stdout
    )
    assert helm_status["info"]["status"] == "deployed", helm_status["info"]

    cluster.wait("deployment", "condition=Available", RELEASE_NAMESPACE, selector=OPERATOR_SELECTOR)
    for crd in (OPERATIONS_CRD, TARGETS_CRD):
        cluster.wait(f"customresourcedefinition/{crd}", "condition=Established")
        live = cluster.kubectl_json("get", "customresourcedefinition", crd)
        assert live["metadata"].get("annotations", {}).get(KEEP_ANNOTATION) == "keep", live["metadata"]
        assert live["metadata"].get("labels", {}).get("app.kubernetes.io/managed-by") == "Helm", live["metadata"]

    pods = operator_pods(cluster)
    assert len(pods) == 1, [p["metadata"]["name"] for p in pods]
    (container,) = pods[0]["spec"]["containers"]
    assert container["image"] == IMAGE
    assert container["imagePullPolicy"] == "Never"
    assert container["args"] == ["operator"] and "command" not in container
    ready = condition(pods[0], "Ready")
    assert ready is not None and ready["status"] == "True", pods[0]["status"]


def test_examples_reach_their_expected_terminal_states(release: Release, examples: dict[str, dict[str, Any]]) -> None:
    """kubectl apply -f examples/ → each example's terminal state, Succeeded condition, timestamps, result/error."""
    for name, expected in EXAMPLES_EXPECTED.items():
        status = examples[name].get("status") or {}
        assert status.get("runState") == expected.state, (name, status)
        succeeded = condition(examples[name], CONDITION_SUCCEEDED)
        assert succeeded is not None, (name, status)
        assert succeeded["status"] == ("True" if expected.state == "completed" else "False"), (name, succeeded)
        result = status.get("result") or {}
        if expected.state == "completed":
            assert status.get("completedAt"), (name, status)
        else:
            assert status.get("failedAt"), (name, status)
        if expected.result is not None:
            assert result.get("result") == expected.result, (name, result)
        if expected.error_text is not None:
            assert expected.error_text in (result.get("error") or ""), (name, result)

    table = release.cluster.kubectl("get", "delegatedoperations", "--namespace", OPS_NAMESPACE).stdout
    header, *rows = table.splitlines()
    assert header.split()[:3] == ["NAME", "OPERATOR", "STATE"], table
    shown = {row.split()[0]: row.split()[2] for row in rows}
    assert {name: shown.get(name) for name in EXAMPLES_EXPECTED} == {
        name: e.state for name, e in EXAMPLES_EXPECTED.items()
    }, table


def test_pod_logs_and_dops_logs_show_the_expected_text(release: Release, examples: dict[str, dict[str, Any]]) -> None:
    """The worker pod's log (kubectl logs) and `dops logs NAME` show each example's expected text."""
    cluster = release.cluster
    for name, expected in EXAMPLES_EXPECTED.items():
        status = examples[name]["status"]
        assert status.get("jobName") and status.get("podName") and status.get("runLink"), (name, status)
        pod_log = cluster.kubectl(
            "logs", f"job/{status['jobName']}", "--container", "worker", "--namespace", OPS_NAMESPACE
        ).stdout
        assert expected.log_text in pod_log, (name, pod_log)
        cli = run(
            [sys.executable, "-m", "dops", "logs", name, "--namespace", OPS_NAMESPACE], env=cluster.env(), timeout=60
        )
        assert expected.log_text in cli.stdout, (name, cli.stdout, cli.stderr)


def test_deleting_the_running_pod_fails_the_operation(release: Release, examples: dict[str, dict[str, Any]]) -> None:
    """Delete the running sleep operation's pod → failed with the pod-deleted reason; one Job at most, ever."""
    cluster = release.cluster
    name = "e2e-pod-deleted"
    cluster.apply(
        operation_manifest(name, "@dops/examples/sleep", {"seconds": 600}, timeout_seconds=900), OPS_NAMESPACE
    )
    cluster.wait_for_operation(name, "running", timeout=OPERATION_TIMEOUT)
    running = get_operation(cluster, name)
    pod = running["status"]["podName"]
    cluster.kubectl("delete", "pod", pod, "--namespace", OPS_NAMESPACE, "--wait=false")

    cluster.wait_for_operation(name, "failed", timeout=OPERATION_TIMEOUT)
    failed = get_operation(cluster, name)
    succeeded = condition(failed, CONDITION_SUCCEEDED)
    assert succeeded is not None and succeeded["status"] == "False", failed["status"]
    assert succeeded["reason"] == Reasons.POD_DELETED, succeeded
    assert pod in succeeded["message"] and "deleted" in succeeded["message"], succeeded
    assert failed["status"].get("failedAt"), failed["status"]
    jobs = cluster.kubectl_json("get", "jobs", "--namespace", OPS_NAMESPACE, "--selector", f"{OPERATION_LABEL}={name}")
    assert len(jobs["items"]) <= 1, [j["metadata"]["name"] for j in jobs["items"]]


def test_helm_upgrade_upgrades_the_crds(release: Release, examples: dict[str, dict[str, Any]], tmp_path: Path) -> None:
    """helm upgrade with a chart whose CRD gained a printer column → CRD upgraded in place, operations kept."""
    cluster = release.cluster
    before = cluster.kubectl_json("get", "customresourcedefinition", OPERATIONS_CRD)
    chart, change = copy_chart_with_crd_change(tmp_path)
    cluster.helm_command(helm_upgrade_cmd(cluster.tools.helm, chart, release.values_file))

    after = cluster.kubectl_json("get", "customresourcedefinition", OPERATIONS_CRD)
    assert after["metadata"]["uid"] == before["metadata"]["uid"], "the CRD was re-created, not upgraded"
    assert after["metadata"]["annotations"].get(change.annotation) == change.token, after["metadata"]
    assert after["metadata"]["annotations"].get(KEEP_ANNOTATION) == "keep", after["metadata"]
    for version in after["spec"]["versions"]:
        columns = {c["name"]: c["jsonPath"] for c in version.get("additionalPrinterColumns", [])}
        assert columns.get(change.column) == change.json_path, (version["name"], columns)

    def table() -> str:
        return cluster.kubectl("get", "delegatedoperation", "example-echo", "--namespace", OPS_NAMESPACE).stdout

    # The new column comes last (Target has priority 1); the Label column may hold spaces, so read from the end.
    shown = eventually(
        table, lambda out: out.splitlines()[0].split()[-1] == change.column.upper(), timeout=60, interval=1,
        describe=f"`kubectl get dops` to show the new {change.column} column",
    )  # fmt: skip
    assert shown.splitlines()[1].split()[-1] == "example-echo", shown
    for name, expected in EXAMPLES_EXPECTED.items():
        assert get_operation(cluster, name)["status"]["runState"] == expected.state, name

    cluster.wait("deployment", "condition=Available", RELEASE_NAMESPACE, selector=OPERATOR_SELECTOR)
    cluster.apply(
        operation_manifest("e2e-after-upgrade", "@dops/examples/echo", {"message": "upgraded"}), OPS_NAMESPACE
    )
    cluster.wait_for_operation("e2e-after-upgrade", "completed", timeout=OPERATION_TIMEOUT)
    assert get_operation(cluster, "e2e-after-upgrade")["status"]["result"]["result"] == {"message": "upgraded"}


def test_helm_uninstall_removes_the_operator_and_keeps_the_crds(
    release: Release, examples: dict[str, dict[str, Any]]
) -> None:
    """helm uninstall → operator Deployment/pods and release gone; CRDs (keep) and DelegatedOperations remain."""
    cluster = release.cluster
    uninstalled = cluster.helm_command(helm_uninstall_cmd(cluster.tools.helm))
    assert OPERATIONS_CRD in uninstalled.stdout + uninstalled.stderr, "helm should report the kept CRDs"

    cluster.wait("pods", "delete", RELEASE_NAMESPACE, selector=OPERATOR_SELECTOR, timeout=180)
    assert operator_pods(cluster) == []
    deployments = cluster.kubectl_json(
        "get", "deployments", "--namespace", RELEASE_NAMESPACE, "--selector", f"app.kubernetes.io/instance={RELEASE}"
    )
    assert deployments["items"] == []
    releases = json.loads(cluster.helm("list", "--namespace", RELEASE_NAMESPACE, "--output", "json").stdout)
    assert releases == [], releases

    for crd in (OPERATIONS_CRD, TARGETS_CRD):
        cluster.wait(f"customresourcedefinition/{crd}", "condition=Established", timeout=30)
    for name, expected in EXAMPLES_EXPECTED.items():
        assert get_operation(cluster, name)["status"]["runState"] == expected.state, name
