"""The namespace lifecycle controller (spec S7): empty a Terminating namespace, then finalize it.

`DELETE namespaces/x` makes the API server set `deletionTimestamp` and `status.phase:
Terminating` (creates inside it are then refused with 403). This controller then deletes every
namespaced object in it — every resource type, custom resources included — with Background
propagation, so finalizers are respected and pods on the kubelet's node terminate gracefully.
While content remains it reports the real status conditions (`NamespaceContentRemaining`,
`NamespaceFinalizersRemaining`, …); once the namespace is empty it removes the `kubernetes`
entry from `spec.finalizers` and the namespace disappears (or waits for its own
`metadata.finalizers`).

It is woken by the namespace's own events and by the deletion or change of any object inside
a terminating namespace, so it never polls a namespace that is not being deleted.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from .. import errors
from ..apiserver import ApiServer, DeleteOptions
from ..clock import rfc3339
from ..store import Event
from .base import Controller, Key
from .common import NAMESPACES, TypeCache, find_condition, log, write_options

JSON = dict[str, Any]

SAFETY_RESYNC = 2.0  # seconds between re-checks while content remains (events normally arrive first)


class NamespaceController(Controller):
    name = "namespace"
    watches = (NAMESPACES,)

    def __init__(self, api: ApiServer) -> None:
        super().__init__(api)
        self.types = TypeCache(api)
        self._terminating: set[str] = set()

    def _on_event(self, event: Event) -> None:
        if event.resource == NAMESPACES:
            meta = event.obj["metadata"]
            if meta.get("deletionTimestamp") and event.type != "DELETED":
                self._terminating.add(meta["name"])
            else:
                self._terminating.discard(meta["name"])
            self.queue.add(("", "namespaces", "", meta["name"]))
            return
        namespace = event.obj["metadata"].get("namespace")
        if namespace and namespace in self._terminating:
            self.queue.add(("", "namespaces", "", namespace))

    def keys_for(self, event: Event) -> Iterable[Key]:
        return [("", "namespaces", "", event.obj["metadata"]["name"])]

    def resync(self) -> None:
        for ns in self.api.store.iter(NAMESPACES):
            if ns["metadata"].get("deletionTimestamp"):
                self._terminating.add(ns["metadata"]["name"])
                self.queue.add(("", "namespaces", "", ns["metadata"]["name"]))

    async def reconcile(self, key: Key) -> float | None:
        name = key[3]
        ns = self.api.store.get(NAMESPACES, "", name)
        if ns is None or not ns["metadata"].get("deletionTimestamp"):
            return None
        remaining: dict[str, int] = {}
        finalizers: dict[str, int] = {}
        failures: list[str] = []
        for resource in self.api.store.resources():
            rtype = self.types.resource(resource)
            if rtype is None or not rtype.namespaced:
                continue
            for obj in list(self.api.store.iter(resource, name)):
                meta = obj["metadata"]
                if meta.get("deletionTimestamp"):
                    continue
                try:
                    self.api.delete(
                        rtype,
                        name,
                        meta["name"],
                        DeleteOptions(propagation_policy="Background", precondition_uid=meta["uid"]),
                    )
                except errors.APIError as exc:
                    if exc.code not in (404, 409):
                        failures.append(f"{rtype.qualified_name}/{meta['name']}: {exc.message}")
            label = f"{rtype.plural}.{rtype.group}"
            for obj in self.api.store.iter(resource, name):
                remaining[label] = remaining.get(label, 0) + 1
                for finalizer in obj["metadata"].get("finalizers") or []:
                    finalizers[finalizer] = finalizers.get(finalizer, 0) + 1
        self._set_conditions(ns, remaining, finalizers, failures)
        if remaining:
            return SAFETY_RESYNC
        if not (ns.get("spec") or {}).get("finalizers") and ns["metadata"].get("finalizers"):
            return None  # finalized: its own metadata.finalizers hold it now
        try:
            self.api.finalize_namespace(name)
        except errors.APIError as exc:
            log.warning("namespace: finalizing %s failed: %s", name, exc.message)
            return 1.0
        return None

    def _set_conditions(
        self, ns: JSON, remaining: dict[str, int], finalizers: dict[str, int], failures: list[str]
    ) -> None:
        """NamespaceStatus conditions as the real controller reports them while it empties the namespace."""
        old = (ns.get("status") or {}).get("conditions") or []
        now = rfc3339(self.api.clock.now())
        wanted: list[tuple[str, str, str, str]] = [
            (
                "NamespaceDeletionDiscoveryFailure",
                "False",
                "ResourcesDiscovered",
                "All resources successfully discovered",
            ),
            (
                "NamespaceDeletionGroupVersionParsingFailure",
                "False",
                "ParsedGroupVersions",
                "All legacy kube types successfully parsed",
            ),
        ]
        if failures:
            wanted.append(
                (
                    "NamespaceDeletionContentFailure",
                    "True",
                    "ContentDeletionFailed",
                    f"Failed to delete all resource types, {len(failures)} remaining: {', '.join(sorted(failures))}",
                )
            )
        else:
            wanted.append(
                (
                    "NamespaceDeletionContentFailure",
                    "False",
                    "ContentDeleted",
                    "All content successfully deleted, may be waiting on finalization",
                )
            )
        if remaining:
            detail = ", ".join(f"{r} has {n} resource instances" for r, n in sorted(remaining.items()))
            wanted.append(
                ("NamespaceContentRemaining", "True", "SomeResourcesRemain", f"Some resources are remaining: {detail}")
            )
        else:
            wanted.append(("NamespaceContentRemaining", "False", "ContentRemoved", "All content successfully removed"))
        if finalizers:
            detail = ", ".join(f"{f} in {n} resource instances" for f, n in sorted(finalizers.items()))
            wanted.append(
                (
                    "NamespaceFinalizersRemaining",
                    "True",
                    "SomeFinalizersRemain",
                    f"Some content in the namespace has finalizers remaining: {detail}",
                )
            )
        else:
            wanted.append(
                (
                    "NamespaceFinalizersRemaining",
                    "False",
                    "ContentHasNoFinalizers",
                    "All content-preserving finalizers finished",
                )
            )
        conditions: list[JSON] = []
        for ctype, status, reason, message in wanted:
            previous = find_condition(old, ctype)
            same = previous is not None and (
                previous.get("status"),
                previous.get("reason"),
                previous.get("message"),
            ) == (
                status,
                reason,
                message,
            )
            if same and previous is not None:
                conditions.append(previous)
                continue
            when = now
            if previous is not None and previous.get("status") == status:
                when = str(previous.get("lastTransitionTime") or now)
            conditions.append(
                {"type": ctype, "status": status, "lastTransitionTime": when, "reason": reason, "message": message}
            )
        if conditions == old:
            return
        status_body = dict(ns.get("status") or {})
        status_body["conditions"] = conditions
        body = dict(ns)
        body["metadata"] = dict(ns["metadata"])
        body["status"] = status_body
        rtype = self.api.type_for("", "v1", "namespaces")
        try:
            self.api.update(rtype, None, ns["metadata"]["name"], body, write_options(), subresource="status")
        except errors.APIError as exc:
            log.debug("namespace: status update of %s failed: %s", ns["metadata"]["name"], exc.message)
