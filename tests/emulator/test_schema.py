"""Structural-schema serving of custom resources: defaults, pruning, OpenAPI + CEL validation, CRD checks.

Expected messages are kube-apiserver's (go-openapi wording wrapped in apimachinery field errors).
"""

from __future__ import annotations

import copy
import time
from typing import Any

import pytest

from dops.emulator.schema import (
    StructuralSchema,
    aggregate_message,
    go_float,
    schema_at,
    status_causes,
    validate_crd,
)


def obj_with(spec: dict[str, Any], status: dict[str, Any] | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"}, "spec": spec}
    if status is not None:
        out["status"] = status
    return out


def spec_schema(props: dict[str, Any], **extra: Any) -> StructuralSchema:
    return StructuralSchema(
        {"type": "object", "properties": {"spec": {"type": "object", "properties": props, **extra}}}
    )


def messages(schema: StructuralSchema, spec: dict[str, Any]) -> list[str]:
    return [c["message"] for c in schema.validate(obj_with(spec))]


# --- OpenAPI keywords -----------------------------------------------------------------------------------

KEYWORD_CASES: list[tuple[str, dict[str, Any], Any, list[tuple[str, str]]]] = [
    # (id, property schema, value, [(reason, message)])
    (
        "type-integer",
        {"type": "integer"},
        "a",
        [
            (
                "FieldValueTypeInvalid",
                'spec.x: Invalid value: "string": spec.x in body must be of type integer: "string"',
            )
        ],
    ),
    ("integer-ok", {"type": "integer"}, 5, []),
    ("integer-accepts-integral-float", {"type": "integer"}, 2.0, []),
    (
        "integer-rejects-bool",
        {"type": "integer"},
        True,
        [
            (
                "FieldValueTypeInvalid",
                'spec.x: Invalid value: "boolean": spec.x in body must be of type integer: "boolean"',
            )
        ],
    ),
    (
        "integer-rejects-fraction",
        {"type": "integer"},
        1.5,
        [
            (
                "FieldValueTypeInvalid",
                'spec.x: Invalid value: "number": spec.x in body must be of type integer: "number"',
            )
        ],
    ),
    ("number-accepts-int", {"type": "number"}, 3, []),
    (
        "string-rejects-object",
        {"type": "string"},
        {"a": 1},
        [("FieldValueTypeInvalid", 'spec.x: Invalid value: "object": spec.x in body must be of type string: "object"')],
    ),
    (
        "boolean",
        {"type": "boolean"},
        "true",
        [
            (
                "FieldValueTypeInvalid",
                'spec.x: Invalid value: "string": spec.x in body must be of type boolean: "string"',
            )
        ],
    ),
    (
        "array",
        {"type": "array", "items": {"type": "string"}},
        "a",
        [("FieldValueTypeInvalid", 'spec.x: Invalid value: "string": spec.x in body must be of type array: "string"')],
    ),
    (
        "null-not-nullable",
        {"type": "string"},
        None,
        [("FieldValueTypeInvalid", 'spec.x: Invalid value: "null": spec.x in body must be of type string: "null"')],
    ),
    ("null-nullable", {"type": "string", "nullable": True}, None, []),
    (
        "enum",
        {"type": "string", "enum": ["queued", "running"]},
        "bogus",
        [("FieldValueNotSupported", 'spec.x: Unsupported value: "bogus": supported values: "queued", "running"')],
    ),
    (
        "enum-int",
        {"type": "integer", "enum": [1, 2]},
        3,
        [("FieldValueNotSupported", 'spec.x: Unsupported value: 3: supported values: "1", "2"')],
    ),
    (
        "maximum",
        {"type": "number", "maximum": 1},
        1.5,
        [("FieldValueInvalid", "spec.x: Invalid value: 1.5: spec.x in body should be less than or equal to 1")],
    ),
    ("maximum-equal-ok", {"type": "number", "maximum": 1}, 1, []),
    (
        "exclusive-maximum",
        {"type": "integer", "maximum": 10, "exclusiveMaximum": True},
        10,
        [("FieldValueInvalid", "spec.x: Invalid value: 10: spec.x in body should be less than 10")],
    ),
    (
        "minimum",
        {"type": "integer", "minimum": 0},
        -1,
        [("FieldValueInvalid", "spec.x: Invalid value: -1: spec.x in body should be greater than or equal to 0")],
    ),
    (
        "exclusive-minimum",
        {"type": "number", "minimum": 0, "exclusiveMinimum": True},
        0,
        [("FieldValueInvalid", "spec.x: Invalid value: 0: spec.x in body should be greater than 0")],
    ),
    (
        "big-maximum-go-format",
        {"type": "integer", "maximum": 1000000},
        1000001,
        [("FieldValueInvalid", "spec.x: Invalid value: 1000001: spec.x in body should be less than or equal to 1e+06")],
    ),
    (
        "multipleOf",
        {"type": "integer", "multipleOf": 5},
        7,
        [("FieldValueInvalid", "spec.x: Invalid value: 7: spec.x in body should be a multiple of 5")],
    ),
    ("multipleOf-ok", {"type": "number", "multipleOf": 0.5}, 2.5, []),
    (
        "maxLength",
        {"type": "string", "maxLength": 3},
        "abcd",
        [("FieldValueTooLong", "spec.x: Too long: may not be more than 3 bytes")],
    ),
    (
        "minLength",
        {"type": "string", "minLength": 2},
        "a",
        [("FieldValueInvalid", 'spec.x: Invalid value: "a": spec.x in body should be at least 2 chars long')],
    ),
    (
        "pattern",
        {"type": "string", "pattern": "^[a-z]+$"},
        "ABC",
        [("FieldValueInvalid", "spec.x: Invalid value: \"ABC\": spec.x in body should match '^[a-z]+$'")],
    ),
    ("pattern-unanchored-search", {"type": "string", "pattern": "[0-9]"}, "ab1", []),
    (
        "format-date-time",
        {"type": "string", "format": "date-time"},
        "yesterday",
        [
            (
                "FieldValueTypeInvalid",
                'spec.x: Invalid value: "yesterday": spec.x in body must be of type date-time: "yesterday"',
            )
        ],
    ),
    ("format-date-time-ok", {"type": "string", "format": "date-time"}, "2024-05-01T10:00:00Z", []),
    ("format-date-time-offset-ok", {"type": "string", "format": "date-time"}, "2024-05-01T10:00:00.5+02:00", []),
    (
        "format-date",
        {"type": "string", "format": "date"},
        "2024-02-30",
        [
            (
                "FieldValueTypeInvalid",
                'spec.x: Invalid value: "2024-02-30": spec.x in body must be of type date: "2024-02-30"',
            )
        ],
    ),
    (
        "format-byte",
        {"type": "string", "format": "byte"},
        "not base64!",
        [
            (
                "FieldValueTypeInvalid",
                'spec.x: Invalid value: "not base64!": spec.x in body must be of type byte: "not base64!"',
            )
        ],
    ),
    ("format-int32-ignored", {"type": "integer", "format": "int32"}, 5, []),
    ("format-unknown-ignored", {"type": "string", "format": "whatever"}, "x", []),
    (
        "minItems",
        {"type": "array", "items": {"type": "string"}, "minItems": 1},
        [],
        [("FieldValueInvalid", "spec.x: Invalid value: 0: spec.x in body should have at least 1 items")],
    ),
    (
        "maxItems",
        {"type": "array", "items": {"type": "string"}, "maxItems": 2},
        ["a", "b", "c"],
        [("FieldValueTooMany", "spec.x: Too many: 3: must have at most 2 items")],
    ),
    (
        "uniqueItems",
        {"type": "array", "items": {"type": "integer"}, "uniqueItems": True},
        [1, 1],
        [("FieldValueInvalid", 'spec.x: Invalid value: "": spec.x in body shouldn\'t contain duplicates')],
    ),
    (
        "maxProperties",
        {"type": "object", "additionalProperties": {"type": "string"}, "maxProperties": 1},
        {"a": "1", "b": "2"},
        [("FieldValueTooMany", "spec.x: Too many: 2: must have at most 1 item")],
    ),
    (
        "minProperties",
        {"type": "object", "additionalProperties": {"type": "string"}, "minProperties": 1},
        {},
        [("FieldValueInvalid", "spec.x: Invalid value: 0: spec.x in body should have at least 1 properties")],
    ),
    (
        "additionalProperties-value-type",
        {"type": "object", "additionalProperties": {"type": "integer"}},
        {"a": "b"},
        [
            (
                "FieldValueTypeInvalid",
                'spec.x.a: Invalid value: "string": spec.x.a in body must be of type integer: "string"',
            )
        ],
    ),
    (
        "items-path",
        {"type": "array", "items": {"type": "object", "properties": {"name": {"type": "string"}}}},
        [{"name": "a"}, {"name": "b"}, {"name": 3}],
        [
            (
                "FieldValueTypeInvalid",
                'spec.x[2].name: Invalid value: "integer": spec.x[2].name in body must be of type string: "integer"',
            )
        ],
    ),
    ("int-or-string-int", {"x-kubernetes-int-or-string": True}, 80, []),
    ("int-or-string-str", {"x-kubernetes-int-or-string": True}, "http", []),
    (
        "int-or-string-bool",
        {"x-kubernetes-int-or-string": True},
        True,
        [
            (
                "FieldValueTypeInvalid",
                'spec.x: Invalid value: "boolean": spec.x in body must be of type integer,string: "boolean"',
            )
        ],
    ),
    ("preserve-untyped-anything", {"x-kubernetes-preserve-unknown-fields": True}, [1, {"a": None}], []),
    (
        "list-type-set-duplicate",
        {"type": "array", "items": {"type": "string"}, "x-kubernetes-list-type": "set"},
        ["a", "b", "a"],
        [("FieldValueDuplicate", 'spec.x[2]: Duplicate value: "a"')],
    ),
    (
        "list-type-map-duplicate",
        {
            "type": "array",
            "x-kubernetes-list-type": "map",
            "x-kubernetes-list-map-keys": ["name"],
            "items": {
                "type": "object",
                "required": ["name"],
                "properties": {"name": {"type": "string"}, "v": {"type": "integer"}},
            },
        },
        [{"name": "a", "v": 1}, {"name": "a", "v": 2}],
        [("FieldValueDuplicate", 'spec.x[1]: Duplicate value: {"name":"a"}')],  # json.Marshal of the key map
    ),
    (
        "list-type-atomic-allows-duplicates",
        {"type": "array", "items": {"type": "string"}, "x-kubernetes-list-type": "atomic"},
        ["a", "a"],
        [],
    ),
    (
        "embedded-resource-requires-apiVersion-kind",
        {"type": "object", "x-kubernetes-embedded-resource": True, "x-kubernetes-preserve-unknown-fields": True},
        {"metadata": {"name": "a"}},
        [
            ("FieldValueRequired", "spec.x.apiVersion: Required value: must not be empty"),
            ("FieldValueRequired", "spec.x.kind: Required value: must not be empty"),
        ],
    ),
    (
        "embedded-resource-ok",
        {"type": "object", "x-kubernetes-embedded-resource": True, "x-kubernetes-preserve-unknown-fields": True},
        {"apiVersion": "v1", "kind": "ConfigMap", "data": {"a": "b"}},
        [],
    ),
    (
        "anyOf-fails",
        {"type": "integer", "anyOf": [{"minimum": 10}, {"maximum": 0}]},
        5,
        [
            ("FieldValueInvalid", "spec.x: Invalid value: 5: spec.x in body should be greater than or equal to 10"),
            ("FieldValueInvalid", "spec.x: Invalid value: 5: spec.x in body should be less than or equal to 0"),
            ("FieldValueInvalid", '<nil>: Invalid value: "": "spec.x" must validate at least one schema (anyOf)'),
        ],
    ),
    ("anyOf-ok", {"type": "integer", "anyOf": [{"minimum": 10}, {"maximum": 0}]}, 11, []),
    (
        "allOf",
        {"type": "string", "allOf": [{"maxLength": 5}, {"pattern": "^a"}]},
        "bbb",
        [("FieldValueInvalid", "spec.x: Invalid value: \"bbb\": spec.x in body should match '^a'")],
    ),
    (
        "oneOf-both-match",
        {"type": "integer", "oneOf": [{"minimum": 0}, {"maximum": 10}]},
        5,
        [("FieldValueInvalid", '<nil>: Invalid value: "": "spec.x" must validate one and only one schema (oneOf)')],
    ),
    (
        "not",
        {"type": "string", "not": {"enum": ["forbidden"]}},
        "forbidden",
        [("FieldValueInvalid", '<nil>: Invalid value: "": "spec.x" must not validate the schema (not)')],
    ),
]


@pytest.mark.parametrize(
    ("schema", "value", "expected"), [c[1:] for c in KEYWORD_CASES], ids=[c[0] for c in KEYWORD_CASES]
)
def test_keyword(schema: dict[str, Any], value: Any, expected: list[tuple[str, str]]) -> None:
    s = spec_schema({"x": schema})
    causes = s.validate(obj_with({"x": value}))
    assert [(c["reason"], c["message"]) for c in causes] == expected


def test_required_and_field() -> None:
    s = spec_schema({"operator": {"type": "string"}}, required=["operator"])
    causes = s.validate(obj_with({}))
    assert causes == [
        {"reason": "FieldValueRequired", "message": "spec.operator: Required value", "field": "spec.operator"}
    ]


def test_required_root_property() -> None:
    s = StructuralSchema({"type": "object", "required": ["spec"], "properties": {"spec": {"type": "object"}}})
    assert [c["message"] for c in s.validate({"apiVersion": "a/v1", "kind": "K", "metadata": {}})] == [
        "spec: Required value"
    ]


def test_root_metadata_apiversion_kind_not_validated_or_pruned() -> None:
    s = spec_schema({"a": {"type": "string"}})
    obj = obj_with({"a": "x"})
    obj["metadata"] = {"name": "w", "labels": {"x": "y"}, "annotations": {"k": "v"}}
    assert s.prune(obj) == []
    assert obj["metadata"]["labels"] == {"x": "y"}
    assert s.validate(obj) == []


def test_valid_object_has_no_causes() -> None:
    s = spec_schema(
        {
            "size": {"type": "integer", "minimum": 0},
            "state": {"type": "string", "enum": ["queued", "running"]},
            "progress": {"type": "number", "maximum": 1},
        },
        required=["size"],
    )
    assert s.validate(obj_with({"size": 1, "state": "queued", "progress": 0.5})) == []


# --- defaults -------------------------------------------------------------------------------------------

DEFAULT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "spec": {
            "type": "object",
            "default": {},
            "properties": {
                "size": {"type": "integer", "default": 3},
                "mode": {"type": "string", "default": "fast"},
                "nullable": {"type": "string", "nullable": True, "default": "d"},
                "nested": {
                    "type": "object",
                    "default": {},
                    "properties": {
                        "deep": {"type": "object", "properties": {"leaf": {"type": "integer", "default": 7}}}
                    },
                },
                "list": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "default": {"name": "from-items-default"},
                        "properties": {"name": {"type": "string"}, "port": {"type": "integer", "default": 80}},
                    },
                },
                "labels": {"type": "object", "additionalProperties": {"type": "string", "default": "x"}},
                "shared": {"type": "array", "items": {"type": "string"}, "default": ["a"]},
            },
        },
        "status": {"type": "object", "properties": {"phase": {"type": "string", "default": "Pending"}}},
    },
}

