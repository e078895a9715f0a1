"""The error tree of the Kubernetes gateway: every failed API call becomes one of these.

Callers never see `requests`, `pykube` or `kubernetes` exceptions: the gateway maps HTTP status
codes (and the `Status` body the API server sends) to these types, so the HTTP library underneath
can change without touching the service or the operator. Each error carries the parsed `Status`.

Some errors are also standard Python exceptions, so that callers of the FiftyOne-compatible API
can catch them the FiftyOne way: `Invalid`, `BadRequest` and `RequestTooLarge` are `ValueError`s,
`NotFound` is a `LookupError`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


class KubernetesError(Exception):
    """Base of all gateway errors (configuration and API)."""


class ConfigurationError(KubernetesError):
    """No usable cluster configuration (kubeconfig missing or broken, not in a cluster)."""


class ApiError(KubernetesError):
    """The API server answered with an error, or could not be reached (`code` 0)."""

    code: int = 0

    def __init__(
        self,
        message: str,
        *,
        code: int | None = None,
        reason: str = "",
        status: Mapping[str, Any] | None = None,
        method: str = "",
        path: str = "",
    ) -> None:
        super().__init__(message)
        if code is not None:
            self.code = code
        self.message = message
        self.reason = reason
        self.status: dict[str, Any] = dict(status or {})
        self.method = method
        self.path = path

    @property
    def causes(self) -> list[dict[str, Any]]:
        details = self.status.get("details") or {}
        return [dict(c) for c in details.get("causes") or [] if isinstance(c, Mapping)]

    def __str__(self) -> str:
        where = f" ({self.method} {self.path})" if self.method else ""
        code = f"{self.code} " if self.code else ""
        return f"{code}{self.reason or type(self).__name__}: {self.message}{where}"


class ApiUnavailable(ApiError):
    """The API server could not be reached, timed out, or answered 5xx/429 after retries."""


class BadRequest(ApiError, ValueError):
    code = 400


class Unauthorized(ApiError):
    code = 401


class Forbidden(ApiError):
    code = 403


class NotFound(ApiError, LookupError):
    code = 404


class MethodNotAllowed(ApiError):
    code = 405


class Conflict(ApiError):
    """409: a stale resourceVersion or precondition (and the base of AlreadyExists)."""

    code = 409


class AlreadyExists(Conflict):
    code = 409


class Gone(ApiError):
    """410: a watch or continue token older than the server's history."""

    code = 410


class RequestTooLarge(ApiError, ValueError):
    code = 413


class UnsupportedMediaType(ApiError):
    code = 415


class Invalid(ApiError, ValueError):
    """422: the object failed validation, or a JSON Patch operation (e.g. a `test`) failed."""

    code = 422

    @property
    def field_causes(self) -> list[dict[str, Any]]:
        return [c for c in self.causes if c.get("field")]

    @property
    def is_patch_test_failure(self) -> bool:
        """True for a JSON Patch that did not apply (a failed `test`, a missing path), not a validation error."""
        return not self.field_causes


class TooManyRequests(ApiError):
    code = 429

    def __init__(self, message: str, *, retry_after: float | None = None, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.retry_after = retry_after


class ServerError(ApiError):
    """5xx."""

    code = 500


_BY_CODE: dict[int, type[ApiError]] = {
    400: BadRequest,
    401: Unauthorized,
    403: Forbidden,
    404: NotFound,
    405: MethodNotAllowed,
    409: Conflict,
    410: Gone,
    413: RequestTooLarge,
    415: UnsupportedMediaType,
    422: Invalid,
    429: TooManyRequests,
}


def error_from_response(
    code: int,
    body: Any,
    *,
    method: str = "",
    path: str = "",
    retry_after: float | None = None,
) -> ApiError:
    """The gateway error for an HTTP error response; `body` is the decoded JSON (a Status) or text."""
    status: dict[str, Any] = dict(body) if isinstance(body, Mapping) and body.get("kind") == "Status" else {}
    message = str(status.get("message") or (body if isinstance(body, str) and body else f"HTTP {code}"))
    reason = str(status.get("reason") or "")
    cls: type[ApiError]
    if code == 409 and reason == "AlreadyExists":
        cls = AlreadyExists
    elif code >= 500:
        cls = ServerError
    else:
        cls = _BY_CODE.get(code, ApiError)
    kwargs: dict[str, Any] = {"code": code, "reason": reason, "status": status, "method": method, "path": path}
    if cls is TooManyRequests:
        return TooManyRequests(message, retry_after=retry_after, **kwargs)
    return cls(message, **kwargs)


def is_transient(exc: BaseException) -> bool:
    """Whether a failed call may succeed when repeated unchanged: no answer, 429, or any 5xx.

    A 500 is usually an etcd hiccup or an overloaded apiserver, not a verdict on the request, so writes
    that are safe to repeat (idempotent, or compare-and-set with a JSON Patch `test`) retry it.
    """
    if isinstance(exc, ApiUnavailable):
        return True
    return isinstance(exc, ApiError) and (exc.code == 429 or exc.code >= 500)
