"""The catalogue of resource types the embedded API server serves.

Everything that routes a request, renders discovery, builds OpenAPI or a Table starts from a
`ResourceType`. Built-in kinds are declared once in `builtins.py`; custom resources are derived
from CRD objects (`ResourceType.from_crd`) whenever a CRD is written, so discovery changes in the
same step as the CRD write (kopf re-scans discovery the moment it sees the CRD event).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

JSON = dict[str, Any]

DEFAULT_VERBS: tuple[str, ...] = (
    "create",
    "delete",
    "deletecollection",
    "get",
    "list",
    "patch",
    "update",
    "watch",
)

# Field selectors every kind supports (S9).
COMMON_SELECTABLE_FIELDS: tuple[str, ...] = ("metadata.name", "metadata.namespace")
# (group, kind) pairs with their own field-label conversion upstream (AddFieldLabelConversionFunc); the others fall
# back to runtime.DefaultMetaV1FieldSelectorConversion, whose error message differs.
_OWN_FIELD_LABEL_KINDS = frozenset(
    {
        ("", "Pod"),
        ("", "Node"),
        ("", "ReplicationController"),
        ("", "Event"),
        ("", "Namespace"),
        ("", "Secret"),
        ("", "Service"),
        ("batch", "Job"),
        ("events.k8s.io", "Event"),
        ("certificates.k8s.io", "CertificateSigningRequest"),
    }
)


@dataclass(frozen=True)
class PrinterColumn:
    """One Table column: a CRD `additionalPrinterColumns` entry or a built-in printer column."""

    name: str
    type: str  # integer | number | boolean | string | date
    json_path: str = ""
    format: str = ""
    description: str = ""
    priority: int = 0


@dataclass(frozen=True)
class ResourceType:
    """A servable resource: one (group, version, plural) triple and everything needed to serve it."""

    group: str  # "" for the core group
    version: str
    kind: str
    plural: str
    singular: str
    namespaced: bool
    short_names: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    subresources: frozenset[str] = frozenset()  # e.g. {"status", "log"}
    verbs: tuple[str, ...] = DEFAULT_VERBS
    # Extra field-selector paths beyond metadata.name/namespace, e.g. "status.phase".
    selectable_fields: tuple[str, ...] = ()
    # CRs: the CRD's additionalPrinterColumns (empty → a single Age column). Built-ins: None → built-in printer.
    printer_columns: tuple[PrinterColumn, ...] | None = None
    # CRs: the version's openAPIV3Schema. Built-ins: None (see builtin_schemas).
    schema: Mapping[str, Any] | None = field(default=None, compare=False, hash=False)
    crd_name: str | None = None  # set for custom resources
    served: bool = True
    storage: bool = True

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def group_version(self) -> str:
        return self.api_version

    @property
    def list_kind(self) -> str:
        return f"{self.kind}List"

    @property
    def qualified_name(self) -> str:
        """The name Kubernetes uses in error messages: `pods`, `jobs.batch`, `widgets.example.com`."""
        return f"{self.plural}.{self.group}" if self.group else self.plural

    @property
    def is_custom(self) -> bool:
        return self.crd_name is not None

    @property
    def has_status(self) -> bool:
        return "status" in self.subresources

    def field_selectable(self, path: str) -> bool:
        if path == "metadata.namespace" and not self.namespaced and (self.is_custom or self._own_field_labels):
            return False  # the CR converter and the Namespace/Node conversions accept metadata.name only
        return path in COMMON_SELECTABLE_FIELDS or path in self.selectable_fields

    @property
    def _own_field_labels(self) -> bool:
        return (self.group, self.kind) in _OWN_FIELD_LABEL_KINDS

    def unsupported_field_message(self, path: str) -> str:
        """The 400 message for a field selector on `path` (scheme.ConvertFieldLabel's error for this kind)."""
        if (self.group, self.kind) == ("batch", "Job"):
            return f'field label "{path}" not supported for Job'
        if self.is_custom or self._own_field_labels:
            return f"field label not supported: {path}"
        # Kinds without a registered conversion: runtime.DefaultMetaV1FieldSelectorConversion.
        return f'"{path}" is not a known field selector: only "metadata.name", "metadata.namespace"'

    @staticmethod
    def from_crd(crd: Mapping[str, Any]) -> list[ResourceType]:
        """One ResourceType per served version of a CRD object."""
        spec = crd.get("spec") or {}
        names = spec.get("names") or {}
        plural = names.get("plural", "")
        kind = names.get("kind", "")
        out: list[ResourceType] = []
        for version in spec.get("versions") or []:
            if not version.get("served", True):
                continue
            subresources = set()
            for sub in version.get("subresources") or {}:
                subresources.add(sub)
            columns = tuple(
                PrinterColumn(
                    name=c.get("name", ""),
                    type=c.get("type", "string"),
                    json_path=c.get("jsonPath", ""),
                    format=c.get("format", ""),
                    description=c.get("description", ""),
                    priority=int(c.get("priority", 0) or 0),
                )
                for c in version.get("additionalPrinterColumns") or []
            )
            selectable = tuple(str(f.get("jsonPath", "")).lstrip(".") for f in version.get("selectableFields") or [])
            schema = (version.get("schema") or {}).get("openAPIV3Schema")
            out.append(
                ResourceType(
                    group=spec.get("group", ""),
                    version=version.get("name", ""),
                    kind=kind,
                    plural=plural,
                    singular=names.get("singular") or kind.lower(),
                    namespaced=spec.get("scope", "Namespaced") == "Namespaced",
                    short_names=tuple(names.get("shortNames") or ()),
                    categories=tuple(names.get("categories") or ()),
                    subresources=frozenset(subresources),
                    selectable_fields=selectable,
                    printer_columns=columns,
                    schema=schema,
                    crd_name=(crd.get("metadata") or {}).get("name"),
                    served=True,
                    storage=bool(version.get("storage", False)),
                )
            )
        return out


class Registry:
    """Resource types by (group, version, plural) and by (group, version, kind)."""

    def __init__(self, types: Iterable[ResourceType] = ()) -> None:
        self._by_plural: dict[tuple[str, str, str], ResourceType] = {}
        # `groups()` as computed from `_by_plural`, or None after a change: the HTTP layer asks for it on every
        # request under /apis/, and deriving it walks every type and sorts versions with a regex key.
        self._groups: dict[str, tuple[str, ...]] | None = None
        for rtype in types:
            self.add(rtype)

    def add(self, rtype: ResourceType) -> None:
        self._by_plural[(rtype.group, rtype.version, rtype.plural)] = rtype
        self._groups = None

    def remove_crd(self, crd_name: str) -> list[ResourceType]:
        removed = [t for t in self._by_plural.values() if t.crd_name == crd_name]
        for rtype in removed:
            del self._by_plural[(rtype.group, rtype.version, rtype.plural)]
        if removed:
            self._groups = None
        return removed

    def set_crd(self, crd_name: str, types: Iterable[ResourceType]) -> None:
        self.remove_crd(crd_name)
        for rtype in types:
            self.add(rtype)

    def get(self, group: str, version: str, plural: str) -> ResourceType | None:
        return self._by_plural.get((group, version, plural))

    def by_kind(self, api_version: str, kind: str) -> ResourceType | None:
        group, _, version = api_version.rpartition("/")
        for rtype in self._by_plural.values():
            if rtype.group == group and rtype.version == version and rtype.kind == kind:
                return rtype
        return None

    def crd_types(self, crd_name: str) -> list[ResourceType]:
        return [t for t in self._by_plural.values() if t.crd_name == crd_name]

    def groups(self) -> dict[str, list[str]]:
        """Group name → its served versions, in a stable order (core group excluded). A fresh dict: callers may
        change it."""
        return {group: list(versions) for group, versions in self._group_versions().items()}

    def versions_of(self, group: str) -> tuple[str, ...]:
        """`groups().get(group)` without building the whole mapping: () for a group no type serves."""
        return self._group_versions().get(group, ())

    def _group_versions(self) -> dict[str, tuple[str, ...]]:
        """The cached `groups()` (immutable values; rebuilt after `add`/`remove_crd` changed the types)."""
        if self._groups is None:
            out: dict[str, list[str]] = {}
            for rtype in self._by_plural.values():
                if rtype.group:
                    versions = out.setdefault(rtype.group, [])
                    if rtype.version not in versions:
                        versions.append(rtype.version)
            self._groups = {g: tuple(sorted(vs, key=version_priority_key)) for g, vs in sorted(out.items())}
        return self._groups

    def in_group_version(self, group: str, version: str) -> list[ResourceType]:
        return sorted(
            (t for t in self._by_plural.values() if t.group == group and t.version == version),
            key=lambda t: t.plural,
        )

    def __iter__(self) -> Iterator[ResourceType]:
        return iter(list(self._by_plural.values()))


def version_priority_key(version: str) -> tuple[int, int, int, str]:
    """Kubernetes version ordering: GA > beta > alpha, higher numbers first (v1 > v1beta2 > v1alpha1)."""
    import re

    match = re.fullmatch(r"v(\d+)(?:(alpha|beta)(\d+))?", version)
    if not match:
        return (3, 0, 0, version)
    major = int(match.group(1))
    stability = {"": 0, "beta": 1, "alpha": 2}[match.group(2) or ""]
    minor = int(match.group(3) or 0)
    return (stability, -major, -minor, version)