DEFAULT_CASES: list[tuple[str, dict[str, Any], dict[str, Any]]] = [
    (
        "absent-spec-gets-default-and-inner-defaults",
        {},
        {"spec": {"size": 3, "mode": "fast", "nullable": "d", "nested": {}, "shared": ["a"]}},
    ),
    (
        "present-values-kept",
        {"spec": {"size": 5, "mode": "slow", "nullable": None, "nested": {}, "shared": []}},
        {"spec": {"size": 5, "mode": "slow", "nullable": None, "nested": {}, "shared": []}},
    ),
    (
        "non-nullable-null-is-defaulted",
        {"spec": {"size": None}},
        {"spec": {"size": 3, "mode": "fast", "nullable": "d", "nested": {}, "shared": ["a"]}},
    ),
    (
        "nested-levels-items-and-additionalProperties",
        {
            "spec": {
                "nested": {"deep": {}},
                "list": [{"name": "a"}, None, {"name": "b", "port": 1}],
                "labels": {"k": None, "j": "v"},
            },
            "status": {},
        },
        {
            "spec": {
                "size": 3,
                "mode": "fast",
                "nullable": "d",
                "nested": {"deep": {"leaf": 7}},
                "list": [
                    {"name": "a", "port": 80},
                    {"name": "from-items-default", "port": 80},
                    {"name": "b", "port": 1},
                ],
                "labels": {"k": "x", "j": "v"},
                "shared": ["a"],
            },
            "status": {"phase": "Pending"},
        },
    ),
]


