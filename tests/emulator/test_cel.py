"""The CEL closure compiler behind x-kubernetes-validations: CEL semantics on JSON-native values."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from dops.emulator.cel import CelCompileError, CelEvalError, Optional, compile_rule, escape_property_name

SELF: dict[str, Any] = {
    "name": "abc",
    "n": 3,
    "ratio": 0.5,
    "tags": ["a", "b"],
    "labels": {"k": "v"},
    "nothing": None,
    "flag": True,
}

CASES: list[tuple[str, Any]] = [
    ("self.n == 3", True),
    ("self.n == 3.0", True),  # heterogeneous numeric equality
    ("self.flag == 1", False),  # bool is not a number
    ("self.ratio < 1", True),
    ("self.n / 2 == 1 && self.n % 2 == 1 && -7 / 2 == -3 && -7 % 3 == -1", True),
    ("self.name + 'd'", "abcd"),
    ("size(self.name) == 3 && self.tags.size() == 2 && size(self.labels) == 1", True),
    ("has(self.name) && !has(self.missing)", True),
    ("'a' in self.tags && 'k' in self.labels && !('z' in self.tags)", True),
    ("self.name.startsWith('ab') && self.name.endsWith('bc') && self.name.contains('b')", True),
    ("self.name.matches('^a.c$')", True),
    ("self.tags.all(t, t.size() == 1)", True),
    ("self.tags.exists(t, t == 'b')", True),
    ("self.tags.exists_one(t, t != 'b')", True),
    ("self.tags.map(t, t + '!')", ["a!", "b!"]),
    ("self.tags.filter(t, t != 'a')", ["b"]),
    ("self.labels.all(k, self.labels[k] == 'v')", True),
    ("self.n > 2 ? 'big' : 'small'", "big"),
    ("self.nothing == null", True),
    ("string(self.n) + string(self.ratio)", "30.5"),
    ("int('42') + 1", 43),
    ("double(self.n) == 3.0", True),
    ("self.name.upperAscii() + self.name.lowerAscii()", "ABCabc"),
    ("'a,b'.split(',') == ['a', 'b'] && ['x', 'y'].join('-') == 'x-y'", True),
    ("self.name.indexOf('c') == 2 && self.name.substring(1) == 'bc' && ' x '.trim() == 'x'", True),
    ("[3, 1].sum() == 4 && [1, 2, 3].isSorted() && [2, 5].max() == 5", True),
    ("timestamp('2024-01-01T00:00:00Z') + duration('1h') > timestamp('2024-01-01T00:30:00Z')", True),
    ("duration('90m') == duration('1h30m')", True),
    ("{'a': 1}['a'] == 1 && [1, 2][1] == 2", True),
    ("0x10 == 16 && 2u == 2", True),
    ("self.missing == 1 || true", True),  # errors are absorbed by a deciding operand
    ("false && self.missing == 1", False),
    ("self.tags.exists(t, t == 'a' || self.missing)", True),
]


@pytest.mark.parametrize(("expr", "expected"), CASES, ids=[c[0] for c in CASES])
def test_evaluate(expr: str, expected: Any) -> None:
    assert compile_rule(expr).evaluate({"self": SELF}) == expected


ERRORS: list[tuple[str, str]] = [
    ("self.missing == 1", "no such key: missing"),
    ("self.labels['zz'] == 'v'", "no such key: zz"),
    ("self.tags[5] == 'a'", "index out of bounds: 5"),
    ("self.n / 0 == 1", "division by zero"),
    ("self.name > 1", "no such overload"),
    ("!self.name", "no such overload"),
    ("9223372036854775807 + 1 > 0", "integer overflow"),
]


@pytest.mark.parametrize(("expr", "message"), ERRORS, ids=[e[0] for e in ERRORS])
def test_runtime_errors(expr: str, message: str) -> None:
    with pytest.raises(CelEvalError, match=message.replace("(", r"\(")):
        compile_rule(expr).evaluate({"self": SELF})


@pytest.mark.parametrize(
    ("expr", "message"),
    [("self.a +", "Syntax error"), ("other.a == 1", "undeclared reference to 'other'"), ("self.x.nope()", "nope")],
)
def test_compile_errors(expr: str, message: str) -> None:
    with pytest.raises(CelCompileError, match=message):
        compile_rule(expr)


def test_uses_old_self() -> None:
    assert compile_rule("self == oldSelf").uses_old_self
    assert not compile_rule("self.a == 1").uses_old_self


def test_transition_equality_deep() -> None:
    prog = compile_rule("self == oldSelf")
    assert prog.evaluate({"self": {"a": [1, {"b": 2}]}, "oldSelf": {"a": [1, {"b": 2}]}}) is True
    assert prog.evaluate({"self": {"a": [1, {"b": 2}]}, "oldSelf": {"a": [1, {"b": 3}]}}) is False
    assert prog.evaluate({"self": {"a": True}, "oldSelf": {"a": 1}}) is False


def test_optional_old_self() -> None:
    prog = compile_rule("!oldSelf.hasValue() || oldSelf.value() == self")
    assert prog.evaluate({"self": 1, "oldSelf": Optional(False)}) is True
    assert prog.evaluate({"self": 1, "oldSelf": Optional(True, 2)}) is False
    assert compile_rule("oldSelf.orValue(5)").evaluate({"self": 1, "oldSelf": Optional(False)}) == 5


def test_timestamp_values() -> None:
    ts = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
    assert compile_rule("self.getFullYear() == 2024").evaluate({"self": ts}) is True


def test_fallback_to_cel_python_for_type() -> None:
    assert compile_rule("type(self) == int").evaluate({"self": 1}) is True


@pytest.mark.parametrize(
    ("name", "escaped"),
    [
        ("foo", "foo"),
        ("foo-bar", "foo__dash__bar"),
        ("a.b", "a__dot__b"),
        ("x__y", "x__underscores__y"),
        ("namespace", "__namespace__"),
        ("1abc", None),
    ],
)
def test_escape_property_name(name: str, escaped: str | None) -> None:
    assert escape_property_name(name) == escaped
