"""Options shared by several commands, and small parsers (durations, `k=v` parameters, operation refs)."""

from __future__ import annotations

import enum
import json
import re
from typing import Annotated, Any

import typer

from ..domain import names


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
    Output,
    typer.Option("-o", "--output", case_sensitive=False, help="Output format: table, wide, json, yaml or name."),
]
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


def parse_params(pairs: list[str] | None, params_json: str | None = None) -> dict[str, Any]:
    """`--params-json '{...}'` then each `--param key=value` (later keys win)."""
    params: dict[str, Any] = {}
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
