"""The worker as a Job container on the embedded control plane (Job controller + process kubelet): the
container contract the dops operator's Jobs rely on, without the operator.

The Job runs the dops image's entrypoint (`python -m dops`, via the kubelet's image map) with args
`worker run NS/NAME`, container `worker`, `DOPS_POD_NAME`/`DOPS_POD_NAMESPACE` from the downward API.

Aspects covered (issue 5 "Worker"; settings contract "Worker container contract"):
- the pod claims and completes the operation: status.podName is the pod's name, the result is stored,
  the Job succeeds, and the pod's terminated state carries the worker's JSON termination message.
- a failing operator: the op is failed with the traceback, the container exits 1, the Job fails, and the
  termination message names the error.
"""

from __future__ import annotations

import json
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from dops import DelegatedOperationService
from dops.emulator import EmbeddedServer, ServerSettings
from dops.emulator.bootstrap import apply_manifest_paths
from dops.emulator.controllers import ALL as ALL_CONTROLLERS
from dops.k8s import DelegatedOperationRepository, KubeClient, load_config
from tests.helpers import eventually

REPO = Path(__file__).resolve().parent.parent.parent
IMAGE = "ghcr.io/dops-dev/dops:0.1.0"
JSON = dict[str, Any]


@pytest.fixture(scope="module")
def control_plane(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedServer]:
    settings = ServerSettings(
        controllers=ALL_CONTROLLERS,
        controller_options={
            "kubelet": {
                "image_map": {"ghcr.io/dops-dev/dops:*": {"mode": "process", "command": [sys.executable, "-m", "dops"]}}
            },
            "job": {"backoff_base": 0.2},
        },
    )
    with EmbeddedServer.run_in_thread(settings) as server:
        server.call(lambda: apply_manifest_paths(server.api, [REPO / "crds"]))
        server.kubeconfig = server.write_kubeconfig(tmp_path_factory.mktemp("kube") / "kubeconfig")  # type: ignore[attr-defined]
        yield server


@pytest.fixture(scope="module")
def kube(control_plane: EmbeddedServer) -> Iterator[KubeClient]:
    client = KubeClient(load_config(control_plane.kubeconfig))  # type: ignore[attr-defined]
    yield client
    client.close()


@pytest.fixture
def service(kube: KubeClient) -> DelegatedOperationService:
    namespace = f"w-{uuid.uuid4().hex[:8]}"
    kube.request(
        "POST", "/api/v1/namespaces", body={"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}}
    )
    return DelegatedOperationService(DelegatedOperationRepository(kube), namespace=namespace)


def worker_job(name: str, namespace: str, ref: str) -> JSON:
    field = lambda path: {"valueFrom": {"fieldRef": {"fieldPath": path}}}  # noqa: E731
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "backoffLimit": 0,
            "template": {
                "spec": {
                    "restartPolicy": "Never",
                    "containers": [
                        {
                            "name": "worker",
                            "image": IMAGE,
                            "args": ["worker", "run", ref],
                            "env": [
                                {"name": "DOPS_POD_NAME", **field("metadata.name")},
                                {"name": "DOPS_POD_NAMESPACE", **field("metadata.namespace")},
                            ],
                        }
                    ],
                }
            },
        },
    }


def run_as_job(kube: KubeClient, service: DelegatedOperationService, operator: str, params: JSON) -> tuple[str, JSON]:
    doc = service.queue_operation(operator, context={"request_params": {"params": params}})
    assert service.set_scheduled(doc.id, required_state="queued") is not None
    ns = service.namespace
    kube.request(
        "POST", f"/apis/batch/v1/namespaces/{ns}/jobs", body=worker_job("w-" + doc.id[-12:], ns, f"{ns}/{doc.id}")
    )
    pods = eventually(
        lambda: kube.request("GET", f"/api/v1/namespaces/{ns}/pods")["items"],
        lambda items: len(items) == 1 and (items[0].get("status") or {}).get("phase") in ("Succeeded", "Failed"),
        timeout=60,
        describe="the worker pod to finish",
    )
    return doc.id, pods[0]


def terminated(pod: JSON) -> JSON:
    state: JSON = pod["status"]["containerStatuses"][0]["state"]["terminated"]
    return state


def test_worker_pod_completes_the_operation(kube: KubeClient, service: DelegatedOperationService) -> None:
    name, pod = run_as_job(kube, service, "@dops/examples/count", {"n": 3, "delay": 0.05})
    done = service.get(name)
    assert done.run_state == "completed" and done.result is not None and done.result.result == {"count": 3}
    assert done.pod_name == pod["metadata"]["name"]
    state = terminated(pod)
    assert state["exitCode"] == 0
    assert json.loads(state["message"]) == {
        "operation": f"{service.namespace}/{name}",
        "runState": "completed",
        "message": "completed",
    }


def test_worker_pod_failure_exits_3_with_termination_message(
    kube: KubeClient, service: DelegatedOperationService
) -> None:
    name, pod = run_as_job(kube, service, "@dops/examples/fail", {"message": "pod-level failure"})
    failed = service.get(name)
    assert failed.run_state == "failed" and failed.result is not None
    assert "ExampleFailure: pod-level failure" in (failed.result.error or "")
    state = terminated(pod)
    assert state["exitCode"] == 3 and state["reason"] == "Error"  # 3: failure recorded (1 would be a crash)
    assert json.loads(state["message"])["message"] == "ExampleFailure: pod-level failure"
