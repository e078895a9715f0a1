"""The operator registry: operator URI → `Operator`.

Operators come from the `dops.operators` entry-point group (`importlib.metadata`): the entry point's
*name* is the URI, its value the object, e.g. in a plugin's pyproject.toml

    [project.entry-points."dops.operators"]
    "@acme/plugin/train" = "acme_plugin.operators:train"

dops' own examples (`@dops/examples/echo`, `count`, `sleep`, `fail`) are registered the same way.
Entry points are only *loaded* (imported) when their operator is resolved, so one broken plugin
cannot break the others.

Operators no entry point names may come from a *resolver*: an entry point of the `dops.operator_resolvers`
group loads to `resolve(uri) -> object | None`, asked (in name order) for URIs nothing else provides; the
first object returned is the operator. `dops.fiftyone.worker` is one: FiftyOne plugin operators in a worker
image (see docs/fiftyone.md). Only the process-wide registry (`default_registry()`) consults resolvers.

`py:package.module:function` URIs import code directly from the worker's environment; they resolve
only when the caller allows import paths (the DelegationTarget's `allowImportPaths`, or the operator
setting `DOPS_ALLOW_IMPORT_PATHS` for the default target). Everything that does not resolve raises
`OperatorNotFound`, whose message names the known operators.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import logging
import re
import threading
from collections.abc import Iterable
from typing import Any

from .operators import Operator, as_operator

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "dops.operators"
RESOLVER_GROUP = "dops.operator_resolvers"
IMPORT_PREFIX = "py:"
_IDENTIFIER = r"[A-Za-z_][A-Za-z0-9_]*"
_IMPORT_PATH = re.compile(rf"^{_IDENTIFIER}(\.{_IDENTIFIER})*:{_IDENTIFIER}(\.{_IDENTIFIER})*$")
_MAX_LISTED = 50


class OperatorNotFound(LookupError):
    """An operator URI that does not resolve; the message lists the known operators."""

    def __init__(self, uri: str, known: Iterable[str], detail: str = "") -> None:
        self.uri = uri
        self.known = sorted(known)
        listed = ", ".join(self.known[:_MAX_LISTED]) or "none"
        if len(self.known) > _MAX_LISTED:
            listed += f", ... ({len(self.known) - _MAX_LISTED} more)"
        reason = f" ({detail})" if detail else ""
        super().__init__(f"operator not found: {uri}{reason}; known operators: {listed}")


class OperatorLoadError(RuntimeError):
    """An operator is registered but cannot be loaded (its module fails to import, or it is not callable)."""


class OperatorRegistry:
    """Operators by URI: entry points of `group` (loaded lazily) plus operators registered in code."""

    def __init__(
        self,
        group: str | None = ENTRY_POINT_GROUP,
        operators: dict[str, Any] | None = None,
        *,
        resolver_group: str | None = None,
    ) -> None:
        self._group = group
        self._resolver_group = resolver_group
        self._lock = threading.Lock()
        self._entry_points: dict[str, importlib.metadata.EntryPoint] | None = None
        self._registered: dict[str, Any] = dict(operators or {})
        self._loaded: dict[str, Operator] = {}

    # ------------------------------------------------------------------------------------ contents
    def _discover(self) -> dict[str, importlib.metadata.EntryPoint]:
        with self._lock:
            if self._entry_points is None:
                found: dict[str, importlib.metadata.EntryPoint] = {}
                if self._group:
                    for ep in importlib.metadata.entry_points(group=self._group):
                        if ep.name in found and found[ep.name].value != ep.value:
                            log.warning(
                                "operator %s is registered twice (%s and %s); using the first",
                                ep.name,
                                found[ep.name].value,
                                ep.value,
                            )
                            continue
                        found[ep.name] = ep
                self._entry_points = found
            return self._entry_points

    def known(self) -> list[str]:
        """Every registered operator URI, sorted."""
        return sorted({*self._discover(), *self._registered})

    def __contains__(self, uri: object) -> bool:
        return isinstance(uri, str) and (uri in self._registered or uri in self._discover())

    def register(self, uri: str, obj: Any) -> None:
        """Register (or replace) an operator in code; `obj` is anything `as_operator` accepts."""
        if not uri or not isinstance(uri, str):
            raise ValueError("operator URI must be a non-empty string")
        with self._lock:
            self._registered[uri] = obj
            self._loaded.pop(uri, None)

    def unregister(self, uri: str) -> None:
        with self._lock:
            self._registered.pop(uri, None)
            self._loaded.pop(uri, None)

    # ------------------------------------------------------------------------------------ resolution
    def resolve(self, uri: str, *, allow_import_paths: bool = False) -> Operator:
        """The operator named `uri`; OperatorNotFound / OperatorLoadError with a readable message."""
        if not isinstance(uri, str) or not uri:
            raise OperatorNotFound(repr(uri), self.known(), "the operator URI is empty")
        if uri.startswith(IMPORT_PREFIX) and not allow_import_paths:
            # Before the cache: a py: operator loaded for a caller that allowed it (another target, in a
            # long-lived executor) must not run for one that does not.
            raise self._import_refused(uri)
        with self._lock:
            cached = self._loaded.get(uri)
        if cached is not None:
            return cached
        if uri.startswith(IMPORT_PREFIX):
            op = self._import(uri, allow_import_paths)
        elif uri in self._registered:
            op = self._adapt(uri, self._registered[uri])
        else:
            ep = self._discover().get(uri)
            if ep is None:
                found = self._from_resolvers(uri)
                if found is None:
                    raise OperatorNotFound(uri, self.known())
                op = self._adapt(uri, found)
                with self._lock:
                    self._loaded[uri] = op
                return op
            try:
                obj = ep.load()
            except Exception as exc:
                raise OperatorLoadError(
                    f"cannot load operator {uri} (entry point {ep.value}): {type(exc).__name__}: {exc}"
                ) from exc
            op = self._adapt(uri, obj)
        with self._lock:
            self._loaded[uri] = op
        return op

    def _from_resolvers(self, uri: str) -> Any:
        """The first object a resolver returns for `uri`, or None (OperatorLoadError when a resolver fails)."""
        if not self._resolver_group:
            return None
        for ep in sorted(importlib.metadata.entry_points(group=self._resolver_group), key=lambda e: e.name):
            try:
                found = ep.load()(uri)
            except Exception as exc:
                raise OperatorLoadError(
                    f"cannot resolve operator {uri} (resolver {ep.name} = {ep.value}): {type(exc).__name__}: {exc}"
                ) from exc
            if found is not None:
                return found
        return None

    def _adapt(self, uri: str, obj: Any) -> Operator:
        try:
            return as_operator(obj, uri)
        except TypeError as exc:
            raise OperatorLoadError(f"cannot use operator {uri}: {exc}") from exc

    def _import_refused(self, uri: str) -> OperatorNotFound:
        return OperatorNotFound(
            uri,
            self.known(),
            "py: import paths are not allowed here; set allowImportPaths: true on the DelegationTarget "
            "(or DOPS_ALLOW_IMPORT_PATHS=true for the default target)",
        )

    def _import(self, uri: str, allowed: bool) -> Operator:
        path = uri[len(IMPORT_PREFIX) :]
        if not allowed:
            raise self._import_refused(uri)
        if not _IMPORT_PATH.match(path):
            raise OperatorNotFound(uri, self.known(), "an import path looks like py:package.module:function")
        module_name, _, attribute = path.partition(":")
        try:
            obj: Any = importlib.import_module(module_name)
        except Exception as exc:
            raise OperatorLoadError(f"cannot import operator {uri}: {type(exc).__name__}: {exc}") from exc
        for part in attribute.split("."):
            try:
                obj = getattr(obj, part)
            except AttributeError:
                detail = f"module {module_name} has no attribute {attribute}"
                raise OperatorNotFound(uri, self.known(), detail) from None
        return self._adapt(uri, obj)


_default: OperatorRegistry | None = None
_default_lock = threading.Lock()


def default_registry() -> OperatorRegistry:
    """The process-wide registry over the installed `dops.operators` entry points."""
    global _default
    with _default_lock:
        if _default is None:
            _default = OperatorRegistry(resolver_group=RESOLVER_GROUP)
        return _default
