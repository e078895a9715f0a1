"""Shared plumbing for the §9 conformance modules: raw HTTP against the emulator, CRD install, watch reading.

Kept deliberately thin: tests talk to the server the way clients do (HTTP, kubectl, the kubernetes
client) and assert on what comes back; nothing here hides a semantic.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import requests
import yaml

from dops.emulator import EmbeddedServer
from dops.emulator.server import AccessRecord
from tests.builders import WidgetCRD
from tests.planes import Target, as_plane, install_test_crd

JSON = dict[str, Any]

CRDS = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions"
WIDGETS = "/apis/example.com/v1/namespaces/default/widgets"
CONFIGMAPS = "/api/v1/namespaces/default/configmaps"
PODS = "/api/v1/namespaces/default/pods"
DEPLOYMENTS = "/apis/apps/v1/namespaces/default/deployments"
JSON_TYPE = "application/json"
MERGE = "application/merge-patch+json"
JSON_PATCH = "application/json-patch+json"
STRATEGIC = "application/strategic-merge-patch+json"
APPLY = "application/apply-patch+yaml"


class Http:
    """requests against one control plane; `call` returns the Response, `ok` asserts the status and returns JSON."""

    def __init__(self, target: Target) -> None:
        plane = self.plane = as_plane(target)
        self.base = plane.url
        self.session = plane.session()

    def call(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        content_type: str | None = JSON_TYPE,
        params: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
    ) -> requests.Response:
        sent = dict(headers or {})
        data: bytes | None = None
        if body is not None:
            data = body if isinstance(body, bytes) else json.dumps(body).encode()
            if content_type is not None:
                sent["Content-Type"] = content_type
        return self.session.request(method, self.base + path, data=data, params=params, headers=sent, timeout=30)

    def ok(self, method: str, path: str, body: Any = None, *, expect: int = 200, **kwargs: Any) -> JSON:
        response = self.call(method, path, body, **kwargs)
        assert response.status_code == expect, f"{method} {path} → {response.status_code}: {response.text}"
        result: JSON = response.json()
        return result

    def get(self, path: str, **kwargs: Any) -> JSON:
        return self.ok("GET", path, **kwargs)

    def status_of(self, method: str, path: str, body: Any = None, **kwargs: Any) -> tuple[int, JSON]:
        response = self.call(method, path, body, **kwargs)
        return response.status_code, response.json()

    def list_rv(self, path: str) -> int:
        return int(self.get(path)["metadata"]["resourceVersion"])


def install_crd(http: Http, crd: WidgetCRD | None = None) -> JSON:
    """Create a CRD (default: widgets.example.com with a status subresource) and wait until it serves."""
    return install_test_crd(http.plane, (crd or WidgetCRD()).build())


def write_manifest(directory: Path, name: str, *objects: JSON) -> Path:
    path = directory / name
    path.write_text(yaml.safe_dump_all(objects, sort_keys=False))
    return path


def watch_events(response: requests.Response) -> Iterator[JSON]:
    """Decode a streaming watch response line by line (the server flushes one JSON event per line)."""
    for line in response.iter_lines(chunk_size=1):
        if line:
            yield json.loads(line)


def open_watch(http: Http, path: str, **params: str) -> requests.Response:
    response = http.session.get(http.base + path, params={"watch": "true", **params}, stream=True, timeout=(5, 30))
    assert response.status_code == 200, response.text
    return response


def records(server: EmbeddedServer, method: str | None = None, path_part: str = "") -> list[AccessRecord]:
    """Requests captured by the server's access log (enable with `server.http.access_log = []`)."""
    log = server.http.access_log
    assert log is not None, "enable the access log first: server.http.access_log = []"
    return [r for r in list(log) if (method is None or r.method == method) and path_part in r.path]


def newest_rv(http: Http, path: str) -> int:
    """The highest resourceVersion among the items of the collection at `path`.

    A list's own resourceVersion is the store's (etcd's) revision, which a real control plane moves on its
    own (the apiserver's identity Lease is renewed every 10 s); the items' versions move only when they are
    written."""
    return max(int(item["metadata"]["resourceVersion"]) for item in http.get(path)["items"])


def settled(http: Http, collection: str, name: str, quiet: int = 1, timeout: float = 30.0) -> JSON:
    """The object `name` of `collection` once nothing has written it for `quiet` seconds.

    A real control plane's controllers (Deployment, ReplicaSet, Job, the scheduler) write a new built-in
    object within a moment of its creation; the embedded plane's tests run none. Statements about writing
    back what was read need the object at rest."""
    deadline = time.monotonic() + timeout
    while True:
        current = http.get(f"{collection}/{name}")
        params = {"resourceVersion": current["metadata"]["resourceVersion"], "fieldSelector": f"metadata.name={name}"}
        response = open_watch(http, collection, timeoutSeconds=str(quiet), **params)
        try:
            written = [e["type"] for e in watch_events(response)]
        finally:
            response.close()
        if not written:
            return current
        assert time.monotonic() < deadline, f"{collection}/{name} still being written after {timeout}s: {written}"
