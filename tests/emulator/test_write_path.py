"""The shortcuts on the emulator's write path give exactly the answers of the plain computations they replace.

Each write records managedFields, formats timestamps, checks label keys and encodes the stored object; those steps
have faster forms (set algebra on FieldsV1 dicts instead of sets of paths, member-by-member `removed_fields`, caches
of pure functions, the response reusing the watch event's encoding, cached discovery groups). These tests hold each
one against a reference (the set-based algorithm as it was, or the uncached function) and show that every cache
follows the changes that must invalidate it.
"""

from __future__ import annotations

import copy
import json
import random
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from dops.emulator import kinds
from dops.emulator.apiserver import PATCH_MERGE, ApiServer, DeleteOptions, WriteOptions
from dops.emulator.cel import CelEvalError, parse_timestamp
from dops.emulator.clock import rfc3339
from dops.emulator.patching import (
    _fields_of_value,
    changed_fields,
    fields_from_paths,
    fields_v1,
    owned_paths,
    removed_fields,
    update_managed_fields,
)
from dops.emulator.registry import Registry, ResourceType
from dops.emulator.schema import StructuralSchema
from dops.emulator.store import dumps
from tests.builders import WidgetCRD, configmap, widget

JSON = dict[str, Any]
FieldPath = tuple[str, ...]

# ----------------------------------------------------------------------------------------------------------------
# The reference: managedFields bookkeeping on sets of leaf paths (owned_paths / fields_from_paths), as it was
# ----------------------------------------------------------------------------------------------------------------

_STRIPPED_TOP = frozenset({"apiVersion", "kind"})
_ORDER = ("operation", "time", "manager", "apiVersion", "subresource")


def reference_removed_fields(old: Mapping[str, Any], new: Mapping[str, Any], *, builtin: bool = True) -> JSON:
    gone: set[FieldPath] = set()
    for key in old:
        if key in new and old[key] == new[key]:
            continue
        before = owned_paths(fields_v1({key: old[key]}, builtin=builtin))
        after = owned_paths(fields_v1({key: new[key]}, builtin=builtin)) if key in new else frozenset()
        gone |= before - after
    return fields_from_paths(gone)


def reference_update_managed_fields(
    obj: JSON,
    *,
    manager: str,
    operation: str,
    api_version: str,
    fields: Mapping[str, Any] | None,
    time: str,
    subresource: str = "",
    removed: Mapping[str, Any] | None = None,
) -> None:
    metadata = obj.setdefault("metadata", {})
    new_paths = owned_paths(fields if fields is not None else fields_v1(obj))
    gone = owned_paths(removed) if removed else frozenset()
    entries: list[JSON] = []
    mine_at = -1
    mine_paths: frozenset[FieldPath] = frozenset()
    for entry in metadata.get("managedFields") or []:
        if not isinstance(entry, dict):
            continue
        if (
            entry.get("manager") == manager
            and entry.get("operation") == operation
            and (entry.get("subresource") or "") == subresource
        ):
            mine_at = len(entries)
            mine_paths = owned_paths(entry.get("fieldsV1") or {})
            entries.append(entry)
            continue
        taken = new_paths if operation == "Update" else frozenset()
        if taken or gone:
            theirs = owned_paths(entry.get("fieldsV1") or {})
            kept = theirs - taken - gone
            if not kept:
                continue
            if kept != theirs:
                entry = {**entry, "fieldsV1": fields_from_paths(kept)}
        entries.append(entry)
    paths = new_paths | (mine_paths - gone) if operation == "Update" else new_paths
    if paths:
        mine: JSON = {
            "manager": manager,
            "operation": operation,
            "apiVersion": api_version,
            "time": time,
            "fieldsType": "FieldsV1",
            "fieldsV1": fields_from_paths(paths),
        }
        if subresource:
            mine["subresource"] = subresource
        if mine_at >= 0:
            entries[mine_at] = mine
        else:
            entries.append(mine)
    elif mine_at >= 0:
        del entries[mine_at]
    entries.sort(key=lambda e: tuple(str(e.get(k) or "") for k in _ORDER))
    if entries:
        metadata["managedFields"] = entries
    else:
        metadata.pop("managedFields", None)


