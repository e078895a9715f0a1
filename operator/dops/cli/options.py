"""Options shared by several commands, and small parsers (durations, `k=v` parameters, operation refs)."""

from __future__ import annotations

import enum
import json
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import typer
import yaml

from ..domain import names
from . import jsonpath


class Output(enum.StrEnum):
    table = "table"
    wide = "wide"
    json = "json"
    yaml = "yaml"
    name = "name"


class State(enum.StrEnum):
    queued = "queued"
    scheduled = "scheduled"
    running = "running"
    completed = "completed"
    failed = "failed"


NamespaceOption = Annotated[
    str | None,
    typer.Option(
        "-n",
        "--namespace",
        help="Namespace of the operations (default: the global -n/$DOPS_NAMESPACE, else the kubeconfig's).",
        show_default=False,
    ),
]
AllNamespacesOption = Annotated[
    bool, typer.Option("-A", "--all-namespaces", help="Operations of every namespace (overrides -n).")
]
OutputOption = Annotated[
    str,
    typer.Option(
        "-o",
        "--output",
        help="Output format: table, wide, json, yaml, name (delegatedoperation.dops.io/NAME), "
        "jsonpath=TEMPLATE or custom-columns=HEADER:PATH,… (kubectl's syntax).",
    ),
]
SelectorOption = Annotated[
    str | None,
    typer.Option(
        "-l",
        "--selector",
        help="Label selector, as kubectl's (e.g. dops.io/target=gpu,env!=prod).",
        show_default=False,
    ),
]
FieldSelectorOption = Annotated[
    str | None,
    typer.Option(
        "--field-selector",
        help="Field selector, as kubectl's (e.g. status.runState=running; the CRD's selectable fields).",
        show_default=False,
    ),
]


@dataclass(frozen=True)
class OutputFormat:
    """A parsed -o: `kind` is table, wide, json, yaml, name, jsonpath or custom-columns; `arg` their template."""

    kind: str
    arg: str = ""

    @property
    def end(self) -> str:
        """What follows the output: nothing after a JSONPath template (kubectl prints exactly the template)."""
        return "" if self.kind == "jsonpath" else "\n"

    @property
    def machine(self) -> bool:
        """Output a program reads (everything but the human tables)."""
        return self.kind not in ("table", "wide")


def parse_output(text: str, allowed: tuple[str, ...] = ("table", "wide", "json", "yaml", "name")) -> OutputFormat:
    """`-o` text → OutputFormat; a template is checked here, so a bad one is a usage error (exit 2)."""
    kind, sep, arg = text.strip().partition("=")
    kind = kind.strip().lower()
    if kind in ("jsonpath", "custom-columns") and not sep:
        raise typer.BadParameter(f"-o {kind} needs a template: -o {kind}=…")
    if kind in ("jsonpath", "custom-columns"):
        try:
            if kind == "jsonpath":
                jsonpath.parse_template(arg)
            else:
                jsonpath.parse_columns(arg)
        except jsonpath.JsonPathError as exc:
            raise typer.BadParameter(str(exc)) from None
        return OutputFormat(kind, arg)
    if sep or kind not in allowed:
        choices = ", ".join([*allowed, "jsonpath=…", "custom-columns=…"])
        raise typer.BadParameter(f"unknown output format {text!r} (choose from {choices})")
    return OutputFormat(kind)


TimeoutOption = Annotated[
    str | None,
    typer.Option(
        "--timeout",
        help="Give up after this long (e.g. 30s, 5m, 1h30m; 0 checks once). Default: wait as long as it takes.",
        show_default=False,
    ),
]

_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def parse_duration(text: str | None) -> float | None:
    """`30s`, `5m`, `1h30m`, `250ms`, or a plain number of seconds → seconds; None/"" → None (no limit)."""
    if text is None or text.strip() == "":
        return None
    value = text.strip().lower()
    try:
        seconds = float(value)
    except ValueError:
        parts = _DURATION_PART.findall(value)
        if not parts or "".join(n + u for n, u in parts) != value:
            raise typer.BadParameter(
                f"invalid duration {text!r}: use a number of seconds or units like 30s, 5m, 1h30m"
            ) from None
        seconds = sum(float(n) * _UNITS[u] for n, u in parts)
    if seconds < 0:
        raise typer.BadParameter(f"invalid duration {text!r}: must not be negative")
    return seconds


def parse_value(text: str) -> Any:
    """A parameter value: JSON when it parses (numbers, true/false/null, lists, objects, "quoted"), else the text."""
    try:
        return json.loads(text)
    except ValueError:
        return text


def read_params_file(path: str) -> dict[str, Any]:
    """`--params-file FILE`: a YAML or JSON object (JSON is YAML); `-` reads stdin."""
    where = "stdin" if path == "-" else path
    try:
        text = sys.stdin.read() if path == "-" else Path(path).expanduser().read_text()
    except OSError as exc:
        raise typer.BadParameter(f"cannot read --params-file {where}: {exc.strerror or exc}") from None
    try:
        loaded = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" (line {mark.line + 1})" if mark is not None else ""
        problem = getattr(exc, "problem", None) or "not YAML or JSON"
        raise typer.BadParameter(f"--params-file {where} is not valid YAML/JSON{at}: {problem}") from None
    if loaded is None:
        return {}
    if not isinstance(loaded, dict):
        kind = type(loaded).__name__
        raise typer.BadParameter(f"--params-file {where} must hold an object (KEY: VALUE), not a {kind}")
    return {str(k): v for k, v in loaded.items()}


def parse_params(
    pairs: list[str] | None, params_json: str | None = None, params_file: str | None = None
) -> dict[str, Any]:
    """`--params-file FILE`, then `--params-json '{...}'`, then each `--param key=value` (later keys win)."""
    params: dict[str, Any] = read_params_file(params_file) if params_file else {}
    if params_json:
        try:
            loaded = json.loads(params_json)
        except ValueError as exc:
            raise typer.BadParameter(f"--params-json is not valid JSON: {exc}") from None
        if not isinstance(loaded, dict):
            raise typer.BadParameter("--params-json must be a JSON object")
        params.update(loaded)
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise typer.BadParameter(f"invalid --param {pair!r}: expected KEY=VALUE")
        params[key.strip()] = parse_value(value)
    return params


_PREFIXES = (
    "delegatedoperation.dops.io/",
    "delegatedoperations.dops.io/",
    "delegatedoperation/",
    "delegatedoperations/",
    "dop/",
    "dops/",
)


def parse_ref(ref: str, namespace: str) -> tuple[str, str]:
    """`NAME`, `NAMESPACE/NAME` or kubectl's `delegatedoperation.dops.io/NAME` → (namespace, name)."""
    text = ref.strip()
    for prefix in _PREFIXES:
        if text.startswith(prefix):
            text = text[len(prefix) :]
            break
    try:
        return names.split_doc_id(text, namespace)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
