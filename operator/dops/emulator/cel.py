"""A small, fast CEL evaluator for CRD `x-kubernetes-validations` rules.

Why it exists: kube-apiserver evaluates CEL rules on every write of a custom resource. cel-python's
interpreter walks its lark tree with heavy per-node overhead (~100-300 µs for a typical transition rule),
which is too slow for the emulator's write path. So this module:

- parses with cel-python (`celpy`), which gives the exact CEL grammar and its syntax errors;
- compiles the parse tree once into nested Python closures that work directly on JSON-native values
  (dict, list, str, int, float, bool, None) plus `datetime` (timestamp), `timedelta` (duration), `bytes`;
  there is no per-evaluation conversion of the object into CEL wrapper types;
- falls back to cel-python's interpreter only for constructs this compiler does not know (message
  literals, `type()`, exotic functions), converting values on the way in.

CEL semantics kept: errors are values that `||`/`&&` absorb when the other side decides the result
(`true || error` is true), heterogeneous numeric equality/ordering (`1 == 1.0`), `bool` is never a
number, missing keys raise `no such key: x`, `has()` tests presence, macros `all/exists/exists_one/
map/filter`, and Kubernetes' string/list extension functions. Static type checking is not done: rules
that real CEL would reject at compile time for type reasons may evaluate here.
"""

from __future__ import annotations

import datetime as dt
import functools
import itertools
import math
import re
from collections.abc import Callable, Sequence
from typing import Any

import celpy
import lark
from celpy import celtypes
from celpy.evaluation import CELEvalError as _CelpyEvalError
from celpy.evaluation import base_functions, celbytes, celstr

__all__ = ["CelCompileError", "CelEvalError", "Optional", "Program", "compile_rule"]

Activation = dict[str, Any]
Fn = Callable[[Activation], Any]

_INT64_MIN = -(2**63)
_INT64_MAX = 2**63 - 1

_RESERVED = frozenset(
    {"true", "false", "null", "in", "as", "break", "const", "continue", "else", "for", "function", "if"}
    | {"import", "let", "loop", "package", "namespace", "return", "var", "void", "while"}
)


class CelCompileError(Exception):
    """A rule that does not parse or references something undeclared."""


class CelEvalError(Exception):
    """A runtime CEL error (`no such key: x`, `no such overload`, ...); rules report it, never crash."""


class _Unsupported(Exception):
    """Raised while compiling: construct not handled natively; use the cel-python fallback."""


class Optional:
    """CEL `optional_type`: what `oldSelf` is bound to for rules with `optionalOldSelf: true`."""

    __slots__ = ("present", "val")

    def __init__(self, present: bool, val: Any = None) -> None:
        self.present = present
        self.val = val

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Optional) and self.present == other.present and _eq(self.val, other.val)

    def __hash__(self) -> int:
        return hash(self.present)


def _no_overload(op: str, *args: Any) -> CelEvalError:
    types = ", ".join(_type_name(a) for a in args)
    return CelEvalError(f"no such overload: {op}({types})")


def _type_name(v: Any) -> str:
    if v is None:
        return "null_type"
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, int):
        return "int"
    if isinstance(v, float):
        return "double"
    if isinstance(v, str):
        return "string"
    if isinstance(v, bytes):
        return "bytes"
    if isinstance(v, list):
        return "list"
    if isinstance(v, dict):
        return "map"
    if isinstance(v, dt.datetime):
        return "google.protobuf.Timestamp"
    if isinstance(v, dt.timedelta):
        return "google.protobuf.Duration"
    if isinstance(v, Optional):
        return "optional_type"
    return type(v).__name__


def _is_num(v: Any) -> bool:
    return (type(v) is int) or (type(v) is float)


def _eq(a: Any, b: Any) -> bool:
    """CEL heterogeneous equality: numbers compare across int/double, bool is not a number."""
    ta, tb = type(a), type(b)
    if ta is dict:
        if tb is not dict or len(a) != len(b):
            return False
        return all(k in b and _eq(v, b[k]) for k, v in a.items())
    if ta is list:
        if tb is not list or len(a) != len(b):
            return False
        return all(_eq(x, y) for x, y in zip(a, b, strict=True))
    if ta is bool or tb is bool:
        return ta is tb and a == b
    if (ta is int or ta is float) and (tb is int or tb is float):
        return bool(a == b)
    return ta is tb and bool(a == b)


