"""OpenAPI v3 schemas and strict-decoding checks for built-in kinds, derived from the `kubernetes` client.

Why: kubectl needs `components.schemas` for `kubectl explain` and for apply validation, the server must
reject or drop unknown fields the way `fieldValidation=Strict|Warn|Ignore` does, and everything we serve
must deserialize in the kubernetes client's strict pydantic models (P6: a string `generation` or an
integer `resourceVersion` raises). The installed `kubernetes` client (v37) carries one generated model
per OpenAPI definition, with `openapi_types` (attribute → type string), `attribute_map` (attribute →
JSON key), and per-field descriptions and required flags. That is the same information the real
server's OpenAPI document is generated from, so we derive schemas from it instead of shipping a copy.

Key design decisions:

- Nothing is imported at module import time. The models package costs ~0.2 s and every model class
  is imported lazily on first use; all derived data (schemas, compiled validators, definition names)
  is cached per process. The caches only grow and hold immutable-by-convention data: callers must
  treat returned schema dicts as read-only.
- Definition names (`io.k8s.api.core.v1.Pod`) are not recorded in the client. Top-level kinds get
  their API group from the generated API modules (`batch_v1_api.py` serves `V1Job`); shared
  sub-structures inherit the group of the first kind that reaches them, walking meta first, then
  core/v1, then the other groups in a fixed order. The walk reads the model sources as text (fast)
  instead of importing all ~850 model classes (~1 s). Names are unique and stable per client version.
- References between schemas use `$ref: #/components/schemas/<name>` (wrapped in `allOf` when the
  field carries its own description, as the real server does), so recursive types such as
  JSONSchemaProps stay finite.
- Validation compiles each model once into a small tree of `_T` nodes and walks plain dicts; paths are
  only built for nodes that are containers or that fail, to keep the create path cheap.
"""

from __future__ import annotations

import functools
import importlib
import importlib.util
import re
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

JSON = dict[str, Any]

__all__ = [
    "BuiltinSchemaError",
    "BuiltinValidator",
    "component_schemas",
    "decode_error_message",
    "definition_name",
    "field_description",
    "model_for",
    "model_gvk",
    "model_schema",
    "unknown_fields_message",
]


class BuiltinSchemaError(Exception):
    """An unknown model name or a client package whose layout we cannot read."""


# --------------------------------------------------------------------------------------------------
# Model discovery: which model is which kind, and what each definition is called.
# --------------------------------------------------------------------------------------------------

_MODELS_PKG = "kubernetes.client.models"
_API_PKG = "kubernetes.client.api"

# apimachinery meta/v1 structures: they appear in every group but belong to none.
_META_MODELS = frozenset(
    {
        "V1APIGroup",
        "V1APIGroupList",
        "V1APIResource",
        "V1APIResourceList",
        "V1APIVersions",
        "V1Condition",
        "V1DeleteOptions",
        "V1FieldSelectorRequirement",
        "V1GroupVersionForDiscovery",
        "V1LabelSelector",
        "V1LabelSelectorRequirement",
        "V1ListMeta",
        "V1ManagedFieldsEntry",
        "V1ObjectMeta",
        "V1OwnerReference",
        "V1Preconditions",
        "V1ServerAddressByClientCIDR",
        "V1Status",
        "V1StatusCause",
        "V1StatusDetails",
        "V1WatchEvent",
    }
)
_META_PACKAGE = "io.k8s.apimachinery.pkg.apis.meta"
_META = "\0meta"  # marker group for apimachinery structures

# Kinds that a group's API module returns but that belong to another group (subresource bodies).
_KIND_GROUP_OVERRIDES: dict[str, tuple[str, str]] = {
    "V1Scale": ("autoscaling", "v1"),
    "V1Eviction": ("policy", "v1"),
    "AuthenticationV1TokenRequest": ("authentication.k8s.io", "v1"),
}

# Go package path prefix per API group, where it is not simply `io.k8s.api.<first label>`.
_GROUP_PACKAGES: dict[str, str] = {
    "": "io.k8s.api.core",
    "apiextensions.k8s.io": "io.k8s.apiextensions-apiserver.pkg.apis.apiextensions",
    "apiregistration.k8s.io": "io.k8s.kube-aggregator.pkg.apis.apiregistration",
    "internal.apiserver.k8s.io": "io.k8s.api.apiserverinternal",
    "flowcontrol.apiserver.k8s.io": "io.k8s.api.flowcontrol",
    "rbac.authorization.k8s.io": "io.k8s.api.rbac",
}

