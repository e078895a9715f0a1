"""Shared pieces of the controller tests: a control plane running the Job, GC, namespace and
Deployment controllers (no kubelet), a REST session, and a hand-driven stand-in for the kubelet.

The kubelet stand-in writes pod status through the real `/status` subresource the way a kubelet
does (`tests.builders.pod_status`), so the controllers under test only ever see API state.
With `graceful()` it also claims pods for graceful deletion (like a kubelet with a node): deleted
pods then stay Terminating until the test finishes them.
"""

from __future__ import annotations

import contextlib
import copy
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import requests

from dops.emulator import EmbeddedServer, ServerSettings
from tests.builders import namespace as namespace_manifest
from tests.builders import pod_status
from tests.helpers import CLI, eventually, find_binary

JSON = dict[str, Any]
CONTROLLERS = ("job", "gc", "namespace", "deployment")
MERGE = "application/merge-patch+json"
JSON_PATCH = "application/json-patch+json"
TRACKING = "batch.kubernetes.io/job-tracking"


def now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class Cluster:
    """One embedded control plane shared by a test module."""

    server: EmbeddedServer
    kubeconfig: Path
    home: Path
    session: requests.Session = field(default_factory=requests.Session)

    @property
    def url(self) -> str:
        return self.server.url

    # -- REST ----------------------------------------------------------------------------------
    def request(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        kwargs.setdefault("timeout", 30)
        return self.session.request(method, self.url + path, **kwargs)

    def get(self, path: str) -> JSON:
        response = self.request("GET", path)
        assert response.status_code == 200, f"GET {path}: {response.status_code} {response.text}"
        body: JSON = response.json()
        return body

    def exists(self, path: str) -> bool:
        response = self.request("GET", path)
        assert response.status_code in (200, 404), response.text
        return response.status_code == 200

    def create(self, path: str, body: JSON, expect: int = 201) -> JSON:
        response = self.request("POST", path, json=body)
        assert response.status_code == expect, f"POST {path}: {response.status_code} {response.text}"
        created: JSON = response.json()
        return created

    def patch(self, path: str, body: Any, content_type: str = MERGE) -> JSON:
        response = self.request("PATCH", path, json=body, headers={"Content-Type": content_type})
        assert response.status_code == 200, f"PATCH {path}: {response.status_code} {response.text}"
        patched: JSON = response.json()
        return patched

    def delete(self, path: str, **query: str) -> JSON:
        response = self.request("DELETE", path, params=query)
        assert response.status_code in (200, 202), f"DELETE {path}: {response.status_code} {response.text}"
        deleted: JSON = response.json()
        return deleted

    def items(self, path: str, selector: str = "") -> list[JSON]:
        response = self.request("GET", path, params={"labelSelector": selector} if selector else None)
        assert response.status_code == 200, response.text
        items: list[JSON] = response.json()["items"]
        return items

    # -- namespaces and workloads --------------------------------------------------------------
    def namespace(self, prefix: str = "t") -> str:
        name = f"{prefix}-{uuid.uuid4().hex[:8]}"
        self.create("/api/v1/namespaces", namespace_manifest(name))
        return name

    def job_path(self, ns: str, name: str = "") -> str:
        return f"/apis/batch/v1/namespaces/{ns}/jobs" + (f"/{name}" if name else "")

    def pods_path(self, ns: str, name: str = "") -> str:
        return f"/api/v1/namespaces/{ns}/pods" + (f"/{name}" if name else "")

    def job(self, ns: str, name: str) -> JSON:
        return self.get(self.job_path(ns, name))

    def job_pods(self, ns: str, job_name: str) -> list[JSON]:
        pods = self.items(self.pods_path(ns), f"batch.kubernetes.io/job-name={job_name}")
        return sorted(pods, key=lambda p: (p["metadata"]["creationTimestamp"], p["metadata"]["name"]))

    def wait_job(
        self, ns: str, name: str, predicate: Callable[[JSON], bool], describe: str, timeout: float = 10
    ) -> JSON:
        return eventually(lambda: self.job(ns, name), predicate, timeout=timeout, describe=describe)

    def wait_pods(self, ns: str, job_name: str, count: int, timeout: float = 10) -> list[JSON]:
        return eventually(
            lambda: self.job_pods(ns, job_name),
            lambda pods: len(pods) == count,
            timeout=timeout,
            describe=f"{count} pod(s) of job {job_name}",
        )

    def wait_new_pod(self, ns: str, job_name: str, seen: list[JSON], timeout: float = 10) -> JSON:
        """The one pod of `job_name` that is not among `seen` (pods created in the same second sort randomly)."""
        names = {p["metadata"]["name"] for p in seen}
        fresh = eventually(
            lambda: [p for p in self.job_pods(ns, job_name) if p["metadata"]["name"] not in names],
            lambda pods: len(pods) == 1,
            timeout=timeout,
            describe=f"one new pod of job {job_name}",
        )
        return fresh[0]

    # -- the kubelet stand-in ------------------------------------------------------------------
    def set_pod_status(self, pod: JSON, status: JSON) -> JSON:
        meta = pod["metadata"]
        return self.patch(self.pods_path(meta["namespace"], meta["name"]) + "/status", {"status": status})

    def run_pod(self, pod: JSON, ready: bool = True, restarts: int = 0) -> JSON:
        status = pod_status("Running", now(), image=pod["spec"]["containers"][0]["image"])
        if not ready:
            for cond in status["conditions"]:
                if cond["type"] in ("Ready", "ContainersReady"):
                    cond.update(status="False", reason="ContainersNotReady")
            status["containerStatuses"][0]["ready"] = False
        status["containerStatuses"][0]["restartCount"] = restarts
        return self.set_pod_status(pod, status)

    def finish_pod(self, pod: JSON, exit_code: int = 0, conditions: list[JSON] | None = None) -> JSON:
        status = pod_status(
            "Succeeded" if exit_code == 0 else "Failed", now(), image=pod["spec"]["containers"][0]["image"]
        )
        terminated = status["containerStatuses"][0]["state"]["terminated"]
        terminated["exitCode"] = exit_code
        terminated["reason"] = "Completed" if exit_code == 0 else "Error"
        status["conditions"].extend(copy.deepcopy(conditions or []))
        return self.set_pod_status(pod, status)

    def remove_pod(self, pod: JSON) -> None:
        """The kubelet's final delete of a pod it has stopped (grace period 0)."""
        meta = pod["metadata"]
        response = self.request(
            "DELETE", self.pods_path(meta["namespace"], meta["name"]), params={"gracePeriodSeconds": "0"}
        )
        assert response.status_code in (200, 404), response.text

    @contextlib.contextmanager
    def graceful(self, namespace: str) -> Iterator[None]:
        """Pods in `namespace` are deleted gracefully (stay Terminating), as on a node with a kubelet."""
        api = self.server.api

        def hook(rtype: Any, obj: JSON) -> bool:
            return bool(rtype.plural == "pods" and obj["metadata"].get("namespace") == namespace)

        previous = self.server.call(lambda: api.graceful_delete)
        self.server.call(lambda: setattr(api, "graceful_delete", hook))
        try:
            yield
        finally:
            self.server.call(lambda: setattr(api, "graceful_delete", previous))

    # -- real clients --------------------------------------------------------------------------
    def kubectl(self) -> CLI:
        binary = find_binary("kubectl")
        if binary is None:
            pytest.skip("kubectl binary not available: run `python scripts/fetch_clients.py` (make test does)")
        return CLI(binary, self.kubeconfig, self.home, {})

    def helm(self) -> CLI:
        binary = find_binary("helm")
        if binary is None:
            pytest.skip("helm binary not available: run `python scripts/fetch_clients.py` (make test does)")
        return CLI(binary, self.kubeconfig, self.home, {})

    def kube_client(self) -> Any:
        import kubernetes

        return kubernetes.config.new_client_from_config(config_file=str(self.kubeconfig))


@contextlib.contextmanager
def running_cluster(tmp: Path, options: JSON | None = None) -> Iterator[Cluster]:
    settings = ServerSettings(
        controllers=CONTROLLERS,
        controller_options=options or {"job": {"backoff_base": 0.05}},
    )
    with EmbeddedServer.run_in_thread(settings) as server:
        kubeconfig = server.write_kubeconfig(tmp / "kubeconfig")
        home = tmp / "home"
        home.mkdir(exist_ok=True)
        cluster = Cluster(server, kubeconfig, home)
        try:
            yield cluster
        finally:
            cluster.session.close()


def condition(obj: JSON, ctype: str) -> JSON | None:
    for cond in (obj.get("status") or {}).get("conditions") or []:
        if cond.get("type") == ctype:
            return dict(cond)
    return None


def condition_types(obj: JSON) -> list[str]:
    return [c["type"] for c in (obj.get("status") or {}).get("conditions") or [] if c.get("status") == "True"]
