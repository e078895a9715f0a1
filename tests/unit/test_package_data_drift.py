"""The wheel carries the same CRD and example bytes as crds/ and examples/; a test fails on drift.

Approach (as for the chart's copies, tests/unit/test_chart_crds_drift.py): `pip install dops` has no
checkout, so `dops dev` reads the CRDs (and points at the examples) from package data, through
importlib.resources. operator/dops/data/crds/ and operator/dops/data/examples/ hold byte-for-byte copies of
crds/*.yaml and examples/*.yaml (the sources of truth), kept next to the code so the wheel and the Docker
image (which copies only operator/) carry them. Fix a failure with
`cp crds/*.yaml operator/dops/data/crds/; cp examples/*.yaml operator/dops/data/examples/`, or run this module
with DOPS_UPDATE_PACKAGE_DATA=1, which copies them first.

Covered:
- each packaged directory is exactly its source: same file names, same bytes (a change, a missing or an extra
  file is reported, shown on tampered copies);
- importlib.resources finds the packaged copies from the installed `dops` package;
- that the built wheel really contains them, and `dops dev` starts from it outside a checkout:
  tests/integration/test_installed_wheel.py.
"""

from __future__ import annotations

import importlib.resources
import os
import shutil
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent.parent
PACKAGE_DATA = REPO / "operator" / "dops" / "data"
SOURCES = {"crds": REPO / "crds", "examples": REPO / "examples"}


def file_drift(copies: Path, source: Path) -> list[str]:
    """Differences between source/*.yaml and copies/*.yaml, one line each (empty = no drift)."""
    wanted = {p.name: p.read_bytes() for p in sorted(source.glob("*.yaml"))}
    found = {p.name: p.read_bytes() for p in sorted(copies.glob("*.yaml"))}
    problems = [f"missing from the package: {name}" for name in sorted(wanted.keys() - found.keys())]
    problems += [f"not in {source.name}/: {name}" for name in sorted(found.keys() - wanted.keys())]
    problems += [f"differs from {source.name}/: {name}" for name in sorted(wanted.keys() & found.keys())
                 if wanted[name] != found[name]]  # fmt: skip
    return problems


@pytest.mark.parametrize("name", sorted(SOURCES))
def test_packaged_copies_are_the_source_bytes(name: str) -> None:
    """Issue 14 #2: dops/data/NAME is byte-identical to NAME/ (fix: cp NAME/*.yaml operator/dops/data/NAME/)."""
    source, copies = SOURCES[name], PACKAGE_DATA / name
    if os.environ.get("DOPS_UPDATE_PACKAGE_DATA") == "1":
        copies.mkdir(parents=True, exist_ok=True)
        for stale in copies.glob("*.yaml"):
            stale.unlink()
        for path in source.glob("*.yaml"):
            shutil.copyfile(path, copies / path.name)
    assert sorted(source.glob("*.yaml")), f"{name}/ is empty"
    problems = file_drift(copies, source)
    assert problems == [], f"operator/dops/data/{name} drifted from {name}/ (cp {name}/*.yaml {copies}/):\n" + (
        "\n".join(problems)
    )


def test_importlib_resources_finds_the_packaged_manifests() -> None:
    """`dops dev` outside a checkout reads these through importlib.resources from the `dops` package."""
    for name, source in SOURCES.items():
        packaged = importlib.resources.files("dops") / "data" / name
        with importlib.resources.as_file(packaged) as path:
            assert sorted(p.name for p in path.glob("*.yaml")) == sorted(p.name for p in source.glob("*.yaml"))


@pytest.fixture
def copies(tmp_path: Path) -> Path:
    target = tmp_path / "crds"
    shutil.copytree(PACKAGE_DATA / "crds", target)
    return target


def test_drift_check_fails_on_a_changed_byte(copies: Path) -> None:
    """The check reports a single edited byte (a comment), which loading the YAML would not show."""
    target = copies / "dops.io_delegatedoperations.yaml"
    target.write_bytes(target.read_bytes().replace(b"# ", b"#  ", 1))
    assert file_drift(copies, SOURCES["crds"]) == ["differs from crds/: dops.io_delegatedoperations.yaml"]


def test_drift_check_fails_on_missing_and_extra_files(copies: Path) -> None:
    """The check reports a file missing from the package and a file crds/ does not have."""
    (copies / "dops.io_delegationtargets.yaml").unlink()
    (copies / "extra.yaml").write_text("apiVersion: v1\n")
    assert file_drift(copies, SOURCES["crds"]) == [
        "missing from the package: dops.io_delegationtargets.yaml",
        "not in crds/: extra.yaml",
    ]
