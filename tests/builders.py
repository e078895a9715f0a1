"""Fluent builders for test inputs: objects are built in code, not copied YAML."""

from __future__ import annotations

import copy
from typing import Any

JSON = dict[str, Any]


class WidgetCRD:
    """A `widgets.example.com` CRD with a status subresource; tweak it before `build()`."""

    def __init__(self, group: str = "example.com", plural: str = "widgets", kind: str = "Widget") -> None:
        self.group = group
        self.plural = plural
        self.kind = kind
        self.scope = "Namespaced"
        self.status_subresource = True
        self.printer_columns: list[JSON] = [
            {"name": "Size", "type": "integer", "jsonPath": ".spec.size", "description": "How big it is"},
            {"name": "Phase", "type": "string", "jsonPath": ".status.phase"},
            {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
        ]
        self.selectable_fields: list[JSON] = [{"jsonPath": ".spec.color"}]
        self.spec_properties: JSON = {
            "size": {"type": "integer", "minimum": 0, "maximum": 100, "description": "Number of parts."},
            "color": {
                "type": "string",
                "enum": ["red", "green", "blue"],
                "default": "red",
                "description": "Colour of the widget.",
            },
            "owner": {
                "type": "string",
                "description": "Who owns it.",
                "x-kubernetes-validations": [{"rule": "self == oldSelf", "message": "owner is immutable"}],
            },
            "tags": {"type": "array", "items": {"type": "string"}, "x-kubernetes-list-type": "set"},
        }
        self.required: list[str] = []
        self.short_names = ["wd"]

    def without_status_subresource(self) -> WidgetCRD:
        self.status_subresource = False
        return self

    def cluster_scoped(self) -> WidgetCRD:
        self.scope = "Cluster"
        return self

    def requiring(self, *fields: str) -> WidgetCRD:
        self.required = list(fields)
        return self

    @property
    def name(self) -> str:
        return f"{self.plural}.{self.group}"

    def build(self) -> JSON:
        version: JSON = {
            "name": "v1",
            "served": True,
            "storage": True,
            "schema": {
                "openAPIV3Schema": {
                    "type": "object",
                    "description": f"A {self.kind} for tests.",
                    "properties": {
                        "spec": {
                            "type": "object",
                            "description": "Desired state.",
                            "properties": copy.deepcopy(self.spec_properties),
                            **({"required": self.required} if self.required else {}),
                        },
                        "status": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
                    },
                }
            },
            "additionalPrinterColumns": copy.deepcopy(self.printer_columns),
            "selectableFields": copy.deepcopy(self.selectable_fields),
        }
        if self.status_subresource:
            version["subresources"] = {"status": {}}
        return {
            "apiVersion": "apiextensions.k8s.io/v1",
            "kind": "CustomResourceDefinition",
            "metadata": {"name": self.name},
            "spec": {
                "group": self.group,
                "scope": self.scope,
                "names": {
                    "plural": self.plural,
                    "singular": self.kind.lower(),
                    "kind": self.kind,
                    "shortNames": self.short_names,
                },
                "versions": [version],
            },
        }


def widget(name: str, namespace: str = "default", **spec: Any) -> JSON:
    meta: JSON = {"name": name}
    if namespace:
        meta["namespace"] = namespace
    return {"apiVersion": "example.com/v1", "kind": "Widget", "metadata": meta, "spec": dict(spec)}


def configmap(name: str, namespace: str = "default", labels: dict[str, str] | None = None, **data: str) -> JSON:
    meta: JSON = {"name": name, "namespace": namespace}
    if labels:
        meta["labels"] = labels
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta, "data": dict(data)}


def pod(
    name: str,
    namespace: str = "default",
    command: list[str] | None = None,
    image: str = "busybox:1.36",
    labels: dict[str, str] | None = None,
) -> JSON:
    meta: JSON = {"name": name, "namespace": namespace}
    if labels:
        meta["labels"] = labels
    container: JSON = {"name": "main", "image": image}
    if command:
        container["command"] = command
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": meta,
        "spec": {"containers": [container], "restartPolicy": "Never"},
    }


def job(
    name: str,
    namespace: str = "default",
    command: list[str] | None = None,
    image: str = "busybox:1.36",
    backoff_limit: int | None = None,
    **spec: Any,
) -> JSON:
    container: JSON = {"name": "main", "image": image}
    if command:
        container["command"] = command
    job_spec: JSON = {"template": {"spec": {"containers": [container], "restartPolicy": "Never"}}, **spec}
    if backoff_limit is not None:
        job_spec["backoffLimit"] = backoff_limit
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name, "namespace": namespace},
        "spec": job_spec,
    }