def _cmp(op: str, a: Any, b: Any) -> bool:
    ta, tb = type(a), type(b)
    ok = (
        ((ta is int or ta is float) and (tb is int or tb is float))
        or (ta is tb and ta in (str, bytes, bool, dt.timedelta))
        or (isinstance(a, dt.datetime) and isinstance(b, dt.datetime))
    )
    if not ok:
        raise _no_overload(op, a, b)
    if op == "<":
        return bool(a < b)
    if op == "<=":
        return bool(a <= b)
    if op == ">":
        return bool(a > b)
    return bool(a >= b)


def _check_int(v: int) -> int:
    if v < _INT64_MIN or v > _INT64_MAX:
        raise CelEvalError("integer overflow")
    return v


def _add(a: Any, b: Any) -> Any:
    ta, tb = type(a), type(b)
    if ta is int and tb is int:
        return _check_int(a + b)
    if _is_num(a) and _is_num(b):
        return float(a) + float(b)
    if ta is tb and ta in (str, bytes, list):
        return a + b
    if ta is dt.timedelta and (tb is dt.timedelta or isinstance(b, dt.datetime)):
        return a + b
    if isinstance(a, dt.datetime) and tb is dt.timedelta:
        return a + b
    raise _no_overload("_+_", a, b)


def _sub(a: Any, b: Any) -> Any:
    ta, tb = type(a), type(b)
    if ta is int and tb is int:
        return _check_int(a - b)
    if _is_num(a) and _is_num(b):
        return float(a) - float(b)
    if isinstance(a, dt.datetime) and (tb is dt.timedelta or isinstance(b, dt.datetime)):
        return a - b
    if ta is dt.timedelta and tb is dt.timedelta:
        return a - b
    raise _no_overload("_-_", a, b)


def _mul(a: Any, b: Any) -> Any:
    if type(a) is int and type(b) is int:
        return _check_int(a * b)
    if _is_num(a) and _is_num(b):
        return float(a) * float(b)
    raise _no_overload("_*_", a, b)


def _div(a: Any, b: Any) -> Any:
    if type(a) is int and type(b) is int:
        if b == 0:
            raise CelEvalError("division by zero")
        q = abs(a) // abs(b)
        return _check_int(q if (a >= 0) == (b >= 0) else -q)
    if _is_num(a) and _is_num(b):
        if b == 0:
            return math.copysign(math.inf, a) if a else math.nan
        return float(a) / float(b)
    raise _no_overload("_/_", a, b)


def _mod(a: Any, b: Any) -> Any:
    if type(a) is int and type(b) is int:
        if b == 0:
            raise CelEvalError("modulus by zero")
        r = abs(a) % abs(b)
        return r if a >= 0 else -r
    raise _no_overload("_%_", a, b)


def _size(v: Any) -> int:
    if isinstance(v, (str, bytes, list, dict)):
        return len(v)
    raise _no_overload("size", v)


@functools.lru_cache(maxsize=512)
def _regex(pattern: str) -> re.Pattern[str]:
    try:
        return re.compile(pattern)
    except re.error as exc:
        raise CelEvalError(f"invalid regex {pattern!r}: {exc}") from None


_DURATION_RE = re.compile(r"([0-9]*\.?[0-9]+)(ns|us|µs|ms|s|m|h)")
_DURATION_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_duration(text: str) -> dt.timedelta:
    """Go `time.ParseDuration` syntax (`1h30m`, `-1.5s`, `100ms`)."""
    s = text
    sign = 1.0
    if s[:1] in "+-" and s:
        sign = -1.0 if s[0] == "-" else 1.0
        s = s[1:]
    if s == "0":
        return dt.timedelta(0)
    pos, total = 0, 0.0
    for m in _DURATION_RE.finditer(s):
        if m.start() != pos:
            break
        total += float(m.group(1)) * _DURATION_UNITS[m.group(2)]
        pos = m.end()
    if pos != len(s) or not s:
        raise CelEvalError(f"invalid duration {text!r}")
    return dt.timedelta(seconds=sign * total)


@functools.lru_cache(maxsize=4096)
def parse_timestamp(text: str) -> dt.datetime:
    """RFC 3339 timestamp (with `Z` or an offset) as an aware datetime.

    Cached (datetimes are immutable; failures raise each time): CEL validation converts every `date-time` field of
    an object, and of its previous version, on every write, and they are mostly the same few timestamps.
    """
    try:
        value = dt.datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise CelEvalError(f"invalid timestamp {text!r}") from None
    if value.tzinfo is None or "T" not in text.upper():
        raise CelEvalError(f"invalid timestamp {text!r}")
    return value


