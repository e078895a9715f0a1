"""The `dops` CLI as a newcomer runs it (issue 14): the venv's `dops` as a subprocess, default flags, in a
project directory that is not the checkout, against `dops dev` started there as the README says.

Aspects:
- README "Writing your own operator": its module, `dops dev --python-path .` and its `dops submit … --wait` line,
  run as written: the operation completes and the result is printed at the end; the fault twin: a module the
  workers cannot import fails with the import error as the last line;
- `submit --wait` ends with the real cause of a crash (the exit code and what the process said last), not the
  worker's routine log records (its termination-message warning) (#6);
- an unpullable image: `wait` and `get` name the pod stuck in ErrImagePull/ImagePullBackOff within seconds, and
  the hint names `dops dev --image-map`, an option dev has (not a kubelet "image_map"); `--image-map` then runs
  such an image (#6);
- a missing CRD: `get` and `list` print the same readable line, exit 3 (#6);
- kubectl conventions: `-l/--selector` (a label selector; the limit is `--limit`), `--field-selector`,
  `-o name` (delegatedoperation.dops.io/NAME), `-o jsonpath=…`, `-o custom-columns=…`, `get dop/NAME` and several
  names, `-A`, `cancel`, `--params-file -`, `list -w` / `get -w` (a line per change, Ctrl-C exits 130),
  `completion bash` (the script completes in a real bash), `lint` and `submit --dry-run` (schema, target,
  operator; exit 2, nothing queued).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from dops.cli.errors import crds_missing
from dops.emulator import EmbeddedServer, ServerSettings
from dops.k8s import KubeClient, load_config
from tests.processes import Background

REPO = Path(__file__).resolve().parent.parent.parent
READY = "Press Ctrl-C to stop."
PREFIX = "delegatedoperation.dops.io/"
RUNNABLE_IMAGES = "example.test/acme/*"  # dev maps these with --image-map (process: run as this dops)
UNPULLABLE = "example.invalid/nope:1"

# A py: operator that crashes the worker process after a routine WARNING record, as the worker's own
# "cannot write the termination message" warning used to be the last line of the recorded log tail.
CRASHY = """
import logging, os, sys

def crash(ctx):
    print("about to crash", flush=True)
    logging.getLogger("dops.worker").warning("cannot write the termination message to /nowhere: denied")
    for handler in logging.getLogger().handlers:
        handler.flush()
    sys.stderr.flush()
    os._exit(7)