# ----------------------------------------------------------------------------------------------------------------
# Random objects, edits and FieldsV1 sets, rich in the cases that matter: keyed lists (containers, conditions,
# ownerReferences), sets (finalizers), nulls, empty maps, maps turning into scalars, and values that are equal in
# Python but not in JSON (1, 1.0, True), which FieldsV1 keeps apart.
# ----------------------------------------------------------------------------------------------------------------

_KEYS = ["a", "b", "containers", "finalizers", "ports", "env", "conditions", "labels", "name", "spec", "template"]
_MERGE_KEYS = ["name", "type", "containerPort", "uid"]


def _scalar(rng: random.Random) -> Any:
    return rng.choice([1, 1.0, True, False, "x", "y", 0, None, 80, 80.0, "80"])


def _value(rng: random.Random, depth: int) -> Any:
    roll = rng.random()
    if depth > 3 or roll < 0.4:
        return _scalar(rng)
    if roll < 0.7:
        return {rng.choice(_KEYS): _value(rng, depth + 1) for _ in range(rng.randint(0, 4))}
    if roll < 0.85:
        key = rng.choice(_MERGE_KEYS)
        return [
            {key: rng.choice(["a", "b", 1, 1.0, True]), **{rng.choice(_KEYS): _value(rng, depth + 2)}}
            for _ in range(rng.randint(0, 3))
        ]
    return [_scalar(rng) for _ in range(rng.randint(0, 3))]


def _object(rng: random.Random) -> JSON:
    meta_keys = ["labels", "annotations", "finalizers", "ownerReferences", "name", "uid", "generation"]
    obj: JSON = {"apiVersion": "v1", "kind": "Thing"}
    obj["metadata"] = {k: _value(rng, 2) for k in rng.sample(meta_keys, rng.randint(0, 4))}
    if rng.random() < 0.3:
        obj["metadata"]["finalizers"] = rng.choice([["a"], ["a", "b"], [1], [True], [1.0], []])
    for key in rng.sample(["spec", "status", "data", "a"], rng.randint(0, 3)):
        obj[key] = _value(rng, 1)
    return obj


def _retyped(rng: random.Random, value: Any) -> Any:
    """An equal value (by Python's `==`) whose numbers may have another JSON type."""
    if isinstance(value, dict):
        return {k: _retyped(rng, v) for k, v in value.items()}
    if isinstance(value, list):
        return [_retyped(rng, v) for v in value]
    if value is True or (type(value) in (int, float) and value == 1):
        return rng.choice([1, 1.0, True])
    if type(value) in (int, float) and value == 80:
        return rng.choice([80, 80.0])
    return value


def _edited(rng: random.Random, value: Any, depth: int = 0) -> Any:
    if depth == 0 and rng.random() < 0.4:
        value = _retyped(rng, value)
    value = copy.deepcopy(value)
    if not isinstance(value, dict) or not value or rng.random() < 0.2:
        return _value(rng, depth)
    for _ in range(rng.randint(1, 3)):
        key = rng.choice([*value, rng.choice(_KEYS)])
        roll = rng.random()
        if roll < 0.3:
            value.pop(key, None)
        elif roll < 0.6 and key in value:
            value[key] = _edited(rng, value[key], depth + 1)
        else:
            value[key] = _value(rng, depth + 1)
    return value


def _fieldset(rng: random.Random, depth: int = 0) -> Any:
    """A FieldsV1 dict, not necessarily canonical: unsorted keys, non-`{}` leaves, `.` entries with children."""
    if depth > 3 or rng.random() < 0.15:
        return {}
    elements = ["f:a", "f:b", ".", 'k:{"name":"a"}', "v:1", "f:spec", "f:status", "f:labels"]
    return {
        rng.choice(elements): _fieldset(rng, depth + 1) if rng.random() < 0.5 else rng.choice([{}, 1, None, "x"])
        for _ in range(rng.randint(1, 3))
    }