@pytest.mark.parametrize(("given", "expected"), [c[1:] for c in DEFAULT_CASES], ids=[c[0] for c in DEFAULT_CASES])
def test_defaults(given: dict[str, Any], expected: dict[str, Any]) -> None:
    s = StructuralSchema(DEFAULT_SCHEMA)
    obj = {"apiVersion": "a/v1", "kind": "K", "metadata": {"name": "n"}, **copy.deepcopy(given)}
    s.apply_defaults(obj)
    assert {k: v for k, v in obj.items() if k not in ("apiVersion", "kind", "metadata")} == expected


def test_defaults_are_deep_copies() -> None:
    s = StructuralSchema(DEFAULT_SCHEMA)
    a: dict[str, Any] = {"spec": {}}
    b: dict[str, Any] = {"spec": {}}
    s.apply_defaults(a)
    s.apply_defaults(b)
    a["spec"]["shared"].append("mutated")
    assert b["spec"]["shared"] == ["a"]
    assert DEFAULT_SCHEMA["properties"]["spec"]["properties"]["shared"]["default"] == ["a"]


# --- pruning --------------------------------------------------------------------------------------------

PRUNE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "spec": {
            "type": "object",
            "properties": {
                "known": {"type": "string"},
                "free": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
                "mixed": {
                    "type": "object",
                    "x-kubernetes-preserve-unknown-fields": True,
                    "properties": {"typed": {"type": "object", "properties": {"a": {"type": "string"}}}},
                },
                "items": {"type": "array", "items": {"type": "object", "properties": {"name": {"type": "string"}}}},
                "map": {
                    "type": "object",
                    "additionalProperties": {"type": "object", "properties": {"v": {"type": "integer"}}},
                },
                "template": {
                    "type": "object",
                    "x-kubernetes-embedded-resource": True,
                    "properties": {"spec": {"type": "object"}},
                },
                "opaque": {"type": "object"},
                "nonnull": {"type": "string"},
            },
        },
    },
}

