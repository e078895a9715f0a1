"""The e2e suite's shared helpers (tests/e2e/common.py), its kind cluster (tests/e2e/kind.py) and its opt-in/skip
logic, without Docker or kind. The real-plane cluster's helpers: tests/unit/test_e2e_realplane_helpers.py.

Issue 6: "kind e2e … Skips with a clear reason where Docker/kind are absent (as on our machines); its helpers are
unit-tested where possible."

Covered:
- tool detection against a fake PATH: each missing tool (docker CLI, kind, kubectl, helm) and an unreachable Docker
  engine (`docker info` failing, as on a machine with the CLI and no daemon) is named in the skip reason; an
  all-present PATH of fakes is usable; KUBECTL/HELM overrides and the fetch_clients cache are honoured; a hanging
  `docker info` becomes a problem, never a hang; DOPS_E2E_REQUIRED parsing;
- cluster names: format (DNS label, short enough for kind's node host names), uniqueness, rejected prefixes;
- the exact argv of docker build, kind create/delete/load/export, helm install/upgrade/uninstall, kubectl wait;
- `KindCluster` orchestration (through the `E2ECluster` interface) with recording fake `docker`/`kind`/`kubectl`
  binaries: the commands run, in order, with the session kubeconfig; a failed `kubectl wait` reports the command,
  its output and diagnostics; waiting for a finished operation waits for its run state, then its Succeeded condition;
- the namespaces the scenario creates enforce PodSecurity `restricted`;
- `run`: non-zero exits and timeouts raise E2ECommandError naming argv and the output tail;
- chart values: the image, pull policy and default-target image point at `dops:e2e`, overrides deep-merge, and
  `helm template` of the real chart with them (validated by values.schema.json) renders exactly that;
- the CRD-upgrade chart copy: the original chart is untouched, the copy's rendered CRD has the new printer column
  and annotation next to `helm.sh/resource-policy: keep`;
- every example in examples/ has an expectation in the suite, and vice versa;
- pytest wiring (subprocess runs of pytest on tests/e2e, the real plane switched off with DOPS_TEST_PLANES=embedded):
  without --run-e2e every e2e test is skipped with the opt-in reason; with --run-e2e on a PATH without Docker/kind
  with the tool reason; with DOPS_E2E_REQUIRED=1 the run fails instead of skipping; the real-plane scenario is not
  an e2e test (`-m e2e` deselects it) and skips with the plane's reason.
"""

from __future__ import annotations

import json
import os
import re
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.chart import CHART, Rendered, helm_cli, parse
from tests.e2e import common, kind
from tests.e2e.common import (
    EXAMPLES_EXPECTED,
    IMAGE,
    OPS_NAMESPACE,
    E2ECommandError,
    chart_values,
    copy_chart_with_crd_change,
    helm_install_cmd,
    helm_uninstall_cmd,
    helm_upgrade_cmd,
    jsonpath_condition,
    kubectl_wait_cmd,
    operation_names,
    restricted_namespace,
    run,
    write_values,
)
from tests.e2e.kind import (
    KindCluster,
    Tools,
    cluster_name,
    detect,
    docker_build_cmd,
    kind_create_cmd,
    kind_delete_cmd,
    kind_export_logs_cmd,
    kind_load_cmd,
    required,
)
from tests.helpers import find_binary

REPO = Path(__file__).resolve().parents[2]
DAEMON_DOWN = "Cannot connect to the Docker daemon at unix:///var/run/docker.sock. Is the docker daemon running?"


