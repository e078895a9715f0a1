"""dops.cli.jsonpath and the kubectl-style output options (issue 14, kubectl conventions): pure, no cluster.

Aspects covered:
- kubectl's JSONPath templates: fields, `['quoted']`, indexes (negative), `[*]`, `.*`, slices, unions, `..field`,
  filters (`==`, `!=`, `<`, `>`, existence), `{range}…{end}`, `{"\\n"}` literals; several results joined by a
  space, maps and lists as JSON, missing paths print nothing (as kubectl does);
- custom columns: header row, `<none>` for a missing value, several values joined by ",";
- bad templates: one readable line (JsonPathError), which `-o` turns into a usage error;
- `-o` parsing: the formats each command accepts, jsonpath=/custom-columns= validated up front;
- `--params-file`: YAML or JSON objects, `-` for stdin, readable errors for everything else;
- the same CRD schema the cluster uses judges a manifest offline (`dops lint --offline`'s schema check).
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pytest
import typer

from dops.cli import jsonpath
from dops.cli.lint import Schemas
from dops.cli.options import OutputFormat, parse_output, parse_params, read_params_file

DOC: dict[str, Any] = {
    "kind": "List",
    "items": [
        {"metadata": {"name": "a", "labels": {"app": "x"}}, "status": {"runState": "running", "progress": 0.5}},
        {"metadata": {"name": "b"}, "status": {"runState": "failed", "result": {"errorMessage": "boom"}}},
        {"metadata": {"name": "c", "labels": {"app": "y"}}, "status": {"runState": "completed", "progress": 1}},
    ],
}


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("{.kind}", "List"),
        ("{.items[0].metadata.name}", "a"),
        ("{.items[-1].metadata.name}", "c"),
        ("{.items[*].metadata.name}", "a b c"),
        ("{.items[0:2].metadata.name}", "a b"),
        ("{.items[0,2].metadata.name}", "a c"),
        ("{.items[0].metadata['name']}", "a"),
        ("{.items[0].metadata.labels}", '{"app":"x"}'),
        ("{.items[0].status.progress}", "0.5"),
        ("{..errorMessage}", "boom"),
        ('{.items[?(@.status.runState=="failed")].metadata.name}', "b"),
        ("{.items[?(@.status.runState!='failed')].metadata.name}", "a c"),
        ("{.items[?(@.status.progress>0.6)].metadata.name}", "c"),
        ("{.items[?(@.metadata.labels)].metadata.name}", "a c"),
        ("{.items[0].metadata.*}", 'a {"app":"x"}'),
        ("{.items[0].nothing.here}", ""),
        (
            '{range .items[*]}{.metadata.name}{"\\t"}{.status.runState}{"\\n"}{end}',
            "a\trunning\nb\tfailed\nc\tcompleted\n",
        ),
        ("names: {range .items[*]}[{.metadata.name}]{end}", "names: [a][b][c]"),
        ("{$.items[1].metadata.name}", "b"),
    ],
)
def test_jsonpath_templates_as_kubectl(template: str, expected: str) -> None:
    assert jsonpath.render_template(template, DOC) == expected


@pytest.mark.parametrize(
    ("template", "fragment"),
    [
        ("{.items[0}", "unclosed '['"),
        ("{range .items[*]}{.x}", "without {end}"),
        ("{.x}{end}", "{end} without {range}"),
        ("{.items[zz]}", "bad index"),
        ("{.items[?(nope)]}", "cannot parse the filter"),
        ("{.a", "unclosed '{'"),
    ],
)
def test_bad_templates_are_one_readable_line(template: str, fragment: str) -> None:
    with pytest.raises(jsonpath.JsonPathError, match=None) as info:
        jsonpath.render_template(template, DOC)
    assert fragment in str(info.value) and "\n" not in str(info.value)


def test_custom_columns() -> None:
    """kubectl's custom columns: header, aligned cells, <none> where the path finds nothing."""
    text = jsonpath.custom_columns(
        "NAME:.metadata.name,STATE:.status.runState,APP:{.metadata.labels.app}", DOC["items"]
    )
    assert text.splitlines() == [
        "NAME   STATE       APP",
        "a      running     x",
        "b      failed      <none>",
        "c      completed   y",
    ]
    with pytest.raises(jsonpath.JsonPathError, match="expected HEADER:JSONPATH"):
        jsonpath.parse_columns("NAME")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("table", OutputFormat("table")),
        ("JSON", OutputFormat("json")),
        ("name", OutputFormat("name")),
        ("jsonpath={.metadata.name}", OutputFormat("jsonpath", "{.metadata.name}")),
        ("custom-columns=N:.metadata.name", OutputFormat("custom-columns", "N:.metadata.name")),
    ],
)
def test_parse_output(text: str, expected: OutputFormat) -> None:
    assert parse_output(text) == expected
    assert parse_output(text).machine == (expected.kind not in ("table", "wide"))


