"""OpenAPI v3 documents: kubectl's field-validation support check (C2), `explain` schemas, index hashes."""

from __future__ import annotations

import copy
import re
from typing import Any

import pytest

from dops.emulator import openapi
from dops.emulator.kinds import BUILTIN_TYPES
from dops.emulator.registry import ResourceType

JSON = dict[str, Any]

CRD: JSON = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": "delegatedoperations.dops.io"},
    "spec": {
        "group": "dops.io",
        "scope": "Namespaced",
        "names": {"plural": "delegatedoperations", "singular": "delegatedoperation", "kind": "DelegatedOperation"},
        "versions": [
            {
                "name": "v1alpha1",
                "served": True,
                "storage": True,
                "subresources": {"status": {}},
                "schema": {
                    "openAPIV3Schema": {
                        "type": "object",
                        "description": "A delegated operation run by the operator.",
                        "properties": {
                            "spec": {
                                "type": "object",
                                "description": "What to run.",
                                "properties": {
                                    "operator": {"type": "string", "description": "The operator URI."},
                                    "params": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
                                },
                                "required": ["operator"],
                            },
                            "status": {"type": "object", "properties": {"runState": {"type": "string"}}},
                        },
                    }
                },
            }
        ],
    },
}


def cr_types(crd: JSON = CRD) -> list[ResourceType]:
    return ResourceType.from_crd(crd)


def groups() -> dict[tuple[str, str], list[ResourceType]]:
    out: dict[tuple[str, str], list[ResourceType]] = {}
    for rtype in [*BUILTIN_TYPES, *cr_types()]:
        out.setdefault((rtype.group, rtype.version), []).append(rtype)
    return out


GROUPS = groups()


def supports_field_validation(doc: JSON, group: str, version: str, kind: str) -> bool:
    """kubectl's `supportsQueryParamV3`: the first patch operation with the GVK must list the parameter.

    Go iterates `doc.Paths` in random order, so require it of every matching patch operation.
    """
    found = False
    for path_item in doc["paths"].values():
        op = path_item.get("patch")
        if op is None or op.get("x-kubernetes-group-version-kind") != {
            "group": group,
            "version": version,
            "kind": kind,
        }:
            continue
        found = True
        if not any(p.get("name") == "fieldValidation" and p.get("in") == "query" for p in op.get("parameters", [])):
            return False
    return found


@pytest.mark.parametrize(("group", "version"), sorted(GROUPS), ids=lambda v: v or "core")
def test_every_resource_supports_field_validation(group: str, version: str) -> None:
    doc = openapi.build_document(group, version, GROUPS[(group, version)])
    assert doc["openapi"] == "3.0.0"
    assert doc["info"] == {"title": "Kubernetes", "version": "v1.35.0"}
    for rtype in GROUPS[(group, version)]:
        if "patch" in rtype.verbs:
            assert supports_field_validation(doc, group, version, rtype.kind), rtype.qualified_name


def test_path_level_parameters_do_not_count() -> None:
    """The check itself must fail when fieldValidation is only a path-level parameter (C2)."""
    doc = openapi.build_document("dops.io", "v1alpha1", cr_types())
    broken = copy.deepcopy(doc)
    for item in broken["paths"].values():
        if "patch" in item:
            item["patch"]["parameters"] = [p for p in item["patch"]["parameters"] if p["name"] != "fieldValidation"]
            item["parameters"].append({"name": "fieldValidation", "in": "query", "schema": {"type": "string"}})
    assert supports_field_validation(doc, "dops.io", "v1alpha1", "DelegatedOperation")
    assert not supports_field_validation(broken, "dops.io", "v1alpha1", "DelegatedOperation")


def _refs(node: Any) -> set[str]:
    if isinstance(node, dict):
        found = {node["$ref"]} if isinstance(node.get("$ref"), str) else set()
        for value in node.values():
            found |= _refs(value)
        return found
    if isinstance(node, list):
        out: set[str] = set()
        for value in node:
            out |= _refs(value)
        return out
    return set()


@pytest.mark.parametrize(("group", "version"), sorted(GROUPS), ids=lambda v: v or "core")
def test_every_ref_resolves_within_the_document(group: str, version: str) -> None:
    doc = openapi.build_document(group, version, GROUPS[(group, version)])
    schemas = doc["components"]["schemas"]
    for ref in _refs(doc):
        assert ref.removeprefix("#/components/schemas/") in schemas, ref


