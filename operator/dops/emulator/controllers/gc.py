"""The garbage collector: ownerReference cascades (spec S7), as kube-controller-manager runs them.

It keeps, from the store's events (never a scan per event), two indexes over every resource:
uid → where the object lives, and owner uid → the dependents that reference it. A key is then
reconciled in one or both of its roles:

- **owner being deleted** (`deletionTimestamp` set):
  - `orphan` finalizer: its ownerReference is stripped from every dependent, then the finalizer
    is removed so the owner goes;
  - `foregroundDeletion` finalizer: every dependent is deleted (or, when it has another live
    owner, unlinked); once no dependent with `blockOwnerDeletion: true` is left the finalizer
    is removed and the owner goes.
- **dependent**: each ownerReference is *solid* (the owner exists), *dangling* (no object with
  that uid, kind and namespace exists — whatever removed it: a delete, a CRD deletion, a
  namespace deletion) or *waiting* (the owner is being deleted in the foreground). Without a
  solid owner the dependent is deleted — Foreground when it has dependents of its own and an
  owner waits for it, else as its own finalizers ask (orphan, foregroundDeletion, else
  Background). With a solid owner, dangling and waiting references are just removed.

Ownership rules: a namespaced owner must be in the dependent's namespace (otherwise the
reference is dangling); a cluster-scoped dependent naming a namespaced owner kind is
unresolvable and never collected.
"""

from __future__ import annotations

from collections.abc import Iterable

from .. import errors
from ..apiserver import PATCH_JSON, PATCH_MERGE, ApiServer, DeleteOptions
from ..store import DELETED, Event
from .base import Controller, Key
from .common import JSON, TypeCache, log, owner_refs, write_options

ResourceKey = tuple[str, str]
Location = tuple[ResourceKey, str, str]  # (resource, namespace, name)

ORPHAN = "orphan"
FOREGROUND = "foregroundDeletion"

SOLID, DANGLING, WAITING, UNRESOLVABLE = "solid", "dangling", "waiting", "unresolvable"


