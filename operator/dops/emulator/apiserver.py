"""The API server's semantics, independent of HTTP: create, update, patch, delete, get, list, watch.

The HTTP layer (`server.py`) parses requests and renders responses; controllers running in the
same loop call this class directly, so both go through the same admission, status-subresource,
generation, finalizer and resourceVersion rules (S2, S3, S6, S7 of the API-surface spec).

A request body handed to a write method is owned by the method (it is mutated into the stored
object), which spares a deep copy per request on the hot path.
"""

from __future__ import annotations

import base64
import copy
import json
import random
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from . import errors, kinds
from .builtin_schemas import BuiltinValidator, model_for
from .clock import Clock, rfc3339
from .patching import (
    PatchError,
    apply_patch,
    changed_fields,
    json_patch,
    merge_patch,
    strategic_merge_patch,
    update_managed_fields,
)
from .patching import fields_v1 as compute_fields_v1
from .registry import Registry, ResourceType
from .schema import StructuralSchema, validate_crd
from .selectors import FieldSelector, LabelSelector, SelectorError, field_value
from .store import Event, HistoryExpired, Store, Watcher, dumps

JSON = dict[str, Any]

MAX_OBJECT_BYTES = 1_572_864  # etcd's default request limit (1.5 MiB)
GENERATE_NAME_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"
CRD_KEY = ("apiextensions.k8s.io", "customresourcedefinitions")
NAMESPACE_KEY = ("", "namespaces")

PATCH_JSON = "application/json-patch+json"
PATCH_MERGE = "application/merge-patch+json"
PATCH_STRATEGIC = "application/strategic-merge-patch+json"
PATCH_APPLY = "application/apply-patch+yaml"
PATCH_APPLY_CBOR = "application/apply-patch+cbor"

# Kinds that answer an immediate DELETE with the deleted object rather than a Status.
_RETURN_DELETED_OBJECT = frozenset({("", "pods"), ("", "services"), ("", "namespaces")})
# batch/v1 Jobs keep the historical default: orphan their pods unless told otherwise.
_ORPHAN_BY_DEFAULT = frozenset({("batch", "jobs"), ("batch", "cronjobs")})


@dataclass
class WriteOptions:
    dry_run: bool = False
    field_manager: str = ""
    field_validation: str = "Warn"  # Strict | Warn | Ignore
    force: bool = False


@dataclass
class DeleteOptions:
    propagation_policy: str | None = None
    grace_period_seconds: int | None = None
    precondition_uid: str | None = None
    precondition_rv: str | None = None
    orphan_dependents: bool | None = None
    dry_run: bool = False

    @classmethod
    def from_body(cls, body: Any, query: dict[str, str]) -> DeleteOptions:
        opts = cls()
        if isinstance(body, dict):
            opts.propagation_policy = body.get("propagationPolicy") or None
            grace = body.get("gracePeriodSeconds")
            opts.grace_period_seconds = int(grace) if grace is not None else None
            pre = body.get("preconditions") or {}
            opts.precondition_uid = pre.get("uid") or None
            opts.precondition_rv = pre.get("resourceVersion") or None
            opts.orphan_dependents = body.get("orphanDependents")
            opts.dry_run = "All" in (body.get("dryRun") or [])
        if query.get("propagationPolicy"):
            opts.propagation_policy = query["propagationPolicy"]
        if query.get("gracePeriodSeconds"):
            try:
                opts.grace_period_seconds = int(query["gracePeriodSeconds"])
            except ValueError as exc:
                raise errors.bad_request(f"invalid gracePeriodSeconds: {query['gracePeriodSeconds']}") from exc
        if query.get("orphanDependents"):
            opts.orphan_dependents = query["orphanDependents"] == "true"
        if query.get("dryRun") == "All":
            opts.dry_run = True
        if opts.propagation_policy not in (None, "Background", "Foreground", "Orphan"):
            raise errors.bad_request(
                f'propagationPolicy: Unsupported value: "{opts.propagation_policy}": supported values: '
                '"Foreground", "Background", "Orphan"'
            )
        return opts


@dataclass
class WriteResult:
    obj: JSON
    created: bool = False
    warnings: list[str] = field(default_factory=list)


@dataclass
class ListResult:
    items: list[JSON]
    resource_version: str
    continue_token: str = ""
    remaining: int | None = None


DeleteHook = Callable[[ResourceType, JSON], bool]


