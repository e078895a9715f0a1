"""Label and field selectors behave like kube-apiserver's (spec S9, Y5; §9 statements 29, 31, 32)."""

from __future__ import annotations

from typing import Any

import pytest

from dops.emulator.selectors import FieldSelector, LabelSelector, SelectorError, field_value

# ----------------------------------------------------------------------------------------------------------------
# Label selector parsing
# ----------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "canonical"),
    [
        ("", ""),
        ("app=web", "app=web"),
        ("app==web", "app==web"),
        ("app!=web", "app!=web"),
        ("k != v", "k!=v"),  # pykube's spacing (Y5)
        ("a in (x,y)", "a in (x,y)"),  # pykube
        ("a in (y, x)", "a in (x,y)"),
        ("k notin (a, b)", "k notin (a,b)"),
        ("tier", "tier"),
        ("!canary", "!canary"),
        ("  app = web ,  tier  ", "app=web,tier"),
        ("name=r1,owner=helm", "name=r1,owner=helm"),  # helm's release lookup (H2)
        ("batch.kubernetes.io/controller-uid=0f6c2b6e-1c4e-4b8e-9a5e-8f0c0f1e2d3c", None),  # kubectl logs job/x
        ("app.kubernetes.io/managed-by=Helm", None),
        ("k=", "k="),  # empty value is a valid label value
        ("k in (a,)", "k in (,a)"),
        ("x>5,y<10", "x>5,y<10"),
        ("a=b,!c,d in (e),f notin (g)", None),
    ],
)
def test_label_selector_parses(text: str, canonical: str | None) -> None:
    selector = LabelSelector.parse(text)
    assert str(selector) == (text if canonical is None else canonical)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("a b", "unable to parse requirement: found 'b', expected: in, notin, =, ==, !=, gt, lt"),
        ("a=b c", "found 'c', expected: ',' or 'end of string'"),
        ("k in a", "unable to parse requirement: found 'a', expected: '('"),
        ("=v", "found '=', expected: !, identifier, or 'end of string'"),
        ("a,", "expected: identifier after ','"),
        ("a=b,,c=d", "expected: identifier after ','"),
        ("!k=v", "found '=', expected: ',' or 'end of string'"),
        ("a/b/c=d", "a qualified name must consist of"),
        ("/a=b", "prefix part must be non-empty"),
        ("Example.COM/a=b", "prefix part a lowercase RFC 1123 subdomain"),
        ("-bad=x", "name part must consist of alphanumeric characters"),
        ("k=-bad", "a valid label must be an empty string or consist of alphanumeric characters"),
        ("k=" + "v" * 64, "must be no more than 63 characters"),
        ("k" * 64 + "=v", "name part must be no more than 63 characters"),
        ("k==(a)", "expected: identifier"),
        ("x>a", "the value must be an integer"),
        ("k in (a b)", "expected: ',', or ')'"),
    ],
)
def test_label_selector_rejects(text: str, message: str) -> None:
    with pytest.raises(SelectorError) as info:
        LabelSelector.parse(text)
    assert message in str(info.value)


def test_label_selector_errors_are_wrapped_like_the_apiserver() -> None:
    with pytest.raises(SelectorError, match=r"^unable to parse requirement: key: Invalid value: \"-x\""):
        LabelSelector.parse("-x=1")


# ----------------------------------------------------------------------------------------------------------------
# Label selector matching
# ----------------------------------------------------------------------------------------------------------------

WEB = {"app": "web", "tier": "front", "n": "7"}


