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


def _condition(ctype: str, status: str, at: str, reason: str = "", message: str = "", probe: bool = True) -> JSON:
    cond: JSON = {"type": ctype, "status": status, "lastTransitionTime": at}
    if probe:
        cond["lastProbeTime"] = at
    if reason:
        cond["reason"] = reason
    if message:
        cond["message"] = message
    return cond


def job_status(state: str, at: str) -> JSON:
    """`status` of a single-pod Job as the kube-controller-manager (v1.35) writes it in `state`:
    pending (just created, nothing written yet), running, complete or failed. `at` is an RFC 3339 time."""
    base: JSON = {"ready": 0, "terminating": 0, "uncountedTerminatedPods": {}}
    if state == "pending":
        return {}
    if state == "running":
        return {**base, "active": 1, "startTime": at}
    if state == "complete":
        done = "Reached expected number of succeeded pods"
        return {
            **base,
            "startTime": at,
            "completionTime": at,
            "succeeded": 1,
            "conditions": [
                _condition("SuccessCriteriaMet", "True", at, "CompletionsReached", done),
                _condition("Complete", "True", at, "CompletionsReached", done),
            ],
        }
    if state == "failed":
        limit = "Job has reached the specified backoff limit"
        return {
            **base,
            "startTime": at,
            "failed": 2,
            "conditions": [
                _condition("FailureTarget", "True", at, "BackoffLimitExceeded", limit),
                _condition("Failed", "True", at, "BackoffLimitExceeded", limit),
            ],
        }
    raise ValueError(f"unknown job state {state!r}")


def pod_status(phase: str, at: str, container: str = "main", image: str = "busybox:1.36") -> JSON:
    """`status` of a one-container Pod as the kubelet (v1.35) writes it in `phase`:
    Pending (scheduled, container creating), Running, Succeeded (exit 0) or Failed (exit 3)."""
    ips: JSON = {"hostIP": "10.0.0.1", "hostIPs": [{"ip": "10.0.0.1"}]}
    if phase != "Pending":
        ips.update(podIP="10.244.0.7", podIPs=[{"ip": "10.244.0.7"}])
    container_id = "containerd://" + "ab" * 32
    image_id = f"docker.io/library/{image}@sha256:" + "cd" * 32
    running = phase == "Running"
    finished = phase in ("Succeeded", "Failed")
    ready_reason = "PodCompleted" if finished else ("" if running else "ContainersNotReady")
    ready = "True" if running else "False"
    conditions = [
        _condition("PodReadyToStartContainers", "True" if phase != "Pending" else "False", at, probe=False),
        _condition("Initialized", "True", at, "PodCompleted" if finished else "", probe=False),
        _condition("Ready", ready, at, ready_reason, probe=False),
        _condition("ContainersReady", ready, at, ready_reason, probe=False),
        _condition("PodScheduled", "True", at, probe=False),
    ]
    for cond in conditions:
        cond["lastProbeTime"] = None  # the kubelet writes an explicit null
    cstatus: JSON = {
        "name": container,
        "image": image,
        "imageID": image_id if phase != "Pending" else "",
        "ready": running,
        "restartCount": 0,
        "started": running,
        "lastState": {},
    }
    if phase == "Pending":
        cstatus["state"] = {"waiting": {"reason": "ContainerCreating"}}
    elif running:
        cstatus.update(containerID=container_id, state={"running": {"startedAt": at}})
    elif finished:
        code = 0 if phase == "Succeeded" else 3
        terminated: JSON = {
            "exitCode": code,
            "reason": "Completed" if code == 0 else "Error",
            "startedAt": at,
            "finishedAt": at,
            "containerID": container_id,
        }
        if code:
            terminated["message"] = "boom"
        cstatus.update(containerID=container_id, state={"terminated": terminated})
    else:
        raise ValueError(f"unknown pod phase {phase!r}")
    status: JSON = {
        "phase": phase,
        "conditions": conditions,
        "qosClass": "BestEffort",
        "startTime": at,
        "containerStatuses": [cstatus],
        **ips,
    }
    return status


def namespace(name: str) -> JSON:
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}


def event(
    name: str,
    involved: JSON,
    namespace: str = "default",
    reason: str = "Tested",
    message: str = "something happened",
    type: str = "Normal",
) -> JSON:
    """A core/v1 Event about `involved` (any object as the server returned it)."""
    meta = involved["metadata"]
    return {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"name": name, "namespace": namespace},
        "involvedObject": {
            "apiVersion": involved.get("apiVersion", ""),
            "kind": involved.get("kind", ""),
            "name": meta["name"],
            "namespace": meta.get("namespace", ""),
            "uid": meta.get("uid", ""),
            "resourceVersion": meta.get("resourceVersion", ""),
        },
        "reason": reason,
        "message": message,
        "type": type,
        "source": {"component": "tests"},
    }


def deployment(
    name: str,
    namespace: str = "default",
    containers: list[JSON] | None = None,
    replicas: int = 1,
) -> JSON:
    """An apps/v1 Deployment selecting `app: <name>`; containers default to one `main` busybox."""
    labels = {"app": name}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": dict(labels)},
            "template": {
                "metadata": {"labels": dict(labels)},
                "spec": {"containers": containers or [{"name": "main", "image": "busybox:1.36"}]},
            },
        },
    }