class ApiServer:
    """Semantics of a kube-apiserver over an in-memory store."""

    def __init__(self, clock: Clock | None = None, history_size: int = 20_000) -> None:
        self.clock = clock or Clock()
        self.store = Store(history_size=history_size)
        self.registry = Registry(kinds.BUILTIN_TYPES)
        # Compiled schemas per CR version, keyed with the schema dict they were compiled from.
        self._schemas: dict[tuple[str, str, str], tuple[Any, StructuralSchema]] = {}
        self._builtin_validator = BuiltinValidator()
        self.request_counts: dict[tuple[str, str], int] = {}
        # Graceful-deletion hook (the kubelet registers one: pods on a node are terminated, not removed).
        self.graceful_delete: DeleteHook | None = None
        # Pod log provider (the kubelet sets one; the HTTP layer serves pods/log through it).
        # Called as `await log_provider(request, pod, query)`; typed loosely to keep aiohttp out of here.
        self.log_provider: Callable[..., Any] | None = None
        self._bootstrap()

    # ------------------------------------------------------------------------------- setup
    def _bootstrap(self) -> None:
        ns_type = self.type_for("", "v1", "namespaces")
        for name in ("default", "kube-system", "kube-public", "kube-node-lease"):
            self.create(
                ns_type,
                None,
                {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}},
                WriteOptions(field_manager="kube-apiserver"),
            )

    def type_for(self, group: str, version: str, plural: str) -> ResourceType:
        rtype = self.registry.get(group, version, plural)
        if rtype is None:
            raise errors.APIError(404, "NotFound", "the server could not find the requested resource")
        return rtype

    def count_request(self, verb: str, resource: str) -> None:
        key = (verb, resource)
        self.request_counts[key] = self.request_counts.get(key, 0) + 1

    # ------------------------------------------------------------------------------- reads
    def get(self, rtype: ResourceType, namespace: str | None, name: str) -> JSON:
        obj = self.store.get(self._key(rtype), namespace or "", name)
        if obj is None:
            raise errors.not_found(rtype, name)
        return self._present(rtype, obj)

    def list_objects(
        self,
        rtype: ResourceType,
        namespace: str | None,
        label_selector: str = "",
        field_selector: str = "",
        limit: int = 0,
        continue_token: str = "",
    ) -> ListResult:
        matches = self.compile_filter(rtype, label_selector, field_selector)
        after: tuple[str, str] | None = None
        list_rv = self.store.rv
        if continue_token:
            after, list_rv = _decode_continue(continue_token)
        items: list[JSON] = []
        next_token = ""
        remaining: int | None = None
        iterator = self.store.iter(self._key(rtype), namespace, after)
        for obj in iterator:
            if matches is not None and not matches(obj):
                continue
            if limit and len(items) >= limit:
                last = items[-1]["metadata"]
                next_token = _encode_continue((last.get("namespace", ""), last["name"]), list_rv)
                # kube-apiserver reports remainingItemCount only for lists without selectors (it cannot count
                # matches without reading them); with selectors the field is omitted and the scan stops here.
                remaining = 1 + sum(1 for _ in iterator) if matches is None else None
                break
            items.append(obj)
        return ListResult([self._present(rtype, o) for o in items], str(list_rv), next_token, remaining)

    def compile_filter(
        self, rtype: ResourceType, label_selector: str, field_selector: str
    ) -> Callable[[JSON], bool] | None:
        try:
            labels = LabelSelector.parse(label_selector) if label_selector else None
            fields = FieldSelector.parse(field_selector) if field_selector else None
        except SelectorError as exc:
            raise errors.bad_request(str(exc)) from exc
        if fields is not None:
            for path in fields.fields:
                if not rtype.field_selectable(path):
                    raise errors.bad_request(f"field label not supported: {path}")
        if labels is not None and labels.empty:
            labels = None
        if labels is None and fields is None:
            return None
        label_match = labels.matches if labels is not None else None
        field_match = fields.matches if fields is not None else None

        def matches(obj: JSON) -> bool:
            if label_match is not None and not label_match(obj["metadata"].get("labels")):
                return False
            return field_match is None or field_match(obj)

        return matches

    # ------------------------------------------------------------------------------- watch
    def watch(
        self,
        rtype: ResourceType,
        namespace: str | None,
        since_rv: int | None,
        label_selector: str = "",
        field_selector: str = "",
    ) -> tuple[Watcher, list[tuple[str, Event]]]:
        matches = self.compile_filter(rtype, label_selector, field_selector)
        watcher = Watcher(self._key(rtype), namespace, matches)
        backlog = self.store.watch(watcher, since_rv)
        return watcher, backlog

    # ------------------------------------------------------------------------------- writes
    def create(
        self,
        rtype: ResourceType,
        namespace: str | None,
        body: Any,
        opts: WriteOptions,
        *,
        apply_manager: str | None = None,
    ) -> WriteResult:
        obj = self._check_body(rtype, body)
        meta = obj["metadata"]
        namespace = self._check_namespace(rtype, namespace, meta, creating=True)
        name = meta.get("name") or ""
        if not name:
            prefix = meta.get("generateName") or ""
            if not prefix:
                raise errors.invalid(rtype, "", [errors.required("metadata.name")]) from None
            name = prefix[: 63 - 5] + "".join(random.choices(GENERATE_NAME_ALPHABET, k=5))
            while self.store.get(self._key(rtype), namespace, name) is not None:
                name = prefix[: 63 - 5] + "".join(random.choices(GENERATE_NAME_ALPHABET, k=5))
        now = rfc3339(self.clock.now())
        new_meta: JSON = {"name": name}
        if rtype.namespaced:
            new_meta["namespace"] = namespace
        for key, value in meta.items():
            if key in (
                "name",
                "namespace",
                "uid",
                "resourceVersion",
                "creationTimestamp",
                "deletionTimestamp",
                "deletionGracePeriodSeconds",
                "selfLink",
                "generation",
                "managedFields",
            ):
                continue
            new_meta[key] = value
        new_meta["uid"] = str(uuid.uuid4())
        new_meta["creationTimestamp"] = now
        if self._tracks_generation(rtype):
            new_meta["generation"] = 1
        obj["metadata"] = new_meta
        if rtype.has_status:  # every PrepareForCreate with a status subresource resets status (S6)
            obj.pop("status", None)
        warnings = self._admit(rtype, obj, None, opts, subresource=None)
        manager = apply_manager or opts.field_manager or "unknown"
        operation = "Apply" if apply_manager else "Update"
        fields = compute_fields_v1(body if apply_manager else obj, builtin=not rtype.is_custom)
        update_managed_fields(
            obj, manager=manager, operation=operation, api_version=rtype.api_version, fields=fields, time=now
        )
        key = self._key(rtype)
        if self.store.get(key, namespace, name) is not None:
            raise errors.already_exists(rtype, name)
        if rtype.group == CRD_KEY[0] and rtype.plural == CRD_KEY[1]:
            self._crd_accept(obj)
        if opts.dry_run:
            return WriteResult(self._present(rtype, obj), True, warnings)
        stored = self._commit(rtype, obj, None)
        return WriteResult(self._present(rtype, stored), True, warnings)

    def update(
        self,
        rtype: ResourceType,
        namespace: str | None,
        name: str,
        body: Any,
        opts: WriteOptions,
        subresource: str | None = None,
    ) -> WriteResult:
        obj = self._check_body(rtype, body)
        meta = obj["metadata"]
        if meta.get("name") and meta["name"] != name:
            raise errors.bad_request(
                f"the name of the object ({meta['name']}) does not match the name on the URL ({name})"
            )
        self._check_namespace(rtype, namespace, meta, creating=False)
        old = self.store.get(self._key(rtype), namespace or "", name)
        if old is None:
            raise errors.not_found(rtype, name)
        requested_rv = meta.get("resourceVersion")
        if requested_rv and requested_rv != old["metadata"]["resourceVersion"]:
            raise errors.conflict(rtype, name)
        return self._update(
            rtype, old, obj, opts, subresource, manager=opts.field_manager or "unknown", request_fields=obj
        )

    def patch(
        self,
        rtype: ResourceType,
        namespace: str | None,
        name: str,
        patch_type: str,
        patch: Any,
        opts: WriteOptions,
        subresource: str | None = None,
    ) -> WriteResult:
        key = self._key(rtype)
        old = self.store.get(key, namespace or "", name)
        if patch_type in (PATCH_APPLY, PATCH_APPLY_CBOR):
            if not opts.field_manager:  # ValidatePatchOptions: 422 Invalid on kind PatchOptions
                raise errors.APIError(
                    422,
                    "Invalid",
                    'PatchOptions.meta.k8s.io "" is invalid: fieldManager: Required value: is required for apply patch',
                    {
                        "name": "",
                        "group": "meta.k8s.io",
                        "kind": "PatchOptions",
                        "causes": [
                            {
                                "reason": "FieldValueRequired",
                                "message": "Required value: is required for apply patch",
                                "field": "fieldManager",
                            }
                        ],
                    },
                )
            if not isinstance(patch, dict):
                raise errors.bad_request("error decoding YAML: apply patch must be an object")
            patch_meta = patch.get("metadata") or {}
            if patch_meta.get("name") and patch_meta["name"] != name:
                raise errors.bad_request(
                    f"the name of the object ({patch_meta['name']}) does not match the name on the URL ({name})"
                )
            if old is None:
                if subresource:
                    raise errors.not_found(rtype, name)
                body = copy.deepcopy(patch)
                body.setdefault("metadata", {})["name"] = name
                result = self.create(rtype, namespace, body, opts, apply_manager=opts.field_manager)
                return result
            try:
                new = apply_patch(
                    self._present(rtype, old),
                    patch,
                    manager=opts.field_manager,
                    force=opts.force,
                    builtin=not rtype.is_custom,
                )
            except PatchError as exc:
                raise errors.APIError(exc.code, _patch_reason(exc.code), str(exc)) from exc
            return self._update(
                rtype, old, new, opts, subresource, manager=opts.field_manager, operation="Apply", request_fields=patch
            )
        if old is None:
            raise errors.not_found(rtype, name)
        current = self._present(rtype, old)
        try:
            if patch_type == PATCH_JSON:
                new = json_patch(current, patch)
            elif patch_type == PATCH_MERGE:
                new = merge_patch(current, patch)
            elif patch_type == PATCH_STRATEGIC:
                if rtype.is_custom:
                    raise errors.unsupported_media_type(patch_type, custom=True)
                if not isinstance(patch, dict):
                    raise errors.bad_request("strategic merge patch must be a JSON object")
                new = strategic_merge_patch(current, patch)
            else:
                raise errors.unsupported_media_type(patch_type)
        except PatchError as exc:
            raise errors.APIError(exc.code, _patch_reason(exc.code), str(exc)) from exc
        if not isinstance(new, dict):
            raise errors.bad_request("the patch produced an object that is not a JSON object")
        new_meta = new.get("metadata")
        if not isinstance(new_meta, dict):
            raise errors.bad_request("the patch removed metadata")
        requested_rv = new_meta.get("resourceVersion")
        if requested_rv and requested_rv != old["metadata"]["resourceVersion"]:
            raise errors.conflict(rtype, name)
        return self._update(
            rtype,
            old,
            new,
            opts,
            subresource,
            manager=opts.field_manager or "unknown",
            request_fields=patch if isinstance(patch, dict) else None,
        )

    def delete(self, rtype: ResourceType, namespace: str | None, name: str, opts: DeleteOptions) -> tuple[JSON, bool]:
        """Delete; returns (body, removed). The body is the object or a success Status."""
        key = self._key(rtype)
        old = self.store.get(key, namespace or "", name)
        if old is None:
            raise errors.not_found(rtype, name)
        meta = old["metadata"]
        if opts.precondition_uid and opts.precondition_uid != meta["uid"]:
            raise errors.conflict(
                rtype,
                name,
                f"Precondition failed: UID in precondition: {opts.precondition_uid}, UID in object meta: {meta['uid']}",
            )
        if opts.precondition_rv and opts.precondition_rv != meta["resourceVersion"]:
            raise errors.conflict(
                rtype,
                name,
                f"Precondition failed: ResourceVersion in precondition: {opts.precondition_rv}, "
                f"ResourceVersion in object meta: {meta['resourceVersion']}",
            )
        policy = opts.propagation_policy
        if policy is None and opts.orphan_dependents is not None:
            policy = "Orphan" if opts.orphan_dependents else "Background"
        if policy is None:
            policy = "Orphan" if (rtype.group, rtype.plural) in _ORPHAN_BY_DEFAULT else "Background"
        finalizers = list(meta.get("finalizers") or [])
        if policy == "Foreground" and "foregroundDeletion" not in finalizers:
            finalizers.append("foregroundDeletion")
        if policy == "Orphan" and "orphan" not in finalizers:
            finalizers.append("orphan")
        if (rtype.group, rtype.plural) == NAMESPACE_KEY:
            return self._delete_namespace(rtype, old, opts), False
        if rtype.group == CRD_KEY[0] and rtype.plural == CRD_KEY[1] and not finalizers:
            if opts.dry_run:
                return self._present(rtype, old), False
            self._crd_cleanup(old)
        # Graceful deletion (pods running on a node): the object stays, with deletionTimestamp = now + grace,
        # until the kubelet has stopped it and deletes it again with grace 0; finalizers hold it after that.
        grace = 0
        deleting = bool(meta.get("deletionTimestamp"))
        shorten = False
        if deleting:
            current_grace = int(meta.get("deletionGracePeriodSeconds") or 0)
            requested = opts.grace_period_seconds
            if current_grace > 0 and requested is not None and max(requested, 0) < current_grace:
                # A shorter grace period (the kubelet's final delete, `kubectl delete --grace-period=0 --force`).
                grace, shorten = max(requested, 0), True
        elif self.graceful_delete is not None and self.graceful_delete(rtype, old):
            requested = opts.grace_period_seconds
            if requested is None:
                requested = int((old.get("spec") or {}).get("terminationGracePeriodSeconds", 30) or 0)
            grace = 1 if requested < 0 else requested
        if finalizers or grace > 0 or (deleting and not (shorten and grace == 0)):
            if deleting and not shorten and finalizers == list(meta.get("finalizers") or []):
                return self._present(rtype, old), False
            new = _shallow_copy_meta(old)
            new_meta = new["metadata"]
            if shorten or not new_meta.get("deletionTimestamp"):
                new_meta["deletionTimestamp"] = rfc3339(self.clock.now() + timedelta(seconds=grace))
                new_meta["deletionGracePeriodSeconds"] = grace
                if not deleting and self._tracks_generation(rtype) and new_meta.get("generation"):
                    new_meta["generation"] += 1
            if finalizers:
                new_meta["finalizers"] = finalizers
            if opts.dry_run:
                return self._present(rtype, new), False
            stored = self._commit(rtype, new, old)
            return self._present(rtype, stored), False
        if opts.dry_run:
            return self._present(rtype, old), False
        final = self._remove(rtype, old)
        if (rtype.group, rtype.plural) in _RETURN_DELETED_OBJECT or rtype.is_custom:
            return self._present(rtype, final), True
        return _success_status(rtype, final), True

    def delete_collection(
        self,
        rtype: ResourceType,
        namespace: str | None,
        opts: DeleteOptions,
        label_selector: str = "",
        field_selector: str = "",
    ) -> JSON:
        result = self.list_objects(rtype, namespace, label_selector, field_selector)
        items = []
        for item in result.items:
            meta = item["metadata"]
            try:
                body, _ = self.delete(rtype, meta.get("namespace"), meta["name"], opts)
            except errors.APIError as exc:
                if exc.code == 404:
                    continue
                raise
            items.append(body if body.get("kind") != "Status" else item)
        return {
            "kind": rtype.list_kind,
            "apiVersion": rtype.api_version,
            "metadata": {"resourceVersion": str(self.store.rv)},
            "items": items,
        }

    def remove_now(self, rtype: ResourceType, obj: JSON) -> JSON:
        """Final removal (used by the kubelet after graceful termination and by the GC)."""
        current = self.store.get(self._key(rtype), obj["metadata"].get("namespace", ""), obj["metadata"]["name"])
        if current is None:
            raise errors.not_found(rtype, obj["metadata"]["name"])
        return self._remove(rtype, current)

    def bind_pod(self, namespace: str, name: str, node_name: str, uid: str | None = None) -> JSON:
        """The pods/binding subresource as the scheduler uses it: `spec.nodeName` plus `PodScheduled=True`.

        Like the real BindingREST it writes storage directly (no admission, no generation bump). A pod
        already bound, being deleted, or with another uid → 409 Conflict.
        """
        rtype = self.type_for("", "v1", "pods")
        old = self.store.get(("", "pods"), namespace, name)
        if old is None:
            raise errors.not_found(rtype, name)
        meta = old["metadata"]
        spec = old.get("spec") or {}
        why = ""
        if uid and meta["uid"] != uid:
            why = f"Precondition failed: UID in precondition: {uid}, UID in object meta: {meta['uid']}"
        elif meta.get("deletionTimestamp"):
            why = f"pod {name} is being deleted, cannot be assigned to a host"
        elif spec.get("nodeName"):
            why = f'pod {name} is already assigned to node "{spec["nodeName"]}"'
        if why:
            raise errors.APIError(
                409, "Conflict", f'Operation cannot be fulfilled on pods/binding "{name}": {why}', {"name": name}
            )
        new = _shallow_copy_meta(old)
        new["spec"] = {**spec, "nodeName": node_name}
        status = dict(old.get("status") or {})
        scheduled: JSON = {
            "type": "PodScheduled",
            "status": "True",
            "lastProbeTime": None,
            "lastTransitionTime": rfc3339(self.clock.now()),
        }
        if meta.get("generation"):
            scheduled["observedGeneration"] = meta["generation"]
        status["conditions"] = [c for c in status.get("conditions") or [] if c.get("type") != "PodScheduled"]
        status["conditions"].append(scheduled)
        new["status"] = status
        return self._present(rtype, self._commit(rtype, new, old))

    # ------------------------------------------------------------------------------- internals
    def _key(self, rtype: ResourceType) -> tuple[str, str]:
        return (rtype.group, rtype.plural)

    def _tracks_generation(self, rtype: ResourceType) -> bool:
        return rtype.is_custom or (rtype.group, rtype.plural) in kinds.GENERATION_KINDS

    def _present(self, rtype: ResourceType, obj: JSON) -> JSON:
        """Objects are stored at one version; serve them under the requested one (conversion: None)."""
        if obj.get("apiVersion") == rtype.api_version:
            return obj
        out = dict(obj)
        out["apiVersion"] = rtype.api_version
        return out

    def _check_body(self, rtype: ResourceType, body: Any) -> JSON:
        if not isinstance(body, dict):
            raise errors.bad_request(f"the body of the request must be a {rtype.kind} object")
        api_version = body.get("apiVersion")
        kind = body.get("kind")
        if kind and kind != rtype.kind:
            raise errors.bad_request(
                f"the API version in the data ({api_version}) does not match the expected API version "
                f"({rtype.api_version})"
                if api_version and api_version != rtype.api_version
                else f'{kind} in version "{rtype.version}" cannot be handled as a {rtype.kind}: '
                f"kind must be {rtype.kind}"
            )
        if api_version and api_version != rtype.api_version:
            group = api_version.rpartition("/")[0]
            if group != rtype.group:
                raise errors.bad_request(
                    f"the API version in the data ({api_version}) does not match the expected API version "
                    f"({rtype.api_version})"
                )
        body["apiVersion"] = rtype.api_version
        body["kind"] = rtype.kind
        meta = body.get("metadata")
        if meta is None:
            meta = body["metadata"] = {}
        if not isinstance(meta, dict):
            raise errors.bad_request(
                f'{rtype.kind} in version "{rtype.version}" cannot be handled as a '
                f"{rtype.kind}: metadata must be an object"
            )
        return body

    def _check_namespace(self, rtype: ResourceType, namespace: str | None, meta: JSON, creating: bool) -> str:
        if not rtype.namespaced:
            meta.pop("namespace", None)
            return ""
        if not namespace:
            raise errors.bad_request("the server could not find the requested resource: namespace is required")
        body_ns = meta.get("namespace")
        if body_ns and body_ns != namespace:
            raise errors.bad_request(
                "the namespace of the provided object does not match the namespace sent on the request"
            )
        if creating:
            ns_obj = self.store.get(NAMESPACE_KEY, "", namespace)
            if ns_obj is None:
                raise errors.namespace_not_found(namespace)
            if (
                ns_obj["metadata"].get("deletionTimestamp")
                or (ns_obj.get("status") or {}).get("phase") == "Terminating"
            ):
                rtype_name = meta.get("name") or meta.get("generateName") or ""
                raise errors.forbidden(
                    f'{rtype.qualified_name} "{rtype_name}" is forbidden: unable to create new content in namespace '
                    f"{namespace} because it is being terminated",
                    rtype,
                    rtype_name,
                )
        return namespace

    def _admit(
        self, rtype: ResourceType, obj: JSON, old: JSON | None, opts: WriteOptions, subresource: str | None
    ) -> list[str]:
        """Default, prune and validate `obj` in place; returns warnings; raises APIError."""
        name = obj["metadata"].get("name", "")
        causes: list[Mapping[str, object]] = []
        warnings: list[str] = []
        if old is None:
            causes.extend(kinds.validate_name(rtype, name))
        causes.extend(kinds.validate_metadata(obj["metadata"]))
        unknown: list[str] = []
        if rtype.is_custom:
            schema = self._schema_for(rtype)
            if schema is not None:
                unknown = schema.prune(obj)
                schema.apply_defaults(obj)
                causes.extend(schema.validate(obj, old))
        else:
            model = model_for(rtype.group, rtype.version, rtype.kind)
            if model is not None:
                unknown = self._builtin_validator.prune(obj, model)
            causes.extend(kinds.admit(rtype, obj, old))
        if unknown:
            if opts.field_validation == "Strict":
                detail = ", ".join(f'unknown field "{u}"' for u in unknown)
                raise errors.bad_request(
                    f'{rtype.kind} in version "{rtype.version}" cannot be handled as a {rtype.kind}: '
                    f"strict decoding error: {detail}"
                )
            if opts.field_validation != "Ignore":
                warnings.extend(f'unknown field "{u}"' for u in unknown)
        if causes:
            raise errors.invalid(rtype, name, causes)
        return warnings

    def _schema_for(self, rtype: ResourceType) -> StructuralSchema | None:
        if rtype.schema is None:
            return None
        cache_key = (rtype.group, rtype.plural, rtype.version)
        cached = self._schemas.get(cache_key)
        if cached is not None and cached[0] is rtype.schema:
            return cached[1]
        schema = StructuralSchema(dict(rtype.schema))
        self._schemas[cache_key] = (rtype.schema, schema)
        return schema

    def _update(
        self,
        rtype: ResourceType,
        old: JSON,
        new: JSON,
        opts: WriteOptions,
        subresource: str | None,
        *,
        manager: str,
        operation: str = "Update",
        request_fields: Any = None,
    ) -> WriteResult:
        old_meta = old["metadata"]
        if subresource == "status":
            if not rtype.has_status:
                raise errors.not_found(rtype, old_meta["name"])
            merged = dict(old)
            merged["metadata"] = dict(old_meta)
            if "status" in new:
                merged["status"] = new["status"]
            else:
                merged.pop("status", None)
            new = merged
        elif subresource is not None:
            raise errors.not_found(rtype, old_meta["name"])
        elif rtype.has_status:
            if "status" in old:
                new["status"] = old["status"]
            else:
                new.pop("status", None)
        new["apiVersion"] = old.get("apiVersion", rtype.api_version)
        new["kind"] = rtype.kind
        meta = new.get("metadata")
        if not isinstance(meta, dict):
            meta = new["metadata"] = {}
        else:
            meta = new["metadata"] = dict(meta)
        for key in (
            "name",
            "namespace",
            "uid",
            "creationTimestamp",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
            "generation",
            "resourceVersion",
        ):
            if key in old_meta:
                meta[key] = old_meta[key]
            else:
                meta.pop(key, None)
        if "managedFields" not in meta and "managedFields" in old_meta:
            meta["managedFields"] = old_meta["managedFields"]
        if old_meta.get("deletionTimestamp"):
            before = set(old_meta.get("finalizers") or [])
            added = [f for f in meta.get("finalizers") or [] if f not in before]
            if added:
                raise errors.invalid(
                    rtype,
                    old_meta["name"],
                    [
                        errors.forbidden_field(
                            "metadata.finalizers",
                            "no new finalizers can be added if the object is being deleted, "
                            f"found new finalizers {json.dumps(added)}",
                        )
                    ],
                )
        warnings = self._admit(rtype, new, old, opts, subresource)
        if self._tracks_generation(rtype) and _spec_changed(rtype, old, new):
            meta["generation"] = int(old_meta.get("generation") or 0) + 1
        if new == old:
            return WriteResult(self._present(rtype, old), False, warnings)
        if manager:
            if operation == "Apply" and isinstance(request_fields, dict):
                fields = compute_fields_v1(request_fields, builtin=not rtype.is_custom)
            else:
                fields = changed_fields(old, new, builtin=not rtype.is_custom)
            update_managed_fields(
                new,
                manager=manager,
                operation=operation,
                api_version=rtype.api_version,
                fields=fields,
                time=rfc3339(self.clock.now()),
                subresource=subresource or "",
            )
        if rtype.group == CRD_KEY[0] and rtype.plural == CRD_KEY[1]:
            self._crd_accept(new)
        if opts.dry_run:
            return WriteResult(self._present(rtype, new), False, warnings)
        if meta.get("deletionTimestamp") and not meta.get("finalizers"):
            if (rtype.group, rtype.plural) == NAMESPACE_KEY and (new.get("spec") or {}).get("finalizers"):
                pass
            elif meta.get("deletionGracePeriodSeconds"):
                # Graceful deletion in progress: the kubelet removes the pod once it has terminated.
                meta.pop("finalizers", None)
            else:
                meta.pop("finalizers", None)
                final = self._remove(rtype, new)
                return WriteResult(self._present(rtype, final), False, warnings)
        stored = self._commit(rtype, new, old)
        return WriteResult(self._present(rtype, stored), False, warnings)

    def _commit(self, rtype: ResourceType, obj: JSON, old: JSON | None) -> JSON:
        rv = self.store.rv + 1
        obj["metadata"]["resourceVersion"] = str(rv)
        encoded = dumps(obj)
        if len(encoded) > MAX_OBJECT_BYTES:
            raise errors.too_large("etcdserver: request is too large")
        self.store.next_rv()
        event = self.store.put(self._key(rtype), obj, old)
        event._encoded = encoded
        if rtype.group == CRD_KEY[0] and rtype.plural == CRD_KEY[1]:
            self._crd_register(obj)
        return obj

    def _remove(self, rtype: ResourceType, obj: JSON) -> JSON:
        final = _shallow_copy_meta(obj)
        final["metadata"]["resourceVersion"] = str(self.store.next_rv())
        if rtype.group == CRD_KEY[0] and rtype.plural == CRD_KEY[1]:
            self._crd_cleanup(obj)
            self.registry.remove_crd(obj["metadata"]["name"])
        self.store.remove(self._key(rtype), final)
        return final

    # ------------------------------------------------------------------------------- namespaces
    def _delete_namespace(self, rtype: ResourceType, old: JSON, opts: DeleteOptions) -> JSON:
        """Namespaces never vanish at once: they turn Terminating; the namespace controller empties them."""
        if old["metadata"].get("deletionTimestamp"):
            return self._present(rtype, old)
        new = _shallow_copy_meta(old)
        new["metadata"]["deletionTimestamp"] = rfc3339(self.clock.now())
        new["metadata"]["deletionGracePeriodSeconds"] = 0
        status = dict(new.get("status") or {})
        status["phase"] = "Terminating"
        new["status"] = status
        if opts.dry_run:
            return new
        return self._present(rtype, self._commit(rtype, new, old))

    def finalize_namespace(self, name: str) -> None:
        """Called by the namespace controller once the namespace is empty."""
        rtype = self.type_for("", "v1", "namespaces")
        current = self.store.get(NAMESPACE_KEY, "", name)
        if current is None:
            return
        if current["metadata"].get("finalizers"):
            new = _shallow_copy_meta(current)
            new["spec"] = {**(current.get("spec") or {}), "finalizers": []}
            self._commit(rtype, new, current)
            return
        self._remove(rtype, current)

    # ------------------------------------------------------------------------------- CRDs
    def _crd_accept(self, crd: JSON) -> None:
        causes = validate_crd(crd)
        if causes:
            rtype = self.type_for(*CRD_KEY[:1], "v1", CRD_KEY[1])
            raise errors.invalid(rtype, crd["metadata"].get("name", ""), causes)
        spec = crd.get("spec") or {}
        names = dict(spec.get("names") or {})
        names.setdefault("singular", str(names.get("kind", "")).lower())
        names.setdefault("listKind", f"{names.get('kind', '')}List")
        spec["names"] = names
        spec.setdefault("conversion", {"strategy": "None"})
        now = rfc3339(self.clock.now())
        old_status = crd.get("status") or {}
        old_conditions = {c.get("type"): c for c in old_status.get("conditions") or []}

        def condition(ctype: str, reason: str, message: str) -> JSON:
            previous = old_conditions.get(ctype)
            when = previous.get("lastTransitionTime", now) if previous and previous.get("status") == "True" else now
            return {"type": ctype, "status": "True", "lastTransitionTime": when, "reason": reason, "message": message}

        stored = [v["name"] for v in spec.get("versions") or [] if v.get("storage")]
        previous_stored = list(old_status.get("storedVersions") or [])
        crd["status"] = {
            "conditions": [
                condition("NamesAccepted", "NoConflicts", "no conflicts found"),
                condition("Established", "InitialNamesAccepted", "the initial names have been accepted"),
            ],
            "acceptedNames": names,
            "storedVersions": previous_stored + [v for v in stored if v not in previous_stored],
        }

    def _crd_register(self, crd: JSON) -> None:
        types = ResourceType.from_crd(crd)
        self.registry.set_crd(crd["metadata"]["name"], types)

    def _crd_cleanup(self, crd: JSON) -> None:
        """Deleting a CRD deletes every custom resource it serves (DELETED events first)."""
        spec = crd.get("spec") or {}
        group = spec.get("group", "")
        plural = (spec.get("names") or {}).get("plural", "")
        key = (group, plural)
        for obj in list(self.store.iter(key)):
            final = _shallow_copy_meta(obj)
            final["metadata"]["resourceVersion"] = str(self.store.next_rv())
            self.store.remove(key, final)
        self.store.drop_resource(key)
        self.registry.remove_crd(crd["metadata"]["name"])
        for cache_key in [k for k in self._schemas if (k[0], k[1]) == key]:
            del self._schemas[cache_key]