def _entries(rng: random.Random) -> list[Any]:
    entries: list[Any] = []
    for _ in range(rng.randint(0, 4)):
        entry: JSON = {
            "manager": rng.choice(["m1", "m2", "m3"]),
            "operation": rng.choice(["Update", "Apply"]),
            "time": rng.choice(["T1", "T2"]),
            "apiVersion": "v1",
        }
        if rng.random() < 0.3:
            entry["subresource"] = "status"
        if rng.random() < 0.85:
            entry["fieldsV1"] = _fieldset(rng)
        entries.append(entry)
    if rng.random() < 0.1:
        entries.append("not an entry")
    return entries


def _encoded(value: Any) -> str:
    return json.dumps(value)  # key order and number types included


def _edits(rng: random.Random, count: int = 1500) -> Iterator[tuple[JSON, JSON]]:
    """`count` random (old, new) object pairs, the new one an edit of the old (edits that are not objects skipped)."""
    for _ in range(count):
        old = _object(rng)
        new = _edited(rng, old)
        if isinstance(new, dict):
            yield old, new


@pytest.mark.parametrize("seed", range(4))
def test_removed_fields_matches_the_set_difference_of_both_whole_sets(seed: int) -> None:
    for old, new in _edits(random.Random(seed)):
        for builtin in (True, False):
            expected = reference_removed_fields(old, new, builtin=builtin)
            assert _encoded(removed_fields(old, new, builtin=builtin)) == _encoded(expected), (old, new)


def test_removed_fields_tells_equal_numbers_of_different_json_types_apart() -> None:
    """`[1] == [True]` in Python, but a set item `v:1` is not `v:true`, and a port keyed 80 is not one keyed 80.0:
    below the top level (where both versions skip members that compare equal), the member-by-member walk must not
    skip such a value as unchanged."""
    cases: list[tuple[JSON, JSON]] = [
        ({"metadata": {"finalizers": [1], "labels": {"a": "b"}}}, {"metadata": {"finalizers": [True], "labels": {}}}),
        (
            {"spec": {"n": 1, "template": {"containers": [{"name": "a", "ports": [{"containerPort": 80}]}]}}},
            {"spec": {"n": 2, "template": {"containers": [{"name": "a", "ports": [{"containerPort": 80.0}]}]}}},
        ),
        (
            {"spec": {"x": 1, "inner": {"containers": [{"name": 1}]}}},
            {"spec": {"x": 2, "inner": {"containers": [{"name": True}]}}},
        ),
    ]
    for old, new in cases:
        expected = reference_removed_fields(old, new)
        assert expected, "each case removes a field by the set definition"
        assert removed_fields(old, new) == expected


@pytest.mark.parametrize("seed", range(4))
def test_update_managed_fields_matches_the_set_algebra_on_flattened_paths(seed: int) -> None:
    rng = random.Random(seed)
    for old, new in _edits(rng):
        obj: JSON = {"metadata": {"managedFields": _entries(rng)}, "spec": _value(rng, 1)}
        options: dict[str, Any] = {
            "manager": rng.choice(["m1", "m2"]),
            "operation": rng.choice(["Update", "Apply"]),
            "api_version": "v1",
            "fields": rng.choice([None, {}, _fieldset(rng), changed_fields(old, new), fields_v1(new)]),
            "time": "T3",
            "subresource": rng.choice(["", "status"]),
            "removed": rng.choice([None, {}, _fieldset(rng), removed_fields(old, new)]),
        }
        expected, actual = copy.deepcopy(obj), copy.deepcopy(obj)
        reference_update_managed_fields(expected, **options)
        update_managed_fields(actual, **options)
        assert _encoded(actual) == _encoded(expected), (obj, options)


def test_update_managed_fields_results_share_nothing_with_the_fields_passed_in() -> None:
    """Stored managedFields must not alias a caller's dicts: changing those afterwards leaves the object alone."""
    fields: JSON = {"f:spec": {"f:size": {}}}
    obj: JSON = {"metadata": {}, "spec": {"size": 1}}
    update_managed_fields(obj, manager="m", operation="Update", api_version="v1", fields=fields, time="T")
    fields["f:spec"]["f:other"] = {}
    assert obj["metadata"]["managedFields"][0]["fieldsV1"] == {"f:spec": {"f:size": {}}}