def _format_double(f: float) -> str:
    if f == int(f) and abs(f) < 1e21:
        return str(int(f))
    return repr(f)


def _to_string(v: Any) -> str:
    if isinstance(v, str):
        return v
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return _format_double(v)
    if isinstance(v, bytes):
        return v.decode("utf-8", errors="replace")
    if isinstance(v, dt.datetime):
        return v.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")
    if isinstance(v, dt.timedelta):
        return _format_double(v.total_seconds()) + "s"
    raise _no_overload("string", v)


def _to_int(v: Any) -> int:
    if isinstance(v, bool):
        raise _no_overload("int", v)
    if isinstance(v, int):
        return v
    if isinstance(v, float):
        if math.isnan(v) or math.isinf(v):
            raise CelEvalError("integer overflow")
        return _check_int(int(v))
    if isinstance(v, str):
        try:
            return _check_int(int(v, 10))
        except ValueError:
            raise CelEvalError(f"cannot convert {v!r} to int") from None
    if isinstance(v, dt.datetime):
        return int(v.timestamp())
    raise _no_overload("int", v)


def _to_double(v: Any) -> float:
    if isinstance(v, bool):
        raise _no_overload("double", v)
    if isinstance(v, (int, float)):
        return float(v)
    if isinstance(v, str):
        try:
            return float(v)
        except ValueError:
            raise CelEvalError(f"cannot convert {v!r} to double") from None
    raise _no_overload("double", v)


def _to_bool(v: Any) -> bool:
    if isinstance(v, bool):
        return v
    if isinstance(v, str):
        if v in ("true", "True", "TRUE", "t", "1"):
            return True
        if v in ("false", "False", "FALSE", "f", "0"):
            return False
    raise _no_overload("bool", v)


def _str_arg(name: str, v: Any) -> str:
    if not isinstance(v, str):
        raise _no_overload(name, v)
    return v


# Global functions: name -> (arity, implementation).
_FUNCS: dict[str, tuple[int, Callable[..., Any]]] = {
    "size": (1, _size),
    "int": (1, _to_int),
    "uint": (1, _to_int),
    "double": (1, _to_double),
    "string": (1, _to_string),
    "bool": (1, _to_bool),
    "bytes": (1, lambda v: v if isinstance(v, bytes) else _str_arg("bytes", v).encode()),
    "dyn": (1, lambda v: v),
    "timestamp": (1, lambda v: v if isinstance(v, dt.datetime) else parse_timestamp(_str_arg("timestamp", v))),
    "duration": (1, lambda v: v if isinstance(v, dt.timedelta) else parse_duration(_str_arg("duration", v))),
    "matches": (2, lambda s, p: _regex(_str_arg("matches", p)).search(_str_arg("matches", s)) is not None),
}


def _m_index_of(target: Any, arg: Any, *rest: Any) -> int:
    if isinstance(target, list):
        for i, x in enumerate(target):
            if _eq(x, arg):
                return i
        return -1
    start = int(rest[0]) if rest else 0
    return _str_arg("indexOf", target).find(_str_arg("indexOf", arg), start)


def _m_last_index_of(target: Any, arg: Any, *rest: Any) -> int:
    if isinstance(target, list):
        for i in range(len(target) - 1, -1, -1):
            if _eq(target[i], arg):
                return i
        return -1
    return _str_arg("lastIndexOf", target).rfind(_str_arg("lastIndexOf", arg))


def _m_substring(target: Any, start: int, *rest: int) -> str:
    s = _str_arg("substring", target)
    end = rest[0] if rest else len(s)
    if start < 0 or end > len(s) or start > end:
        raise CelEvalError(f"index out of range: {start}")
    return s[start:end]


def _m_split(target: Any, sep: Any, *rest: int) -> list[str]:
    s = _str_arg("split", target)
    if rest:
        n = rest[0]
        if n == 0:
            return []
        return s.split(sep, n - 1) if n > 0 else s.split(sep)
    return s.split(sep) if sep else list(s)


def _m_replace(target: Any, old: str, new: str, *rest: int) -> str:
    s = _str_arg("replace", target)
    return s.replace(old, new, rest[0]) if rest else s.replace(old, new)


def _m_sum(target: Any) -> Any:
    if not isinstance(target, list):
        raise _no_overload("sum", target)
    total: Any = 0
    for x in target:
        total = _add(total, x)
    return total