@pytest.mark.parametrize(
    ("text", "labels", "expected"),
    [
        ("", WEB, True),
        ("", None, True),
        ("app=web", WEB, True),
        ("app==web", WEB, True),
        ("app=db", WEB, False),
        ("app=web", {}, False),
        ("app=web", None, False),
        ("app!=db", WEB, True),
        ("app!=web", WEB, False),
        ("app!=web", {}, True),  # != matches objects lacking the key
        ("app!=web", None, True),
        ("k != v", {"k": "v"}, False),
        ("app in (web,db)", WEB, True),
        ("app in (db)", WEB, False),
        ("app in (web)", {}, False),
        ("app notin (db)", WEB, True),
        ("app notin (web,db)", WEB, False),
        ("app notin (web)", {}, True),  # notin matches objects lacking the key
        ("tier", WEB, True),
        ("canary", WEB, False),
        ("!canary", WEB, True),
        ("!tier", WEB, False),
        ("!tier", None, True),
        ("app=web,tier=front", WEB, True),
        ("app=web,tier=back", WEB, False),
        ("app=web,tier,!canary,n in (7,8)", WEB, True),
        ("k=", {"k": ""}, True),
        ("k=", {}, False),
        ("k in ()", {"k": ""}, True),  # "()" is the set {""} (Parser.parseValues), not an error
        ("k in ()", {"k": "v"}, False),
        ("k notin ()", {"k": "v"}, True),
        ("n>5", WEB, True),
        ("n>7", WEB, False),
        ("n<8", WEB, True),
        ("app>1", WEB, False),  # non-integer label values never match gt/lt
        ("n>1", {}, False),
    ],
)
def test_label_selector_matches(text: str, labels: dict[str, str] | None, expected: bool) -> None:
    assert LabelSelector.parse(text).matches(labels) is expected


def test_matches_object_reads_metadata_labels() -> None:
    selector = LabelSelector.parse("app=web")
    assert selector.matches_object({"metadata": {"labels": {"app": "web"}}})
    assert not selector.matches_object({"metadata": {}})
    assert not selector.matches_object({})
    assert LabelSelector.parse("!app").matches_object({"metadata": {"labels": None}})


def test_empty_property_and_nothing() -> None:
    assert LabelSelector.parse("").empty
    assert LabelSelector.parse(None).empty
    assert not LabelSelector.parse("a").empty
    nothing = LabelSelector.nothing()
    assert not nothing.empty
    assert not nothing.matches({})
    assert not nothing.matches(WEB)


def test_parse_is_cached_and_selectors_are_hashable() -> None:
    first = LabelSelector.parse("app=web,tier in (a,b)")
    again = LabelSelector.parse("app=web,tier in (a,b)")
    assert first is again
    assert first == LabelSelector.parse("app=web,tier in (b,a)")
    assert len({first, again, LabelSelector.parse("app=web")}) == 2
    with pytest.raises(AttributeError):
        first.requirements = ()  # type: ignore[misc]


# ----------------------------------------------------------------------------------------------------------------
# metav1.LabelSelector objects
# ----------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("selector", "labels", "expected"),
    [
        (
            {"matchLabels": {"batch.kubernetes.io/controller-uid": "u1"}},
            {"batch.kubernetes.io/controller-uid": "u1"},
            True,
        ),
        (
            {"matchLabels": {"batch.kubernetes.io/controller-uid": "u1"}},
            {"batch.kubernetes.io/controller-uid": "u2"},
            False,
        ),
        ({"matchExpressions": [{"key": "a", "operator": "In", "values": ["x", "y"]}]}, {"a": "y"}, True),
        ({"matchExpressions": [{"key": "a", "operator": "NotIn", "values": ["x"]}]}, {}, True),
        ({"matchExpressions": [{"key": "a", "operator": "Exists"}]}, {"a": ""}, True),
        ({"matchExpressions": [{"key": "a", "operator": "DoesNotExist"}]}, {"a": ""}, False),
        ({"matchLabels": {"a": "1"}, "matchExpressions": [{"key": "b", "operator": "Exists"}]}, {"a": "1"}, False),
        ({}, {"anything": "x"}, True),  # empty selector selects everything
        (None, {"anything": "x"}, False),  # nil selector selects nothing
    ],
)
def test_from_label_selector(selector: dict[str, Any] | None, labels: dict[str, str], expected: bool) -> None:
    assert LabelSelector.from_label_selector(selector).matches(labels) is expected