def fake_binary(directory: Path, name: str, script: str) -> Path:
    """An executable shell script `name` in `directory`."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    path.write_text("#!/bin/sh\n" + script + "\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return path


def recording(directory: Path, name: str, log: Path, extra: str = "") -> Path:
    """A fake binary appending `name arg1 arg2 …` to `log`, then running `extra`, exiting 0 by default."""
    return fake_binary(directory, name, f'echo "{name} $*" >> "{log}"\n{extra}')


def env_with(path: Path, home: Path, **extra: str) -> dict[str, str]:
    return {"PATH": str(path), "HOME": str(home), **extra}


# ---------------------------------------------------------------------------------------------- detection


def test_empty_path_names_every_missing_tool(tmp_path: Path) -> None:
    empty = tmp_path / "bin"
    empty.mkdir()
    availability = detect(env_with(empty, tmp_path / "home"))
    assert not availability.usable and availability.tools is None
    assert availability.problems == (
        "docker CLI not found on PATH",
        f"kind not found on PATH (install: {kind.KIND_INSTALL_DOC})",
        "kubectl not found (set KUBECTL, run `make clients`, or put it on PATH)",
        "helm not found (set HELM, run `make clients`, or put it on PATH)",
    )
    assert availability.reason == "kind e2e needs Docker, kind, kubectl and helm: " + "; ".join(availability.problems)


def test_docker_cli_without_daemon_is_reported_with_dockers_own_message(tmp_path: Path) -> None:
    """The situation on our machines: the docker CLI exists, the engine does not answer, kind is absent."""
    bin_dir = tmp_path / "bin"
    fake_binary(bin_dir, "docker", f'[ "$1" = info ] && {{ echo "{DAEMON_DOWN}" >&2; exit 1; }}; exit 0')
    fake_binary(bin_dir, "kubectl", "exit 0")
    fake_binary(bin_dir, "helm", "exit 0")
    availability = detect(env_with(bin_dir, tmp_path / "home"))
    assert availability.problems == (
        f"Docker engine not reachable (`docker info` exited 1: {DAEMON_DOWN})",
        f"kind not found on PATH (install: {kind.KIND_INSTALL_DOC})",
    )


def test_docker_info_without_a_server_version_counts_as_unreachable(tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"
    for name in ("docker", "kind", "kubectl", "helm"):
        fake_binary(bin_dir, name, "exit 0")  # docker info prints nothing
    availability = detect(env_with(bin_dir, tmp_path / "home"))
    assert availability.problems == ("Docker engine not reachable (`docker info` exited 0: no output)",)


def test_all_tools_present_is_usable(tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"
    fake_binary(bin_dir, "docker", '[ "$1" = info ] && echo 28.2.2; exit 0')
    for name in ("kind", "kubectl", "helm"):
        fake_binary(bin_dir, name, "exit 0")
    availability = detect(env_with(bin_dir, tmp_path / "home"))
    assert availability.usable and availability.reason == ""
    assert availability.tools == Tools(
        docker=str(bin_dir / "docker"),
        kind=str(bin_dir / "kind"),
        kubectl=str(bin_dir / "kubectl"),
        helm=str(bin_dir / "helm"),
    )


def test_docker_info_is_asked_with_a_format_and_a_hang_is_a_problem(tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"
    for name in ("docker", "kind", "kubectl", "helm"):
        fake_binary(bin_dir, name, "exit 0")
    asked: list[list[str]] = []

    def hanging(argv: Any) -> subprocess.CompletedProcess[str]:
        asked.append(list(argv))
        return subprocess.CompletedProcess(list(argv), 124, "", "no answer within 30s")

    availability = detect(env_with(bin_dir, tmp_path / "home"), probe=hanging)
    assert asked == [[str(bin_dir / "docker"), "info", "--format", "{{.ServerVersion}}"]]
    assert availability.problems == ("Docker engine not reachable (`docker info` exited 124: no answer within 30s)",)


def test_client_overrides_and_the_fetch_clients_cache(tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"
    for name in ("docker", "kind"):
        fake_binary(bin_dir, name, '[ "$1" = info ] && echo 28; exit 0')
    cache = tmp_path / "xdg"
    cached_kubectl = fake_binary(cache / common.CLIENTS_CACHE, "kubectl", "exit 0")
    override_helm = fake_binary(tmp_path / "elsewhere", "helm", "exit 0")
    env = env_with(bin_dir, tmp_path / "home", XDG_CACHE_HOME=str(cache), HELM=str(override_helm))
    availability = detect(env)
    assert availability.tools is not None
    assert (availability.tools.kubectl, availability.tools.helm) == (str(cached_kubectl), str(override_helm))

    broken = detect({**env, "KUBECTL": str(tmp_path / "missing")})
    assert broken.problems == (f"KUBECTL={tmp_path / 'missing'} is not an executable file",)


@pytest.mark.parametrize(
    ("value", "expected"),
    [("1", True), ("true", True), ("YES", True), ("on", True), ("", False), ("0", False), ("no", False)],
)
def test_required_flag(value: str, expected: bool) -> None:
    assert required({kind.REQUIRED_ENV: value}) is expected
    assert required({}) is False


# ---------------------------------------------------------------------------------------------- names


def test_cluster_names_are_unique_dns_labels_short_enough_for_kind() -> None:
    names = {cluster_name() for _ in range(200)}
    assert len(names) == 200
    for name in names:
        assert re.fullmatch(r"dops-e2e-[0-9a-f]{8}", name), name
        assert len(f"{name}-control-plane") <= 63
    assert cluster_name("ci-42", token="abc") == "ci-42-abc"


@pytest.mark.parametrize("prefix", ["Dops", "dops_e2e", "-dops", "x" * 50, ""])
def test_invalid_cluster_names_are_rejected(prefix: str) -> None:
    with pytest.raises(ValueError, match="invalid kind cluster name"):
        cluster_name(prefix, token="ab12" if prefix else "")


# ---------------------------------------------------------------------------------------------- commands


def test_docker_and_kind_commands() -> None:
    kubeconfig = Path("/tmp/s/kubeconfig")
    assert docker_build_cmd("docker") == [
        "docker", "build", "--tag", "dops:e2e", "--file", str(REPO / "Dockerfile"), str(REPO),
    ]  # fmt: skip
    assert kind.docker_env({"PATH": "/bin"}) == {"PATH": "/bin", "DOCKER_BUILDKIT": "1"}
    assert kind_create_cmd("kind", "dops-e2e-1", kubeconfig) == [
        "kind", "create", "cluster", "--name", "dops-e2e-1", "--kubeconfig", str(kubeconfig), "--wait", "180s",
    ]  # fmt: skip
    assert kind_create_cmd("kind", "c", kubeconfig, node_image="kindest/node:v1.33.1", wait="5m")[-4:] == [
        "--wait", "5m", "--image", "kindest/node:v1.33.1",
    ]  # fmt: skip
    assert kind_delete_cmd("kind", "c", kubeconfig) == [
        "kind", "delete", "cluster", "--name", "c", "--kubeconfig", str(kubeconfig),
    ]  # fmt: skip
    assert kind_load_cmd("kind", "c") == ["kind", "load", "docker-image", "dops:e2e", "--name", "c"]
    assert kind_export_logs_cmd("kind", "c", Path("/tmp/logs")) == [
        "kind",
        "export",
        "logs",
        "/tmp/logs",
        "--name",
        "c",
    ]


def test_helm_commands() -> None:
    chart, values = Path("/c/dops"), Path("/v.json")
    assert helm_install_cmd("helm", chart, values) == [
        "helm", "install", "dops", "/c/dops", "--namespace", "dops-system", "--create-namespace",
        "--values", "/v.json", "--wait", "--timeout", "5m",
    ]  # fmt: skip
    assert helm_upgrade_cmd("helm", chart, values, timeout="2m") == [
        "helm", "upgrade", "dops", "/c/dops", "--namespace", "dops-system", "--values", "/v.json",
        "--wait", "--timeout", "2m",
    ]  # fmt: skip
    assert helm_uninstall_cmd("helm") == [
        "helm", "uninstall", "dops", "--namespace", "dops-system", "--wait", "--timeout", "5m",
    ]  # fmt: skip


def test_kubectl_wait_commands() -> None:
    assert jsonpath_condition(".status.runState", "completed") == "jsonpath={.status.runState}=completed"
    with pytest.raises(ValueError, match="must start with"):
        jsonpath_condition("status.runState", "completed")
    assert kubectl_wait_cmd("kubectl", "delegatedoperation/x", "jsonpath={.status.runState}=failed", "ns", 90) == [
        "kubectl", "wait", "delegatedoperation/x", "--for=jsonpath={.status.runState}=failed", "--timeout=90s",
        "--namespace", "ns",
    ]  # fmt: skip
    assert kubectl_wait_cmd("kubectl", "pods", "delete", "ns", 30.7, selector="a=b") == [
        "kubectl", "wait", "pods", "--for=delete", "--timeout=30s", "--namespace", "ns", "--selector", "a=b",
    ]  # fmt: skip
    assert kubectl_wait_cmd("kubectl", "crd/x", "condition=Established") == [
        "kubectl", "wait", "crd/x", "--for=condition=Established", "--timeout=180s",
    ]  # fmt: skip


# ---------------------------------------------------------------------------------------------- running


def test_run_reports_failures_and_timeouts() -> None:
    ok = run([sys.executable, "-c", "print('hi')"])
    assert ok.stdout == "hi\n"
    with pytest.raises(E2ECommandError) as failed:
        run([sys.executable, "-c", "import sys; print('out'); sys.exit('boom')"])
    message = str(failed.value)
    assert "exited 1" in message and "stdout:\nout" in message and "boom" in message and sys.executable in message
    assert run([sys.executable, "-c", "raise SystemExit(3)"], check=False).returncode == 3
    with pytest.raises(E2ECommandError, match=r"did not finish within 0.5s"):
        run([sys.executable, "-c", "import time; time.sleep(10)"], timeout=0.5)


@pytest.fixture
def fake_cluster(tmp_path: Path) -> tuple[KindCluster, Path]:
    """A KindCluster whose docker, kind, kubectl and helm are recording fakes (kubectl wait fails)."""
    bin_dir, log = tmp_path / "bin", tmp_path / "calls.log"
    tools = Tools(
        docker=str(recording(bin_dir, "docker", log)),
        kind=str(recording(bin_dir, "kind", log)),
        kubectl=str(recording(bin_dir, "kubectl", log, '[ "$1" = wait ] && { echo "timed out" >&2; exit 1; }; exit 0')),
        helm=str(recording(bin_dir, "helm", log)),
    )
    return KindCluster(name="dops-e2e-test", tools=tools, workdir=tmp_path / "work"), log


def test_kind_cluster_runs_the_commands_in_order(fake_cluster: tuple[KindCluster, Path]) -> None:
    cluster, log = fake_cluster
    kubeconfig = cluster.workdir / "kubeconfig"
    cluster.create()
    cluster.load_image()
    cluster.export_logs(cluster.workdir / "logs")
    cluster.delete()
    assert log.read_text().splitlines() == [
        f"kind create cluster --name dops-e2e-test --kubeconfig {kubeconfig} --wait 180s",
        f"docker build --tag dops:e2e --file {REPO / 'Dockerfile'} {REPO}",
        "kind load docker-image dops:e2e --name dops-e2e-test",
        f"kind export logs {cluster.workdir / 'logs'} --name dops-e2e-test",
        f"kind delete cluster --name dops-e2e-test --kubeconfig {kubeconfig}",
    ]
    env = cluster.env()
    assert env["KUBECONFIG"] == str(kubeconfig)
    assert env["HELM_CONFIG_HOME"].startswith(str(cluster.workdir))


def test_failed_wait_reports_the_command_and_diagnostics(fake_cluster: tuple[KindCluster, Path]) -> None:
    cluster, log = fake_cluster
    with pytest.raises(E2ECommandError) as failed:
        cluster.wait_for_operation("example-echo", "completed", timeout=5)
    message = str(failed.value)
    assert "--for=jsonpath={.status.runState}=completed" in message and "timed out" in message
    assert "--- kubectl get delegatedoperation/example-echo -o yaml" in message and "--- operator log" in message
    calls = log.read_text().splitlines()
    assert calls[0] == (
        "kubectl wait delegatedoperation/example-echo --for=jsonpath={.status.runState}=completed --timeout=5s "
        f"--namespace {OPS_NAMESPACE}"
    )
    assert f"kubectl logs --namespace dops-system --selector {common.OPERATOR_SELECTOR} --tail 60" in calls


def test_waiting_for_a_finished_operation_waits_for_its_state_then_its_condition(tmp_path: Path) -> None:
    """A worker writes the terminal state, the operator then sets Succeeded: both are waited for, in that order."""
    bin_dir, log = tmp_path / "bin", tmp_path / "calls.log"
    fake = str(recording(bin_dir, "fake", log))
    cluster = KindCluster(name="x", tools=Tools(docker=fake, kind=fake, kubectl=fake, helm=fake), workdir=tmp_path)
    cluster.wait_for_finished("example-fail", "failed", timeout=7)
    cluster.wait_for_finished("example-echo", "completed", timeout=7)
    waits = [line.split(" ", 1)[1] for line in log.read_text().splitlines()]
    scope = f"--timeout=7s --namespace {OPS_NAMESPACE}"
    assert waits == [
        f"wait delegatedoperation/example-fail --for=jsonpath={{.status.runState}}=failed {scope}",
        f"wait delegatedoperation/example-fail --for=condition=Succeeded=False {scope}",
        f"wait delegatedoperation/example-echo --for=jsonpath={{.status.runState}}=completed {scope}",
        f"wait delegatedoperation/example-echo --for=condition=Succeeded=True {scope}",
    ]


def test_the_scenarios_namespaces_enforce_pod_security_restricted() -> None:
    namespace = restricted_namespace("team")
    assert namespace == {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {
            "name": "team",
            "labels": {
                "pod-security.kubernetes.io/enforce": "restricted",
                "pod-security.kubernetes.io/enforce-version": "latest",
            },
        },
    }


# ---------------------------------------------------------------------------------------------- values and charts


def test_chart_values_point_at_the_loaded_image(tmp_path: Path) -> None:
    values = chart_values()
    assert values == {
        "image": {"repository": "dops", "tag": "e2e", "pullPolicy": "Never"},
        "defaultTarget": {"image": "dops:e2e"},
        "workerServiceAccount": {"namespaces": [OPS_NAMESPACE]},
        "replicas": 1,
    }
    merged = chart_values(overrides={"image": {"tag": "other"}, "logArchive": {"type": "emptyDir"}})
    assert merged["image"] == {"repository": "dops", "tag": "other", "pullPolicy": "Never"}
    assert merged["logArchive"] == {"type": "emptyDir"}
    path = write_values(values, tmp_path / "v" / "values.json")
    assert json.loads(path.read_text()) == values


@pytest.fixture
def helm_binary() -> str:
    binary = find_binary("helm")
    if binary is None:
        pytest.skip("helm binary not available: run `python scripts/fetch_clients.py` (make test does)")
    return binary


def render(helm_binary: str, chart: Path, values: dict[str, Any], tmp: Path) -> Rendered:
    values_file = write_values(values, tmp / "values.json")
    helm = helm_cli(helm_binary, tmp / "helm-home")
    out = helm.run("template", "dops", str(chart), "--namespace", "dops-system", "--values", str(values_file))
    return parse(out.stdout)


def test_chart_renders_the_e2e_values(helm_binary: str, tmp_path: Path) -> None:
    """helm template (values.schema.json validates the values) → the operator and workers use dops:e2e."""
    rendered = render(helm_binary, CHART, chart_values(), tmp_path)
    deployment = rendered.one("Deployment")
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    assert (container["image"], container["imagePullPolicy"], container["args"]) == (IMAGE, "Never", ["operator"])
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["DOPS_WORKER_IMAGE"] == IMAGE
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    selector = dict(part.split("=") for part in common.OPERATOR_SELECTOR.split(","))
    assert selector.items() <= labels.items(), labels
    assert rendered.one("ServiceAccount", env["DOPS_WORKER_SERVICE_ACCOUNT"], OPS_NAMESPACE)
    assert rendered.one("RoleBinding", namespace=OPS_NAMESPACE)["subjects"][0]["namespace"] == OPS_NAMESPACE


def test_crd_change_copy_leaves_the_chart_alone_and_renders_the_new_column(helm_binary: str, tmp_path: Path) -> None:
    original = {p: p.read_bytes() for p in CHART.rglob("*") if p.is_file()}
    chart, change = copy_chart_with_crd_change(tmp_path / "copy", token="t0k3n")
    assert {p: p.read_bytes() for p in CHART.rglob("*") if p.is_file()} == original
    assert chart == tmp_path / "copy" / "dops"

    rendered = render(helm_binary, chart, chart_values(), tmp_path)
    crd = rendered.one("CustomResourceDefinition", common.OPERATIONS_CRD)
    assert crd["metadata"]["annotations"] == {change.annotation: "t0k3n", common.KEEP_ANNOTATION: "keep"}
    for version in crd["spec"]["versions"]:
        columns = version["additionalPrinterColumns"]
        assert columns[-1]["name"] == change.column == "Upgraded"
        assert columns[-1]["jsonPath"] == change.json_path == ".metadata.name"
        assert "priority" not in columns[-1]  # shown by plain `kubectl get`
    unchanged = rendered.one("CustomResourceDefinition", common.TARGETS_CRD)
    assert change.annotation not in unchanged["metadata"]["annotations"]

    with pytest.raises(ValueError, match="already has a printer column"):
        copy_chart_with_crd_change(tmp_path / "again", chart=chart)


def test_every_example_has_an_expectation() -> None:
    examples = operation_names()
    assert set(examples) == set(EXAMPLES_EXPECTED)
    assert {e.state for e in EXAMPLES_EXPECTED.values()} <= {"completed", "failed"}
    for name, operator in examples.items():
        assert operator.startswith("@dops/examples/"), (name, operator)


def test_operation_manifest_and_condition() -> None:
    manifest = common.operation_manifest("x", "@dops/examples/sleep", {"seconds": 5}, timeout_seconds=60)
    assert manifest == {
        "apiVersion": "dops.io/v1alpha1",
        "kind": "DelegatedOperation",
        "metadata": {"name": "x"},
        "spec": {"operator": "@dops/examples/sleep", "context": {"params": {"seconds": 5}}, "timeoutSeconds": 60},
    }
    obj = {"status": {"conditions": [{"type": "Running", "status": "False"}, {"type": "Succeeded", "status": "True"}]}}
    assert common.condition(obj, "Succeeded") == {"type": "Succeeded", "status": "True"}
    assert common.condition({}, "Succeeded") is None


# ---------------------------------------------------------------------------------------------- pytest wiring


def pytest_e2e(tmp_path: Path, *args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """Run pytest on tests/e2e in a subprocess (as `make e2e` / `make test` would) with `env`."""
    argv = [sys.executable, "-m", "pytest", "tests/e2e", "-ra", "-p", "no:cacheprovider"]
    argv += ["--basetemp", str(tmp_path / "bt"), *args]
    return subprocess.run(argv, cwd=REPO, capture_output=True, text=True, timeout=120, env=env)


def base_env(path: Path) -> dict[str, str]:
    """The caller's environment with PATH = `path`, without the e2e knobs; the real plane is switched off
    (DOPS_TEST_PLANES=embedded), else the real-plane scenario in tests/e2e would start a cluster here."""
    env = {k: v for k, v in os.environ.items() if k not in {kind.REQUIRED_ENV, "PYTEST_ADDOPTS"}}
    env["PATH"] = str(path)
    env["DOPS_TEST_PLANES"] = "embedded"
    return env


def test_without_run_e2e_every_e2e_test_is_skipped_with_the_opt_in_reason(tmp_path: Path) -> None:
    result = pytest_e2e(tmp_path, env=base_env(tmp_path))
    out = result.stdout
    assert result.returncode == 0, out + result.stderr
    assert re.search(r"SKIPPED \[\d+\] .*" + re.escape(kind.OPT_IN_REASON), out), out
    assert re.search(r"\b\d+ skipped\b", out) and " passed" not in out and " failed" not in out, out
    # The real-plane scenario is not opt-in: it skips only because this run switched the real plane off.
    assert re.search(r"SKIPPED \[\d+\] .*real-plane e2e skipped: DOPS_TEST_PLANES=embedded", out), out


def test_with_run_e2e_and_no_docker_or_kind_the_tools_are_the_reason(tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"
    fake_binary(bin_dir, "docker", f'echo "{DAEMON_DOWN}" >&2; exit 1')
    result = pytest_e2e(tmp_path, "-m", "e2e", "--run-e2e", env=base_env(bin_dir))
    out = result.stdout
    assert result.returncode == 0, out + result.stderr
    assert f"Docker engine not reachable (`docker info` exited 1: {DAEMON_DOWN})" in out, out
    assert "kind not found on PATH" in out and " passed" not in out, out
    assert "real-plane" not in out and re.search(r"\b\d+ deselected\b", out), out  # -m e2e: not an e2e test

    required_run = pytest_e2e(tmp_path, "-m", "e2e", "--run-e2e", env={**base_env(bin_dir), kind.REQUIRED_ENV: "1"})
    assert required_run.returncode == pytest.ExitCode.USAGE_ERROR, required_run.stdout + required_run.stderr
    assert "DOPS_E2E_REQUIRED is set" in required_run.stderr + required_run.stdout


# ---------------------------------------------------------------------------------------------- CI workflow


def test_ci_workflow_runs_make_test_and_make_e2e_on_push() -> None:
    """.github/workflows/ci.yaml: push + pull_request; `make test` on Python 3.11; `make e2e` with a pinned kind and
    DOPS_E2E_REQUIRED (so the e2e job cannot pass by skipping); every action pinned by a version tag."""
    workflow = yaml.safe_load((REPO / ".github" / "workflows" / "ci.yaml").read_text())
    triggers = workflow.get("on", workflow.get(True))  # YAML 1.1 reads a bare `on` key as true
    assert set(triggers) == {"push", "pull_request"}
    jobs = workflow["jobs"]
    assert set(jobs) == {"test", "e2e"}

    def steps(job: str) -> list[dict[str, Any]]:
        assert jobs[job]["runs-on"] == "ubuntu-latest"
        found: list[dict[str, Any]] = jobs[job]["steps"]
        return found

    def python_versions(job: str) -> set[str]:
        return {
            s["with"]["python-version"] for s in steps(job) if s.get("uses", "").startswith("actions/setup-python@")
        }

    assert python_versions("test") == {"3.11"} and python_versions("e2e") == {"3.11"}
    assert [s["run"] for s in steps("test") if "run" in s] == ["make test"]
    e2e_runs = [s["run"] for s in steps("e2e") if "run" in s]
    assert e2e_runs[-1] == "make e2e"
    install = next(run for run in e2e_runs if "kind-linux-amd64" in run)
    assert "sha256sum --check" in install and "${KIND_VERSION}" in install
    assert re.fullmatch(r"v\d+\.\d+\.\d+", jobs["e2e"]["env"]["KIND_VERSION"])
    assert jobs["e2e"]["env"][kind.REQUIRED_ENV] == "1"
    for job in jobs:
        for step in steps(job):
            if "uses" in step:
                assert re.fullmatch(r"[\w.-]+/[\w.-]+@v\d+(\.\d+)*", step["uses"]), step["uses"]
