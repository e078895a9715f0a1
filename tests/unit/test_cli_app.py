"""The `dops` app without a cluster: parsing, help, usage errors, error lines and exit codes (typer's CliRunner).

Aspects covered (issue 6, CLI):
- every command is registered (help lists them in their panels); `--version`; `python -m dops` and the console
  scripts `dops` / `kubectl-dops` point at the same app; `kubectl-dops` calls itself `kubectl dops`;
- usage errors are one `error:` line with exit code 2 (unknown option/command, missing argument, bad choice,
  bad duration, cleanup without filters) and are reported before any connection is attempted;
- an unreachable server or a missing kubeconfig is one line with exit code 3, never a traceback; `--debug`
  adds the traceback; so is a broken kubeconfig (garbage, empty) or an unknown --context (issue 14 #5), in
  words, never a Python repr;
- help shows flags as bare switches (`--debug`, not `--debug <bool>`: issue 14), valued options with their type;
- global options may follow the subcommand (kubectl style) and come from DOPS_* environment variables;
- `describe()` maps gateway errors to messages and exit codes; commands register from a module list, so a new
  command (e.g. `dev`) is one module with `register(app)`.
"""

from __future__ import annotations

import sys
import types
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from dops.api.types import OperationNotFound
from dops.cli import app as app_module
from dops.cli.app import COMMAND_MODULES, app, build_app, hoist_global_options
from dops.cli.errors import EXIT_FAILED, EXIT_UNAVAILABLE, EXIT_USAGE, CliError, crds_missing, describe
from dops.k8s import (
    ApiUnavailable,
    ConfigurationError,
    Conflict,
    Forbidden,
    Invalid,
    KubeClient,
    NotFound,
    load_config,
)

REFUSED = "http://127.0.0.1:1"  # nothing listens on port 1
CRDS_MISSING = crds_missing().message
EXPECTED_COMMANDS = {
    "list", "get", "logs", "wait", "watch", "submit", "rerun", "fail", "delete", "pin", "unpin", "label",
    "archive", "unarchive", "cleanup", "operator", "worker",
    "cancel", "lint", "completion",  # issue 14: the word users look for, manifest checks, shell completion
}  # fmt: skip


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


@pytest.fixture
def refused_kubeconfig(tmp_path: Path) -> Path:
    path = tmp_path / "kubeconfig"
    path.write_text(
        "apiVersion: v1\nkind: Config\n"
        f"clusters: [{{name: c, cluster: {{server: '{REFUSED}'}}}}]\n"
        "contexts: [{name: c, context: {cluster: c, user: u, namespace: team}}]\n"
        "current-context: c\nusers: [{name: u, user: {}}]\n"
    )
    return path