# Fields the client types as plain strings but whose real type is resource.Quantity (int or string).
_QUANTITY_FIELDS = frozenset(
    {
        ("V1ResourceRequirements", "limits"),
        ("V1ResourceRequirements", "requests"),
        ("V1VolumeResourceRequirements", "limits"),
        ("V1VolumeResourceRequirements", "requests"),
        ("V1EmptyDirVolumeSource", "size_limit"),
        ("V1ContainerStatus", "allocated_resources"),
        ("V1PodSpec", "overhead"),
        ("V1Overhead", "pod_fixed"),
        ("V1NodeStatus", "capacity"),
        ("V1NodeStatus", "allocatable"),
        ("V1PersistentVolumeSpec", "capacity"),
        ("V1PersistentVolumeClaimStatus", "capacity"),
        ("V1PersistentVolumeClaimStatus", "allocated_resources"),
        ("V1ResourceQuotaSpec", "hard"),
        ("V1ResourceQuotaStatus", "hard"),
        ("V1ResourceQuotaStatus", "used"),
        ("V1LimitRangeItem", "default"),
        ("V1LimitRangeItem", "default_request"),
        ("V1LimitRangeItem", "max"),
        ("V1LimitRangeItem", "min"),
        ("V1LimitRangeItem", "max_limit_request_ratio"),
        ("V1ResourceFieldSelector", "divisor"),
        ("V1CSIStorageCapacity", "capacity"),
        ("V1CSIStorageCapacity", "maximum_volume_size"),
    }
)

# int64 fields, for Go-style type error messages; everything else integer is reported as int32.
_INT64_FIELDS = frozenset(
    {
        "generation",
        "observedGeneration",
        "deletionGracePeriodSeconds",
        "activeDeadlineSeconds",
        "terminationGracePeriodSeconds",
        "gracePeriodSeconds",
        "expirationSeconds",
        "runAsUser",
        "runAsGroup",
        "fsGroup",
        "seconds",
        "value",
    }
)

_PREFIX_RE = re.compile(r"^([A-Z][a-z]+)?(V\d+(?:(?:alpha|beta)\d+)?)(?=[A-Z])")
_API_FILE_RE = re.compile(r"^(\w+?)_(v\d+(?:(?:alpha|beta)\d+)?)_api\.py$")
_RESPONSE_RE = re.compile(r"'20\d': \"(\w+)\"")
_RESOURCE_PATH_RE = re.compile(r"resource_path='/(?:api/(v1)|apis/([^/']+)/([^/']+))/")
_OPENAPI_TYPES_RE = re.compile(r"openapi_types: ClassVar\[Dict\[str, str\]\] = \{(.*?)\}", re.S)
_TYPE_PAIR_RE = re.compile(r"\"(\w+)\": \"([^\"]+)\"")
_MODEL_NAME_RE = re.compile(r"[A-Z]\w*")


def _split_model_name(model: str) -> tuple[str, str]:
    """`CoreV1Event` → ("v1", "Event"); `V1beta1DeviceClass` → ("v1beta1", "DeviceClass")."""
    match = _PREFIX_RE.match(model)
    if not match:
        return "", model
    return match.group(2).lower(), model[match.end() :]


def _group_package(group: str) -> str:
    if group in _GROUP_PACKAGES:
        return _GROUP_PACKAGES[group]
    return "io.k8s.api." + group.split(".", 1)[0]


def _models_dir() -> Path:
    spec = importlib.util.find_spec(_MODELS_PKG)
    if spec is None or spec.origin is None:
        raise BuiltinSchemaError("the kubernetes client package is not installed")
    return Path(spec.origin).parent


