"""A container's environment as the kubelet builds it: envFrom, env, valueFrom and `$(VAR)` expansion.

Failures carry the kubelet's messages (`configmap "x" not found`, `couldn't find key k in ConfigMap
ns/x`); the container then waits with reason `CreateContainerConfigError`, as on a real node.

ConfigMaps and Secrets are read through anything with the store's `get((group, plural), namespace,
name)`: the embedded kubelet passes its store, the node agent a cache it filled over HTTP
(`referenced_sources` tells it what to fetch).
"""

from __future__ import annotations

import base64
import math
import re
from collections.abc import Callable, Mapping
from fractions import Fraction
from typing import Any, Protocol

JSON = dict[str, Any]


class Sources(Protocol):
    """Where ConfigMaps and Secrets are looked up (the embedded store, or the node agent's fetched copies)."""

    def get(self, resource: tuple[str, str], namespace: str, name: str, /) -> JSON | None: ...


class ConfigError(Exception):
    """The container cannot be configured (CreateContainerConfigError); `str()` is the kubelet's message."""


def expand(text: str, lookup: Callable[[str], str | None]) -> str:
    """Kubernetes `$(VAR)` expansion: defined names are replaced, `$$` escapes, anything else is kept."""
    if "$" not in text:
        return text
    out: list[str] = []
    i, n = 0, len(text)
    while i < n:
        char = text[i]
        if char != "$" or i + 1 >= n:
            out.append(char)
            i += 1
            continue
        following = text[i + 1]
        if following == "$":
            out.append("$")
            i += 2
        elif following == "(":
            close = text.find(")", i + 2)
            if close < 0:
                out.append(text[i:])
                break
            name = text[i + 2 : close]
            value = lookup(name) if name else None
            out.append(value if value is not None else text[i : close + 1])
            i = close + 1
        else:
            out.append(text[i : i + 2])
            i += 2
    return "".join(out)


_QUANTITY = re.compile(r"^([+-]?[0-9.]+)(([eE][+-]?[0-9]+)|[numkMGTPE]|[KMGTPE]i)?$")
_SUFFIX = {
    "n": Fraction(1, 10**9),
    "u": Fraction(1, 10**6),
    "m": Fraction(1, 1000),
    "": Fraction(1),
    "k": Fraction(10**3),
    "M": Fraction(10**6),
    "G": Fraction(10**9),
    "T": Fraction(10**12),
    "P": Fraction(10**15),
    "E": Fraction(10**18),
    "Ki": Fraction(2**10),
    "Mi": Fraction(2**20),
    "Gi": Fraction(2**30),
    "Ti": Fraction(2**40),
    "Pi": Fraction(2**50),
    "Ei": Fraction(2**60),
}


def parse_quantity(value: Any) -> Fraction:
    """A resource.Quantity (`500m`, `1Gi`, `2`, `1e3`) as an exact fraction."""
    text = str(value).strip()
    match = _QUANTITY.match(text)
    if not match:
        raise ValueError(f"quantities must match the regular expression '{_QUANTITY.pattern}'")
    number = Fraction(match.group(1))
    suffix = match.group(2) or ""
    if match.group(3):
        return number * Fraction(10) ** int(suffix[1:])
    return number * _SUFFIX[suffix]


def _field_ref(pod: JSON, path: str, pod_ip: str, host_ip: str) -> str:
    meta = pod.get("metadata") or {}
    spec = pod.get("spec") or {}
    simple = {
        "metadata.name": meta.get("name", ""),
        "metadata.namespace": meta.get("namespace", ""),
        "metadata.uid": meta.get("uid", ""),
        "spec.nodeName": spec.get("nodeName", ""),
        "spec.serviceAccountName": spec.get("serviceAccountName", ""),
        "status.podIP": pod_ip,
        "status.podIPs": pod_ip,
        "status.hostIP": host_ip,
        "status.hostIPs": host_ip,
    }
    if path in simple:
        return str(simple[path])
    match = re.fullmatch(r"metadata\.(labels|annotations)\[['\"]?(.*?)['\"]?\]", path)
    if match:
        return str((meta.get(match.group(1)) or {}).get(match.group(2), ""))
    raise ConfigError(f"unsupported fieldPath: {path}")