def test_update_managed_fields_fails_on_a_non_map_fields_v1_as_before() -> None:
    entry = {"manager": "other", "operation": "Update", "fieldsV1": "not a map"}
    for implementation in (reference_update_managed_fields, update_managed_fields):
        obj: JSON = {"metadata": {"managedFields": [dict(entry)]}}
        with pytest.raises(AttributeError):
            implementation(
                obj, manager="m", operation="Update", api_version="v1", fields={"f:a": {}}, time="T", removed=None
            )


def test_fields_of_value_is_what_fields_v1_records_below_a_member() -> None:
    """`removed_fields` builds a member's paths with `_fields_of_value`; it must agree with `fields_v1`."""
    value = {"containers": [{"name": "a", "image": "x"}], "finalizers": ["f"]}
    assert fields_v1({"spec": value}) == {"f:spec": _fields_of_value(value, "spec", "", True)}


# ----------------------------------------------------------------------------------------------------------------
# Caches of pure functions
# ----------------------------------------------------------------------------------------------------------------


def test_rfc3339_cache_answers_for_the_instant_it_is_given() -> None:
    base = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)
    plus5 = timezone(timedelta(hours=5))
    moments = [
        base,
        base + timedelta(microseconds=999_999),  # the same second
        base + timedelta(seconds=1),  # the next one, right after
        base,  # back to a second the cache no longer holds
        base.astimezone(plus5),  # the same instant in another zone
        datetime(2026, 3, 1, 12, 0, 0),  # naive: local time
        datetime(2026, 3, 1, 12, 0, 0, 500_000, tzinfo=timezone(timedelta(microseconds=600_000))),
    ]
    for moment in moments:
        assert rfc3339(moment) == moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def test_cached_name_and_timestamp_checks_answer_as_uncached() -> None:
    wrapped = kinds._qualified_name_errors.__wrapped__
    for key in ["app", "example.com/app", "Bad Key", "a/b/c", "", "x" * 64, "example.com/app"]:
        assert kinds._qualified_name_errors(key) == wrapped(key)
    assert parse_timestamp("2026-01-01T00:00:00Z") == datetime(2026, 1, 1, tzinfo=UTC)
    for _ in range(2):  # a failure is raised every time, never remembered as a value
        with pytest.raises(CelEvalError):
            parse_timestamp("not a time")


# ----------------------------------------------------------------------------------------------------------------
# A write's response reuses its event's encoding; discovery groups follow CRD changes
# ----------------------------------------------------------------------------------------------------------------

OPTS = WriteOptions(field_manager="test")


def test_store_encoded_reuses_the_latest_event_only_for_that_very_object() -> None:
    api = ApiServer()
    cms = api.type_for("", "v1", "configmaps")
    first = api.create(cms, "default", configmap("a", x="1"), OPTS).obj
    event = api.store._history[-1]
    assert api.store.encoded(first) is event.encoded_object()
    assert api.store.encoded(first) == dumps(first)

    equal_copy = copy.deepcopy(first)  # equal content, another object: encoded afresh
    assert api.store.encoded(equal_copy) is not event.encoded_object()
    assert api.store.encoded(equal_copy) == dumps(first)

    second = api.patch(cms, "default", "a", PATCH_MERGE, {"data": {"x": "2"}}, OPTS).obj
    assert api.store.encoded(second) == dumps(second)
    assert api.store.encoded(first) == dumps(first), "an older object is no longer the latest event's"
    assert json.loads(api.store.encoded(second))["data"] == {"x": "2"}

    api.store.compact()  # no history: nothing to reuse
    assert api.store.encoded(second) == dumps(second)


