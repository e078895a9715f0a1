"""OpenAPI v3 documents for kubectl: apply validation, field-validation support detection, `kubectl explain`.

Why: `kubectl apply` validates strictly by default and exits with `failed to download openapi` unless
`/openapi/v3` answers (finding 1). kubectl then decides whether the server supports
`fieldValidation` by looking, in the GroupVersion's document, for a path whose `patch` operation
carries `x-kubernetes-group-version-kind` equal to the object's GVK and an *operation-level*
`fieldValidation` query parameter (C2, `query_param_verifier_v3.go`). The first matching patch
operation decides, so every patch operation of a kind (main resource and subresources) carries it.
`kubectl explain` reads `components.schemas`, finding the kind's schema by its
`x-kubernetes-group-version-kind` extension.

Key design decisions:

- One document per GroupVersion (`api/v1`, `apis/batch/v1`, `apis/example.com/v1`), shaped like the
  real server's: path-level `name`/`namespace` parameters, operation-level query parameters,
  operationIds such as `patchBatchV1NamespacedJob`, responses that `$ref` the component schemas.
- Custom resources use the CRD version's `openAPIV3Schema` (with descriptions, so `explain` shows them)
  under the real server's definition name (`<reversed group>.<version>.<Kind>`), with `apiVersion`,
  `kind` and a `metadata` reference to ObjectMeta put in place. Built-ins come from `builtin_schemas`.
- References are document-local, so every document carries the ObjectMeta/ListMeta/Status/
  DeleteOptions closure it points to.
- The index's `hash` is the SHA-512 (upper-case hex, as upstream) of the canonical JSON of the
  document; kubectl caches documents by URL, so the hash must change whenever the document does.
  Hashes are memoised per document object: documents must not be mutated once built.
"""

from __future__ import annotations

import copy
import functools
import hashlib
import json
from collections.abc import Iterable, Mapping
from typing import Any

from . import builtin_schemas
from .registry import ResourceType

JSON = dict[str, Any]

__all__ = [
    "KUBERNETES_VERSION",
    "OpenAPIError",
    "build_document",
    "build_index",
    "cr_definition_name",
    "discovery_document",
    "document_hash",
    "document_key",
]

KUBERNETES_VERSION = "v1.35.0"

_OBJECT_META = "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"
_LIST_META = "io.k8s.apimachinery.pkg.apis.meta.v1.ListMeta"
_STATUS = "io.k8s.apimachinery.pkg.apis.meta.v1.Status"
_DELETE_OPTIONS = "io.k8s.apimachinery.pkg.apis.meta.v1.DeleteOptions"
_PATCH = "io.k8s.apimachinery.pkg.apis.meta.v1.Patch"

_API_VERSION_DESCRIPTION = (
    "APIVersion defines the versioned schema of this representation of an object. Servers should convert "
    "recognized schemas to the latest internal value, and may reject unrecognized values. More info: "
    "https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#resources"
)
_KIND_DESCRIPTION = (
    "Kind is a string value representing the REST resource this object represents. Servers may infer this from "
    "the endpoint the client submits requests to. Cannot be updated. In CamelCase. More info: "
    "https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#types-kinds"
)
_METADATA_DESCRIPTION = (
    "Standard object's metadata. More info: "
    "https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#metadata"
)
_LIST_METADATA_DESCRIPTION = (
    "Standard list metadata. More info: "
    "https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#types-kinds"
)
_PATCH_SCHEMA: JSON = {
    "description": "Patch is provided to give a concrete name and type to the Kubernetes PATCH request body.",
    "type": "object",
}


class OpenAPIError(Exception):
    """A resource type that cannot be described (e.g. types from two GroupVersions in one document)."""


# --------------------------------------------------------------------------------------------------
# Parameters
# --------------------------------------------------------------------------------------------------


def _query(name: str, kind: str, description: str) -> JSON:
    return {"name": name, "in": "query", "description": description, "schema": {"type": kind, "uniqueItems": True}}


