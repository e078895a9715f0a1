"""Label and field selectors: parsing with kube-apiserver's grammar and errors, and fast matching.

Why this module exists: every list, watch and deletecollection takes `labelSelector` and `fieldSelector` (S9), and
controllers turn metav1.LabelSelector objects (a Job's `spec.selector`) into the same matcher. Clients depend on the
exact grammar: pykube sends `k != v` and `a in (x,y)` (Y5), kubectl and helm send `k=v,k2=v2` (H2, C11, C12).

Design decisions:

- Parsing follows apimachinery's `labels.Parse` lexer/parser (whitespace-insensitive tokens, `in`/`notin`,
  `!key`, `gt`/`lt`) and `fields.ParseSelector` (`=`, `==`, `!=`, `\\,` escapes); error texts mirror theirs
  ("unable to parse requirement: ...", "field label not supported: ..."). The server answers them with 400.
- Selectors are immutable and hashable, and `parse` is memoised (lru_cache), because the same selector string
  arrives on every request of a watch loop.
- Matching runs once per stored object on every list (10,000 objects is a normal benchmark list), so `parse`
  compiles each requirement into a closure; `matches` is a single call for the common one-requirement case.
- Field values are read with precompiled getters for dotted paths and rendered the way Kubernetes field
  conversions do (missing → "", booleans → "true"/"false", integers in decimal), with the two non-path fields
  Kubernetes defines for built-ins: events' `source` (source.component) and jobs' `status.successful`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Final

__all__ = [
    "FieldSelector",
    "LabelSelector",
    "Requirement",
    "SelectorError",
    "field_value",
]

Labels = Mapping[str, str]
_EMPTY: Final[Mapping[str, str]] = {}


class SelectorError(Exception):
    """An unparsable or unsupported selector; the API server answers 400 BadRequest with `str(error)`."""


# ---------------------------------------------------------------------------------------------------------------
# Validation (apimachinery util/validation)
# ---------------------------------------------------------------------------------------------------------------

_NAME_RE: Final = re.compile(r"(?:[A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]\Z")
_VALUE_RE: Final = re.compile(r"(?:(?:[A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?\Z")
_DNS1123_SUBDOMAIN_RE: Final = re.compile(r"[a-z0-9](?:[-a-z0-9]*[a-z0-9])?(?:\.[a-z0-9](?:[-a-z0-9]*[a-z0-9])?)*\Z")

_NAME_FMT_MSG: Final = (
    "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an "
    "alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is "
    "'([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')"
)
_QUALIFIED_FMT_MSG: Final = (
    "a qualified name must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an "
    "alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is "
    "'([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]') with an optional DNS subdomain prefix and '/' "
    "(e.g. 'example.com/MyName')"
)
_SUBDOMAIN_FMT_MSG: Final = (
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must "
    "start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is "
    "'[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
)
_VALUE_FMT_MSG: Final = (
    "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must "
    "start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for "
    "validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')"
)


def _key_errors(key: str) -> list[str]:
    """validation.IsQualifiedName."""
    parts = key.split("/")
    if len(parts) == 1:
        name = parts[0]
    elif len(parts) == 2:
        prefix, name = parts
        if not prefix:
            return ["prefix part must be non-empty"]
        if len(prefix) > 253:
            return ["prefix part must be no more than 253 characters"]
        if not _DNS1123_SUBDOMAIN_RE.match(prefix):
            return ["prefix part " + _SUBDOMAIN_FMT_MSG]
    else:
        return [_QUALIFIED_FMT_MSG]
    errors: list[str] = []
    if not name:
        errors.append("name part must be non-empty")
    elif len(name) > 63:
        errors.append("name part must be no more than 63 characters")
    if name and not _NAME_RE.match(name):
        errors.append(_NAME_FMT_MSG)
    return errors


def _validate_key(key: str, path: str = "key") -> None:
    errors = _key_errors(key)
    if errors:
        raise SelectorError(f'{path}: Invalid value: "{key}": {"; ".join(errors)}')


def _validate_value(value: str, path: str) -> None:
    errors = []
    if len(value) > 63:
        errors.append("must be no more than 63 characters")
    if not _VALUE_RE.match(value):
        errors.append(_VALUE_FMT_MSG)
    if errors:
        raise SelectorError(f'{path}: Invalid value: "{value}": {"; ".join(errors)}')


# ---------------------------------------------------------------------------------------------------------------
# Label selectors
# ---------------------------------------------------------------------------------------------------------------

# Operator spellings as labels.Selector.String() prints them.
EQUALS: Final = "="
DOUBLE_EQUALS: Final = "=="
NOT_EQUALS: Final = "!="
IN: Final = "in"
NOT_IN: Final = "notin"
EXISTS: Final = "exists"
DOES_NOT_EXIST: Final = "!"
GREATER_THAN: Final = "gt"
LESS_THAN: Final = "lt"

_BINARY_OPERATORS_MSG: Final = "in, notin, =, ==, !=, gt, lt"

Matcher = Callable[[Labels], bool]


@dataclass(frozen=True)
class Requirement:
    """One selector term. `values` is sorted; it is empty for exists / does-not-exist."""

    key: str
    operator: str
    values: tuple[str, ...] = ()

    def __str__(self) -> str:
        if self.operator == EXISTS:
            return self.key
        if self.operator == DOES_NOT_EXIST:
            return "!" + self.key
        if self.operator in (IN, NOT_IN):
            return f"{self.key} {self.operator} ({','.join(self.values)})"
        if self.operator == GREATER_THAN:
            return f"{self.key}>{self.values[0]}"
        if self.operator == LESS_THAN:
            return f"{self.key}<{self.values[0]}"
        return f"{self.key}{self.operator}{self.values[0]}"

    def compile(self) -> Matcher:
        """A closure deciding this requirement for one label map (never None)."""
        key, op = self.key, self.operator
        if op in (EQUALS, DOUBLE_EQUALS):
            value = self.values[0]
            return lambda labels: labels.get(key) == value
        if op == NOT_EQUALS:
            value = self.values[0]
            return lambda labels: labels.get(key) != value
        if op == IN:
            values = frozenset(self.values)
            return lambda labels: labels.get(key) in values
        if op == NOT_IN:
            values = frozenset(self.values)
            return lambda labels: labels.get(key) not in values
        if op == EXISTS:
            return lambda labels: key in labels
        if op == DOES_NOT_EXIST:
            return lambda labels: key not in labels
        bound = int(self.values[0])
        greater = op == GREATER_THAN

        def compare(labels: Labels) -> bool:
            raw = labels.get(key)
            if raw is None:
                return False
            try:
                number = int(raw)
            except ValueError:
                return False
            return number > bound if greater else number < bound

        return compare


def _new_requirement(key: str, operator: str, values: Iterable[str]) -> Requirement:
    """labels.NewRequirement: validates the key, the value count for the operator and every value."""
    _validate_key(key)
    vals = sorted(set(values))
    if operator in (IN, NOT_IN):
        if not vals:
            raise SelectorError("values: Invalid value: []: for 'in', 'notin' operators, values set can't be empty")
    elif operator in (EQUALS, DOUBLE_EQUALS, NOT_EQUALS):
        if len(vals) != 1:
            raise SelectorError(f"values: Invalid value: {vals}: exact-match compatibility requires one single value")
    elif operator in (EXISTS, DOES_NOT_EXIST):
        if vals:
            raise SelectorError(
                f"values: Invalid value: {vals}: values set must be empty for exists and does not exist"
            )
    elif operator in (GREATER_THAN, LESS_THAN):
        if len(vals) != 1:
            raise SelectorError(
                f"values: Invalid value: {vals}: for 'Gt', 'Lt' operators, exactly one value is required"
            )
        try:
            int(vals[0])
        except ValueError:
            raise SelectorError(
                f"values[0]: Invalid value: \"{vals[0]}\": for 'Gt', 'Lt' operators, the value must be an integer"
            ) from None
    else:
        raise SelectorError(f'operator: Unsupported value: "{operator}"')
    for index, value in enumerate(vals):
        _validate_value(value, f"values[{index}][{key}]")
    return Requirement(key, operator, tuple(vals))


# Lexer: special symbols first (longest match), then identifiers (anything else up to whitespace or a symbol).
_TOKEN_RE: Final = re.compile(r"\s*(?:(!=|==|=|!|\(|\)|,|>|<)|([^\s!=<>(),]+))")

_END: Final = ""  # end-of-string token
_IDENT: Final = "ident"


class _Tokens:
    """A token stream with one token of lookahead; identifiers are ("ident", text), symbols (text, text)."""

    def __init__(self, text: str) -> None:
        self.items: list[tuple[str, str]] = []
        pos = 0
        length = len(text)
        while pos < length:
            match = _TOKEN_RE.match(text, pos)
            if match is None or match.end() == pos:
                break  # only trailing whitespace is left
            symbol, ident = match.group(1), match.group(2)
            if symbol is not None:
                self.items.append((symbol, symbol))
            elif ident is not None:
                self.items.append((_IDENT, ident))
            pos = match.end()
        self.pos = 0

    def peek(self) -> tuple[str, str]:
        return self.items[self.pos] if self.pos < len(self.items) else (_END, "")

    def take(self) -> tuple[str, str]:
        token = self.peek()
        self.pos += 1
        return token


def _parse_label_selector(text: str) -> tuple[Requirement, ...]:
    tokens = _Tokens(text)
    requirements: list[Requirement] = []
    while True:
        kind, literal = tokens.peek()
        if kind == _END:
            return tuple(requirements)
        if kind not in (_IDENT, "!"):
            raise SelectorError(f"found '{literal}', expected: !, identifier, or 'end of string'")
        try:
            requirements.append(_parse_requirement(tokens))
        except SelectorError as exc:
            raise SelectorError(f"unable to parse requirement: {exc}") from None
        kind, literal = tokens.take()
        if kind == _END:
            return tuple(requirements)
        if kind != ",":
            raise SelectorError(f"found '{literal}', expected: ',' or 'end of string'")
        kind, literal = tokens.peek()
        if kind not in (_IDENT, "!"):
            raise SelectorError(f"found '{literal}', expected: identifier after ','")


def _parse_requirement(tokens: _Tokens) -> Requirement:
    negated = False
    if tokens.peek()[0] == "!":
        tokens.take()
        negated = True
    kind, key = tokens.take()
    if kind != _IDENT:
        raise SelectorError(f"found '{key}', expected: identifier")
    _validate_key(key)
    if negated:
        return _new_requirement(key, DOES_NOT_EXIST, ())  # anything after `!key` fails in the caller
    if tokens.peek()[0] in (_END, ","):
        return _new_requirement(key, EXISTS, ())

    kind, literal = tokens.take()
    if kind == _IDENT and literal in (IN, NOT_IN):
        operator = literal
    elif kind in (EQUALS, DOUBLE_EQUALS, NOT_EQUALS):
        operator = kind
    elif kind == ">":
        operator = GREATER_THAN
    elif kind == "<":
        operator = LESS_THAN
    else:
        raise SelectorError(f"found '{literal}', expected: {_BINARY_OPERATORS_MSG}")

    if operator in (IN, NOT_IN):
        kind, literal = tokens.take()
        if kind != "(":
            raise SelectorError(f"found '{literal}', expected: '('")
        return _new_requirement(key, operator, _parse_value_list(tokens))
    kind, literal = tokens.peek()
    if kind in (_END, ","):
        return _new_requirement(key, operator, ("",))  # `k=` selects the empty value
    tokens.take()
    if kind != _IDENT:
        raise SelectorError(f"found '{literal}', expected: identifier")
    return _new_requirement(key, operator, (literal,))


def _parse_value_list(tokens: _Tokens) -> list[str]:
    """The values of `(a, b, c)` after the opening parenthesis, through the closing one."""
    values: list[str] = []
    expect_value = True
    while True:
        kind, literal = tokens.take()
        if kind == ")":
            if expect_value:
                values.append("")  # "(a,)", and "()" is the set {""} (Parser.parseValues)
            return values
        if kind == ",":
            if expect_value:
                values.append("")  # "(,a)" or "(a,,b)"
            expect_value = True
            continue
        if kind == _IDENT and expect_value:
            values.append(literal)
            expect_value = False
            continue
        if kind == _IDENT:
            raise SelectorError(f"found '{literal}', expected: ',', or ')'")
        raise SelectorError(f"found '{literal}', expected: ',', ')' or identifier")


def _always(_labels: Labels) -> bool:
    return True


def _never(_labels: Labels) -> bool:
    return False


def _compile(requirements: tuple[Requirement, ...]) -> Matcher:
    compiled = [r.compile() for r in requirements]
    if not compiled:
        return _always
    if len(compiled) == 1:
        return compiled[0]
    if len(compiled) == 2:
        first, second = compiled
        return lambda labels: first(labels) and second(labels)
    return lambda labels: all(match(labels) for match in compiled)


@dataclass(frozen=True)
class LabelSelector:
    """A parsed label selector: requirements ANDed together. Immutable and hashable.

    `LabelSelector.parse("app=web,tier in (a,b),!canary")`, `.matches(labels)`. The empty selector matches
    everything; `LabelSelector.nothing()` (what a nil metav1.LabelSelector converts to) matches nothing.
    """

    requirements: tuple[Requirement, ...] = ()
    match_nothing: bool = False
    _matcher: Matcher = field(default=_always, init=False, repr=False, compare=False, hash=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_matcher", _never if self.match_nothing else _compile(self.requirements))

    @staticmethod
    def parse(text: str | None) -> LabelSelector:
        """Parse the `labelSelector` query syntax; raises SelectorError. Results are memoised."""
        return _parse_label_cached(text or "")

    @staticmethod
    def nothing() -> LabelSelector:
        return _NOTHING

    @staticmethod
    def from_label_selector(selector: Mapping[str, Any] | None) -> LabelSelector:
        """Convert a metav1.LabelSelector (`{matchLabels, matchExpressions}`) like LabelSelectorAsSelector.

        None → matches nothing; `{}` → matches everything.
        """
        if selector is None:
            return _NOTHING
        requirements: list[Requirement] = []
        for key, value in sorted((selector.get("matchLabels") or {}).items()):
            requirements.append(_new_requirement(str(key), EQUALS, (str(value),)))
        for expression in selector.get("matchExpressions") or []:
            key = str(expression.get("key", ""))
            operator = expression.get("operator")
            values = [str(v) for v in expression.get("values") or []]
            mapped = _EXPRESSION_OPERATORS.get(str(operator))
            if mapped is None:
                raise SelectorError(f'"{operator}" is not a valid label selector operator')
            requirements.append(_new_requirement(key, mapped, values))
        return LabelSelector(tuple(sorted(requirements, key=lambda r: r.key)))

    @property
    def empty(self) -> bool:
        """True when the selector selects everything (no requirements)."""
        return not self.requirements and not self.match_nothing

    def matches(self, labels: Labels | None) -> bool:
        """Whether an object with these labels is selected; `!=` and `notin` select objects lacking the key."""
        return self._matcher(labels if labels is not None else _EMPTY)

    def matches_object(self, obj: Mapping[str, Any]) -> bool:
        """`matches` on `obj.metadata.labels`."""
        metadata = obj.get("metadata")
        labels = metadata.get("labels") if isinstance(metadata, Mapping) else None
        return self._matcher(labels if isinstance(labels, Mapping) else _EMPTY)

    def __str__(self) -> str:
        return ",".join(str(r) for r in self.requirements)


_EXPRESSION_OPERATORS: Final = {"In": IN, "NotIn": NOT_IN, "Exists": EXISTS, "DoesNotExist": DOES_NOT_EXIST}
_NOTHING: Final = LabelSelector(match_nothing=True)


@lru_cache(maxsize=1024)
def _parse_label_cached(text: str) -> LabelSelector:
    return LabelSelector(_parse_label_selector(text))


# ---------------------------------------------------------------------------------------------------------------
# Field values
# ---------------------------------------------------------------------------------------------------------------

FieldGetter = Callable[[Mapping[str, Any]], str]


def _render(value: Any) -> str:
    """The string Kubernetes field conversions compare with."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else repr(value)
    return ""  # objects and lists are not selectable


