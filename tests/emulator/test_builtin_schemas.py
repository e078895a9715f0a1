"""Built-in OpenAPI schemas and strict-decoding checks derived from the kubernetes client models."""

from __future__ import annotations

import copy
import json
from typing import Any

import pydantic
import pytest
from kubernetes.client import ApiClient

from dops.emulator import builtin_schemas as bs

JSON = dict[str, Any]
VALIDATOR = bs.BuiltinValidator()


@pytest.mark.parametrize(
    ("model", "name"),
    [
        ("V1Pod", "io.k8s.api.core.v1.Pod"),
        ("V1PodSpec", "io.k8s.api.core.v1.PodSpec"),
        ("V1Container", "io.k8s.api.core.v1.Container"),
        ("V1Job", "io.k8s.api.batch.v1.Job"),
        ("V1JobSpec", "io.k8s.api.batch.v1.JobSpec"),
        ("V1PodTemplateSpec", "io.k8s.api.core.v1.PodTemplateSpec"),
        ("V1ObjectMeta", "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"),
        ("V1ManagedFieldsEntry", "io.k8s.apimachinery.pkg.apis.meta.v1.ManagedFieldsEntry"),
        ("V1LabelSelector", "io.k8s.apimachinery.pkg.apis.meta.v1.LabelSelector"),
        ("V1Status", "io.k8s.apimachinery.pkg.apis.meta.v1.Status"),
        (
            "V1CustomResourceDefinition",
            "io.k8s.apiextensions-apiserver.pkg.apis.apiextensions.v1.CustomResourceDefinition",
        ),
        ("V1JSONSchemaProps", "io.k8s.apiextensions-apiserver.pkg.apis.apiextensions.v1.JSONSchemaProps"),
        ("CoreV1Event", "io.k8s.api.core.v1.Event"),
        ("EventsV1Event", "io.k8s.api.events.v1.Event"),
        ("V1Lease", "io.k8s.api.coordination.v1.Lease"),
        ("V1Deployment", "io.k8s.api.apps.v1.Deployment"),
        ("V1Scale", "io.k8s.api.autoscaling.v1.Scale"),
        ("V1ClusterRole", "io.k8s.api.rbac.v1.ClusterRole"),
        ("V1PodList", "io.k8s.api.core.v1.PodList"),
    ],
)
def test_definition_names_match_the_real_server(model: str, name: str) -> None:
    assert bs.definition_name(model) == name


def test_definition_names_are_unique() -> None:
    names = [bs.definition_name(m) for m in bs._model_modules()]
    assert len(names) == len(set(names))


@pytest.mark.parametrize(
    ("gvk", "model"),
    [
        (("", "v1", "Pod"), "V1Pod"),
        (("", "v1", "PodList"), "V1PodList"),
        (("", "v1", "Event"), "CoreV1Event"),
        (("events.k8s.io", "v1", "Event"), "EventsV1Event"),
        (("batch", "v1", "Job"), "V1Job"),
        (("apiextensions.k8s.io", "v1", "CustomResourceDefinition"), "V1CustomResourceDefinition"),
        (("coordination.k8s.io", "v1", "Lease"), "V1Lease"),
        (("example.com", "v1", "Widget"), None),
        (("", "v1", "ObjectMeta"), None),
    ],
)
def test_model_for(gvk: tuple[str, str, str], model: str | None) -> None:
    assert bs.model_for(*gvk) == model


def test_model_schema_shape() -> None:
    pod = bs.model_schema("V1Pod")
    assert pod is not None
    assert pod["type"] == "object"
    assert pod["description"].startswith("Pod is a collection of containers")
    assert pod["x-kubernetes-group-version-kind"] == [{"group": "", "kind": "Pod", "version": "v1"}]
    assert pod["properties"]["spec"] == {"$ref": "#/components/schemas/io.k8s.api.core.v1.PodSpec"}
    assert pod["properties"]["metadata"]["allOf"] == [
        {"$ref": "#/components/schemas/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"}
    ]
    assert pod["properties"]["metadata"]["description"].startswith("Standard object's metadata")
    assert pod["properties"]["kind"]["type"] == "string"
    assert bs.model_schema("NoSuchModel") is None
    assert "x-kubernetes-group-version-kind" not in (bs.model_schema("V1PodSpec") or {})