"""


def dops_binary() -> str:
    script = Path(sys.executable).parent / "dops"
    return str(script) if script.exists() else f"{sys.executable} -m dops"


def readme_section(title: str) -> str:
    text = (REPO / "README.md").read_text()
    start = text.index(title)
    end = text.find("\n## ", start)
    return text[start:end]


def code_blocks(section: str, lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", section, re.DOTALL)


def user_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DOPS_") and k != "KUBECONFIG"}
    return {**env, "PYTHONUNBUFFERED": "1", "COLUMNS": "250", **extra}


@dataclass
class Project:
    cwd: Path
    kubeconfig: str
    server: Background
    submit_line: str

    def env(self) -> dict[str, str]:
        return user_env(KUBECONFIG=self.kubeconfig)

    def dops(self, *args: str, stdin: str | None = None, timeout: float = 90) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [dops_binary(), *args], cwd=self.cwd, env=self.env(), input=stdin, capture_output=True, text=True,
            timeout=timeout,
        )  # fmt: skip

    def shell(self, line: str, timeout: float = 90) -> subprocess.CompletedProcess[str]:
        """A README line as the user's shell runs it (quotes and all), with the venv's dops on PATH."""
        env = {**self.env(), "PATH": f"{Path(dops_binary()).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
        return subprocess.run(
            ["bash", "-c", line], cwd=self.cwd, env=env, capture_output=True, text=True, timeout=timeout
        )

    def client(self) -> KubeClient:
        return KubeClient(load_config(self.kubeconfig))

    def submit(self, *args: str) -> str:
        out = self.dops("submit", *args, "-o", "name")
        assert out.returncode == 0, out.stderr
        assert out.stdout.startswith(PREFIX), out.stdout
        return out.stdout.strip().removeprefix(PREFIX)

    def target(self, name: str, image: str) -> None:
        client = self.client()
        body = {
            "apiVersion": "dops.io/v1alpha1",
            "kind": "DelegationTarget",
            "metadata": {"name": name, "namespace": "default"},
            "spec": {"image": image, "mode": "job"},
        }
        client.request("POST", "/apis/dops.io/v1alpha1/namespaces/default/delegationtargets", body=body)
        client.close()


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Project]:
    """A user's project holding README's acme_reports, with `dops dev --python-path .` (README) serving it."""
    cwd = tmp_path_factory.mktemp("acme-project")
    section = readme_section("### Writing your own operator")
    module = next(b for b in code_blocks(section, "python") if b.startswith("# acme_reports/ops.py"))
    (cwd / "acme_reports").mkdir()
    (cwd / "acme_reports" / "__init__.py").write_text("")
    (cwd / "acme_reports" / "ops.py").write_text(module)
    (cwd / "crashy.py").write_text(CRASHY)
    lines = [ln.split("#")[0].strip() for ln in code_blocks(section, "sh")[0].splitlines() if ln.strip()]
    dev_line = next(ln for ln in lines if ln.startswith("dops dev"))
    submit_line = next(ln for ln in lines if ln.startswith("dops submit"))
    assert dev_line == "dops dev --python-path .", dev_line
    argv = [*dops_binary().split(), *dev_line.split()[1:], "--image-map", f"{RUNNABLE_IMAGES}=process"]
    server = Background(argv, cwd=cwd, env=user_env())
    try:
        server.wait_for_line(READY, timeout=90)
        kubeconfig = server.wait_for_line("export KUBECONFIG=", timeout=1).split("=", 1)[1].strip()
        yield Project(cwd, kubeconfig, server, submit_line)
    finally:
        server.close()


# --------------------------------------------------------------------------------------------- README paths


def test_readme_write_your_own_operator_runs_as_written(project: Project) -> None:
    """issue 14 #8: README's module + `dops dev --python-path .` + its submit line: completed, result printed."""
    out = project.shell(project.submit_line)
    assert out.returncode == 0, out.stdout + out.stderr
    lines = out.stdout.splitlines()
    assert re.match(r"operation \S+ completed in ", lines[-2]), out.stdout
    assert lines[-1] == 'result: {"parts": 2}'


def test_a_module_the_workers_cannot_import_fails_with_the_import_error(project: Project) -> None:
    """issue 14 #8, the fault twin: the import error is the last line, exit 1."""
    out = project.dops("submit", "py:acme_reports.missing:build_report", "--wait", "--timeout", "60s")
    assert out.returncode == 1, out.stdout + out.stderr
    last = out.stderr.strip().splitlines()[-1]
    assert last.startswith("error: operation ") and "cannot import operator py:acme_reports.missing" in last, last
    assert last.endswith("ModuleNotFoundError: No module named 'acme_reports.missing'"), last


def test_submit_wait_ends_with_the_real_cause_of_a_crash(project: Project) -> None:
    """issue 14 #6: a worker that crashes after a WARNING record: the cause is the exit code and what it said
    last, not the warning (the old "last line of the log tail")."""
    out = project.dops("submit", "py:crashy:crash", "--wait", "--timeout", "60s")
    assert out.returncode == 1, out.stdout + out.stderr
    last = out.stderr.strip().splitlines()[-1]
    cause = r"error: operation \S+ failed in \S+: the worker exited with exit code 7: about to crash"
    assert re.fullmatch(cause, last), out.stderr
    name = re.search(r"operation (\S+) failed", last).group(1)  # type: ignore[union-attr]
    shown = project.dops("get", name)
    assert shown.returncode == 0, shown.stderr
    panel = shown.stdout[shown.stdout.index("╭─ Error") : shown.stdout.index("╰")]
    assert panel.count("about to crash") == 1, panel  # the Error panel says it once (#6)


# --------------------------------------------------------------------------------------------- images


