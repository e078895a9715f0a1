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
import dataclasses
import functools
import json
import random
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from . import errors, event_versions, gojson, kinds
from . import selectors as sel
from .builtin_schemas import BuiltinValidator, decode_error_message, model_for
from .clock import Clock, rfc3339
from .patching import (
    PatchError,
    apply_patch,
    changed_fields,
    go_print,
    json_patch,
    merge_patch,
    patched_document_text,
    removed_fields,
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

# Kinds that answer an immediate DELETE with the deleted object rather than a Status: the storages built with
# `ReturnDeletedObject: true` upstream. Every other kind, custom resources included, answers a Success Status.
_RETURN_DELETED_OBJECT = frozenset(
    {
        ("", "pods"),
        ("", "services"),
        ("", "namespaces"),
        ("", "serviceaccounts"),
        ("", "persistentvolumeclaims"),
        ("", "persistentvolumes"),
        ("", "resourcequotas"),
        ("", "podtemplates"),
    }
)
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
        """DeleteOptions from a request: the body when there is one, else the query (the query is then not read)."""
        opts = cls()
        if body is not None:
            query = {}
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
            raise errors.APIError(404, "NotFound", "the server could not find the requested resource", {})
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
        labels, fields = self._selectors(rtype, label_selector, field_selector)
        matches = _compile_selectors(labels, fields)
        after: tuple[str, str] | None = None
        list_rv = self.store.rv
        if continue_token:
            after, list_rv = _decode_continue(continue_token)
        items: list[JSON] = []
        next_token = ""
        remaining: int | None = None
        key = self._key(rtype)
        candidates = self._candidates(key, labels, fields)
        if candidates is None:
            iterator = self.store.iter(key, namespace, after)
        else:  # an index narrowed the list to these keys: the selectors still decide each one below
            iterator = self.store.iter_keys(key, candidates, namespace, after)
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

    def _candidates(
        self, key: tuple[str, str], labels: LabelSelector | None, fields: FieldSelector | None
    ) -> set[tuple[str, str]] | None:
        """The keys an index says can match (a superset of the matches), or None to scan every object.

        Equality terms (`k=v`, `k in (...)`, `k`, `path=v`) look their values up in the store's selector indexes
        and the smallest answer wins; `!k` is the complement of `k`'s index, worth it only when few objects lack
        `k`. A candidate set holding most objects is not used: sorting it costs more than a scan that can stop
        at `limit`. The returned set is the index's own: read it, never change it.
        """
        if labels is None and fields is None:
            return None
        total = self.store.count(key)
        worth = max(256, total // 4)
        best: set[tuple[str, str]] | None = None
        absent: list[str] = []
        for req in labels.requirements if labels is not None else ():
            if req.operator in (sel.EQUALS, sel.DOUBLE_EQUALS, sel.IN, sel.EXISTS):
                index = self.store.index(key, ("label", req.key), _label_extractor(req.key))
                found = index.having(req.values) if req.operator != sel.EXISTS else index.indexed()
            elif req.operator == sel.DOES_NOT_EXIST:
                absent.append(req.key)
                continue
            else:
                continue
            if best is None or len(found) < len(best):
                best = found
        for freq in fields.requirements if fields is not None else ():
            if freq.operator != "=":
                continue
            index = self.store.index(key, ("field", freq.field), _field_extractor(freq.field))
            found = index.having((freq.value,))
            if best is None or len(found) < len(best):
                best = found
        if best is not None and len(best) <= worth:
            return best
        for label_key in absent:
            present = self.store.index(key, ("label", label_key), _label_extractor(label_key)).indexed()
            if len(present) == total:  # every object has the label: nothing to read
                return set()
            if total - len(present) <= worth:
                return self.store.all_keys(key) - present
        return None

    def compile_filter(
        self, rtype: ResourceType, label_selector: str, field_selector: str
    ) -> Callable[[JSON], bool] | None:
        return _compile_selectors(*self._selectors(rtype, label_selector, field_selector))

    def _selectors(
        self, rtype: ResourceType, label_selector: str, field_selector: str
    ) -> tuple[LabelSelector | None, FieldSelector | None]:
        """The parsed selectors (None for an empty one), fields checked against what the kind can select on."""
        try:
            labels = LabelSelector.parse(label_selector) if label_selector else None
            fields = FieldSelector.parse(field_selector) if field_selector else None
        except SelectorError as exc:
            raise errors.bad_request(str(exc)) from exc
        if fields is not None:
            for requirement in fields.requirements:  # in the parsed (sorted) order, as fieldSelector.Transform
                if not rtype.field_selectable(requirement.field):
                    raise errors.bad_request(rtype.unsupported_field_message(requirement.field))
            if event_versions.is_events_v1(rtype.group, rtype.plural):  # select on the stored core fields
                labels_map = event_versions.FIELD_LABELS
                fields = FieldSelector(
                    tuple(dataclasses.replace(r, field=labels_map.get(r.field, r.field)) for r in fields.requirements)
                )
            if fields.empty:
                fields = None
        if labels is not None and labels.empty:
            labels = None
        return labels, fields

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
                detail = "metadata.name: Required value: name or generateName is required"
                cause = errors.cause("metadata.name", detail, "FieldValueRequired")
                raise errors.invalid(rtype, "", [cause]) from None
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
        old = self._events_view(rtype, self.store.get(self._key(rtype), namespace or "", name))
        if old is None:
            raise errors.not_found(rtype, name)
        requested_rv = meta.get("resourceVersion")
        if not requested_rv and not _allows_unconditional_update(rtype):
            raise errors.resource_version_required(rtype, name)
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
        old = self._events_view(rtype, self.store.get(key, namespace or "", name))
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
                try:
                    new = json_patch(current, patch)
                except PatchError as exc:
                    if exc.code != 422:
                        raise
                    # NewGenericServerResponse(422, …, isUnexpectedResponse=false): the generic message, empty
                    # details; the json-patch error itself is not sent (kubectl prints only the generic text).
                    raise errors.APIError(422, "Invalid", exc.message, {}) from exc
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
        patched_text: Callable[[], str] | None = None
        if opts.field_validation == "Strict" or not rtype.is_custom:  # for decoding errors; _update changes `new`
            if patch_type == PATCH_STRATEGIC:
                patched_text = functools.partial(go_print, patch)
            else:
                patched_text = functools.partial(patched_document_text, current, copy.deepcopy(new))
        new_meta = new.get("metadata")
        if not isinstance(new_meta, dict):
            raise errors.bad_request("the patch removed metadata")
        requested_rv = new_meta.get("resourceVersion")
        if not requested_rv and not _allows_unconditional_update(rtype):  # the patch removed it
            raise errors.resource_version_required(rtype, name)
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
            patched_text=patched_text,
        )

    def delete(self, rtype: ResourceType, namespace: str | None, name: str, opts: DeleteOptions) -> tuple[JSON, bool]:
        """Delete; returns (body, removed). The body is the object or a success Status."""
        key = self._key(rtype)
        old = self.store.get(key, namespace or "", name)
        if old is None:
            raise errors.not_found(rtype, name)
        meta = old["metadata"]
        # rest.BeforeDelete checks the preconditions first, naming the Kind (not the resource) in the Conflict.
        kind = f"{rtype.kind}.{rtype.group}" if rtype.group else rtype.kind
        details = {"name": name, **({"group": rtype.group} if rtype.group else {}), "kind": rtype.kind}
        why = ""
        if opts.precondition_uid and opts.precondition_uid != meta["uid"]:
            why = (
                f"the UID in the precondition ({opts.precondition_uid}) does not match the UID in record "
                f"({meta['uid']}). The object might have been deleted and then recreated"
            )
        elif opts.precondition_rv and opts.precondition_rv != meta["resourceVersion"]:
            why = (
                f"the ResourceVersion in the precondition ({opts.precondition_rv}) does not match the "
                f"ResourceVersion in record ({meta['resourceVersion']}). The object might have been modified"
            )
        if why:
            raise errors.APIError(409, "Conflict", f'Operation cannot be fulfilled on {kind} "{name}": {why}', details)
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
        if (rtype.group, rtype.plural) in _RETURN_DELETED_OBJECT:
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
        if event_versions.is_events_v1(rtype.group, rtype.plural):
            return event_versions.CORE_EVENTS  # one Event resource, served by two APIs
        return (rtype.group, rtype.plural)

    def _events_view(self, rtype: ResourceType, obj: JSON | None) -> JSON | None:
        """A stored Event as events.k8s.io/v1 has it, for writes through that API (other objects as they are)."""
        if obj is not None and event_versions.is_events_v1(rtype.group, rtype.plural):
            return self._present(rtype, obj)
        return obj

    def present(self, rtype: ResourceType, obj: JSON) -> JSON:
        """A stored object as `rtype`'s API serves it."""
        return self._present(rtype, obj)

    def _tracks_generation(self, rtype: ResourceType) -> bool:
        return rtype.is_custom or (rtype.group, rtype.plural) in kinds.GENERATION_KINDS

    def _present(self, rtype: ResourceType, obj: JSON) -> JSON:
        """Objects are stored at one version; serve them under the requested one (conversion: None, except for
        Events, stored in the core shape and converted for events.k8s.io)."""
        if obj.get("apiVersion") == rtype.api_version:
            return obj
        if event_versions.is_events_v1(rtype.group, rtype.plural):
            return event_versions.core_to_v1(obj)
        out = dict(obj)
        out["apiVersion"] = rtype.api_version
        return out

    def _check_body(self, rtype: ResourceType, body: Any) -> JSON:
        if body is None:
            body = {}  # JSON `null` decodes into an empty object; its missing name is then the error
        if not isinstance(body, dict):
            raise errors.bad_request(f"the body of the request must be a {rtype.kind} object")
        api_version = str(body.get("apiVersion") or "")
        kind = str(body.get("kind") or "")
        if rtype.is_custom:
            self._check_custom_type_meta(rtype, body, api_version, kind)
        else:
            self._check_builtin_type_meta(rtype, api_version, kind)
        body["apiVersion"] = rtype.api_version
        body["kind"] = rtype.kind
        meta = body.get("metadata")
        if meta is None:
            meta = body["metadata"] = {}
        if not isinstance(meta, dict):
            into = "Go value" if rtype.is_custom else f"Go struct field {rtype.kind}.metadata"
            raise errors.bad_request(
                decode_error_message(
                    rtype.kind,
                    rtype.version,
                    f"json: cannot unmarshal {gojson.json_kind(meta)} into {into} of type v1.ObjectMeta",
                )
            )
        return body

    def _check_builtin_type_meta(self, rtype: ResourceType, api_version: str, kind: str) -> None:
        """The typed decoder: a body of another kind decodes as that kind and then cannot be converted."""
        body_gv = api_version or rtype.api_version
        body_kind = kind or rtype.kind
        if (body_gv, body_kind) == (rtype.api_version, rtype.kind):
            return
        version = body_gv.rpartition("/")[2]
        known = self.registry.by_kind(body_gv, body_kind)
        if known is None:
            scheme = "pkg/runtime/scheme.go:111"
            detail = f'no kind "{body_kind}" is registered for version "{body_gv}" in scheme "{scheme}"'
        elif known.kind == rtype.kind:  # the same kind in another group or version converts; then the GV differs
            raise errors.bad_request(
                f"the API version in the data ({body_gv}) does not match the expected API version ({rtype.api_version})"
            )
        else:
            internal = "core" if rtype.group in ("", "events.k8s.io") else rtype.group.split(".")[0]
            detail = f"converting ({version}.{body_kind}) to ({internal}.{rtype.kind}): unknown conversion"
        raise errors.bad_request(f'{body_kind} in version "{version}" cannot be handled as a {rtype.kind}: {detail}')

    def _check_custom_type_meta(self, rtype: ResourceType, body: JSON, api_version: str, kind: str) -> None:
        """The unstructured decoder: kind is required, the group/version must be served, the kind must match."""
        if not kind:
            text = json.dumps(body)  # the request's own text, as most clients write it
            summary = text if len(text) <= 30 else text[:30] + " ..."
            raise errors.bad_request(
                f"the object provided is unrecognized (must be of type {rtype.kind}): "
                f"Object 'Kind' is missing in '{text}' ({summary})"
            )
        if api_version != rtype.api_version:
            other = self.registry.by_kind(api_version, rtype.kind) if api_version else None
            if other is None or other.group != rtype.group:  # another served version of the CRD converts
                raise errors.bad_request(
                    f"the API version in the data ({api_version}) does not match the expected API version "
                    f"({rtype.api_version})"
                )
        if kind != rtype.kind:
            meta = body.get("metadata")
            name = str(meta.get("name") or "") if isinstance(meta, dict) else ""
            cause = errors.invalid_value("kind", kind, f"must be {rtype.kind}")
            raise errors.invalid(dataclasses.replace(rtype, kind=kind), name, [cause])

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
        self,
        rtype: ResourceType,
        obj: JSON,
        old: JSON | None,
        opts: WriteOptions,
        subresource: str | None,
        patched_text: Callable[[], str] | None = None,
    ) -> list[str]:
        """Default, prune and validate `obj` in place; returns warnings; raises APIError.

        `patched_text` (JSON, merge and strategic patches) renders the patched document or patch map the way
        kube-apiserver prints it when the result fails strict decoding: such a patch is a 422, not a 400.
        """
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
                unknown, type_errors = self._builtin_validator.prune_checking_types(obj, model)
                if type_errors:  # the typed decoder fails before anything else looks at the object
                    if patched_text is not None:
                        raise errors.patch_invalid(patched_text(), type_errors[0])
                    raise errors.bad_request(decode_error_message(rtype.kind, rtype.version, type_errors[0]))
            causes.extend(kinds.admit(rtype, obj, old))
        if unknown:
            if opts.field_validation == "Strict":
                detail = ", ".join(f'unknown field "{u}"' for u in unknown)
                if patched_text is not None:
                    raise errors.patch_invalid(patched_text(), f"strict decoding error: {detail}")
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
        patched_text: Callable[[], str] | None = None,
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
        warnings = self._admit(rtype, new, old, opts, subresource, patched_text)
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
                removed=removed_fields(old, new, builtin=not rtype.is_custom),
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
        if event_versions.is_events_v1(rtype.group, rtype.plural):  # stored in the core shape
            obj = event_versions.v1_to_core(obj)
            if old is not None:  # the stored object, not the events.k8s.io view the write compared against
                meta = old["metadata"]
                old = self.store.get(event_versions.CORE_EVENTS, meta.get("namespace", ""), meta["name"])
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
        if event_versions.is_events_v1(rtype.group, rtype.plural) and obj.get("apiVersion") != "v1":
            obj = event_versions.v1_to_core(obj)
        final = _shallow_copy_meta(obj)
        final["metadata"]["resourceVersion"] = str(self.store.next_rv())
        if rtype.group == CRD_KEY[0] and rtype.plural == CRD_KEY[1]:
            self._crd_cleanup(obj)
            self.registry.remove_crd(obj["metadata"]["name"])
        self.store.remove(self._key(rtype), final)
        if rtype.group == CRD_KEY[0] and rtype.plural == CRD_KEY[1]:
            self._crd_reconsider_group(str((obj.get("spec") or {}).get("group", "")))
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

        def condition(ctype: str, status: str, reason: str, message: str) -> JSON:
            previous = old_conditions.get(ctype)
            when = previous.get("lastTransitionTime", now) if previous and previous.get("status") == status else now
            return {"type": ctype, "status": status, "lastTransitionTime": when, "reason": reason, "message": message}

        # The naming controller: names another CRD of the group has accepted are refused (the Established
        # condition then stays False and nothing is served); an established CRD keeps its condition.
        resources, kinds_in_use = self._crd_names_in_use(str(spec.get("group", "")))
        accepted, conflict = _accept_crd_names(
            names, dict(old_status.get("acceptedNames") or {}), resources, kinds_in_use
        )
        if conflict is None:
            names_accepted = condition("NamesAccepted", "True", "NoConflicts", "no conflicts found")
        else:
            names_accepted = condition("NamesAccepted", "False", *conflict)
        established = old_conditions.get("Established")
        if established is None or established.get("status") != "True":
            if conflict is None:
                established = condition(
                    "Established", "True", "InitialNamesAccepted", "the initial names have been accepted"
                )
            else:
                established = condition("Established", "False", "NotAccepted", "not all names are accepted")
        stored = [v["name"] for v in spec.get("versions") or [] if v.get("storage")]
        previous_stored = list(old_status.get("storedVersions") or [])
        crd["status"] = {
            "conditions": [names_accepted, established],
            "acceptedNames": accepted,
            "storedVersions": previous_stored + [v for v in stored if v not in previous_stored],
        }

    def _crd_names_in_use(self, group: str) -> tuple[set[str], set[str]]:
        """The resource names (plural, singular, short) and kinds (kind, listKind) accepted in `group`."""
        resources: set[str] = set()
        kinds_in_use: set[str] = set()
        for crd in self.store.iter(CRD_KEY):
            if (crd.get("spec") or {}).get("group") != group:
                continue
            accepted = (crd.get("status") or {}).get("acceptedNames") or {}
            resources.update(str(accepted.get(k) or "") for k in ("plural", "singular"))
            resources.update(accepted.get("shortNames") or ())
            kinds_in_use.update(str(accepted.get(k) or "") for k in ("kind", "listKind"))
        return resources, kinds_in_use

    def _crd_reconsider_group(self, group: str) -> None:
        """A deleted CRD frees its names: the group's CRDs whose names were refused are checked again."""
        rtype = self.type_for(CRD_KEY[0], "v1", CRD_KEY[1])
        for crd in list(self.store.iter(CRD_KEY)):
            if (crd.get("spec") or {}).get("group") != group or _crd_condition(crd, "NamesAccepted") == "True":
                continue
            new = copy.deepcopy(crd)
            self._crd_accept(new)
            if new != crd:
                self._commit(rtype, new, crd)

    def _crd_register(self, crd: JSON) -> None:
        if _crd_condition(crd, "Established") != "True":  # its names were refused: nothing is served
            self.registry.remove_crd(crd["metadata"]["name"])
            return
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


