"""Helpers the built-in controllers share: resource lookup, owner references, conditions, Events.

Everything here runs on the API server's loop and calls `ApiServer` in-process, so a controller's
writes go through admission, resourceVersion and watch fan-out exactly like a client's.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Iterator
from typing import Any

from .. import errors
from ..apiserver import ApiServer, DeleteOptions, WriteOptions
from ..clock import parse_time, rfc3339
from ..registry import ResourceType

JSON = dict[str, Any]
ResourceKey = tuple[str, str]

# Every controller in kube-controller-manager writes with the process's user agent as field manager.
MANAGER = "kube-controller-manager"

PODS: ResourceKey = ("", "pods")
JOBS: ResourceKey = ("batch", "jobs")
NAMESPACES: ResourceKey = ("", "namespaces")
EVENTS: ResourceKey = ("", "events")
DEPLOYMENTS: ResourceKey = ("apps", "deployments")
REPLICASETS: ResourceKey = ("apps", "replicasets")

log = logging.getLogger("dops.emulator.controllers")


def write_options() -> WriteOptions:
    return WriteOptions(field_manager=MANAGER)


def rtype_for(api: ApiServer, resource: ResourceKey) -> ResourceType | None:
    """The served type for (group, plural), preferring the storage version."""
    fallback: ResourceType | None = None
    for rtype in api.registry:
        if rtype.group == resource[0] and rtype.plural == resource[1]:
            if rtype.storage:
                return rtype
            fallback = fallback or rtype
    return fallback


class TypeCache:
    """(group, plural) and (apiVersion, kind) → ResourceType, re-validated against the live registry."""

    def __init__(self, api: ApiServer) -> None:
        self.api = api
        self._by_resource: dict[ResourceKey, ResourceType] = {}
        self._by_kind: dict[tuple[str, str], ResourceType] = {}

    def _live(self, rtype: ResourceType) -> bool:
        return self.api.registry.get(rtype.group, rtype.version, rtype.plural) is rtype

    def resource(self, resource: ResourceKey) -> ResourceType | None:
        cached = self._by_resource.get(resource)
        if cached is not None and self._live(cached):
            return cached
        found = rtype_for(self.api, resource)
        if found is not None:
            self._by_resource[resource] = found
        else:
            self._by_resource.pop(resource, None)
        return found

    def kind(self, api_version: str, kind: str) -> ResourceType | None:
        """The type serving `kind` in the group of `api_version` (any served version of the group)."""
        key = (api_version, kind)
        cached = self._by_kind.get(key)
        if cached is not None and self._live(cached):
            return cached
        group = api_version.rpartition("/")[0] if "/" in api_version else ""
        found = self.api.registry.by_kind(api_version, kind)
        if found is None:
            for rtype in self.api.registry:
                if rtype.group == group and rtype.kind == kind:
                    found = rtype
                    break
        if found is not None:
            self._by_kind[key] = found
        else:
            self._by_kind.pop(key, None)
        return found


# ----------------------------------------------------------------------------------- owner references
def owner_refs(obj: JSON | None) -> list[JSON]:
    if obj is None:
        return []
    refs = obj["metadata"].get("ownerReferences") or []
    return [r for r in refs if isinstance(r, dict) and r.get("uid")]


def controller_ref(obj: JSON | None) -> JSON | None:
    for ref in owner_refs(obj):
        if ref.get("controller"):
            return ref
    return None


def controller_uid(obj: JSON | None) -> str | None:
    ref = controller_ref(obj)
    return str(ref["uid"]) if ref else None


def new_controller_ref(owner: JSON) -> JSON:
    """metav1.NewControllerRef: controller and blockOwnerDeletion set."""
    return {
        "apiVersion": owner["apiVersion"],
        "kind": owner["kind"],
        "name": owner["metadata"]["name"],
        "uid": owner["metadata"]["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }


def resolve_controller(api: ApiServer, obj: JSON, resource: ResourceKey, kind: str) -> JSON | None:
    """The object of `resource` that controls `obj` (same namespace, matching uid), if it exists."""
    ref = controller_ref(obj)
    if ref is None or ref.get("kind") != kind:
        return None
    owner = api.store.get(resource, obj["metadata"].get("namespace", ""), str(ref.get("name", "")))
    if owner is None or owner["metadata"]["uid"] != ref["uid"]:
        return None
    return owner


# ----------------------------------------------------------------------------------- pods
def pod_active(pod: JSON) -> bool:
    """controller.IsPodActive: not terminal and not being deleted."""
    phase = (pod.get("status") or {}).get("phase")
    return phase not in ("Succeeded", "Failed") and not pod["metadata"].get("deletionTimestamp")


def pod_terminating(pod: JSON) -> bool:
    phase = (pod.get("status") or {}).get("phase")
    return bool(pod["metadata"].get("deletionTimestamp")) and phase not in ("Succeeded", "Failed")


def pod_ready(pod: JSON) -> bool:
    return condition_status((pod.get("status") or {}).get("conditions"), "Ready") == "True"


def active_pod_sort_key(pod: JSON) -> tuple[int, int, int, int, float]:
    """controller.ActivePods ordering, first = deleted first: unscheduled < scheduled, pending < unknown <
    running, not ready < ready, more restarts first, newer first."""
    status = pod.get("status") or {}
    phase_rank = {"Pending": 0, "Unknown": 1, "Running": 2}.get(str(status.get("phase")), 1)
    restarts = sum(int(c.get("restartCount") or 0) for c in status.get("containerStatuses") or [])
    created = parse_time(str(pod["metadata"].get("creationTimestamp", "")))
    return (
        1 if (pod.get("spec") or {}).get("nodeName") else 0,
        phase_rank,
        1 if pod_ready(pod) else 0,
        -restarts,
        -(created.timestamp() if created is not None else 0.0),
    )


# ----------------------------------------------------------------------------------- conditions
def find_condition(conditions: Any, ctype: str) -> JSON | None:
    for cond in conditions or []:
        if isinstance(cond, dict) and cond.get("type") == ctype:
            return cond
    return None


def condition_status(conditions: Any, ctype: str) -> str | None:
    cond = find_condition(conditions, ctype)
    return str(cond.get("status")) if cond else None


def condition_true(conditions: Any, ctype: str) -> bool:
    return condition_status(conditions, ctype) == "True"


# ----------------------------------------------------------------------------------- events
class EventRecorder:
    """record.EventRecorder: one core/v1 Event per call (no aggregation), best effort."""

    def __init__(self, api: ApiServer, component: str, enabled: bool = True) -> None:
        self.api = api
        self.component = component
        self.enabled = enabled
        self._rtype: ResourceType | None = None

    def event(self, obj: JSON, event_type: str, reason: str, message: str) -> None:
        if not self.enabled:
            return
        meta = obj["metadata"]
        namespace = meta.get("namespace") or "default"
        if self._rtype is None:
            self._rtype = self.api.type_for("", "v1", "events")
        now = rfc3339(self.api.clock.now())
        body: JSON = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"name": f"{meta['name']}.{time.time_ns():x}", "namespace": namespace},
            "involvedObject": {
                "kind": obj.get("kind", ""),
                "namespace": meta.get("namespace", ""),
                "name": meta["name"],
                "uid": meta.get("uid", ""),
                "apiVersion": obj.get("apiVersion", ""),
                "resourceVersion": meta.get("resourceVersion", ""),
            },
            "reason": reason,
            "message": message,
            "source": {"component": self.component},
            "firstTimestamp": now,
            "lastTimestamp": now,
            "count": 1,
            "type": event_type,
            "eventTime": None,
            "reportingComponent": self.component,
            "reportingInstance": "",
        }
        if not body["involvedObject"]["namespace"]:
            del body["involvedObject"]["namespace"]
        try:
            self.api.create(self._rtype, namespace, body, write_options())
        except errors.APIError as exc:  # e.g. the namespace is terminating: events are best effort
            log.debug("%s: event %s dropped: %s", self.component, reason, exc.message)


def iter_existing(api: ApiServer, resource: ResourceKey, keys: Iterable[tuple[str, str]]) -> Iterator[JSON]:
    for namespace, name in list(keys):
        obj = api.store.get(resource, namespace, name)
        if obj is not None:
            yield obj


def delete_owned_pod(api: ApiServer, pods_type: ResourceType, recorder: EventRecorder, owner: JSON, pod: JSON) -> bool:
    """Delete `pod` for its controller `owner` (only this exact pod: a UID precondition) and record the
    controller's event. True when the pod is gone; a pod replaced meanwhile (409) counts as not deleted."""
    meta = pod["metadata"]
    try:
        api.delete(pods_type, meta["namespace"], meta["name"], DeleteOptions(precondition_uid=meta["uid"]))
    except errors.APIError as exc:
        if exc.code in (404, 409):
            return exc.code == 404
        recorder.event(owner, "Warning", "FailedDelete", f"Error deleting: {exc.message}")
        return False
    recorder.event(owner, "Normal", "SuccessfulDelete", f"Deleted pod: {meta['name']}")
    return True