def test_an_unpullable_image_is_named_at_once_with_a_dev_option(project: Project) -> None:
    """issue 14 #6: `wait` shows the pod stuck in ErrImagePull/ImagePullBackOff within seconds (the operator
    gives up after 2 minutes), `get` shows it too, and the hint names `dops dev --image-map`."""
    project.target("unpullable", UNPULLABLE)
    name = project.submit("@dops/examples/echo", "-t", "unpullable")
    waited = project.dops("wait", name, "--timeout", "12s")
    assert waited.returncode == 1, waited.stdout + waited.stderr
    assert re.search(r"is waiting: (ErrImagePull|ImagePullBackOff)", waited.stderr), waited.stderr
    assert f"dops dev --image-map '{UNPULLABLE}=process'" in waited.stderr
    assert "image_map" not in waited.stderr  # no option dops dev lacks
    timeout_line = waited.stderr.strip().splitlines()[-1]
    assert timeout_line.startswith("error: timed out") and "is waiting: " in timeout_line
    shown = project.dops("get", name)
    assert shown.returncode == 0
    assert re.search(r"Waiting: pod \S+ is waiting: (ErrImagePull|ImagePullBackOff)", shown.stdout), shown.stdout
    assert "Pulling image" in shown.stdout  # the pod's events, though the operation does not name the pod yet


def test_dev_image_map_runs_more_images(project: Project) -> None:
    """issue 14 #6: `dops dev --image-map PATTERN=process` runs such an image as this dops installation."""
    project.target("acme", "example.test/acme/worker:2")
    out = project.dops("submit", "@dops/examples/echo", "-t", "acme", "-p", "hello=1", "--wait", "--timeout", "60s")
    assert out.returncode == 0, out.stdout + out.stderr
    assert out.stdout.splitlines()[-1] == 'result: {"hello": 1}'


# --------------------------------------------------------------------------------------------- kubectl conventions


def test_selectors_names_and_output_formats(project: Project) -> None:
    """issue 14, kubectl conventions: -l is a label selector, --field-selector, -o name/jsonpath/custom-columns,
    get dop/NAME and several names, -A, --limit."""
    tag = uuid.uuid4().hex[:6]
    first = project.submit("@dops/examples/echo", "--label", f"first-{tag}", "-t", f"sel-{tag}")
    second = project.submit("@dops/examples/echo", "--label", f"second-{tag}", "-t", f"sel-{tag}")
    by_label = project.dops("list", "-l", f"dops.io/target=sel-{tag}", "-o", "name")
    assert by_label.returncode == 0, by_label.stderr
    assert sorted(by_label.stdout.split()) == sorted([PREFIX + first, PREFIX + second])
    assert project.dops("list", "-l", f"dops.io/target=sel-{tag}", "--limit", "1", "-o", "name").stdout.split() == [
        PREFIX + second
    ]
    by_field = project.dops("list", "--field-selector", f"metadata.name={first}", "-o", "name")
    assert by_field.returncode == 0 and by_field.stdout.split() == [PREFIX + first], by_field.stderr
    jp = project.dops("get", f"dop/{first}", second, "-o", "jsonpath={range .items[*]}{.spec.label}{'\\n'}{end}")
    assert jp.returncode == 0 and jp.stdout.split() == [f"first-{tag}", f"second-{tag}"], jp.stderr
    one = project.dops("get", f"{PREFIX}{first}", "-o", "jsonpath={.spec.delegationTarget}")
    assert one.stdout == f"sel-{tag}"
    columns = "custom-columns=NS:.metadata.namespace,L:.spec.label"
    cols = project.dops("list", "-A", "-l", f"dops.io/target=sel-{tag}", "-o", columns)
    assert cols.stdout.splitlines() == ["NS        L", f"default   second-{tag}", f"default   first-{tag}"], cols.stdout
    several = project.dops("get", first, "dop-nope", second)
    assert several.returncode == 3 and several.stdout.count("Name ") == 2
    assert several.stderr.strip() == 'error: operation "dop-nope" not found in namespace "default"'
    bad = project.dops("list", "-o", "jsonpath={.items[0}")
    assert bad.returncode == 2 and len(bad.stderr.splitlines()) == 1 and "unclosed '['" in bad.stderr


