"""Exit codes and the one-line error messages of the CLI.

Every failure a user sees is a single line on stderr, `error: <what happened>`, and one of these
exit codes (tracebacks only with `--debug`):

| code | meaning |
|---|---|
| 0 | success |
| 1 | the operation failed (`wait`, `submit --wait`), a wait timed out, or a command could not do what was asked |
| 2 | usage: bad options or arguments, invalid input rejected before or by the API server |
| 3 | not found, or the cluster cannot be reached / used (connection, kubeconfig, credentials, permissions) |
| 130 | interrupted (Ctrl-C) |
"""

from __future__ import annotations

import errno
import socket
import ssl
from typing import Any

from ..api.types import OperationNotFound
from ..k8s import (
    ApiError,
    ApiUnavailable,
    ConfigurationError,
    Forbidden,
    Invalid,
    NotFound,
    Unauthorized,
)

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_UNAVAILABLE = 3
EXIT_INTERRUPTED = 130


class CliError(Exception):
    """An expected failure: printed as `error: <message>`, exits with `code`."""

    def __init__(self, message: str, code: int = EXIT_FAILED) -> None:
        super().__init__(message)
        self.message = message
        self.code = code


def not_found(name: str, namespace: str) -> CliError:
    return CliError(f'operation "{name}" not found in namespace "{namespace}"', EXIT_UNAVAILABLE)


def crds_missing(server: str | None = None) -> CliError:
    """The one line for a cluster without the dops CRDs (the same from `get`, `list` and every command)."""
    where = f" at {server}" if server else ""
    return CliError(
        f"the dops CRDs are not installed in the cluster{where} (the API has no delegatedoperations.dops.io): "
        "install them with helm install dops helm/dops, or kubectl apply -f crds/",
        EXIT_UNAVAILABLE,
    )


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def connection_reason(exc: BaseException) -> str:
    """The root cause of a failed connection in a few words ("connection refused", "timed out", ...)."""
    seen: set[int] = set()
    todo: list[Any] = [exc]
    found: list[BaseException] = []
    while todo:
        item = todo.pop(0)
        if not isinstance(item, BaseException) or id(item) in seen:
            continue
        seen.add(id(item))
        found.append(item)
        todo.extend([item.__cause__, item.__context__, *item.args, getattr(item, "reason", None)])
    for item in found:
        if isinstance(item, ConnectionRefusedError) or getattr(item, "errno", None) == errno.ECONNREFUSED:
            return "connection refused"
    for item in found:
        if isinstance(item, socket.gaierror):
            return f"cannot resolve the host name ({item.strerror or item})"
        if isinstance(item, ssl.SSLCertVerificationError):
            return f"TLS certificate verification failed ({item.verify_message or item})"
        if isinstance(item, ssl.SSLError):
            return f"TLS error ({item.reason or item})"
        if isinstance(item, TimeoutError | socket.timeout):
            return "timed out"
        if isinstance(item, ConnectionResetError):
            return "connection reset by the server"
    for item in found:
        name = type(item).__name__
        if "Timeout" in name:
            return "timed out"
        if name in ("RemoteDisconnected", "ProtocolError"):
            return "the server closed the connection"
    return _one_line(str(exc)) or type(exc).__name__


def describe(exc: BaseException, server: str | None = None) -> tuple[str, int]:
    """The one-line message and exit code for an exception raised by a command."""
    if isinstance(exc, CliError):
        return exc.message, exc.code
    if isinstance(exc, OperationNotFound):
        return _one_line(str(exc)), EXIT_UNAVAILABLE
    if isinstance(exc, ConfigurationError):
        message = _one_line(str(exc)).replace("pass kubeconfig=...", "pass --kubeconfig")
        return message.replace("pass context=...", "pass --context NAME"), EXIT_UNAVAILABLE
    if isinstance(exc, ApiUnavailable):
        where = server or "the configured server"
        if not exc.code:
            return f"cannot reach the Kubernetes API at {where}: {connection_reason(exc)}", EXIT_UNAVAILABLE
        return f"the Kubernetes API at {where} is unavailable ({exc.code}): {_one_line(exc.message)}", EXIT_UNAVAILABLE
    if isinstance(exc, Unauthorized):
        return f"the Kubernetes API rejected the credentials (401 Unauthorized): {_one_line(exc.message)}", (
            EXIT_UNAVAILABLE
        )
    if isinstance(exc, Forbidden):
        return f"forbidden: {_one_line(exc.message)}", EXIT_UNAVAILABLE
    if isinstance(exc, NotFound):
        details = exc.status.get("details") or {}
        if details.get("name"):
            kind = str(details.get("kind") or "resource")
            return f'{kind} "{details["name"]}" not found', EXIT_UNAVAILABLE
        if "/dops.io/" in (exc.path or "/dops.io/"):
            missing = crds_missing(server)
            return missing.message, missing.code
        return f"the server could not find {exc.path}", EXIT_UNAVAILABLE
    if isinstance(exc, Invalid):
        return f"invalid: {_one_line(exc.message)}", EXIT_USAGE
    if isinstance(exc, ApiError):
        reason = exc.reason or type(exc).__name__
        return f"the Kubernetes API refused the request ({exc.code} {reason}): {_one_line(exc.message)}", EXIT_FAILED
    if isinstance(exc, ValueError):
        return _one_line(str(exc)), EXIT_USAGE
    if isinstance(exc, OSError):
        return _one_line(str(exc)), EXIT_FAILED
    return f"{type(exc).__name__}: {_one_line(str(exc))} (run with --debug for the traceback)", EXIT_FAILED
