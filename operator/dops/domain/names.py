"""Resource names: validation (DNS-1123) and client-side generation of operation names.

Generated names look like `dop-<11 chars time><5 chars random>-<operator slug>`, for example
`dop-0ua3k9d2m1v7qk4r-count`:

- **unique**: microsecond time plus 25 random bits; the name is chosen before the create request, so
  retrying a create that may have reached the server cannot make a second operation (409 instead);
- **time-sortable, newest first**: the time part is `2**55 - 1 - <microseconds since the epoch>` in
  fixed-width base32hex (an order-preserving alphabet), so the API server's name order (its list
  order) is FiftyOne's default order, `queued_at` descending; `kubectl get dops` lists the newest first;
- **DNS-1123**: lower-case alphanumerics and `-`, at most 40 characters (short enough for Job names).

Everything here is pure: the caller passes the clock reading and the random bytes.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re

from ..api.times import UTC

PREFIX = "dop-"
_ALPHABET = "0123456789abcdefghijklmnopqrstuv"  # base32hex: sorts like the numbers it encodes
_TIME_CHARS = 11  # 55 bits of microseconds: good until the year 3111
_RANDOM_CHARS = 5  # 25 bits
_TIME_SPAN = (1 << (5 * _TIME_CHARS)) - 1
_SLUG_CHARS = 16
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = dt.timedelta(microseconds=1)

_DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_DNS1123_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_GENERATED = re.compile(rf"^{PREFIX}([0-9a-v]{{{_TIME_CHARS}}})[0-9a-v]{{{_RANDOM_CHARS}}}(-[a-z0-9-]+)?$")


def is_dns1123_subdomain(name: str) -> bool:
    return isinstance(name, str) and 0 < len(name) <= 253 and bool(_DNS1123_SUBDOMAIN.match(name))


def is_dns1123_label(name: str) -> bool:
    return isinstance(name, str) and 0 < len(name) <= 63 and bool(_DNS1123_LABEL.match(name))


def validate_name(name: object, what: str = "name") -> str:
    """Return `name` if it is a valid resource name (DNS-1123 subdomain); ValueError naming the rule otherwise."""
    if not isinstance(name, str) or not is_dns1123_subdomain(name):
        raise ValueError(
            f"invalid {what} {name!r}: must be a DNS-1123 subdomain (lower-case alphanumerics, '-' and '.', "
            "starting and ending with an alphanumeric, at most 253 characters)"
        )
    return name


MAX_SUBDOMAIN = 253
_EVENT_HASH_CHARS = 8


def shortened(name: str, limit: int, suffix: str = "") -> str:
    """`name + suffix` when it fits in `limit` characters, else a prefix of `name`, `-`, 8 hex digits of the
    SHA-256 of the whole name, then `suffix`: deterministic, distinct for distinct names, still DNS-1123
    (the prefix never ends in `-` or `.`)."""
    if len(name) + len(suffix) <= limit:
        return name + suffix
    digest = hashlib.sha256(name.encode()).hexdigest()[:_EVENT_HASH_CHARS]
    keep = limit - len(suffix) - len(digest) - 1
    if keep < 1:
        raise ValueError(f"cannot shorten {name!r} to {limit} characters with suffix {suffix!r}")
    return f"{name[:keep].rstrip('-.')}-{digest}{suffix}"


def event_name(involved: str, token: str) -> str:
    """The name of an Event about object `involved`: `<involved>.<token>` as kubectl and client-go make them,
    shortened (prefix + hash) when the object's name is so long that it would exceed 253 characters."""
    return shortened(involved, MAX_SUBDOMAIN, f".{token}")


def _encode(value: int, width: int) -> str:
    chars = []
    for _ in range(width):
        chars.append(_ALPHABET[value & 31])
        value >>= 5
    return "".join(reversed(chars))


def _decode(text: str) -> int:
    value = 0
    for char in text:
        value = value * 32 + _ALPHABET.index(char)
    return value


def operator_slug(operator: str) -> str:
    """A DNS-safe hint of the operator in the name: its last path segment, lower-cased, at most 16 characters."""
    tail = operator.rstrip("/").rsplit("/", 1)[-1].rsplit(":", 1)[-1].rsplit(".", 1)[-1]
    slug = re.sub(r"[^a-z0-9]+", "-", tail.lower()).strip("-")
    return slug[:_SLUG_CHARS].strip("-")


def micros_since_epoch(when: dt.datetime) -> int:
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return (when - _EPOCH) // _MICROSECOND


def new_operation_name(operator: str, now: dt.datetime, entropy: bytes) -> str:
    """A fresh operation name for `operator` queued at `now`; `entropy` must hold at least 4 random bytes."""
    if len(entropy) < 4:
        raise ValueError("new_operation_name needs at least 4 bytes of entropy")
    micros = micros_since_epoch(now)
    if not 0 <= micros <= _TIME_SPAN:
        raise ValueError(f"time out of range for an operation name: {now!r}")
    random_part = _encode(int.from_bytes(entropy[:4], "big") & ((1 << (5 * _RANDOM_CHARS)) - 1), _RANDOM_CHARS)
    name = PREFIX + _encode(_TIME_SPAN - micros, _TIME_CHARS) + random_part
    slug = operator_slug(operator)
    return f"{name}-{slug}" if slug else name


def name_time(name: str) -> dt.datetime | None:
    """The instant encoded in a generated name (None for names dops did not generate)."""
    match = _GENERATED.match(name)
    if match is None:
        return None
    return _EPOCH + dt.timedelta(microseconds=_TIME_SPAN - _decode(match.group(1)))


def split_doc_id(doc_id: object, default_namespace: str) -> tuple[str, str]:
    """`name` or `namespace/name` → (namespace, name); ValueError for anything else."""
    if not isinstance(doc_id, str) or not doc_id:
        raise ValueError(f"invalid operation id {doc_id!r}: expected 'name' or 'namespace/name'")
    namespace, sep, name = doc_id.rpartition("/")
    if not sep:
        namespace = default_namespace
    if sep and not is_dns1123_label(namespace):
        raise ValueError(f"invalid operation id {doc_id!r}: {namespace!r} is not a valid namespace")
    validate_name(name, "operation id")
    return namespace, name