def _crd_condition(crd: JSON, ctype: str) -> str | None:
    for cond in (crd.get("status") or {}).get("conditions") or []:
        if cond.get("type") == ctype:
            return str(cond.get("status"))
    return None


def _accept_crd_names(
    requested: JSON, accepted: JSON, resources: set[str], kinds_in_use: set[str]
) -> tuple[JSON, tuple[str, str] | None]:
    """Upstream's NamingConditionController: the names a CRD may have, and (reason, message) of the last conflict.

    A requested name is fine when it is the one already accepted or no CRD of the group has accepted it; names
    that conflict keep their previously accepted value (none for a new CRD).
    """
    names = dict(accepted)
    conflict: tuple[str, str] | None = None

    def fresh(name: str, already: str, used: set[str]) -> bool:
        return name == already or name not in used

    for key, reason, used in (("plural", "PluralConflict", resources), ("singular", "SingularConflict", resources)):
        if fresh(str(requested.get(key) or ""), str(accepted.get(key) or ""), used):
            names[key] = requested.get(key)
        else:
            conflict = (reason, f'"{requested.get(key)}" is already in use')
    wanted_short = list(requested.get("shortNames") or [])
    if wanted_short != list(accepted.get("shortNames") or []):
        own = set(accepted.get("shortNames") or ())
        taken = [f'"{short}" is already in use' for short in wanted_short if short not in own and short in resources]
        if taken:
            conflict = ("ShortNamesConflict", taken[0] if len(taken) == 1 else f"[{', '.join(taken)}]")
        elif "shortNames" in requested:
            names["shortNames"] = requested["shortNames"]
        else:
            names.pop("shortNames", None)
    for key, reason in (("kind", "KindConflict"), ("listKind", "ListKindConflict")):
        if fresh(str(requested.get(key) or ""), str(accepted.get(key) or ""), kinds_in_use):
            names[key] = requested.get(key)
        else:
            conflict = (reason, f'"{requested.get(key)}" is already in use')
    if "categories" in requested:
        names["categories"] = requested["categories"]
    else:
        names.pop("categories", None)
    # Go's field order; `plural` and `kind` have no omitempty.
    names.setdefault("plural", "")
    names.setdefault("kind", "")
    order = ("plural", "singular", "shortNames", "kind", "listKind", "categories")
    return {key: names[key] for key in order if key in names}, conflict


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


