"""The kind implementation of the e2e suite's cluster (tests/e2e/common.E2ECluster): tool detection, kind and
docker commands, `KindCluster`.

Everything that can be decided without Docker is a pure function here and unit-tested in
tests/unit/test_e2e_helpers.py: why the suite must skip (`detect`), the exact argv of every `docker` and `kind`
call, and cluster-name generation. Only `KindCluster`'s methods run commands against a real Docker engine.

Environment knobs (all optional):
- KUBECTL / HELM: client binaries (else scripts/fetch_clients.py's cache, else PATH);
- DOPS_E2E_NODE_IMAGE: kindest/node image (default: the pinned kind release's default node image);
- DOPS_E2E_REQUIRED=1: with --run-e2e, a missing tool is an error instead of a skip (CI sets it);
- DOPS_E2E_ARTIFACTS: where `kind export logs` writes the cluster's logs when a test failed.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import subprocess
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from tests.e2e.common import IMAGE, REPO, E2ECluster, find_client, run

CLUSTER_PREFIX = "dops-e2e"

REQUIRED_ENV = "DOPS_E2E_REQUIRED"
NODE_IMAGE_ENV = "DOPS_E2E_NODE_IMAGE"
ARTIFACTS_ENV = "DOPS_E2E_ARTIFACTS"
KIND_INSTALL_DOC = "https://kind.sigs.k8s.io/docs/user/quick-start/#installation"
OPT_IN_REASON = "kind e2e suite is opt-in: run `make e2e` (pytest --run-e2e) on a machine with Docker and kind"

# kind names its node containers "<name>-control-plane" and uses them as host names (≤ 63 characters).
_CLUSTER_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
MAX_CLUSTER_NAME = 63 - len("-control-plane")

Probe = Callable[[Sequence[str]], subprocess.CompletedProcess[str]]


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


# ---------------------------------------------------------------------------------------------- the cluster


@dataclass
class KindCluster(E2ECluster):
    """One kind cluster owned by the test session; its kubeconfig and client homes live in `workdir`."""

    name: str
    tools: Tools
    workdir: Path
    node_image: str | None = None

    # -- lifecycle
    def create(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        run(kind_create_cmd(self.tools.kind, self.name, self.kubeconfig, self.node_image), timeout=600)

    def delete(self) -> None:
        """Delete the cluster; succeeds when it never got created (kind deletes nothing then)."""
        run(kind_delete_cmd(self.tools.kind, self.name, self.kubeconfig), timeout=300, check=False)

    def load_image(self, image: str = IMAGE) -> None:
        self.build_and_load_image(image)

    def build_and_load_image(self, image: str = IMAGE) -> None:
        run(docker_build_cmd(self.tools.docker, image), timeout=1200, env=docker_env())
        run(kind_load_cmd(self.tools.kind, self.name, image), timeout=600)

    def export_logs(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        run(kind_export_logs_cmd(self.tools.kind, self.name, directory), timeout=300, check=False)
