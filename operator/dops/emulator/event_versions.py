"""core/v1 and events.k8s.io/v1 Events: one resource served under two APIs.

kube-apiserver stores one Event type and serves it as `v1` Event and as `events.k8s.io/v1` Event, converting
between them (pkg/apis/events/v1/conversion.go): an Event written through either API is visible through both,
and a field selector on `regarding.*` matches the stored `involvedObject.*`. The emulator stores Events in the
core shape (under the core key) and converts on the way in and out, with the field layout the real server
prints (`eventTime: null`, `deprecatedSource: {}`, … where Go's JSON encoding writes them).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

JSON = dict[str, Any]

EVENTS_V1: Final = ("events.k8s.io", "events")
CORE_EVENTS: Final = ("", "events")
EVENTS_V1_API_VERSION: Final = "events.k8s.io/v1"

# events.k8s.io field labels → the core fields they select (AddFieldLabelConversionsForEvent).
FIELD_LABELS: Final = {
    "regarding.kind": "involvedObject.kind",
    "regarding.namespace": "involvedObject.namespace",
    "regarding.name": "involvedObject.name",
    "regarding.uid": "involvedObject.uid",
    "regarding.apiVersion": "involvedObject.apiVersion",
    "regarding.resourceVersion": "involvedObject.resourceVersion",
    "regarding.fieldPath": "involvedObject.fieldPath",
    "reportingController": "reportingComponent",
}


def is_events_v1(group: str, plural: str) -> bool:
    return (group, plural) == EVENTS_V1


def _put(out: JSON, key: str, value: Any, *, omitempty: bool = True) -> None:
    """Go's encoding of one field: `omitempty` drops "", 0, None and empty maps/lists; structs are always written."""
    if omitempty and value in (None, "", 0, {}, []) and value is not False:
        return
    out[key] = value


def core_to_v1(obj: Mapping[str, Any]) -> JSON:
    """A stored (core/v1) Event as events.k8s.io/v1 serves it (Convert_core_Event_To_v1_Event)."""
    out: JSON = {"kind": "Event", "apiVersion": EVENTS_V1_API_VERSION, "metadata": obj.get("metadata") or {}}
    out["eventTime"] = obj.get("eventTime")  # MicroTime, no omitempty: null when unset
    _put(out, "series", obj.get("series"))
    _put(out, "reportingController", obj.get("reportingComponent"))
    _put(out, "reportingInstance", obj.get("reportingInstance"))
    _put(out, "action", obj.get("action"))
    _put(out, "reason", obj.get("reason"))
    out["regarding"] = obj.get("involvedObject") or {}
    _put(out, "related", obj.get("related"))
    _put(out, "note", obj.get("message"))
    _put(out, "type", obj.get("type"))
    out["deprecatedSource"] = obj.get("source") or {}
    out["deprecatedFirstTimestamp"] = obj.get("firstTimestamp")
    out["deprecatedLastTimestamp"] = obj.get("lastTimestamp")
    _put(out, "deprecatedCount", obj.get("count"))
    return out


def v1_to_core(obj: Mapping[str, Any]) -> JSON:
    """An events.k8s.io/v1 Event in the stored core/v1 shape (Convert_v1_Event_To_core_Event)."""
    out: JSON = {"kind": "Event", "apiVersion": "v1", "metadata": obj.get("metadata") or {}}
    out["involvedObject"] = obj.get("regarding") or {}
    _put(out, "reason", obj.get("reason"))
    _put(out, "message", obj.get("note"))
    out["source"] = obj.get("deprecatedSource") or {}
    out["firstTimestamp"] = obj.get("deprecatedFirstTimestamp")
    out["lastTimestamp"] = obj.get("deprecatedLastTimestamp")
    _put(out, "count", obj.get("deprecatedCount"))
    _put(out, "type", obj.get("type"))
    out["eventTime"] = obj.get("eventTime")
    _put(out, "series", obj.get("series"))
    _put(out, "action", obj.get("action"))
    _put(out, "related", obj.get("related"))
    out["reportingComponent"] = obj.get("reportingController") or ""  # no omitempty in core/v1
    out["reportingInstance"] = obj.get("reportingInstance") or ""
    return out
