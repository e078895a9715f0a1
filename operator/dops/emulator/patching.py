"""The four PATCH flavours of the Kubernetes API, plus the managedFields bookkeeping that goes with them.

Why this module exists: every write that is not a plain PUT goes through one of these functions, and each client
depends on a different one (spec S5): kopf sends JSON patches with a `test` on `metadata.resourceVersion` (K7) and
merge patches; kubectl's client-side apply sends strategic merge patches with `$setElementOrder` and friends (C3);
kubectl `--server-side` and helm send apply patches (C4, H2 step 7).

Design decisions:

- Every function is pure: it returns a new object and never mutates its inputs, so the store can keep the old object
  for watch history and no-op detection. Results never share mutable containers with the inputs, so callers may
  stamp `metadata.resourceVersion` etc. on the result in place.
- merge-patch (RFC 7386) runs on the hot path (kopf writes every handler result with it), so it copies and merges in
  a single recursive pass instead of deep-copying first.
- JSON patch (RFC 6902) is delegated to the `jsonpatch` library, applied operation by operation on our own copy so a
  failure can name the failing operation in kube-apiserver's wording (evanphx/json-patch messages) and nothing is
  applied when any operation fails.
- Strategic merge patch follows apimachinery's `strategicpatch` algorithm (directives, parallel lists, element
  ordering) but takes patch metadata from a small table keyed by field name (and, where it matters, the parent
  field) instead of Go struct tags. That is accurate for the built-in kinds the emulator serves.
- Server-side apply is deliberately simplified: merge-patch semantics plus list-map merging for the known keys, and
  removal of fields the same manager applied before but dropped now, unless another manager also owns them.
  Conflicts are not modelled (S5 allows this), so `force` has no effect.
- FieldsV1 sets are plain dicts in the wire format (`{"f:metadata": {"f:labels": {"f:app": {}}}}`); set algebra
  goes through tuples of path elements (`owned_paths`).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any, Final

import jsonpatch
import jsonpointer

from .schema import GO_JSON_ESCAPES, go_float

JSON = dict[str, Any]
FieldPath = tuple[str, ...]

__all__ = [
    "PatchError",
    "apply_patch",
    "changed_fields",
    "fields_from_paths",
    "fields_v1",
    "go_print",
    "json_patch",
    "merge_patch",
    "owned_paths",
    "patched_document_text",
    "removed_fields",
    "strategic_merge_patch",
    "update_managed_fields",
]

# kube-apiserver's generic message for a 422 built with NewGenericServerResponse (json-patch failures and some
# strategic-merge failures); for json-patch failures the underlying error is not sent at all (`details: {}`).
INVALID_REQUEST_MESSAGE: Final = "the server rejected our request due to an error in our request"

_REASONS: Final = {400: "BadRequest", 415: "UnsupportedMediaType", 422: "Invalid"}


class PatchError(Exception):
    """A patch that cannot be applied. `code` is the HTTP status the API server answers with.

    `message` is what goes into the Status object's `message`; `detail`, when set, is the underlying error (for
    422s the message itself is generic, as in kube-apiserver, which does not send the json-patch error).
    """

    def __init__(self, code: int, message: str, *, detail: str = "") -> None:
        super().__init__(f"{message}: {detail}" if detail else message)
        self.code = code
        self.message = message
        self.detail = detail

    @property
    def reason(self) -> str:
        return _REASONS.get(self.code, "BadRequest")

    @property
    def causes(self) -> list[JSON]:
        return [{"message": self.detail}] if self.detail else []

    @classmethod
    def invalid(cls, detail: str) -> PatchError:
        """A 422 as kube-apiserver builds it for json-patch failures."""
        return cls(422, INVALID_REQUEST_MESSAGE, detail=detail)


# ---------------------------------------------------------------------------------------------------------------
# JSON helpers
# ---------------------------------------------------------------------------------------------------------------


def _copy(value: Any) -> Any:
    """Deep copy of a JSON value; several times faster than copy.deepcopy for plain dict/list/scalar trees."""
    if isinstance(value, dict):
        return {k: _copy(v) if isinstance(v, dict | list) else v for k, v in value.items()}
    if isinstance(value, list):
        return [_copy(v) if isinstance(v, dict | list) else v for v in value]
    return value


def _without_nulls(value: Any) -> Any:
    """A copy with null-valued object members removed at every depth (RFC 7386 for a patch merged into nothing)."""
    if isinstance(value, dict):
        return {k: _without_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_copy(v) for v in value]
    return value


# ---------------------------------------------------------------------------------------------------------------
# merge-patch (RFC 7386)
# ---------------------------------------------------------------------------------------------------------------


def merge_patch(target: dict[str, Any], patch: Any) -> Any:
    """Apply a JSON merge patch (RFC 7386): `null` deletes a member, objects merge, everything else replaces.

    A non-object patch replaces the whole target (the caller rejects a non-object result). Lists are replaced
    wholesale. Returns a new tree; neither input is mutated nor shared with the result.
    """
    if not isinstance(patch, dict):
        return _copy(patch)
    if not isinstance(target, dict):
        return _without_nulls(patch)
    return _merge(target, patch)


def _merge(target: Mapping[str, Any], patch: Mapping[str, Any]) -> JSON:
    result: JSON = {k: _copy(v) for k, v in target.items() if k not in patch}
    for key, pval in patch.items():
        if pval is None:
            continue
        if isinstance(pval, dict):
            tval = target.get(key)
            result[key] = _merge(tval, pval) if isinstance(tval, dict) else _without_nulls(pval)
        else:
            result[key] = _copy(pval)
    return result


# ---------------------------------------------------------------------------------------------------------------
# json-patch (RFC 6902)
# ---------------------------------------------------------------------------------------------------------------


def json_patch(target: dict[str, Any], ops: Any) -> Any:
    """Apply an RFC 6902 JSON patch atomically: any failing operation raises PatchError(422) and nothing changes.

    A document that is not a list of objects is malformed (400, like Go's decoder). Supports add, remove, replace,
    move, copy and test, `~0`/`~1` escapes and the `-` array index.
    """
    if not isinstance(ops, list):
        kind = "object" if isinstance(ops, dict) else type(ops).__name__
        raise PatchError(400, f"json: cannot unmarshal {kind} into Go value of type jsonpatch.Patch")
    for op in ops:
        if not isinstance(op, dict):
            raise PatchError(400, "json: cannot unmarshal non-object into Go value of type map[string]*json.RawMessage")
    doc: Any = _copy(target)
    for op in ops:
        try:
            doc = jsonpatch.JsonPatch([_replace_member_as_add(doc, _copy(op))]).apply(doc, in_place=True)
        except (
            jsonpatch.JsonPatchException,
            jsonpointer.JsonPointerException,
            KeyError,
            IndexError,
            TypeError,
            ValueError,
        ) as exc:
            raise PatchError.invalid(_json_patch_failure(op, exc)) from None
    return doc


def _replace_member_as_add(doc: Any, op: dict[str, Any]) -> dict[str, Any]:
    """`replace` of a missing member of an object sets it, like `add`: evanphx/json-patch v4 (kube-apiserver's)
    only checks that the parent exists (a missing array index still fails)."""
    path = op.get("path")
    if op.get("op") != "replace" or not isinstance(path, str) or not path:
        return op
    try:
        parent, key = jsonpointer.JsonPointer(path).to_last(doc)
    except jsonpointer.JsonPointerException:
        return op
    if isinstance(parent, dict) and key not in parent:
        return {**op, "op": "add"}
    return op


def _json_patch_failure(op: Mapping[str, Any], exc: Exception) -> str:
    """The evanphx/json-patch (v4, vendored by kube-apiserver) message for a failing operation, where known."""
    kind = op.get("op")
    path = op.get("path")
    if not isinstance(kind, str) or kind not in {"add", "remove", "replace", "move", "copy", "test"}:
        return f"Unexpected kind: {kind if isinstance(kind, str) else 'unknown'}"
    if not isinstance(path, str):
        return f"{kind} operation missing path"
    if isinstance(exc, jsonpatch.InvalidJsonPatch):
        return f"{kind} operation is invalid: {exc}"
    if isinstance(exc, jsonpatch.JsonPatchTestFailed):
        return f"testing value {path} failed: test failed"
    if kind == "add":
        return f'add operation does not apply: doc is missing path: "{path}": missing value'
    if kind == "remove":
        key = path.rsplit("/", 1)[-1]
        return f"error in remove for path: '{path}': Unable to remove nonexistent key: {key}: missing value"
    if kind == "replace":
        return f"replace operation does not apply: doc is missing key: {path}: missing value"
    if kind in ("move", "copy"):
        return f"{kind} operation does not apply: doc is missing from path: {op.get('from')}: missing value"
    return str(exc)


# ---------------------------------------------------------------------------------------------------------------
# Patch metadata for built-in kinds (the struct tags `patchStrategy`/`patchMergeKey` apimachinery reads)
# ---------------------------------------------------------------------------------------------------------------

_CONTAINER_LISTS: Final = frozenset({"containers", "initContainers", "ephemeralContainers"})

# List field name → merge key, wherever the field appears (k8s.io/api struct tags with patchStrategy=merge).
_MERGE_KEYS: Final[dict[str, str]] = {
    "containers": "name",
    "initContainers": "name",
    "ephemeralContainers": "name",
    "env": "name",
    "volumes": "name",
    "volumeMounts": "mountPath",
    "volumeDevices": "devicePath",
    "imagePullSecrets": "name",
    "hostAliases": "ip",
    "ownerReferences": "uid",
    "conditions": "type",
    "topologySpreadConstraints": "topologyKey",
    "resourceClaims": "name",
    "schedulingGates": "name",
    "claims": "name",
    "podIPs": "ip",
    "hostIPs": "ip",
    "secrets": "name",
    "taints": "key",
}

_METADATA_ONLY_KEYS: Final = frozenset({"ownerReferences"})


def _list_strategy(field: str, parent: str, builtin: bool = True) -> str | None:
    """How a list merges: a merge key (list of maps), "" (a merged set of primitives) or None (atomic).

    `parent` is the name of the field holding the map that contains the list ("metadata", "spec", "containers"...).
    For custom resources (`builtin=False`) only the metadata lists have merge semantics.
    """
    if parent == "metadata":
        if field == "finalizers":
            return ""
        if field == "ownerReferences":
            return "uid"
        return None
    if not builtin or field in _METADATA_ONLY_KEYS:
        return None
    if field == "ports":
        if parent in _CONTAINER_LISTS:
            return "containerPort"
        return "port" if parent == "spec" else None  # ServiceSpec.ports
    return _MERGE_KEYS.get(field)


# ---------------------------------------------------------------------------------------------------------------
# strategic merge patch
# ---------------------------------------------------------------------------------------------------------------

_DIRECTIVE: Final = "$patch"
_RETAIN_KEYS: Final = "$retainKeys"
_SET_ORDER: Final = "$setElementOrder/"
_DELETE_FROM: Final = "$deleteFromPrimitiveList/"

_ERR_RETAIN_KEYS: Final = "invalid patch format of retainKeys"
_ERR_PRIMITIVE_LIST: Final = "invalid patch format of primitive list"
_ERR_SET_ORDER: Final = "invalid patch format of setElementOrder list"


def strategic_merge_patch(target: dict[str, Any], patch: Any) -> JSON:
    """Apply a Kubernetes strategic merge patch to a built-in object (apimachinery `StrategicMergeMapPatch`).

    Lists with a merge key (containers by name, volumeMounts by mountPath, ...) merge item by item; `finalizers` is
    a merged set of strings; other lists are atomic. `null` deletes. Directives: `$patch: replace|delete|merge` on
    maps, `{"$patch": "delete", <key>: v}` and `{"$patch": "replace"}` in lists, `$setElementOrder/<f>`,
    `$deleteFromPrimitiveList/<f>` and `$retainKeys`. Malformed directives raise PatchError(400), other
    unappliable content PatchError(422).

    Deviations from apimachinery: `$patch: merge` on a map is accepted as a plain merge (Go rejects it with a 500),
    a `$patch: merge` list item is ignored, and directives inside newly added values are stripped.
    """
    if not isinstance(patch, dict):
        raise PatchError(400, "invalid JSON document")
    original = _copy(target) if isinstance(target, dict) else {}
    return _smp_map(original, _copy(patch), "")


def _smp_map(original: JSON | None, patch: JSON, parent: str) -> JSON:
    """Merge `patch` into `original` in place (both are private copies) and return the merged map."""
    if _DIRECTIVE in patch:
        directive = patch.pop(_DIRECTIVE)
        if directive == "replace":
            return _clean(patch)  # type: ignore[no-any-return]
        if directive == "delete":
            return {}
        if directive != "merge":
            raise PatchError.invalid(f"unknown patch type: {directive} in map: {patch}")
    if original is None:
        original = {}

    if _RETAIN_KEYS in patch:
        retain = patch.pop(_RETAIN_KEYS)
        if not isinstance(retain, list):
            raise PatchError(400, _ERR_RETAIN_KEYS)
        keep = set(retain)
        for key, value in patch.items():
            if value is None or key.startswith(_DELETE_FROM) or key.startswith(_SET_ORDER):
                continue
            if key not in keep:
                raise PatchError(400, _ERR_RETAIN_KEYS)
        for key in [k for k in original if k not in keep]:
            del original[key]

    # $setElementOrder lists (with the list they order) go first, as in mergePatchIntoOriginal.
    for key in [k for k in patch if k.startswith(_SET_ORDER)]:
        order = patch.pop(key)
        field = key[len(_SET_ORDER) :]
        if not field or not isinstance(order, list):
            raise PatchError(400, _ERR_SET_ORDER)
        _smp_set_element_order(original, patch, field, order, parent)

    for key in list(patch):
        pval = patch[key]
        delete_list = False
        if key.startswith(_DELETE_FROM):
            key = key[len(_DELETE_FROM) :]
            if not key:
                raise PatchError(400, _ERR_PRIMITIVE_LIST)
            if not isinstance(pval, list):
                raise PatchError(400, _ERR_PRIMITIVE_LIST)
            delete_list = True
        elif key.startswith("$"):
            continue  # unknown directive keys never reach the stored object
        if pval is None:
            original.pop(key, None)
            continue
        if key not in original:
            if not delete_list:
                original[key] = _new_value(pval, key, parent)
            continue
        oval = original[key]
        if isinstance(oval, dict) and isinstance(pval, dict):
            original[key] = _smp_map(oval, pval, key)
        elif isinstance(oval, list) and isinstance(pval, list):
            if delete_list:
                remove = pval
                original[key] = [v for v in oval if v not in remove]
            else:
                original[key] = _smp_list(oval, pval, key, parent)
        elif not delete_list:
            original[key] = _new_value(pval, key, parent)
    return original


def _new_value(pval: Any, field: str, parent: str) -> Any:
    """A patch value for a field the original lacks (or has with another type): directives and nulls stripped."""
    if isinstance(pval, dict):
        return _smp_map(None, pval, field)
    if isinstance(pval, list):
        if _list_strategy(field, parent) is not None:
            return _smp_list([], pval, field, parent)
        return _clean(pval)
    return pval


def _clean(value: Any) -> Any:
    """Strip directive keys, directive-marked list items and null members (apimachinery `removeDirectives`)."""
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items() if v is not None and not k.startswith("$")}
    if isinstance(value, list):
        return [_clean(v) for v in value if not (isinstance(v, dict) and _DIRECTIVE in v)]
    return value


def _smp_list(original: list[Any], patch: list[Any], field: str, parent: str) -> list[Any]:
    strategy = _list_strategy(field, parent)
    if strategy is None:
        return _clean(patch)  # type: ignore[no-any-return]
    if not original and not patch:
        return original
    if strategy == "" or not all(isinstance(v, dict) for v in (*original, *patch)):
        if any(isinstance(v, dict | list) for v in patch):
            return _clean(patch)  # type: ignore[no-any-return]
        merged = _dedupe([*original, *patch])
        patch_items = [v for v in merged if v in patch]
        server_only = [v for v in merged if v not in patch]
        return _normalize_order(patch_items, server_only, patch, original, None)

    key = strategy
    server = list(original)
    plain: list[JSON] = []
    replace = False
    for item in patch:
        directive = item.get(_DIRECTIVE)
        if directive is None:
            plain.append(item)
        elif directive == "delete":
            if key not in item:
                raise PatchError.invalid(f"map: {item} does not contain declared merge key: {key}")
            server = [v for v in server if v.get(key) != item[key]]
        elif directive == "replace":
            replace = True
        elif directive != "merge":
            raise PatchError.invalid(f"unknown patch type: {directive} in map: {item}")
    if replace:
        server, plain = [_smp_map(None, v, field) for v in plain], []
    order_reference = list(server)
    merged = server
    for item in plain:
        if key not in item:
            raise PatchError.invalid(f"map: {item} does not contain declared merge key: {key}")
        for index, existing in enumerate(merged):
            if existing.get(key) == item[key]:
                merged[index] = _smp_map(existing, item, field)
                break
        else:
            merged.append(_smp_map(None, item, field))
    in_patch = [v[key] for v in plain]
    patch_items = [v for v in merged if v.get(key) in in_patch]
    server_only = [v for v in merged if v.get(key) not in in_patch]
    return _normalize_order(patch_items, server_only, plain, order_reference, key)


def _dedupe(values: Iterable[Any]) -> list[Any]:
    out: list[Any] = []
    for v in values:
        if v not in out:
            out.append(v)
    return out


def _index(items: list[Any], value: Any, key: str | None) -> int:
    """Position of `value` in `items`, comparing merge-key values for maps (apimachinery `index`)."""
    probe = value.get(key) if key is not None and isinstance(value, dict) else value
    for i, item in enumerate(items):
        candidate = item.get(key) if key is not None and isinstance(item, dict) else item
        if candidate == probe:
            return i
    return -1


def _sort_by(items: list[Any], order: list[Any], key: str | None) -> list[Any]:
    big = len(order)

    def position(item: Any) -> int:
        i = _index(order, item, key)
        return i if i >= 0 else big

    return sorted(items, key=position)


def _normalize_order(
    patch_items: list[Any], server_only: list[Any], patch_order: list[Any], server_order: list[Any], key: str | None
) -> list[Any]:
    """apimachinery `normalizeElementOrder` + `mergeSortedSlice`: patch order wins, server-only items interleave.

    Server-only items are inserted before a patch item only when both appear in the live list and the server item
    comes first there; so items new to the list end up where the patch put them relative to the others.
    """
    right = _sort_by(patch_items, patch_order, key)
    left = _sort_by(server_only, server_order, key)
    out: list[Any] = []
    i = j = 0
    while i < len(left) or j < len(right):
        if j >= len(right):
            out.append(left[i])
            i += 1
        elif i >= len(left):
            out.append(right[j])
            j += 1
        else:
            li = _index(server_order, left[i], key)
            ri = _index(server_order, right[j], key)
            if li >= 0 and ri >= 0 and li < ri:
                out.append(left[i])
                i += 1
            else:
                out.append(right[j])
                j += 1
    return out


def _smp_set_element_order(original: JSON, patch: JSON, field: str, order: list[Any], parent: str) -> None:
    """Merge `patch[field]` into `original[field]` and reorder by the `$setElementOrder/<field>` list."""
    strategy = _list_strategy(field, parent)
    key = strategy or None
    has_original = isinstance(original.get(field), list)
    has_patch = field in patch
    patch_list = patch.pop(field, None)
    if has_patch and not isinstance(patch_list, list):
        raise PatchError(400, _ERR_SET_ORDER)
    if key is not None and not all(isinstance(v, dict) and key in v for v in order):
        raise PatchError(400, _ERR_SET_ORDER)
    server: list[Any] = original[field] if has_original else []
    if has_original and has_patch:
        merged = _smp_list(list(server), patch_list, field, parent)
    elif has_patch:
        merged = _smp_list([], patch_list, field, parent)
    elif has_original:
        merged = list(server)
    else:
        return
    if key is None:
        patch_items = [v for v in merged if v in order]
        server_only = [v for v in merged if v not in order]
    else:
        wanted = [v.get(key) for v in order]
        patch_items = [v for v in merged if isinstance(v, dict) and v.get(key) in wanted]
        server_only = [v for v in merged if not (isinstance(v, dict) and v.get(key) in wanted)]
    original[field] = _normalize_order(patch_items, server_only, order, server, key)


# ---------------------------------------------------------------------------------------------------------------
# FieldsV1 and managedFields
# ---------------------------------------------------------------------------------------------------------------

# Fields the API server never records in managedFields (fieldmanager's strip set).
_STRIPPED_TOP: Final = frozenset({"apiVersion", "kind"})
_STRIPPED_METADATA: Final = frozenset(
    {
        "name",
        "namespace",
        "uid",
        "resourceVersion",
        "generation",
        "creationTimestamp",
        "selfLink",
        "clusterName",
        "managedFields",
    }
)


# `json.dumps(value, separators=(",", ":"), sort_keys=True)` with the encoder built once: `json.dumps` with options
# constructs a JSONEncoder per call, which was most of the cost of naming every keyed list item on every write.
_encode_sorted: Final = json.JSONEncoder(separators=(",", ":"), sort_keys=True).encode


def _key_element(key: str, value: Any) -> str:
    return "k:" + _encode_sorted({key: value})


def _value_element(value: Any) -> str:
    return "v:" + _encode_sorted(value)


def fields_v1(obj: Mapping[str, Any], *, builtin: bool = True) -> JSON:
    """The FieldsV1 set of every field set in `obj`, as an apply of `obj` would record it.

    apiVersion, kind and server-owned metadata (name, namespace, uid, resourceVersion, generation,
    creationTimestamp, managedFields...) are excluded; labels, annotations, finalizers and ownerReferences are kept.
    List items of keyed lists appear as `k:{"name":"a"}` with a `.` entry, set items as `v:"x"`, atomic lists and
    scalars as leaves.
    """
    out: JSON = {}
    for key, value in obj.items():
        if value is None or key in _STRIPPED_TOP:
            continue
        if key == "metadata" and isinstance(value, dict):
            meta = {k: v for k, v in value.items() if k not in _STRIPPED_METADATA}
            fields = _fields_of_map(meta, "metadata", builtin)
            if fields:
                out["f:metadata"] = fields
            continue
        out["f:" + key] = _fields_of_value(value, key, "", builtin)
    return out


def _fields_of_map(obj: Mapping[str, Any], parent: str, builtin: bool) -> JSON:
    return {"f:" + k: _fields_of_value(v, k, parent, builtin) for k, v in obj.items() if v is not None}


def _fields_of_value(value: Any, field: str, parent: str, builtin: bool) -> JSON:
    if isinstance(value, dict):
        return _fields_of_map(value, field, builtin)
    if isinstance(value, list):
        strategy = _list_strategy(field, parent, builtin)
        if strategy == "" and all(not isinstance(v, dict | list) for v in value):
            return {_value_element(v): {} for v in value}
        if strategy and all(isinstance(v, dict) and strategy in v for v in value):
            out: JSON = {}
            for item in value:
                out[_key_element(strategy, item[strategy])] = {".": {}, **_fields_of_map(item, field, builtin)}
            return out
    return {}


def removed_fields(old: Mapping[str, Any], new: Mapping[str, Any], *, builtin: bool = True) -> JSON:
    """The FieldsV1 set of the fields `old` has and `new` no longer has (structured-merge-diff's `Removed`):
    a write that removes a field takes it out of every manager's set.

    Defined as `owned_paths(fields_v1(old)) - owned_paths(fields_v1(new))`, member by member of the top level. Where
    both sides of a member are maps, the difference is taken member by member below it (`_removed_in_map`), so a
    write that changes one field of a large object looks at that field only instead of deriving both whole sets.
    """
    gone: set[FieldPath] = set()
    for key in old:
        if key in new and old[key] == new[key]:
            continue
        before, after = old[key], new.get(key)
        if isinstance(before, dict) and isinstance(after, dict) and key not in _STRIPPED_TOP:
            if key != "metadata":
                _removed_in_map(before, after, key, ("f:" + key,), builtin, gone)
                continue
            # fields_v1 strips server-owned members and leaves out an `f:metadata` with no fields at all.
            before = {k: v for k, v in before.items() if k not in _STRIPPED_METADATA}
            after = {k: v for k, v in after.items() if k not in _STRIPPED_METADATA}
            if _has_fields(before):
                if _has_fields(after):
                    _removed_members(before, after, key, ("f:metadata",), builtin, gone)
                else:
                    _collect_paths(_fields_of_map(before, key, builtin), ("f:metadata",), gone)
            continue
        paths_before = owned_paths(fields_v1({key: old[key]}, builtin=builtin))
        paths_after = owned_paths(fields_v1({key: new[key]}, builtin=builtin)) if key in new else frozenset()
        gone |= paths_before - paths_after
    return fields_from_paths(gone)


def _has_fields(obj: Mapping[str, Any]) -> bool:
    """Whether a map's FieldsV1 set has members (`_fields_of_map` skips null values)."""
    return any(value is not None for value in obj.values())


def _removed_in_map(old: JSON, new: JSON, field: str, here: FieldPath, builtin: bool, out: set[FieldPath]) -> None:
    """Add to `out` the paths of map `old`'s fields that map `new`'s lack; both are the value of `field` at `here`.

    A map without fields is the leaf `here` itself; otherwise its paths are those of its members below `here`.
    """
    if not _has_fields(old):
        if _has_fields(new):
            out.add(here)  # the leaf `here` became a map with fields below it
        return
    if not _has_fields(new):
        _collect_paths(_fields_of_map(old, field, builtin), here, out)
        return
    _removed_members(old, new, field, here, builtin, out)


def _removed_members(old: JSON, new: JSON, field: str, here: FieldPath, builtin: bool, out: set[FieldPath]) -> None:
    """`_removed_in_map` for two maps with fields: member `k`'s paths all start with `here + ("f:k",)`, so the
    difference is the union of the members' differences, and members whose sets are equal add nothing."""
    for key, before in old.items():
        if before is None:
            continue
        after = new.get(key)
        if isinstance(before, dict):
            if isinstance(after, dict):
                if before == after and _same_json(before, after):
                    continue
                _removed_in_map(before, after, key, (*here, "f:" + key), builtin, out)
                continue
        elif isinstance(before, list):
            if isinstance(after, list) and before == after and _same_json(before, after):
                continue
        elif after is not None and not isinstance(after, dict | list):
            continue  # a scalar for a scalar: both sets are the leaf `f:key`
        element = "f:" + key
        paths = owned_paths({element: _fields_of_value(before, key, field, builtin)})
        if after is not None:
            paths = paths - owned_paths({element: _fields_of_value(after, key, field, builtin)})
        out.update((*here, *path) for path in paths)


_encode_compact: Final = json.JSONEncoder(separators=(",", ":")).encode


def _same_json(a: Any, b: Any) -> bool:
    """Whether two values that compare equal also encode alike. `==` holds across 1, 1.0 and True, which FieldsV1
    keeps apart (`v:1` is not `v:true`), so equal values count as the same only when their JSON is the same."""
    try:
        return bool(_encode_compact(a) == _encode_compact(b))
    except (TypeError, ValueError):
        return False


def owned_paths(fields: Mapping[str, Any]) -> frozenset[FieldPath]:
    """Flatten a FieldsV1 set into leaf paths; a list item's own `.` marker becomes a path ending in ".".

    `{"f:spec": {"f:containers": {'k:{"name":"a"}': {".": {}, "f:image": {}}}}}` →
    `{("f:spec", "f:containers", 'k:{"name":"a"}', "."), ("f:spec", "f:containers", 'k:{"name":"a"}', "f:image")}`.
    """
    out: set[FieldPath] = set()
    _collect_paths(fields, (), out)
    return frozenset(out)


def _collect_paths(fields: Mapping[str, Any], prefix: FieldPath, out: set[FieldPath]) -> None:
    for key, child in fields.items():
        if key == ".":
            out.add((*prefix, "."))
        elif (type(child) is dict or isinstance(child, Mapping)) and child:  # a plain dict skips the ABC check
            _collect_paths(child, (*prefix, key), out)
        else:
            out.add((*prefix, key))


def fields_from_paths(paths: Iterable[FieldPath]) -> JSON:
    """The inverse of `owned_paths`: rebuild the nested FieldsV1 dict."""
    root: JSON = {}
    for path in sorted(paths):
        node = root
        for element in path:
            node = node.setdefault(element, {})
    return root


def changed_fields(old: Mapping[str, Any] | None, new: Mapping[str, Any], *, builtin: bool = True) -> JSON:
    """The FieldsV1 set of the fields an update set or changed (what an "Update" managedFields entry records)."""
    if old is None:
        return fields_v1(new, builtin=builtin)
    out: JSON = {}
    for key, value in new.items():
        if value is None or key in _STRIPPED_TOP:
            continue
        before = old.get(key)
        if key == "metadata" and isinstance(value, dict):
            meta = {k: v for k, v in value.items() if k not in _STRIPPED_METADATA}
            old_meta = before if isinstance(before, Mapping) else {}
            fields = _changed_in_map(old_meta, meta, "metadata", builtin)
            if fields:
                out["f:metadata"] = fields
        elif before != value:
            out["f:" + key] = _changed_value(before, value, key, "", builtin)
    return out


def _changed_in_map(old: Mapping[str, Any], new: Mapping[str, Any], parent: str, builtin: bool) -> JSON:
    return {
        "f:" + k: _changed_value(old.get(k), v, k, parent, builtin)
        for k, v in new.items()
        if v is not None and old.get(k) != v
    }


def _changed_value(old: Any, new: Any, field: str, parent: str, builtin: bool) -> JSON:
    if isinstance(new, dict) and isinstance(old, dict):
        return _changed_in_map(old, new, field, builtin)
    if isinstance(new, list) and isinstance(old, list):
        strategy = _list_strategy(field, parent, builtin)
        if strategy and all(isinstance(v, dict) and strategy in v for v in (*old, *new)):
            by_key = {v[strategy]: v for v in old}
            out: JSON = {}
            for item in new:
                before = by_key.get(item[strategy])
                if before == item:
                    continue
                element = _key_element(strategy, item[strategy])
                if before is None:
                    out[element] = {".": {}, **_fields_of_map(item, field, builtin)}
                else:
                    out[element] = _changed_in_map(before, item, field, builtin)
            return out
        if strategy == "" and all(not isinstance(v, dict | list) for v in new):
            return {_value_element(v): {} for v in new if v not in old}
    return _fields_of_value(new, field, parent, builtin)


_MANAGED_FIELDS_ORDER: Final = ("operation", "time", "manager", "apiVersion", "subresource")


def update_managed_fields(
    obj: dict[str, Any],
    *,
    manager: str,
    operation: str,
    api_version: str,
    fields: Mapping[str, Any] | None,
    time: str,
    subresource: str = "",
    removed: Mapping[str, Any] | None = None,
) -> None:
    """Record a write in `obj.metadata.managedFields` (in place).

    The entry for (manager, operation, subresource) is replaced (kept at its position) or appended. `fields=None`
    means "every field of obj" (right for creates). For "Apply" the entry's set becomes exactly `fields` (pass
    `fields_v1(applied)`); for "Update" it is the union of the manager's old set and `fields` (pass
    `changed_fields(old, new)`), and those fields leave other managers' sets, as ownership moves to the updater.
    The fields the write `removed` (see `removed_fields`) leave every set. Entries whose set becomes empty are
    dropped.

    The set algebra is that of `owned_paths` (sets of leaf paths) and `fields_from_paths` (their canonical nested
    form: keys sorted, leaves `{}`), done on the nested dicts directly: an entry the write takes nothing from is
    only probed along the written paths (`_shares_leaf`) instead of being flattened, and the sets that do change
    are rebuilt in one walk (`_without`, `_union`) without going through tuples and a sort.
    """
    metadata = obj.setdefault("metadata", {})
    new_set = _canonical(fields if fields is not None else fields_v1(obj))
    gone = _canonical(removed) if removed else {}
    taken = new_set if operation == "Update" else {}
    removals = [paths for paths in (taken, gone) if paths]
    entries: list[JSON] = []
    mine_at = -1
    mine: Mapping[str, Any] = {}
    for entry in metadata.get("managedFields") or []:
        if not isinstance(entry, dict):
            continue
        same = (
            entry.get("manager") == manager
            and entry.get("operation") == operation
            and (entry.get("subresource") or "") == subresource
        )
        if same:
            mine_at = len(entries)
            mine = _entry_fields(entry)
            entries.append(entry)
            continue
        if removals:
            theirs = _entry_fields(entry)
            if not theirs:
                continue  # an empty set stays empty: the entry goes
            if any(_shares_leaf(theirs, paths) for paths in removals):
                kept = _without(theirs, removals)
                if not kept:
                    continue
                entry = {**entry, "fieldsV1": kept}
        entries.append(entry)
    paths = _union(new_set, _without(mine, [gone] if gone else [])) if operation == "Update" else new_set
    if paths:
        mine_entry: JSON = {
            "manager": manager,
            "operation": operation,
            "apiVersion": api_version,
            "time": time,
            "fieldsType": "FieldsV1",
            "fieldsV1": paths,
        }
        if subresource:
            mine_entry["subresource"] = subresource
        if mine_at >= 0:
            entries[mine_at] = mine_entry
        else:
            entries.append(mine_entry)
    elif mine_at >= 0:
        del entries[mine_at]
    # As apimachinery's sortEncodedManagedFields: by operation (Apply before Update), time, manager, version.
    entries.sort(key=lambda e: tuple(str(e.get(k) or "") for k in _MANAGED_FIELDS_ORDER))
    if entries:
        metadata["managedFields"] = entries
    else:
        metadata.pop("managedFields", None)


# Set algebra on FieldsV1 dicts. A *canonical* set is what `fields_from_paths` builds: a fresh nested dict, keys sorted
# at every level, `{}` at every leaf. Any FieldsV1 dict stands for the set `owned_paths` flattens it to: a `.` key or
# a member whose value is not a non-empty mapping is a leaf path; `owned_paths` never yields a path that is a prefix
# of another, so in a canonical set of such paths "is a leaf here" and "is a member of the set" are the same thing.


def _is_leaf(key: str, child: Any) -> bool:
    """Whether member `key` with value `child` is a leaf path (the walks below inline the test for plain dicts: an
    `isinstance(..., Mapping)` per member was most of their cost)."""
    if type(child) is dict:
        return key == "." or not child
    return key == "." or not (isinstance(child, Mapping) and child)


def _canonical(fields: Mapping[str, Any]) -> JSON:
    """`fields_from_paths(owned_paths(fields))` in one walk."""
    out: JSON = {}
    for key in sorted(fields):
        child = fields[key]
        if type(child) is dict:
            out[key] = _canonical(child) if child and key != "." else {}
        else:
            out[key] = {} if _is_leaf(key, child) else _canonical(child)
    return out


def _entry_fields(entry: Mapping[str, Any]) -> Mapping[str, Any]:
    """A managedFields entry's `fieldsV1` (`{}` when unset); anything but a mapping goes through `owned_paths`,
    which fails on it as before."""
    fields = entry.get("fieldsV1") or {}
    return fields if isinstance(fields, Mapping) else fields_from_paths(owned_paths(fields))


def _shares_leaf(fields: Mapping[str, Any], canonical: JSON) -> bool:
    """Whether `owned_paths(fields)` and the canonical set have a path in common; walks `canonical` only."""
    for key, below in canonical.items():
        if key not in fields:
            continue
        child = fields[key]
        if _is_leaf(key, child):
            if not below:
                return True
        elif below and _shares_leaf(child, below):
            return True
    return False


def _without(fields: Mapping[str, Any], removals: list[JSON]) -> JSON:
    """`fields_from_paths(owned_paths(fields) - paths of every canonical set in removals)`."""
    out: JSON = {}
    for key in sorted(fields):
        child = fields[key]
        below = [paths[key] for paths in removals if key in paths]
        if _is_leaf(key, child):
            if all(below):  # no removal has this leaf path
                out[key] = {}
            continue
        deeper = [paths for paths in below if paths]  # a removal's leaf here is not one of the longer paths below
        rest = _without(child, deeper) if deeper else _canonical(child)
        if rest:
            out[key] = rest
    return out


def _union(a: JSON, b: JSON) -> JSON:
    """`fields_from_paths(paths of a | paths of b)` for canonical sets (which it may return or share): a leaf that
    the other set extends disappears into the extension, as when `fields_from_paths` builds the union."""
    if not a:
        return b
    if not b:
        return a
    return {key: _union(a.get(key) or {}, b.get(key) or {}) for key in sorted(a.keys() | b.keys())}


# ---------------------------------------------------------------------------------------------------------------
# Server-side apply (simplified)
# ---------------------------------------------------------------------------------------------------------------


def apply_patch(
    live: Mapping[str, Any] | None,
    applied: Any,
    *,
    manager: str,
    force: bool,
    builtin: bool = True,
) -> JSON:
    """Merge an apply configuration (application/apply-patch+yaml) into the live object.

    - `live is None`: the applied configuration (minus nulls) is the new object; the caller answers 201.
    - Otherwise the configuration merges into live like a merge patch, except that lists of maps with a known merge
      key merge item by item (live-only items keep their place) and `metadata.finalizers` merges as a set.
    - Fields this manager applied before (its "Apply" managedFields entry) but omits now are removed, unless
      another managedFields entry also owns them.

    Conflicts between managers are not modelled: `force` is accepted and ignored, and nothing ever answers 409.
    The caller records the apply with `update_managed_fields(result, operation="Apply", fields=fields_v1(applied))`.
    """
    del force  # conflicts are not modelled; see docstring
    if not isinstance(applied, dict):
        raise PatchError(400, "error decoding YAML: the apply configuration must be an object")
    if live is None:
        return _without_nulls(applied)  # type: ignore[no-any-return]
    result = _apply_map(live, applied, "", builtin)

    previous: frozenset[FieldPath] = frozenset()
    others: set[FieldPath] = set()
    for entry in (live.get("metadata") or {}).get("managedFields") or []:
        if not isinstance(entry, Mapping):
            continue
        paths = owned_paths(entry.get("fieldsV1") or {})
        if entry.get("manager") == manager and entry.get("operation") == "Apply" and not entry.get("subresource"):
            previous = paths
        else:
            others.update(paths)
    if previous:
        dropped = previous - owned_paths(fields_v1(applied, builtin=builtin))
        # Shortest first, so a dropped list item goes as a whole before its fields would be picked off one by one.
        for base in sorted({path[:-1] if path[-1] == "." else path for path in dropped}, key=len):
            if any(other[: len(base)] == base for other in others):
                continue  # shared with another manager: it stays
            _remove_path(result, base)
    return result


def _apply_map(live: Mapping[str, Any], applied: Mapping[str, Any], parent: str, builtin: bool) -> JSON:
    result: JSON = {k: _copy(v) for k, v in live.items() if k not in applied}
    for key, aval in applied.items():
        if aval is None:
            continue
        lval = live.get(key)
        if isinstance(aval, dict) and isinstance(lval, dict):
            result[key] = _apply_map(lval, aval, key, builtin)
        elif isinstance(aval, list) and isinstance(lval, list):
            result[key] = _apply_list(lval, aval, key, parent, builtin)
        else:
            result[key] = _without_nulls(aval)
    return result


def _apply_list(live: list[Any], applied: list[Any], field: str, parent: str, builtin: bool) -> list[Any]:
    strategy = _list_strategy(field, parent, builtin)
    if strategy == "" and all(not isinstance(v, dict | list) for v in (*live, *applied)):
        return _dedupe([*live, *applied])
    if not strategy or not all(isinstance(v, dict) and strategy in v for v in (*live, *applied)):
        return _without_nulls(applied)  # type: ignore[no-any-return]
    key = strategy
    live_by_key = {item[key]: item for item in live}
    applied_keys = {item[key] for item in applied}
    out: list[Any] = []
    emitted: set[Any] = set()
    pending = iter(applied)

    def emit(item: Mapping[str, Any]) -> None:
        before = live_by_key.get(item[key])
        out.append(_apply_map(before, item, field, builtin) if before is not None else _without_nulls(item))
        emitted.add(item[key])

    # structured-merge-diff order: live-only items keep their place, shared and new items follow applied order.
    for item in live:
        if item[key] not in applied_keys:
            out.append(_copy(item))
            continue
        if item[key] in emitted:
            continue
        for candidate in pending:
            emit(candidate)
            if candidate[key] == item[key]:
                break
    for candidate in pending:
        emit(candidate)
    return out


def _remove_path(obj: Any, path: FieldPath) -> None:
    """Delete the field or list item a FieldsV1 path names; missing paths are ignored."""
    node = obj
    for depth, element in enumerate(path):
        last = depth == len(path) - 1
        kind, _, rest = element.partition(":")
        if kind == "f":
            if not isinstance(node, dict) or rest not in node:
                return
            if last:
                del node[rest]
                return
            node = node[rest]
        elif kind in ("k", "v", "i"):
            if not isinstance(node, list):
                return
            index = _find_item(node, kind, rest)
            if index < 0:
                return
            if last:
                del node[index]
                return
            node = node[index]
        else:
            return


def _find_item(items: list[Any], kind: str, spec: str) -> int:
    try:
        wanted = json.loads(spec)
    except ValueError:
        return -1
    for index, item in enumerate(items):
        if kind == "i":
            if index == wanted:
                return index
        elif kind == "v":
            if item == wanted:
                return index
        elif isinstance(item, dict) and isinstance(wanted, dict) and all(item.get(k) == v for k, v in wanted.items()):
            return index
    return -1


# ---------------------------------------------------------------------------------------------------------------
# How kube-apiserver prints a patched document in a strict-decoding error (`patch: Invalid value: …`)
# ---------------------------------------------------------------------------------------------------------------


def _go_json(value: Any) -> str:
    """encoding/json's compact form of a value whose key order is already the wanted one (HTML characters escaped)."""
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    if any(c in text for c in GO_JSON_ESCAPES):
        text = "".join(GO_JSON_ESCAPES.get(c, c) for c in text)
    return text


def _ordered_after_patch(original: Any, patched: Any, top: bool) -> Any:
    """`patched` with the key order evanphx/json-patch (v4) gives it when it re-encodes a document: the top level and
    every container the patch went through are re-marshalled from Go maps (keys sorted); values the patch left alone
    keep their original encoding's order, values the patch brought keep the patch's. "Went through" is approximated
    by "differs from the original"."""
    if isinstance(patched, dict):
        if not isinstance(original, dict):
            return patched
        if not top and patched == original:
            return original
        return {k: _ordered_after_patch(original.get(k), patched[k], False) for k in sorted(patched)}
    if isinstance(patched, list) and isinstance(original, list) and patched != original:
        return [
            _ordered_after_patch(original[i] if i < len(original) else None, item, False)
            for i, item in enumerate(patched)
        ]
    return patched


def patched_document_text(original: Mapping[str, Any], patched: Mapping[str, Any]) -> str:
    """The JSON text of a JSON-patched or merge-patched object, as kube-apiserver's jsonPatcher has it."""
    return _go_json(_ordered_after_patch(original, patched, True))


def go_print(value: Any) -> str:
    """fmt's `%+v` of a decoded JSON value (`map[a:1 b:[x <nil>]]`): how a strategic merge patch map is printed."""
    if isinstance(value, dict):
        return "map[" + " ".join(f"{k}:{go_print(value[k])}" for k in sorted(value)) + "]"
    if isinstance(value, list):
        return "[" + " ".join(go_print(item) for item in value) + "]"
    if value is None:
        return "<nil>"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return go_float(value)
    return str(value)
