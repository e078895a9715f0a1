"""Shared pieces of the kubelet tests: a control plane with the process kubelet, pod builders whose
containers are `sys.executable -c <script>`, a pod watch recorder and process liveness checks.

Images: `dops-test:*` runs as a local process, `sim-test:*` is simulated, anything else is unmapped
(ErrImagePull), as configured by `KUBELET_OPTIONS`.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import socket
import sys
import textwrap
import threading
import urllib.parse
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests

from dops.emulator import EmbeddedServer, ServerSettings
from dops.emulator.controllers import ALL as ALL_CONTROLLERS
from tests.builders import pod
from tests.helpers import CLI, eventually, find_binary

JSON = dict[str, Any]
IMAGE = "dops-test:latest"
SIM_IMAGE = "sim-test:1.0"
KUBELET_OPTIONS: JSON = {
    "image_map": {"dops-test:*": "process", "sim-test:*": "simulated"},
    "restart_backoff_base": 0.3,
    "restart_backoff_max": 1.2,
    "image_pull_backoff_base": 0.6,
    "image_pull_error_hold": 0.3,
    "minimum_grace_period": 0.5,
    "shutdown_grace": 0.5,
    "config_retry": 0.2,
    # Must never reach a pod: pods are not "in cluster".
    "extra_env": {"KUBERNETES_SERVICE_HOST": "10.96.0.1", "KUBERNETES_SERVICE_PORT": "443", "DOPS_EXTRA": "yes"},
}


def python(script: str) -> list[str]:
    return [sys.executable, "-c", textwrap.dedent(script).strip()]


def process_pod(name: str, script: str, namespace: str = "default", restart: str = "Never", **container: Any) -> JSON:
    """A one-container pod running `script` with this interpreter (image mapped to process mode)."""
    body = pod(name, namespace, command=python(script), image=IMAGE)
    body["spec"]["restartPolicy"] = restart
    body["spec"]["containers"][0].update(container)
    return body


def wait_for_file(path: Path) -> str:
    """Python that blocks until the test creates `path` (no sleeps in the test; the pod waits)."""
    return f"import os, time\nwhile not os.path.exists({str(path)!r}):\n    time.sleep(0.02)\n"


def pid_alive(pid: int) -> bool:
    """True while `pid` runs (a zombie nobody reaped counts as gone)."""
    try:
        with open(f"/proc/{pid}/stat") as handle:
            state = handle.read().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False
    return state not in ("Z", "X")


def condition(obj: JSON, ctype: str) -> JSON | None:
    for cond in (obj.get("status") or {}).get("conditions") or []:
        if cond.get("type") == ctype:
            return dict(cond)
    return None


def container_status(obj: JSON, name: str = "main") -> JSON:
    for key in ("containerStatuses", "initContainerStatuses"):
        for status in (obj.get("status") or {}).get(key) or []:
            if status.get("name") == name:
                return dict(status)
    raise AssertionError(f"no status for container {name}: {json.dumps(obj.get('status'), indent=1)}")


def state_of(obj: JSON, name: str = "main") -> JSON:
    """The container's `state` ({} while the kubelet has reported nothing): safe inside predicates."""
    for key in ("containerStatuses", "initContainerStatuses"):
        for status in (obj.get("status") or {}).get(key) or []:
            if status.get("name") == name:
                return dict(status.get("state") or {})
    return {}


def restarts(obj: JSON, name: str = "main") -> int:
    for status in (obj.get("status") or {}).get("containerStatuses") or []:
        if status.get("name") == name:
            return int(status.get("restartCount") or 0)
    return 0


def terminated(obj: JSON, name: str = "main") -> JSON:
    state = container_status(obj, name).get("state") or {}
    assert "terminated" in state, f"container {name} is not terminated: {state}"
    return dict(state["terminated"])


@dataclass
class PodRecorder:
    """Records every watch event of one pod (a background thread reading a real watch stream)."""

    cluster: KubeletCluster
    namespace: str
    name: str
    events: list[tuple[str, JSON]] = field(default_factory=list)
    _conn: http.client.HTTPConnection | None = None
    _thread: threading.Thread | None = None

    def start(self) -> PodRecorder:
        parsed = urllib.parse.urlsplit(self.cluster.url)
        query = urllib.parse.urlencode(
            {"watch": "true", "fieldSelector": f"metadata.name={self.name}", "timeoutSeconds": "120"}
        )
        self._conn = http.client.HTTPConnection(parsed.hostname or "127.0.0.1", parsed.port, timeout=130)
        self._conn.request("GET", f"/api/v1/namespaces/{self.namespace}/pods?{query}")
        response = self._conn.getresponse()  # the server registers the watch before sending headers
        assert response.status == 200, response.read()
        self._thread = threading.Thread(target=self._read, args=(response,), daemon=True)
        self._thread.start()
        return self

    def _read(self, response: http.client.HTTPResponse) -> None:
        with contextlib.suppress(Exception):
            while True:
                line = response.readline()
                if not line:
                    return
                if line.strip():
                    event = json.loads(line)
                    self.events.append((event["type"], event["object"]))

    def stop(self) -> None:
        if self._conn is not None and self._conn.sock is not None:
            with contextlib.suppress(OSError):
                self._conn.sock.shutdown(socket.SHUT_RDWR)
            self._conn.close()
        if self._thread is not None:
            self._thread.join(5)

    def objects(self) -> list[JSON]:
        return [obj for _, obj in list(self.events)]

    def states(self) -> list[str]:
        """A compact trace: phase/container-state per event, consecutive duplicates dropped."""
        trace: list[str] = []
        for kind, obj in list(self.events):
            statuses = (obj.get("status") or {}).get("containerStatuses") or []
            state = next(iter((statuses[0].get("state") or {}).items()), ("", {})) if statuses else ("", {})
            detail = state[0] + (f":{state[1].get('reason')}" if state[1].get("reason") else "")
            entry = f"{kind[0]}:{(obj.get('status') or {}).get('phase')}:{detail}"
            if not trace or trace[-1] != entry:
                trace.append(entry)
        return trace


