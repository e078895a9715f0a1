"""Structural-schema serving of custom resources, as kube-apiserver's apiextensions does it.

A CRD version's `openAPIV3Schema` drives four things on every CR write (spec S11, §9 statements 43-44):

- **defaulting** (`default:` at every level, applied when a field is absent or a non-nullable null),
- **pruning** of fields the schema does not know (kept under `x-kubernetes-preserve-unknown-fields`; root
  `apiVersion`/`kind`/`metadata` always kept; the pruned paths feed `fieldValidation=Strict|Warn`),
- **OpenAPI validation** (type, format, enum, bounds, lengths, required, list-type uniqueness, embedded
  resources, anyOf/oneOf/allOf/not), and
- **CEL validation** (`x-kubernetes-validations`, transition rules with `oldSelf`).

Design decisions:

- The schema is compiled once into a tree of `_Node`s with everything precomputed (bounds as floats,
  compiled regexes, compiled CEL programs, "does this subtree have defaults / rules" flags), so the hot
  path only walks the parts of the object that can matter. Instances are meant to be cached per CRD version.
- Errors mirror kube-apiserver: go-openapi messages (`spec.size in body must be of type integer: "string"`)
  wrapped in apimachinery `field.Error` form (`spec.size: Invalid value: "string": ...`), the same cause
  reasons (`FieldValueTypeInvalid`, `FieldValueRequired`, ...), `<nil>` as the field of root-level errors, and
  CEL rules skipped (with the apiserver's note) when the object already has blocking schema errors.
- `Cause.message` carries the full `field: body` line (what the aggregate Status message shows);
  `status_causes` converts to the wire form, whose `message` is the body only.
- CEL runs on JSON-native values through `cel.py` (a closure compiler over cel-python's parser); values are
  converted per schema only where the schema requires it (`number` -> double, `date-time` -> timestamp,
  escaped property names).
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import ipaddress
import json
import math
import re
from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import Any, Final, TypedDict

from . import cel

__all__ = [
    "Cause",
    "SchemaError",
    "StructuralSchema",
    "aggregate_message",
    "schema_at",
    "status_causes",
    "validate_crd",
]

JSON = dict[str, Any]

_META_FIELDS: Final = frozenset({"apiVersion", "kind", "metadata"})
_ROOT_FIELD: Final = "<nil>"  # apimachinery prints a nil field.Path as "<nil>"


class Cause(TypedDict):
    """One field error. `message` is the full `field: body` line as kube-apiserver prints it."""

    reason: str
    message: str
    field: str


class SchemaError(Exception):
    """A schema that cannot be compiled at all (not a dict, bad regex, ...). Carries a readable message."""


# --- apimachinery field.Error rendering -------------------------------------------------------------------

_LABELS: Final = {
    "FieldValueInvalid": "Invalid value",
    "FieldValueTypeInvalid": "Invalid value",
    "FieldValueRequired": "Required value",
    "FieldValueNotSupported": "Unsupported value",
    "FieldValueTooLong": "Too long",
    "FieldValueTooMany": "Too many",
    "FieldValueDuplicate": "Duplicate value",
    "FieldValueForbidden": "Forbidden",
    "FieldValueNotFound": "Not found",
    "InternalError": "Internal error",
}
# Types whose body never shows the bad value (field.Error.ErrorBody).
_NO_VALUE: Final = frozenset({"FieldValueRequired", "FieldValueForbidden", "FieldValueTooLong", "InternalError"})
_OMIT: Final = object()


class _GoRaw(str):
    """A bad value printed verbatim (Go struct dumps such as `[]apiextensions.CustomResourceDefinitionVersion{...}`)."""


def go_float(f: float) -> str:
    """Go's `%v` for a float64: shortest digits, exponent form when the exponent is < -4 or >= 6 (`1e+06`)."""
    if math.isnan(f):
        return "NaN"
    if math.isinf(f):
        return "+Inf" if f > 0 else "-Inf"
    if f == 0:
        return "0"
    sign, digits, exponent = Decimal(repr(f)).normalize().as_tuple()
    assert isinstance(exponent, int)
    text = "".join(map(str, digits))
    exp10 = len(text) + exponent - 1
    prefix = "-" if sign else ""
    if exp10 < -4 or exp10 >= 6:
        mantissa = text[0] + ("." + text[1:] if len(text) > 1 else "")
        return f"{prefix}{mantissa}e{'-' if exp10 < 0 else '+'}{abs(exp10):02d}"
    if exponent >= 0:
        return prefix + text + "0" * exponent
    point = len(text) + exponent
    if point <= 0:
        return prefix + "0." + "0" * (-point) + text
    return prefix + text[:point] + "." + text[point:]


def _go_quote(s: str) -> str:
    return json.dumps(s, ensure_ascii=False)


# encoding/json escapes these even in compact output.
GO_JSON_ESCAPES: Final = {"<": "\\u003c", ">": "\\u003e", "&": "\\u0026", "\u2028": "\\u2028", "\u2029": "\\u2029"}


def _go_json(v: Any) -> str:
    """encoding/json's compact form (map keys sorted, HTML characters escaped)."""
    text = json.dumps(v, ensure_ascii=False, separators=(",", ":"), sort_keys=True)
    return "".join(GO_JSON_ESCAPES.get(c, c) for c in text) if any(c in text for c in GO_JSON_ESCAPES) else text


def go_value(v: Any) -> str:
    """How field.Error prints a bad value: `%v` for numbers/bools, `%q` for strings, json.Marshal otherwise
    (maps and slices; a value that cannot be marshalled would fall back to `%#v`)."""
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return go_float(v)
    if isinstance(v, _GoRaw):
        return str(v)
    if isinstance(v, str):
        return _go_quote(v)
    return _go_json(v)


def _cause(reason: str, field: str, value: Any = _OMIT, detail: str = "") -> Cause:
    field = field or _ROOT_FIELD
    body = _LABELS[reason]
    if reason not in _NO_VALUE and value is not _OMIT:
        body += ": " + go_value(value)
    if detail:
        body += ": " + detail
    return {"reason": reason, "message": f"{field}: {body}", "field": field}