def _prop(model: str, *path: str) -> JSON:
    schema = bs.model_schema(model)
    assert schema is not None
    node: JSON = schema["properties"]
    for key in path[:-1]:
        node = node[key]
    return node[path[-1]]  # type: ignore[no-any-return]


@pytest.mark.parametrize(
    ("model", "path", "expected"),
    [
        (
            "V1ServicePort",
            ("targetPort", "allOf"),
            [{"$ref": "#/components/schemas/io.k8s.apimachinery.pkg.util.intstr.IntOrString"}],
        ),
        (
            "V1ResourceRequirements",
            ("limits", "additionalProperties"),
            {"$ref": "#/components/schemas/io.k8s.apimachinery.pkg.api.resource.Quantity"},
        ),
        ("V1ObjectMeta", ("labels", "additionalProperties"), {"type": "string"}),
        ("V1ObjectMeta", ("generation", "type"), "integer"),
        ("V1ObjectMeta", ("creationTimestamp", "format"), "date-time"),
        ("V1ObjectMeta", ("finalizers", "items"), {"type": "string"}),
        ("V1ManagedFieldsEntry", ("fieldsV1", "x-kubernetes-preserve-unknown-fields"), True),
        ("V1JSONSchemaProps", ("default", "x-kubernetes-preserve-unknown-fields"), True),
        ("V1Secret", ("data", "additionalProperties", "format"), "byte"),
        ("V1PodSpec", ("containers", "items"), {"$ref": "#/components/schemas/io.k8s.api.core.v1.Container"}),
    ],
)
def test_field_types(model: str, path: tuple[str, ...], expected: Any) -> None:
    node = _prop(model, *path)
    if isinstance(expected, dict):
        assert {k: node[k] for k in expected} == expected
    else:
        assert node == expected


@pytest.mark.parametrize(
    ("model", "required"),
    [("V1Container", ["name"]), ("V1JobCondition", ["status", "type"]), ("V1PodSpec", ["containers"])],
)
def test_required(model: str, required: list[str]) -> None:
    schema = bs.model_schema(model)
    assert schema is not None
    assert sorted(schema["required"]) == required


def _refs(node: Any) -> set[str]:
    if isinstance(node, dict):
        found = {node["$ref"]} if isinstance(node.get("$ref"), str) else set()
        for value in node.values():
            found |= _refs(value)
        return found
    if isinstance(node, list):
        return set().union(*(_refs(v) for v in node)) if node else set()
    return set()


@pytest.mark.parametrize("roots", [["V1Pod"], ["V1Job", "V1JobList"], ["V1CustomResourceDefinition"]])
def test_component_closure_resolves_every_ref(roots: list[str]) -> None:
    schemas = bs.component_schemas(roots)
    for ref in _refs(schemas):
        assert ref.startswith("#/components/schemas/")
        assert ref.removeprefix("#/components/schemas/") in schemas
    assert "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta" in schemas


def test_int_or_string_and_quantity_are_named_components() -> None:
    schemas = bs.component_schemas(["V1Service", "V1Pod"])
    int_or_string = schemas["io.k8s.apimachinery.pkg.util.intstr.IntOrString"]
    assert int_or_string["x-kubernetes-int-or-string"] is True
    assert int_or_string["format"] == "int-or-string"
    assert "type" not in int_or_string  # kubectl explain then names the type <IntOrString>
    assert schemas["io.k8s.apimachinery.pkg.api.resource.Quantity"]["x-kubernetes-int-or-string"] is True
    assert "io.k8s.apimachinery.pkg.api.resource.Quantity" not in bs.component_schemas(["V1ConfigMap"])