_P_PRETTY = _query("pretty", "string", "If 'true', then the output is pretty printed.")
_P_DRY_RUN = _query(
    "dryRun",
    "string",
    "When present, indicates that modifications should not be persisted. Valid values are: - All: all dry run "
    "stages will be processed",
)
_P_FIELD_MANAGER = _query(
    "fieldManager",
    "string",
    "fieldManager is a name associated with the actor or entity that is making these changes.",
)
_P_FIELD_VALIDATION = _query(
    "fieldValidation",
    "string",
    "fieldValidation instructs the server on how to handle objects in the request (POST/PUT/PATCH) containing "
    "unknown or duplicate fields. Valid values are: - Ignore: silently drop unknown fields. - Warn: send a "
    "warning via the standard warning response header for each unknown field. - Strict: fail the request with a "
    "BadRequest error if any unknown fields would be dropped.",
)
_P_FORCE = _query(
    "force",
    "boolean",
    'Force is going to "force" Apply requests. It means user will re-acquire conflicting fields owned by other '
    "people. Force flag must be unset for non-apply patch requests.",
)
_LIST_PARAMS = [
    _query("allowWatchBookmarks", "boolean", 'allowWatchBookmarks requests watch events with type "BOOKMARK".'),
    _query("continue", "string", "The continue option should be set when retrieving more results from the server."),
    _query("fieldSelector", "string", "A selector to restrict the list of returned objects by their fields."),
    _query("labelSelector", "string", "A selector to restrict the list of returned objects by their labels."),
    _query("limit", "integer", "limit is a maximum number of responses to return for a list call."),
    _query(
        "resourceVersion",
        "string",
        "resourceVersion sets a constraint on what resource versions a request may be served from.",
    ),
    _query(
        "resourceVersionMatch",
        "string",
        "resourceVersionMatch determines how resourceVersion is applied to list calls.",
    ),
    _query("sendInitialEvents", "boolean", "`sendInitialEvents=true` may be set together with `watch=true`."),
    _query("timeoutSeconds", "integer", "Timeout for the list/watch call."),
    _query("watch", "boolean", "Watch for changes to the described resources and return them as a stream."),
]
_DELETE_PARAMS = [
    _P_DRY_RUN,
    _query("gracePeriodSeconds", "integer", "The duration in seconds before the object should be deleted."),
    _query("orphanDependents", "boolean", "Deprecated: please use the PropagationPolicy."),
    _query(
        "propagationPolicy",
        "string",
        "Whether and how garbage collection will be performed. Acceptable values are: 'Orphan', 'Background', "
        "'Foreground'.",
    ),
]
_LOG_PARAMS = [
    _query("container", "string", "The container for which to stream logs."),
    _query("follow", "boolean", "Follow the log stream of the pod."),
    _query("limitBytes", "integer", "If set, the number of bytes to read from the server before terminating."),
    _query("previous", "boolean", "Return previous terminated container logs."),
    _query("sinceSeconds", "integer", "A relative time in seconds before the current time to show logs from."),
    _query("tailLines", "integer", "If set, the number of lines from the end of the logs to show."),
    _query("timestamps", "boolean", "If true, add an RFC3339 timestamp at the beginning of every line."),
]
_WRITE_PARAMS = [_P_DRY_RUN, _P_FIELD_MANAGER, _P_FIELD_VALIDATION]
_PATCH_PARAMS = [*_WRITE_PARAMS, _P_FORCE]


def _path_param(name: str, description: str) -> JSON:
    return {"name": name, "in": "path", "description": description, "required": True, "schema": {"type": "string"}}


_P_NAME = "name of the {kind}"
_P_NAMESPACE = _path_param("namespace", "object name and auth scope, such as for teams and projects")


# --------------------------------------------------------------------------------------------------
# Naming
# --------------------------------------------------------------------------------------------------


def document_key(group: str, version: str) -> str:
    """The index key of a GroupVersion's document: `api/v1`, `apis/batch/v1`."""
    return f"apis/{group}/{version}" if group else f"api/{version}"