@functools.cache
def _model_modules() -> dict[str, str]:
    """Model class name → module file stem (`V1Pod` → `v1_pod`), read from the models package."""
    models = importlib.import_module(_MODELS_PKG)
    exports = getattr(models, "_exports", None)
    out: dict[str, str] = {}
    if isinstance(exports, dict):
        for name, module in exports.items():
            out[str(name)] = str(module).lstrip(".")
    else:  # older layouts import every class eagerly
        for name in getattr(models, "__all__", ()):
            cls = getattr(models, name, None)
            if isinstance(cls, type) and hasattr(cls, "openapi_types"):
                out[name] = cls.__module__.rsplit(".", 1)[-1]
    return out


@functools.cache
def _raw_types() -> dict[str, dict[str, str]]:
    """Every model's `openapi_types`, read from the sources as text (importing them all takes ~1 s)."""
    directory = _models_dir()
    out: dict[str, dict[str, str]] = {}
    for name, stem in _model_modules().items():
        try:
            source = (directory / f"{stem}.py").read_text(encoding="utf-8")
        except OSError:
            continue
        match = _OPENAPI_TYPES_RE.search(source)
        out[name] = dict(_TYPE_PAIR_RE.findall(match.group(1))) if match else {}
    return out


def _referenced_models(type_string: str, known: dict[str, dict[str, str]]) -> list[str]:
    return [m for m in _MODEL_NAME_RE.findall(type_string) if m in known]


@dataclass(frozen=True)
class _Catalog:
    """Definition names and GVKs of every model, computed once."""

    names: dict[str, str]  # model → definition name
    gvk: dict[str, tuple[str, str, str]]  # top-level kind models → (group, version, kind)
    by_gvk: dict[tuple[str, str, str], str]  # (group, version, kind) → model


@functools.cache
def _catalog() -> _Catalog:
    types = _raw_types()
    api_dir = Path(_models_dir()).parent / "api"
    # 1. Top-level kinds, from the generated per-GroupVersion API modules.
    kinds: list[tuple[str, str, str]] = []  # (model, group, version) in discovery order
    files = sorted(api_dir.glob("*_api.py"), key=lambda p: (not p.name.startswith("core_"), p.name))
    for path in files:
        if not _API_FILE_RE.match(path.name):
            continue
        source = path.read_text(encoding="utf-8")
        where = _RESOURCE_PATH_RE.search(source)
        if where is None:
            continue
        group, version = ("", "v1") if where.group(1) else (where.group(2), where.group(3))
        for model in dict.fromkeys(_RESPONSE_RE.findall(source)):
            if model not in types or model in _META_MODELS:
                continue
            model_group, model_version = _KIND_GROUP_OVERRIDES.get(model, (group, version))
            kinds.append((model, model_group, model_version))

    gvk: dict[str, tuple[str, str, str]] = {}
    group_of: dict[str, str] = {}  # model → API group; _META for apimachinery structures
    for model, group, version in kinds:
        if model not in gvk:
            gvk[model] = (group, version, _split_model_name(model)[1])
            group_of[model] = group
    # 2. Sub-structures inherit the group of the first kind that reaches them: everything reachable
    #    from meta types is meta (ObjectMeta → ManagedFieldsEntry), then core/v1 kinds, then the rest.
    for model in _META_MODELS:
        group_of[model] = _META
    queue: deque[str] = deque(sorted(m for m in _META_MODELS if m in types))
    queue.extend(m for m, _, _ in kinds)
    seen: set[str] = set()
    while queue:
        model = queue.popleft()
        if model in seen:
            continue
        seen.add(model)
        group = group_of[model]
        for type_string in types.get(model, {}).values():
            for ref in _referenced_models(type_string, types):
                if ref not in group_of:
                    group_of[ref] = group
                if ref not in seen:
                    queue.append(ref)

    names: dict[str, str] = {}
    taken: dict[str, str] = {}
    for model in sorted(types):
        version, kind = _split_model_name(model)
        if group_of.get(model) == _META:
            name = f"{_META_PACKAGE}.{version or 'v1'}.{kind}"
        elif model == "VersionInfo":
            name = "io.k8s.apimachinery.pkg.version.Info"
        elif model in group_of:
            name = f"{_group_package(group_of[model])}.{version}.{kind}"
        else:
            name = f"io.k8s.client.{model}"  # unreachable from any kind: keep it unique
        if name in taken:  # two client models for one Go name: keep both, distinguishable
            name = f"{name}.{model}"
        taken[name] = model
        names[model] = name
    by_gvk = {value: model for model, value in gvk.items()}
    return _Catalog(names=names, gvk=gvk, by_gvk=by_gvk)


