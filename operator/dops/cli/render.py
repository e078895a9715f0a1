"""Pure renderers: operation documents (and events) → rich renderables or text. No I/O, no clients.

Every function takes `now` where time matters, so the output is deterministic under test.
"""

from __future__ import annotations

import copy
import datetime as dt
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import yaml
from rich import box
from rich.console import Group, RenderableType
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from ..api.times import parse_time
from ..api.types import DelegatedOperationDocument, ExecutionRunState
from . import jsonpath

JSON = dict[str, Any]

STATE_STYLES = {
    "queued": "cyan",
    "scheduled": "blue",
    "running": "yellow",
    "completed": "green",
    "failed": "bold red",
}
OUTPUT_FORMATS = ("table", "wide", "json", "yaml", "name")
MAX_RESULT_LINES = 40
MAX_ERROR_LINES = 15


# --------------------------------------------------------------------------------------------- time


def human_duration(seconds: float) -> str:
    """kubectl's short human durations: 45s, 3m12s, 17m, 5h3m, 2d4h, 40d, 2y."""
    s = max(0, int(seconds))
    if s < 120:
        return f"{s}s"
    minutes = s // 60
    if minutes < 10:
        rest = s % 60
        return f"{minutes}m{rest}s" if rest else f"{minutes}m"
    if minutes < 180:
        return f"{minutes}m"
    hours = minutes // 60
    if hours < 8:
        rest = minutes % 60
        return f"{hours}h{rest}m" if rest else f"{hours}h"
    if hours < 48:
        return f"{hours}h"
    days = hours // 24
    if days < 8:
        rest = hours % 24
        return f"{days}d{rest}h" if rest else f"{days}d"
    if days < 365 * 2:
        return f"{days}d"
    return f"{days // 365}y"


def age(when: dt.datetime | None, now: dt.datetime) -> str:
    return human_duration((now - when).total_seconds()) if when is not None else "<unknown>"