@pytest.mark.parametrize(
    ("group", "version", "path", "method", "operation_id", "action"),
    [
        ("", "v1", "/api/v1/namespaces/{namespace}/pods/{name}", "patch", "patchCoreV1NamespacedPod", "patch"),
        ("", "v1", "/api/v1/namespaces/{namespace}/pods", "get", "listCoreV1NamespacedPod", "list"),
        ("", "v1", "/api/v1/pods", "get", "listCoreV1PodForAllNamespaces", "list"),
        (
            "",
            "v1",
            "/api/v1/namespaces/{namespace}/pods/{name}/status",
            "patch",
            "patchCoreV1NamespacedPodStatus",
            "patch",
        ),
        ("", "v1", "/api/v1/namespaces/{namespace}/pods/{name}/log", "get", "readCoreV1NamespacedPodLog", "get"),
        ("", "v1", "/api/v1/namespaces/{name}", "patch", "patchCoreV1Namespace", "patch"),
        ("batch", "v1", "/apis/batch/v1/namespaces/{namespace}/jobs", "post", "createBatchV1NamespacedJob", "post"),
        (
            "batch",
            "v1",
            "/apis/batch/v1/namespaces/{namespace}/jobs/{name}",
            "put",
            "replaceBatchV1NamespacedJob",
            "put",
        ),
        (
            "batch",
            "v1",
            "/apis/batch/v1/namespaces/{namespace}/jobs",
            "delete",
            "deleteBatchV1CollectionNamespacedJob",
            "deletecollection",
        ),
        (
            "apiextensions.k8s.io",
            "v1",
            "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{name}",
            "patch",
            "patchApiextensionsV1CustomResourceDefinition",
            "patch",
        ),
        (
            "rbac.authorization.k8s.io",
            "v1",
            "/apis/rbac.authorization.k8s.io/v1/clusterroles/{name}",
            "delete",
            "deleteRbacAuthorizationV1ClusterRole",
            "delete",
        ),
        (
            "dops.io",
            "v1alpha1",
            "/apis/dops.io/v1alpha1/namespaces/{namespace}/delegatedoperations/{name}",
            "patch",
            "patchDopsIoV1alpha1NamespacedDelegatedOperation",
            "patch",
        ),
    ],
)
def test_operations(group: str, version: str, path: str, method: str, operation_id: str, action: str) -> None:
    doc = openapi.build_document(group, version, GROUPS[(group, version)])
    op = doc["paths"][path][method]
    assert op["operationId"] == operation_id
    assert op["x-kubernetes-action"] == action


def test_cluster_scoped_kinds_have_no_namespace_paths() -> None:
    doc = openapi.build_document("", "v1", GROUPS[("", "v1")])
    assert not any("/namespaces/{namespace}/namespaces" in p for p in doc["paths"])
    assert "/api/v1/namespaces" in doc["paths"]
    item = doc["paths"]["/api/v1/namespaces/{name}"]
    assert [p["name"] for p in item["parameters"] if p["in"] == "path"] == ["name"]


def test_patch_operation_details() -> None:
    doc = openapi.build_document("", "v1", GROUPS[("", "v1")])
    op = doc["paths"]["/api/v1/namespaces/{namespace}/configmaps/{name}"]["patch"]
    assert op["x-kubernetes-group-version-kind"] == {"group": "", "version": "v1", "kind": "ConfigMap"}
    assert {p["name"] for p in op["parameters"]} == {"dryRun", "fieldManager", "fieldValidation", "force"}
    assert set(op["requestBody"]["content"]) == {
        "application/apply-patch+yaml",
        "application/json-patch+json",
        "application/merge-patch+json",
        "application/strategic-merge-patch+json",
    }
    assert op["responses"]["200"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/io.k8s.api.core.v1.ConfigMap"
    }
    cr = openapi.build_document("dops.io", "v1alpha1", cr_types())
    cr_patch = cr["paths"]["/apis/dops.io/v1alpha1/namespaces/{namespace}/delegatedoperations/{name}"]["patch"]
    assert "application/strategic-merge-patch+json" not in cr_patch["requestBody"]["content"]


def test_scale_subresource_uses_the_autoscaling_gvk() -> None:
    doc = openapi.build_document("apps", "v1", GROUPS[("apps", "v1")])
    op = doc["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments/{name}/scale"]["patch"]
    assert op["x-kubernetes-group-version-kind"] == {"group": "autoscaling", "version": "v1", "kind": "Scale"}
    assert "io.k8s.api.autoscaling.v1.Scale" in doc["components"]["schemas"]