def model_for(group: str, version: str, kind: str) -> str | None:
    """The client model for a served kind: ("", "v1", "Event") → "CoreV1Event"; None when unknown."""
    return _catalog().by_gvk.get((group, version, kind))


def model_gvk(model_name: str) -> tuple[str, str, str] | None:
    """(group, version, kind) of a top-level kind model, None for sub-structures."""
    return _catalog().gvk.get(model_name)


def definition_name(model_name: str) -> str:
    """The OpenAPI definition name: V1Pod → io.k8s.api.core.v1.Pod."""
    try:
        return _catalog().names[model_name]
    except KeyError:
        raise BuiltinSchemaError(f"unknown model {model_name!r}") from None


@functools.cache
def _model_class(model_name: str) -> Any:
    stem = _model_modules().get(model_name)
    if stem is None:
        raise BuiltinSchemaError(f"unknown model {model_name!r}")
    module = importlib.import_module(f"{_MODELS_PKG}.{stem}")
    return getattr(module, model_name)


def field_description(model_name: str, json_key: str) -> str:
    """The field's description, e.g. ("V1ObjectMeta", "creationTimestamp"); "" when absent."""
    cls = _model_class(model_name)
    for attr, key in cls.attribute_map.items():
        if key == json_key:
            return str(cls.model_fields[attr].description or "") if attr in cls.model_fields else ""
    return ""


def _class_description(cls: Any) -> str:
    doc = cls.__doc__ or ""
    head = doc.split("Attributes:", 1)[0]
    return " ".join(line.strip() for line in head.strip().splitlines()).strip()


# --------------------------------------------------------------------------------------------------
# Compiled type trees, shared by the schema generator and the validator.
# --------------------------------------------------------------------------------------------------

_STR, _INT, _FLOAT, _BOOL, _TIME, _DATE, _BYTES, _INTSTR, _QUANTITY, _ANY, _MODEL, _LIST, _DICT = range(13)


@dataclass(frozen=True, slots=True)
class _T:
    kind: int
    model: str = ""  # _MODEL: the model name
    item: _T | None = None  # _LIST / _DICT: the element type


@dataclass(frozen=True, slots=True)
class _Field:
    attr: str
    key: str
    type: _T
    required: bool
    description: str


@dataclass(frozen=True, slots=True)
class _Model:
    name: str
    go_name: str  # "v1.Container", for decode error messages
    struct: str  # "Container"
    description: str
    fields: dict[str, _Field]  # by JSON key
    required: tuple[str, ...]


_SCALARS = {
    "str": _T(_STR),
    "int": _T(_INT),
    "float": _T(_FLOAT),
    "bool": _T(_BOOL),
    "datetime": _T(_TIME),
    "date": _T(_DATE),
    "bytes": _T(_BYTES),
    "bytearray": _T(_BYTES),
}


def _parse_type(type_string: str, annotation: str, quantity: bool) -> _T:
    type_string = type_string.strip()
    if type_string.startswith("List[") and type_string.endswith("]"):
        return _T(_LIST, item=_parse_type(type_string[5:-1], "", quantity))
    if type_string.startswith("Dict[") and type_string.endswith("]"):
        _, _, value = type_string[5:-1].partition(",")
        return _T(_DICT, item=_parse_type(value, "", quantity))
    if type_string == "str" and quantity:
        return _T(_QUANTITY)
    if type_string in _SCALARS:
        return _SCALARS[type_string]
    if type_string == "object":
        # IntOrString fields are typed `object` but annotated Union[StrictInt, StrictStr].
        if "int" in annotation and "str" in annotation and "Dict" not in annotation and "float" not in annotation:
            return _T(_INTSTR)
        return _T(_ANY)
    return _T(_MODEL, model=type_string)