# Kinds whose update strategy has AllowUnconditionalUpdate() == false (besides custom resources): a PUT
# without metadata.resourceVersion is 422 Invalid instead of an unconditional update.
_CONDITIONAL_UPDATE_ONLY = frozenset(
    {
        ("apiextensions.k8s.io", "customresourcedefinitions"),
        ("coordination.k8s.io", "leases"),
        ("policy", "poddisruptionbudgets"),
    }
)


def _allows_unconditional_update(rtype: ResourceType) -> bool:
    return not rtype.is_custom and (rtype.group, rtype.plural) not in _CONDITIONAL_UPDATE_ONLY


def _patch_reason(code: int) -> str:
    return {400: "BadRequest", 415: "UnsupportedMediaType", 409: "Conflict"}.get(code, "Invalid")


def _compile_selectors(labels: LabelSelector | None, fields: FieldSelector | None) -> Callable[[JSON], bool] | None:
    if labels is None and fields is None:
        return None
    label_match = labels.matches if labels is not None else None
    field_match = fields.matches if fields is not None else None

    def matches(obj: JSON) -> bool:
        if label_match is not None and not label_match(obj["metadata"].get("labels")):
            return False
        return field_match is None or field_match(obj)

    return matches


@functools.lru_cache(maxsize=256)
def _label_extractor(key: str) -> Callable[[JSON], str | None]:
    """An index's extractor for label `key` (None: the object lacks it)."""

    def extract(obj: JSON) -> str | None:
        labels = obj["metadata"].get("labels")
        return labels.get(key) if labels else None

    return extract


@functools.lru_cache(maxsize=256)
def _field_extractor(path: str) -> Callable[[JSON], str | None]:
    """An index's extractor for field `path`: the string field selectors compare ("" when missing)."""
    return lambda obj: field_value(obj, path)


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