def test_cancel_params_file_and_watch_lines(project: Project) -> None:
    """issue 14: `get -w` prints a line per change until Ctrl-C (130); `cancel` is the word users look for;
    `--params-file -` reads the parameters from stdin."""
    out = project.dops("submit", "@dops/examples/sleep", "--params-file", "-", "-o", "name", stdin='{"seconds": 120}')
    assert out.returncode == 0, out.stderr
    name = out.stdout.strip().removeprefix(PREFIX)
    shown = json.loads(project.dops("get", name, "-o", "json").stdout)
    assert shown["spec"]["context"]["params"] == {"seconds": 120}
    watcher = Background([*dops_binary().split(), "get", name, "-w"], cwd=project.cwd, env=project.env())
    try:
        watcher.wait_for_line(name, timeout=30)
        cancelled = project.dops("cancel", name, "-r", "not needed")
        assert cancelled.returncode == 0, cancelled.stderr
        assert cancelled.stdout.strip() == f"operation {name} marked as failed: not needed"
        watcher.wait_for_line("failed", timeout=30)
        assert watcher.interrupt() == 130
    finally:
        watcher.close()
    again = project.dops("cancel", name)
    assert again.returncode == 1 and "already failed" in again.stderr


def test_list_watch_prints_changes(project: Project) -> None:
    """issue 14: `list -w` (kubectl get -w): the table, then a line per change."""
    tag = uuid.uuid4().hex[:6]
    watcher = Background(
        [*dops_binary().split(), "list", "-w", "-l", f"dops.io/target=w-{tag}"], cwd=project.cwd, env=project.env()
    )
    try:
        watcher.wait_for_line("NAME", timeout=30)
        # the watch resumes from the listed resourceVersion: a change made now is seen however late it opens
        name = project.submit("@dops/examples/echo", "-t", f"w-{tag}")
        watcher.wait_for_line(name, timeout=30)
        assert watcher.interrupt() == 130
    finally:
        watcher.close()


def test_completion_script_completes_in_bash(project: Project) -> None:
    """issue 14: `dops completion bash` defines a completion that a real bash uses (commands and options)."""
    if not shutil.which("bash"):
        pytest.skip("no bash on PATH")
    script = project.dops("completion", "bash")
    assert script.returncode == 0 and "_DOPS_COMPLETE=complete_bash" in script.stdout
    probe = (
        "source <(dops completion bash)\n"
        'COMP_WORDS=(dops canc); COMP_CWORD=1; _dops_completion dops; echo "${COMPREPLY[@]}"\n'
        'COMP_WORDS=(dops list --field-s); COMP_CWORD=2; _dops_completion dops; echo "${COMPREPLY[@]}"\n'
    )
    out = project.shell(probe)
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == ["cancel", "--field-selector"], out.stdout
    for shell in ("zsh", "fish"):
        assert project.dops("completion", shell).returncode == 0


def test_lint_and_submit_dry_run_check_before_anything_runs(project: Project) -> None:
    """issue 14: `dops lint FILE…` and `submit --dry-run`: schema, target, operator; exit 2, nothing created."""
    ok = project.dops("lint", str(REPO / "examples"))
    assert ok.returncode == 0, ok.stderr
    assert all(line.endswith(": ok") for line in ok.stdout.splitlines()) and len(ok.stdout.splitlines()) >= 5
    bad = project.cwd / "bad.yaml"
    bad.write_text(
        "apiVersion: dops.io/v1alpha1\nkind: DelegatedOperation\nmetadata: {name: lint-bad}\n"
        "spec: {operatr: '@dops/examples/echo', delegationTarget: nowhere}\n"
    )
    linted = project.dops("lint", str(bad))
    assert linted.returncode == 2, linted.stdout + linted.stderr
    errors = linted.stderr.splitlines()
    assert f"error: {bad}: DelegatedOperation lint-bad: unknown field 'spec.operatr'" in errors
    assert f"error: {bad}: DelegatedOperation lint-bad: spec.operator: Required value" in errors
    assert any('DelegationTarget "nowhere" not found in namespace "default"' in e for e in errors), errors
    before = project.dops("list", "-o", "name").stdout
    dry = project.dops("submit", "@dops/examples/nope", "--dry-run")
    assert dry.returncode == 2 and "operator @dops/examples/nope is not installed" in dry.stderr, dry.stderr
    fine = project.dops("submit", "@dops/examples/echo", "-p", "a=1", "--dry-run", "-o", "json")
    assert fine.returncode == 0, fine.stderr
    assert json.loads(fine.stdout)["spec"]["context"]["params"] == {"a": 1}
    assert project.dops("list", "-o", "name").stdout == before  # nothing queued