def _resource_ref(pod: JSON, container: JSON, ref: JSON, allocatable: Mapping[str, str]) -> str:
    target = container
    wanted = ref.get("containerName")
    if wanted:
        for candidate in (pod.get("spec") or {}).get("containers") or []:
            if candidate.get("name") == wanted:
                target = candidate
    resource = str(ref.get("resource", ""))
    kind, _, name = resource.partition(".")
    resources = target.get("resources") or {}
    raw = (resources.get(kind) or {}).get(name)
    if raw is None and kind == "requests":
        raw = (resources.get("limits") or {}).get(name)
    if raw is None and kind == "limits":
        raw = allocatable.get(name)
    if kind not in ("limits", "requests") or not name:
        raise ConfigError(f"unsupported container resource: {resource}")
    try:
        amount = parse_quantity(raw if raw is not None else 0)
        divisor = parse_quantity(ref.get("divisor") or "1")
    except ValueError as exc:
        raise ConfigError(f"invalid quantity for {resource}: {exc}") from exc
    if divisor <= 0:
        divisor = Fraction(1)
    result = math.ceil(amount / divisor)
    if name == "cpu" and result == 0 and amount > 0:
        result = 1
    return str(result)


def _lookup_source(store: Sources, kind: str, namespace: str, name: str) -> JSON | None:
    return store.get(("", "configmaps" if kind == "ConfigMap" else "secrets"), namespace, name)


def _source_data(obj: JSON, kind: str) -> dict[str, str]:
    if kind == "ConfigMap":
        data = {str(k): str(v) for k, v in (obj.get("data") or {}).items()}
        for key, value in (obj.get("binaryData") or {}).items():
            data.setdefault(str(key), base64.b64decode(str(value)).decode(errors="replace"))
        return data
    return {str(k): base64.b64decode(str(v)).decode(errors="replace") for k, v in (obj.get("data") or {}).items()}


def _key_ref(store: Sources, namespace: str, ref: JSON, kind: str) -> str | None:
    name = str(ref.get("name", ""))
    optional = bool(ref.get("optional"))
    obj = _lookup_source(store, kind, namespace, name)
    label = "configmap" if kind == "ConfigMap" else "secret"
    if obj is None:
        if optional:
            return None
        raise ConfigError(f'{label} "{name}" not found')
    data = _source_data(obj, kind)
    key = str(ref.get("key", ""))
    if key not in data:
        if optional:
            return None
        raise ConfigError(f"couldn't find key {key} in {kind} {namespace}/{name}")
    return data[key]


def referenced_sources(container: JSON) -> set[tuple[str, str]]:
    """(kind, name) of every ConfigMap and Secret the container's env and envFrom read."""
    found: set[tuple[str, str]] = set()
    for source in container.get("envFrom") or []:
        for kind, ref_key in (("ConfigMap", "configMapRef"), ("Secret", "secretRef")):
            if (source.get(ref_key) or {}).get("name"):
                found.add((kind, str(source[ref_key]["name"])))
    for var in container.get("env") or []:
        value_from = var.get("valueFrom") or {}
        for kind, ref_key in (("ConfigMap", "configMapKeyRef"), ("Secret", "secretKeyRef")):
            if (value_from.get(ref_key) or {}).get("name"):
                found.add((kind, str(value_from[ref_key]["name"])))
    return found


def container_env(
    pod: JSON,
    container: JSON,
    store: Sources,
    *,
    pod_ip: str,
    host_ip: str,
    allocatable: Mapping[str, str],
) -> dict[str, str]:
    """The variables the pod spec defines for `container`, in kubelet order (envFrom, then env)."""
    namespace = (pod.get("metadata") or {}).get("namespace", "")
    env: dict[str, str] = {}
    for source in container.get("envFrom") or []:
        prefix = str(source.get("prefix") or "")
        for kind, ref_key in (("ConfigMap", "configMapRef"), ("Secret", "secretRef")):
            ref = source.get(ref_key)
            if not ref:
                continue
            obj = _lookup_source(store, kind, namespace, str(ref.get("name", "")))
            if obj is None:
                if ref.get("optional"):
                    continue
                label = "configmap" if kind == "ConfigMap" else "secret"
                raise ConfigError(f'{label} "{ref.get("name", "")}" not found')
            for key, item in _source_data(obj, kind).items():
                env[prefix + key] = item
    for var in container.get("env") or []:
        name = str(var.get("name", ""))
        source = var.get("valueFrom")
        if not source:
            env[name] = expand(str(var.get("value") or ""), env.get)
            continue
        value: str | None = ""
        if source.get("fieldRef"):
            value = _field_ref(pod, str(source["fieldRef"].get("fieldPath", "")), pod_ip, host_ip)
        elif source.get("resourceFieldRef"):
            value = _resource_ref(pod, container, source["resourceFieldRef"], allocatable)
        elif source.get("configMapKeyRef"):
            value = _key_ref(store, namespace, source["configMapKeyRef"], "ConfigMap")
        elif source.get("secretKeyRef"):
            value = _key_ref(store, namespace, source["secretKeyRef"], "Secret")
        if value is not None:
            env[name] = value
    return env