@pytest.mark.parametrize(
    ("text", "allowed", "fragment"),
    [
        ("xml", ("table", "json"), "unknown output format 'xml'"),
        ("wide", ("table", "json"), "unknown output format 'wide'"),
        ("jsonpath", ("table",), "needs a template"),
        ("jsonpath={.a", ("table",), "unclosed"),
    ],
)
def test_parse_output_rejects(text: str, allowed: tuple[str, ...], fragment: str) -> None:
    with pytest.raises(typer.BadParameter) as info:
        parse_output(text, allowed)
    assert fragment in str(info.value)


def test_params_file_yaml_json_and_stdin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """--params-file: YAML or JSON objects; `-` reads stdin; --params-json and --param add to it (later wins)."""
    as_yaml = tmp_path / "p.yaml"
    as_yaml.write_text('"n": 5\nnames: [a, b]\nnested: {x: 1}\n')
    assert read_params_file(str(as_yaml)) == {"n": 5, "names": ["a", "b"], "nested": {"x": 1}}
    as_json = tmp_path / "p.json"
    as_json.write_text('{"n": 2, "flag": true}')
    assert parse_params(["n=3"], '{"extra": 1}', str(as_json)) == {"n": 3, "flag": True, "extra": 1}
    monkeypatch.setattr("sys.stdin", io.StringIO('{"from": "stdin"}'))
    assert read_params_file("-") == {"from": "stdin"}
    empty = tmp_path / "empty.yaml"
    empty.write_text("")
    assert read_params_file(str(empty)) == {}


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        ("- a\n- b\n", "must hold an object (KEY: VALUE), not a list"),
        ("a: [1, 2\n", "is not valid YAML/JSON"),
        (None, "cannot read --params-file"),
    ],
)
def test_params_file_errors(tmp_path: Path, content: str | None, fragment: str) -> None:
    path = tmp_path / "params.yaml"
    if content is not None:
        path.write_text(content)
    with pytest.raises(typer.BadParameter) as info:
        read_params_file(str(path))
    assert fragment in str(info.value) and "\n" not in str(info.value)


def test_the_crd_schema_judges_manifests_offline() -> None:
    """dops lint's schema check: the shipped CRD's openAPI schema, unknown fields included, as the API server."""
    schemas = Schemas()
    assert {"DelegatedOperation", "DelegationTarget"} <= set(schemas.kinds())
    good = {
        "apiVersion": "dops.io/v1alpha1",
        "kind": "DelegatedOperation",
        "metadata": {"name": "ok"},
        "spec": {"operator": "@dops/examples/echo", "context": {"params": {"a": 1}}},
    }
    assert schemas.check(good) == []
    bad = {**good, "metadata": {"name": "Bad_Name"}, "spec": {"operatr": "x", "priority": "high"}}
    errors = schemas.check(bad)
    assert "unknown field 'spec.operatr'" in errors
    assert "spec.operator: Required value" in errors
    assert any(e.startswith("spec.priority: Invalid value") for e in errors)
    assert any("metadata.name" in e and "Bad_Name" in e for e in errors)
    assert schemas.check({**good, "apiVersion": "dops.io/v9"}) == [
        "apiVersion dops.io/v9 is not served for kind DelegatedOperation (use dops.io/v1alpha1)"
    ]