def precise_duration(seconds: float) -> str:
    """Durations of a run: 0.4s, 12.3s, 4m05s, 2h01m."""
    if seconds < 60:
        return f"{seconds:.1f}s"
    s = int(seconds)
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{(s % 3600) // 60:02d}m"


def run_duration(doc: DelegatedOperationDocument, now: dt.datetime) -> str:
    """How long the operation ran (started → finished, or → now while running); "" before it started."""
    if doc.started_at is None:
        return ""
    end = finished_at(doc)
    if end is None:
        if doc.run_state is not ExecutionRunState.RUNNING:
            return ""
        end = now
    return precise_duration(max(0.0, (end - doc.started_at).total_seconds()))


def finished_at(doc: DelegatedOperationDocument) -> dt.datetime | None:
    if doc.run_state is ExecutionRunState.COMPLETED:
        return doc.completed_at
    if doc.run_state is ExecutionRunState.FAILED:
        return doc.failed_at
    return None


def when_text(value: dt.datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S") + "Z" if value is not None else ""


# --------------------------------------------------------------------------------------------- cells


def state_name(doc: DelegatedOperationDocument) -> str:
    return str(doc.run_state) if doc.run_state is not None else "pending"


def progress_text(doc: DelegatedOperationDocument) -> str:
    """`40%`, `40% (label)`, `(label)` or "" (FiftyOne's list shows "(NN%)" or "(label)" for running ops)."""
    progress = doc.status
    if progress is None:
        return ""
    parts = []
    if progress.progress is not None:
        parts.append(f"{progress.progress * 100:.0f}%")
    if progress.label:
        parts.append(f"({progress.label})")
    return " ".join(parts)


def state_text(doc: DelegatedOperationDocument, with_progress: bool = True) -> Text:
    name = state_name(doc)
    text = Text(name, style=STATE_STYLES.get(name, ""))
    if with_progress and doc.run_state is ExecutionRunState.RUNNING:
        extra = progress_text(doc)
        if extra:
            text.append(" " + extra)
    return text


def dataset_of(doc: DelegatedOperationDocument) -> str:
    if doc.context is not None and doc.context.dataset_name:
        return doc.context.dataset_name
    return doc.dataset_id or ""


def display_id(doc: DelegatedOperationDocument, with_namespace: bool = False) -> str:
    name = doc.id or ""
    return f"{doc.namespace}/{name}" if with_namespace and doc.namespace else name


def error_message(doc: DelegatedOperationDocument) -> str:
    """A one-line reason for a failed operation (what `wait`/`submit --wait` end with).

    The recorded message is often several lines: a traceback (its last line names the exception), or
    "the worker exited with …: " followed by the pod's log tail, whose lines are log records (the worker's
    INFO/WARNING lines, e.g. that it could not write its termination message) around what the process said
    last. The reason is the first line without a leading log record, plus the last line that is not one of
    those routine records (ERROR records are kept, without their time stamp)."""
    result = doc.result
    if result is None:
        raw = ((doc.resource or {}).get("status") or {}).get("result") or {}
        message = raw.get("errorMessage") or raw.get("error") or ""
    else:
        message = result.error_message or result.error or ""
    lines = [line.strip() for line in str(message).strip().splitlines() if line.strip()]
    if not lines:
        return ""
    if len(lines) == 1:
        return _strip_record(lines[0])
    head = _strip_record(_LOG_RECORD_INSIDE.split(lines[0], maxsplit=1)[0].rstrip(": ").strip())
    if _ROUTINE_RECORD.match(lines[0]) or lines[0].startswith("Traceback"):
        head = ""
    tail = [_strip_record(line) for line in lines[1:] if not _ROUTINE_RECORD.match(line)]
    tail = [line for line in tail if line and not line.startswith(("File ", "Traceback", "^", "~"))]
    last = tail[-1] if tail else ""
    if head and last and last not in head:
        return f"{head}: {last}"
    return head or last or _strip_record(lines[-1])


# A log record as dops (and Python's logging) prints it: "2026-01-02 03:04:05,678 LEVEL logger: message".
_STAMP = r"\[?\d{4}-\d\d-\d\d[ T]\d\d:\d\d:\d\d(?:[,.]\d+)?Z?\]? +\[? *"
_RECORD = _STAMP + r"(?:DEBUG|INFO|WARNING|WARN|ERROR|CRITICAL)\b"
_ROUTINE_RECORD = re.compile(r"^" + _STAMP + r"(?:DEBUG|INFO|WARNING|WARN)\b")
_LOG_RECORD_INSIDE = re.compile(r":? " + _RECORD)
_ANY_RECORD = re.compile(r"^" + _RECORD + r"\s*\]?\s*(?:[\w.]+\s*:\s*)?")


def _strip_record(line: str) -> str:
    """An ERROR record's message without its time stamp, level and logger."""
    return _ANY_RECORD.sub("", line, count=1).strip() or line


# --------------------------------------------------------------------------------------------- list


def columns(namespaces: bool = False, wide: bool = False) -> list[str]:
    cols = ["NAME", "LABEL", "OPERATOR", "STATE", "AGE", "DURATION"]
    if namespaces:
        cols.insert(0, "NAMESPACE")
    if wide:
        cols += ["TARGET", "DATASET", "POD", "FLAGS"]
    return cols


def flags(doc: DelegatedOperationDocument) -> str:
    out = []
    if doc.pinned:
        out.append("pinned")
    if doc.archived:
        out.append("archived")
    if not doc.rerunnable:
        out.append("not-rerunnable")
    return ",".join(out)


def row(doc: DelegatedOperationDocument, now: dt.datetime, namespaces: bool = False, wide: bool = False) -> list[str]:
    """The plain-text cells of one operation (same order as `columns`)."""
    cells = [
        doc.id or "",
        doc.label or "",
        doc.operator or "",
        state_text(doc).plain,
        age(doc.queued_at or _created(doc), now),
        run_duration(doc, now),
    ]
    if namespaces:
        cells.insert(0, doc.namespace or "")
    if wide:
        cells += [doc.delegation_target or "", dataset_of(doc), doc.pod_name or "", flags(doc)]
    return cells


def _created(doc: DelegatedOperationDocument) -> dt.datetime | None:
    meta = (doc.resource or {}).get("metadata") or {}
    try:
        return parse_time(meta.get("creationTimestamp"))
    except ValueError:
        return None


def operations_table(
    docs: Sequence[DelegatedOperationDocument],
    now: dt.datetime,
    *,
    namespaces: bool = False,
    wide: bool = False,
) -> Table:
    # On a narrow terminal long cells are shortened with "…"; piped output is 200 columns wide, -o json is complete.
    table = Table(box=box.SIMPLE, show_edge=False, pad_edge=False, header_style="bold")
    state_col = columns(namespaces, wide).index("STATE")
    for name in columns(namespaces, wide):
        table.add_column(name, no_wrap=name in ("NAME", "NAMESPACE", "STATE", "AGE", "DURATION"))
    for doc in docs:
        cells: list[str | Text] = list(row(doc, now, namespaces, wide))
        cells[state_col] = state_text(doc)
        table.add_row(*cells)
    return table


def plain_table(rows: Iterable[Sequence[str]], header: Sequence[str]) -> str:
    """Columns padded to their widest cell, separated by three spaces (kubectl's plain output)."""
    all_rows = [list(header), *[list(r) for r in rows]]
    widths = [max(len(r[i]) for r in all_rows) for i in range(len(header))]
    lines = ["   ".join(cell.ljust(widths[i]) for i, cell in enumerate(r)).rstrip() for r in all_rows]
    return "\n".join(lines)


def watch_line(
    doc: DelegatedOperationDocument, now: dt.datetime, namespaces: bool = False, deleted: bool = False
) -> str:
    """One line per observed change (for `watch` on a non-terminal), kubectl `get -w` style."""
    cells = row(doc, now, namespaces)
    if deleted:
        cells[columns(namespaces).index("STATE")] = "deleted"
    return "   ".join(c for c in cells if c is not None)


# --------------------------------------------------------------------------------------------- get


def _kv_table() -> Table:
    table = Table(box=None, show_header=False, pad_edge=False)
    table.add_column(style="bold", no_wrap=True)
    table.add_column()
    return table


def summary(doc: DelegatedOperationDocument, now: dt.datetime) -> Table:
    table = _kv_table()
    table.add_row("Name", doc.id or "")
    table.add_row("Namespace", doc.namespace or "")
    table.add_row("Operator", doc.operator or "")
    table.add_row("Label", doc.label or "")
    table.add_row("State", state_text(doc, with_progress=False))
    progress = progress_text(doc)
    if progress:
        table.add_row("Progress", progress)
    table.add_row("Target", doc.delegation_target or "(default)")
    dataset = dataset_of(doc)
    if dataset:
        table.add_row("Dataset", dataset)
    params = doc.context.params if doc.context is not None else {}
    if params:
        table.add_row("Params", json.dumps(params, sort_keys=True, default=str))
    if doc.parent_id:
        table.add_row("Parent", doc.parent_id)
    if doc.pipeline is not None and doc.pipeline.stages:
        table.add_row("Pipeline", " → ".join(s.name or s.operator_uri for s in doc.pipeline.stages))
    if doc.job_name:
        table.add_row("Job", doc.job_name)
    if doc.pod_name:
        table.add_row("Pod", doc.pod_name)
    if doc.attempt is not None:
        table.add_row("Attempt", str(doc.attempt))
    if doc.run_link:
        table.add_row("Run link", doc.run_link)
    if doc.log_path:
        size = f" ({doc.log_size} bytes)" if doc.log_size is not None else ""
        table.add_row("Log", doc.log_path + size)
    if doc.log_upload_error:
        table.add_row("Log upload error", Text(doc.log_upload_error, style="red"))
    flag_text = flags(doc)
    if flag_text:
        table.add_row("Flags", flag_text)
    table.add_row("Age", age(doc.queued_at or _created(doc), now))
    return table


def timeline(doc: DelegatedOperationDocument) -> Table:
    """queued → scheduled → started → completed/failed, each with the time since the previous step."""
    table = Table(box=box.SIMPLE, show_edge=False, pad_edge=False, header_style="bold")
    table.add_column("EVENT")
    table.add_column("TIME")
    table.add_column("AFTER", justify="right")
    steps = [
        ("queued", doc.queued_at),
        ("scheduled", doc.scheduled_at),
        ("started", doc.started_at),
        ("completed", doc.completed_at),
        ("failed", doc.failed_at),
    ]
    previous: dt.datetime | None = None
    for label, when in sorted(((n, w) for n, w in steps if w is not None), key=lambda item: item[1]):
        after = precise_duration((when - previous).total_seconds()) if previous is not None else ""
        table.add_row(Text(label, style=STATE_STYLES.get(label, "")), when_text(when), after)
        previous = when
    return table


def result_renderable(doc: DelegatedOperationDocument) -> RenderableType | None:
    raw = ((doc.resource or {}).get("status") or {}).get("result") or {}
    value = raw.get("result")
    error = raw.get("error")
    message = raw.get("errorMessage")
    if value is None and not error and not message:
        return None
    parts: list[RenderableType] = []
    if value is not None:
        text = json.dumps(value, indent=2, sort_keys=True, default=str)
        lines = text.splitlines()
        if len(lines) > MAX_RESULT_LINES:
            hidden = len(lines) - MAX_RESULT_LINES
            lines = [*lines[:MAX_RESULT_LINES], f"... {hidden} more lines (dops get -o json shows all)"]
        parts.append(Text("\n".join(lines)))
    if message:
        parts.append(Text(f"error: {message}", style="red"))
    if error and not repeats(str(error), str(message or "")):
        lines = str(error).rstrip().splitlines()
        if len(lines) > MAX_ERROR_LINES:
            lines = ["...", *lines[-MAX_ERROR_LINES:]]
        parts.append(Text("\n".join(lines), style="red"))
    return Group(*parts)


def repeats(error: str, message: str) -> bool:
    """Whether `error` only says `message` again (as such, or as "Reason: message"), so it is not shown twice."""
    error, message = error.strip(), message.strip()
    if not message:
        return False
    if error == message:
        return True
    head, sep, rest = error.partition(": ")
    return bool(sep) and rest.strip() == message and head.isidentifier()


def conditions_table(conditions: Sequence[Mapping[str, Any]], now: dt.datetime) -> Table:
    table = Table(box=box.SIMPLE, show_edge=False, pad_edge=False, header_style="bold")
    for name in ("TYPE", "STATUS", "REASON", "AGE", "MESSAGE"):
        table.add_column(name, no_wrap=name != "MESSAGE")
    for cond in conditions:
        try:
            when = parse_time(cond.get("lastTransitionTime"))
        except ValueError:
            when = None
        table.add_row(
            str(cond.get("type") or ""),
            str(cond.get("status") or ""),
            str(cond.get("reason") or ""),
            age(when, now) if when is not None else "",
            str(cond.get("message") or ""),
        )
    return table


def event_time(event: Mapping[str, Any]) -> dt.datetime | None:
    meta = event.get("metadata") or {}
    for key in ("lastTimestamp", "eventTime", "firstTimestamp"):
        try:
            value = parse_time(event.get(key))
        except (ValueError, TypeError):
            value = None
        if value is not None:
            return value
    try:
        return parse_time(meta.get("creationTimestamp"))
    except ValueError:
        return None


def sort_events(events: Iterable[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    epoch = dt.datetime.min.replace(tzinfo=dt.UTC)
    return sorted(events, key=lambda e: event_time(e) or epoch)


def events_table(events: Sequence[Mapping[str, Any]], now: dt.datetime) -> Table:
    table = Table(box=box.SIMPLE, show_edge=False, pad_edge=False, header_style="bold")
    for name in ("LAST SEEN", "TYPE", "REASON", "OBJECT", "MESSAGE"):
        table.add_column(name, no_wrap=name != "MESSAGE")
    for event in sort_events(events):
        involved = event.get("involvedObject") or {}
        count = event.get("count")
        reason = str(event.get("reason") or "")
        if isinstance(count, int) and count > 1:
            reason += f" (x{count})"
        when = event_time(event)
        table.add_row(
            age(when, now) if when is not None else "",
            str(event.get("type") or ""),
            reason,
            f"{str(involved.get('kind') or '').lower()}/{involved.get('name') or ''}",
            str(event.get("message") or "").strip(),
        )
    return table


# Waiting reasons every starting container passes through: not worth a hint.
ROUTINE_WAITING = ("ContainerCreating", "PodInitializing")


def pod_hint(pod: Mapping[str, Any]) -> str:
    """Why a worker pod is not running yet, when it is stuck rather than starting ("" otherwise).

    The operator fails an operation whose image cannot be pulled only after a grace period (two minutes
    by default): this says so at once — `ErrImagePull`, `ImagePullBackOff`, `CreateContainerConfigError`,
    `CrashLoopBackOff`, or a pod the scheduler cannot place."""
    meta = pod.get("metadata") or {}
    status = pod.get("status") or {}
    name = str(meta.get("name") or "")
    for cs in [*(status.get("initContainerStatuses") or []), *(status.get("containerStatuses") or [])]:
        waiting = (cs.get("state") or {}).get("waiting") or {}
        reason = str(waiting.get("reason") or "")
        if reason and reason not in ROUTINE_WAITING:
            message = " ".join(str(waiting.get("message") or "").split())
            return f"pod {name} is waiting: {reason}" + (f": {message}" if message else "")
    for cond in status.get("conditions") or []:
        if cond.get("type") == "PodScheduled" and cond.get("status") == "False":
            message = " ".join(str(cond.get("message") or "").split())
            return f"pod {name} cannot be scheduled ({cond.get('reason') or 'Unschedulable'})" + (
                f": {message}" if message else ""
            )
    return ""


def details(
    doc: DelegatedOperationDocument,
    now: dt.datetime,
    events: Sequence[Mapping[str, Any]] | None = None,
    hints: Sequence[str] = (),
) -> Group:
    """Everything `dops get NAME` shows: summary, stuck-pod hints, timeline, result, conditions, events."""
    parts: list[RenderableType] = [summary(doc, now)]
    for hint in hints:
        parts += [Text(""), Text(f"Waiting: {hint}", style="yellow")]
    steps = timeline(doc)
    if steps.row_count:
        parts += [Text(""), Text("Timeline", style="bold underline"), steps]
    result = result_renderable(doc)
    if result is not None:
        title = "Error" if doc.run_state is ExecutionRunState.FAILED else "Result"
        parts += [Text(""), Panel(result, title=title, title_align="left", box=box.ROUNDED, expand=False)]
    conditions = ((doc.resource or {}).get("status") or {}).get("conditions") or []
    if conditions:
        parts += [Text(""), Text("Conditions", style="bold underline"), conditions_table(conditions, now)]
    if events is not None:
        parts += [Text(""), Text("Events", style="bold underline")]
        parts.append(events_table(events, now) if events else Text("<none>"))
    return Group(*parts)


# --------------------------------------------------------------------------------------------- machine output


def clean_resource(obj: Mapping[str, Any]) -> JSON:
    """The resource as `kubectl get -o json` shows it (managedFields dropped)."""
    out = copy.deepcopy(dict(obj))
    meta = out.get("metadata")
    if isinstance(meta, dict):
        meta.pop("managedFields", None)
    out.setdefault("apiVersion", "dops.io/v1alpha1")
    out.setdefault("kind", "DelegatedOperation")
    return out


def resource_list(objs: Iterable[Mapping[str, Any]]) -> JSON:
    return {
        "apiVersion": "v1",
        "kind": "List",
        "metadata": {"resourceVersion": ""},
        "items": [clean_resource(o) for o in objs],
    }


def dump(data: Any, fmt: str) -> str:
    """JSON (indented, as kubectl prints it) or YAML (block style, keys in insertion order)."""
    if fmt == "json":
        return json.dumps(data, indent=4, default=str)
    if fmt == "yaml":
        return yaml.safe_dump(data, sort_keys=False, default_flow_style=False, allow_unicode=True).rstrip("\n")
    raise ValueError(f"unknown output format {fmt!r}")


RESOURCE = "delegatedoperation.dops.io"


def machine_output(
    docs: Sequence[DelegatedOperationDocument], fmt: str, *, single: bool, namespaces: bool = False, arg: str = ""
) -> str:
    """`-o json|yaml|name|jsonpath=…|custom-columns=…` of one operation (`single`) or a list of them.

    As kubectl: `name` is `delegatedoperation.dops.io/NAME` (no namespace, even with -A), a JSONPath
    template applies to the object itself for one operation and to the List for several, and custom
    columns give one row per operation. `namespaces` is kept for callers; kubectl ignores it here too."""
    if fmt == "name":
        return "\n".join(f"{RESOURCE}/{d.id}" for d in docs)
    objs = [d.resource or {} for d in docs]
    if fmt == "custom-columns":
        return jsonpath.custom_columns(arg, [clean_resource(o) for o in objs])
    data = clean_resource(objs[0]) if single else resource_list(objs)
    if fmt == "jsonpath":
        return jsonpath.render_template(arg, data)
    return dump(data, fmt)


# --------------------------------------------------------------------------------------------- wait


def wait_description(doc: DelegatedOperationDocument, hint: str = "") -> str:
    text = f"{doc.id}: {state_name(doc)}"
    if doc.run_state is ExecutionRunState.RUNNING and doc.status is not None and doc.status.label:
        text += f" ({doc.status.label})"
    if hint:
        text += f" — {hint}"
    return text


def outcome(doc: DelegatedOperationDocument, now: dt.datetime) -> str:
    """The last line of `wait`/`submit --wait`: what happened, how long it took, why it failed."""
    state = state_name(doc)
    took = run_duration(doc, now)
    text = f"operation {doc.id} {state}"
    if took:
        text += f" in {took}"
    if doc.run_state is ExecutionRunState.FAILED:
        reason = error_message(doc)
        if reason:
            text += f": {reason}"
    return text


MAX_RESULT_CHARS = 2000


def result_line(doc: DelegatedOperationDocument) -> str:
    """`result: {…}` (compact JSON) of a completed operation that returned something, else ""."""
    if doc.run_state is not ExecutionRunState.COMPLETED:
        return ""
    raw = ((doc.resource or {}).get("status") or {}).get("result") or {}
    value = raw.get("result")
    if value is None:
        return ""
    text = json.dumps(value, sort_keys=True, default=str, separators=(", ", ": "))
    if len(text) > MAX_RESULT_CHARS:
        text = text[:MAX_RESULT_CHARS] + f" … (dops get {doc.id} -o json shows all)"
    return f"result: {text}"