def test_registry_groups_follow_added_and_removed_types() -> None:
    registry = Registry()

    def rtype(group: str, version: str, plural: str, crd: str) -> ResourceType:
        return ResourceType(group, version, plural.capitalize(), plural, plural[:-1], True, crd_name=crd)

    registry.add(rtype("example.com", "v1beta1", "widgets", "widgets.example.com"))
    assert registry.groups() == {"example.com": ["v1beta1"]}
    assert registry.versions_of("example.com") == ("v1beta1",)
    registry.add(rtype("example.com", "v1", "widgets", "widgets.example.com"))
    registry.add(rtype("example.com", "v2alpha1", "widgets", "widgets.example.com"))
    assert registry.versions_of("example.com") == ("v1", "v1beta1", "v2alpha1")
    registry.groups()["example.com"].append("mutated")  # a caller's copy: the cache is not touched
    assert registry.groups() == {"example.com": ["v1", "v1beta1", "v2alpha1"]}
    registry.set_crd("widgets.example.com", [rtype("example.com", "v3", "widgets", "widgets.example.com")])
    assert registry.versions_of("example.com") == ("v3",)
    registry.remove_crd("widgets.example.com")
    assert registry.groups() == {}
    assert registry.versions_of("example.com") == ()


def test_discovery_serves_a_crd_group_once_created_and_not_after_deletion() -> None:
    api = ApiServer()
    crd = WidgetCRD().build()
    crds = api.type_for("apiextensions.k8s.io", "v1", "customresourcedefinitions")
    assert api.registry.versions_of("example.com") == ()
    api.create(crds, None, crd, OPTS)
    assert api.registry.versions_of("example.com") == ("v1",)
    widgets = api.type_for("example.com", "v1", "widgets")
    api.create(widgets, "default", widget("w1", size=1), OPTS)
    api.delete(crds, None, crd["metadata"]["name"], DeleteOptions())
    assert api.registry.versions_of("example.com") == ()


# ----------------------------------------------------------------------------------------------------------------
# CEL values converted once per validation, shared by the rules of every level
# ----------------------------------------------------------------------------------------------------------------

_TIMED_SCHEMA: JSON = {
    "type": "object",
    "x-kubernetes-validations": [
        {"rule": "!has(self.status) || self.status.end >= self.status.start", "message": "root: end before start"},
        {"rule": "!has(oldSelf.status) || self.status.start == oldSelf.status.start", "message": "start is fixed"},
    ],
    "properties": {
        "status": {
            "type": "object",
            "x-kubernetes-validations": [
                {"rule": "self.end >= self.start", "message": "status: end before start"},
                {"rule": "self.progress.fraction <= 1.0", "message": "fraction above one"},
            ],
            "properties": {
                "start": {"type": "string", "format": "date-time"},
                "end": {"type": "string", "format": "date-time"},
                "progress": {
                    "type": "object",
                    "x-kubernetes-validations": [{"rule": "self.fraction >= 0.0", "message": "negative fraction"}],
                    "properties": {"fraction": {"type": "number"}},
                },
            },
        }
    },
}


def _timed(start: str, end: str, fraction: float) -> JSON:
    return {"status": {"start": start, "end": end, "progress": {"fraction": fraction}}}


def test_cel_conversions_shared_across_levels_never_outlive_one_validation() -> None:
    """The same schema validates one object after another (and an object against itself as old): each answer is
    the one for that object, whatever the previous validation converted."""
    schema = StructuralSchema(_TIMED_SCHEMA)
    good = _timed("2026-01-01T00:00:00Z", "2026-01-01T01:00:00Z", 1)
    assert schema.validate(good, None) == []
    assert schema.validate(good, good) == [], "an object that is its own old version (shared subtrees)"

    def messages(obj: JSON, old: JSON | None) -> list[str]:
        return sorted(cause["message"] for cause in schema.validate(obj, old))

    backwards = _timed("2026-01-01T02:00:00Z", "2026-01-01T01:00:00Z", 1)
    assert messages(backwards, None) == [
        "<nil>: Invalid value: root: end before start",
        "status: Invalid value: status: end before start",
    ]
    moved = _timed("2026-01-01T00:30:00Z", "2026-01-01T01:00:00Z", 1)
    assert messages(moved, good) == ["<nil>: Invalid value: start is fixed"]
    too_far = _timed("2026-01-01T00:00:00Z", "2026-01-01T01:00:00Z", 2)
    assert messages(too_far, good) == ["status: Invalid value: fraction above one"]
    negative = _timed("2026-01-01T00:00:00Z", "2026-01-01T01:00:00Z", -1)
    assert messages(negative, good) == ["status.progress: Invalid value: negative fraction"]
    assert schema.validate(good, good) == [], "and the first object is still valid afterwards"