def _m_minmax(name: str) -> Callable[..., Any]:
    def impl(target: Any, *args: Any) -> Any:
        items = target if isinstance(target, list) and not args else [target, *args]
        if not items:
            raise CelEvalError(f"{name}(list) argument must not be empty")
        best = items[0]
        for x in items[1:]:
            if _cmp("<" if name == "min" else ">", x, best):
                best = x
        return best

    return impl


def _m_is_sorted(target: Any) -> bool:
    if not isinstance(target, list):
        raise _no_overload("isSorted", target)
    return all(_cmp("<=", a, b) for a, b in itertools.pairwise(target))


def _optional_arg(name: str, v: Any) -> Optional:
    if not isinstance(v, Optional):
        raise _no_overload(name, v)
    return v


def _m_value(target: Any) -> Any:
    if not isinstance(target, Optional):
        raise _no_overload("value", target)
    if not target.present:
        raise CelEvalError("optional.none() dereference")
    return target.val


def _m_ts(attr: str) -> Callable[..., Any]:
    def impl(target: Any, *tz: Any) -> Any:
        if not isinstance(target, dt.datetime):
            raise _no_overload(attr, target)
        t = target.astimezone(dt.UTC)
        return {
            "getFullYear": lambda: t.year,
            "getMonth": lambda: t.month - 1,
            "getDayOfMonth": lambda: t.day - 1,
            "getDate": lambda: t.day,
            "getDayOfWeek": lambda: (t.weekday() + 1) % 7,
            "getDayOfYear": lambda: t.timetuple().tm_yday - 1,
            "getHours": lambda: t.hour,
            "getMinutes": lambda: t.minute,
            "getSeconds": lambda: t.second,
        }[attr]()

    return impl


# Receiver-style functions: name -> implementation(target, *args). Arity is checked by the callee.
_METHODS: dict[str, Callable[..., Any]] = {
    "size": _size,
    "startsWith": lambda s, p: _str_arg("startsWith", s).startswith(_str_arg("startsWith", p)),
    "endsWith": lambda s, p: _str_arg("endsWith", s).endswith(_str_arg("endsWith", p)),
    "contains": lambda s, p: _str_arg("contains", p) in _str_arg("contains", s),
    "matches": lambda s, p: _regex(_str_arg("matches", p)).search(_str_arg("matches", s)) is not None,
    "lowerAscii": lambda s: _str_arg("lowerAscii", s).lower(),
    "upperAscii": lambda s: _str_arg("upperAscii", s).upper(),
    "trim": lambda s: _str_arg("trim", s).strip(),
    "charAt": lambda s, i: (_str_arg("charAt", s) + "")[i : i + 1],
    "indexOf": _m_index_of,
    "lastIndexOf": _m_last_index_of,
    "substring": _m_substring,
    "split": _m_split,
    "replace": _m_replace,
    "join": lambda lst, *sep: (sep[0] if sep else "").join(_str_arg("join", x) for x in lst),
    "sum": _m_sum,
    "min": _m_minmax("min"),
    "max": _m_minmax("max"),
    "isSorted": _m_is_sorted,
    "find": lambda s, p: m.group(0) if (m := _regex(p).search(_str_arg("find", s))) else "",
    "findAll": lambda s, p, *n: [m.group(0) for m in _regex(p).finditer(_str_arg("findAll", s))][
        : (n[0] if n and n[0] >= 0 else None)
    ],
    "hasValue": lambda o: _optional_arg("hasValue", o).present,
    "value": _m_value,
    "orValue": lambda o, d: (o.val if o.present else d) if isinstance(o, Optional) else d,
    **{name: _m_ts(name) for name in ("getFullYear", "getMonth", "getDayOfMonth", "getDate", "getDayOfWeek")},
    **{name: _m_ts(name) for name in ("getDayOfYear", "getHours", "getMinutes", "getSeconds")},
}

_MACROS = frozenset({"all", "exists", "exists_one", "map", "filter"})


def _select(obj: Any, name: str) -> Any:
    if type(obj) is dict:
        try:
            return obj[name]
        except KeyError:
            raise CelEvalError(f"no such key: {name}") from None
    raise CelEvalError(f"no such key: {name}") if obj is None else _no_overload(f"_.{name}", obj)


