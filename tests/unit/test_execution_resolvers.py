"""Operator resolvers (`dops.operator_resolvers` entry points): asked for URIs no entry point names.

Table of cases, without a cluster: a resolver's object becomes the operator (and is cached); None from every
resolver is OperatorNotFound; a failing resolver is an OperatorLoadError naming it; entry points win over
resolvers; only registries built with a resolver group (the process-wide one) ask resolvers. The FiftyOne
resolver (`dops.fiftyone.worker`) answers None unless DOPS_FIFTYONE_OPERATORS is on.
"""

from __future__ import annotations

import importlib.metadata
from typing import Any

import pytest

from dops.execution.registry import RESOLVER_GROUP, OperatorLoadError, OperatorNotFound, OperatorRegistry
from dops.fiftyone import worker as fiftyone_worker

CALLS: list[str] = []


def _echo(ctx: Any) -> str:
    return "resolved"


def resolve_known(uri: str) -> Any:
    CALLS.append(uri)
    return _echo if uri.startswith("@resolved/") else None


def resolve_broken(uri: str) -> Any:
    raise RuntimeError("resolver exploded")


def _fake_entry_points(monkeypatch: pytest.MonkeyPatch, **resolvers: str) -> None:
    real = importlib.metadata.entry_points

    def entry_points(**kwargs: Any) -> Any:
        if kwargs.get("group") == RESOLVER_GROUP:
            return [
                importlib.metadata.EntryPoint(name, f"{__name__}:{fn}", RESOLVER_GROUP)  # this very module
                for name, fn in resolvers.items()
            ]
        return real(**kwargs)

    monkeypatch.setattr(importlib.metadata, "entry_points", entry_points)
    CALLS.clear()


def test_a_resolved_object_is_the_operator_and_is_cached(monkeypatch: pytest.MonkeyPatch) -> None:
    _fake_entry_points(monkeypatch, a="resolve_known")
    reg = OperatorRegistry(group=None, resolver_group=RESOLVER_GROUP)
    op = reg.resolve("@resolved/x/y")
    assert op.uri == "@resolved/x/y" and op.execute(None) == "resolved"
    assert reg.resolve("@resolved/x/y") is op and CALLS == ["@resolved/x/y"]


def test_nothing_resolves_is_operator_not_found(monkeypatch: pytest.MonkeyPatch) -> None:
    _fake_entry_points(monkeypatch, a="resolve_known")
    with pytest.raises(OperatorNotFound, match="operator not found: @other/x/y"):
        OperatorRegistry(group=None, operators={"@t/one": _echo}, resolver_group=RESOLVER_GROUP).resolve("@other/x/y")


def test_a_failing_resolver_is_a_load_error_naming_it(monkeypatch: pytest.MonkeyPatch) -> None:
    _fake_entry_points(monkeypatch, broken="resolve_broken")
    with pytest.raises(OperatorLoadError, match=r"resolver broken = .*: RuntimeError: resolver exploded"):
        OperatorRegistry(group=None, resolver_group=RESOLVER_GROUP).resolve("@resolved/x/y")


def test_registered_operators_win_and_plain_registries_ask_no_resolver(monkeypatch: pytest.MonkeyPatch) -> None:
    _fake_entry_points(monkeypatch, a="resolve_known", broken="resolve_broken")
    reg = OperatorRegistry(group=None, operators={"@resolved/x/y": lambda ctx: "mine"}, resolver_group=RESOLVER_GROUP)
    assert reg.resolve("@resolved/x/y").execute(None) == "mine" and CALLS == []
    with pytest.raises(OperatorNotFound):
        OperatorRegistry(group=None).resolve("@resolved/x/y")
    assert CALLS == []


@pytest.mark.parametrize(
    ("environ", "on"),
    [({}, False), ({"DOPS_FIFTYONE_OPERATORS": "0"}, False), ({"DOPS_FIFTYONE_OPERATORS": "yes"}, None)],
)
def test_the_fiftyone_resolver_is_off_without_its_switch(environ: dict[str, str], on: bool | None) -> None:
    expected = on if on is not None else fiftyone_worker.importlib.util.find_spec("fiftyone") is not None
    assert fiftyone_worker.enabled(environ) is expected