def _not_supported(field: str, value: Any, allowed: list[Any]) -> Cause:
    quoted = []
    for a in allowed:
        quoted.append(_go_quote(a if isinstance(a, str) else json.dumps(a, separators=(",", ":"))))
    detail = "supported values: " + ", ".join(quoted) if quoted else ""
    return _cause("FieldValueNotSupported", field, value, detail)


def _too_long(field: str, max_length: int) -> Cause:
    unit = "byte" if max_length == 1 else "bytes"
    return _cause("FieldValueTooLong", field, detail=f"may not be more than {max_length} {unit}")


def _too_many(field: str, actual: int, maximum: int) -> Cause:
    unit = "item" if maximum == 1 else "items"
    return _cause("FieldValueTooMany", field, actual, f"must have at most {maximum} {unit}")


def status_causes(causes: list[Cause]) -> list[JSON]:
    """The `details.causes` wire form: `message` is the body without the `field: ` prefix."""
    out: list[JSON] = []
    for c in causes:
        prefix = c["field"] + ": "
        body = c["message"][len(prefix) :] if c["message"].startswith(prefix) else c["message"]
        out.append({"reason": c["reason"], "message": body, "field": c["field"]})
    return out


def aggregate_message(causes: list[Cause]) -> str:
    """utilerrors.Aggregate formatting: one message as is, several as `[a, b]` (duplicates dropped)."""
    messages: list[str] = []
    for c in causes:
        if c["message"] not in messages:
            messages.append(c["message"])
    if len(messages) == 1:
        return messages[0]
    return "[" + ", ".join(messages) + "]"


# --- formats (the go-openapi strfmt checks kube-apiserver enables) ----------------------------------------

_DATE_RE: Final = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_TIME_RE: Final = re.compile(r"^([0-9]{2}):([0-9]{2}):([0-9]{2})(\.[0-9]+)?(z|([+-][0-9]{2}:[0-9]{2}))$")
_UUID_RE: Final = re.compile(r"^[0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12}$", re.I)
_HOSTNAME_RE: Final = re.compile(
    r"^[a-zA-Z0-9]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?(\.[a-zA-Z0-9]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?)*$"
)
_MAC_RE: Final = re.compile(r"^([0-9a-fA-F]{2}[:-]){5}[0-9a-fA-F]{2}$")
_DURATION_FMT_RE: Final = re.compile(
    r"^[-+]?(\d+(\.\d+)?\s*(ns|us|µs|ms|s|m|h|d|w|nanoseconds?|microseconds?|milliseconds?|seconds?|minutes?|hours?|"
    r"days?|weeks?)\s*)+$"
)


def _is_date(s: str) -> bool:
    if not _DATE_RE.match(s):
        return False
    try:
        dt.date.fromisoformat(s)
    except ValueError:
        return False
    return True


def _is_datetime(s: str) -> bool:
    parts = s.lower().split("t")
    if len(parts) != 2 or not _is_date(parts[0]):
        return False
    m = _TIME_RE.match(parts[1])
    if m is None:
        return False
    return int(m.group(1)) < 24 and int(m.group(2)) < 60 and int(m.group(3)) < 61


def _is_byte(s: str) -> bool:
    try:
        base64.b64decode(s, validate=True)
    except (binascii.Error, ValueError):
        return False
    return True


def _is_ip(version: int, s: str) -> bool:
    try:
        return ipaddress.ip_address(s).version == version
    except ValueError:
        return False


def _is_cidr(s: str) -> bool:
    try:
        ipaddress.ip_network(s, strict=False)
    except ValueError:
        return False
    return "/" in s


_FORMATS: Final[dict[str, Callable[[str], bool]]] = {
    "date-time": _is_datetime,
    "datetime": _is_datetime,
    "date": _is_date,
    "byte": _is_byte,
    "uuid": lambda s: bool(_UUID_RE.match(s)),
    "uuid3": lambda s: bool(_UUID_RE.match(s)),
    "uuid4": lambda s: bool(_UUID_RE.match(s)),
    "uuid5": lambda s: bool(_UUID_RE.match(s)),
    "ipv4": lambda s: _is_ip(4, s),
    "ipv6": lambda s: _is_ip(6, s),
    "cidr": _is_cidr,
    "mac": lambda s: bool(_MAC_RE.match(s)),
    "hostname": lambda s: bool(_HOSTNAME_RE.match(s)) and len(s) <= 255,
    "duration": lambda s: bool(_DURATION_FMT_RE.match(s)),
}


# --- the compiled schema ----------------------------------------------------------------------------------


def _json_type(v: Any) -> str:
    """kube-openapi's name for a value's type (what `must be of type X: "<this>"` prints)."""
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "boolean"
    if isinstance(v, int):
        return "integer"
    if isinstance(v, float):
        return "number"
    if isinstance(v, str):
        return "string"
    if isinstance(v, dict):
        return "object"
    if isinstance(v, list):
        return "array"
    return type(v).__name__


def _copy_json(v: Any) -> Any:
    if type(v) is dict:
        return {k: _copy_json(x) for k, x in v.items()}
    if type(v) is list:
        return [_copy_json(x) for x in v]
    return v


def _json_key(v: Any) -> Any:
    """A hashable identity for set/map list checks (Go compares compound elements by their JSON)."""
    if isinstance(v, (dict, list)):
        return ("#json", json.dumps(v, sort_keys=True, separators=(",", ":")))
    if isinstance(v, bool):
        return ("#bool", v)
    return v


def _equal_json(a: Any, b: Any) -> bool:
    return cel._eq(a, b)