# --------------------------------------------------------------------------------------------- no CRDs


def test_missing_crds_are_the_same_line_from_get_and_list(tmp_path: Path) -> None:
    """issue 14 #6: without the dops CRDs, `get`, `list`, `wait`, `submit`, `logs`, `watch` and `ui` say so the
    same way, exit 3 (the real control plane's twin: tests/integration/test_cli_missing_crds_real.py)."""
    with EmbeddedServer.run_in_thread(ServerSettings(controllers=())) as server:
        kubeconfig = server.write_kubeconfig(tmp_path / "kubeconfig")
        env = user_env(KUBECONFIG=str(kubeconfig))
        argvs = [["get", "some-op"], ["list"], ["list", "-A"], ["wait", "some-op"], ["submit", "@dops/examples/echo"]]
        argvs += [["logs", "some-op"], ["logs", "-f", "some-op"], ["watch"], ["watch", "-A"], ["ui", "--port", "0"]]
        runs = [
            subprocess.run(
                [*dops_binary().split(), *args], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60
            )
            for args in argvs
        ]
    expected = f"error: {crds_missing(server.url).message}"
    for run in runs:
        assert run.returncode == 3, (run.args, run.stderr)
        assert run.stderr.strip() == expected, run.args


# --------------------------------------------------------------------------------------------- reaching the tools


def test_readme_make_shell_puts_dops_kubectl_and_helm_on_path(tmp_path: Path) -> None:
    """issue 14 #7: the README quickstart stays `make demo` + `make test`, and the line after it (`make shell`)
    gives a shell where `dops` (the venv's), `kubectl` and `helm` (the fetched ones) come first on PATH."""
    quickstart = readme_section("## Quickstart")
    commands = [ln.split("#")[0].strip() for ln in code_blocks(quickstart, "sh")[0].splitlines() if ln.strip()]
    assert commands == ["make demo", "make test"]
    after = quickstart.split("```", 2)[2]
    assert "`make shell`" in after and "`dops`, `kubectl` and `helm` on PATH" in after
    if not shutil.which("make") or not shutil.which("bash"):
        pytest.skip("make or bash not on PATH")
    from tests.helpers import find_binary

    if not find_binary("kubectl") or not find_binary("helm"):
        pytest.skip("kubectl/helm not fetched: run `python scripts/fetch_clients.py` (make demo does)")
    venv_bin = str(Path(sys.executable).parent)
    bare_path = os.pathsep.join(p for p in os.environ.get("PATH", "").split(os.pathsep) if p and p != venv_bin)
    env = {**user_env(), "PATH": bare_path, "SHELL": "/bin/bash"}
    env.pop("VIRTUAL_ENV", None)
    probe = "command -v dops kubectl helm\ndops --version\nkubectl version --client | head -1\nhelm version --short\n"
    out = subprocess.run(
        ["make", "-s", "-C", str(REPO), "shell"], cwd=tmp_path, env=env, input=probe, capture_output=True, text=True,
        timeout=120,
    )  # fmt: skip
    assert out.returncode == 0, out.stdout + out.stderr
    lines = out.stdout.splitlines()
    assert lines[:3] == [str(REPO / ".venv" / "bin" / "dops"), find_binary("kubectl"), find_binary("helm")], out.stdout
    assert lines[3].startswith("dops ") and lines[4].startswith("Client Version: v1.35") and lines[5].startswith("v4.")
    assert "exit to leave" in out.stderr
