"""Streaming reads: watches of dict resources and pod logs, over their own pykube-ng session.

A stream holds its HTTP connection for as long as the caller iterates, so each stream gets a
session of its own (never the pooled per-thread session of `KubeClient`), closed when the iterator
is exhausted or closed. Errors map to the `dops.k8s.errors` tree like every other gateway call:

- the request fails before an answer → `ApiUnavailable` ("cannot reach the API server at URL: ...");
- an error status → the matching `ApiError` (a watch's in-stream `ERROR` 410 → `Gone`);
- the connection drops mid-stream → `ApiUnavailable` (callers resume from the last resourceVersion).
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from typing import Any
from urllib.parse import quote

import requests

from .client import JSON_TYPE, USER_AGENT, KubeClient
from .errors import ApiError, ApiUnavailable, Gone, error_from_response
from .resources import ResourceClient

JSON = dict[str, Any]

CONNECT_TIMEOUT = 10.0
# Event types a watch yields besides ADDED/MODIFIED/DELETED.
BOOKMARK = "BOOKMARK"


def stream_lines(
    client: KubeClient,
    path: str,
    *,
    params: Mapping[str, Any] | None = None,
    read_timeout: float | None = None,
    accept: str = JSON_TYPE,
) -> Iterator[str]:
    """GET `path` and yield the body line by line as it arrives (without line ends).

    `read_timeout` bounds the silence between two chunks (None: wait forever, for followed logs).
    """
    http = client.config.http_client(timeout=client.timeout)
    http.session.headers["User-Agent"] = USER_AGENT
    base = client.config.server
    query = {k: v for k, v in (params or {}).items() if v is not None and v != ""}
    try:
        try:
            response = http.session.get(
                base + path,
                params=query,
                headers={"Accept": accept},
                stream=True,
                timeout=(CONNECT_TIMEOUT, read_timeout),
            )
        except requests.exceptions.RequestException as exc:
            raise ApiUnavailable(f"cannot reach the API server at {base}: {exc}", method="GET", path=path) from exc
        except Exception as exc:  # credential plugins and the like
            raise ApiUnavailable(f"request to {base} failed: {exc!r}", method="GET", path=path) from exc
        with response:
            if response.status_code >= 400:
                raise response_error(response, path)
            try:
                for raw in response.iter_lines(chunk_size=None):
                    yield raw.decode("utf-8", errors="replace")
            except requests.exceptions.RequestException as exc:
                raise ApiUnavailable(f"the stream from {base} was interrupted: {exc}", method="GET", path=path) from exc
    finally:
        http.session.close()


def watch(
    resource: ResourceClient,
    namespace: str | None,
    *,
    resource_version: str = "",
    label_selector: str = "",
    field_selector: str = "",
    timeout_seconds: int = 300,
    bookmarks: bool = True,
) -> Iterator[tuple[str, JSON]]:
    """Yield `(type, object)` watch events of `resource` until the server ends the watch.

    `type` is ADDED, MODIFIED, DELETED or BOOKMARK (only `metadata.resourceVersion` is meaningful then).
    A resourceVersion older than the server's history raises `Gone` (relist, then watch again).
    """
    params = {
        "watch": "true",
        "resourceVersion": resource_version,
        "labelSelector": label_selector,
        "fieldSelector": field_selector,
        "timeoutSeconds": str(max(1, int(timeout_seconds))),
        "allowWatchBookmarks": "true" if bookmarks else None,
    }
    path = resource.path(namespace)
    for line in stream_lines(resource.client, path, params=params, read_timeout=timeout_seconds + CONNECT_TIMEOUT):
        if line.strip():
            yield decode_event(line, path)


def response_error(response: requests.Response, path: str) -> ApiError:
    """The gateway error for a GET of `path` the server answered with an error status."""
    try:
        decoded: Any = response.json()
    except ValueError:
        decoded = response.text
    return error_from_response(response.status_code, decoded, method="GET", path=path)


def decode_event(line: str | bytes, path: str) -> tuple[str, JSON]:
    """One watch line as `(type, object)`; an in-stream ERROR raises its error (410 → `Gone`: relist), a line
    that is not an event raises `ApiUnavailable`."""
    try:
        event = json.loads(line)
        kind = str(event["type"])
        obj: JSON = event["object"] or {}
    except (ValueError, KeyError, TypeError) as exc:
        raise ApiUnavailable(f"the watch sent a line that is not an event: {line[:200]!r}", path=path) from exc
    if kind == "ERROR":
        code = int(obj.get("code") or 0)
        error = error_from_response(code or 500, obj, method="GET", path=path)
        if code == 410:
            raise Gone(error.message, code=410, reason=error.reason, status=error.status, path=path)
        raise error
    return kind, obj


def pod_log_path(namespace: str, pod: str) -> str:
    return f"/api/v1/namespaces/{quote(namespace, safe='')}/pods/{quote(pod, safe='')}/log"


def read_pod_log(
    client: KubeClient,
    namespace: str,
    pod: str,
    *,
    container: str | None = None,
    follow: bool = False,
    tail_lines: int | None = None,
    timestamps: bool = False,
    previous: bool = False,
) -> Iterator[str]:
    """Lines of a container's log (the pods/log endpoint); with `follow`, until the container exits."""
    params = {
        "container": container,
        "follow": "true" if follow else None,
        "tailLines": str(tail_lines) if tail_lines is not None else None,
        "timestamps": "true" if timestamps else None,
        "previous": "true" if previous else None,
    }
    return stream_lines(
        client,
        pod_log_path(namespace, pod),
        params=params,
        read_timeout=None if follow else client.timeout,
        accept="*/*",
    )


__all__ = [
    "BOOKMARK",
    "ApiError",
    "decode_event",
    "pod_log_path",
    "read_pod_log",
    "response_error",
    "stream_lines",
    "watch",
]