class _Rule:
    """One compiled `x-kubernetes-validations` entry."""

    __slots__ = ("field_path", "message", "message_program", "optional_old_self", "program", "reason", "text")

    def __init__(self, raw: Mapping[str, Any]) -> None:
        self.text = str(raw.get("rule", ""))
        self.program = cel.compile_rule(self.text)
        msg = str(raw.get("message") or "").strip()
        error_string = msg or self.text.strip()
        self.message = msg or f"failed rule: {error_string}"
        expr = raw.get("messageExpression")
        self.message_program = cel.compile_rule(str(expr)) if expr else None
        self.reason = str(raw.get("reason") or "FieldValueInvalid")
        self.field_path = _parse_field_path(str(raw.get("fieldPath") or ""))
        self.optional_old_self = bool(raw.get("optionalOldSelf", False))

    @property
    def error_string(self) -> str:
        return self.message[len("failed rule: ") :] if self.message.startswith("failed rule: ") else self.message


_FIELD_PATH_RE: Final = re.compile(r"\.([a-zA-Z_][a-zA-Z0-9_-]*)|\['((?:[^'\\]|\\.)*)'\]|\[(\d+)\]")


def _parse_field_path(text: str) -> str:
    """`.spec.foo['a.b'][0]` -> `.spec.foo.a.b[0]` (appended to the node's field path)."""
    out, pos = "", 0
    for m in _FIELD_PATH_RE.finditer(text):
        if m.start() != pos:
            break
        pos = m.end()
        if m.group(3) is not None:
            out += f"[{m.group(3)}]"
        else:
            out += "." + (m.group(1) if m.group(1) is not None else m.group(2))
    return out


class _Node:
    """One schema node with everything the hot path needs precomputed."""

    __slots__ = (
        "additional",
        "additional_any",
        "all_of",
        "any_of",
        "cel_name",
        "cel_plain",
        "default",
        "embedded",
        "enum",
        "excl_max",
        "excl_min",
        "format",
        "has_default",
        "has_defaults",
        "has_rules",
        "int_or_string",
        "items",
        "list_keys",
        "list_type",
        "max_items",
        "max_length",
        "max_props",
        "maximum",
        "min_items",
        "min_length",
        "min_props",
        "minimum",
        "multiple_of",
        "not_",
        "nullable",
        "one_of",
        "pattern",
        "pattern_text",
        "preserve",
        "properties",
        "required",
        "rules",
        "type",
        "unique_items",
    )

    def __init__(self, raw: Mapping[str, Any], name: str = "") -> None:
        if not isinstance(raw, Mapping):
            raise SchemaError(f"schema node must be an object, got {_json_type(raw)}")
        self.type: str | None = raw.get("type") or None
        self.nullable = bool(raw.get("nullable", False))
        self.format: str | None = raw.get("format") or None
        self.enum: list[Any] | None = list(raw["enum"]) if isinstance(raw.get("enum"), list) else None
        self.maximum = float(raw["maximum"]) if raw.get("maximum") is not None else None
        self.minimum = float(raw["minimum"]) if raw.get("minimum") is not None else None
        self.excl_max = bool(raw.get("exclusiveMaximum", False))
        self.excl_min = bool(raw.get("exclusiveMinimum", False))
        self.multiple_of = float(raw["multipleOf"]) if raw.get("multipleOf") else None
        self.max_length: int | None = raw.get("maxLength")
        self.min_length: int | None = raw.get("minLength")
        self.pattern_text: str | None = raw.get("pattern")
        try:
            self.pattern = re.compile(self.pattern_text) if self.pattern_text else None
        except re.error as exc:
            raise SchemaError(f"invalid pattern {self.pattern_text!r}: {exc}") from None
        self.max_items: int | None = raw.get("maxItems")
        self.min_items: int | None = raw.get("minItems")
        self.unique_items = bool(raw.get("uniqueItems", False))
        self.max_props: int | None = raw.get("maxProperties")
        self.min_props: int | None = raw.get("minProperties")
        self.required: tuple[str, ...] = tuple(raw.get("required") or ())
        self.preserve = bool(raw.get("x-kubernetes-preserve-unknown-fields", False))
        self.embedded = bool(raw.get("x-kubernetes-embedded-resource", False))
        self.int_or_string = bool(raw.get("x-kubernetes-int-or-string", False))
        self.list_type: str | None = raw.get("x-kubernetes-list-type")
        self.list_keys: tuple[str, ...] = tuple(raw.get("x-kubernetes-list-map-keys") or ())
        self.has_default = "default" in raw
        self.default = raw.get("default")
        self.cel_name = cel.escape_property_name(name) if name else ""

        props = raw.get("properties")
        self.properties: dict[str, _Node] | None = (
            {k: _Node(v, k) for k, v in props.items()} if isinstance(props, Mapping) else None
        )
        add = raw.get("additionalProperties")
        self.additional = _Node(add) if isinstance(add, Mapping) else None
        self.additional_any = add is True
        items = raw.get("items")
        self.items = _Node(items) if isinstance(items, Mapping) else None
        self.all_of = [_Node(s) for s in raw.get("allOf") or ()]
        self.any_of = [_Node(s) for s in raw.get("anyOf") or ()]
        self.one_of = [_Node(s) for s in raw.get("oneOf") or ()]
        self.not_ = _Node(raw["not"]) if isinstance(raw.get("not"), Mapping) else None
        try:
            self.rules = [_Rule(r) for r in raw.get("x-kubernetes-validations") or ()]
        except cel.CelCompileError as exc:
            raise SchemaError(f"compilation failed: {exc}") from None

        children = [*(self.properties or {}).values(), self.additional, self.items]
        kids = [c for c in children if c is not None]
        # Subtree flags let the walkers skip everything that cannot change the outcome.
        self.has_defaults: bool = any(c.has_default or c.has_defaults for c in kids)
        self.has_rules: bool = bool(self.rules) or any(c.has_rules for c in kids)
        # True when CEL can see the JSON value as is (no doubles, timestamps or escaped names below).
        self.cel_plain: bool = (
            self.type != "number"
            and self.format not in ("date-time", "datetime", "duration", "byte")
            and all(c.cel_plain for c in kids)
            and all(c.cel_name == k for k, c in (self.properties or {}).items())
        )

    @property
    def sts_type(self) -> str:
        return self.type or ""


