"""The end-to-end scenario: dops on a real cluster — the Helm chart, the image, the operator, the workers, the CLI.

One code path for every cluster: `E2EScenario` is subclassed by one test class per cluster, each module giving the
`e2e_cluster` fixture (a created `tests.e2e.common.E2ECluster` that has loaded the test image):
tests/e2e/test_kind.py (kind, opt-in with --run-e2e) and tests/e2e/test_realplane.py (the real control plane built
from source + the process node agent, part of the default run). The tests form one scenario and run in class order
against one Helm release:

- the release and operations namespaces are created first with PodSecurity `restricted` enforced;
- `helm install` of helm/dops with default values except the image (`dops:e2e`, pullPolicy Never) → the operator
  Deployment becomes Available from the chart's own args, the CRDs are Established and annotated
  `helm.sh/resource-policy: keep`;
- the operator pod runs as the chart's ServiceAccount with its projected token, and the API server grants that
  account what the operator needs and nothing else asked here (no Secrets, no pods/exec, no pod creation);
- `kubectl apply -f examples/` → every example reaches its expected terminal state (echo/count/sleep completed,
  fail failed with its message), with the Succeeded condition, timestamps, result/error, and `kubectl get dops`
  printer columns from the real API server;
- logs: the worker pod's log (`kubectl logs job/…`) and `dops logs NAME` show each example's expected text;
  status carries podName, jobName, a runLink and the archived log's path and size; worker pods run as the worker
  ServiceAccount;
- failure cases (the failing worker is example-fail above): deleting the running operation's pod → `failed`,
  PodDeleted, never more than one Job; deleting its Job → `failed`, JobMissing, no second Job; a run past
  spec.timeoutSeconds → `failed`, DeadlineExceeded (the Job controller's activeDeadlineSeconds);
- `helm upgrade` with a chart copy whose DelegatedOperation CRD gained a printer column and an annotation, and a
  changed value (imagePullGraceSeconds 120 → 5) → the live CRD is upgraded in place (same uid, new column served
  by `kubectl get dops`, operations kept), the operator pod is replaced by one with the new setting, and it runs
  operations; an operation whose target's image cannot be pulled then fails (ImagePullBackOff) after the new grace
  and its Job is stopped;
- the operator's log shows no request refused by the API server (before the upgrade replaces it, and after);
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
from tests.e2e.common import (
    CHART,
    EXAMPLES,
    EXAMPLES_EXPECTED,
    IMAGE,
    KEEP_ANNOTATION,
    OPERATIONS_CRD,
    OPERATOR_SELECTOR,
    OPERATOR_SERVICE_ACCOUNT,
    OPS_NAMESPACE,
    RELEASE,
    RELEASE_NAMESPACE,
    TARGETS_CRD,
    WORKER_SERVICE_ACCOUNT,
    E2ECluster,
    chart_values,
    condition,
    copy_chart_with_crd_change,
    helm_install_cmd,
    helm_uninstall_cmd,
    helm_upgrade_cmd,
    operation_manifest,
    restricted_namespace,
    run,
    write_values,
)
from tests.helpers import eventually

OPERATION_TIMEOUT = 300  # seconds: first pod start on a fresh node included
SERVICE_ACCOUNT_MOUNT = "/var/run/secrets/kubernetes.io/serviceaccount"
# The value `helm upgrade` changes (a setting the operator reads at start) and the variable the chart passes it in:
# the image-pull grace, from the default 120 s to what the unpullable-image test after the upgrade can wait for.
PULL_GRACE_SECONDS = 5
UPGRADE_VALUES = {"imagePullGraceSeconds": PULL_GRACE_SECONDS}
UPGRADE_ENV = ("DOPS_IMAGE_PULL_GRACE_SECONDS", str(PULL_GRACE_SECONDS))
MISSING_IMAGE = "registry.invalid/dops/not-there:1.0"  # no registry serves it (kind: DNS fails; node agent: no rule)

# (verb, resource, subresource, allowed) asked of the API server as the operator's ServiceAccount, in OPS_NAMESPACE.
OPERATOR_ACCESS = (
    ("create", "jobs.batch", "", True),
    ("patch", "delegatedoperations.dops.io", "status", True),
    ("update", "delegatedoperations.dops.io", "finalizers", True),  # blockOwnerDeletion on the Jobs' owner refs
    ("get", "pods", "log", True),
    ("get", "secrets", "", False),
    ("create", "pods", "", False),
    ("create", "pods", "exec", False),
    ("create", "delegatedoperations.dops.io", "", False),
    ("update", "delegatedoperations.dops.io", "", False),
)


@dataclass
class Release:
    cluster: E2ECluster
    values_file: Path


def get_operation(cluster: E2ECluster, name: str) -> dict[str, Any]:
    return cluster.kubectl_json("get", "delegatedoperation", name, "--namespace", OPS_NAMESPACE)


def operator_pods(cluster: E2ECluster) -> list[dict[str, Any]]:
    pods: list[dict[str, Any]] = cluster.kubectl_json(
        "get", "pods", "--namespace", RELEASE_NAMESPACE, "--selector", OPERATOR_SELECTOR
    )["items"]
    return pods


def operator_log(cluster: E2ECluster) -> str:
    """The whole log of the running operator pod (through the API server, as `kubectl logs` reads it)."""
    return cluster.kubectl(
        "logs", "--namespace", RELEASE_NAMESPACE, "--selector", OPERATOR_SELECTOR, "--tail", "-1"
    ).stdout


def assert_no_permission_errors(log: str) -> None:
    """No request of the operator was refused: the operator retries, and a reconcile timer can hide a missing rule
    behind eventual success, so a refusal is looked for in its log rather than only in outcomes."""
    refused = [line for line in log.splitlines() if "Forbidden" in line or "forbidden" in line]
    assert not refused, "the API server refused the operator's requests:\n" + "\n".join(refused[:10])


class E2EScenario:
    """The scenario's tests; a subclass per cluster runs them (see the module docstring)."""

    @pytest.fixture(scope="class")
    @classmethod
    def release(cls, e2e_cluster: E2ECluster, tmp_path_factory: pytest.TempPathFactory) -> Release:
        """`helm install dops helm/dops` into dops-system. Both namespaces exist first with PodSecurity `restricted`
        enforced (the chart puts the worker ServiceAccount into the examples' namespace); the examples' namespace is
        the kubeconfig's default namespace (so `dops logs NAME` needs no -n)."""
        cluster = e2e_cluster
        for namespace in (RELEASE_NAMESPACE, OPS_NAMESPACE):
            cluster.apply(restricted_namespace(namespace))
        cluster.kubectl("config", "set-context", "--current", "--namespace", OPS_NAMESPACE)
        values_file = write_values(chart_values(), tmp_path_factory.mktemp("values") / "values.json")
        cluster.helm_command(helm_install_cmd(cluster.tools.helm, CHART, values_file))
        return Release(cluster, values_file)

    @pytest.fixture(scope="class")
    @classmethod
    def examples(cls, release: Release) -> Iterator[dict[str, dict[str, Any]]]:
        """`kubectl apply -f examples/` and wait (kubectl wait) until each example is in its expected state and the
        operator has processed it (its Succeeded condition set)."""
        cluster = release.cluster
        cluster.kubectl("apply", "--namespace", OPS_NAMESPACE, "--filename", str(EXAMPLES))
        for name, expected in EXAMPLES_EXPECTED.items():
            cluster.wait_for_finished(name, expected.state, timeout=OPERATION_TIMEOUT)
        yield {name: get_operation(cluster, name) for name in EXAMPLES_EXPECTED}

    def test_helm_install_runs_the_operator(self, release: Release) -> None:
        """helm install: release deployed, operator Deployment Available on the loaded image, CRDs Established, keep."""
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

    def test_operator_runs_as_the_charts_service_account(self, release: Release) -> None:
        """The operator pod (admitted under PodSecurity restricted) has the chart's ServiceAccount and its projected
        token; the API server's RBAC gives that account the operator's permissions and denies the rest asked here."""
        cluster = release.cluster
        (pod,) = operator_pods(cluster)
        spec = pod["spec"]
        assert spec["serviceAccountName"] == OPERATOR_SERVICE_ACCOUNT, spec
        (container,) = spec["containers"]
        mounts = {m["mountPath"]: m["name"] for m in container.get("volumeMounts") or []}
        volumes = {v["name"]: v for v in spec.get("volumes") or []}
        token_volume = volumes[mounts[SERVICE_ACCOUNT_MOUNT]]
        sources = token_volume["projected"]["sources"]
        assert any("serviceAccountToken" in source for source in sources), token_volume
        namespace = cluster.kubectl_json("get", "namespace", RELEASE_NAMESPACE)
        assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"

        account = f"system:serviceaccount:{RELEASE_NAMESPACE}:{OPERATOR_SERVICE_ACCOUNT}"
        answers: dict[tuple[str, str, str], str] = {}
        for verb, resource, subresource, _ in OPERATOR_ACCESS:
            scope = ["--namespace", OPS_NAMESPACE, "--as", account, "--subresource", subresource]
            asked = cluster.kubectl("auth", "can-i", verb, resource, *scope, check=False)
            answers[(verb, resource, subresource)] = (asked.stdout + asked.stderr).strip()
        expected = {(verb, res, sub): "yes" if allowed else "no" for verb, res, sub, allowed in OPERATOR_ACCESS}
        assert {key: (answer.split() or [""])[0] for key, answer in answers.items()} == expected, answers

    def test_examples_reach_their_expected_terminal_states(
        self, release: Release, examples: dict[str, dict[str, Any]]
    ) -> None:
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

    def test_pod_logs_and_dops_logs_show_the_expected_text(
        self, release: Release, examples: dict[str, dict[str, Any]]
    ) -> None:
        """The worker pod's log (kubectl logs) and `dops logs NAME` show each example's expected text."""
        cluster = release.cluster
        for name, expected in EXAMPLES_EXPECTED.items():
            status = examples[name]["status"]
            assert status.get("jobName") and status.get("podName") and status.get("runLink"), (name, status)
            # The operator archived the log before it set the Succeeded condition the examples fixture waited for.
            assert status.get("logPath") and int(status.get("logSize") or 0) > 0, (name, status)
            assert not status.get("logUploadError"), (name, status)
            pod = cluster.kubectl_json("get", "pod", status["podName"], "--namespace", OPS_NAMESPACE)
            assert pod["spec"].get("serviceAccountName") == WORKER_SERVICE_ACCOUNT, (name, pod["spec"])
            pod_log = cluster.kubectl(
                "logs", f"job/{status['jobName']}", "--container", "worker", "--namespace", OPS_NAMESPACE
            ).stdout
            assert expected.log_text in pod_log, (name, pod_log)
            cli = run(
                [sys.executable, "-m", "dops", "logs", name, "--namespace", OPS_NAMESPACE],
                env=cluster.env(),
                timeout=60,
            )
            assert expected.log_text in cli.stdout, (name, cli.stdout, cli.stderr)

    def test_deleting_the_running_pod_fails_the_operation(
        self, release: Release, examples: dict[str, dict[str, Any]]
    ) -> None:
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

        cluster.wait_for_finished(name, "failed", timeout=OPERATION_TIMEOUT)
        failed = get_operation(cluster, name)
        succeeded = condition(failed, CONDITION_SUCCEEDED)
        assert succeeded is not None and succeeded["status"] == "False", failed["status"]
        assert succeeded["reason"] == Reasons.POD_DELETED, succeeded
        assert pod in succeeded["message"] and "deleted" in succeeded["message"], succeeded
        assert failed["status"].get("failedAt"), failed["status"]
        jobs = cluster.kubectl_json(
            "get", "jobs", "--namespace", OPS_NAMESPACE, "--selector", f"{OPERATION_LABEL}={name}"
        )
        assert len(jobs["items"]) <= 1, [j["metadata"]["name"] for j in jobs["items"]]

    def test_deleting_the_running_job_fails_the_operation(
        self, release: Release, examples: dict[str, dict[str, Any]]
    ) -> None:
        """Delete the running operation's Job → failed with reason JobMissing; no second Job."""
        cluster = release.cluster
        name = "e2e-job-deleted"
        cluster.apply(
            operation_manifest(name, "@dops/examples/sleep", {"seconds": 600}, timeout_seconds=900), OPS_NAMESPACE
        )
        cluster.wait_for_operation(name, "running", timeout=OPERATION_TIMEOUT)
        job = get_operation(cluster, name)["status"]["jobName"]
        cluster.kubectl("delete", "job", job, "--namespace", OPS_NAMESPACE, "--wait=false")

        cluster.wait_for_finished(name, "failed", timeout=OPERATION_TIMEOUT)
        succeeded = condition(get_operation(cluster, name), CONDITION_SUCCEEDED)
        assert succeeded is not None and succeeded["reason"] == Reasons.JOB_MISSING, succeeded
        assert f"Job {job} was deleted while the operation was running" in succeeded["message"], succeeded
        jobs = cluster.kubectl_json(
            "get", "jobs", "--namespace", OPS_NAMESPACE, "--selector", f"{OPERATION_LABEL}={name}"
        )
        assert [j["metadata"]["name"] for j in jobs["items"] if not j["metadata"].get("deletionTimestamp")] == []

    def test_a_run_past_its_deadline_fails_the_operation(
        self, release: Release, examples: dict[str, dict[str, Any]]
    ) -> None:
        """spec.timeoutSeconds (the Job's activeDeadlineSeconds, enforced by the Job controller) passes →
        failed with reason DeadlineExceeded."""
        cluster = release.cluster
        name = "e2e-deadline"
        cluster.apply(
            operation_manifest(name, "@dops/examples/sleep", {"seconds": 600}, timeout_seconds=3), OPS_NAMESPACE
        )
        cluster.wait_for_finished(name, "failed", timeout=OPERATION_TIMEOUT)
        succeeded = condition(get_operation(cluster, name), CONDITION_SUCCEEDED)
        assert succeeded is not None and succeeded["reason"] == Reasons.TIMED_OUT, succeeded
        assert "time limit of 3 s (timeoutSeconds)" in succeeded["message"], succeeded

    def test_helm_upgrade_upgrades_the_crds_and_rolls_the_operator(
        self, release: Release, examples: dict[str, dict[str, Any]], tmp_path: Path
    ) -> None:
        """helm upgrade with a chart whose CRD gained a printer column and a changed value → CRD upgraded in place,
        operations kept, the operator replaced (rolling update, the Lease handed over) by one with the new setting,
        which runs operations."""
        cluster = release.cluster
        assert_no_permission_errors(operator_log(cluster))  # everything the first operator did (it is replaced)
        before = cluster.kubectl_json("get", "customresourcedefinition", OPERATIONS_CRD)
        (old_pod,) = operator_pods(cluster)
        chart, change = copy_chart_with_crd_change(tmp_path)
        values = write_values(chart_values(overrides=UPGRADE_VALUES), tmp_path / "upgrade-values.json")
        cluster.helm_command(helm_upgrade_cmd(cluster.tools.helm, chart, values))

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
        # RollingUpdate: the old pod hands the Lease over and terminates after the new one is ready.
        cluster.wait(f"pod/{old_pod['metadata']['name']}", "delete", RELEASE_NAMESPACE)
        (new_pod,) = operator_pods(cluster)
        assert new_pod["metadata"]["uid"] != old_pod["metadata"]["uid"], "the value change did not roll the operator"
        (container,) = new_pod["spec"]["containers"]
        env = {item["name"]: item.get("value") for item in container["env"]}
        assert env[UPGRADE_ENV[0]] == UPGRADE_ENV[1], env
        cluster.apply(
            operation_manifest("e2e-after-upgrade", "@dops/examples/echo", {"message": "upgraded"}), OPS_NAMESPACE
        )
        cluster.wait_for_operation("e2e-after-upgrade", "completed", timeout=OPERATION_TIMEOUT)
        assert get_operation(cluster, "e2e-after-upgrade")["status"]["result"]["result"] == {"message": "upgraded"}

    def test_an_image_that_cannot_be_pulled_fails_after_the_upgraded_grace(
        self, release: Release, examples: dict[str, dict[str, Any]]
    ) -> None:
        """A DelegationTarget whose image cannot be pulled → failed with reason ImagePullBackOff naming the image once
        the image-pull grace set by the upgrade (5 s, not the default 120 s) has passed; its Job is stopped."""
        cluster = release.cluster
        target = {
            "apiVersion": "dops.io/v1alpha1",
            "kind": "DelegationTarget",
            "metadata": {"name": "e2e-unpullable"},
            "spec": {"mode": "job", "image": MISSING_IMAGE},
        }
        cluster.apply(target, OPS_NAMESPACE)
        name = "e2e-unpullable"
        manifest = operation_manifest(name, "@dops/examples/echo", {"message": "never"})
        manifest["spec"]["delegationTarget"] = "e2e-unpullable"
        cluster.apply(manifest, OPS_NAMESPACE)

        cluster.wait_for_finished(name, "failed", timeout=OPERATION_TIMEOUT)
        failed = get_operation(cluster, name)
        succeeded = condition(failed, CONDITION_SUCCEEDED)
        assert succeeded is not None and succeeded["reason"] == Reasons.IMAGE_PULL, succeeded
        assert f"the worker image {MISSING_IMAGE} cannot be pulled" in succeeded["message"], succeeded
        selector = f"{OPERATION_LABEL}={name}"
        cluster.wait("jobs", "delete", OPS_NAMESPACE, selector=selector, timeout=60)

    def test_helm_uninstall_removes_the_operator_and_keeps_the_crds(
        self, release: Release, examples: dict[str, dict[str, Any]]
    ) -> None:
        """helm uninstall → operator Deployment/pods and release gone; CRDs (keep) and DelegatedOperations remain."""
        cluster = release.cluster
        assert_no_permission_errors(operator_log(cluster))
        uninstalled = cluster.helm_command(helm_uninstall_cmd(cluster.tools.helm))
        assert OPERATIONS_CRD in uninstalled.stdout + uninstalled.stderr, "helm should report the kept CRDs"

        cluster.wait("pods", "delete", RELEASE_NAMESPACE, selector=OPERATOR_SELECTOR, timeout=180)
        assert operator_pods(cluster) == []
        deployments = cluster.kubectl_json(
            "get",
            "deployments",
            "--namespace",
            RELEASE_NAMESPACE,
            "--selector",
            f"app.kubernetes.io/instance={RELEASE}",
        )
        assert deployments["items"] == []
        releases = json.loads(cluster.helm("list", "--namespace", RELEASE_NAMESPACE, "--output", "json").stdout)
        assert releases == [], releases

        for crd in (OPERATIONS_CRD, TARGETS_CRD):
            cluster.wait(f"customresourcedefinition/{crd}", "condition=Established", timeout=30)
        for name, expected in EXAMPLES_EXPECTED.items():
            assert get_operation(cluster, name)["status"]["runState"] == expected.state, name