def test_from_label_selector_renders_as_query_string() -> None:
    selector = LabelSelector.from_label_selector(
        {
            "matchLabels": {"b": "2", "a": "1"},
            "matchExpressions": [{"key": "c", "operator": "In", "values": ["y", "x"]}],
        }
    )
    assert str(selector) == "a=1,b=2,c in (x,y)"
    assert LabelSelector.parse(str(selector)) == selector


@pytest.mark.parametrize(
    ("selector", "message"),
    [
        (
            {"matchExpressions": [{"key": "a", "operator": "Bogus", "values": ["x"]}]},
            "not a valid label selector operator",
        ),
        ({"matchExpressions": [{"key": "a", "operator": "In", "values": []}]}, "values set can't be empty"),
        ({"matchExpressions": [{"key": "a", "operator": "Exists", "values": ["x"]}]}, "values set must be empty"),
        ({"matchLabels": {"a": "not valid"}}, "a valid label must be"),
        ({"matchLabels": {"a b": "x"}}, "name part must consist"),
    ],
)
def test_from_label_selector_rejects(selector: dict[str, Any], message: str) -> None:
    with pytest.raises(SelectorError, match=message):
        LabelSelector.from_label_selector(selector)


# ----------------------------------------------------------------------------------------------------------------
# Field values
# ----------------------------------------------------------------------------------------------------------------

EVENT = {
    "metadata": {"name": "e1", "namespace": "default"},
    "involvedObject": {"apiVersion": "example.com/v1", "kind": "Widget", "name": "w1", "uid": "u-1"},
    "reason": "Hello",
    "type": "Normal",
    "reportingComponent": "kopf",
    "source": {"component": "kopf"},
}
POD = {
    "metadata": {"name": "p1", "namespace": "default"},
    "spec": {"nodeName": "node-1", "restartPolicy": "Never", "hostNetwork": False, "priority": 0},
    "status": {"phase": "Running", "podIP": "10.0.0.5"},
}


@pytest.mark.parametrize(
    ("obj", "path", "expected"),
    [
        (POD, "metadata.name", "p1"),
        (POD, "metadata.namespace", "default"),
        ({"metadata": {"name": "ns1"}}, "metadata.namespace", ""),  # cluster-scoped
        (POD, "status.phase", "Running"),
        (POD, "spec.nodeName", "node-1"),
        (POD, "status.podIP", "10.0.0.5"),
        (POD, "spec.hostNetwork", "false"),
        (POD, "spec.priority", "0"),
        (POD, "spec.serviceAccountName", ""),
        (POD, "status.missing.deeper", ""),
        (EVENT, "involvedObject.kind", "Widget"),
        (EVENT, "involvedObject.uid", "u-1"),
        (EVENT, "involvedObject.namespace", ""),
        (EVENT, "reason", "Hello"),
        (EVENT, "source", "kopf"),  # events: source means source.component
        ({"source": {}}, "source", ""),
        ({"type": "helm.sh/release.v1"}, "type", "helm.sh/release.v1"),
        ({"status": {"succeeded": 1}}, "status.successful", "1"),  # jobs
        ({"status": {}}, "status.successful", "0"),
        ({}, "status.successful", "0"),
        ({"spec": {"color": "red", "size": 3, "on": True}}, "spec.color", "red"),  # CRD selectableFields
        ({"spec": {"color": "red", "size": 3, "on": True}}, "spec.size", "3"),
        ({"spec": {"color": "red", "size": 3, "on": True}}, "spec.on", "true"),
        ({"spec": {"color": "red"}}, ".spec.color", "red"),  # CRD jsonPath spelling
        ({"spec": {"nested": {"a": 1}}}, "spec.nested", ""),
    ],
)
def test_field_value(obj: dict[str, Any], path: str, expected: str) -> None:
    assert field_value(obj, path) == expected