def _child(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _in_body(path: str) -> str:
    return f"{path} in body"


class StructuralSchema:
    """A compiled CRD version schema. Pure and reusable: cache one per CRD version."""

    def __init__(self, schema: Mapping[str, Any]) -> None:
        self.raw = schema
        self.root = _Node(schema)

    # --- defaulting ---------------------------------------------------------------------------------

    def apply_defaults(self, obj: JSON) -> None:
        """Apply `default:` values in place (absent fields and non-nullable nulls), as structuraldefaulting does."""
        if self.root.has_defaults:
            _default(self.root, obj)

    # --- pruning ------------------------------------------------------------------------------------

    def prune(self, obj: JSON) -> list[str]:
        """Drop unknown fields in place; return their paths (`spec.foo`, `spec.items[0].bar`)."""
        out: list[str] = []
        _prune(self.root, obj, "", out, True, mutate=True)
        return out

    def unknown_fields(self, obj: JSON) -> list[str]:
        """The paths `prune` would remove, without touching `obj`."""
        out: list[str] = []
        _prune(self.root, obj, "", out, True, mutate=False)
        return out

    # --- validation ---------------------------------------------------------------------------------

    def validate(self, obj: JSON, old: JSON | None = None) -> list[Cause]:
        """All schema, list-type, embedded-resource and CEL errors for `obj` (`old` enables transition rules)."""
        errs: list[Cause] = []
        extra: list[Cause] = []
        _validate(self.root, obj, "", errs, extra, root=True)
        errs.extend(extra)
        if self.root.has_rules:
            blocking = any(
                e["reason"]
                in (
                    "FieldValueNotSupported",
                    "FieldValueRequired",
                    "FieldValueTooLong",
                    "FieldValueTooMany",
                    "FieldValueTypeInvalid",
                )
                for e in errs
            )
            if blocking:
                errs.append(
                    _cause(
                        "FieldValueInvalid",
                        "",
                        "null",
                        "some validation rules were not checked because the object was invalid; "
                        "correct the existing errors to complete validation",
                    )
                )
            else:
                _cel_walk(self.root, obj, old, old is not None, "", errs, {})
        return errs


# --- walkers (module functions: fewer attribute lookups on the hot path) -----------------------------------


def _default(node: _Node, x: Any) -> None:
    tx = type(x)
    if tx is dict:
        props = node.properties
        if props is not None:
            for k, p in props.items():
                if p.has_default:
                    cur = x.get(k, _OMIT)
                    if cur is _OMIT or (cur is None and not p.nullable):
                        x[k] = _copy_json(p.default)
                if p.has_defaults and k in x:
                    _default(p, x[k])
        add = node.additional
        if add is not None and (add.has_default or add.has_defaults):
            for k, v in x.items():
                if props is not None and k in props:
                    continue
                if v is None and add.has_default and not add.nullable:
                    x[k] = v = _copy_json(add.default)
                _default(add, v)
    elif tx is list:
        items = node.items
        if items is not None and (items.has_default or items.has_defaults):
            for i, v in enumerate(x):
                if v is None and items.has_default and not items.nullable:
                    x[i] = v = _copy_json(items.default)
                _default(items, v)


def _prune(node: _Node, x: Any, path: str, out: list[str], root: bool, mutate: bool) -> None:
    tx = type(x)
    if tx is dict:
        props = node.properties or {}
        add = node.additional
        preserve = node.preserve or node.additional_any
        drop: list[str] = []
        for k, v in x.items():
            if (root or node.embedded) and k in _META_FIELDS:
                continue
            p = props.get(k) or add
            if p is None:
                if not preserve:
                    out.append(_child(path, k))
                    drop.append(k)
                continue
            if v is None:
                # structuraldefaulting.PruneNonNullableNullsWithoutDefaults: silently, not an unknown field.
                if not p.nullable and not p.has_default:
                    drop.append(k)
            elif type(v) is dict or type(v) is list:
                _prune(p, v, _child(path, k), out, False, mutate)
        if mutate:
            for k in drop:
                del x[k]
    elif tx is list:
        items = node.items
        if items is not None:
            for i, v in enumerate(x):
                if type(v) is dict or type(v) is list:
                    _prune(items, v, f"{path}[{i}]", out, False, mutate)


def _type_ok(node: _Node, v: Any) -> bool:
    t = node.type
    tv = type(v)
    if t == "object":
        return tv is dict
    if t == "string":
        return tv is str
    if t == "integer":
        return tv is int or (tv is float and v.is_integer())
    if t == "number":
        return tv is int or tv is float
    if t == "boolean":
        return tv is bool
    if t == "array":
        return tv is list
    return True


def _validate(node: _Node, v: Any, path: str, errs: list[Cause], extra: list[Cause], root: bool = False) -> None:
    """OpenAPI value validation (into errs) plus embedded/list-type checks (into extra, reported after)."""
    if v is None:
        if not node.nullable and (node.type or node.int_or_string):
            t = node.type or "integer,string"
            errs.append(_cause("FieldValueTypeInvalid", path, "null", f'{_in_body(path)} must be of type {t}: "null"'))
        return
    if node.type:
        if not _type_ok(node, v):
            jt = _json_type(v)
            errs.append(
                _cause("FieldValueTypeInvalid", path, jt, f'{_in_body(path)} must be of type {node.type}: "{jt}"')
            )
            return
    elif node.int_or_string and not (type(v) is int or type(v) is str):
        jt = _json_type(v)
        errs.append(
            _cause("FieldValueTypeInvalid", path, jt, f'{_in_body(path)} must be of type integer,string: "{jt}"')
        )
        return

    if node.all_of or node.any_of or node.one_of or node.not_ is not None:
        _validate_combinators(node, v, path, errs)

    tv = type(v)
    if tv is str:
        if node.max_length is not None and len(v) > node.max_length:
            errs.append(_too_long(path, node.max_length))
        if node.min_length is not None and len(v) < node.min_length:
            errs.append(
                _cause(
                    "FieldValueInvalid", path, v, f"{_in_body(path)} should be at least {node.min_length} chars long"
                )
            )
        if node.pattern is not None and not node.pattern.search(v):
            errs.append(_cause("FieldValueInvalid", path, v, f"{_in_body(path)} should match '{node.pattern_text}'"))
        if node.format is not None:
            check = _FORMATS.get(node.format)
            if check is not None and not check(v):
                errs.append(
                    _cause(
                        "FieldValueTypeInvalid",
                        path,
                        v,
                        f"{_in_body(path)} must be of type {node.format}: {_go_quote(v)}",
                    )
                )
    elif (tv is int or tv is float) and tv is not bool:
        _validate_number(node, v, path, errs)

    if node.enum is not None and not any(_equal_json(v, e) for e in node.enum):
        errs.append(_not_supported(path, v, node.enum))

    if tv is list:
        n = len(v)
        if node.min_items is not None and n < node.min_items:
            errs.append(
                _cause("FieldValueInvalid", path, n, f"{_in_body(path)} should have at least {node.min_items} items")
            )
        if node.max_items is not None and n > node.max_items:
            errs.append(_too_many(path, n, node.max_items))
        if node.unique_items and len({_json_key(x) for x in v}) != n:
            errs.append(_cause("FieldValueInvalid", path, "", f"{_in_body(path)} shouldn't contain duplicates"))
        items = node.items
        if items is not None:
            for i, x in enumerate(v):
                _validate(items, x, f"{path}[{i}]", errs, extra)
        if node.list_type == "set" or node.list_type == "map":
            _validate_list_type(node, v, path, extra)
    elif tv is dict:
        n = len(v)
        if node.max_props is not None and n > node.max_props:
            errs.append(_too_many(path, n, node.max_props))
        if node.min_props is not None and n < node.min_props:
            errs.append(
                _cause(
                    "FieldValueInvalid", path, n, f"{_in_body(path)} should have at least {node.min_props} properties"
                )
            )
        for k in node.required:
            if k not in v:
                errs.append(_cause("FieldValueRequired", _child(path, k)))
        props = node.properties
        add = node.additional
        for k, x in v.items():
            if root and k in _META_FIELDS and (props is None or k not in props):
                continue
            p = props.get(k) if props is not None else None
            if p is None:
                p = add
                if p is None:
                    continue
            _validate(p, x, _child(path, k), errs, extra)
        if node.embedded:
            _validate_embedded(v, path, extra)


def _validate_number(node: _Node, v: float, path: str, errs: list[Cause]) -> None:
    if node.multiple_of is not None:
        q = v / node.multiple_of
        if not math.isclose(q, round(q), rel_tol=0, abs_tol=1e-9):
            errs.append(
                _cause(
                    "FieldValueInvalid",
                    path,
                    v,
                    f"{_in_body(path)} should be a multiple of {go_float(node.multiple_of)}",
                )
            )
    if node.maximum is not None:
        if node.excl_max and v >= node.maximum:
            errs.append(
                _cause("FieldValueInvalid", path, v, f"{_in_body(path)} should be less than {go_float(node.maximum)}")
            )
        elif not node.excl_max and v > node.maximum:
            errs.append(
                _cause(
                    "FieldValueInvalid",
                    path,
                    v,
                    f"{_in_body(path)} should be less than or equal to {go_float(node.maximum)}",
                )
            )
    if node.minimum is not None:
        if node.excl_min and v <= node.minimum:
            errs.append(
                _cause(
                    "FieldValueInvalid", path, v, f"{_in_body(path)} should be greater than {go_float(node.minimum)}"
                )
            )
        elif not node.excl_min and v < node.minimum:
            errs.append(
                _cause(
                    "FieldValueInvalid",
                    path,
                    v,
                    f"{_in_body(path)} should be greater than or equal to {go_float(node.minimum)}",
                )
            )


def _branch_errors(node: _Node, v: Any, path: str) -> list[Cause]:
    errs: list[Cause] = []
    extra: list[Cause] = []
    _validate(node, v, path, errs, extra)
    return errs + extra


def _validate_combinators(node: _Node, v: Any, path: str, errs: list[Cause]) -> None:
    """Value-validation combinators; kube-openapi reports branch errors plus a summary at the `<nil>` field."""
    quoted = _go_quote(path)
    for sub in node.all_of:
        errs.extend(_branch_errors(sub, v, path))
    if node.any_of:
        results = [_branch_errors(sub, v, path) for sub in node.any_of]
        if all(results):
            for r in results:
                errs.extend(r)
            errs.append(_cause("FieldValueInvalid", "", "", f"{quoted} must validate at least one schema (anyOf)"))
    if node.one_of:
        results = [_branch_errors(sub, v, path) for sub in node.one_of]
        valid = sum(1 for r in results if not r)
        if valid != 1:
            if valid == 0:
                for r in results:
                    errs.extend(r)
            errs.append(_cause("FieldValueInvalid", "", "", f"{quoted} must validate one and only one schema (oneOf)"))
    if node.not_ is not None and not _branch_errors(node.not_, v, path):
        errs.append(_cause("FieldValueInvalid", "", "", f"{quoted} must not validate the schema (not)"))


def _validate_list_type(node: _Node, v: list[Any], path: str, out: list[Cause]) -> None:
    """structurallisttype.ValidateListSetsAndMaps: duplicates of a set / of a map's key tuple."""
    seen: set[Any] = set()
    if node.list_type == "set":
        reported: set[Any] = set()
        for i, x in enumerate(v):
            key = _json_key(x)
            if key in seen and key not in reported:
                reported.add(key)
                out.append(_cause("FieldValueDuplicate", f"{path}[{i}]", x))
            seen.add(key)
        return
    keys = node.list_keys
    item_props = (node.items.properties if node.items is not None else None) or {}
    for i, x in enumerate(v):
        if type(x) is not dict:
            out.append(
                _cause("FieldValueInvalid", f"{path}[{i}]", x, "must be an object for an array of list-type map")
            )
            continue
        key_values = {}
        for k in keys:
            if k in x:
                key_values[k] = x[k]
            elif k in item_props and item_props[k].has_default:
                key_values[k] = item_props[k].default
        ident = _json_key(key_values)
        if ident in seen:
            out.append(_cause("FieldValueDuplicate", f"{path}[{i}]", key_values))
        seen.add(ident)


def _validate_embedded(x: JSON, path: str, out: list[Cause]) -> None:
    """schemaobjectmeta's embedded-resource checks: apiVersion and kind are required and well-formed."""
    for k in ("apiVersion", "kind"):
        if k not in x:
            out.append(_cause("FieldValueRequired", _child(path, k), detail="must not be empty"))
            continue
        val = x[k]
        if not isinstance(val, str):
            out.append(_cause("FieldValueInvalid", _child(path, k), val, "must be a string"))
        elif not val:
            out.append(_cause("FieldValueInvalid", _child(path, k), val, "must not be empty"))


# --- CEL ------------------------------------------------------------------------------------------------


# Conversions `_to_cel` made during one `validate`, by (id(node), id(value)) of each map or list converted: rules at
# several levels (the root, `status`, `status.progress`) would otherwise convert the same subtree once per level.
# Valid for one call only, while the object (which keeps every id alive and unchanged) is being validated.
_CelMemo = dict[tuple[int, int], Any]


def _to_cel(node: _Node, v: Any, memo: _CelMemo | None = None) -> Any:
    """The value CEL sees for a node: numbers as doubles, date-time as timestamps, escaped property names."""
    if node.cel_plain or v is None:
        return v
    t = node.type
    tv = type(v)
    if t == "number" and tv is int:
        return float(v)
    if tv is str:
        fmt = node.format
        try:
            if fmt in ("date-time", "datetime"):
                return cel.parse_timestamp(v)
            if fmt == "duration":
                return cel.parse_duration(v)
            if fmt == "byte":
                return base64.b64decode(v)
        except (cel.CelEvalError, ValueError, binascii.Error):
            return v
        return v
    if tv is not dict and (tv is not list or node.items is None):
        return v
    key = (id(node), id(v))
    if memo is not None and key in memo:
        return memo[key]
    converted: Any
    if tv is dict:
        props = node.properties
        add = node.additional
        out: JSON = {}
        for k, x in v.items():
            p = props.get(k) if props is not None else None
            if p is not None:
                if p.cel_name is not None:
                    out[p.cel_name] = _to_cel(p, x, memo)
            elif add is not None:
                out[k] = _to_cel(add, x, memo)
            else:
                out[k] = x
        converted = out
    else:
        items = node.items
        assert items is not None  # checked above
        converted = [_to_cel(items, x, memo) for x in v]
    if memo is not None:
        memo[key] = converted
    return converted


def _run_rules(
    node: _Node, v: Any, old: Any, has_old: bool, path: str, errs: list[Cause], memo: _CelMemo | None = None
) -> None:
    self_v = _to_cel(node, v, memo)
    old_v: Any = _OMIT  # converted on first use: only transition rules read it (`_to_cel` is pure)
    sts = node.sts_type
    for rule in node.rules:
        program = rule.program
        if program.uses_old_self:
            if old_v is _OMIT:
                old_v = _to_cel(node, old, memo) if has_old else None
            if rule.optional_old_self:
                act = {"self": self_v, "oldSelf": cel.Optional(has_old, old_v)}
            elif not has_old:
                continue  # transition rules are skipped on create and for uncorrelated values
            else:
                act = {"self": self_v, "oldSelf": old_v}
        else:
            act = {"self": self_v}
        try:
            result = program.evaluate(act)
        except cel.CelEvalError as exc:
            errs.append(_cause("FieldValueInvalid", path, sts, f"{exc} evaluating rule: {rule.error_string}"))
            continue
        if result is True:
            continue
        field = path + rule.field_path if path else rule.field_path.lstrip(".")
        detail = rule.message
        if rule.message_program is not None:
            try:
                msg = rule.message_program.evaluate(act)
            except cel.CelEvalError:
                msg = None
            if isinstance(msg, str) and msg.strip() and "\n" not in msg:
                detail = msg
        if result is not False:
            detail = f"rule did not evaluate to a bool: {rule.error_string}"
        reason = rule.reason
        # The bad value is the validated value itself; objects and arrays omit it (field.OmitValueType).
        value = _OMIT if sts in ("object", "array") else v
        if reason == "FieldValueDuplicate":
            errs.append(_cause(reason, field, value))
        elif reason in ("FieldValueForbidden", "FieldValueRequired"):
            errs.append(_cause(reason, field, detail=detail))
        else:
            errs.append(_cause("FieldValueInvalid", field, value, detail))


def _cel_walk(
    node: _Node, v: Any, old: Any, has_old: bool, path: str, errs: list[Cause], memo: _CelMemo | None = None
) -> None:
    if v is None:
        return  # rules only run on non-null values
    if node.rules:
        _run_rules(node, v, old, has_old, path, errs, memo)
    tv = type(v)
    if tv is dict:
        old_d = old if has_old and type(old) is dict else None
        props = node.properties
        if props is not None:
            for k, p in props.items():
                if p.has_rules and k in v:
                    in_old = old_d is not None and k in old_d
                    _cel_walk(p, v[k], old_d[k] if in_old else None, in_old, _child(path, k), errs, memo)  # type: ignore[index]
        add = node.additional
        if add is not None and add.has_rules:
            for k, x in v.items():
                if props is not None and k in props:
                    continue
                in_old = old_d is not None and k in old_d
                _cel_walk(add, x, old_d[k] if in_old else None, in_old, f"{path}[{k}]", errs, memo)  # type: ignore[index]
    elif tv is list:
        items = node.items
        if items is None or not items.has_rules:
            return
        correlate = _correlator(node, old if has_old and type(old) is list else None)
        for i, x in enumerate(v):
            found, old_x = correlate(x)
            _cel_walk(items, x, old_x, found, f"{path}[{i}]", errs, memo)


def _correlator(node: _Node, old: list[Any] | None) -> Callable[[Any], tuple[bool, Any]]:
    """Old-element lookup for list items: by key tuple for list-type map, by value for sets, else none."""
    if old is None or node.list_type not in ("map", "set"):
        return lambda x: (False, None)
    if node.list_type == "set":
        old_keys = {_json_key(o) for o in old}
        return lambda x: (True, x) if _json_key(x) in old_keys else (False, None)
    keys = node.list_keys
    index = {}
    for o in old:
        if type(o) is dict:
            index[_json_key([o.get(k) for k in keys])] = o

    def lookup(x: Any) -> tuple[bool, Any]:
        if type(x) is not dict:
            return False, None
        key = _json_key([x.get(k) for k in keys])
        return (True, index[key]) if key in index else (False, None)

    return lookup


# --- helpers for tables / explain ------------------------------------------------------------------------


def schema_at(schema: Mapping[str, Any] | None, path: list[str]) -> Mapping[str, Any] | None:
    """The raw sub-schema at `path` (property names; `[]`/digits step into array items); None if absent."""
    node: Any = schema
    for part in path:
        if not isinstance(node, Mapping):
            return None
        if part == "[]" or part.isdigit():
            node = node.get("items")
            continue
        props = node.get("properties")
        if isinstance(props, Mapping) and part in props:
            node = props[part]
        elif isinstance(node.get("additionalProperties"), Mapping):
            node = node["additionalProperties"]
        else:
            return None
    return node if isinstance(node, Mapping) else None


# --- CustomResourceDefinition validation ----------------------------------------------------------------


def validate_crd(crd: Mapping[str, Any]) -> list[Cause]:
    """The apiextensions checks on a CRD object that matter for serving it (S11)."""
    errs: list[Cause] = []
    meta = crd.get("metadata") or {}
    spec = crd.get("spec") or {}
    names = spec.get("names") or {}
    group = spec.get("group") or ""
    plural = names.get("plural") or ""
    name = meta.get("name") or ""
    if name != f"{plural}.{group}":
        errs.append(_cause("FieldValueInvalid", "metadata.name", name, 'must be spec.names.plural+"."+spec.group'))
    if not group:
        errs.append(_cause("FieldValueRequired", "spec.group"))
    elif "." not in group:
        errs.append(_cause("FieldValueInvalid", "spec.group", group, "should be a domain with at least one dot"))
    scope = spec.get("scope")
    if not scope:
        errs.append(_cause("FieldValueRequired", "spec.scope"))
    elif scope not in ("Cluster", "Namespaced"):
        errs.append(_not_supported("spec.scope", scope, ["Cluster", "Namespaced"]))
    if not plural:
        errs.append(_cause("FieldValueRequired", "spec.names.plural"))
    elif plural != plural.lower():
        errs.append(_cause("FieldValueInvalid", "spec.names.plural", plural, "must be lowercase"))
    if not names.get("kind"):
        errs.append(_cause("FieldValueRequired", "spec.names.kind"))
    versions = spec.get("versions") or []
    if not versions:
        errs.append(_cause("FieldValueRequired", "spec.versions", detail="must have at least one version"))
    storage = sum(1 for v in versions if isinstance(v, Mapping) and v.get("storage"))
    if storage != 1:
        errs.append(
            _cause(
                "FieldValueInvalid",
                "spec.versions",
                _GoRaw(
                    "[]apiextensions.CustomResourceDefinitionVersion{...}"
                    if versions
                    else "[]apiextensions.CustomResourceDefinitionVersion(nil)"
                ),
                "must have exactly one version marked as storage version",
            )
        )
    seen: set[str] = set()
    # kube-apiserver converts a v1 CRD whose versions all carry the same schema to the internal form with
    # one top-level `spec.validation`, validates that once, and names it so in its errors.
    schemas = [(v.get("schema") or {}).get("openAPIV3Schema") if isinstance(v, Mapping) else None for v in versions]
    hoisted = bool(schemas) and isinstance(schemas[0], Mapping) and all(x == schemas[0] for x in schemas)
    for i, version in enumerate(versions):
        vpath = f"spec.versions[{i}]"
        if not isinstance(version, Mapping):
            errs.append(_cause("FieldValueInvalid", vpath, _json_type(version), "must be an object"))
            continue
        vname = version.get("name") or ""
        if not vname:
            errs.append(_cause("FieldValueRequired", f"{vpath}.name"))
        elif vname in seen:
            errs.append(_cause("FieldValueDuplicate", f"{vpath}.name", vname))
        seen.add(vname)
        schema = (version.get("schema") or {}).get("openAPIV3Schema")
        spath = "spec.validation.openAPIV3Schema" if hoisted else f"{vpath}.schema.openAPIV3Schema"
        if hoisted and i > 0:
            continue  # validated once, as the shared top-level schema
        if schema is None:
            errs.append(_cause("FieldValueRequired", spath, detail="schemas are required"))
            continue
        if not isinstance(schema, Mapping):
            errs.append(_cause("FieldValueInvalid", spath, _json_type(schema), "must be an object"))
            continue
        if schema.get("type") != "object":
            if not schema.get("type"):
                errs.append(_cause("FieldValueRequired", f"{spath}.type", detail="must not be empty at the root"))
            else:
                errs.append(
                    _cause("FieldValueInvalid", f"{spath}.type", schema.get("type"), "must be object at the root")
                )
        _check_structural(schema, spath, errs, "root")
    return errs


_TYPES: Final = frozenset({"object", "array", "string", "integer", "number", "boolean"})
# What the root `metadata` property of a CRD schema may say: the server supplies ObjectMeta's schema, so
# only `type: object` and constraints on name/generateName are allowed (no description, no other field).
_ROOT_METADATA_KEYS: Final = frozenset({"type", "properties"})


def _check_root_metadata(meta: Mapping[str, Any], path: str, errs: list[Cause]) -> None:
    """kube-apiserver's structural invariant for the root `metadata` schema (k8s.io/apiextensions-apiserver)."""
    if meta.get("type") not in (None, "object"):
        errs.append(_cause("FieldValueInvalid", f"{path}.type", meta.get("type"), "must be object"))
    props = meta.get("properties") or {}
    extra_props = not isinstance(props, Mapping) or bool(set(props) - {"name", "generateName"})
    if set(meta) - _ROOT_METADATA_KEYS or extra_props:
        errs.append(
            _cause(
                "FieldValueForbidden",
                path,
                detail="must not specify anything other than name and generateName, "
                "but metadata is implicitly specified",
            )
        )


def _check_structural(s: Mapping[str, Any], path: str, errs: list[Cause], where: str) -> None:
    """Structural-schema rules: typed nodes, no properties+additionalProperties, valid CEL, sane list types."""
    typ = s.get("type")
    untyped_ok = s.get("x-kubernetes-int-or-string") or s.get("x-kubernetes-preserve-unknown-fields")
    if not typ and not untyped_ok and where != "root":
        what = {
            "property": "must not be empty for specified object fields",
            "items": "must not be empty for specified array items",
            "additionalProperties": "must not be empty for specified additionalProperties",
        }[where]
        errs.append(_cause("FieldValueRequired", f"{path}.type", detail=what))
    elif typ and typ not in _TYPES:
        errs.append(_not_supported(f"{path}.type", typ, sorted(_TYPES)))
    if typ and s.get("x-kubernetes-int-or-string"):
        errs.append(
            _cause("FieldValueForbidden", f"{path}.type", detail="must be empty if x-kubernetes-int-or-string is true")
        )
    props = s.get("properties")
    add = s.get("additionalProperties")
    if isinstance(props, Mapping) and props and add is not None and add is not False:
        errs.append(
            _cause(
                "FieldValueForbidden",
                f"{path}.additionalProperties",
                detail="additionalProperties and properties are mutual exclusive",
            )
        )
    if s.get("uniqueItems") is True:
        errs.append(
            _cause(
                "FieldValueForbidden",
                f"{path}.uniqueItems",
                detail="uniqueItems cannot be set to true since the runtime complexity becomes quadratic",
            )
        )
    if typ == "array" and not isinstance(s.get("items"), Mapping):
        errs.append(_cause("FieldValueRequired", f"{path}.items", detail="must be specified"))
    pattern = s.get("pattern")
    if isinstance(pattern, str):
        try:
            re.compile(pattern)
        except re.error as exc:
            errs.append(
                _cause("FieldValueInvalid", f"{path}.pattern", pattern, f"must be a valid regular expression: {exc}")
            )
    list_type = s.get("x-kubernetes-list-type")
    if list_type is not None and list_type not in ("atomic", "set", "map"):
        errs.append(_not_supported(f"{path}.x-kubernetes-list-type", list_type, ["atomic", "set", "map"]))
    if list_type == "map":
        keys = s.get("x-kubernetes-list-map-keys") or []
        if not keys:
            errs.append(
                _cause(
                    "FieldValueRequired",
                    f"{path}.x-kubernetes-list-map-keys",
                    detail="must not be empty if x-kubernetes-list-type is map",
                )
            )
        items: Mapping[str, Any] = s["items"] if isinstance(s.get("items"), Mapping) else {}
        item_props = items.get("properties") or {}
        required = set(items.get("required") or ())
        for k in keys:
            prop = item_props.get(k)
            if prop is None:
                errs.append(
                    _cause(
                        "FieldValueInvalid",
                        f"{path}.items.properties[{k}]",
                        k,
                        "entries in x-kubernetes-list-map-keys must correspond to properties of the items",
                    )
                )
            elif k not in required and "default" not in prop:
                errs.append(
                    _cause(
                        "FieldValueRequired",
                        f"{path}.items.properties[{k}].default",
                        detail="this property is in x-kubernetes-list-map-keys, "
                        "so it must have a default or be a required property",
                    )
                )
    for i, rule in enumerate(s.get("x-kubernetes-validations") or ()):
        rpath = f"{path}.x-kubernetes-validations[{i}]"
        if not isinstance(rule, Mapping) or not rule.get("rule"):
            errs.append(_cause("FieldValueRequired", f"{rpath}.rule"))
            continue
        for key in ("rule", "messageExpression"):
            text = rule.get(key)
            if not text:
                continue
            try:
                cel.compile_rule(str(text))
            except cel.CelCompileError as exc:
                errs.append(_cause("FieldValueInvalid", f"{rpath}.{key}", str(text), f"compilation failed: {exc}"))
        reason = rule.get("reason")
        if reason is not None and reason not in (
            "FieldValueInvalid",
            "FieldValueForbidden",
            "FieldValueRequired",
            "FieldValueDuplicate",
        ):
            errs.append(
                _not_supported(
                    f"{rpath}.reason",
                    reason,
                    ["FieldValueDuplicate", "FieldValueForbidden", "FieldValueInvalid", "FieldValueRequired"],
                )
            )
    if where == "root" and isinstance(props, Mapping) and isinstance(props.get("metadata"), Mapping):
        _check_root_metadata(props["metadata"], f"{path}.properties[metadata]", errs)
    if isinstance(props, Mapping):
        for k, sub in props.items():
            if isinstance(sub, Mapping):
                _check_structural(sub, f"{path}.properties[{k}]", errs, "property")
    if isinstance(s.get("items"), Mapping):
        _check_structural(s["items"], f"{path}.items", errs, "items")
    if isinstance(add, Mapping):
        _check_structural(add, f"{path}.additionalProperties", errs, "additionalProperties")