PRUNE_CASES: list[tuple[str, dict[str, Any], dict[str, Any], list[str]]] = [
    ("unknown-top-level", {"extra": 1, "spec": {}}, {"spec": {}}, ["extra"]),
    ("unknown-in-spec", {"spec": {"known": "a", "foo": 1}}, {"spec": {"known": "a"}}, ["spec.foo"]),
    (
        "preserve-unknown-keeps-everything",
        {"spec": {"free": {"a": {"b": [1, {"c": 2}]}}}},
        {"spec": {"free": {"a": {"b": [1, {"c": 2}]}}}},
        [],
    ),
    (
        "preserve-with-typed-property-still-prunes-inside-it",
        {"spec": {"mixed": {"anything": 1, "typed": {"a": "x", "zzz": 2}}}},
        {"spec": {"mixed": {"anything": 1, "typed": {"a": "x"}}}},
        ["spec.mixed.typed.zzz"],
    ),
    (
        "array-items",
        {"spec": {"items": [{"name": "a", "x": 1}, {"name": "b"}]}},
        {"spec": {"items": [{"name": "a"}, {"name": "b"}]}},
        ["spec.items[0].x"],
    ),
    (
        "additionalProperties-values",
        {"spec": {"map": {"k": {"v": 1, "w": 2}}}},
        {"spec": {"map": {"k": {"v": 1}}}},
        ["spec.map.k.w"],
    ),
    (
        "embedded-resource-keeps-type-and-object-meta",
        {"spec": {"template": {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": {}, "x": 1}}},
        {"spec": {"template": {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": {}}}},
        ["spec.template.x"],
    ),
    (
        "object-without-properties-prunes-all",
        {"spec": {"opaque": {"a": 1}}},
        {"spec": {"opaque": {}}},
        ["spec.opaque.a"],
    ),
    ("non-nullable-null-dropped-silently", {"spec": {"nonnull": None}}, {"spec": {}}, []),
]


@pytest.mark.parametrize(("given", "expected", "paths"), [c[1:] for c in PRUNE_CASES], ids=[c[0] for c in PRUNE_CASES])
def test_prune(given: dict[str, Any], expected: dict[str, Any], paths: list[str]) -> None:
    s = StructuralSchema(PRUNE_SCHEMA)
    meta = {"apiVersion": "a/v1", "kind": "K", "metadata": {"name": "n", "labels": {"a": "b"}}}
    obj = {**copy.deepcopy(meta), **copy.deepcopy(given)}
    before = copy.deepcopy(obj)
    assert s.unknown_fields(obj) == paths
    assert obj == before  # unknown_fields does not mutate
    assert s.prune(obj) == paths
    assert obj == {**meta, **expected}


def test_root_preserve_unknown_fields() -> None:
    s = StructuralSchema({"type": "object", "x-kubernetes-preserve-unknown-fields": True})
    obj = {"apiVersion": "a/v1", "kind": "K", "metadata": {}, "spec": {"anything": [1]}}
    assert s.prune(obj) == []
    assert obj["spec"] == {"anything": [1]}


# --- CEL ------------------------------------------------------------------------------------------------

OPERATOR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "x-kubernetes-validations": [
        {
            "rule": "!has(oldSelf.status) || oldSelf.status.runState == 'queued' "
            "|| self.spec.context == oldSelf.spec.context",
            "message": "spec.context cannot change once the run has started",
        }
    ],
    "properties": {
        "spec": {
            "type": "object",
            "properties": {
                "operator": {
                    "type": "string",
                    "x-kubernetes-validations": [{"rule": "self == oldSelf", "message": "spec.operator is immutable"}],
                },
                "context": {"type": "string"},
                "replicas": {"type": "integer"},
                "max": {"type": "integer"},
                "ratio": {"type": "number"},
                "name": {"type": "string"},
                "tags": {"type": "array", "items": {"type": "string"}},
            },
        },
        "status": {"type": "object", "properties": {"runState": {"type": "string"}}},
    },
}


def run_obj(operator: str = "op", context: str = "c1", run_state: str | None = None) -> dict[str, Any]:
    return obj_with({"operator": operator, "context": context}, None if run_state is None else {"runState": run_state})


def test_immutable_transition_rule() -> None:
    s = StructuralSchema(OPERATOR_SCHEMA)
    assert s.validate(run_obj("a")) == []  # create: transition rules skipped
    assert s.validate(run_obj("a"), run_obj("a")) == []
    causes = s.validate(run_obj("b"), run_obj("a"))
    assert causes == [
        {
            "reason": "FieldValueInvalid",
            "message": 'spec.operator: Invalid value: "b": spec.operator is immutable',
            "field": "spec.operator",
        }
    ]


def test_transition_rule_skipped_when_field_new() -> None:
    s = StructuralSchema(OPERATOR_SCHEMA)
    old = obj_with({"context": "c1"})
    assert s.validate(run_obj("b"), old) == []


@pytest.mark.parametrize(
    ("old_state", "new_context", "ok"),
    [
        (None, "c2", True),  # no status yet: free to change
        ("queued", "c2", True),
        ("running", "c1", True),  # unchanged context
        ("running", "c2", False),
    ],
)
def test_root_rule_gated_on_status(old_state: str | None, new_context: str, ok: bool) -> None:
    s = StructuralSchema(OPERATOR_SCHEMA)
    old = run_obj(context="c1", run_state=old_state)
    new = run_obj(context=new_context, run_state=old_state)
    causes = s.validate(new, old)
    if ok:
        assert causes == []
    else:
        assert causes == [
            {
                "reason": "FieldValueInvalid",
                "message": "<nil>: Invalid value: spec.context cannot change once the run has started",
                "field": "<nil>",
            }
        ]


def cel_spec(rule: dict[str, Any], spec: dict[str, Any], old: dict[str, Any] | None = None) -> list[str]:
    schema = copy.deepcopy(OPERATOR_SCHEMA)
    schema["properties"]["spec"]["x-kubernetes-validations"] = [rule]
    s = StructuralSchema(schema)
    return [c["message"] for c in s.validate(obj_with(spec), None if old is None else obj_with(old))]


CEL_CASES: list[tuple[str, dict[str, Any], dict[str, Any], list[str]]] = [
    ("pass", {"rule": "self.replicas <= self.max"}, {"replicas": 1, "max": 2}, []),
    (
        "no-message-uses-rule",
        {"rule": "self.replicas <= self.max"},
        {"replicas": 3, "max": 2},
        ["spec: Invalid value: failed rule: self.replicas <= self.max"],
    ),
    (
        "message",
        {"rule": "self.replicas <= self.max", "message": "replicas must not exceed max"},
        {"replicas": 3, "max": 2},
        ["spec: Invalid value: replicas must not exceed max"],
    ),
    (
        "messageExpression",
        {"rule": "self.replicas <= self.max", "messageExpression": "'replicas ' + string(self.replicas) + ' > max'"},
        {"replicas": 3, "max": 2},
        ["spec: Invalid value: replicas 3 > max"],
    ),
    (
        "reason-forbidden-with-fieldPath",
        {
            "rule": "!has(self.name)",
            "message": "name is not allowed",
            "reason": "FieldValueForbidden",
            "fieldPath": ".name",
        },
        {"name": "x"},
        ["spec.name: Forbidden: name is not allowed"],
    ),
    (
        "reason-required",
        {"rule": "has(self.name)", "message": "name is required", "reason": "FieldValueRequired", "fieldPath": ".name"},
        {},
        ["spec.name: Required value: name is required"],
    ),
    (
        "reason-duplicate",
        {"rule": "false", "reason": "FieldValueDuplicate"},
        {},
        ["spec: Duplicate value"],
    ),
    (
        "runtime-error-is-a-cause",
        {"rule": "self.name == 'a'", "message": "name must be a"},
        {},
        ['spec: Invalid value: "object": no such key: name evaluating rule: name must be a'],
    ),
    ("number-is-double", {"rule": "self.ratio < 0.5"}, {"ratio": 0}, []),
    ("string-functions", {"rule": "self.name.startsWith('a') && self.name.matches('^a[0-9]+$')"}, {"name": "a12"}, []),
    ("macros", {"rule": "self.tags.all(t, t.size() < 4) && self.tags.exists(t, t == 'ab')"}, {"tags": ["ab", "c"]}, []),
    ("in-and-ternary", {"rule": "(self.name in ['x', 'y'] ? 1 : 2) == 1"}, {"name": "y"}, []),
    (
        "optionalOldSelf-on-create",
        {"rule": "!oldSelf.hasValue() || self.name == oldSelf.value().name", "optionalOldSelf": True},
        {"name": "a"},
        [],
    ),
]


@pytest.mark.parametrize(("rule", "spec", "expected"), [c[1:] for c in CEL_CASES], ids=[c[0] for c in CEL_CASES])
def test_cel_rules(rule: dict[str, Any], spec: dict[str, Any], expected: list[str]) -> None:
    assert cel_spec(rule, spec) == expected


def test_optional_old_self_on_update() -> None:
    rule = {"rule": "!oldSelf.hasValue() || self.name == oldSelf.value().name", "optionalOldSelf": True}
    assert cel_spec(rule, {"name": "b"}, {"name": "b"}) == []
    assert cel_spec(rule, {"name": "b"}, {"name": "a"}) == [
        "spec: Invalid value: failed rule: !oldSelf.hasValue() || self.name == oldSelf.value().name"
    ]


def test_cel_skipped_when_schema_errors_block() -> None:
    messages_ = cel_spec({"rule": "false"}, {"replicas": "not-an-int"})
    assert messages_ == [
        'spec.replicas: Invalid value: "string": spec.replicas in body must be of type integer: "string"',
        '<nil>: Invalid value: "null": some validation rules were not checked because the object was invalid; '
        "correct the existing errors to complete validation",
    ]


def test_cel_on_list_items_and_map_values_paths() -> None:
    s = StructuralSchema(
        {
            "type": "object",
            "properties": {
                "spec": {
                    "type": "object",
                    "properties": {
                        "items": {
                            "type": "array",
                            "items": {"type": "string", "x-kubernetes-validations": [{"rule": "self.size() > 1"}]},
                        },
                        "map": {
                            "type": "object",
                            "additionalProperties": {
                                "type": "integer",
                                "x-kubernetes-validations": [{"rule": "self > 0"}],
                            },
                        },
                    },
                }
            },
        }
    )
    causes = s.validate(obj_with({"items": ["ok", "x"], "map": {"a": 1, "b": 0}}))
    assert [c["message"] for c in causes] == [
        'spec.items[1]: Invalid value: "x": failed rule: self.size() > 1',
        "spec.map[b]: Invalid value: 0: failed rule: self > 0",
    ]


def test_cel_transition_rule_on_list_map_items_correlates_by_key() -> None:
    s = StructuralSchema(
        {
            "type": "object",
            "properties": {
                "spec": {
                    "type": "object",
                    "properties": {
                        "ports": {
                            "type": "array",
                            "x-kubernetes-list-type": "map",
                            "x-kubernetes-list-map-keys": ["name"],
                            "items": {
                                "type": "object",
                                "required": ["name"],
                                "properties": {"name": {"type": "string"}, "port": {"type": "integer"}},
                                "x-kubernetes-validations": [
                                    {"rule": "self.port == oldSelf.port", "message": "frozen"}
                                ],
                            },
                        }
                    },
                }
            },
        }
    )
    old = obj_with({"ports": [{"name": "a", "port": 1}, {"name": "b", "port": 2}]})
    new = obj_with({"ports": [{"name": "b", "port": 2}, {"name": "a", "port": 5}, {"name": "c", "port": 9}]})
    assert [c["message"] for c in s.validate(new, old)] == ["spec.ports[1]: Invalid value: frozen"]


def test_cel_sees_escaped_property_names_and_timestamps() -> None:
    s = spec_schema(
        {
            "max-size": {"type": "integer"},
            "start": {"type": "string", "format": "date-time"},
        },
        **{
            "x-kubernetes-validations": [
                {"rule": "self.max__dash__size > 1 && self.start > timestamp('2020-01-01T00:00:00Z')"}
            ]
        },
    )
    assert s.validate(obj_with({"max-size": 2, "start": "2024-01-01T00:00:00Z"})) == []
    assert len(s.validate(obj_with({"max-size": 2, "start": "2019-01-01T00:00:00Z"}))) == 1


def test_invalid_cel_rule_raises_at_construction() -> None:
    from dops.emulator.schema import SchemaError

    with pytest.raises(SchemaError, match="compilation failed"):
        spec_schema({}, **{"x-kubernetes-validations": [{"rule": "self.a +"}]})


# --- CRD validation -------------------------------------------------------------------------------------


def good_crd() -> dict[str, Any]:
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": "widgets.example.com"},
        "spec": {
            "group": "example.com",
            "scope": "Namespaced",
            "names": {"plural": "widgets", "singular": "widget", "kind": "Widget"},
            "versions": [
                {
                    "name": "v1",
                    "served": True,
                    "storage": True,
                    "schema": {"openAPIV3Schema": copy.deepcopy(OPERATOR_SCHEMA)},
                }
            ],
        },
    }


def _mutate(path: str, value: Any) -> dict[str, Any]:
    crd = good_crd()
    *parents, last = path.split(".")
    node: Any = crd
    for p in parents:
        node = node[int(p)] if p.isdigit() else node[p]
    if value is _DELETE:
        del node[last]
    else:
        node[last] = value
    return crd


_DELETE = object()
_SCHEMA = "spec.versions.0.schema.openAPIV3Schema"
# One version (or identical schemas): kube-apiserver validates the schema as the shared `spec.validation`.
_SPATH = "spec.validation.openAPIV3Schema"

CRD_CASES: list[tuple[str, dict[str, Any], list[str]]] = [
    ("valid", good_crd(), []),
    (
        "name-mismatch",
        _mutate("metadata.name", "widget.example.com"),
        ['metadata.name: Invalid value: "widget.example.com": must be spec.names.plural+"."+spec.group'],
    ),
    (
        "bad-scope",
        _mutate("spec.scope", "Global"),
        ['spec.scope: Unsupported value: "Global": supported values: "Cluster", "Namespaced"'],
    ),
    ("missing-kind", _mutate("spec.names.kind", _DELETE), ["spec.names.kind: Required value"]),
    (
        "no-storage-version",
        _mutate("spec.versions.0.storage", False),
        [
            "spec.versions: Invalid value: []apiextensions.CustomResourceDefinitionVersion{...}: "
            "must have exactly one version marked as storage version"
        ],
    ),
    (
        "missing-schema",
        _mutate("spec.versions.0.schema", _DELETE),
        ["spec.versions[0].schema.openAPIV3Schema: Required value: schemas are required"],
    ),
    (
        "untyped-property",
        _mutate(f"{_SCHEMA}.properties.spec.properties.context", {"description": "no type"}),
        [
            f"{_SPATH}.properties[spec].properties[context].type: "
            "Required value: must not be empty for specified object fields"
        ],
    ),
    (
        "properties-and-additionalProperties",
        _mutate(f"{_SCHEMA}.properties.spec.additionalProperties", {"type": "string"}),
        [
            f"{_SPATH}.properties[spec].additionalProperties: Forbidden: "
            "additionalProperties and properties are mutual exclusive"
        ],
    ),
    (
        "cel-compile-error",
        _mutate(f"{_SCHEMA}.properties.spec.x-kubernetes-validations", [{"rule": "self.nosuchfn()"}]),
        [
            f'{_SPATH}.properties[spec].x-kubernetes-validations[0].rule: Invalid value: "self.nosuchfn()": '
            "compilation failed: undeclared reference to 'nosuchfn'"
        ],
    ),
    (
        "root-metadata-described",  # the server supplies ObjectMeta's schema: only `type: object` may be said
        _mutate(f"{_SCHEMA}.properties.metadata", {"type": "object", "description": "ours"}),
        [
            f"{_SPATH}.properties[metadata]: Forbidden: must not specify anything other than name and "
            "generateName, but metadata is implicitly specified"
        ],
    ),
    (
        "root-metadata-name-only",
        _mutate(f"{_SCHEMA}.properties.metadata", {"type": "object", "properties": {"name": {"type": "string"}}}),
        [],
    ),
    (
        "int-or-string-untyped-ok",
        _mutate(f"{_SCHEMA}.properties.spec.properties.context", {"x-kubernetes-int-or-string": True}),
        [],
    ),
]


@pytest.mark.parametrize(("crd", "expected"), [c[1:] for c in CRD_CASES], ids=[c[0] for c in CRD_CASES])
def test_validate_crd(crd: dict[str, Any], expected: list[str]) -> None:
    assert [c["message"] for c in validate_crd(crd)] == expected


def test_two_storage_versions_rejected() -> None:
    crd = good_crd()
    crd["spec"]["versions"].append({**copy.deepcopy(crd["spec"]["versions"][0]), "name": "v2"})
    assert any("exactly one version marked as storage version" in c["message"] for c in validate_crd(crd))


# --- helpers --------------------------------------------------------------------------------------------


def test_status_causes_and_aggregate() -> None:
    s = spec_schema({"a": {"type": "integer"}, "b": {"type": "string"}}, required=["c"])
    causes = s.validate(obj_with({"a": "x"}))
    assert status_causes(causes)[0] == {"reason": "FieldValueRequired", "message": "Required value", "field": "spec.c"}
    assert aggregate_message(causes) == (
        '[spec.c: Required value, spec.a: Invalid value: "string": spec.a in body must be of type integer: "string"]'
    )
    assert aggregate_message(causes[:1]) == "spec.c: Required value"


@pytest.mark.parametrize(
    ("value", "text"),
    [(1.0, "1"), (1.5, "1.5"), (1e6, "1e+06"), (123456.0, "123456"), (0.0001, "0.0001"), (1e-5, "1e-05")],
)
def test_go_float(value: float, text: str) -> None:
    assert go_float(value) == text


def test_schema_at() -> None:
    assert (
        schema_at(OPERATOR_SCHEMA, ["spec", "operator"])
        == OPERATOR_SCHEMA["properties"]["spec"]["properties"]["operator"]
    )
    assert schema_at(OPERATOR_SCHEMA, ["spec", "tags", "[]"]) == {"type": "string"}
    assert schema_at(OPERATOR_SCHEMA, ["spec", "nope"]) is None


def test_performance_small_cr() -> None:
    schema = copy.deepcopy(OPERATOR_SCHEMA)
    props = schema["properties"]
    for i in range(8):
        props["spec"]["properties"][f"f{i}"] = {"type": "string", "maxLength": 64, "default": "x"}
        props["status"]["properties"][f"s{i}"] = {"type": "integer", "minimum": 0}
    s = StructuralSchema(schema)
    base = obj_with(
        {"operator": "op", "context": "c", "replicas": 1, "max": 3},
        {"runState": "queued", **{f"s{i}": i for i in range(8)}},
    )
    n = 2000
    start = time.perf_counter()
    for _ in range(n):
        obj = {**base, "spec": dict(base["spec"]), "status": dict(base["status"])}
        s.prune(obj)
        s.apply_defaults(obj)
        assert not s.validate(obj)
    per_create = (time.perf_counter() - start) / n
    start = time.perf_counter()
    for _ in range(n):
        s.validate(base, base)  # update: transition rules evaluated
    per_update = (time.perf_counter() - start) / n
    assert per_create < 300e-6, per_create
    assert per_update < 300e-6, per_update
