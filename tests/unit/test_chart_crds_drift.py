"""The Helm chart carries the same CRD bytes as crds/ (the single source of truth); a test fails on drift.

Approach: helm cannot read outside the chart directory, so helm/dops/files/crds/ holds byte-for-byte copies of
crds/*.yaml and templates/crds/crds.yaml renders each with `.Files.Get | fromYaml`, adding only the
`helm.sh/resource-policy: keep` annotation (crds.keep). Fix a failure with `cp crds/*.yaml helm/dops/files/crds/`
(or run this module with DOPS_UPDATE_CHART_CRDS=1, which copies them first).

Covered:
- the chart's CRD files are exactly crds/*.yaml: same file names, same bytes (a change, a missing or an extra file
  is reported — shown on a tampered copy of the chart);
- `helm template` renders every CRD as the same object as crds/ says, apart from the injected annotation;
- the check itself fails on a tampered chart (byte change, missing file, extra file, edited template).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.chart import CHART, CRDS, helm_cli, parse, template
from tests.helpers import CLI, find_binary

CHART_CRDS = CHART / "files" / "crds"
KEEP = {"helm.sh/resource-policy": "keep"}


def file_drift(chart_crds: Path, crds: Path = CRDS) -> list[str]:
    """Differences between crds/*.yaml and the chart's copies, one line each (empty = no drift)."""
    source = {p.name: p.read_bytes() for p in sorted(crds.glob("*.yaml"))}
    copies = {p.name: p.read_bytes() for p in sorted(chart_crds.glob("*.yaml"))}
    problems = [f"missing from the chart: {name}" for name in sorted(source.keys() - copies.keys())]
    problems += [f"not in crds/: {name}" for name in sorted(copies.keys() - source.keys())]
    problems += [
        f"differs from crds/: {name}" for name in sorted(source.keys() & copies.keys()) if source[name] != copies[name]
    ]
    return problems


def rendered_drift(rendered: list[dict[str, Any]], crds: Path = CRDS) -> list[str]:
    """Differences between the rendered CRDs (minus the keep annotation) and the objects in crds/."""
    expected = {}
    for path in sorted(crds.glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc:
                expected[doc["metadata"]["name"]] = doc
    actual = {}
    for doc in rendered:
        doc = yaml.safe_load(yaml.safe_dump(doc))  # a deep copy
        annotations = doc["metadata"].get("annotations") or {}
        assert annotations.items() >= KEEP.items(), f"{doc['metadata']['name']}: no keep annotation"
        for key in KEEP:
            annotations.pop(key)
        if not annotations:
            doc["metadata"].pop("annotations", None)
        actual[doc["metadata"]["name"]] = doc
    problems = [f"not rendered: {name}" for name in sorted(expected.keys() - actual.keys())]
    problems += [f"rendered but not in crds/: {name}" for name in sorted(actual.keys() - expected.keys())]
    problems += [
        f"rendered differently from crds/: {name}"
        for name in sorted(expected.keys() & actual.keys())
        if expected[name] != actual[name]
    ]
    return problems


@pytest.fixture(scope="module")
def helm(tmp_path_factory: pytest.TempPathFactory) -> CLI:
    binary = find_binary("helm")
    if binary is None:
        pytest.skip("helm binary not available: run `python scripts/fetch_clients.py` (make test does)")
    return helm_cli(binary, tmp_path_factory.mktemp("helm-home"))


def render_crds(helm: CLI, chart: Path, tmp: Path) -> list[dict[str, Any]]:
    result = template(helm, None, "--show-only", "templates/crds/crds.yaml", tmp=tmp, chart=chart)
    return parse(result.stdout).of_kind("CustomResourceDefinition")


def test_chart_crd_files_are_the_crds_dir_bytes() -> None:
    """Issue 6: the chart's CRD bytes come from crds/; any drift fails (fix: cp crds/*.yaml helm/dops/files/crds/)."""
    if os.environ.get("DOPS_UPDATE_CHART_CRDS") == "1":
        for stale in CHART_CRDS.glob("*.yaml"):
            stale.unlink()
        for path in CRDS.glob("*.yaml"):
            shutil.copyfile(path, CHART_CRDS / path.name)
    assert sorted(p.name for p in CRDS.glob("*.yaml")), "crds/ is empty"
    problems = file_drift(CHART_CRDS)
    assert problems == [], "helm/dops/files/crds drifted from crds/ (cp crds/*.yaml helm/dops/files/crds/):\n" + (
        "\n".join(problems)
    )


def test_rendered_crds_equal_the_crds_dir(helm: CLI, tmp_path: Path) -> None:
    """Issue 6: `helm template` renders the crds/ objects unchanged, plus helm.sh/resource-policy: keep."""
    rendered = render_crds(helm, CHART, tmp_path)
    assert len(rendered) == len(list(CRDS.glob("*.yaml")))
    assert rendered_drift(rendered) == []


@pytest.fixture
def chart_copy(tmp_path: Path) -> Path:
    copy = tmp_path / "dops"
    shutil.copytree(CHART, copy)
    return copy


def test_drift_check_fails_on_a_changed_byte(chart_copy: Path) -> None:
    """The check reports a single edited byte (a comment), which the rendered objects would not show."""
    target = chart_copy / "files" / "crds" / "dops.io_delegatedoperations.yaml"
    target.write_bytes(target.read_bytes().replace(b"# ", b"#  ", 1))
    assert file_drift(chart_copy / "files" / "crds") == ["differs from crds/: dops.io_delegatedoperations.yaml"]


def test_drift_check_fails_on_missing_and_extra_files(chart_copy: Path) -> None:
    """The check reports a CRD missing from the chart and a CRD the chart has but crds/ does not."""
    crds = chart_copy / "files" / "crds"
    (crds / "dops.io_delegationtargets.yaml").unlink()
    (crds / "extra.yaml").write_text("apiVersion: v1\n")
    assert file_drift(crds) == ["missing from the chart: dops.io_delegationtargets.yaml", "not in crds/: extra.yaml"]


def test_rendered_check_fails_on_a_changed_schema(helm: CLI, chart_copy: Path, tmp_path: Path) -> None:
    """The rendered comparison catches a semantic change (a different printer column) in the chart's copy."""
    target = chart_copy / "files" / "crds" / "dops.io_delegatedoperations.yaml"
    text = target.read_text()
    assert "name: State" in text
    target.write_text(text.replace("name: State", "name: Phase", 1))
    rendered = render_crds(helm, chart_copy, tmp_path)
    assert rendered_drift(rendered) == ["rendered differently from crds/: delegatedoperations.dops.io"]