def _event_source(obj: Mapping[str, Any]) -> str:
    source = obj.get("source")
    return _render(source.get("component")) if isinstance(source, Mapping) else ""


def _job_successful(obj: Mapping[str, Any]) -> str:
    status = obj.get("status")
    succeeded = status.get("succeeded") if isinstance(status, Mapping) else None
    return str(int(succeeded or 0))


_SPECIAL_FIELDS: Final[dict[str, FieldGetter]] = {"source": _event_source, "status.successful": _job_successful}


@lru_cache(maxsize=512)
def _getter(path: str) -> FieldGetter:
    special = _SPECIAL_FIELDS.get(path)
    if special is not None:
        return special
    parts = tuple(path.lstrip(".").split("."))
    if len(parts) == 1:
        (only,) = parts
        return lambda obj: _render(obj.get(only))
    if len(parts) == 2:
        outer, inner = parts

        def two(obj: Mapping[str, Any]) -> str:
            parent = obj.get(outer)
            return _render(parent.get(inner)) if isinstance(parent, Mapping) else ""

        return two

    def walk(obj: Mapping[str, Any]) -> str:
        node: Any = obj
        for part in parts:
            if not isinstance(node, Mapping):
                return ""
            node = node.get(part)
        return _render(node)

    return walk


def field_value(obj: Mapping[str, Any], path: str) -> str:
    """The value of a field-selector field on `obj`, as a string ("" when missing).

    Dotted paths address nested fields (`involvedObject.kind`, `spec.color`); booleans render as "true"/"false"
    and integers in decimal. Special cases from the built-in field conversions: `source` is an event's
    `source.component`; `status.successful` is a job's `status.succeeded` (0 when unset).
    """
    return _getter(path)(obj)