def _index(obj: Any, idx: Any) -> Any:
    if type(obj) is list:
        if type(idx) is float and idx == int(idx):
            idx = int(idx)
        if type(idx) is not int:
            raise _no_overload("_[_]", obj, idx)
        if idx < 0 or idx >= len(obj):
            raise CelEvalError(f"index out of bounds: {idx}")
        return obj[idx]
    if type(obj) is dict:
        try:
            return obj[idx]
        except (KeyError, TypeError):
            raise CelEvalError(f"no such key: {idx}") from None
    raise _no_overload("_[_]", obj, idx)


def _in(elem: Any, container: Any) -> bool:
    if type(container) is list:
        return any(_eq(elem, x) for x in container)
    if type(container) is dict:
        try:
            return elem in container
        except TypeError:
            return False
    raise _no_overload("@in", elem, container)


def _truth(v: Any, op: str) -> bool:
    if v is True or v is False:
        return v
    raise _no_overload(op, v)


def _unknown(name: str) -> Exception:
    """Functions cel-python knows go to the fallback; anything else is an undeclared reference."""
    if name in base_functions:
        return _Unsupported(name)
    return CelCompileError(f"undeclared reference to '{name}'")


def _children(tree: lark.Tree[Any]) -> list[Any]:
    return [c for c in tree.children if c is not None]