def test_component_schemas_unknown_model() -> None:
    with pytest.raises(bs.BuiltinSchemaError):
        bs.component_schemas(["V1Nope"])


def _job(**overrides: Any) -> JSON:
    job: JSON = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": "j", "namespace": "default", "resourceVersion": "5", "generation": 1},
        "spec": {
            "template": {"spec": {"restartPolicy": "Never", "containers": [{"name": "main", "image": "alpine"}]}},
        },
        "status": {"conditions": [{"type": "Complete", "status": "True"}], "startTime": "2024-01-01T00:00:00Z"},
    }
    job.update(overrides)
    return job


@pytest.mark.parametrize(
    ("mutate", "unknown"),
    [
        (lambda o: None, []),
        (lambda o: o["spec"].update(foo=1), ["spec.foo"]),
        (
            lambda o: o["spec"]["template"]["spec"]["containers"][0].update(bar=None),
            ["spec.template.spec.containers[0].bar"],
        ),
        (lambda o: o["metadata"].update(labelz={}), ["metadata.labelz"]),
        (lambda o: o.update(extra=1), ["extra"]),
        # managedFields[].fieldsV1 is free-form (FieldsV1), never "unknown"
        (lambda o: o["metadata"].update(managedFields=[{"manager": "m", "fieldsV1": {"f:spec": {}}}]), []),
    ],
)
def test_unknown_fields(mutate: Any, unknown: list[str]) -> None:
    job = _job()
    mutate(job)
    assert VALIDATOR.unknown_fields(job, "V1Job") == unknown


def test_unknown_fields_inside_crd_schemas() -> None:
    crd = {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": "widgets.example.com"},
        "spec": {
            "group": "example.com",
            "names": {"plural": "widgets", "kind": "Widget"},
            "scope": "Namespaced",
            "versions": [
                {
                    "name": "v1",
                    "served": True,
                    "storage": True,
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "properties": {
                                "spec": {"type": "object", "x-kubernetes-preserve-unknown-fields": True, "typo": 1}
                            },
                        }
                    },
                }
            ],
        },
    }
    assert VALIDATOR.unknown_fields(crd, "V1CustomResourceDefinition") == [
        "spec.versions[0].schema.openAPIV3Schema.properties.spec.typo"
    ]


def test_prune_removes_in_place_and_reports() -> None:
    job = _job(junk=1)
    job["spec"]["template"]["spec"]["containers"][0]["bogus"] = "x"
    removed = VALIDATOR.prune(job, "V1Job")
    assert removed == ["spec.template.spec.containers[0].bogus", "junk"]
    assert "junk" not in job
    assert job["spec"]["template"]["spec"]["containers"][0] == {"name": "main", "image": "alpine"}
    assert VALIDATOR.unknown_fields(job, "V1Job") == []


@pytest.mark.parametrize(
    ("mutate", "error"),
    [
        (
            lambda o: o["metadata"].update(generation="1"),
            "json: cannot unmarshal string into Go struct field ObjectMeta.metadata.generation of type int64",
        ),
        (
            lambda o: o["metadata"].update(resourceVersion=5),
            "json: cannot unmarshal number into Go struct field ObjectMeta.metadata.resourceVersion of type string",
        ),
        (
            lambda o: o["metadata"].update(labels={"a": 1}),
            "json: cannot unmarshal number into Go struct field ObjectMeta.metadata.labels of type string",
        ),
        (
            lambda o: o["spec"].update(suspend="yes"),
            "json: cannot unmarshal string into Go struct field JobSpec.spec.suspend of type bool",
        ),
        (
            lambda o: o["spec"]["template"]["spec"].update(containers={"name": "x"}),
            "json: cannot unmarshal object into Go struct field PodSpec.spec.template.spec.containers "
            "of type []v1.Container",
        ),
        (
            lambda o: o["spec"].update(backoffLimit=True),
            "json: cannot unmarshal bool into Go struct field JobSpec.spec.backoffLimit of type int32",
        ),
    ],
)
def test_type_errors(mutate: Any, error: str) -> None:
    job = _job()
    mutate(job)
    assert VALIDATOR.type_errors(job, "V1Job") == [error]


