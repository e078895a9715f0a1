"""Load manifests (CRDs and friends) straight into the store, for start-up and test fixtures."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml

from .apiserver import ApiServer, WriteOptions
from .errors import APIError


def _plural_for(api: ApiServer, api_version: str, kind: str) -> tuple[str, str, str]:
    rtype = api.registry.by_kind(api_version, kind)
    if rtype is None:
        raise ValueError(f"no resource type serves {kind} in {api_version}")
    return rtype.group, rtype.version, rtype.plural


def apply_objects(
    api: ApiServer, objects: Iterable[dict[str, Any]], namespace: str = "default"
) -> list[dict[str, Any]]:
    """Create each object, or replace it when it exists; returns the stored objects."""
    stored = []
    for obj in objects:
        group, version, plural = _plural_for(api, obj.get("apiVersion", ""), obj.get("kind", ""))
        rtype = api.type_for(group, version, plural)
        ns = (obj.get("metadata") or {}).get("namespace") or namespace if rtype.namespaced else None
        opts = WriteOptions(field_manager="dops-bootstrap", field_validation="Strict")
        try:
            stored.append(api.create(rtype, ns, obj, opts).obj)
        except APIError as exc:
            if exc.code != 409:
                raise ValueError(f"{obj.get('kind')} {(obj.get('metadata') or {}).get('name')}: {exc.message}") from exc
            name = obj["metadata"]["name"]
            stored.append(api.update(rtype, ns, name, obj, opts).obj)
    return stored


def load_manifests(paths: Iterable[Path]) -> list[dict[str, Any]]:
    docs: list[dict[str, Any]] = []
    for path in paths:
        files = sorted(path.glob("*.y*ml")) if path.is_dir() else [path]
        for file in files:
            try:
                loaded = list(yaml.safe_load_all(file.read_text()))
            except yaml.YAMLError as exc:
                raise ValueError(f"{file}: not valid YAML: {' '.join(str(exc).split())}") from exc
            docs.extend(d for d in loaded if isinstance(d, dict))
    return docs


def apply_manifest_paths(api: ApiServer, paths: Iterable[Path]) -> list[dict[str, Any]]:
    return apply_objects(api, load_manifests(paths))
