"""Accept-header negotiation for the apiserver's response transforms (`as=Table`, `as=PartialObjectMetadata[List]`).

What the real kube-apiserver does (apiserver `endpoints/handlers/negotiation` + `handlers/response.go`), and so
what this module does:

- The Accept header is split into media ranges, ordered by `q` (highest first; ties keep their order, a concrete
  type before a wildcard). The first range that the server can serve wins; later ranges are never a fallback for
  a transform that fails on the object (a list asked for as `PartialObjectMetadata` is 406, not a plain list).
- A range asks for a transform when it carries `as`, `g` or `v`. The server serves only `Table`,
  `PartialObjectMetadata` and `PartialObjectMetadataList` in group `meta.k8s.io`, versions `v1` and `v1beta1`;
  `Table` only as JSON or YAML, the metadata forms in any of its encodings. Ranges asking for anything else
  are skipped.
- When ranges asked for transforms and none could be served: `406 NotAcceptable`, "only the following media
  types are accepted: ...". (Ranges with media types the server has no serializer for are skipped too; the
  emulator stays lenient there and answers JSON when no range asked for a transform, as it always did.)

The emulator encodes every response as JSON, so a range such as
`application/vnd.kubernetes.protobuf;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1` (what client-go's metadata
client sends first) is answered with the JSON form of the same object.
"""

from __future__ import annotations

from dataclasses import dataclass

from . import errors
from .registry import ResourceType

__all__ = [
    "ACCEPTED_MEDIA_TYPES",
    "METADATA",
    "METADATA_LIST",
    "TABLE",
    "Transform",
    "negotiate",
    "not_a_list",
    "not_an_object",
]

TABLE = "Table"
METADATA = "PartialObjectMetadata"
METADATA_LIST = "PartialObjectMetadataList"
META_GROUP = "meta.k8s.io"
_VERSIONS = ("v1", "v1beta1")
_SERIALIZERS = ("application/json", "application/yaml", "application/vnd.kubernetes.protobuf")
ACCEPTED_MEDIA_TYPES = ", ".join(_SERIALIZERS)


@dataclass(frozen=True, slots=True)
class Transform:
    """The representation a request negotiated: `kind` in meta.k8s.io/`version`."""

    kind: str
    version: str

    @property
    def api_version(self) -> str:
        return f"{META_GROUP}/{self.version}"


@dataclass(frozen=True, slots=True)
class _Range:
    media_type: str
    params: dict[str, str]
    q: float


def _parse(accept: str) -> list[_Range]:
    ranges: list[_Range] = []
    for part in accept.split(","):
        pieces = part.split(";")
        media_type = pieces[0].strip().lower()
        if media_type == "*":
            media_type = "*/*"
        if "/" not in media_type:
            continue  # goautoneg drops ranges without a subtype
        params: dict[str, str] = {}
        q = 1.0
        for piece in pieces[1:]:
            key, _, value = piece.partition("=")
            key, value = key.strip(), value.strip().strip('"')
            if key == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
            elif key:
                params[key] = value
        ranges.append(_Range(media_type, params, q))
    # Highest q first; on ties a concrete type/subtype before a wildcard; otherwise the order sent (stable sort).
    ranges.sort(key=lambda r: (-r.q, r.media_type.startswith("*/"), r.media_type.endswith("/*")))
    return ranges


def _serializers(media_type: str) -> tuple[str, ...]:
    if media_type == "*/*":
        return _SERIALIZERS
    if media_type.endswith("/*"):
        prefix = media_type[:-1]
        return tuple(s for s in _SERIALIZERS if s.startswith(prefix))
    return (media_type,) if media_type in _SERIALIZERS else ()


def _allowed(kind: str, group: str, version: str, serializer: str) -> bool:
    """`RequestScope.AllowsMediaTypeTransform` for a range that asks for a transform."""
    if group != META_GROUP or version not in _VERSIONS:
        return False
    if kind == TABLE:
        return serializer in ("application/json", "application/yaml")
    return kind in (METADATA, METADATA_LIST)


def negotiate(accept: str) -> Transform | None:
    """The transform an Accept header asks for (None: the object as stored); 406 when none can be served."""
    if "as=" not in accept and "g=" not in accept and "v=" not in accept:
        return None  # the common case, decided without parsing
    asked_for_transform = False
    for media_range in _parse(accept):
        params = media_range.params
        wants = "as" in params or "g" in params or "v" in params
        asked_for_transform = asked_for_transform or wants
        for serializer in _serializers(media_range.media_type):
            if not wants:
                return None
            kind, group, version = params.get("as", ""), params.get("g", ""), params.get("v", "")
            if _allowed(kind, group, version, serializer):
                return Transform(kind, version)
    if asked_for_transform:
        raise errors.not_acceptable(f"only the following media types are accepted: {ACCEPTED_MEDIA_TYPES}")
    return None  # only media types without a serializer (e.g. text/plain): answered as JSON, as always


def _go_type(rtype: ResourceType, suffix: str) -> str:
    """The Go type `%T` prints in upstream's message: `*unstructured.Unstructured` for custom resources, the
    internal type (`*core.ConfigMap`, `*apps.Deployment`) for built-ins."""
    if rtype.is_custom:
        return f"*unstructured.Unstructured{suffix}"
    package = rtype.group.split(".")[0] if rtype.group else "core"
    return f"*{package}.{rtype.kind}{suffix}"


def not_an_object(rtype: ResourceType) -> errors.APIError:
    """406 for a list asked for as `PartialObjectMetadata` (the singular form)."""
    return errors.not_acceptable(
        f"you requested PartialObjectMetadata, but the requested object is a list ({_go_type(rtype, 'List')})"
    )


def not_a_list(rtype: ResourceType) -> errors.APIError:
    """406 for a single built-in object asked for as `PartialObjectMetadataList`. A custom resource is an
    `*unstructured.Unstructured`, which has the list accessors, so upstream gets past that check and fails in
    `EachListItem` instead: a plain error, answered 500 with no reason."""
    if rtype.is_custom:
        return errors.APIError(500, "", "content is not a list")
    return errors.not_acceptable(
        f"you requested PartialObjectMetadataList, but the requested object is not a list ({_go_type(rtype, '')})"
    )
