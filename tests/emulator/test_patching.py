"""PATCH semantics as kube-apiserver applies them (spec S5, K7, C3, C4, H2; §9 statements 12-17)."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from dops.emulator.patching import (
    INVALID_REQUEST_MESSAGE,
    PatchError,
    apply_patch,
    changed_fields,
    fields_from_paths,
    fields_v1,
    json_patch,
    merge_patch,
    owned_paths,
    strategic_merge_patch,
    update_managed_fields,
)

WIDGET: dict[str, Any] = {
    "apiVersion": "example.com/v1",
    "kind": "Widget",
    "metadata": {
        "name": "w1",
        "namespace": "default",
        "uid": "u-1",
        "resourceVersion": "104",
        "annotations": {"example.com/owner": "me"},
        "labels": {"app": "w"},
    },
    "spec": {"size": 3, "tags": ["a", "b"]},
}

# ----------------------------------------------------------------------------------------------------------------
# merge-patch (RFC 7386)
# ----------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("target", "patch", "expected"),
    [
        ({"a": 1, "b": 2}, {"a": None}, {"b": 2}),  # null deletes
        ({"a": 1}, {"missing": None}, {"a": 1}),
        ({"a": {"b": 1, "c": 2}}, {"a": {"b": None, "d": 3}}, {"a": {"c": 2, "d": 4 - 1}}),
        ({"l": [1, 2, 3]}, {"l": [4]}, {"l": [4]}),  # lists are replaced wholesale
        ({"l": [{"name": "a", "x": 1}]}, {"l": [{"name": "a"}]}, {"l": [{"name": "a"}]}),
        ({"a": "scalar"}, {"a": {"b": 1, "c": None}}, {"a": {"b": 1}}),  # nulls vanish when merged into nothing
        ({"a": {"b": 1}}, {"a": "scalar"}, {"a": "scalar"}),
        ({}, {"status": {"root@vm/1": {"priority": 0}}}, {"status": {"root@vm/1": {"priority": 0}}}),
        ({"status": {"root@vm/1": {"priority": 0}}}, {"status": {"root@vm/1": None}}, {"status": {}}),  # peering exit
        ({"a": 1}, {}, {"a": 1}),
        ({"a": 1}, ["x"], ["x"]),  # a non-object patch replaces the document
        ({"a": [None]}, {"b": [None, {"c": None}]}, {"a": [None], "b": [None, {"c": None}]}),  # list items untouched
    ],
)
def test_merge_patch(target: dict[str, Any], patch: Any, expected: Any) -> None:
    assert merge_patch(target, patch) == expected


def test_merge_patch_kopf_bodies() -> None:
    last_handled = '{"spec":{"size":3}}\n'
    patched = merge_patch(
        WIDGET,
        {
            "metadata": {"annotations": {"kopf.zalando.org/last-handled-configuration": last_handled}},
            "status": {"phase": "Created", "create_fn": {"size": 3}},
        },
    )
    assert patched["metadata"]["annotations"] == {
        "example.com/owner": "me",
        "kopf.zalando.org/last-handled-configuration": last_handled,
    }
    assert patched["status"] == {"phase": "Created", "create_fn": {"size": 3}}
    assert patched["spec"] == WIDGET["spec"]


def test_merge_patch_does_not_mutate_or_share() -> None:
    target = copy.deepcopy(WIDGET)
    patch = {"metadata": {"labels": {"new": "x"}}, "spec": {"extra": {"deep": [1]}}}
    patch_before = copy.deepcopy(patch)
    result = merge_patch(target, patch)
    assert target == WIDGET
    assert patch == patch_before
    result["metadata"]["annotations"]["changed"] = "yes"
    result["spec"]["tags"].append("c")
    result["spec"]["extra"]["deep"].append(2)
    assert target == WIDGET  # nothing in the result aliases the target...
    assert patch == patch_before  # ...or the patch


# ----------------------------------------------------------------------------------------------------------------
# json-patch (RFC 6902)
# ----------------------------------------------------------------------------------------------------------------

KOPF_FINALIZER_ADD: list[dict[str, Any]] = [
    {"op": "test", "path": "/metadata/resourceVersion", "value": "104"},
    {"op": "add", "path": "/metadata/finalizers", "value": ["kopf.zalando.org/KopfFinalizerMarker"]},
]


def test_json_patch_kopf_finalizer_add_passes() -> None:
    result = json_patch(WIDGET, KOPF_FINALIZER_ADD)
    assert result["metadata"]["finalizers"] == ["kopf.zalando.org/KopfFinalizerMarker"]
    assert "finalizers" not in WIDGET["metadata"]


def test_json_patch_kopf_finalizer_add_stale_resource_version_is_422_and_applies_nothing() -> None:
    target = copy.deepcopy(WIDGET)
    target["metadata"]["resourceVersion"] = "105"
    ops = [{**KOPF_FINALIZER_ADD[1]}, {**KOPF_FINALIZER_ADD[0]}]  # test last: the add must be rolled back too
    with pytest.raises(PatchError) as info:
        json_patch(target, ops)
    assert info.value.code == 422
    assert info.value.reason == "Invalid"
    assert info.value.message == INVALID_REQUEST_MESSAGE
    assert info.value.detail == "testing value /metadata/resourceVersion failed: test failed"
    assert info.value.causes == [{"message": info.value.detail}]
    assert "finalizers" not in target["metadata"]


def test_json_patch_kopf_finalizer_removal() -> None:
    target = json_patch(WIDGET, KOPF_FINALIZER_ADD)
    target["metadata"]["resourceVersion"] = "116"
    removed = json_patch(
        target,
        [
            {"op": "test", "path": "/metadata/resourceVersion", "value": "116"},
            {"op": "remove", "path": "/metadata/finalizers"},
        ],
    )
    assert "finalizers" not in removed["metadata"]
    by_index = json_patch(target, [{"op": "remove", "path": "/metadata/finalizers/0"}])
    assert by_index["metadata"]["finalizers"] == []
    replaced = json_patch(target, [{"op": "replace", "path": "/metadata/finalizers", "value": []}])
    assert replaced["metadata"]["finalizers"] == []


@pytest.mark.parametrize(
    ("ops", "check"),
    [
        (
            [{"op": "add", "path": "/metadata/annotations/kopf.zalando.org~1touch-dummy", "value": "x"}],
            lambda o: o["metadata"]["annotations"]["kopf.zalando.org/touch-dummy"] == "x",
        ),
        (
            [{"op": "remove", "path": "/metadata/annotations/example.com~1owner"}],
            lambda o: o["metadata"]["annotations"] == {},
        ),
        (
            [{"op": "add", "path": "/metadata/annotations/a~0b", "value": "tilde"}],
            lambda o: o["metadata"]["annotations"]["a~b"] == "tilde",
        ),
        ([{"op": "add", "path": "/spec/tags/-", "value": "c"}], lambda o: o["spec"]["tags"] == ["a", "b", "c"]),
        ([{"op": "add", "path": "/spec/tags/0", "value": "z"}], lambda o: o["spec"]["tags"] == ["z", "a", "b"]),
        (
            [{"op": "move", "from": "/spec/size", "path": "/spec/replicas"}],
            lambda o: o["spec"] == {"replicas": 3, "tags": ["a", "b"]},
        ),
        (
            [{"op": "copy", "from": "/metadata/labels", "path": "/spec/selector"}],
            lambda o: o["spec"]["selector"] == {"app": "w"} and o["metadata"]["labels"] == {"app": "w"},
        ),
        ([{"op": "replace", "path": "/spec/size", "value": 5}], lambda o: o["spec"]["size"] == 5),
        # evanphx/json-patch v4: replacing a missing member of an object sets it
        ([{"op": "replace", "path": "/spec/owner", "value": "me"}], lambda o: o["spec"]["owner"] == "me"),
        ([{"op": "test", "path": "/spec/tags", "value": ["a", "b"]}], lambda o: o == WIDGET),
        ([], lambda o: o == WIDGET),
    ],
)
def test_json_patch_operations(ops: list[dict[str, Any]], check: Any) -> None:
    result = json_patch(WIDGET, ops)
    assert check(result)


def test_json_patch_copy_is_independent() -> None:
    result = json_patch(WIDGET, [{"op": "copy", "from": "/metadata/labels", "path": "/spec/selector"}])
    result["spec"]["selector"]["app"] = "changed"
    assert result["metadata"]["labels"] == {"app": "w"}


@pytest.mark.parametrize(
    ("ops", "detail"),
    [
        ([{"op": "remove", "path": "/metadata/finalizers"}], "error in remove for path: '/metadata/finalizers'"),
        ([{"op": "replace", "path": "/nope/deeper", "value": 1}], "replace operation does not apply"),
        ([{"op": "replace", "path": "/spec/tags/7", "value": "x"}], "replace operation does not apply"),
        ([{"op": "add", "path": "/nope/deeper", "value": 1}], "add operation does not apply"),
        ([{"op": "test", "path": "/spec/size", "value": 4}], "testing value /spec/size failed"),
        ([{"op": "test", "path": "/spec/absent", "value": 4}], "testing value /spec/absent failed"),
        ([{"op": "move", "from": "/spec/absent", "path": "/spec/x"}], "move operation does not apply"),
        ([{"op": "frobnicate", "path": "/spec"}], "Unexpected kind: frobnicate"),
        ([{"path": "/spec"}], "Unexpected kind: unknown"),
        ([{"op": "add", "path": "/spec/tags/7", "value": "x"}], "add operation does not apply"),
        (
            [{"op": "add", "path": "/spec/ok", "value": 1}, {"op": "remove", "path": "/spec/absent"}],
            "error in remove",
        ),
    ],
)
def test_json_patch_failures_are_422(ops: list[dict[str, Any]], detail: str) -> None:
    target = copy.deepcopy(WIDGET)
    with pytest.raises(PatchError) as info:
        json_patch(target, ops)
    assert info.value.code == 422
    assert detail in info.value.detail
    assert target == WIDGET  # atomic: nothing applied, input untouched


@pytest.mark.parametrize("ops", [{"op": "add", "path": "/a", "value": 1}, "add", None, ["add"]])
def test_json_patch_malformed_documents_are_400(ops: Any) -> None:
    with pytest.raises(PatchError) as info:
        json_patch(WIDGET, ops)
    assert info.value.code == 400
    assert info.value.reason == "BadRequest"


# ----------------------------------------------------------------------------------------------------------------
# strategic merge patch
# ----------------------------------------------------------------------------------------------------------------

POD: dict[str, Any] = {
    "apiVersion": "v1",
    "kind": "Pod",
    "metadata": {"name": "p", "finalizers": ["a.example.com/x", "b.example.com/y"]},
    "spec": {
        "containers": [
            {
                "name": "a",
                "image": "busybox",
                "args": ["sleep", "10"],
                "env": [{"name": "X", "value": "1"}, {"name": "Y", "value": "2"}],
                "ports": [{"containerPort": 80, "name": "http"}],
                "volumeMounts": [{"mountPath": "/data", "name": "d"}],
            },
            {"name": "b", "image": "busybox"},
        ],
        "volumes": [{"name": "d", "emptyDir": {}}],
        "tolerations": [{"key": "t1", "operator": "Exists"}],
    },
}


def test_smp_kubectl_client_side_apply_body() -> None:
    """The body kubectl v1.35 sent for a built-in (C3), applied to the object it was computed from."""
    patch = {
        "metadata": {
            "$deleteFromPrimitiveList/finalizers": ["a.example.com/x"],
            "$setElementOrder/finalizers": ["b.example.com/y"],
            "finalizers": ["b.example.com/y"],
        },
        "spec": {
            "$setElementOrder/containers": [{"name": "b"}, {"name": "a"}],
            "containers": [
                {"image": "alpine", "name": "b"},
                {
                    "$setElementOrder/env": [{"name": "Y"}],
                    "env": [{"name": "Y", "value": "3"}, {"$patch": "delete", "name": "X"}],
                    "name": "a",
                },
            ],
        },
    }
    original_patch = copy.deepcopy(patch)
    result = strategic_merge_patch(POD, patch)
    assert result["metadata"]["finalizers"] == ["b.example.com/y"]
    assert [c["name"] for c in result["spec"]["containers"]] == ["b", "a"]
    b, a = result["spec"]["containers"]
    assert b == {"name": "b", "image": "alpine"}
    assert a["env"] == [{"name": "Y", "value": "3"}]
    assert a["image"] == "busybox"  # untouched fields of merged items stay
    assert a["args"] == ["sleep", "10"]
    assert patch == original_patch
    assert POD["metadata"]["finalizers"] == ["a.example.com/x", "b.example.com/y"]
    assert not any(k.startswith("$") for k in result["metadata"])


@pytest.mark.parametrize(
    ("patch", "check"),
    [
        # containers merge by name; a changed image keeps the rest of the container
        (
            {"spec": {"containers": [{"name": "b", "image": "alpine"}]}},
            lambda r: (
                [c["image"] for c in r["spec"]["containers"]] == ["busybox", "alpine"]
                and len(r["spec"]["containers"][0]["env"]) == 2
            ),
        ),
        # a new container is added; apimachinery puts items new to the list first when no order is given
        (
            {"spec": {"containers": [{"name": "c", "image": "nginx"}]}},
            lambda r: [c["name"] for c in r["spec"]["containers"]] == ["c", "a", "b"],
        ),
        # $setElementOrder places new items explicitly
        (
            {
                "spec": {
                    "$setElementOrder/containers": [{"name": "a"}, {"name": "b"}, {"name": "c"}],
                    "containers": [{"name": "c", "image": "nginx"}],
                }
            },
            lambda r: [c["name"] for c in r["spec"]["containers"]] == ["a", "b", "c"],
        ),
        # $patch: delete on a list item removes it by merge key
        (
            {"spec": {"containers": [{"name": "b", "$patch": "delete"}]}},
            lambda r: [c["name"] for c in r["spec"]["containers"]] == ["a"],
        ),
        # $patch: replace inside a list replaces the whole list
        (
            {"spec": {"containers": [{"$patch": "replace"}, {"name": "z", "image": "z"}]}},
            lambda r: r["spec"]["containers"] == [{"name": "z", "image": "z"}],
        ),
        # a list item carrying $patch: replace is itself dropped: the list becomes the other items (here none)
        (
            {"spec": {"containers": [{"name": "a", "$patch": "replace", "image": "only"}]}},
            lambda r: r["spec"]["containers"] == [],
        ),
        # $patch: replace on a map replaces the map
        (
            {"spec": {"$patch": "replace", "containers": [{"name": "z"}]}},
            lambda r: r["spec"] == {"containers": [{"name": "z"}]},
        ),
        # $patch: delete on a map empties it (apimachinery returns an empty map)
        (
            {"spec": {"volumes": [{"name": "d", "emptyDir": {"$patch": "delete"}}]}},
            lambda r: r["spec"]["volumes"][0]["emptyDir"] == {},
        ),
        # $patch: merge is the default
        (
            {"metadata": {"$patch": "merge", "labels": {"a": "b"}}},
            lambda r: r["metadata"]["labels"] == {"a": "b"} and r["metadata"]["name"] == "p",
        ),
        # env merges by name, args are atomic
        (
            {"spec": {"containers": [{"name": "a", "env": [{"name": "Z", "value": "9"}], "args": ["run"]}]}},
            lambda r: (
                [e["name"] for e in r["spec"]["containers"][0]["env"]] == ["Z", "X", "Y"]
                and r["spec"]["containers"][0]["args"] == ["run"]
            ),
        ),
        # volumeMounts merge by mountPath
        (
            {"spec": {"containers": [{"name": "a", "volumeMounts": [{"mountPath": "/data", "readOnly": True}]}]}},
            lambda r: (
                r["spec"]["containers"][0]["volumeMounts"] == [{"mountPath": "/data", "name": "d", "readOnly": True}]
            ),
        ),
        # container ports merge by containerPort
        (
            {
                "spec": {
                    "containers": [
                        {"name": "a", "ports": [{"containerPort": 80, "protocol": "TCP"}, {"containerPort": 81}]}
                    ]
                }
            },
            lambda r: (
                r["spec"]["containers"][0]["ports"]
                == [{"containerPort": 80, "name": "http", "protocol": "TCP"}, {"containerPort": 81}]
            ),
        ),
        # tolerations have no patch strategy: replaced
        (
            {"spec": {"tolerations": [{"key": "t2", "operator": "Exists"}]}},
            lambda r: r["spec"]["tolerations"] == [{"key": "t2", "operator": "Exists"}],
        ),
        # finalizers are a merged set of strings
        (
            {"metadata": {"finalizers": ["b.example.com/y", "c.example.com/z"]}},
            lambda r: sorted(r["metadata"]["finalizers"]) == ["a.example.com/x", "b.example.com/y", "c.example.com/z"],
        ),
        (
            {"metadata": {"$deleteFromPrimitiveList/finalizers": ["a.example.com/x"]}},
            lambda r: r["metadata"]["finalizers"] == ["b.example.com/y"],
        ),
        # null deletes a key
        ({"spec": {"tolerations": None}}, lambda r: "tolerations" not in r["spec"]),
        ({"metadata": {"labels": {"gone": None}}}, lambda r: r["metadata"]["labels"] == {}),
        # $retainKeys clears the keys it does not list (volumes use retainKeys)
        (
            {"spec": {"volumes": [{"name": "d", "$retainKeys": ["configMap", "name"], "configMap": {"name": "cm"}}]}},
            lambda r: r["spec"]["volumes"] == [{"name": "d", "configMap": {"name": "cm"}}],
        ),
        # a list the original lacks is taken from the patch with directives stripped
        (
            {"spec": {"initContainers": [{"name": "i", "image": "x"}, {"name": "j", "$patch": "delete"}]}},
            lambda r: r["spec"]["initContainers"] == [{"name": "i", "image": "x"}],
        ),
        ({}, lambda r: r == POD),
    ],
)
def test_smp_directives(patch: dict[str, Any], check: Any) -> None:
    result = strategic_merge_patch(POD, patch)
    assert check(result), result


def test_smp_service_ports_merge_by_port_and_owner_refs_by_uid_and_conditions_by_type() -> None:
    service = {"spec": {"ports": [{"port": 80, "targetPort": 8080}, {"port": 443}]}}
    patched = strategic_merge_patch(service, {"spec": {"ports": [{"port": 80, "targetPort": 9090}]}})
    assert patched["spec"]["ports"] == [{"port": 80, "targetPort": 9090}, {"port": 443}]

    owned = {"metadata": {"ownerReferences": [{"uid": "1", "name": "a"}, {"uid": "2", "name": "b"}]}}
    patched = strategic_merge_patch(owned, {"metadata": {"ownerReferences": [{"uid": "2", "$patch": "delete"}]}})
    assert patched["metadata"]["ownerReferences"] == [{"uid": "1", "name": "a"}]

    status = {
        "status": {"conditions": [{"type": "Ready", "status": "False"}, {"type": "Initialized", "status": "True"}]}
    }
    patched = strategic_merge_patch(status, {"status": {"conditions": [{"type": "Ready", "status": "True"}]}})
    assert patched["status"]["conditions"] == [
        {"type": "Ready", "status": "True"},
        {"type": "Initialized", "status": "True"},
    ]


@pytest.mark.parametrize(
    ("patch", "code"),
    [
        (["not", "a", "map"], 400),
        ({"spec": {"$retainKeys": "name"}}, 400),
        ({"spec": {"volumes": [{"name": "d", "$retainKeys": ["name"], "emptyDir": {}}]}}, 400),
        ({"metadata": {"$deleteFromPrimitiveList/finalizers": "x"}}, 400),
        ({"spec": {"$setElementOrder/containers": "x"}}, 400),
        ({"spec": {"containers": [{"image": "no-name"}]}}, 422),
        ({"spec": {"containers": [{"$patch": "delete", "image": "no-name"}]}}, 422),
        ({"spec": {"$patch": "explode"}}, 422),
    ],
)
def test_smp_errors(patch: Any, code: int) -> None:
    with pytest.raises(PatchError) as info:
        strategic_merge_patch(POD, patch)
    assert info.value.code == code


# ----------------------------------------------------------------------------------------------------------------
# FieldsV1 and managedFields
# ----------------------------------------------------------------------------------------------------------------

HELM_CONFIGMAP: dict[str, Any] = {
    "apiVersion": "v1",
    "kind": "ConfigMap",
    "metadata": {
        "annotations": {"meta.helm.sh/release-name": "r1", "meta.helm.sh/release-namespace": "default"},
        "labels": {"app.kubernetes.io/managed-by": "Helm"},
        "name": "r1-cfg",
        "namespace": "default",
    },
    "data": {"size": "3"},
}


def test_fields_v1_of_helm_apply_body() -> None:
    assert fields_v1(HELM_CONFIGMAP) == {
        "f:metadata": {
            "f:annotations": {"f:meta.helm.sh/release-name": {}, "f:meta.helm.sh/release-namespace": {}},
            "f:labels": {"f:app.kubernetes.io/managed-by": {}},
        },
        "f:data": {"f:size": {}},
    }


def test_fields_v1_keyed_lists_sets_and_atomic_lists() -> None:
    pod = {
        "metadata": {"name": "p", "uid": "u", "resourceVersion": "1", "finalizers": ["x/y"]},
        "spec": {"containers": [{"name": "a", "image": "i", "args": ["1"], "ports": [{"containerPort": 80}]}]},
    }
    assert fields_v1(pod) == {
        "f:metadata": {"f:finalizers": {'v:"x/y"': {}}},
        "f:spec": {
            "f:containers": {
                'k:{"name":"a"}': {
                    ".": {},
                    "f:name": {},
                    "f:image": {},
                    "f:args": {},
                    "f:ports": {'k:{"containerPort":80}': {".": {}, "f:containerPort": {}}},
                }
            }
        },
    }
    # custom resources: lists are atomic unless they are metadata lists
    cr = {"spec": {"containers": [{"name": "a"}]}, "metadata": {"finalizers": ["f"]}}
    assert fields_v1(cr, builtin=False) == {
        "f:metadata": {"f:finalizers": {'v:"f"': {}}},
        "f:spec": {"f:containers": {}},
    }


def test_owned_paths_round_trip() -> None:
    fields = fields_v1(POD)
    paths = owned_paths(fields)
    assert ("f:spec", "f:containers", 'k:{"name":"a"}', ".") in paths
    assert ("f:spec", "f:containers", 'k:{"name":"a"}', "f:image") in paths
    assert ("f:metadata", "f:finalizers", 'v:"a.example.com/x"') in paths
    assert fields_from_paths(paths) == fields


def test_update_managed_fields_apply_replaces_and_update_unions_and_transfers() -> None:
    obj = copy.deepcopy(HELM_CONFIGMAP)
    update_managed_fields(obj, manager="helm", operation="Apply", api_version="v1", fields=fields_v1(obj), time="T1")
    (entry,) = obj["metadata"]["managedFields"]
    assert entry == {
        "manager": "helm",
        "operation": "Apply",
        "apiVersion": "v1",
        "time": "T1",
        "fieldsType": "FieldsV1",
        "fieldsV1": fields_v1(HELM_CONFIGMAP),
    }

    # Re-apply with fewer fields: the Apply set is replaced, not unioned.
    update_managed_fields(
        obj, manager="helm", operation="Apply", api_version="v1", fields={"f:data": {"f:size": {}}}, time="T2"
    )
    assert obj["metadata"]["managedFields"] == [{**entry, "time": "T2", "fieldsV1": {"f:data": {"f:size": {}}}}]

    # An Update by another manager that changes data.size takes ownership of it: helm's entry, now empty, goes.
    before = copy.deepcopy(obj)
    obj["data"]["size"] = "4"
    obj["metadata"]["labels"]["extra"] = "x"
    update_managed_fields(
        obj, manager="kubectl-edit", operation="Update", api_version="v1", fields=changed_fields(before, obj), time="T3"
    )
    (edit,) = obj["metadata"]["managedFields"]
    assert edit["manager"] == "kubectl-edit"
    assert edit["fieldsV1"] == {"f:data": {"f:size": {}}, "f:metadata": {"f:labels": {"f:extra": {}}}}

    # A second Update by the same manager unions its sets and keeps one entry.
    update_managed_fields(
        obj, manager="kubectl-edit", operation="Update", api_version="v1", fields={"f:data": {"f:other": {}}}, time="T4"
    )
    (edit,) = obj["metadata"]["managedFields"]
    assert edit["fieldsV1"]["f:data"] == {"f:other": {}, "f:size": {}}
    assert edit["time"] == "T4"


def test_update_managed_fields_subresource_and_default_fields() -> None:
    obj: dict[str, Any] = {"metadata": {"name": "w"}, "spec": {"a": 1}, "status": {"phase": "x"}}
    update_managed_fields(obj, manager="kopf", operation="Update", api_version="example.com/v1", fields=None, time="T")
    update_managed_fields(
        obj,
        manager="kopf",
        operation="Update",
        api_version="example.com/v1",
        fields={"f:status": {"f:phase": {}}},
        time="T",
        subresource="status",
    )
    main, status = obj["metadata"]["managedFields"]
    assert "subresource" not in main
    assert main["fieldsV1"] == {"f:spec": {"f:a": {}}}  # status moved to the /status entry
    assert status["subresource"] == "status"
    assert status["fieldsV1"] == {"f:status": {"f:phase": {}}}


def test_changed_fields_records_only_differences() -> None:
    old = {
        "metadata": {"name": "p", "labels": {"a": "1"}},
        "spec": {"containers": [{"name": "a", "image": "x"}, {"name": "b"}]},
    }
    new = {
        "metadata": {"name": "p", "labels": {"a": "1", "b": "2"}, "resourceVersion": "9"},
        "spec": {"containers": [{"name": "a", "image": "y"}, {"name": "b"}, {"name": "c"}]},
    }
    assert changed_fields(old, new) == {
        "f:metadata": {"f:labels": {"f:b": {}}},
        "f:spec": {
            "f:containers": {
                'k:{"name":"a"}': {"f:image": {}},
                'k:{"name":"c"}': {".": {}, "f:name": {}},
            }
        },
    }
    assert changed_fields(None, new) == fields_v1(new)
    assert changed_fields(old, old) == {}


# ----------------------------------------------------------------------------------------------------------------
# server-side apply
# ----------------------------------------------------------------------------------------------------------------


def _applied(obj: dict[str, Any], manager: str, applied: dict[str, Any]) -> dict[str, Any]:
    update_managed_fields(
        obj, manager=manager, operation="Apply", api_version="v1", fields=fields_v1(applied), time="T"
    )
    return obj


def test_apply_creates_when_absent() -> None:
    created = apply_patch(None, HELM_CONFIGMAP, manager="helm", force=False)
    assert created == HELM_CONFIGMAP
    assert created is not HELM_CONFIGMAP
    assert apply_patch(None, {"a": None, "b": {"c": None}}, manager="m", force=False) == {"b": {}}


def test_apply_updates_only_given_fields_and_keeps_others() -> None:
    live = _applied(copy.deepcopy(HELM_CONFIGMAP), "helm", HELM_CONFIGMAP)
    live["metadata"].update(uid="u1", resourceVersion="7")
    live["metadata"]["annotations"]["kopf.zalando.org/last-handled-configuration"] = "{}"  # another writer's field
    applied = copy.deepcopy(HELM_CONFIGMAP)
    applied["data"]["size"] = "5"
    result = apply_patch(live, applied, manager="helm", force=False)
    assert result["data"] == {"size": "5"}
    assert result["metadata"]["uid"] == "u1"
    assert result["metadata"]["annotations"]["kopf.zalando.org/last-handled-configuration"] == "{}"
    assert live["data"] == {"size": "3"}  # input untouched


def test_apply_removes_fields_the_manager_dropped() -> None:
    first = copy.deepcopy(HELM_CONFIGMAP)
    first["data"]["old"] = "x"
    live = _applied(copy.deepcopy(first), "helm", first)
    result = apply_patch(live, HELM_CONFIGMAP, manager="helm", force=False)
    assert result["data"] == {"size": "3"}

    # Another manager's apply never removes helm's fields.
    other = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "r1-cfg"}, "data": {"size": "3"}}
    kept = apply_patch(live, other, manager="kubectl", force=True)
    assert kept["data"] == {"size": "3", "old": "x"}


def test_apply_keeps_dropped_fields_another_manager_owns() -> None:
    first = copy.deepcopy(HELM_CONFIGMAP)
    first["data"]["shared"] = "x"
    live = _applied(copy.deepcopy(first), "helm", first)
    update_managed_fields(
        live,
        manager="kubectl-edit",
        operation="Update",
        api_version="v1",
        fields={"f:data": {"f:shared": {}}},
        time="T",
    )
    result = apply_patch(live, HELM_CONFIGMAP, manager="helm", force=False)
    assert result["data"] == {"size": "3", "shared": "x"}


def test_apply_merges_keyed_lists_and_removes_dropped_items() -> None:
    def deployment(*containers: dict[str, Any]) -> dict[str, Any]:
        return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": {"containers": list(containers)}}

    v1 = deployment({"name": "a", "image": "a:1"}, {"name": "b", "image": "b:1"})
    live = _applied(copy.deepcopy(v1), "kubectl", v1)
    live["spec"]["containers"][0]["imagePullPolicy"] = "IfNotPresent"  # defaulted by the server, owned by nobody
    live["spec"]["containers"].append({"name": "sidecar", "image": "s"})  # injected by someone else
    update_managed_fields(
        live,
        manager="injector",
        operation="Update",
        api_version="v1",
        fields={"f:spec": {"f:containers": {'k:{"name":"sidecar"}': {".": {}, "f:image": {}, "f:name": {}}}}},
        time="T",
    )
    v2 = deployment({"name": "a", "image": "a:2"}, {"name": "c", "image": "c:1"})
    result = apply_patch(live, v2, manager="kubectl", force=False)
    assert result["spec"]["containers"] == [
        {"name": "a", "image": "a:2", "imagePullPolicy": "IfNotPresent"},
        {"name": "sidecar", "image": "s"},  # live-only items keep their place (structured-merge-diff order)
        {"name": "c", "image": "c:1"},
    ]


def test_apply_list_order_follows_applied_order_for_shared_items() -> None:
    live = {"metadata": {"name": "p"}, "spec": {"containers": [{"name": "a"}, {"name": "x"}, {"name": "b"}]}}
    applied = {"metadata": {"name": "p"}, "spec": {"containers": [{"name": "n"}, {"name": "b"}, {"name": "a"}]}}
    result = apply_patch(live, applied, manager="m", force=False)
    assert [c["name"] for c in result["spec"]["containers"]] == ["n", "b", "a", "x"]


def test_apply_rejects_non_objects() -> None:
    with pytest.raises(PatchError) as info:
        apply_patch(HELM_CONFIGMAP, ["x"], manager="helm", force=False)
    assert info.value.code == 400
