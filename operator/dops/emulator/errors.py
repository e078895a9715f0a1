"""API errors, rendered as the `Status` objects a real kube-apiserver returns.

Clients key their behaviour on `reason` and `code` (kopf treats 422 on a JSON patch as "lost the
race", pykube maps the message only when the body is a Status with exactly `application/json`),
so every failure path in the server raises `APIError` and the HTTP layer renders it one way.
Messages follow upstream wording (`apimachinery/pkg/api/errors`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from .registry import ResourceType


class APIError(Exception):
    """A failed request; `status()` is the body the client receives."""

    def __init__(
        self,
        code: int,
        reason: str,
        message: str,
        details: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.reason = reason
        self.message = message
        self.details = details

    def status(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        }
        if not self.reason:  # an error that is no APIStatus upstream: StatusReasonUnknown ("", omitted)
            del body["reason"]
        if self.details is not None:
            # StatusDetails' name/group/kind/uid are `omitempty`: an empty one is left out, the object stays.
            body["details"] = {
                k: v for k, v in self.details.items() if not (k in ("name", "group", "kind", "uid") and v == "")
            }
        return body


def _details(rtype: ResourceType | None, name: str, **extra: Any) -> dict[str, Any]:
    details: dict[str, Any] = {"name": name}
    if rtype is not None:
        if rtype.group:
            details["group"] = rtype.group
        details["kind"] = rtype.plural
    details.update(extra)
    return details


def not_found(rtype: ResourceType, name: str) -> APIError:
    return APIError(404, "NotFound", f'{rtype.qualified_name} "{name}" not found', _details(rtype, name))


def namespace_not_found(namespace: str) -> APIError:
    return APIError(404, "NotFound", f'namespaces "{namespace}" not found', {"name": namespace, "kind": "namespaces"})


def already_exists(rtype: ResourceType, name: str) -> APIError:
    return APIError(409, "AlreadyExists", f'{rtype.qualified_name} "{name}" already exists', _details(rtype, name))


def conflict(rtype: ResourceType, name: str, why: str | None = None) -> APIError:
    why = why or "the object has been modified; please apply your changes to the latest version and try again"
    return APIError(
        409,
        "Conflict",
        f'Operation cannot be fulfilled on {rtype.qualified_name} "{name}": {why}',
        _details(rtype, name),
    )


def resource_version_required(rtype: ResourceType, name: str) -> APIError:
    """422 for an update without resourceVersion of a kind that forbids unconditional updates (CRs, Leases, …).

    The generic registry builds this Invalid from the *resource* (`widgets.example.com`, details.kind
    `widgets`), not the Kind as validation errors do."""
    detail = "Invalid value: 0: must be specified for an update"
    return APIError(
        422,
        "Invalid",
        f'{rtype.qualified_name} "{name}" is invalid: metadata.resourceVersion: {detail}',
        _details(
            rtype,
            name,
            causes=[{"reason": "FieldValueInvalid", "message": detail, "field": "metadata.resourceVersion"}],
        ),
    )


def invalid(rtype: ResourceType, name: str, causes: Sequence[Mapping[str, object]]) -> APIError:
    """422 Invalid, e.g. `Widget.example.com "w1" is invalid: spec.size: Invalid value: ...`.

    Each cause's `message` is the full `field: detail` line (as in the summary); on the wire
    `details.causes[].message` carries only the detail, as the real apiserver sends it.
    """
    qualified_kind = f"{rtype.kind}.{rtype.group}" if rtype.group else rtype.kind
    messages: list[str] = []
    for c in causes:
        if str(c["message"]) not in messages:
            messages.append(str(c["message"]))
    summary = messages[0] if len(messages) == 1 else "[" + ", ".join(messages) + "]"
    wire = []
    for c in causes:
        prefix = f"{c['field']}: "
        text = str(c["message"])
        body = text[len(prefix) :] if text.startswith(prefix) else text
        wire.append({"reason": c["reason"], "message": body, "field": c["field"]})
    # NewInvalid takes a GroupKind: details.kind is the Kind ("Widget"); kubectl prints `The Widget "w1" is invalid`.
    details = {**_details(rtype, name), "kind": rtype.kind, "causes": wire}
    return APIError(422, "Invalid", f'{qualified_kind} "{name}" is invalid: {summary}', details)


def bad_request(message: str) -> APIError:
    return APIError(400, "BadRequest", message)


def forbidden(message: str, rtype: ResourceType | None = None, name: str = "") -> APIError:
    return APIError(403, "Forbidden", message, _details(rtype, name) if rtype else None)


def method_not_allowed(message: str = "the server does not allow this method on the requested resource") -> APIError:
    return APIError(405, "MethodNotAllowed", message)


def unsupported_media_type(content_type: str, custom: bool = False) -> APIError:
    """415 for a patch type the resource does not accept; CRs never accept strategic merge."""
    accepted = "application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml"
    if not custom:
        accepted += ", application/strategic-merge-patch+json"
    return APIError(
        415,
        "UnsupportedMediaType",
        "the body of the request was in an unknown format - accepted media types include: "
        f'{accepted}; got "{content_type}"',
    )


def not_acceptable(message: str) -> APIError:
    return APIError(406, "NotAcceptable", message)


def expired(message: str) -> APIError:
    return APIError(410, "Expired", message)


def too_large(message: str) -> APIError:
    return APIError(413, "RequestEntityTooLarge", message)


def too_many_requests(message: str = "Too many requests, please try again later.") -> APIError:
    return APIError(429, "TooManyRequests", message, {"retryAfterSeconds": 1})


def internal(message: str) -> APIError:
    return APIError(500, "InternalError", f"Internal error occurred: {message}")


def service_unavailable(message: str = "the server is currently unable to handle the request") -> APIError:
    return APIError(503, "ServiceUnavailable", message)


def cause(field: str, message: str, reason: str = "FieldValueInvalid") -> dict[str, str]:
    """One `details.causes[]` entry; `message` is the full `field: ...` text."""
    return {"reason": reason, "message": message, "field": field}


def required(field: str) -> dict[str, str]:
    return cause(field, f"{field}: Required value", "FieldValueRequired")


def invalid_value(field: str, value: Any, detail: str) -> dict[str, str]:
    return cause(field, f"{field}: Invalid value: {_quote(value)}: {detail}")


def unsupported_value(field: str, value: Any, supported: Sequence[str]) -> dict[str, str]:
    options = ", ".join(f'"{s}"' for s in supported)
    return cause(
        field, f"{field}: Unsupported value: {_quote(value)}: supported values: {options}", "FieldValueNotSupported"
    )


def patch_invalid(patched: str, detail: str) -> APIError:
    """422 for a patch whose result fails to decode (strictly): `errors.NewInvalid(schema.GroupKind{}, "", …)` with
    `field.Invalid(field.NewPath("patch"), <patched document>, <decode error>)`, so kind and name are empty."""
    body = f"Invalid value: {json.dumps(patched, ensure_ascii=False)}: {detail}"
    return APIError(
        422,
        "Invalid",
        f' "" is invalid: patch: {body}',
        {"causes": [{"reason": "FieldValueInvalid", "message": body, "field": "patch"}]},
    )


def forbidden_field(field: str, detail: str) -> dict[str, str]:
    return cause(field, f"{field}: Forbidden: {detail}", "FieldValueForbidden")


def _quote(value: Any) -> str:
    if isinstance(value, str):
        return '"' + value.replace('"', '\\"') + '"'
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    return str(value)