def test_type_errors_accept_valid_shapes() -> None:
    job = _job()
    job["spec"]["template"]["spec"]["containers"][0]["ports"] = [{"containerPort": 80}]
    job["spec"]["template"]["spec"]["containers"][0]["resources"] = {"limits": {"cpu": 1, "memory": "1Gi"}}
    job["metadata"]["labels"] = None  # null is the zero value for any Go type
    assert VALIDATOR.type_errors(job, "V1Job") == []


def test_unparsable_timestamp_is_a_type_error() -> None:
    job = _job()
    job["status"]["startTime"] = "2024-01-01 00:00"
    assert VALIDATOR.type_errors(job, "V1Job") == [
        'parsing time "2024-01-01 00:00" as "2006-01-02T15:04:05Z07:00": cannot parse'
    ]


@pytest.mark.parametrize(
    ("mutate", "missing"),
    [
        (lambda o: None, []),
        (
            lambda o: o["spec"]["template"]["spec"]["containers"].append({"image": "x"}),
            ["spec.template.spec.containers[1].name"],
        ),
        (lambda o: o["status"]["conditions"].append({"type": "Failed"}), ["status.conditions[1].status"]),
        (lambda o: o["spec"]["template"]["spec"].pop("containers"), ["spec.template.spec.containers"]),
    ],
)
def test_missing_required(mutate: Any, missing: list[str]) -> None:
    job = _job()
    mutate(job)
    assert VALIDATOR.missing_required(job, "V1Job") == missing


def _client_accepts(obj: JSON, model: str) -> bool:
    try:
        ApiClient().deserialize(json.dumps(obj), model, "application/json")
    except (pydantic.ValidationError, ValueError, TypeError):
        return False
    return True


@pytest.mark.parametrize(
    "mutate",
    [
        lambda o: None,
        lambda o: o["metadata"].update(generation="1"),
        lambda o: o["metadata"].update(resourceVersion=5),
        lambda o: o["spec"]["template"]["spec"]["containers"].append({"image": "x"}),
        lambda o: o["status"]["conditions"].append({"type": "Failed"}),
        lambda o: o["spec"].update(completions="3"),
    ],
)
def test_checks_agree_with_the_strict_kubernetes_client(mutate: Any) -> None:
    """P6: an object the checks pass deserializes in kubernetes-client 37; one they flag does not."""
    job = _job()
    mutate(job)
    unknown, types, missing = VALIDATOR.check(copy.deepcopy(job), "V1Job")
    assert unknown == []
    assert _client_accepts(job, "V1Job") == (not types and not missing)


def test_normalize_quantities() -> None:
    pod = {
        "spec": {
            "containers": [
                {"name": "a", "resources": {"limits": {"cpu": 1, "memory": "1Gi"}, "requests": {"cpu": 0.5}}}
            ],
            "overhead": {"cpu": 2},
        }
    }
    VALIDATOR.normalize_quantities(pod, "V1Pod")
    assert pod["spec"]["containers"][0]["resources"] == {
        "limits": {"cpu": "1", "memory": "1Gi"},
        "requests": {"cpu": "0.5"},
    }
    assert pod["spec"]["overhead"] == {"cpu": "2"}
    assert VALIDATOR.type_errors(pod, "V1Pod") == []


def test_messages() -> None:
    assert bs.unknown_fields_message(["spec.foo", "bar"]) == (
        'strict decoding error: unknown field "spec.foo", unknown field "bar"'
    )
    assert (
        bs.decode_error_message("Job", "v1", "json: boom")
        == 'Job in version "v1" cannot be handled as a Job: json: boom'
    )


def test_field_description() -> None:
    assert bs.field_description("V1ObjectMeta", "name").startswith("Name must be unique within a namespace.")
    assert bs.field_description("V1ObjectMeta", "nope") == ""
