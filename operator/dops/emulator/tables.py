"""Server-side Table rendering (`meta.k8s.io/v1` Table) for `kubectl get` and friends.

Why: kubectl prints Table cells verbatim and computes nothing itself (finding 5, C7): the server
decides the columns, turns dates into ages (`5m`, `3h4m`) and summarises objects (a Job's `Complete`,
a Pod's `1/1 Running`). Without Tables kubectl falls back to `NAME AGE`. helm's status check and
pykube's `as_table` read the same shape.

Key design decisions:

- Columns and cells follow upstream exactly: built-in kinds mirror
  `pkg/printers/internalversion/printers.go` (the server always renders the wide variant, kubectl hides
  `priority > 0` columns unless `-o wide`); custom resources mirror the apiextensions table convertor
  (`Name` then `additionalPrinterColumns`, only the first JSONPath match is shown, `date` cells become
  `HumanDuration(now - t)`); everything else gets the default convertor's `Name, Created At`.
- JSONPath is a small built-in evaluator (fields, `['quoted']` and `\\.`-escaped keys, `[n]`, `[-n]`,
  `[a:b]`, `[*]` and `[?(@.k=="v")]` filters), compiled once per expression. No jsonpath library.
- Column definitions are cached per resource type; column descriptions of built-ins come from the
  kubernetes client's field documentation (loaded lazily), as upstream takes them from SwaggerDoc.
- Rendering does no copying: row objects reference the caller's dicts, which must not be mutated
  before the Table is serialized.
"""

from __future__ import annotations

import functools
import json
import math
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from .registry import PrinterColumn, ResourceType

JSON = dict[str, Any]

__all__ = [
    "TableError",
    "column_definitions",
    "evaluate_jsonpath",
    "human_duration",
    "parse_table_accept",
    "row_cells",
    "table_rows",
    "to_table",
]


class TableError(Exception):
    """A malformed Table request (bad `includeObject`) or an unparsable printer-column JSONPath."""


# --------------------------------------------------------------------------------------------------
# HumanDuration and timestamps
# --------------------------------------------------------------------------------------------------


