"""What an operator is to the execution engine: a callable taking the execution context, plus optional
parameter declarations that are checked before it runs.

Anything a plugin registers in the `dops.operators` entry-point group (or names with a `py:` URI) is
adapted by `as_operator`:

- an `Operator` (what `dops.execution.operator(...)` builds) is used as is;
- a class is instantiated without arguments and treated as the instance;
- an object with an `execute(ctx)` method (FiftyOne's `Operator` shape) runs that method;
- any other callable is called as `fn(ctx)`.

`execute` may be a plain function (run in a worker thread), a coroutine function, a generator or an
async generator (FiftyOne's semantics: generators are exhausted and the result is None; yielded
`ExecutionProgress` values are reported as progress, other yielded values are discarded).

Parameter checks produce FiftyOne's validation message form, one line per problem:
`Validation error. Path: n. Reason: must be an integer, got 'x'`.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

JSON = dict[str, Any]
ParamKind = str  # "integer" | "number" | "string" | "boolean" | "object" | "array" | "any"
_KINDS = ("integer", "number", "string", "boolean", "object", "array", "any")
_NO_DEFAULT: Any = object()


class InvalidParams(ValueError):
    """The parameters of an operation do not satisfy the operator's declarations."""

    def __init__(self, operator_uri: str, problems: list[tuple[str, str]]) -> None:
        self.operator_uri = operator_uri
        self.problems = list(problems)
        details = "; ".join(f"Validation error. Path: {path}. Reason: {reason}" for path, reason in problems)
        super().__init__(f"invalid params for {operator_uri}: {details}")


@dataclass(frozen=True)
class Param:
    """One declared parameter: its JSON kind, whether it is required, a default and numeric/length bounds."""

    name: str
    kind: ParamKind = "any"
    required: bool = False
    default: Any = _NO_DEFAULT
    minimum: float | None = None
    maximum: float | None = None
    max_length: int | None = None
    description: str = ""

    def __post_init__(self) -> None:
        if self.kind not in _KINDS:
            raise ValueError(f"unknown parameter kind {self.kind!r} (expected one of {', '.join(_KINDS)})")

    @property
    def has_default(self) -> bool:
        return self.default is not _NO_DEFAULT

    def check(self, value: Any) -> tuple[Any, str | None]:
        """(normalized value, None) or (value, reason it is invalid)."""
        kind = self.kind
        if kind == "integer":
            if isinstance(value, float) and value.is_integer():
                value = int(value)
            if isinstance(value, bool) or not isinstance(value, int):
                return value, f"must be an integer, got {value!r}"
        elif kind == "number":
            if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
                return value, f"must be a finite number, got {value!r}"
        elif kind == "string":
            if not isinstance(value, str):
                return value, f"must be a string, got {value!r}"
            if self.max_length is not None and len(value) > self.max_length:
                return value, f"must be at most {self.max_length} characters long, got {len(value)}"
        elif kind == "boolean":
            if not isinstance(value, bool):
                return value, f"must be true or false, got {value!r}"
        elif kind == "object":
            if not isinstance(value, Mapping):
                return value, f"must be an object, got {type(value).__name__}"
        elif kind == "array" and not isinstance(value, list):
            return value, f"must be an array, got {type(value).__name__}"
        if kind in ("integer", "number"):
            if self.minimum is not None and value < self.minimum:
                return value, f"must be ≥ {_num(self.minimum)}, got {value!r}"
            if self.maximum is not None and value > self.maximum:
                return value, f"must be ≤ {_num(self.maximum)}, got {value!r}"
        return value, None


def _num(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


@dataclass(frozen=True)
class Operator:
    """An executable operator: `execute(ctx)` plus optional parameter declarations.

    `params=None` accepts any parameters unchecked; a tuple of `Param` checks them (defaults filled in)
    and, when `strict`, rejects undeclared ones.
    """

    execute: Callable[..., Any]
    uri: str = ""
    params: tuple[Param, ...] | None = None
    strict: bool = True
    description: str = ""
    validator: Callable[[JSON], Any] | None = field(default=None, repr=False)

    def with_uri(self, uri: str) -> Operator:
        return replace(self, uri=uri)

    def validate_params(self, params: Mapping[str, Any] | None) -> JSON:
        """The parameters to run with (defaults filled in); InvalidParams listing every problem."""
        given: JSON = dict(params or {})
        problems: list[tuple[str, str]] = []
        out: JSON = dict(given)
        if self.params is not None:
            declared = {p.name: p for p in self.params}
            for param in self.params:
                if param.name not in given or given[param.name] is None:
                    if param.required:
                        problems.append((param.name, "required parameter is missing"))
                    elif param.has_default:
                        out[param.name] = param.default
                    continue
                value, reason = param.check(given[param.name])
                if reason is not None:
                    problems.append((param.name, reason))
                else:
                    out[param.name] = value
            if self.strict:
                expected = ", ".join(declared) or "none"
                for name in given:
                    if name not in declared:
                        problems.append((name, f"unknown parameter (expected: {expected})"))
        if not problems and self.validator is not None:
            try:
                checked = self.validator(out)
            except InvalidParams:
                raise
            except (TypeError, ValueError) as exc:
                problems.append(("params", str(exc) or type(exc).__name__))
            else:
                if isinstance(checked, Mapping):
                    out = dict(checked)
        if problems:
            raise InvalidParams(self.uri or getattr(self.execute, "__qualname__", "operator"), problems)
        return out


def operator(
    *, params: Iterable[Param] | None = None, strict: bool = True, description: str = ""
) -> Callable[[Callable[..., Any]], Operator]:
    """Decorator: `@operator(params=[Param("n", "integer", minimum=0)])` turns `fn(ctx)` into an `Operator`."""

    def wrap(fn: Callable[..., Any]) -> Operator:
        return Operator(
            execute=fn,
            params=tuple(params) if params is not None else None,
            strict=strict,
            description=description or inspect.getdoc(fn) or "",
        )

    return wrap


def as_operator(obj: Any, uri: str) -> Operator:
    """Adapt a registered object (see the module docstring) to an `Operator` named `uri`; TypeError if unusable."""
    if isinstance(obj, Operator):
        return obj.with_uri(uri)
    if inspect.isclass(obj):
        try:
            obj = obj()
        except Exception as exc:
            raise TypeError(f"cannot instantiate operator class {obj.__qualname__}: {exc}") from exc
        if isinstance(obj, Operator):
            return obj.with_uri(uri)
    execute = getattr(obj, "execute", None)
    if callable(execute) and not inspect.isfunction(obj):
        validator = getattr(obj, "validate_params", None)
        return Operator(
            execute=execute,
            uri=uri,
            validator=validator if callable(validator) else None,
            description=inspect.getdoc(obj) or "",
        )
    if callable(obj):
        return Operator(execute=obj, uri=uri, description=inspect.getdoc(obj) or "")
    raise TypeError(f"{uri} is a {type(obj).__name__}, not an operator (a callable or an object with execute(ctx))")