def cr_definition_name(group: str, version: str, kind: str) -> str:
    """The real server's definition name for a custom resource: `io.dops.v1alpha1.DelegatedOperation`."""
    return ".".join(reversed(group.split("."))) + f".{version}.{kind}"


def _operation_group(group: str, version: str) -> str:
    """`""` → `CoreV1`, `batch` → `BatchV1`, `rbac.authorization.k8s.io` → `RbacAuthorizationV1`."""
    if not group:
        name = "Core"
    else:
        trimmed = group.removesuffix(".k8s.io")
        name = "".join(part[:1].upper() + part[1:] for part in trimmed.replace("-", ".").split(".") if part)
    return name + version[:1].upper() + version[1:]


def _ref(name: str) -> JSON:
    return {"$ref": f"#/components/schemas/{name}"}


def _content(schema: JSON, types: Iterable[str] = ("application/json", "application/yaml")) -> JSON:
    return {media: {"schema": schema} for media in types}


def _responses(codes: Mapping[str, str], schema: JSON | None) -> JSON:
    out: JSON = {}
    for code, description in codes.items():
        response: JSON = {"description": description}
        if schema is not None:
            response["content"] = _content(schema)
        out[code] = response
    out["401"] = {"description": "Unauthorized"}
    return out


# --------------------------------------------------------------------------------------------------
# Paths
# --------------------------------------------------------------------------------------------------


def _gvk(group: str, version: str, kind: str) -> JSON:
    return {"group": group, "version": version, "kind": kind}


def _operation(
    action: str,
    operation_id: str,
    description: str,
    tag: str,
    gvk: JSON,
    parameters: list[JSON],
    responses: JSON,
    request_body: JSON | None = None,
) -> JSON:
    op: JSON = {"tags": [tag], "description": description, "operationId": operation_id}
    if parameters:
        op["parameters"] = list(parameters)
    if request_body is not None:
        op["requestBody"] = request_body
    op["responses"] = responses
    op["x-kubernetes-action"] = action
    op["x-kubernetes-group-version-kind"] = dict(gvk)
    return op