def human_duration(seconds: float) -> str:
    """apimachinery `duration.HumanDuration`: a succinct age with ~2-3 significant figures."""
    secs = int(seconds)  # Go truncates toward zero, so -1.5 s is still "0s"
    if secs < -1:
        return "<invalid>"
    if secs < 0:
        return "0s"
    if secs < 120:
        return f"{secs}s"
    minutes = secs // 60
    if minutes < 10:
        s = secs % 60
        return f"{minutes}m" if s == 0 else f"{minutes}m{s}s"
    if minutes < 180:
        return f"{minutes}m"
    hours = secs // 3600
    if hours < 8:
        m = minutes % 60
        return f"{hours}h" if m == 0 else f"{hours}h{m}m"
    if hours < 48:
        return f"{hours}h"
    if hours < 24 * 8:
        h = hours % 24
        return f"{hours // 24}d" if h == 0 else f"{hours // 24}d{h}h"
    if hours < 24 * 365 * 2:
        return f"{hours // 24}d"
    if hours < 24 * 365 * 8:
        dy = (hours // 24) % 365
        return f"{hours // 24 // 365}y" if dy == 0 else f"{hours // 24 // 365}y{dy}d"
    return f"{hours // 24 // 365}y"


def _parse_time(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    return _parse_time_text(value)


@functools.lru_cache(maxsize=4096)
def _parse_time_text(value: str) -> datetime | None:
    # Cached: a list's timestamps repeat (second resolution), and datetimes are immutable.
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def _since(value: Any, now: datetime) -> str:
    """printers.go `translateTimestampSince`: `<unknown>` for an unset time."""
    parsed = _parse_time(value)
    if parsed is None:
        return "<unknown>"
    return human_duration((now - parsed).total_seconds())


# --------------------------------------------------------------------------------------------------
# JSONPath (the subset printer columns use)
# --------------------------------------------------------------------------------------------------

_FIELD, _INDEX, _SLICE, _WILDCARD, _FILTER = range(5)


@dataclass(frozen=True, slots=True)
class _Step:
    kind: int
    key: str = ""
    index: int = 0
    stop: int | None = None
    path: tuple[_Step, ...] = ()  # filter: the `@.x.y` path
    op: str = ""  # filter: "==", "!=", "<", ">", "<=", ">=" or "" (existence)
    literal: Any = None


_FILTER_RE = re.compile(r"^\?\(\s*@((?:\.[^\s=!<>]+)*)\s*(?:(==|!=|<=|>=|<|>)\s*(.+?))?\s*\)$")


def _parse_literal(text: str) -> Any:
    text = text.strip()
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
        return text[1:-1]
    if text in ("true", "false"):
        return text == "true"
    try:
        return int(text)
    except ValueError:
        pass
    try:
        return float(text)
    except ValueError as exc:
        raise TableError(f"unrecognized filter literal {text}") from exc


@functools.lru_cache(maxsize=1024)
def _compile(path: str) -> tuple[_Step, ...]:
    text = path.strip()
    if text.startswith("{") and text.endswith("}"):
        text = text[1:-1].strip()
    steps: list[_Step] = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c == ".":
            i += 1
            if i < n and text[i] == "*":
                steps.append(_Step(_WILDCARD))
                i += 1
                continue
            key: list[str] = []
            while i < n and text[i] not in ".[":
                if text[i] == "\\" and i + 1 < n:
                    i += 1
                key.append(text[i])
                i += 1
            if key:
                steps.append(_Step(_FIELD, key="".join(key)))
        elif c == "[":
            end = _closing_bracket(text, i)
            inner = text[i + 1 : end].strip()
            i = end + 1
            steps.append(_bracket_step(inner, path))
        else:
            raise TableError(f"unrecognized character in JSONPath {path!r} at position {i}")
    return tuple(steps)


def _closing_bracket(text: str, start: int) -> int:
    quote = ""
    depth = 0
    for j in range(start, len(text)):
        ch = text[j]
        if quote:
            if ch == quote:
                quote = ""
        elif ch in "'\"":
            quote = ch
        elif ch == "[":
            depth += 1
        elif ch == "]":
            depth -= 1
            if depth == 0:
                return j
    raise TableError(f"unclosed bracket in JSONPath {text!r}")


def _bracket_step(inner: str, path: str) -> _Step:
    if inner == "*":
        return _Step(_WILDCARD)
    if len(inner) >= 2 and inner[0] == inner[-1] and inner[0] in "'\"":
        return _Step(_FIELD, key=inner[1:-1])
    if inner.startswith("?"):
        match = _FILTER_RE.match(inner)
        if not match:
            raise TableError(f"unsupported filter in JSONPath {path!r}")
        sub = _compile(match.group(1)) if match.group(1) else ()
        op = match.group(2) or ""
        literal = _parse_literal(match.group(3)) if op else None
        return _Step(_FILTER, path=sub, op=op, literal=literal)
    try:
        if ":" in inner:
            start_text, _, stop_text = inner.partition(":")
            stop_text = stop_text.split(":", 1)[0]
            return _Step(
                _SLICE,
                index=int(start_text) if start_text.strip() else 0,
                stop=int(stop_text) if stop_text.strip() else None,
            )
        return _Step(_INDEX, index=int(inner))
    except ValueError as exc:
        raise TableError(f"unsupported subscript [{inner}] in JSONPath {path!r}") from exc


def _compare(left: Any, op: str, right: Any) -> bool:
    if op == "==":
        return bool(left == right)
    if op == "!=":
        return bool(left != right)
    try:
        if op == "<":
            return bool(left < right)
        if op == ">":
            return bool(left > right)
        if op == "<=":
            return bool(left <= right)
        return bool(left >= right)
    except TypeError:
        return False


def _run(steps: Iterable[_Step], nodes: list[Any]) -> list[Any]:
    for step in steps:
        out: list[Any] = []
        kind = step.kind
        for node in nodes:
            if kind == _FIELD:
                if isinstance(node, dict) and step.key in node:
                    out.append(node[step.key])
            elif kind == _INDEX:
                if isinstance(node, list) and -len(node) <= step.index < len(node):
                    out.append(node[step.index])
            elif kind == _SLICE:
                if isinstance(node, list):
                    out.extend(node[step.index : step.stop])
            elif kind == _WILDCARD:
                if isinstance(node, list):
                    out.extend(node)
                elif isinstance(node, dict):
                    out.extend(node[k] for k in sorted(node))
            elif isinstance(node, list):  # filter
                for element in node:
                    found = _run(step.path, [element])
                    if not found:
                        continue
                    if not step.op or _compare(found[0], step.op, step.literal):
                        out.append(element)
        nodes = out
        if not nodes:
            break
    return nodes


def evaluate_jsonpath(path: str, obj: Any) -> list[Any]:
    """All matches of a kubectl-style JSONPath (`.status.x`, `{.a[0].b}`); missing keys give []."""
    return _run(_compile(path), [obj])


# --------------------------------------------------------------------------------------------------
# Cell formatting
# --------------------------------------------------------------------------------------------------


def _go_float(value: float) -> str:
    """Go's `%v` for a float64: shortest digits, `%e` form when the exponent is < -4 or >= 6 (`1e+06`)."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if value == 0:
        return "0"
    sign, digit_tuple, exponent = Decimal(repr(value)).as_tuple()
    assert isinstance(exponent, int)
    digits = "".join(map(str, digit_tuple)).rstrip("0") or "0"
    exponent += len("".join(map(str, digit_tuple))) - len(digits)
    point = len(digits) + exponent  # position of the decimal point
    x = point - 1
    prefix = "-" if sign else ""
    if x < -4 or x >= 6:
        mantissa = digits[0] + ("." + digits[1:] if len(digits) > 1 else "")
        return f"{prefix}{mantissa}e{'-' if x < 0 else '+'}{abs(x):02d}"
    if point <= 0:
        return f"{prefix}0.{'0' * -point}{digits}"
    if point >= len(digits):
        return f"{prefix}{digits}{'0' * (point - len(digits))}"
    return f"{prefix}{digits[:point]}.{digits[point:]}"


def _text(value: Any) -> str:
    """kubectl JSONPath `PrintResults` for one value: JSON for maps and lists, plain text otherwise."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return _go_float(value)
    if value is None:
        return "<nil>"
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _cell(column_type: str, value: Any, now: datetime) -> Any:
    """apiextensions `cellForJSONValue`; a value of the wrong JSON type renders as null."""
    if value is None:
        return None
    if column_type == "string":
        return _text(value)
    if column_type == "integer":
        if isinstance(value, bool):
            return None
        if isinstance(value, int):
            return value
        if isinstance(value, float):
            return int(value)
        return None
    if column_type == "number":
        if isinstance(value, bool):
            return None
        return float(value) if isinstance(value, int | float) else None
    if column_type == "boolean":
        return value if isinstance(value, bool) else None
    if column_type == "date":
        if not isinstance(value, str):
            return None
        parsed = _parse_time(value)
        if parsed is None:
            return "<invalid>"
        return human_duration((now - parsed).total_seconds())
    return None


# --------------------------------------------------------------------------------------------------
# Column definitions
# --------------------------------------------------------------------------------------------------

_NAME_DESCRIPTION = (
    "Name must be unique within a namespace. Is required when creating resources, although some resources may "
    "allow a client to request the generation of an appropriate name automatically. Name is primarily intended "
    "for creation idempotence and configuration definition. Cannot be updated. More info: "
    "https://kubernetes.io/docs/concepts/overview/working-with-objects/names#names"
)
_CREATED_DESCRIPTION = (
    "CreationTimestamp is a timestamp representing the server time when this object was created. It is not "
    "guaranteed to be set in happens-before order across separate operations. Clients may not set this value. It "
    "is represented in RFC3339 form and is in UTC.\n\nPopulated by the system. Read-only. Null for lists. More "
    "info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#metadata"
)
_CONTAINERS = "Names of each container in the template."
_IMAGES = "Images referenced by each container in the template."

# A description is a literal, or (client model, JSON field) whose documentation upstream uses (SwaggerDoc).
_Desc = str | tuple[str, str]
# (name, type, description, priority, format)
_Col = tuple[str, str, _Desc, int, str]


def _name_col() -> _Col:
    return ("Name", "string", _NAME_DESCRIPTION, 0, "name")


def _age_col() -> _Col:
    return ("Age", "string", _CREATED_DESCRIPTION, 0, "")


_BUILTIN_COLUMNS: dict[tuple[str, str], tuple[_Col, ...]] = {
    ("", "pods"): (
        _name_col(),
        ("Ready", "string", "The aggregate readiness state of this pod for accepting traffic.", 0, ""),
        ("Status", "string", "The aggregate status of the containers in this pod.", 0, ""),
        (
            "Restarts",
            "string",
            "The number of times the containers in this pod have been restarted and when the last container in "
            "this pod has restarted.",
            0,
            "",
        ),
        _age_col(),
        ("IP", "string", ("V1PodStatus", "podIP"), 1, ""),
        ("Node", "string", ("V1PodSpec", "nodeName"), 1, ""),
        ("Nominated Node", "string", ("V1PodStatus", "nominatedNodeName"), 1, ""),
        ("Readiness Gates", "string", ("V1PodSpec", "readinessGates"), 1, ""),
    ),
    ("batch", "jobs"): (
        _name_col(),
        ("Status", "string", "Status of the job.", 0, ""),
        ("Completions", "string", ("V1JobStatus", "succeeded"), 0, ""),
        ("Duration", "string", "Time required to complete the job.", 0, ""),
        _age_col(),
        ("Containers", "string", _CONTAINERS, 1, ""),
        ("Images", "string", _IMAGES, 1, ""),
        ("Selector", "string", ("V1JobSpec", "selector"), 1, ""),
    ),
    ("batch", "cronjobs"): (
        _name_col(),
        ("Schedule", "string", ("V1CronJobSpec", "schedule"), 0, ""),
        ("Timezone", "string", ("V1CronJobSpec", "timeZone"), 0, ""),
        ("Suspend", "boolean", ("V1CronJobSpec", "suspend"), 0, ""),
        ("Active", "integer", ("V1CronJobStatus", "active"), 0, ""),
        ("Last Schedule", "string", ("V1CronJobStatus", "lastScheduleTime"), 0, ""),
        _age_col(),
        ("Containers", "string", _CONTAINERS, 1, ""),
        ("Images", "string", _IMAGES, 1, ""),
        ("Selector", "string", ("V1JobSpec", "selector"), 1, ""),
    ),
    ("", "configmaps"): (_name_col(), ("Data", "string", ("V1ConfigMap", "data"), 0, ""), _age_col()),
    ("", "secrets"): (
        _name_col(),
        ("Type", "string", ("V1Secret", "type"), 0, ""),
        ("Data", "string", ("V1Secret", "data"), 0, ""),
        _age_col(),
    ),
    ("", "namespaces"): (_name_col(), ("Status", "string", "The status of the namespace", 0, ""), _age_col()),
    ("", "serviceaccounts"): (
        _name_col(),
        ("Secrets", "string", ("V1ServiceAccount", "secrets"), 0, ""),
        _age_col(),
    ),
    ("", "services"): (
        _name_col(),
        ("Type", "string", ("V1ServiceSpec", "type"), 0, ""),
        ("Cluster-IP", "string", ("V1ServiceSpec", "clusterIP"), 0, ""),
        ("External-IP", "string", ("V1ServiceSpec", "externalIPs"), 0, ""),
        ("Port(s)", "string", ("V1ServiceSpec", "ports"), 0, ""),
        _age_col(),
        ("Selector", "string", ("V1ServiceSpec", "selector"), 1, ""),
    ),
    ("", "nodes"): (
        _name_col(),
        ("Status", "string", "The status of the node", 0, ""),
        ("Roles", "string", "The roles of the node", 0, ""),
        _age_col(),
        ("Version", "string", ("V1NodeSystemInfo", "kubeletVersion"), 0, ""),
        ("Internal-IP", "string", ("V1NodeStatus", "addresses"), 1, ""),
        ("External-IP", "string", ("V1NodeStatus", "addresses"), 1, ""),
        ("OS-Image", "string", ("V1NodeSystemInfo", "osImage"), 1, ""),
        ("Kernel-Version", "string", ("V1NodeSystemInfo", "kernelVersion"), 1, ""),
        ("Container-Runtime", "string", ("V1NodeSystemInfo", "containerRuntimeVersion"), 1, ""),
    ),
    ("", "events"): (
        ("Last Seen", "string", ("CoreV1Event", "lastTimestamp"), 0, ""),
        ("Type", "string", ("CoreV1Event", "type"), 0, ""),
        ("Reason", "string", ("CoreV1Event", "reason"), 0, ""),
        ("Object", "string", ("CoreV1Event", "involvedObject"), 0, ""),
        ("Subobject", "string", ("V1ObjectReference", "fieldPath"), 1, ""),
        ("Source", "string", ("CoreV1Event", "source"), 1, ""),
        ("Message", "string", ("CoreV1Event", "message"), 0, ""),
        ("First Seen", "string", ("CoreV1Event", "firstTimestamp"), 1, ""),
        ("Count", "string", ("CoreV1Event", "count"), 1, ""),
        ("Name", "string", _NAME_DESCRIPTION, 1, "name"),
    ),
    ("apps", "deployments"): (
        _name_col(),
        ("Ready", "string", "Number of the pod with ready state", 0, ""),
        ("Up-to-date", "string", ("V1DeploymentStatus", "updatedReplicas"), 0, ""),
        ("Available", "string", ("V1DeploymentStatus", "availableReplicas"), 0, ""),
        _age_col(),
        ("Containers", "string", _CONTAINERS, 1, ""),
        ("Images", "string", _IMAGES, 1, ""),
        ("Selector", "string", ("V1DeploymentSpec", "selector"), 1, ""),
    ),
    ("apps", "replicasets"): (
        _name_col(),
        ("Desired", "integer", ("V1ReplicaSetSpec", "replicas"), 0, ""),
        ("Current", "integer", ("V1ReplicaSetStatus", "replicas"), 0, ""),
        ("Ready", "integer", ("V1ReplicaSetStatus", "readyReplicas"), 0, ""),
        _age_col(),
        ("Containers", "string", _CONTAINERS, 1, ""),
        ("Images", "string", _IMAGES, 1, ""),
        ("Selector", "string", ("V1ReplicaSetSpec", "selector"), 1, ""),
    ),
    ("apps", "statefulsets"): (
        _name_col(),
        ("Ready", "string", "Number of the pod with ready state", 0, ""),
        _age_col(),
        ("Containers", "string", _CONTAINERS, 1, ""),
        ("Images", "string", _IMAGES, 1, ""),
    ),
    ("apps", "daemonsets"): (
        _name_col(),
        ("Desired", "integer", ("V1DaemonSetStatus", "desiredNumberScheduled"), 0, ""),
        ("Current", "integer", ("V1DaemonSetStatus", "currentNumberScheduled"), 0, ""),
        ("Ready", "integer", ("V1DaemonSetStatus", "numberReady"), 0, ""),
        ("Up-to-date", "integer", ("V1DaemonSetStatus", "updatedNumberScheduled"), 0, ""),
        ("Available", "integer", ("V1DaemonSetStatus", "numberAvailable"), 0, ""),
        ("Node Selector", "string", ("V1PodSpec", "nodeSelector"), 0, ""),
        _age_col(),
        ("Containers", "string", _CONTAINERS, 1, ""),
        ("Images", "string", _IMAGES, 1, ""),
        ("Selector", "string", ("V1DaemonSetSpec", "selector"), 1, ""),
    ),
    ("coordination.k8s.io", "leases"): (
        _name_col(),
        ("Holder", "string", ("V1LeaseSpec", "holderIdentity"), 0, ""),
        _age_col(),
    ),
}
# events.k8s.io/v1 Events are the same internal object, printed by the same printer.
_BUILTIN_COLUMNS[("events.k8s.io", "events")] = _BUILTIN_COLUMNS[("", "events")]

_DEFAULT_COLUMNS: tuple[_Col, ...] = (
    _name_col(),
    ("Created At", "date", _CREATED_DESCRIPTION, 0, ""),
)


def _describe(desc: _Desc) -> str:
    if isinstance(desc, str):
        return desc
    try:
        from .builtin_schemas import field_description

        return field_description(*desc)
    except Exception:  # the client package is optional for rendering; descriptions are cosmetic
        return ""


def _custom_columns(columns: tuple[PrinterColumn, ...]) -> list[JSON]:
    out = [_definition(_name_col())]
    if not columns:  # CRD defaulting adds an Age column to versions that declare none
        columns = (PrinterColumn(name="Age", type="date", json_path=".metadata.creationTimestamp"),)
    for col in columns:
        description = col.description or f"Custom resource definition column (in JSONPath format): {col.json_path}"
        out.append(
            {
                "name": col.name,
                "type": col.type,
                "format": col.format,
                "description": description,
                "priority": col.priority,
            }
        )
    return out


def _definition(col: _Col) -> JSON:
    name, ctype, desc, priority, fmt = col
    return {"name": name, "type": ctype, "format": fmt, "description": _describe(desc), "priority": priority}


@functools.lru_cache(maxsize=512)
def _all_definitions(rtype: ResourceType) -> tuple[JSON, ...]:
    if rtype.printer_columns is not None:
        return tuple(_custom_columns(rtype.printer_columns))
    columns = _BUILTIN_COLUMNS.get((rtype.group, rtype.plural), _DEFAULT_COLUMNS)
    return tuple(_definition(c) for c in columns)


def column_definitions(rtype: ResourceType, wide: bool = True) -> list[JSON]:
    """The Table `columnDefinitions`; `wide=False` drops `priority > 0` (the server always sends them)."""
    definitions = _all_definitions(rtype)
    if wide:
        return list(definitions)
    return [d for d in definitions if d["priority"] == 0]


# --------------------------------------------------------------------------------------------------
# Built-in printers (printers.go), each returning the wide cells in column order.
# --------------------------------------------------------------------------------------------------


def _get(obj: Mapping[str, Any], *keys: str) -> Any:
    node: Any = obj
    for key in keys:
        if not isinstance(node, Mapping):
            return None
        node = node.get(key)
    return node


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _str(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _dict(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _format_labels(labels: Any) -> str:
    """labels.FormatLabels: `a=b,c=d` sorted by key, `<none>` when empty."""
    items = _dict(labels)
    if not items:
        return "<none>"
    return ",".join(f"{k}={items[k]}" for k in sorted(items))


def _selector_string(selector: Any) -> str:
    """metav1.LabelSelectorAsSelector(...).String(): requirements sorted by key, values sorted."""
    if not isinstance(selector, Mapping):
        return ""
    requirements: list[tuple[str, str]] = []
    for key, value in _dict(selector.get("matchLabels")).items():
        requirements.append((key, f"{key}={value}"))
    for expr in _list(selector.get("matchExpressions")):
        key = _str(_get(expr, "key"))
        op = _str(_get(expr, "operator"))
        values = ",".join(sorted(str(v) for v in _list(_get(expr, "values"))))
        if op == "In":
            requirements.append((key, f"{key} in ({values})"))
        elif op == "NotIn":
            requirements.append((key, f"{key} notin ({values})"))
        elif op == "Exists":
            requirements.append((key, key))
        elif op == "DoesNotExist":
            requirements.append((key, f"!{key}"))
        else:
            return "<error>"
    requirements.sort(key=lambda r: r[0])
    return ",".join(r[1] for r in requirements)


def _format_label_selector(selector: Any) -> str:
    """metav1.FormatLabelSelector: like `_selector_string`, `<none>` when empty."""
    return _selector_string(selector) or "<none>"


def _containers(pod_spec: Any) -> tuple[str, str]:
    containers = _list(_get(pod_spec, "containers")) if isinstance(pod_spec, Mapping) else []
    names = ",".join(_str(_get(c, "name")) for c in containers)
    images = ",".join(_str(_get(c, "image")) for c in containers)
    return names, images


def _condition_true(conditions: Any, kind: str) -> bool:
    """hasJobCondition: the first condition of that type decides."""
    for cond in _list(conditions):
        if isinstance(cond, Mapping) and cond.get("type") == kind:
            return cond.get("status") == "True"
    return False


def _age(obj: Mapping[str, Any], now: datetime) -> str:
    return _since(_get(obj, "metadata", "creationTimestamp"), now)


def _name(obj: Mapping[str, Any]) -> str:
    return _str(_get(obj, "metadata", "name"))


def _print_pod(obj: Mapping[str, Any], now: datetime) -> list[Any]:
    spec = _dict(obj.get("spec"))
    status = _dict(obj.get("status"))
    phase = _str(status.get("phase"))
    reason = _str(status.get("reason")) or phase
    containers = _list(spec.get("containers"))
    total = len(containers)
    ready = 0
    restarts = 0
    last_restart: datetime | None = None
    restartable_restarts = 0
    last_restartable: datetime | None = None

    for cond in _list(status.get("conditions")):
        if _get(cond, "type") == "PodScheduled" and _get(cond, "reason") == "SchedulingGated":
            reason = "SchedulingGated"

    init_specs = {_str(_get(c, "name")): c for c in _list(spec.get("initContainers"))}
    restartable = {name for name, c in init_specs.items() if _get(c, "restartPolicy") == "Always"}
    total += len(restartable)

    def later(current: datetime | None, state: Any) -> datetime | None:
        finished = _parse_time(_get(state, "terminated", "finishedAt"))
        if finished is not None and (current is None or finished > current):
            return finished
        return current

    initializing = False
    init_statuses = _list(status.get("initContainerStatuses"))
    for i, cs in enumerate(init_statuses):
        restarts += _int(_get(cs, "restartCount"))
        last_restart = later(last_restart, _get(cs, "lastState"))
        name = _str(_get(cs, "name"))
        if name in restartable:
            restartable_restarts += _int(_get(cs, "restartCount"))
            last_restartable = later(last_restartable, _get(cs, "lastState"))
        terminated = _dict(_get(cs, "state", "terminated"))
        waiting = _dict(_get(cs, "state", "waiting"))
        if terminated and _int(terminated.get("exitCode")) == 0:
            continue
        if name in restartable and _get(cs, "started") is True:
            if _get(cs, "ready") is True:
                ready += 1
            continue
        if terminated:
            if not _str(terminated.get("reason")):
                if _int(terminated.get("signal")) != 0:
                    reason = f"Init:Signal:{_int(terminated.get('signal'))}"
                else:
                    reason = f"Init:ExitCode:{_int(terminated.get('exitCode'))}"
            else:
                reason = "Init:" + _str(terminated.get("reason"))
        elif waiting and _str(waiting.get("reason")) and waiting.get("reason") != "PodInitializing":
            reason = "Init:" + _str(waiting.get("reason"))
        else:
            reason = f"Init:{i}/{len(init_specs)}"
        initializing = True
        break

    if not initializing or _condition_true(status.get("conditions"), "Initialized"):
        restarts = restartable_restarts
        last_restart = last_restartable
        has_running = False
        for cs in reversed(_list(status.get("containerStatuses"))):
            restarts += _int(_get(cs, "restartCount"))
            last_restart = later(last_restart, _get(cs, "lastState"))
            waiting = _dict(_get(cs, "state", "waiting"))
            terminated = _dict(_get(cs, "state", "terminated"))
            if waiting and _str(waiting.get("reason")):
                reason = _str(waiting.get("reason"))
            elif terminated and _str(terminated.get("reason")):
                reason = _str(terminated.get("reason"))
            elif terminated:
                if _int(terminated.get("signal")) != 0:
                    reason = f"Signal:{_int(terminated.get('signal'))}"
                else:
                    reason = f"ExitCode:{_int(terminated.get('exitCode'))}"
            elif _get(cs, "ready") is True and isinstance(_get(cs, "state", "running"), Mapping):
                has_running = True
                ready += 1
        if reason == "Completed" and has_running:
            reason = "Running" if _condition_true(status.get("conditions"), "Ready") else "NotReady"

    deleting = _get(obj, "metadata", "deletionTimestamp") is not None
    if deleting and status.get("reason") == "NodeLost":
        reason = "Unknown"
    elif deleting and phase not in ("Succeeded", "Failed"):
        reason = "Terminating"

    restarts_text = str(restarts)
    if restarts and last_restart is not None:
        restarts_text = f"{restarts} ({human_duration((now - last_restart).total_seconds())} ago)"

    pod_ips = _list(status.get("podIPs"))
    pod_ip = _str(_get(pod_ips[0], "ip")) if pod_ips else ""
    gates = _list(spec.get("readinessGates"))
    readiness = "<none>"
    if gates:
        conditions = {_get(c, "type"): _get(c, "status") for c in reversed(_list(status.get("conditions")))}
        true = sum(1 for g in gates if conditions.get(_get(g, "conditionType")) == "True")
        readiness = f"{true}/{len(gates)}"
    return [
        _name(obj),
        f"{ready}/{total}",
        reason,
        restarts_text,
        _age(obj, now),
        pod_ip or "<none>",
        _str(spec.get("nodeName")) or "<none>",
        _str(status.get("nominatedNodeName")) or "<none>",
        readiness,
    ]


def _pod_row_conditions(obj: Mapping[str, Any]) -> list[JSON] | None:
    phase = _get(obj, "status", "phase")
    if phase == "Succeeded":
        return [
            {
                "type": "Completed",
                "status": "True",
                "reason": "Succeeded",
                "message": "The pod has completed successfully.",
            }
        ]
    if phase == "Failed":
        return [{"type": "Completed", "status": "True", "reason": "Failed", "message": "The pod failed."}]
    return None


def _print_job(obj: Mapping[str, Any], now: datetime) -> list[Any]:
    spec = _dict(obj.get("spec"))
    status = _dict(obj.get("status"))
    succeeded = _int(status.get("succeeded"))
    completions = spec.get("completions")
    if isinstance(completions, int) and not isinstance(completions, bool):
        done = f"{succeeded}/{completions}"
    elif _int(spec.get("parallelism")) > 1:
        done = f"{succeeded}/1 of {_int(spec.get('parallelism'))}"
    else:
        done = f"{succeeded}/1"
    start = _parse_time(status.get("startTime"))
    finish = _parse_time(status.get("completionTime"))
    duration = ""
    if start is not None:
        duration = human_duration(((finish or now) - start).total_seconds())
    conditions = status.get("conditions")
    if _condition_true(conditions, "Complete"):
        state = "Complete"
    elif _condition_true(conditions, "Failed"):
        state = "Failed"
    elif _get(obj, "metadata", "deletionTimestamp") is not None:
        state = "Terminating"
    elif _condition_true(conditions, "Suspended"):
        state = "Suspended"
    elif _condition_true(conditions, "FailureTarget"):
        state = "FailureTarget"
    elif _condition_true(conditions, "SuccessCriteriaMet"):
        state = "SuccessCriteriaMet"
    else:
        state = "Running"
    names, images = _containers(_get(spec, "template", "spec"))
    return [
        _name(obj),
        state,
        done,
        duration,
        _age(obj, now),
        names,
        images,
        _format_label_selector(spec.get("selector")),
    ]


def _print_cronjob(obj: Mapping[str, Any], now: datetime) -> list[Any]:
    spec = _dict(obj.get("spec"))
    status = _dict(obj.get("status"))
    last = status.get("lastScheduleTime")
    job_spec = _get(spec, "jobTemplate", "spec")
    names, images = _containers(_get(job_spec, "template", "spec"))
    suspend = spec.get("suspend")
    return [
        _name(obj),
        _str(spec.get("schedule")),
        _str(spec.get("timeZone")) or "<none>",
        "False" if suspend is None else ("True" if suspend else "False"),
        len(_list(status.get("active"))),
        _since(last, now) if last else "<none>",
        _age(obj, now),
        names,
        images,
        _format_label_selector(_get(job_spec, "selector")),
    ]


def _print_deployment(obj: Mapping[str, Any], now: datetime) -> list[Any]:
    spec = _dict(obj.get("spec"))
    status = _dict(obj.get("status"))
    desired = spec.get("replicas", 1)
    names, images = _containers(_get(spec, "template", "spec"))
    return [
        _name(obj),
        f"{_int(status.get('readyReplicas'))}/{_int(desired)}",
        _int(status.get("updatedReplicas")),
        _int(status.get("availableReplicas")),
        _age(obj, now),
        names,
        images,
        _selector_string(spec.get("selector")),
    ]


def _print_replicaset(obj: Mapping[str, Any], now: datetime) -> list[Any]:
    spec = _dict(obj.get("spec"))
    status = _dict(obj.get("status"))
    names, images = _containers(_get(spec, "template", "spec"))
    return [
        _name(obj),
        _int(spec.get("replicas", 1)),
        _int(status.get("replicas")),
        _int(status.get("readyReplicas")),
        _age(obj, now),
        names,
        images,
        _format_label_selector(spec.get("selector")),
    ]


def _print_statefulset(obj: Mapping[str, Any], now: datetime) -> list[Any]:
    spec = _dict(obj.get("spec"))
    status = _dict(obj.get("status"))
    names, images = _containers(_get(spec, "template", "spec"))
    ready = f"{_int(status.get('readyReplicas'))}/{_int(spec.get('replicas', 1))}"
    return [_name(obj), ready, _age(obj, now), names, images]


def _print_daemonset(obj: Mapping[str, Any], now: datetime) -> list[Any]:
    spec = _dict(obj.get("spec"))
    status = _dict(obj.get("status"))
    pod_spec = _get(spec, "template", "spec")
    names, images = _containers(pod_spec)
    return [
        _name(obj),
        _int(status.get("desiredNumberScheduled")),
        _int(status.get("currentNumberScheduled")),
        _int(status.get("numberReady")),
        _int(status.get("updatedNumberScheduled")),
        _int(status.get("numberAvailable")),
        _format_labels(_get(pod_spec, "nodeSelector")),
        _age(obj, now),
        names,
        images,
        _format_label_selector(spec.get("selector")),
    ]


def _print_configmap(obj: Mapping[str, Any], now: datetime) -> list[Any]:
    return [_name(obj), len(_dict(obj.get("data"))) + len(_dict(obj.get("binaryData"))), _age(obj, now)]


def _print_secret(obj: Mapping[str, Any], now: datetime) -> list[Any]:
    return [_name(obj), _str(obj.get("type")), len(_dict(obj.get("data"))), _age(obj, now)]


def _print_namespace(obj: Mapping[str, Any], now: datetime) -> list[Any]:
    return [_name(obj), _str(_get(obj, "status", "phase")), _age(obj, now)]


def _print_serviceaccount(obj: Mapping[str, Any], now: datetime) -> list[Any]:
    return [_name(obj), len(_list(obj.get("secrets"))), _age(obj, now)]


def _print_lease(obj: Mapping[str, Any], now: datetime) -> list[Any]:
    return [_name(obj), _str(_get(obj, "spec", "holderIdentity")), _age(obj, now)]


def _service_external_ip(spec: Mapping[str, Any], status: Mapping[str, Any]) -> str:
    external = [str(ip) for ip in _list(spec.get("externalIPs"))]
    kind = spec.get("type") or "ClusterIP"
    if kind in ("ClusterIP", "NodePort"):
        return ",".join(external) if external else "<none>"
    if kind == "LoadBalancer":
        found: set[str] = set()
        for ingress in _list(_get(status, "loadBalancer", "ingress")):
            ip, host = _str(_get(ingress, "ip")), _str(_get(ingress, "hostname"))
            if ip or host:
                found.add(ip or host)
        lb = ",".join(sorted(found))  # the server renders wide, so no 16-character clipping
        if external:
            return ",".join(([*lb.split(",")] if lb else []) + external)
        return lb or "<pending>"
    if kind == "ExternalName":
        return _str(spec.get("externalName"))
    return "<unknown>"


def _print_service(obj: Mapping[str, Any], now: datetime) -> list[Any]:
    spec = _dict(obj.get("spec"))
    status = _dict(obj.get("status"))
    cluster_ips = _list(spec.get("clusterIPs"))
    internal = str(cluster_ips[0]) if cluster_ips else "<none>"
    pieces = []
    for port in _list(spec.get("ports")):
        number, protocol, node_port = (
            _int(_get(port, "port")),
            _str(_get(port, "protocol")),
            _int(_get(port, "nodePort")),
        )
        pieces.append(f"{number}:{node_port}/{protocol}" if node_port > 0 else f"{number}/{protocol}")
    return [
        _name(obj),
        _str(spec.get("type")),
        internal,
        _service_external_ip(spec, status),
        ",".join(pieces) or "<none>",
        _age(obj, now),
        _format_labels(spec.get("selector")),
    ]


def _print_node(obj: Mapping[str, Any], now: datetime) -> list[Any]:
    spec = _dict(obj.get("spec"))
    status = _dict(obj.get("status"))
    states: list[str] = []
    conditions = {_get(c, "type"): c for c in _list(status.get("conditions"))}
    ready = conditions.get("Ready")
    if ready is not None:
        states.append("Ready" if _get(ready, "status") == "True" else "NotReady")
    if not states:
        states.append("Unknown")
    if spec.get("unschedulable") is True:
        states.append("SchedulingDisabled")
    roles: set[str] = set()
    for key, value in _dict(_get(obj, "metadata", "labels")).items():
        if key.startswith("node-role.kubernetes.io/") and key[len("node-role.kubernetes.io/") :]:
            roles.add(key[len("node-role.kubernetes.io/") :])
        elif key == "kubernetes.io/role" and value:
            roles.add(str(value))
    info = _dict(status.get("nodeInfo"))

    def address(kind: str) -> str:
        for item in _list(status.get("addresses")):
            if _get(item, "type") == kind:
                return _str(_get(item, "address"))
        return "<none>"

    return [
        _name(obj),
        ",".join(states),
        ",".join(sorted(roles)) or "<none>",
        _age(obj, now),
        _str(info.get("kubeletVersion")),
        address("InternalIP"),
        address("ExternalIP"),
        _str(info.get("osImage")) or "<unknown>",
        _str(info.get("kernelVersion")) or "<unknown>",
        _str(info.get("containerRuntimeVersion")) or "<unknown>",
    ]


def _print_event(obj: Mapping[str, Any], now: datetime) -> list[Any]:
    # events.k8s.io/v1 objects are converted to the core shape first, as the real server does.
    if "regarding" in obj or "note" in obj or "deprecatedLastTimestamp" in obj:
        involved = _dict(obj.get("regarding"))
        message = _str(obj.get("note"))
        first, last = obj.get("deprecatedFirstTimestamp"), obj.get("deprecatedLastTimestamp")
        count_value = obj.get("deprecatedCount")
        source = _dict(obj.get("deprecatedSource"))
        reporting_controller = _str(obj.get("reportingController"))
    else:
        involved = _dict(obj.get("involvedObject"))
        message = _str(obj.get("message"))
        first, last = obj.get("firstTimestamp"), obj.get("lastTimestamp")
        count_value = obj.get("count")
        source = _dict(obj.get("source"))
        reporting_controller = _str(obj.get("reportingComponent"))
    first_seen = _since(first, now) if _parse_time(first) else _since(obj.get("eventTime"), now)
    last_seen = _since(last, now) if _parse_time(last) else first_seen
    count = _int(count_value)
    series = obj.get("series")
    if isinstance(series, Mapping):
        last_seen = _since(series.get("lastObservedTime"), now)
        count = _int(series.get("count"))
    elif count == 0:
        count = 1  # singleton events have no count in the new API
    kind = _str(involved.get("kind")).lower()
    target = f"{kind}/{involved['name']}" if _str(involved.get("name")) else kind
    component = _str(source.get("component")) or reporting_controller
    host = _str(source.get("host")) or _str(obj.get("reportingInstance"))
    return [
        last_seen,
        _str(obj.get("type")),
        _str(obj.get("reason")),
        target,
        _str(involved.get("fieldPath")),
        f"{component}, {host}" if host else component,
        message.strip(),
        first_seen,
        count,
        _name(obj),
    ]


def _print_default(obj: Mapping[str, Any], now: datetime) -> list[Any]:
    created = _parse_time(_get(obj, "metadata", "creationTimestamp"))
    stamp = created.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ") if created else "0001-01-01T00:00:00Z"
    return [_name(obj), stamp]


_Printer = Callable[[Mapping[str, Any], datetime], list[Any]]

_PRINTERS: dict[tuple[str, str], _Printer] = {
    ("", "pods"): _print_pod,
    ("batch", "jobs"): _print_job,
    ("batch", "cronjobs"): _print_cronjob,
    ("", "configmaps"): _print_configmap,
    ("", "secrets"): _print_secret,
    ("", "namespaces"): _print_namespace,
    ("", "serviceaccounts"): _print_serviceaccount,
    ("", "services"): _print_service,
    ("", "nodes"): _print_node,
    ("", "events"): _print_event,
    ("events.k8s.io", "events"): _print_event,
    ("apps", "deployments"): _print_deployment,
    ("apps", "replicasets"): _print_replicaset,
    ("apps", "statefulsets"): _print_statefulset,
    ("apps", "daemonsets"): _print_daemonset,
    ("coordination.k8s.io", "leases"): _print_lease,
}


_Extract = Callable[[Any], Any]
_Format = Callable[[Any, datetime], Any]


def _first_match(path: str) -> _Extract:
    """The first match of a printer-column JSONPath (None when nothing matches), compiled once per column.

    Plain field paths (`.spec.x.y`, nearly every printer column) become direct dict lookups; anything else runs
    the general evaluator. Same results as `evaluate_jsonpath(path, obj)[0]`.
    """
    try:
        steps = _compile(path)
    except TableError:
        return lambda obj: None
    if not all(step.kind == _FIELD for step in steps):

        def general(obj: Any) -> Any:
            found = _run(steps, [obj])
            return found[0] if found else None

        return general
    keys = tuple(step.key for step in steps)
    if len(keys) == 2:
        k1, k2 = keys

        def two(obj: Any) -> Any:
            node = obj.get(k1) if isinstance(obj, dict) else None
            return node.get(k2) if isinstance(node, dict) else None

        return two

    def lookup(obj: Any) -> Any:
        node = obj
        for key in keys:
            if not isinstance(node, dict):
                return None
            node = node.get(key)
        return node

    return lookup


def _formatter(column_type: str) -> _Format:
    if column_type == "string":
        return lambda value, now: value if type(value) is str else _cell("string", value, now)
    return lambda value, now: _cell(column_type, value, now)


# Compiled columns per printer-column tuple, keyed by identity (hashing the dataclasses per row costs more than
# rendering the row). Bounded: tuples of CRDs deleted long ago fall out when it fills up.
_PLANS: dict[int, tuple[tuple[PrinterColumn, ...], tuple[tuple[_Extract, _Format], ...]]] = {}


def _plan(columns: tuple[PrinterColumn, ...]) -> tuple[tuple[_Extract, _Format], ...]:
    cached = _PLANS.get(id(columns))
    if cached is not None and cached[0] is columns:
        return cached[1]
    plan = tuple((_first_match(col.json_path), _formatter(col.type)) for col in columns)
    if len(_PLANS) >= 256:
        _PLANS.clear()
    _PLANS[id(columns)] = (columns, plan)
    return plan


def _custom_cells(columns: tuple[PrinterColumn, ...], obj: Mapping[str, Any], now: datetime) -> list[Any]:
    meta = obj.get("metadata")
    name = meta.get("name") if isinstance(meta, dict) else None
    cells: list[Any] = [name if isinstance(name, str) else ""]
    if not columns:
        return [*cells, _cell("date", _get(obj, "metadata", "creationTimestamp"), now)]
    # Upstream only supports simple paths and shows the first result.
    for extract, fmt in _plan(columns):
        cells.append(fmt(extract(obj), now))
    return cells


def row_cells(rtype: ResourceType, obj: Mapping[str, Any], now: datetime, wide: bool = True) -> list[Any]:
    """The cells of one row, in `column_definitions(rtype, wide)` order."""
    if now.tzinfo is None:
        now = now.replace(tzinfo=UTC)
    if rtype.printer_columns is not None:
        cells = _custom_cells(rtype.printer_columns, obj, now)
    else:
        cells = _PRINTERS.get((rtype.group, rtype.plural), _print_default)(obj, now)
    if wide:
        return cells
    definitions = _all_definitions(rtype)
    return [cell for cell, d in zip(cells, definitions, strict=False) if d["priority"] == 0]


# --------------------------------------------------------------------------------------------------
# The Table
# --------------------------------------------------------------------------------------------------

INCLUDE_OBJECT_VALUES = ("None", "Metadata", "Object")


def to_table(
    rtype: ResourceType,
    objects: Iterable[Mapping[str, Any]],
    *,
    now: datetime,
    include_object: str = "Metadata",
    resource_version: str = "",
    continue_token: str = "",
    wide: bool = True,
    no_headers: bool = False,
) -> JSON:
    """A `meta.k8s.io/v1` Table of `objects`.

    `include_object` selects each row's `object`: `Metadata` (default) a PartialObjectMetadata, `Object`
    the full object, `None` nothing. `no_headers` (TableOptions.noHeaders, sent on watches after the
    first event) omits `columnDefinitions`.
    """
    rows = list(table_rows(rtype, objects, now=now, include_object=include_object, wide=wide))
    metadata: JSON = {}
    if resource_version:
        metadata["resourceVersion"] = resource_version
    if continue_token:
        metadata["continue"] = continue_token
    table: JSON = {"kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": metadata}
    table["columnDefinitions"] = [] if no_headers else column_definitions(rtype, wide)
    table["rows"] = rows
    return table


def table_rows(
    rtype: ResourceType,
    objects: Iterable[Mapping[str, Any]],
    *,
    now: datetime,
    include_object: str = "Metadata",
    wide: bool = True,
) -> Iterator[JSON]:
    """The rows of `to_table`, one at a time: a server can encode each and drop it (no list of 10,000 rows
    outlives the young GC generations, which would make the next full collection come sooner)."""
    if include_object not in INCLUDE_OBJECT_VALUES:
        raise TableError(
            f'includeObject: Unsupported value: "{include_object}": supported values: "Metadata", "None", "Object"'
        )
    if now.tzinfo is None:
        now = now.replace(tzinfo=UTC)
    is_pods = rtype.printer_columns is None and rtype.group == "" and rtype.plural == "pods"
    for obj in objects:
        row: JSON = {"cells": row_cells(rtype, obj, now, wide)}
        if is_pods and (conditions := _pod_row_conditions(obj)) is not None:
            row["conditions"] = conditions
        if include_object == "Metadata":
            row["object"] = {
                "kind": "PartialObjectMetadata",
                "apiVersion": "meta.k8s.io/v1",
                "metadata": obj.get("metadata") or {},
            }
        elif include_object == "Object":
            row["object"] = obj
        yield row


def parse_table_accept(accept: str) -> bool:
    """True when an Accept header asks for a Table (`application/json;as=Table;v=v1;g=meta.k8s.io`).

    Any media range with `as=Table` qualifies when its `g` (if given) is `meta.k8s.io` and its `v` (if
    given) is `v1` or `v1beta1`; parameter order and whitespace do not matter.
    """
    if "Table" not in accept:
        return False
    for media_range in accept.split(","):
        params: dict[str, str] = {}
        for part in media_range.split(";")[1:]:
            key, _, value = part.partition("=")
            params[key.strip().lower()] = value.strip().strip('"')
        if params.get("as") != "Table":
            continue
        if params.get("g", "meta.k8s.io") != "meta.k8s.io":
            continue
        if params.get("v", "v1") not in ("v1", "v1beta1"):
            continue
        return True
    return False