class _Compiler:
    """Turns a celpy parse tree into closures. `scope` holds the names bound at each point."""

    def __init__(self, variables: frozenset[str]) -> None:
        self.variables = variables

    def compile(self, tree: lark.Tree[Any], scope: frozenset[str]) -> Fn:
        handler = getattr(self, "c_" + str(tree.data), None)
        if handler is None:
            raise _Unsupported(str(tree.data))
        result: Fn = handler(tree, scope)
        return result

    def c_expr(self, tree: lark.Tree[Any], scope: frozenset[str]) -> Fn:
        kids = _children(tree)
        if len(kids) == 1:
            return self.compile(kids[0], scope)
        cond, then, other = (self.compile(k, scope) for k in kids)

        def ternary(a: Activation) -> Any:
            return then(a) if _truth(cond(a), "_?_:_") else other(a)

        return ternary

    def c_conditionalor(self, tree: lark.Tree[Any], scope: frozenset[str]) -> Fn:
        return self._logical(tree, scope, short=True)

    def c_conditionaland(self, tree: lark.Tree[Any], scope: frozenset[str]) -> Fn:
        return self._logical(tree, scope, short=False)

    def _logical(self, tree: lark.Tree[Any], scope: frozenset[str], short: bool) -> Fn:
        kids = _children(tree)
        if len(kids) == 1:
            return self.compile(kids[0], scope)
        left, right = self.compile(kids[0], scope), self.compile(kids[1], scope)
        op = "_||_" if short else "_&&_"

        # CEL's commutative error handling: an error on one side is absorbed if the other side decides.
        def logical(a: Activation) -> Any:
            err: CelEvalError | None = None
            try:
                lv = left(a)
                if lv is short:
                    return short
                if lv is not (not short):
                    err = _no_overload(op, lv)
            except CelEvalError as exc:
                err = exc
            rv = right(a)
            if rv is short:
                return short
            if err is not None:
                raise err
            if rv is not (not short):
                raise _no_overload(op, rv)
            return not short

        return logical

    def _binary(self, tree: lark.Tree[Any], scope: frozenset[str]) -> tuple[str, Fn, Fn] | None:
        kids = _children(tree)
        if len(kids) == 1:
            return None
        op_tree, right_tree = kids
        return str(op_tree.data), self.compile(_children(op_tree)[0], scope), self.compile(right_tree, scope)

    def c_relation(self, tree: lark.Tree[Any], scope: frozenset[str]) -> Fn:
        parts = self._binary(tree, scope)
        if parts is None:
            return self.compile(_children(tree)[0], scope)
        op, left, right = parts
        if op == "relation_eq":
            return lambda a: _eq(left(a), right(a))
        if op == "relation_ne":
            return lambda a: not _eq(left(a), right(a))
        if op == "relation_in":
            return lambda a: _in(left(a), right(a))
        sym = {"relation_lt": "<", "relation_le": "<=", "relation_gt": ">", "relation_ge": ">="}[op]
        return lambda a: _cmp(sym, left(a), right(a))

    def c_addition(self, tree: lark.Tree[Any], scope: frozenset[str]) -> Fn:
        parts = self._binary(tree, scope)
        if parts is None:
            return self.compile(_children(tree)[0], scope)
        op, left, right = parts
        fn = _add if op == "addition_add" else _sub
        return lambda a: fn(left(a), right(a))

    def c_multiplication(self, tree: lark.Tree[Any], scope: frozenset[str]) -> Fn:
        parts = self._binary(tree, scope)
        if parts is None:
            return self.compile(_children(tree)[0], scope)
        op, left, right = parts
        fn = {"multiplication_mul": _mul, "multiplication_div": _div, "multiplication_mod": _mod}[op]
        return lambda a: fn(left(a), right(a))

    def c_unary(self, tree: lark.Tree[Any], scope: frozenset[str]) -> Fn:
        kids = _children(tree)
        if len(kids) == 1:
            return self.compile(kids[0], scope)
        operand = self.compile(kids[1], scope)
        if str(kids[0].data) == "unary_not":
            return lambda a: not _truth(operand(a), "!_")

        def neg(a: Activation) -> Any:
            v = operand(a)
            if type(v) is int:
                return _check_int(-v)
            if type(v) is float or type(v) is dt.timedelta:
                return -v
            raise _no_overload("-_", v)

        return neg

    def c_member(self, tree: lark.Tree[Any], scope: frozenset[str]) -> Fn:
        return self.compile(_children(tree)[0], scope)

    def c_primary(self, tree: lark.Tree[Any], scope: frozenset[str]) -> Fn:
        return self.compile(_children(tree)[0], scope)

    def c_paren_expr(self, tree: lark.Tree[Any], scope: frozenset[str]) -> Fn:
        return self.compile(_children(tree)[0], scope)

    def c_member_dot(self, tree: lark.Tree[Any], scope: frozenset[str]) -> Fn:
        target_tree, name_tok = _children(tree)
        target = self.compile(target_tree, scope)
        name = str(name_tok)
        return lambda a: _select(target(a), name)

    def c_member_index(self, tree: lark.Tree[Any], scope: frozenset[str]) -> Fn:
        target_tree, idx_tree = _children(tree)
        target, idx = self.compile(target_tree, scope), self.compile(idx_tree, scope)
        return lambda a: _index(target(a), idx(a))

    def _args(self, tree: lark.Tree[Any] | None) -> list[lark.Tree[Any]]:
        return _children(tree) if tree is not None else []

    def c_member_dot_arg(self, tree: lark.Tree[Any], scope: frozenset[str]) -> Fn:
        kids = _children(tree)
        target_tree, name = kids[0], str(kids[1])
        arg_trees = self._args(kids[2] if len(kids) > 2 else None)
        if name in _MACROS and len(arg_trees) in (2, 3):
            return self._macro(name, target_tree, arg_trees, scope)
        impl = _METHODS.get(name)
        if impl is None:
            raise _unknown(name)
        target = self.compile(target_tree, scope)
        args = [self.compile(t, scope) for t in arg_trees]
        if len(args) == 0:
            return lambda a: impl(target(a))
        if len(args) == 1:
            arg0 = args[0]
            return lambda a: impl(target(a), arg0(a))
        return lambda a: impl(target(a), *(f(a) for f in args))

    def _macro(
        self, name: str, target_tree: lark.Tree[Any], arg_trees: list[lark.Tree[Any]], scope: frozenset[str]
    ) -> Fn:
        var = self._ident_of(arg_trees[0])
        if var is None:
            raise CelCompileError(f"argument is not an identifier in {name}()")
        target = self.compile(target_tree, scope)
        inner = scope | {var}
        bodies = [self.compile(t, inner) for t in arg_trees[1:]]

        def items(a: Activation) -> list[Any]:
            v = target(a)
            if type(v) is list:
                return v
            if type(v) is dict:
                return list(v)
            raise _no_overload(name, v)

        if name == "map":
            if len(bodies) == 2:
                pred, fn = bodies
                return lambda a: [fn({**a, var: x}) for x in items(a) if _truth(pred({**a, var: x}), "map")]
            body = bodies[0]
            return lambda a: [body({**a, var: x}) for x in items(a)]
        if len(bodies) != 1:
            raise CelCompileError(f"{name}() takes 2 arguments")
        body = bodies[0]
        if name == "filter":
            return lambda a: [x for x in items(a) if _truth(body({**a, var: x}), "filter")]
        if name == "exists_one":
            return lambda a: sum(1 for x in items(a) if _truth(body({**a, var: x}), "exists_one")) == 1
        want = name == "exists"

        # all/exists follow CEL's error absorption: an error only surfaces if no element decides the result.
        def quantifier(a: Activation) -> bool:
            err: CelEvalError | None = None
            for x in items(a):
                try:
                    if _truth(body({**a, var: x}), name) is want:
                        return want
                except CelEvalError as exc:
                    err = exc
            if err is not None:
                raise err
            return not want

        return quantifier

    def _ident_of(self, tree: lark.Tree[Any]) -> str | None:
        """The identifier if `tree` is a bare identifier expression."""
        node: Any = tree
        while isinstance(node, lark.Tree):
            kids = _children(node)
            if str(node.data) == "ident":
                return str(kids[0])
            if len(kids) != 1:
                return None
            node = kids[0]
        return None

    def c_ident_arg(self, tree: lark.Tree[Any], scope: frozenset[str]) -> Fn:
        kids = _children(tree)
        name = str(kids[0])
        arg_trees = self._args(kids[1] if len(kids) > 1 else None)
        if name == "has":
            return self._has(arg_trees, scope)
        spec = _FUNCS.get(name)
        if spec is None:
            raise _unknown(name)
        arity, impl = spec
        if len(arg_trees) != arity:
            raise CelCompileError(f"found no matching overload for '{name}' with {len(arg_trees)} arguments")
        args = [self.compile(t, scope) for t in arg_trees]
        if arity == 1:
            arg0 = args[0]
            return lambda a: impl(arg0(a))
        return lambda a: impl(*(f(a) for f in args))

    def _has(self, arg_trees: list[lark.Tree[Any]], scope: frozenset[str]) -> Fn:
        node: Any = arg_trees[0] if len(arg_trees) == 1 else None
        # Unwrap expr -> ... -> member until the member_dot the macro needs.
        while isinstance(node, lark.Tree) and str(node.data) != "member_dot":
            kids = _children(node)
            node = kids[0] if len(kids) == 1 else None
        if node is None:
            raise CelCompileError("invalid argument to has() macro")
        target_tree, name_tok = _children(node)
        target = self.compile(target_tree, scope)
        name = str(name_tok)

        def has(a: Activation) -> bool:
            v = target(a)
            if type(v) is dict:
                return name in v
            raise _no_overload("has", v)

        return has

    def c_ident(self, tree: lark.Tree[Any], scope: frozenset[str]) -> Fn:
        name = str(_children(tree)[0])
        if name not in scope and name not in self.variables:
            if name in ("int", "uint", "double", "string", "bool", "bytes", "list", "map", "null_type", "type"):
                raise _Unsupported(name)
            raise CelCompileError(f"undeclared reference to '{name}'")
        return lambda a: a[name]

    def c_list_lit(self, tree: lark.Tree[Any], scope: frozenset[str]) -> Fn:
        kids = _children(tree)
        items = [self.compile(t, scope) for t in self._args(kids[0] if kids else None)]
        return lambda a: [f(a) for f in items]

    def c_map_lit(self, tree: lark.Tree[Any], scope: frozenset[str]) -> Fn:
        kids = _children(tree)
        flat = [self.compile(t, scope) for t in self._args(kids[0] if kids else None)]
        pairs = list(zip(flat[::2], flat[1::2], strict=True))
        return lambda a: {k(a): v(a) for k, v in pairs}

    def c_literal(self, tree: lark.Tree[Any], scope: frozenset[str]) -> Fn:
        token = _children(tree)[0]
        value = _literal(token)
        return lambda a: value


