"""Builders for dops' own resources (DelegatedOperation, DelegationTarget) used by the API tests."""

from __future__ import annotations

import copy
from typing import Any

JSON = dict[str, Any]


class OperationBuilder:
    """`operation("x").operator("@dops/examples/echo").params(a=1).build()` → a DelegatedOperation dict."""

    def __init__(self, name: str, namespace: str | None = None) -> None:
        self._meta: JSON = {"name": name}
        if namespace:
            self._meta["namespace"] = namespace
        self._spec: JSON = {"operator": "@dops/examples/echo"}
        self._status: JSON | None = None

    def operator(self, uri: str | None) -> OperationBuilder:
        if uri is None:
            self._spec.pop("operator", None)
        else:
            self._spec["operator"] = uri
        return self

    def label(self, label: str) -> OperationBuilder:
        self._spec["label"] = label
        return self

    def target(self, target: str) -> OperationBuilder:
        self._spec["delegationTarget"] = target
        return self

    def params(self, **params: Any) -> OperationBuilder:
        self._spec.setdefault("context", {})["params"] = params
        return self

    def context(self, **request_params: Any) -> OperationBuilder:
        self._spec.setdefault("context", {}).update(request_params)
        return self

    def spec(self, **fields: Any) -> OperationBuilder:
        self._spec.update(fields)
        return self

    def labels(self, **labels: str) -> OperationBuilder:
        self._meta.setdefault("labels", {}).update(labels)
        return self

    def status(self, **fields: Any) -> OperationBuilder:
        """Status fields (camelCase, as stored) for objects built in memory, e.g. for renderers."""
        self._status = {**(self._status or {}), **fields}
        return self

    def build(self) -> JSON:
        obj: JSON = {
            "apiVersion": "dops.io/v1alpha1",
            "kind": "DelegatedOperation",
            "metadata": copy.deepcopy(self._meta),
            "spec": copy.deepcopy(self._spec),
        }
        if self._status is not None:
            obj["status"] = copy.deepcopy(self._status)
        return obj


def operation(name: str, namespace: str | None = None) -> OperationBuilder:
    return OperationBuilder(name, namespace)


def delegation_target(name: str, namespace: str | None = None, **spec: Any) -> JSON:
    meta: JSON = {"name": name}
    if namespace:
        meta["namespace"] = namespace
    return {"apiVersion": "dops.io/v1alpha1", "kind": "DelegationTarget", "metadata": meta, "spec": dict(spec)}