def one_error_line(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1, f"expected one error line, got:\n{stderr}"
    assert lines[0].startswith("error: ")
    assert "Traceback" not in stderr
    return lines[0]


# --------------------------------------------------------------------------------------------- registration


def test_help_lists_every_command(runner: CliRunner) -> None:
    """issue 6 / CLI: all commands exist (list, get, logs, wait, watch, submit, rerun, fail, delete, pin/unpin,
    label, archive/unarchive, cleanup, operator, worker run|launch), with help taken from docstrings."""
    result = runner.invoke(app, ["--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    listed = {line.split()[1] for line in result.stdout.splitlines() if line.startswith("│ ") and len(line.split()) > 2}
    assert listed >= EXPECTED_COMMANDS
    assert "Exit codes: 0 success" in result.stdout
    worker = runner.invoke(app, ["worker", "--help"], env={"COLUMNS": "200"})
    assert worker.exit_code == 0 and "run " in worker.stdout and "launch " in worker.stdout
    wait = runner.invoke(app, ["wait", "--help"], env={"COLUMNS": "200"})
    assert "Wait for an operation to finish." in wait.stdout  # the command's docstring


def test_version(runner: CliRunner) -> None:
    """issue 6 / CLI: --version prints the package version."""
    from dops import __version__

    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0 and result.stdout.strip() == f"dops {__version__}"


def test_entry_points_and_program_name(monkeypatch: pytest.MonkeyPatch) -> None:
    """issue 6 / CLI: `dops` and `kubectl-dops` are console scripts of the same app (`dops` through
    `dops.__main__`, which sends only the Job's `worker run NS/NAME` past the CLI, issue 15); `python -m dops`
    runs it; as a kubectl plugin the usage line says `kubectl dops`."""
    from importlib.metadata import entry_points

    import dops.__main__ as entry

    scripts = {e.name: e.value for e in entry_points(group="console_scripts") if e.name in ("dops", "kubectl-dops")}
    assert scripts == {"dops": "dops.__main__:main", "kubectl-dops": "dops.cli.app:main"}
    assert not entry.is_job_command_line(["list"]) and not entry.is_job_command_line(["worker", "run", "--help"])
    assert entry.is_job_command_line(["worker", "run", "ns/op"])
    main_source = (Path(app_module.__file__).parent.parent / "__main__.py").read_text()
    assert "from dops.cli.app import main" in main_source
    monkeypatch.setattr(sys, "argv", ["/usr/local/bin/kubectl-dops", "list"])
    assert app_module.program_name() == "kubectl dops"
    monkeypatch.setattr(sys, "argv", ["/venv/bin/dops"])
    assert app_module.program_name() == "dops"


def test_commands_register_from_a_module_list() -> None:
    """issue 6 / CLI: a command is a module with `register(app)` named in COMMAND_MODULES (how `dev` plugs in)."""
    module = types.ModuleType("tests_fake_dev_command")

    def dev() -> None:
        """Run the embedded control plane."""
        typer.echo("dev ran")

    def register(app: typer.Typer) -> None:
        from dops.cli.command import RUNTIME_PANEL
        from dops.cli.command import register as add

        add(app, dev, panel=RUNTIME_PANEL)

    module.register = register  # type: ignore[attr-defined]
    sys.modules[module.__name__] = module
    try:
        extended = build_app([*COMMAND_MODULES, module.__name__])
        result = CliRunner().invoke(extended, ["dev"])
        assert result.exit_code == 0 and result.stdout == "dev ran\n"
    finally:
        del sys.modules[module.__name__]


# --------------------------------------------------------------------------------------------- usage errors


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["list", "--bogus"], "No such option: --bogus"),
        (["bogus"], "No such command 'bogus'"),
        (["get"], "Missing argument"),
        (["list", "--state", "nope"], "'nope' is not one of"),
        (["list", "-o", "xml"], "unknown output format 'xml'"),
        (["list", "-o", "jsonpath={range .items[*]}"], "without {end}"),
        (["list", "-o", "custom-columns=NAME"], "expected HEADER:JSONPATH"),
        (["get", "x", "y", "-w"], "-w/--watch follows one operation"),
        (["submit", "@a/b", "--params-file", "/nonexistent/params.yaml"], "cannot read --params-file"),
        (["completion", "tcsh"], "'tcsh' is not one of"),
        (["dev", "--image-map", "acme/*=run"], "--image-map expects PATTERN=MODE"),
        (["lint", "/nonexistent/op.yaml"], "cannot read /nonexistent/op.yaml"),
        (["wait", "x", "--timeout", "soon"], "invalid duration 'soon'"),
        (["wait", "x", "--for", "done"], "'done' is not one of"),
        (["submit", "@a/b", "--param", "novalue"], "expected KEY=VALUE"),
        (["get", "Bad_Name"], "invalid operation id"),
        (["cleanup"], "no cleanup options specified"),
        (["cleanup", "--state", "running"], "cleanup never deletes running operations"),
    ],
)
def test_usage_errors_are_one_line_exit_2_before_any_connection(
    runner: CliRunner, refused_kubeconfig: Path, args: list[str], fragment: str
) -> None:
    """issue 6 / CLI exit code 2 (usage): one clear line, no usage box, no traceback, and the (unreachable)
    server is never contacted (it would have been exit 3)."""
    result = runner.invoke(app, ["--kubeconfig", str(refused_kubeconfig), *args])
    assert result.exit_code == EXIT_USAGE, result.output
    assert fragment in one_error_line(result.stderr)
    assert result.stdout == ""


# --------------------------------------------------------------------------------------------- connection errors


def test_unreachable_server_is_one_line_exit_3(runner: CliRunner, refused_kubeconfig: Path) -> None:
    """issue 6 / CLI exit code 3 (connection): `error: cannot reach the Kubernetes API at URL: connection refused`."""
    result = runner.invoke(app, ["--kubeconfig", str(refused_kubeconfig), "list"])
    assert result.exit_code == EXIT_UNAVAILABLE
    assert one_error_line(result.stderr) == f"error: cannot reach the Kubernetes API at {REFUSED}: connection refused"


def test_debug_adds_the_traceback(runner: CliRunner, refused_kubeconfig: Path) -> None:
    """issue 6 / CLI: tracebacks only with --debug (here written after the subcommand, kubectl style)."""
    result = runner.invoke(app, ["get", "dop-x", "--kubeconfig", str(refused_kubeconfig), "--debug"])
    assert result.exit_code == EXIT_UNAVAILABLE
    assert "Traceback (most recent call last)" in result.stderr
    assert result.stderr.rstrip().splitlines()[-1].startswith("error: cannot reach the Kubernetes API")


def test_global_options_from_environment(runner: CliRunner, refused_kubeconfig: Path) -> None:
    """issue 6 / CLI: DOPS_KUBECONFIG (the DOPS_ env prefix) selects the kubeconfig."""
    result = runner.invoke(app, ["get", "dop-x"], env={"DOPS_KUBECONFIG": str(refused_kubeconfig)})
    assert result.exit_code == EXIT_UNAVAILABLE
    assert REFUSED in one_error_line(result.stderr)


def test_missing_kubeconfig_is_one_line_exit_3(runner: CliRunner, tmp_path: Path) -> None:
    """issue 6 / CLI: no usable configuration → exit 3 with the path named."""
    missing = tmp_path / "nope"
    result = runner.invoke(app, ["--kubeconfig", str(missing), "list"])
    assert result.exit_code == EXIT_UNAVAILABLE
    line = one_error_line(result.stderr)
    assert str(missing) in line and "--kubeconfig" in line