def _parse_int(text: str) -> int:
    negative = text.startswith("-")
    body = text[1:] if negative else text
    value = int(body, 16) if body[:2].lower() == "0x" else int(body, 10)
    return -value if negative else value


def _literal(token: lark.Token) -> Any:
    kind, text = token.type, str(token)
    if kind == "INT_LIT":
        return _check_int(_parse_int(text))
    if kind == "UINT_LIT":
        return _parse_int(text[:-1])
    if kind == "FLOAT_LIT":
        return float(text)
    if kind in ("STRING_LIT", "MLSTRING_LIT"):
        return str(celstr(token))
    if kind == "BYTES_LIT":
        return bytes(celbytes(token))
    if kind == "BOOL_LIT":
        return text == "true"
    if kind == "NULL_LIT":
        return None
    raise _Unsupported(kind)


# --- cel-python fallback ------------------------------------------------------------------------------


def _to_celpy(v: Any) -> Any:
    if v is None:
        return None
    if isinstance(v, bool):
        return celtypes.BoolType(v)
    if isinstance(v, int):
        return celtypes.IntType(v)
    if isinstance(v, float):
        return celtypes.DoubleType(v)
    if isinstance(v, str):
        return celtypes.StringType(v)
    if isinstance(v, bytes):
        return celtypes.BytesType(v)
    if isinstance(v, dict):
        return celtypes.MapType({celtypes.StringType(k): _to_celpy(x) for k, x in v.items()})
    if isinstance(v, list):
        return celtypes.ListType([_to_celpy(x) for x in v])
    if isinstance(v, dt.datetime):
        return celtypes.TimestampType(v)
    if isinstance(v, dt.timedelta):
        return celtypes.DurationType(seconds=v.total_seconds())
    raise CelEvalError(f"unsupported value of type {type(v).__name__}")