def _add_paths(
    paths: JSON,
    rtype: ResourceType,
    kind_schema: JSON,
    list_schema: JSON,
    subresource_schemas: Mapping[str, tuple[JSON, JSON]],
    strategic_merge: bool,
) -> None:
    group, version, kind = rtype.group, rtype.version, rtype.kind
    prefix = f"/apis/{group}/{version}" if group else f"/api/{version}"
    op_group = _operation_group(group, version)
    tag = op_group[:1].lower() + op_group[1:]
    gvk = _gvk(group, version, kind)
    verbs = set(rtype.verbs)
    scope = "Namespaced" if rtype.namespaced else ""
    collection = f"{prefix}/namespaces/{{namespace}}/{rtype.plural}" if rtype.namespaced else f"{prefix}/{rtype.plural}"
    item = f"{collection}/{{name}}"
    name_param = _path_param("name", _P_NAME.format(kind=kind))
    scope_params = [_P_NAMESPACE] if rtype.namespaced else []

    patch_types = ["application/apply-patch+yaml", "application/json-patch+json", "application/merge-patch+json"]
    if strategic_merge:
        patch_types.append("application/strategic-merge-patch+json")
    patch_body = {"content": _content(_ref(_PATCH), patch_types), "required": True}
    write_body = {"content": _content(kind_schema, ("*/*",)), "required": True}
    delete_body = {"content": _content(_ref(_DELETE_OPTIONS), ("*/*",))}

    ops: JSON = {}
    if "list" in verbs:
        ops["get"] = _operation(
            "list",
            f"list{op_group}{scope}{kind}",
            f"list or watch objects of kind {kind}",
            tag,
            gvk,
            _LIST_PARAMS,
            _responses({"200": "OK"}, list_schema),
        )
    if "create" in verbs:
        ops["post"] = _operation(
            "post",
            f"create{op_group}{scope}{kind}",
            f"create a {kind}",
            tag,
            gvk,
            _WRITE_PARAMS,
            _responses({"200": "OK", "201": "Created", "202": "Accepted"}, kind_schema),
            write_body,
        )
    if "deletecollection" in verbs:
        ops["delete"] = _operation(
            "deletecollection",
            f"delete{op_group}Collection{scope}{kind}",
            f"delete collection of {kind}",
            tag,
            gvk,
            [*_LIST_PARAMS, *_DELETE_PARAMS[1:], _P_DRY_RUN],
            _responses({"200": "OK"}, _ref(_STATUS)),
            delete_body,
        )
    if ops:
        paths[collection] = {**ops, "parameters": [*scope_params, _P_PRETTY]}

    ops = {}
    if "get" in verbs:
        ops["get"] = _operation(
            "get",
            f"read{op_group}{scope}{kind}",
            f"read the specified {kind}",
            tag,
            gvk,
            [],
            _responses({"200": "OK"}, kind_schema),
        )
    if "update" in verbs:
        ops["put"] = _operation(
            "put",
            f"replace{op_group}{scope}{kind}",
            f"replace the specified {kind}",
            tag,
            gvk,
            _WRITE_PARAMS,
            _responses({"200": "OK", "201": "Created"}, kind_schema),
            write_body,
        )
    if "patch" in verbs:
        ops["patch"] = _operation(
            "patch",
            f"patch{op_group}{scope}{kind}",
            f"partially update the specified {kind}",
            tag,
            gvk,
            _PATCH_PARAMS,
            _responses({"200": "OK", "201": "Created"}, kind_schema),
            patch_body,
        )
    if "delete" in verbs:
        ops["delete"] = _operation(
            "delete",
            f"delete{op_group}{scope}{kind}",
            f"delete a {kind}",
            tag,
            gvk,
            _DELETE_PARAMS,
            _responses({"200": "OK", "202": "Accepted"}, kind_schema),
            delete_body,
        )
    if ops:
        paths[item] = {**ops, "parameters": [name_param, *scope_params, _P_PRETTY]}

    if rtype.namespaced and "list" in verbs:
        paths[f"{prefix}/{rtype.plural}"] = {
            "get": _operation(
                "list",
                f"list{op_group}{kind}ForAllNamespaces",
                f"list or watch objects of kind {kind}",
                tag,
                gvk,
                _LIST_PARAMS,
                _responses({"200": "OK"}, list_schema),
            ),
            "parameters": [_P_PRETTY],
        }

    for sub in sorted(rtype.subresources):
        suffix = sub[:1].upper() + sub[1:]
        sub_path = f"{item}/{sub}"
        params = [name_param, *scope_params, _P_PRETTY]
        if sub == "log":
            paths[sub_path] = {
                "get": _operation(
                    "get",
                    f"read{op_group}{scope}{kind}Log",
                    f"read log of the specified {kind}",
                    tag,
                    gvk,
                    _LOG_PARAMS,
                    {
                        "200": {"description": "OK", "content": {"text/plain": {"schema": {"type": "string"}}}},
                        "401": {"description": "Unauthorized"},
                    },
                ),
                "parameters": params,
            }
            continue
        if sub not in subresource_schemas:
            continue
        sub_schema, sub_gvk = subresource_schemas[sub]
        sub_ops: JSON = {
            "get": _operation(
                "get",
                f"read{op_group}{scope}{kind}{suffix}",
                f"read {sub} of the specified {kind}",
                tag,
                sub_gvk,
                [],
                _responses({"200": "OK"}, sub_schema),
            ),
            "put": _operation(
                "put",
                f"replace{op_group}{scope}{kind}{suffix}",
                f"replace {sub} of the specified {kind}",
                tag,
                sub_gvk,
                _WRITE_PARAMS,
                _responses({"200": "OK", "201": "Created"}, sub_schema),
                {"content": _content(sub_schema, ("*/*",)), "required": True},
            ),
            # Every patch operation of the kind carries fieldValidation: kubectl's verifier stops at
            # the first patch operation whose GVK matches, in random (Go map) order.
            "patch": _operation(
                "patch",
                f"patch{op_group}{scope}{kind}{suffix}",
                f"partially update {sub} of the specified {kind}",
                tag,
                sub_gvk,
                _PATCH_PARAMS,
                _responses({"200": "OK", "201": "Created"}, sub_schema),
                patch_body,
            ),
        }
        paths[sub_path] = {**sub_ops, "parameters": params}


