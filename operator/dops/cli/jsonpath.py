"""kubectl's JSONPath templates (`-o jsonpath=…`) and custom columns (`-o custom-columns=…`).

kubectl's dialect is a *template*: text with `{…}` expressions, `{range …}…{end}` loops and `{"\\n"}`
literals, which no JSONPath library on PyPI implements, so this is a small evaluator of the subset users
write (https://kubernetes.io/docs/reference/kubectl/jsonpath/): `$`, `.field`, `['field']`, `[n]`
(negative too), `[*]`, `.*`, `[a:b]`, `[a,b]`, `..field` (recursive descent), filters
`[?(@.path OP value)]` (`==`, `!=`, `<`, `<=`, `>`, `>=`; or `[?(@.path)]` for "exists"), `{range}`/`{end}`
and quoted string literals. As in kubectl, several results of one expression are joined by a space, maps
and lists print as JSON, and a path that finds nothing prints nothing (custom columns print `<none>`).
Pure functions only; bad templates raise `JsonPathError` with one readable line.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

_MISSING = object()


class JsonPathError(ValueError):
    """A template that cannot be parsed; the message says where."""


# ------------------------------------------------------------------------------------------- path steps


@dataclass(frozen=True)
class _Step:
    kind: str  # field, recursive, wildcard, index, slice, union, filter
    arg: Any = None


_NAME = re.compile(r"[A-Za-z0-9_\-$]+")


def _parse_path(text: str) -> list[_Step]:
    """`.a.b[0]['c'][*]..d[?(@.x=="y")]` → steps (a leading `$` or `@` is the root)."""
    steps: list[_Step] = []
    i = 0
    text = text.strip()
    if text.startswith(("$", "@")):
        i = 1
    while i < len(text):
        ch = text[i]
        if text.startswith("..", i):
            i += 2
            m = _NAME.match(text, i)
            if text.startswith("*", i):
                steps += [_Step("recursive", None)]
                i += 1
            elif m:
                steps.append(_Step("recursive", m.group()))
                i = m.end()
            else:
                raise JsonPathError(f"expected a field name after '..' at {i} in {text!r}")
        elif ch == ".":
            i += 1
            if text.startswith("*", i):
                steps.append(_Step("wildcard"))
                i += 1
                continue
            m = _NAME.match(text, i)
            if not m:
                if i >= len(text):  # a lone "." (or a trailing one): the current object
                    continue
                raise JsonPathError(f"expected a field name at {i} in {text!r}")
            steps.append(_Step("field", m.group()))
            i = m.end()
        elif ch == "[":
            end = _closing_bracket(text, i)
            steps.append(_bracket(text[i + 1 : end].strip(), text))
            i = end + 1
        elif ch.isspace():
            i += 1
        else:
            m = _NAME.match(text, i)
            if m and not steps:  # kubectl also accepts `metadata.name` without the leading dot
                steps.append(_Step("field", m.group()))
                i = m.end()
            else:
                raise JsonPathError(f"unexpected {ch!r} at {i} in {text!r}")
    return steps


def _closing_bracket(text: str, start: int) -> int:
    depth, quote = 0, ""
    for j in range(start, len(text)):
        c = text[j]
        if quote:
            if c == quote:
                quote = ""
        elif c in "'\"":
            quote = c
        elif c == "[":
            depth += 1
        elif c == "]":
            depth -= 1
            if depth == 0:
                return j
    raise JsonPathError(f"unclosed '[' at {start} in {text!r}")


def _bracket(inner: str, text: str) -> _Step:
    if inner == "*":
        return _Step("wildcard")
    if inner.startswith("?"):
        m = re.fullmatch(r"\?\(\s*(@[^=!<>]*?)\s*(?:(==|!=|<=|>=|<|>)\s*(.+?))?\s*\)", inner)
        if not m:
            raise JsonPathError(f"cannot parse the filter [{inner}] in {text!r}")
        path, op, raw = m.groups()
        value = _literal(raw, text) if op else None
        return _Step("filter", (_parse_path(path), op, value))
    if inner[:1] in "'\"":
        names = [_literal(part.strip(), text) for part in _split_commas(inner)]
        return _Step("union", [("field", n) for n in names])
    if ":" in inner:
        parts = inner.split(":")
        try:
            bounds = [int(p) if p.strip() else None for p in parts]
        except ValueError:
            raise JsonPathError(f"bad slice [{inner}] in {text!r}") from None
        return _Step("slice", tuple([*bounds, None, None][:3]))
    try:
        return _Step("union", [("index", int(p)) for p in inner.split(",")])
    except ValueError:
        raise JsonPathError(f"bad index [{inner}] in {text!r}") from None


def _split_commas(inner: str) -> list[str]:
    parts, current, quote = [], "", ""
    for c in inner:
        if quote:
            quote = "" if c == quote else quote
        elif c in "'\"":
            quote = c
        elif c == ",":
            parts.append(current)
            current = ""
            continue
        current += c
    parts.append(current)
    return parts


def _literal(raw: str, text: str) -> Any:
    raw = raw.strip()
    if raw[:1] in "'\"" and raw[-1:] == raw[:1] and len(raw) >= 2:
        return raw[1:-1]
    try:
        return json.loads(raw)
    except ValueError:
        raise JsonPathError(f"bad value {raw!r} in {text!r}") from None


def _children(value: Any) -> list[Any]:
    if isinstance(value, dict):
        return list(value.values())
    if isinstance(value, list):
        return list(value)
    return []


def _descend(value: Any) -> Iterator[Any]:
    yield value
    for child in _children(value):
        yield from _descend(child)


def _compare(left: Any, op: str, right: Any) -> bool:
    try:
        if op == "==":
            return bool(left == right)
        if op == "!=":
            return bool(left != right)
        if op == "<":
            return bool(left < right)
        if op == "<=":
            return bool(left <= right)
        if op == ">":
            return bool(left > right)
        return bool(left >= right)
    except TypeError:
        return False


def _apply(steps: list[_Step], values: list[Any]) -> list[Any]:
    for step in steps:
        out: list[Any] = []
        for value in values:
            if step.kind == "field":
                if isinstance(value, dict) and step.arg in value:
                    out.append(value[step.arg])
            elif step.kind == "wildcard":
                out += _children(value)
            elif step.kind == "recursive":
                for node in _descend(value):
                    if step.arg is None:
                        out += _children(node)
                    elif isinstance(node, dict) and step.arg in node:
                        out.append(node[step.arg])
            elif step.kind == "slice" and isinstance(value, list):
                start, stop, stride = step.arg
                out += value[slice(start, stop, stride)]
            elif step.kind == "union":
                for kind, key in step.arg:
                    is_field = kind == "field" and isinstance(value, dict) and key in value
                    is_index = kind == "index" and isinstance(value, list) and -len(value) <= key < len(value)
                    if is_field or is_index:
                        out.append(value[key])
            elif step.kind == "filter":
                path, op, expected = step.arg
                for item in _children(value):
                    found = _apply(path, [item])
                    if found and (op is None or _compare(found[0], op, expected)):
                        out.append(item)
        values = out
    return values


def evaluate(path: str, data: Any) -> list[Any]:
    """Every value `path` (without braces) selects in `data`."""
    return _apply(_parse_path(path), [data])


def text_of(value: Any) -> str:
    """How kubectl prints one result: strings bare, maps and lists as JSON, other scalars as JSON."""
    if isinstance(value, str):
        return value
    return json.dumps(value, separators=(",", ":"), default=str)


# ------------------------------------------------------------------------------------------- templates


@dataclass(frozen=True)
class _Node:
    kind: str  # text, expr, range
    arg: Any = None
    body: tuple[_Node, ...] = ()


_ESCAPES = {"\\n": "\n", "\\t": "\t", "\\r": "\r", '\\"': '"', "\\\\": "\\"}


def _tokens(template: str) -> list[tuple[str, str]]:
    """Split into ("text", …) and ("expr", inside-braces) pieces."""
    out: list[tuple[str, str]] = []
    i = 0
    while i < len(template):
        start = template.find("{", i)
        if start < 0:
            out.append(("text", template[i:]))
            break
        if start > i:
            out.append(("text", template[i:start]))
        depth, quote, j = 0, "", start
        while j < len(template):
            c = template[j]
            if quote:
                if c == "\\":
                    j += 1
                elif c == quote:
                    quote = ""
            elif c in "'\"":
                quote = c
            elif c == "{":
                depth += 1
            elif c == "}":
                depth -= 1
                if depth == 0:
                    break
            j += 1
        if j >= len(template):
            raise JsonPathError(f"unclosed '{{' at {start} in {template!r}")
        out.append(("expr", template[start + 1 : j].strip()))
        i = j + 1
    return out


def parse_template(template: str) -> tuple[_Node, ...]:
    """A kubectl JSONPath template → nodes; JsonPathError (one line) when it does not parse."""
    stack: list[list[_Node]] = [[]]
    ranges: list[str] = []
    for kind, text in _tokens(template):
        if kind == "text":
            stack[-1].append(_Node("text", text))
        elif text.startswith("range ") or text == "range":
            path = text[len("range") :].strip()
            _parse_path(path)  # fail early on a bad path
            ranges.append(path)
            stack.append([])
        elif text == "end":
            if not ranges:
                raise JsonPathError(f"{{end}} without {{range}} in {template!r}")
            body = tuple(stack.pop())
            stack[-1].append(_Node("range", ranges.pop(), body))
        elif text[:1] in "'\"" and text[-1:] == text[:1] and len(text) >= 2:
            literal = text[1:-1]
            for escape, char in _ESCAPES.items():
                literal = literal.replace(escape, char)
            stack[-1].append(_Node("text", literal))
        else:
            _parse_path(text)
            stack[-1].append(_Node("expr", text))
    if ranges:
        raise JsonPathError(f"{{range {ranges[-1]}}} without {{end}} in {template!r}")
    return tuple(stack[0])


def _render(nodes: tuple[_Node, ...], data: Any) -> str:
    out: list[str] = []
    for node in nodes:
        if node.kind == "text":
            out.append(node.arg)
        elif node.kind == "expr":
            out.append(" ".join(text_of(v) for v in evaluate(node.arg, data)))
        else:
            for item in _expand(evaluate(node.arg, data)):
                out.append(_render(node.body, item))
    return "".join(out)


def _expand(values: list[Any]) -> list[Any]:
    """`{range .items[*]}` iterates the selected items; `{range .items}` iterates the list itself."""
    if len(values) == 1 and isinstance(values[0], list):
        return list(values[0])
    return values


def render_template(template: str, data: Any) -> str:
    """Apply a kubectl JSONPath template to `data`."""
    return _render(parse_template(template), data)


# ------------------------------------------------------------------------------------------- custom columns


def parse_columns(spec: str) -> list[tuple[str, str]]:
    """`NAME:.metadata.name,STATE:.status.runState` → [(header, path)]; JsonPathError when malformed."""
    columns = []
    for part in spec.split(","):
        header, sep, path = part.partition(":")
        if not sep or not header.strip() or not path.strip():
            raise JsonPathError(f"custom-columns: expected HEADER:JSONPATH, got {part!r} (e.g. NAME:.metadata.name)")
        path = path.strip()
        if path.startswith("{") and path.endswith("}"):
            path = path[1:-1]
        _parse_path(path)
        columns.append((header.strip(), path))
    return columns


def custom_columns(spec: str, objects: list[Any]) -> str:
    """kubectl's custom-columns table: one row per object, `<none>` where a path finds nothing."""
    columns = parse_columns(spec)
    rows = [[h for h, _ in columns]]
    for obj in objects:
        cells = []
        for _, path in columns:
            found = evaluate(path, obj)
            cells.append(",".join(text_of(v) for v in found) if found else "<none>")
        rows.append(cells)
    widths = [max(len(r[i]) for r in rows) for i in range(len(columns))]
    return "\n".join("   ".join(c.ljust(widths[i]) for i, c in enumerate(r)).rstrip() for r in rows)