# ---------------------------------------------------------------------------------------------------------------
# Field selectors
# ---------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FieldRequirement:
    field: str
    operator: str  # "=" or "!="
    value: str

    def __str__(self) -> str:
        return f"{self.field}{self.operator}{_escape_field_value(self.value)}"


def _escape_field_value(value: str) -> str:
    return value.replace("\\", "\\\\").replace(",", "\\,").replace("=", "\\=")


def _split_terms(text: str) -> list[str]:
    """Split on commas not escaped by a backslash; escapes stay in the terms (fields.splitTerms)."""
    terms: list[str] = []
    current: list[str] = []
    escaped = False
    for char in text:
        if escaped:
            current.append(char)
            escaped = False
        elif char == "\\":
            current.append(char)
            escaped = True
        elif char == ",":
            terms.append("".join(current))
            current = []
        else:
            current.append(char)
    terms.append("".join(current))
    return terms


def _split_term(term: str) -> tuple[str, str, str] | None:
    """The first operator occurrence splits the term (fields.splitTerm: `!=`, `==`, `=` at each position)."""
    for index in range(len(term)):
        for operator in ("!=", "==", "="):
            if term.startswith(operator, index):
                return term[:index], operator, term[index + len(operator) :]
    return None


def _unescape_field_value(value: str) -> str:
    if "\\" not in value and "," not in value and "=" not in value:
        return value
    out: list[str] = []
    escaped = False
    for char in value:
        if escaped:
            if char not in "\\,=":
                raise SelectorError(f"invalid field selector: invalid escape sequence: \\{char}")
            out.append(char)
            escaped = False
        elif char == "\\":
            escaped = True
        elif char in ",=":
            raise SelectorError(f"invalid field selector: unescaped character in value: {char}")
        else:
            out.append(char)
    if escaped:
        raise SelectorError("invalid field selector: invalid escape sequence: \\")
    return "".join(out)