# --------------------------------------------------------------------------------------------------
# Schemas
# --------------------------------------------------------------------------------------------------


def _cr_schemas(rtype: ResourceType) -> tuple[str, str, JSON, JSON]:
    name = cr_definition_name(rtype.group, rtype.version, rtype.kind)
    schema: JSON = (
        copy.deepcopy(dict(rtype.schema))
        if isinstance(rtype.schema, Mapping)
        else {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
    )
    schema["type"] = "object"
    properties = schema.get("properties")
    if not isinstance(properties, dict):
        properties = schema["properties"] = {}
    properties["apiVersion"] = {"description": _API_VERSION_DESCRIPTION, "type": "string"}
    properties["kind"] = {"description": _KIND_DESCRIPTION, "type": "string"}
    properties["metadata"] = {"allOf": [_ref(_OBJECT_META)], "description": _METADATA_DESCRIPTION}
    schema["x-kubernetes-group-version-kind"] = [{"group": rtype.group, "kind": rtype.kind, "version": rtype.version}]

    list_name = f"{name}List"
    list_schema: JSON = {
        "description": f"{rtype.kind}List is a list of {rtype.kind}",
        "type": "object",
        "required": ["items"],
        "properties": {
            "apiVersion": {"description": _API_VERSION_DESCRIPTION, "type": "string"},
            "items": {
                "description": f"List of {rtype.plural}. More info: "
                "https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md",
                "type": "array",
                "items": _ref(name),
            },
            "kind": {"description": _KIND_DESCRIPTION, "type": "string"},
            "metadata": {"allOf": [_ref(_LIST_META)], "description": _LIST_METADATA_DESCRIPTION},
        },
        "x-kubernetes-group-version-kind": [{"group": rtype.group, "kind": rtype.list_kind, "version": rtype.version}],
    }
    return name, list_name, schema, list_schema


def _untyped_schema(rtype: ResourceType, kind: str) -> JSON:
    return {
        "type": "object",
        "x-kubernetes-preserve-unknown-fields": True,
        "x-kubernetes-group-version-kind": [{"group": rtype.group, "kind": kind, "version": rtype.version}],
    }


def build_document(group: str, version: str, types: list[ResourceType]) -> JSON:
    """The OpenAPI v3 document of one GroupVersion, as served at `/openapi/v3/<document_key>`."""
    schemas: JSON = {}
    paths: JSON = {}
    models: list[str] = ["V1ObjectMeta", "V1ListMeta", "V1Status", "V1DeleteOptions"]
    local: JSON = {}  # schemas not derived from client models
    for rtype in types:
        if rtype.group != group or rtype.version != version:
            raise OpenAPIError(f"{rtype.qualified_name}/{rtype.version} does not belong to {group}/{version}")
        subresources: dict[str, tuple[JSON, JSON]] = {}
        gvk = _gvk(rtype.group, rtype.version, rtype.kind)
        if rtype.is_custom or rtype.schema is not None:
            name, list_name, schema, list_schema = _cr_schemas(rtype)
            local[name] = schema
            local[list_name] = list_schema
            strategic_merge = False
        else:
            strategic_merge = True
            model = builtin_schemas.model_for(rtype.group, rtype.version, rtype.kind)
            list_model = builtin_schemas.model_for(rtype.group, rtype.version, rtype.list_kind)
            if model is not None:
                name = builtin_schemas.definition_name(model)
                models.append(model)
            else:
                name = cr_definition_name(rtype.group or "core", rtype.version, rtype.kind)
                local[name] = _untyped_schema(rtype, rtype.kind)
            if list_model is not None:
                list_name = builtin_schemas.definition_name(list_model)
                models.append(list_model)
            else:
                list_name = f"{name}List"
                local[list_name] = _untyped_schema(rtype, rtype.list_kind)
            if "scale" in rtype.subresources and (scale := builtin_schemas.model_for("autoscaling", "v1", "Scale")):
                models.append(scale)
                subresources["scale"] = (
                    _ref(builtin_schemas.definition_name(scale)),
                    _gvk("autoscaling", "v1", "Scale"),
                )
        if "status" in rtype.subresources:
            subresources["status"] = (_ref(name), gvk)
        _add_paths(paths, rtype, _ref(name), _ref(list_name), subresources, strategic_merge)
    schemas.update(builtin_schemas.component_schemas(models))
    schemas[_PATCH] = _PATCH_SCHEMA
    schemas.update(local)
    return {
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": KUBERNETES_VERSION},
        "paths": dict(sorted(paths.items())),
        "components": {"schemas": dict(sorted(schemas.items()))},
    }


# --------------------------------------------------------------------------------------------------
# Index and hashes
# --------------------------------------------------------------------------------------------------

# id(doc) → (doc, hash). Holding the document keeps its id unique while the entry lives.
_HASHES: dict[int, tuple[JSON, str]] = {}
_HASH_CACHE_SIZE = 128


def document_hash(doc: Mapping[str, Any]) -> str:
    """SHA-512 (upper-case hex) of the document's canonical JSON; memoised per document object."""
    cached = _HASHES.get(id(doc))
    if cached is not None and cached[0] is doc:
        return cached[1]
    encoded = json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    digest = hashlib.sha512(encoded).hexdigest().upper()
    if isinstance(doc, dict):
        if len(_HASHES) >= _HASH_CACHE_SIZE:
            _HASHES.pop(next(iter(_HASHES)))
        _HASHES[id(doc)] = (doc, digest)
    return digest


_DISCOVERY_CONTENT = ("application/json", "application/vnd.kubernetes.protobuf", "application/yaml")


def _discovery_document(path: str, tag: str, description: str, operation_id: str, model: str, json_only: bool) -> JSON:
    name = builtin_schemas.definition_name(model)
    content = _content(_ref(name), ("application/json",) if json_only else _DISCOVERY_CONTENT)
    operation = {
        "tags": [tag],
        "description": description,
        "operationId": operation_id,
        "responses": {"200": {"description": "OK", "content": content}, "401": {"description": "Unauthorized"}},
    }
    return {
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": KUBERNETES_VERSION},
        "paths": {path: {"get": operation}},
        "components": {"schemas": dict(sorted(builtin_schemas.component_schemas([model]).items()))},
    }


@functools.lru_cache(maxsize=64)
def discovery_document(key: str) -> JSON:
    """The document the real server indexes for a discovery endpoint: `api`, `apis`, `version` or `apis/<group>`
    (built-in groups only; CRD groups get none). Cached: documents must not be mutated."""
    if key == "api":
        return _discovery_document(
            "/api/", "core", "get available API versions", "getCoreAPIVersions", "V1APIVersions", False
        )
    if key == "apis":
        return _discovery_document(
            "/apis/", "apis", "get available API versions", "getAPIVersions", "V1APIGroupList", False
        )
    if key == "version":
        return _discovery_document(
            "/version/", "version", "get the version information for this server", "getCodeVersion", "VersionInfo", True
        )
    group = key.removeprefix("apis/")
    name = _operation_group(group, "")
    return _discovery_document(
        f"/apis/{group}/",
        name[:1].lower() + name[1:],
        "get information of a group",
        f"get{name}APIGroup",
        "V1APIGroup",
        False,
    )


def build_index(docs: Mapping[str, Mapping[str, Any]]) -> JSON:
    """The `/openapi/v3` discovery index: `{"paths": {"apis/batch/v1": {"serverRelativeURL": ...}}}`."""
    return {
        "paths": {
            key: {"serverRelativeURL": f"/openapi/v3/{key}?hash={document_hash(doc)}"}
            for key, doc in sorted(docs.items())
        }
    }