def explain(doc: JSON, group: str, version: str, kind: str, *fields: str) -> JSON:
    """What `kubectl explain` does: find the schema by GVK, then follow properties, `$ref` and `allOf`."""
    schemas = doc["components"]["schemas"]
    gvk = {"group": group, "version": version, "kind": kind}
    matches = [s for s in schemas.values() if gvk in s.get("x-kubernetes-group-version-kind", [])]
    assert len(matches) == 1
    node: JSON = matches[0]
    for field in fields:
        node = node["properties"][field]
        while "$ref" in node or "allOf" in node:
            target = node["$ref"] if "$ref" in node else node["allOf"][0]["$ref"]
            node = schemas[target.removeprefix("#/components/schemas/")]
    return node


def test_cr_schema_for_explain() -> None:
    doc = openapi.build_document("dops.io", "v1alpha1", cr_types())
    schemas = doc["components"]["schemas"]
    schema = schemas["io.dops.v1alpha1.DelegatedOperation"]
    assert schema["description"] == "A delegated operation run by the operator."
    assert schema["x-kubernetes-group-version-kind"] == [
        {"group": "dops.io", "kind": "DelegatedOperation", "version": "v1alpha1"}
    ]
    assert schema["properties"]["metadata"]["allOf"] == [
        {"$ref": "#/components/schemas/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"}
    ]
    assert schema["properties"]["apiVersion"]["description"].startswith("APIVersion defines")
    assert schema["properties"]["kind"]["description"].startswith("Kind is a string value")
    assert explain(doc, "dops.io", "v1alpha1", "DelegatedOperation", "spec")["description"] == "What to run."
    assert explain(doc, "dops.io", "v1alpha1", "DelegatedOperation", "spec", "operator")["description"] == (
        "The operator URI."
    )
    assert explain(doc, "dops.io", "v1alpha1", "DelegatedOperation", "metadata", "name")["type"] == "string"
    listed = schemas["io.dops.v1alpha1.DelegatedOperationList"]
    assert listed["properties"]["items"]["items"] == {
        "$ref": "#/components/schemas/io.dops.v1alpha1.DelegatedOperation"
    }
    # The CRD's own schema object is not modified.
    assert "apiVersion" not in CRD["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]


def test_builtin_schema_for_explain() -> None:
    doc = openapi.build_document("batch", "v1", GROUPS[("batch", "v1")])
    backoff = explain(doc, "batch", "v1", "Job", "spec", "backoffLimit")
    assert backoff["type"] == "integer"
    assert "retries" in backoff["description"]
    assert explain(doc, "batch", "v1", "Job", "spec", "template", "spec", "containers")["type"] == "array"


def test_schemaless_cr_preserves_unknown_fields() -> None:
    crd = copy.deepcopy(CRD)
    del crd["spec"]["versions"][0]["schema"]
    doc = openapi.build_document("dops.io", "v1alpha1", cr_types(crd))
    schema = doc["components"]["schemas"]["io.dops.v1alpha1.DelegatedOperation"]
    assert schema["x-kubernetes-preserve-unknown-fields"] is True
    assert supports_field_validation(doc, "dops.io", "v1alpha1", "DelegatedOperation")


def test_types_from_another_group_version_are_rejected() -> None:
    with pytest.raises(openapi.OpenAPIError):
        openapi.build_document("batch", "v1", cr_types())


def test_index_and_hashes() -> None:
    docs = {
        openapi.document_key(g, v): openapi.build_document(g, v, types)
        for (g, v), types in GROUPS.items()
        if (g, v) in {("", "v1"), ("batch", "v1"), ("dops.io", "v1alpha1")}
    }
    index = openapi.build_index(docs)
    assert sorted(index["paths"]) == ["api/v1", "apis/batch/v1", "apis/dops.io/v1alpha1"]
    url = index["paths"]["apis/batch/v1"]["serverRelativeURL"]
    match = re.fullmatch(r"/openapi/v3/apis/batch/v1\?hash=([0-9A-F]{128})", url)
    assert match is not None
    assert match.group(1) == openapi.document_hash(docs["apis/batch/v1"])


def test_hash_is_stable_and_changes_with_the_crd_schema() -> None:
    first = openapi.build_document("dops.io", "v1alpha1", cr_types())
    again = openapi.build_document("dops.io", "v1alpha1", cr_types())
    assert openapi.document_hash(first) == openapi.document_hash(again)
    changed = copy.deepcopy(CRD)
    changed["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]["description"] = "Changed."
    other = openapi.build_document("dops.io", "v1alpha1", cr_types(changed))
    assert openapi.document_hash(other) != openapi.document_hash(first)


def test_document_key_and_names() -> None:
    assert openapi.document_key("", "v1") == "api/v1"
    assert openapi.document_key("example.com", "v1") == "apis/example.com/v1"
    assert openapi.cr_definition_name("stable.example.com", "v1", "CronTab") == "com.example.stable.v1.CronTab"