@dataclass
class KubeletCluster:
    """An embedded control plane with the kubelet (and every other controller), shared by a module."""

    server: EmbeddedServer
    kubeconfig: Path
    home: Path
    session: requests.Session = field(default_factory=requests.Session)

    @property
    def url(self) -> str:
        return self.server.url

    def request(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        kwargs.setdefault("timeout", 30)
        return self.session.request(method, self.url + path, **kwargs)

    def create(self, path: str, body: JSON) -> JSON:
        response = self.request("POST", path, json=body)
        assert response.status_code == 201, f"POST {path}: {response.status_code} {response.text}"
        created: JSON = response.json()
        return created

    def create_pod(self, body: JSON) -> JSON:
        return self.create(f"/api/v1/namespaces/{body['metadata'].get('namespace', 'default')}/pods", body)

    def pod(self, name: str, namespace: str = "default") -> JSON | None:
        response = self.request("GET", f"/api/v1/namespaces/{namespace}/pods/{name}")
        assert response.status_code in (200, 404), response.text
        return response.json() if response.status_code == 200 else None

    def wait_pod(
        self,
        name: str,
        predicate: Callable[[JSON], bool],
        describe: str,
        namespace: str = "default",
        timeout: float = 15,
    ) -> JSON:
        found: JSON = eventually(
            lambda: self.pod(name, namespace),
            lambda p: p is not None and predicate(p),
            timeout=timeout,
            describe=f"pod {namespace}/{name}: {describe}",
        )
        return found

    def wait_phase(self, name: str, phase: str, namespace: str = "default", timeout: float = 15) -> JSON:
        return self.wait_pod(
            name, lambda p: (p.get("status") or {}).get("phase") == phase, f"phase {phase}", namespace, timeout
        )

    def wait_gone(self, name: str, namespace: str = "default", timeout: float = 15) -> None:
        eventually(lambda: self.pod(name, namespace), lambda p: p is None, timeout=timeout, describe=f"{name} gone")

    def delete_pod(self, name: str, namespace: str = "default", **params: str) -> JSON:
        response = self.request("DELETE", f"/api/v1/namespaces/{namespace}/pods/{name}", params=params)
        assert response.status_code == 200, response.text
        body: JSON = response.json()
        return body

    def logs(
        self, name: str, namespace: str = "default", *, stream: bool = False, timeout: float = 30, **params: Any
    ) -> requests.Response:
        """GET pods/{name}/log with `params` as the query (stream=True for follow)."""
        path = f"/api/v1/namespaces/{namespace}/pods/{name}/log"
        return self.request("GET", path, params=params, stream=stream, timeout=timeout)

    def log_text(self, name: str, namespace: str = "default", **params: Any) -> str:
        response = self.logs(name, namespace, **params)
        assert response.status_code == 200, response.text
        return response.text

    def log_so_far(self, name: str, namespace: str = "default", **params: Any) -> str:
        """The log text, or "" while the container cannot serve logs yet (for polling)."""
        response = self.logs(name, namespace, **params)
        return response.text if response.status_code == 200 else ""

    def record(self, name: str, namespace: str = "default") -> PodRecorder:
        return PodRecorder(self, namespace, name).start()

    def events_for(self, name: str, namespace: str = "default") -> list[JSON]:
        response = self.request(
            "GET", f"/api/v1/namespaces/{namespace}/events", params={"fieldSelector": f"involvedObject.name={name}"}
        )
        items: list[JSON] = response.json()["items"]
        return items

    def kubectl(self) -> CLI:
        return self._cli("kubectl")

    def helm(self) -> CLI:
        return self._cli("helm")

    def _cli(self, name: str) -> CLI:
        binary = find_binary(name)
        if binary is None:
            pytest.skip(f"{name} binary not available: run `python scripts/fetch_clients.py` (make test does)")
        return CLI(binary, self.kubeconfig, self.home, {})

    def api_client(self) -> Any:
        import kubernetes

        return kubernetes.config.new_client_from_config(config_file=str(self.kubeconfig))


@contextlib.contextmanager
def kubelet_cluster(tmp: Path, **kubelet_options: Any) -> Iterator[KubeletCluster]:
    options: dict[str, JSON] = {
        "kubelet": {**KUBELET_OPTIONS, **kubelet_options},
        "job": {"backoff_base": 0.05},
    }
    settings = ServerSettings(bookmark_interval=1.0, controllers=ALL_CONTROLLERS, controller_options=options)
    with EmbeddedServer.run_in_thread(settings) as server:
        kubeconfig = server.write_kubeconfig(tmp / "kubeconfig")
        home = tmp / "home"
        home.mkdir(exist_ok=True)
        cluster = KubeletCluster(server, kubeconfig, home)
        try:
            yield cluster
        finally:
            cluster.session.close()


def deserialize(api_client: Any, obj: JSON, kind: str = "V1Pod") -> Any:
    """What the kubernetes client makes of `obj` (raises on any validation error)."""
    return api_client.deserialize(json.dumps(obj), kind, "application/json")


__all__ = [
    "IMAGE",
    "SIM_IMAGE",
    "KubeletCluster",
    "PodRecorder",
    "condition",
    "container_status",
    "deserialize",
    "kubelet_cluster",
    "pid_alive",
    "process_pod",
    "python",
    "restarts",
    "state_of",
    "terminated",
    "wait_for_file",
]