# ----------------------------------------------------------------------------------------------------------------
# Field selectors
# ----------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "obj", "expected"),
    [
        ("", POD, True),
        ("metadata.name=p1", POD, True),
        ("metadata.name==p1", POD, True),
        ("metadata.name=p2", POD, False),
        ("metadata.name!=p2", POD, True),
        ("metadata.name!=p1", POD, False),
        ("status.phase=Running,spec.nodeName=node-1", POD, True),
        ("status.phase=Running,spec.nodeName=node-2", POD, False),
        ("metadata.namespace=default,metadata.name=p1", POD, True),
        ("spec.serviceAccountName=", POD, True),  # missing compares as ""
        ("spec.serviceAccountName!=", POD, False),
        (
            "involvedObject.name=w1,involvedObject.namespace=,involvedObject.kind=Widget,involvedObject.uid=u-1",
            EVENT,
            True,
        ),  # kubectl describe (C12), for a cluster-less involvedObject namespace
        ("involvedObject.uid=u-2", EVENT, False),
        ("source=kopf,type=Normal", EVENT, True),
        ("metadata.name=a\\,b", {"metadata": {"name": "a,b"}}, True),
        ("metadata.name=a\\=b", {"metadata": {"name": "a=b"}}, True),
        ("metadata.name=a\\\\b", {"metadata": {"name": "a\\b"}}, True),
    ],
)
def test_field_selector_matches(text: str, obj: dict[str, Any], expected: bool) -> None:
    selector = FieldSelector.parse(text)
    assert selector.matches(obj) is expected
    assert selector.matches_values(lambda path: field_value(obj, path)) is expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("metadata.name", "invalid selector: 'metadata.name'; can't understand 'metadata.name'"),
        ("a=b,c", "can't understand 'c'"),
        ("metadata.name=a=b", "unescaped character in value: ="),
        ("metadata.name=a\\x", "invalid escape sequence"),
        ("metadata.name=a\\", "invalid escape sequence"),
    ],
)
def test_field_selector_rejects(text: str, message: str) -> None:
    with pytest.raises(SelectorError, match=message.replace("(", r"\(").replace(".", r"\.")):
        FieldSelector.parse(text)


def test_field_selector_fields_and_support_check() -> None:
    selector = FieldSelector.parse("metadata.name=w1,spec.foo!=x")
    assert selector.fields == frozenset({"metadata.name", "spec.foo"})
    assert selector.value_of("metadata.name") == "w1"
    assert selector.value_of("spec.foo") is None  # a != term pins nothing
    selector.check_supported({"metadata.name", "spec.foo"})
    with pytest.raises(SelectorError, match=r"^field label not supported: spec\.foo$"):
        selector.check_supported(["metadata.name", "metadata.namespace"])
    with pytest.raises(SelectorError, match=r"field label not supported: spec\.foo"):
        selector.check_supported(lambda path: path.startswith("metadata."))


def test_field_selector_operators_double_equals_is_equals() -> None:
    assert FieldSelector.parse("a==b") == FieldSelector.parse("a=b")
    assert str(FieldSelector.parse("b!=2,a=1")) == "a=1,b!=2"
    assert FieldSelector.parse("metadata.name=x") is FieldSelector.parse("metadata.name=x")
    assert FieldSelector.parse(None).empty


# ----------------------------------------------------------------------------------------------------------------
# Hot path
# ----------------------------------------------------------------------------------------------------------------


def test_matching_ten_thousand_objects() -> None:
    """Correct over a large set (speed: `python -m dops.emulator.bench` lists 10,000 objects by selector)."""
    labels = [{"app": "web" if i % 2 else "db", "i": str(i)} for i in range(10_000)]
    objects = [{"metadata": {"name": f"o{i}", "labels": labels[i]}} for i in range(10_000)]
    selector = LabelSelector.parse("app=web")
    fields = FieldSelector.parse("metadata.name=o5")
    selected = [obj for obj in objects if selector.matches_object(obj)]
    named = [obj for obj in objects if fields.matches(obj)]
    assert len(selected) == 5_000 and all(obj["metadata"]["labels"]["app"] == "web" for obj in selected)
    assert [obj["metadata"]["name"] for obj in named] == ["o5"]
