"""Render the dops Helm chart (helm/dops) with the real helm binary: no cluster, isolated HELM_*_HOME."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from tests.helpers import CLI

REPO = Path(__file__).resolve().parent.parent
CHART = REPO / "helm" / "dops"
CRDS = REPO / "crds"
RELEASE = "dops"
NAMESPACE = "dops-system"

Doc = dict[str, Any]


@dataclass
class Rendered:
    """`helm template` output parsed with yaml.safe_load_all (empty documents dropped)."""

    docs: list[Doc]

    def of_kind(self, kind: str) -> list[Doc]:
        return [d for d in self.docs if d.get("kind") == kind]

    def one(self, kind: str, name: str | None = None, namespace: str | None = None) -> Doc:
        found = [
            d
            for d in self.of_kind(kind)
            if (name is None or d["metadata"]["name"] == name)
            and (namespace is None or d["metadata"].get("namespace") == namespace)
        ]
        assert len(found) == 1, f"expected one {kind} {namespace}/{name}, found {len(found)}: {self.summary()}"
        return found[0]

    def summary(self) -> list[str]:
        return sorted(f"{d['kind']}/{d['metadata'].get('namespace', '')}/{d['metadata']['name']}" for d in self.docs)

    def pod_specs(self) -> Iterator[tuple[str, Doc]]:
        """(object, pod spec) for every workload-like object (anything with spec.template.spec or a Pod)."""
        for doc in self.docs:
            ref = f"{doc['kind']}/{doc['metadata']['name']}"
            if doc["kind"] == "Pod":
                yield ref, doc["spec"]
            spec = doc.get("spec") or {}
            template = spec.get("template") or (spec.get("jobTemplate") or {}).get("spec", {}).get("template")
            if isinstance(template, dict) and isinstance(template.get("spec"), dict):
                yield ref, template["spec"]


def helm_cli(binary: str, home: Path) -> CLI:
    """A helm CLI whose HOME and HELM_{CACHE,CONFIG,DATA}_HOME live under `home` (no cluster is contacted)."""
    home.mkdir(parents=True, exist_ok=True)
    return CLI(binary, home / "no-kubeconfig", home, {})


def template(
    helm: CLI,
    values: dict[str, Any] | None = None,
    *args: str,
    tmp: Path,
    check: bool = True,
    chart: Path = CHART,
) -> subprocess.CompletedProcess[str]:
    """`helm template dops CHART -n dops-system [-f values.json] ARGS` (JSON is valid YAML)."""
    cmd = ["template", RELEASE, str(chart), "--namespace", NAMESPACE]
    if values is not None:
        tmp.mkdir(parents=True, exist_ok=True)
        path = tmp / f"values-{abs(hash(json.dumps(values, sort_keys=True)))}.json"
        path.write_text(json.dumps(values))
        cmd += ["--values", str(path)]
    return helm.run(*cmd, *args, check=check)


def parse(output: str) -> Rendered:
    return Rendered([d for d in yaml.safe_load_all(output) if d])