@functools.cache
def _compiled(model_name: str) -> _Model:
    cls = _model_class(model_name)
    fields: dict[str, _Field] = {}
    required: list[str] = []
    for attr, type_string in cls.openapi_types.items():
        key = cls.attribute_map.get(attr, attr)
        info = cls.model_fields.get(attr)
        annotation = str(info.annotation) if info is not None else ""
        ftype = _parse_type(type_string, annotation, (model_name, attr) in _QUANTITY_FIELDS)
        is_required = bool(info is not None and info.is_required())
        description = str(info.description or "") if info is not None else ""
        fields[key] = _Field(attr, key, ftype, is_required, description)
        if is_required:
            required.append(key)
    version, struct = _split_model_name(model_name)
    return _Model(
        name=model_name,
        go_name=f"{version or 'v1'}.{struct}",
        struct=struct,
        description=_class_description(cls),
        fields=fields,
        required=tuple(required),
    )


# --------------------------------------------------------------------------------------------------
# OpenAPI v3 schemas.
# --------------------------------------------------------------------------------------------------


# Named and shaped like upstream's v3 (`OpenAPIV3OneOfTypes`, no `type`), so `kubectl explain` shows
# `<IntOrString>` and `<map[string]Quantity>`.
INT_OR_STRING = "io.k8s.apimachinery.pkg.util.intstr.IntOrString"
QUANTITY = "io.k8s.apimachinery.pkg.api.resource.Quantity"
_SCALAR_COMPONENTS: dict[int, tuple[str, JSON]] = {
    _INTSTR: (
        INT_OR_STRING,
        {
            "description": "IntOrString is a type that can hold an int32 or a string.  When used in JSON or YAML "
            "marshalling and unmarshalling, it produces or consumes the inner type.  This allows you to have, for "
            "example, a JSON field that can accept a name or number.",
            "format": "int-or-string",
            "oneOf": [{"type": "integer"}, {"type": "string"}],
            "x-kubernetes-int-or-string": True,
        },
    ),
    _QUANTITY: (
        QUANTITY,
        {
            "description": "Quantity is a fixed-point representation of a number. It provides convenient "
            "marshaling/unmarshaling in JSON and YAML, in addition to String() and AsInt64() accessors.",
            "oneOf": [{"type": "string"}, {"type": "number"}],
            "x-kubernetes-int-or-string": True,
        },
    ),
}


def _ref(model: str) -> JSON:
    return {"$ref": f"#/components/schemas/{definition_name(model)}"}