@pytest.mark.parametrize(
    ("content", "args", "expected"),
    [
        pytest.param(
            "this: is: not [yaml\n",
            [],
            "error: kubeconfig {path} is not valid YAML: mapping values are not allowed here (line 1, column 9)",
            id="garbage",
        ),
        pytest.param("", [], "error: kubeconfig {path} is empty: it defines no cluster, context or user", id="empty"),
        pytest.param(
            None,
            ["--context", "nope"],
            'error: context "nope" not found in kubeconfig {path} (its contexts: c)',
            id="unknown-context",
        ),
    ],
)
def test_broken_kubeconfig_is_one_readable_line_exit_3(
    runner: CliRunner, refused_kubeconfig: Path, tmp_path: Path, content: str | None, args: list[str], expected: str
) -> None:
    """Issue 14 #5: a garbage kubeconfig, an empty one and an unknown --context are one line in words, exit 3 (no
    `ScannerError(... <yaml.error.Mark object at 0x…>)`, `TypeError(...)`, `KeyError('nope')`); --debug adds the
    traceback."""
    path = refused_kubeconfig
    if content is not None:
        path = tmp_path / "broken-kubeconfig"
        path.write_text(content)
    result = runner.invoke(app, ["--kubeconfig", str(path), *args, "list"])
    assert result.exit_code == EXIT_UNAVAILABLE, result.output
    assert one_error_line(result.stderr) == expected.format(path=path)
    debug = runner.invoke(app, ["--kubeconfig", str(path), *args, "list", "--debug"])
    assert debug.exit_code == EXIT_UNAVAILABLE
    assert "Traceback (most recent call last)" in debug.stderr
    assert debug.stderr.rstrip().splitlines()[-1] == expected.format(path=path)


def test_help_shows_flags_as_bare_switches(runner: CliRunner) -> None:
    """Issue 14: help showed `--debug <bool>`, which reads as `--debug true` (an error); flags now show no type,
    in every command's help, while options that take a value keep theirs."""
    root = runner.invoke(app, ["--help"], env={"COLUMNS": "200"})
    lines = root.stdout.splitlines()
    debug = next(line for line in lines if "--debug" in line)
    assert "Show tracebacks" in debug and "<" not in debug, debug
    assert "<str>" in next(line for line in lines if "--kubeconfig" in line)
    for args in [["--help"], *([name, "--help"] for name in sorted(EXPECTED_COMMANDS)), ["worker", "run", "--help"]]:
        shown = runner.invoke(app, args, env={"COLUMNS": "200"})
        assert shown.exit_code == 0, shown.output
        assert "<bool>" not in shown.stdout, f"dops {' '.join(args)}:\n{shown.stdout}"


def test_hoist_global_options() -> None:
    """issue 6 / CLI: root options written after the subcommand move to the front; `--` ends the scan."""
    assert hoist_global_options(["list", "--kubeconfig", "k", "-n", "x", "--debug"]) == [
        "--kubeconfig", "k", "--debug", "list", "-n", "x"
    ]  # fmt: skip
    assert hoist_global_options(["get", "a", "--context=c"]) == ["--context=c", "get", "a"]
    assert hoist_global_options(["submit", "op", "--", "--debug"]) == ["submit", "op", "--", "--debug"]
    assert hoist_global_options(["--debug", "list"]) == ["--debug", "list"]


# --------------------------------------------------------------------------------------------- describe()


def test_describe_maps_errors_to_messages_and_exit_codes(refused_kubeconfig: Path) -> None:
    """issue 6 / CLI exit codes: 3 not found / connection / credentials, 2 invalid input, 1 other refusals."""
    client = KubeClient(load_config(refused_kubeconfig), retries=0)
    with pytest.raises(ApiUnavailable) as refused:
        client.request("GET", "/version")
    assert describe(refused.value, REFUSED) == (
        f"cannot reach the Kubernetes API at {REFUSED}: connection refused",
        EXIT_UNAVAILABLE,
    )
    named = NotFound("gone", status={"details": {"name": "x", "kind": "delegatedoperations"}})
    assert describe(named) == ('delegatedoperations "x" not found', EXIT_UNAVAILABLE)
    missing = describe(NotFound("the server could not find the requested resource"))
    assert missing == (CRDS_MISSING, EXIT_UNAVAILABLE)  # the same line from every command (issue 14 #6)
    assert describe(OperationNotFound("x")) == ("No operation found with ID x", EXIT_UNAVAILABLE)
    assert describe(ConfigurationError("no kubeconfig"))[1] == EXIT_UNAVAILABLE
    assert describe(Forbidden("no"))[1] == EXIT_UNAVAILABLE
    assert describe(Invalid("spec.label: Too long"))[1] == EXIT_USAGE
    assert describe(ValueError("bad"))[1] == EXIT_USAGE
    assert describe(Conflict("stale"))[1] == EXIT_FAILED
    assert describe(CliError("nope", 7)) == ("nope", 7)
    message, code = describe(RuntimeError("surprise\nsecond line"))
    assert code == EXIT_FAILED and "\n" not in message and "--debug" in message