def _from_celpy(v: Any) -> Any:
    if isinstance(v, celtypes.BoolType):
        return bool(v)
    if isinstance(v, celtypes.IntType):
        return int(v)
    if isinstance(v, celtypes.DoubleType):
        return float(v)
    if isinstance(v, celtypes.StringType):
        return str(v)
    if isinstance(v, celtypes.ListType):
        return [_from_celpy(x) for x in v]
    if isinstance(v, celtypes.MapType):
        return {_from_celpy(k): _from_celpy(x) for k, x in v.items()}
    return v


# One shared parser: building a lark parser is expensive; celpy programs are immutable once built.
@functools.lru_cache(maxsize=1)
def _environment() -> celpy.Environment:
    return celpy.Environment()


class Program:
    """A compiled rule. `evaluate` returns a JSON-native value or raises `CelEvalError`."""

    __slots__ = ("_fallback", "_fn", "source", "uses_old_self")

    def __init__(self, source: str, fn: Fn | None, fallback: Any, uses_old_self: bool) -> None:
        self.source = source
        self._fn = fn
        self._fallback = fallback
        self.uses_old_self = uses_old_self

    def evaluate(self, activation: Activation) -> Any:
        if self._fn is not None:
            try:
                return self._fn(activation)
            except CelEvalError:
                raise
            except (RecursionError, MemoryError):
                raise CelEvalError("evaluation too deep") from None
            except Exception as exc:  # a bug or an unhandled type combination must not crash a write
                raise CelEvalError(f"no such overload: {exc}") from None
        try:
            result = self._fallback.evaluate({k: _to_celpy(v) for k, v in activation.items()})
        except _CelpyEvalError as exc:
            raise CelEvalError(_short(exc)) from None
        except Exception as exc:
            raise CelEvalError(_short(exc)) from None
        if isinstance(result, _CelpyEvalError):
            raise CelEvalError(_short(result))
        return _from_celpy(result)


def _short(exc: BaseException) -> str:
    text = str(exc.args[0]) if exc.args else "evaluation error"
    return text.split(" (in activation")[0][:200]


def _references(tree: lark.Tree[Any], name: str) -> bool:
    return any(str(sub.data) == "ident" and any(str(c) == name for c in sub.children) for sub in tree.iter_subtrees())


@functools.lru_cache(maxsize=2048)
def compile_rule(source: str, variables: Sequence[str] = ("self", "oldSelf")) -> Program:
    """Parse and compile `source` once; cached, since many CRD versions share the same rules."""
    env = _environment()
    try:
        tree = env.compile(source)
    except Exception as exc:  # celpy raises CELParseError (and lark errors for odd input)
        raise CelCompileError(f"Syntax error: {str(exc).strip().splitlines()[0]}") from None
    uses_old = _references(tree, "oldSelf")
    compiler = _Compiler(frozenset(variables))
    fn: Fn | None
    fallback: Any = None
    try:
        fn = compiler.compile(tree, frozenset())
    except _Unsupported:
        fn = None
        fallback = env.program(tree)
    return Program(source, fn, fallback, uses_old)


def escape_property_name(name: str) -> str | None:
    """How Kubernetes exposes a property name to CEL (`foo-bar` -> `foo__dash__bar`); None if not accessible."""
    if name in _RESERVED:
        return f"__{name}__"
    if not re.fullmatch(r"[a-zA-Z_.\-/][a-zA-Z0-9_.\-/]*", name):
        return None
    if re.fullmatch(r"[a-zA-Z_][a-zA-Z0-9_]*", name) and "__" not in name:
        return name
    out = name.replace("__", "__underscores__")
    return out.replace(".", "__dot__").replace("-", "__dash__").replace("/", "__slash__")