def _type_schema(t: _T) -> JSON:
    kind = t.kind
    if kind == _STR:
        return {"type": "string"}
    if kind == _INT:
        return {"type": "integer"}
    if kind == _FLOAT:
        return {"type": "number", "format": "double"}
    if kind == _BOOL:
        return {"type": "boolean"}
    if kind == _TIME:
        return {"type": "string", "format": "date-time"}
    if kind == _DATE:
        return {"type": "string", "format": "date"}
    if kind == _BYTES:
        return {"type": "string", "format": "byte"}
    if kind == _INTSTR:
        return {"$ref": f"#/components/schemas/{INT_OR_STRING}"}
    if kind == _QUANTITY:
        return {"$ref": f"#/components/schemas/{QUANTITY}"}
    if kind == _ANY:
        return {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
    if kind == _MODEL:
        return _ref(t.model)
    assert t.item is not None
    if kind == _LIST:
        return {"type": "array", "items": _type_schema(t.item)}
    return {"type": "object", "additionalProperties": _type_schema(t.item)}


# The client drops descriptions of `$ref` fields; these two are on every kind and `kubectl explain` shows them.
_REF_DESCRIPTIONS = {
    "V1ObjectMeta": "Standard object's metadata. More info: "
    "https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#metadata",
    "V1ListMeta": "Standard list metadata. More info: "
    "https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#types-kinds",
}


def _field_schema(f: _Field) -> JSON:
    schema = _type_schema(f.type)
    if "$ref" in schema:
        # The real server wraps references so a field can carry its own description.
        description = f.description or (_REF_DESCRIPTIONS.get(f.type.model, "") if f.key == "metadata" else "")
        return {"allOf": [schema], "description": description} if description else schema
    if f.description:
        schema = {"description": f.description, **schema}
    return schema


# The field name that holds a model, as `patching._list_strategy` keys its decisions (default: the model name).
_PATCH_PARENT = {
    "V1ObjectMeta": "metadata",
    "V1Container": "containers",
    "V1EphemeralContainer": "ephemeralContainers",
    "V1ServiceSpec": "spec",
}


def _patch_extensions(model_name: str, f: _Field) -> JSON:
    """`x-kubernetes-patch-strategy`/`-merge-key` of a list field, exactly as the server merges it.

    kubectl builds client-side-apply strategic merge patches from these (`NewPatchMetaFromOpenAPIV3`):
    without them every list is atomic to it, so removing a container or env var from a manifest would
    produce a patch that the server's merge-by-key keeps the removed item under.
    """
    if f.type.kind != _LIST or f.type.item is None:
        return {}
    from .patching import _list_strategy  # the server's own table, so client and server agree

    strategy = _list_strategy(f.key, _PATCH_PARENT.get(model_name, model_name), builtin=True)
    if strategy is None:
        return {}
    if strategy == "":
        return {"x-kubernetes-patch-strategy": "merge"}
    if f.type.item.kind != _MODEL:
        return {}
    return {"x-kubernetes-patch-merge-key": strategy, "x-kubernetes-patch-strategy": "merge"}


@functools.cache
def _schema_cached(model_name: str) -> JSON:
    model = _compiled(model_name)
    schema: JSON = {"type": "object"}
    if model.description:
        schema["description"] = model.description
    schema["properties"] = {
        key: {**_field_schema(f), **_patch_extensions(model_name, f)} for key, f in model.fields.items()
    }
    if model.required:
        schema["required"] = list(model.required)
    gvk = model_gvk(model_name) or (("", "v1", "Status") if model_name == "V1Status" else None)
    if gvk is not None:
        group, version, kind = gvk
        schema["x-kubernetes-group-version-kind"] = [{"group": group, "kind": kind, "version": version}]
    return schema


def model_schema(model_name: str) -> JSON | None:
    """The OpenAPI v3 schema of one model (references to other models are `$ref`s); None if unknown.

    The result is cached and shared: do not mutate it.
    """
    if model_name not in _model_modules():
        return None
    return _schema_cached(model_name)


@functools.cache
def _model_refs(model_name: str) -> tuple[tuple[str, ...], frozenset[int]]:
    """Models a model references, and which named scalar components (IntOrString, Quantity) it uses."""
    out: list[str] = []
    scalars: set[int] = set()

    def visit(t: _T) -> None:
        if t.kind == _MODEL:
            out.append(t.model)
        elif t.kind in _SCALAR_COMPONENTS:
            scalars.add(t.kind)
        elif t.item is not None:
            visit(t.item)

    for f in _compiled(model_name).fields.values():
        visit(f.type)
    return tuple(out), frozenset(scalars)


def component_schemas(model_names: Iterable[str]) -> dict[str, JSON]:
    """The named schemas of the given models and everything they reference, by definition name.

    This is the shape of `components.schemas` in the real server's per-GroupVersion documents.
    """
    known = _model_modules()
    out: dict[str, JSON] = {}
    queue = deque(m for m in model_names)
    seen: set[str] = set()
    while queue:
        model = queue.popleft()
        if model in seen:
            continue
        seen.add(model)
        if model not in known:
            raise BuiltinSchemaError(f"unknown model {model!r}")
        out[definition_name(model)] = _schema_cached(model)
        refs, scalars = _model_refs(model)
        queue.extend(r for r in refs if r not in seen)
        for kind in scalars:
            name, schema = _SCALAR_COMPONENTS[kind]
            out[name] = schema
    return out


# --------------------------------------------------------------------------------------------------
# Strict decoding: unknown fields, JSON type mismatches, missing required fields.
# --------------------------------------------------------------------------------------------------

_RFC3339_RE = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$")


def _json_kind(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def _go_type(t: _T, key: str) -> str:
    kind = t.kind
    if kind in (_STR, _DATE):
        return "string"
    if kind == _INT:
        return "int64" if key in _INT64_FIELDS else "int32"
    if kind == _FLOAT:
        return "float64"
    if kind == _BOOL:
        return "bool"
    if kind == _TIME:
        return "v1.Time"
    if kind == _BYTES:
        return "[]uint8"
    if kind == _INTSTR:
        return "intstr.IntOrString"
    if kind == _QUANTITY:
        return "resource.Quantity"
    if kind == _MODEL:
        return _compiled(t.model).go_name
    if kind == _ANY:
        return "interface {}"
    assert t.item is not None
    return ("[]" if kind == _LIST else "map[string]") + _go_type(t.item, key)


def _scalar_ok(t: _T, value: Any) -> bool:
    kind = t.kind
    if kind in (_STR, _DATE, _BYTES):
        return isinstance(value, str)
    if kind == _INT:
        return (isinstance(value, int) and not isinstance(value, bool)) or (
            isinstance(value, float) and value.is_integer()
        )
    if kind == _FLOAT:
        return isinstance(value, int | float) and not isinstance(value, bool)
    if kind == _BOOL:
        return isinstance(value, bool)
    if kind == _TIME:
        return isinstance(value, str)
    if kind in (_INTSTR, _QUANTITY):
        return isinstance(value, str | int | float) and not isinstance(value, bool)
    return True


class _Walk:
    """One pass over an object: collects unknown fields, type errors and missing required fields."""

    __slots__ = ("missing", "prune", "types", "unknown", "want_missing", "want_types")

    def __init__(self, prune: bool, want_types: bool, want_missing: bool) -> None:
        self.prune = prune
        self.want_types = want_types
        self.want_missing = want_missing
        self.unknown: list[str] = []
        self.types: list[str] = []
        self.missing: list[str] = []

    def model(self, obj: JSON, model: _Model, path: str, go_path: str) -> None:
        fields = model.fields
        doomed: list[str] | None = None
        for key, value in obj.items():
            f = fields.get(key)
            if f is None:
                self.unknown.append(f"{path}.{key}" if path else key)
                if self.prune:
                    (doomed := doomed or []).append(key)
                continue
            if value is None:
                continue  # JSON null decodes to the zero value of any Go type
            child_go = f"{go_path}.{key}" if go_path else key
            self.value(value, f.type, f"{path}.{key}" if path else key, child_go, model, key)
        if doomed:
            for key in doomed:
                del obj[key]
        if self.want_missing and model.required:
            for key in model.required:
                if obj.get(key) is None:
                    self.missing.append(f"{path}.{key}" if path else key)

    def value(self, value: Any, t: _T, path: str, go_path: str, parent: _Model, key: str) -> None:
        kind = t.kind
        if kind == _MODEL:
            if isinstance(value, dict):
                self.model(value, _compiled(t.model), path, go_path)
            else:
                self.type_error(value, t, go_path, parent, key)
        elif kind == _LIST:
            if isinstance(value, list):
                assert t.item is not None
                item = t.item
                if item.kind in (_MODEL, _LIST, _DICT):
                    for i, element in enumerate(value):
                        if element is not None:
                            self.value(element, item, f"{path}[{i}]", go_path, parent, key)
                elif self.want_types:
                    for element in value:
                        if element is not None and not _scalar_ok(item, element):
                            self.type_error(element, item, go_path, parent, key)
                            break
            else:
                self.type_error(value, t, go_path, parent, key)
        elif kind == _DICT:
            if isinstance(value, dict):
                assert t.item is not None
                item = t.item
                if item.kind in (_MODEL, _LIST, _DICT):
                    for k, element in value.items():
                        if element is not None:
                            self.value(element, item, f"{path}.{k}", go_path, parent, key)
                elif self.want_types:
                    for element in value.values():
                        if element is not None and not _scalar_ok(item, element):
                            self.type_error(element, item, go_path, parent, key)
                            break
            else:
                self.type_error(value, t, go_path, parent, key)
        elif self.want_types:
            if not _scalar_ok(t, value):
                self.type_error(value, t, go_path, parent, key)
            elif kind == _TIME and not _RFC3339_RE.match(value):
                self.types.append(f'parsing time "{value}" as "2006-01-02T15:04:05Z07:00": cannot parse')

    def type_error(self, value: Any, t: _T, go_path: str, parent: _Model, key: str) -> None:
        if self.want_types:
            self.types.append(
                f"json: cannot unmarshal {_json_kind(value)} into Go struct field "
                f"{parent.struct}.{go_path} of type {_go_type(t, key)}"
            )


class BuiltinValidator:
    """Strict-decoding checks of built-in objects against the client's models.

    All methods take the object as a plain JSON dict and a client model name (`V1Pod`, see
    `model_for`). Paths are reported like the real server's strict decoder: `spec.containers[0].foo`.
    """

    def unknown_fields(self, obj: JSON, model_name: str) -> list[str]:
        """Paths of fields the kind does not declare (what `fieldValidation=Strict` rejects)."""
        walk = _Walk(prune=False, want_types=False, want_missing=False)
        walk.model(obj, _compiled(model_name), "", "")
        return walk.unknown

    def prune(self, obj: JSON, model_name: str) -> list[str]:
        """Remove undeclared fields in place (what `Ignore`/`Warn` do); returns the removed paths."""
        walk = _Walk(prune=True, want_types=False, want_missing=False)
        walk.model(obj, _compiled(model_name), "", "")
        return walk.unknown

    def prune_checking_types(self, obj: JSON, model_name: str) -> tuple[list[str], list[str]]:
        """`prune` and `type_errors` in one pass: (removed unknown paths, Go JSON decoding errors)."""
        walk = _Walk(prune=True, want_types=True, want_missing=False)
        walk.model(obj, _compiled(model_name), "", "")
        return walk.unknown, walk.types

    def type_errors(self, obj: JSON, model_name: str) -> list[str]:
        """Go JSON decoding errors, e.g. `json: cannot unmarshal string into Go struct field
        ObjectMeta.metadata.generation of type int64`. The real server answers 400 BadRequest with
        the first one, wrapped by `decode_error_message`."""
        walk = _Walk(prune=False, want_types=True, want_missing=False)
        walk.model(obj, _compiled(model_name), "", "")
        return walk.types

    def missing_required(self, obj: JSON, model_name: str) -> list[str]:
        """Paths of required fields that are absent or null (`spec.containers[0].name`).

        Run it after server-side defaulting: some required fields (e.g. status sub-structures) are
        filled by the server, and the strict client rejects objects that still lack them.
        """
        walk = _Walk(prune=False, want_types=False, want_missing=True)
        walk.model(obj, _compiled(model_name), "", "")
        return walk.missing

    def check(self, obj: JSON, model_name: str, *, prune: bool = False) -> tuple[list[str], list[str], list[str]]:
        """All three checks in one pass: (unknown paths, type errors, missing required paths)."""
        walk = _Walk(prune=prune, want_types=True, want_missing=True)
        walk.model(obj, _compiled(model_name), "", "")
        return walk.unknown, walk.types, walk.missing

    def normalize_quantities(self, obj: JSON, model_name: str) -> None:
        """Render numeric resource quantities as strings (`cpu: 1` → `"1"`), as the server stores them."""
        _normalize(obj, _compiled(model_name))


_NESTED_OR_QUANTITY = (_MODEL, _LIST, _DICT, _QUANTITY)


def _normalize(obj: JSON, model: _Model) -> None:
    for key, value in obj.items():
        f = model.fields.get(key)
        if f is None or value is None:
            continue
        obj[key] = _normalize_value(value, f.type)


def _normalize_value(value: Any, t: _T) -> Any:
    if t.kind == _QUANTITY and isinstance(value, int | float) and not isinstance(value, bool):
        return str(int(value)) if isinstance(value, int) or value.is_integer() else repr(value)
    if t.kind == _MODEL and isinstance(value, dict):
        _normalize(value, _compiled(t.model))
    elif t.kind == _LIST and isinstance(value, list) and t.item is not None:
        if t.item.kind in (_MODEL, _LIST, _DICT, _QUANTITY):
            value[:] = [_normalize_value(v, t.item) for v in value]
    elif t.kind == _DICT and isinstance(value, dict) and t.item is not None and t.item.kind in _NESTED_OR_QUANTITY:
        for k, v in value.items():
            value[k] = _normalize_value(v, t.item)
    return value


def unknown_fields_message(paths: Iterable[str]) -> str:
    """The strict decoder's message: `strict decoding error: unknown field "spec.foo", unknown field "x"`."""
    return "strict decoding error: " + ", ".join(f'unknown field "{p}"' for p in paths)


def decode_error_message(kind: str, version: str, detail: str) -> str:
    """The 400 message for an undecodable body: `Job in version "v1" cannot be handled as a Job: <detail>`."""
    return f'{kind} in version "{version}" cannot be handled as a {kind}: {detail}'