class GarbageCollector(Controller):
    name = "gc"

    def __init__(self, api: ApiServer) -> None:
        super().__init__(api)
        self.types = TypeCache(api)
        self._where: dict[str, Location] = {}  # uid → location of every live object
        self._dependents: dict[str, set[Location]] = {}  # owner uid → dependents that reference it

    # ------------------------------------------------------------------------------- indexes
    def _track(self, resource: ResourceKey, old: JSON | None, new: JSON | None) -> None:
        if old is not None:
            meta = old["metadata"]
            loc: Location = (resource, meta.get("namespace", ""), meta["name"])
            new_refs = {r["uid"] for r in owner_refs(new)} if new is not None else set()
            for ref in owner_refs(old):
                if ref["uid"] not in new_refs:
                    deps = self._dependents.get(ref["uid"])
                    if deps is not None:
                        deps.discard(loc)
                        if not deps:
                            del self._dependents[ref["uid"]]
            if new is None and self._where.get(meta["uid"]) == loc:
                del self._where[meta["uid"]]
        if new is not None:
            meta = new["metadata"]
            loc = (resource, meta.get("namespace", ""), meta["name"])
            self._where[meta["uid"]] = loc
            for ref in owner_refs(new):
                self._dependents.setdefault(ref["uid"], set()).add(loc)

    def _on_event(self, event: Event) -> None:
        for key in self.keys_for(event):
            self.queue.add(key)

    def keys_for(self, event: Event) -> Iterable[Key]:
        resource = event.resource
        obj = event.obj
        meta = obj["metadata"]
        own: Key = (resource[0], resource[1], meta.get("namespace", ""), meta["name"])
        keys: list[Key] = []
        if event.type == DELETED:
            self._track(resource, event.old or obj, None)
            # Its dependents may now be dangling; owners waiting on it may now be free to go.
            for loc in list(self._dependents.get(meta["uid"], ())):
                keys.append((loc[0][0], loc[0][1], loc[1], loc[2]))
            keys.extend(self._waiting_owner_keys(obj))
            return keys
        self._track(resource, event.old, obj)
        finalizers = meta.get("finalizers") or []
        deleting = bool(meta.get("deletionTimestamp"))
        if deleting and (ORPHAN in finalizers or FOREGROUND in finalizers):
            keys.append(own)
        if owner_refs(obj) and (event.old is None or _refs_changed(event.old, obj) or deleting):
            keys.append(own)
        if deleting:
            keys.extend(self._waiting_owner_keys(obj))
        return keys

    def _waiting_owner_keys(self, obj: JSON) -> list[Key]:
        keys: list[Key] = []
        for ref in owner_refs(obj):
            loc = self._where.get(ref["uid"])
            if loc is not None:
                owner = self.api.store.get(loc[0], loc[1], loc[2])
                if owner is not None and owner["metadata"].get("deletionTimestamp"):
                    keys.append((loc[0][0], loc[0][1], loc[1], loc[2]))
        return keys

    def resync(self) -> None:
        self._where.clear()
        self._dependents.clear()
        for resource in self.api.store.resources():
            for obj in self.api.store.iter(resource):
                self._track(resource, None, obj)
        for resource in self.api.store.resources():
            for obj in self.api.store.iter(resource):
                meta = obj["metadata"]
                if owner_refs(obj) or meta.get("deletionTimestamp"):
                    self.queue.add((resource[0], resource[1], meta.get("namespace", ""), meta["name"]))

    # ------------------------------------------------------------------------------- reconcile
    async def reconcile(self, key: Key) -> float | None:
        group, plural, namespace, name = key
        resource = (group, plural)
        obj = self.api.store.get(resource, namespace, name)
        if obj is None:
            return None
        meta = obj["metadata"]
        again: float | None = None
        if meta.get("deletionTimestamp"):
            finalizers = meta.get("finalizers") or []
            if ORPHAN in finalizers:
                self._orphan_dependents(resource, obj)
            elif FOREGROUND in finalizers:
                again = self._delete_dependents(resource, obj)
        obj = self.api.store.get(resource, namespace, name)
        if obj is not None and owner_refs(obj):
            self._attempt_to_delete(resource, obj)
        return again

    def _owner_state(self, resource: ResourceKey, dependent: JSON, ref: JSON) -> str:
        owner_type = self.types.kind(str(ref.get("apiVersion", "")), str(ref.get("kind", "")))
        dep_type = self.types.resource(resource)
        dep_namespace = dependent["metadata"].get("namespace", "")
        if owner_type is not None and owner_type.namespaced and dep_type is not None and not dep_type.namespaced:
            return UNRESOLVABLE
        loc = self._where.get(ref["uid"])
        if loc is None:
            return DANGLING
        owner_resource, owner_ns, owner_name = loc
        if owner_ns and owner_ns != dep_namespace:
            return DANGLING  # a namespaced owner must live in the dependent's namespace
        if owner_type is not None and (owner_type.group, owner_type.plural) != owner_resource:
            return DANGLING
        owner = self.api.store.get(owner_resource, owner_ns, owner_name)
        if owner is None or owner["metadata"]["uid"] != ref["uid"]:
            return DANGLING
        owner_meta = owner["metadata"]
        if owner_meta.get("deletionTimestamp") and FOREGROUND in (owner_meta.get("finalizers") or []):
            return WAITING
        return SOLID

    def _attempt_to_delete(self, resource: ResourceKey, obj: JSON) -> None:
        """attemptToDeleteItem for a dependent."""
        refs = owner_refs(obj)
        states = {ref["uid"]: self._owner_state(resource, obj, ref) for ref in refs}
        if UNRESOLVABLE in states.values() and SOLID not in states.values():
            states = {uid: (SOLID if s == UNRESOLVABLE else s) for uid, s in states.items()}
        solid = [u for u, s in states.items() if s == SOLID]
        dangling = [u for u, s in states.items() if s == DANGLING]
        waiting = [u for u, s in states.items() if s == WAITING]
        meta = obj["metadata"]
        if solid:
            if dangling or waiting:
                self._remove_refs(resource, obj, set(dangling) | set(waiting))
            return
        if not dangling and not waiting:
            return
        if meta.get("deletionTimestamp"):
            return  # already on its way out
        finalizers = meta.get("finalizers") or []
        if waiting and self._dependents.get(meta["uid"]):
            policy = "Foreground"
        elif ORPHAN in finalizers:
            policy = "Orphan"
        elif FOREGROUND in finalizers:
            policy = "Foreground"
        else:
            policy = "Background"
        self._delete(resource, obj, policy)

    def _delete(self, resource: ResourceKey, obj: JSON, policy: str) -> None:
        rtype = self.types.resource(resource)
        if rtype is None:
            return
        meta = obj["metadata"]
        try:
            self.api.delete(
                rtype,
                meta.get("namespace") or None,
                meta["name"],
                DeleteOptions(propagation_policy=policy, precondition_uid=meta["uid"]),
            )
        except errors.APIError as exc:
            if exc.code not in (404, 409):
                log.warning("gc: deleting %s %s failed: %s", rtype.qualified_name, meta["name"], exc.message)

    def _remove_refs(self, resource: ResourceKey, obj: JSON, uids: set[str]) -> None:
        """Patch the dependent so that it no longer references `uids` (guarded by its resourceVersion)."""
        rtype = self.types.resource(resource)
        if rtype is None:
            return
        meta = obj["metadata"]
        keep = [r for r in meta.get("ownerReferences") or [] if not (isinstance(r, dict) and r.get("uid") in uids)]
        patch = [
            {"op": "test", "path": "/metadata/uid", "value": meta["uid"]},
            {
                "op": "replace" if keep else "remove",
                "path": "/metadata/ownerReferences",
                **({"value": keep} if keep else {}),
            },
        ]
        try:
            self.api.patch(rtype, meta.get("namespace") or None, meta["name"], PATCH_JSON, patch, write_options())
        except errors.APIError as exc:
            if exc.code not in (404, 409, 422):
                log.warning("gc: unlinking %s %s failed: %s", rtype.qualified_name, meta["name"], exc.message)

    def _remove_finalizer(self, resource: ResourceKey, obj: JSON, finalizer: str) -> None:
        rtype = self.types.resource(resource)
        if rtype is None:
            return
        meta = obj["metadata"]
        remaining = [f for f in meta.get("finalizers") or [] if f != finalizer]
        try:
            self.api.patch(
                rtype,
                meta.get("namespace") or None,
                meta["name"],
                PATCH_MERGE,
                {"metadata": {"finalizers": remaining or None, "resourceVersion": meta["resourceVersion"]}},
                write_options(),
            )
        except errors.APIError as exc:
            if exc.code == 409:
                self.queue.add((resource[0], resource[1], meta.get("namespace", ""), meta["name"]))
            elif exc.code != 404:
                log.warning("gc: removing %s from %s failed: %s", finalizer, meta["name"], exc.message)

    def _dependents_of(self, owner: JSON) -> list[tuple[ResourceKey, JSON]]:
        out = []
        for loc in list(self._dependents.get(owner["metadata"]["uid"], ())):
            dep = self.api.store.get(loc[0], loc[1], loc[2])
            if dep is not None:
                out.append((loc[0], dep))
        return out

    def _orphan_dependents(self, resource: ResourceKey, owner: JSON) -> None:
        uid = owner["metadata"]["uid"]
        for dep_resource, dep in self._dependents_of(owner):
            self._remove_refs(dep_resource, dep, {uid})
        self._remove_finalizer(resource, owner, ORPHAN)

    def _delete_dependents(self, resource: ResourceKey, owner: JSON) -> float | None:
        """Foreground deletion: delete the dependents, then let the owner go once none blocks it."""
        uid = owner["metadata"]["uid"]
        for dep_resource, dep in self._dependents_of(owner):
            self._attempt_to_delete(dep_resource, dep)
        blocking = 0
        for _dep_resource, dep in self._dependents_of(owner):
            for ref in owner_refs(dep):
                if ref["uid"] == uid and ref.get("blockOwnerDeletion"):
                    blocking += 1
                    break
        if blocking:
            return 1.0  # events re-trigger us as dependents go; the requeue is only a safety net
        current = self.api.store.get(resource, owner["metadata"].get("namespace", ""), owner["metadata"]["name"])
        if current is not None and current["metadata"]["uid"] == uid:
            self._remove_finalizer(resource, current, FOREGROUND)
        return None


def _refs_changed(old: JSON, new: JSON) -> bool:
    return bool(old["metadata"].get("ownerReferences") != new["metadata"].get("ownerReferences"))