def _field_check(req: FieldRequirement) -> Callable[[Mapping[str, Any]], bool]:
    getter, value = _getter(req.field), req.value
    if req.operator == "=":
        return lambda obj: getter(obj) == value
    return lambda obj: getter(obj) != value


def _compile_fields(requirements: tuple[FieldRequirement, ...]) -> Callable[[Mapping[str, Any]], bool]:
    checks = [_field_check(req) for req in requirements]
    if not checks:
        return lambda obj: True
    if len(checks) == 1:
        return checks[0]
    return lambda obj: all(check(obj) for check in checks)


@dataclass(frozen=True)
class FieldSelector:
    """A parsed field selector: `field=value` / `field!=value` terms ANDed together. Immutable and hashable."""

    requirements: tuple[FieldRequirement, ...] = ()
    _matcher: Callable[[Mapping[str, Any]], bool] = field(
        default=lambda obj: True, init=False, repr=False, compare=False, hash=False
    )

    def __post_init__(self) -> None:
        object.__setattr__(self, "_matcher", _compile_fields(self.requirements))

    @staticmethod
    def parse(text: str | None) -> FieldSelector:
        """Parse the `fieldSelector` query syntax (fields.ParseSelector); raises SelectorError. Memoised."""
        return _parse_field_cached(text or "")

    @property
    def empty(self) -> bool:
        return not self.requirements

    @property
    def fields(self) -> frozenset[str]:
        """The field paths the selector uses, for the server's supported-field check."""
        return frozenset(r.field for r in self.requirements)

    def check_supported(self, supported: Callable[[str], bool] | Iterable[str]) -> None:
        """Raise SelectorError("field label not supported: <f>") for the first field the kind cannot select on."""
        allowed = supported if callable(supported) else frozenset(supported).__contains__
        for req in self.requirements:
            if not allowed(req.field):
                raise SelectorError(f"field label not supported: {req.field}")

    def matches(self, obj: Mapping[str, Any]) -> bool:
        """Whether the object's field values satisfy every term."""
        return self._matcher(obj)

    def matches_values(self, values: Callable[[str], str | None]) -> bool:
        """Like `matches`, with field values supplied by a function (None counts as "")."""
        for req in self.requirements:
            actual = values(req.field) or ""
            if (actual == req.value) != (req.operator == "="):
                return False
        return True

    def value_of(self, path: str) -> str | None:
        """The value an `=` term requires for `path` (e.g. metadata.name for single-object watches), if any."""
        for req in self.requirements:
            if req.field == path and req.operator == "=":
                return req.value
        return None

    def __str__(self) -> str:
        return ",".join(str(r) for r in self.requirements)


@lru_cache(maxsize=1024)
def _parse_field_cached(text: str) -> FieldSelector:
    requirements: list[FieldRequirement] = []
    for term in sorted(_split_terms(text)):
        if not term:
            continue
        split = _split_term(term)
        if split is None:
            raise SelectorError(f"invalid selector: '{text}'; can't understand '{term}'")
        lhs, operator, rhs = split
        value = _unescape_field_value(rhs)
        requirements.append(FieldRequirement(lhs, "!=" if operator == "!=" else "=", value))
    return FieldSelector(tuple(requirements))