def _spec_changed(rtype: ResourceType, old: JSON, new: JSON) -> bool:
    exempt = ("metadata", "status") if rtype.has_status else ("metadata",)
    old_keys = {k for k in old if k not in exempt and k not in ("apiVersion", "kind")}
    new_keys = {k for k in new if k not in exempt and k not in ("apiVersion", "kind")}
    if old_keys != new_keys:
        return True
    return any(old[k] != new[k] for k in new_keys)


def _shallow_copy_meta(obj: JSON) -> JSON:
    out = dict(obj)
    out["metadata"] = dict(obj["metadata"])
    return out


def _success_status(rtype: ResourceType, obj: JSON) -> JSON:
    details: JSON = {"name": obj["metadata"]["name"], "kind": rtype.plural, "uid": obj["metadata"]["uid"]}
    if rtype.group:
        details["group"] = rtype.group
    return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "details": details}


def _patch_reason(code: int) -> str:
    return {400: "BadRequest", 415: "UnsupportedMediaType", 409: "Conflict"}.get(code, "Invalid")


def _encode_continue(after: tuple[str, str], rv: int) -> str:
    raw = json.dumps({"v": "meta.k8s.io/v1", "rv": rv, "start": list(after)}, separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def _decode_continue(token: str) -> tuple[tuple[str, str], int]:
    try:
        padded = token + "=" * (-len(token) % 4)
        data = json.loads(base64.urlsafe_b64decode(padded))
        start = data["start"]
        return (str(start[0]), str(start[1])), int(data["rv"])
    except (ValueError, KeyError, TypeError, IndexError) as exc:
        raise errors.bad_request(f"continue key is not valid: {token}") from exc


def field_of(obj: JSON, path: str) -> str:
    """Re-exported for controllers: the string form field selectors compare against."""
    return field_value(obj, path)


__all__ = [
    "PATCH_APPLY",
    "PATCH_JSON",
    "PATCH_MERGE",
    "PATCH_STRATEGIC",
    "ApiServer",
    "DeleteOptions",
    "HistoryExpired",
    "ListResult",
    "WriteOptions",
    "WriteResult",
]
