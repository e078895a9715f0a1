"""Test environment for the dops operator: an embedded control plane with every controller and the process
kubelet (the dops image runs `python -m dops`, i.e. the real worker), crds/ loaded, and the operator
running in-process in a thread (`run_operator(stop_flag=...)`), restartable.

Use `operator_env` (module-scoped: one control plane per test module) and `namespace` (a fresh
namespace per test). `OperatorEnv` offers the clients the tests need (dict client, service, official
client) plus helpers: `stop_operator()` / `start_operator()`, `jobs_of(op)`, `pods_of(op)`,
`worker_processes(op)`, `wait_state(...)`.
"""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from dops import DelegatedOperationService
from dops.domain.settings import OperatorSettings
from dops.emulator import EmbeddedServer, ServerSettings
from dops.emulator.bootstrap import apply_manifest_paths
from dops.emulator.controllers import ALL as ALL_CONTROLLERS
from dops.handlers import run_operator
from dops.k8s import DelegatedOperationRepository, KubeClient, load_config
from tests.helpers import eventually, free_port

REPO = Path(__file__).resolve().parent.parent.parent
IMAGE = "ghcr.io/dops-dev/dops:0.1.0"
MISSING_IMAGE = "registry.invalid/dops/not-there:1.0"
OPS = "/apis/dops.io/v1alpha1/namespaces/{ns}/delegatedoperations"
JOBS = "/apis/batch/v1/namespaces/{ns}/jobs"
PODS = "/api/v1/namespaces/{ns}/pods"
JSON = dict[str, Any]


def control_plane_settings(**kubelet: Any) -> ServerSettings:
    image_map: dict[str, Any] = {
        "ghcr.io/dops-dev/dops:*": {
            "mode": "process",
            "command": [sys.executable, "-m", "dops"],
            "env": {"PYTHONPATH": f"{REPO}:{REPO / 'operator'}"},  # py:tests.integration.operator_helpers:...
        },
        "registry.invalid/*": "missing",
    }
    return ServerSettings(
        history_size=100_000,
        bookmark_interval=2.0,
        controllers=ALL_CONTROLLERS,
        controller_options={
            "kubelet": {
                "image_map": image_map,
                "image_pull_backoff_base": 0.5,
                "image_pull_backoff_max": 2.0,
                "minimum_grace_period": 1.0,
                **kubelet,
            },
            "job": {"backoff_base": 0.2, "backoff_max": 2.0},
        },
    )


def operator_settings(archive: Path, **overrides: Any) -> OperatorSettings:
    values: dict[str, Any] = {
        "log_archive": str(archive),
        "metrics_port": 0,
        "health_port": 0,
        "image_pull_grace_seconds": 3,
        "reconcile_interval_seconds": 5,
        "job_ttl_seconds": 600,
        "default_max_concurrent": 10,
        "global_max_concurrent": 100,
        "watch_stale_seconds": 60,
        "worker_service_account": "",
    }
    values.update(overrides)
    return OperatorSettings(**values)


@dataclasses.dataclass
class OperatorThread:
    """`run_operator` in a daemon thread, as in-process tests run an operator; what it raised is kept in `errors`."""

    thread: threading.Thread
    stop_flag: threading.Event
    ready: threading.Event  # set by Kopf once the operator runs (and, with `ready_on_error`, when it crashed)
    errors: list[BaseException]

    def stop(self, timeout: float = 60.0) -> bool:
        """Ask it to stop and wait up to `timeout`; True when the thread ended."""
        self.stop_flag.set()
        self.thread.join(timeout)
        return not self.thread.is_alive()


def operator_thread(
    settings: OperatorSettings, kubeconfig: Path, name: str = "dops-operator", *, ready_on_error: bool = True
) -> OperatorThread:
    """Start `run_operator` (every namespace, logging left to the test) in a thread; it does not wait for it."""
    stop, ready, errors = threading.Event(), threading.Event(), []

    def main() -> None:
        try:
            run_operator(
                all_namespaces=True,
                settings=settings,
                stop_flag=stop,
                ready_flag=ready,
                kubeconfig=str(kubeconfig),
                configure_logging=False,
            )
        except BaseException as exc:  # the test reports it (stop_operator(), a fixture's teardown, an assert)
            errors.append(exc)
            if ready_on_error:
                ready.set()

    thread = threading.Thread(target=main, name=name, daemon=True)
    thread.start()
    return OperatorThread(thread, stop, ready, errors)


@dataclasses.dataclass
class OperatorEnv:
    server: EmbeddedServer
    kubeconfig: Path
    archive: Path
    settings: OperatorSettings
    kube: KubeClient
    _operator: OperatorThread | None = None

    # ------------------------------------------------------------------------------------ operator
    def start_operator(self, settings: OperatorSettings | None = None) -> None:
        assert self._operator is None, "the operator already runs"
        if settings is not None:
            self.settings = settings
        self._operator = running = operator_thread(self.settings, self.kubeconfig)
        assert running.ready.wait(30), "the operator did not start within 30 s"
        if running.errors:
            raise running.errors[0]

    def stop_operator(self) -> None:
        running, self._operator = self._operator, None
        if running is None:
            return
        assert running.stop(), "the operator did not stop within 60 s"
        if running.errors:
            error = running.errors.pop()
            raise AssertionError(f"the operator crashed: {error!r}") from error

    @property
    def operator_running(self) -> bool:
        return self._operator is not None

    # ------------------------------------------------------------------------------------ clients
    def service(self, namespace: str) -> DelegatedOperationService:
        return DelegatedOperationService(DelegatedOperationRepository(self.kube), namespace=namespace)

    def new_namespace(self, prefix: str = "op") -> str:
        name = f"{prefix}-{uuid.uuid4().hex[:8]}"
        self.kube.request(
            "POST", "/api/v1/namespaces", body={"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}
        )
        return name

    def get_op(self, namespace: str, name: str) -> JSON:
        result: JSON = self.kube.request("GET", f"{OPS.format(ns=namespace)}/{name}")
        return result

    def create(self, namespace: str, body: JSON) -> JSON:
        path = OPS.format(ns=namespace) if body.get("kind") == "DelegatedOperation" else None
        if body.get("kind") == "DelegationTarget":
            path = f"/apis/dops.io/v1alpha1/namespaces/{namespace}/delegationtargets"
        assert path is not None, body
        created: JSON = self.kube.request("POST", path, body=body)
        return created

    def jobs_of(self, namespace: str, name: str) -> list[JSON]:
        body = self.kube.request(
            "GET", JOBS.format(ns=namespace), params={"labelSelector": "app.kubernetes.io/managed-by=dops"}
        )
        return [
            j
            for j in body.get("items") or []
            if any(r.get("name") == name for r in j["metadata"].get("ownerReferences") or [])
        ]

    def pods_of(self, namespace: str, job: str) -> list[JSON]:
        body = self.kube.request(
            "GET", PODS.format(ns=namespace), params={"labelSelector": f"batch.kubernetes.io/job-name={job}"}
        )
        items: list[JSON] = body.get("items") or []
        return items

    def wait_state(self, namespace: str, name: str, *states: str, timeout: float = 60.0) -> JSON:
        wanted = set(states)
        return eventually(
            lambda: self.get_op(namespace, name),
            lambda o: (o.get("status") or {}).get("runState") in wanted,
            timeout=timeout,
            interval=0.1,
            describe=f"{namespace}/{name} in state {' or '.join(sorted(wanted))}",
        )

    def wait_processed(self, namespace: str, name: str, timeout: float = 60.0) -> JSON:
        """Terminal and processed by the operator (Succeeded condition set for the terminal state)."""

        def done(obj: JSON) -> bool:
            status = obj.get("status") or {}
            state = status.get("runState")
            if state not in ("completed", "failed"):
                return False
            wanted = "True" if state == "completed" else "False"
            return any(
                c.get("type") == "Succeeded" and c.get("status") == wanted for c in status.get("conditions") or []
            )

        return eventually(
            lambda: self.get_op(namespace, name),
            done,
            timeout=timeout,
            interval=0.1,
            describe=f"{namespace}/{name} finished and processed by the operator",
        )

    def events_of(self, namespace: str, name: str) -> list[JSON]:
        body = self.kube.request(
            "GET",
            f"/api/v1/namespaces/{namespace}/events",
            params={"fieldSelector": f"involvedObject.name={name},involvedObject.kind=DelegatedOperation"},
        )
        items: list[JSON] = body.get("items") or []
        return items


class JobRecorder:
    """Watches every dops Job of a namespace from before the test acts: which Jobs ever existed (name → uids)."""

    def __init__(self, env: OperatorEnv, namespace: str) -> None:
        self.env = env
        self.namespace = namespace
        self.seen: dict[str, set[str]] = {}
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._response: Any = None
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> JobRecorder:
        self._thread.start()
        assert self._ready.wait(10), "job watch did not start"
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        response = self._response
        if response is not None:
            try:
                response.close()  # end the watch now rather than at its timeout
            except Exception:
                pass
        self._thread.join(10)

    def _run(self) -> None:
        http = self.env.kube.config.http_client(timeout=30)
        url = self.env.kube.config.server + JOBS.format(ns=self.namespace)
        rv = ""
        while not self._stop.is_set():
            params = {"watch": "true", "timeoutSeconds": "1", "allowWatchBookmarks": "true"}
            if rv:
                params["resourceVersion"] = rv
            try:
                with http.session.get(url, params=params, stream=True, timeout=(5, 10)) as response:
                    self._response = response
                    self._ready.set()
                    for line in response.iter_lines():
                        if not line:
                            continue
                        event = json.loads(line)
                        obj = event.get("object") or {}
                        rv = (obj.get("metadata") or {}).get("resourceVersion", rv)
                        if event.get("type") in ("ADDED", "MODIFIED"):
                            meta = obj["metadata"]
                            self.seen.setdefault(meta["name"], set()).add(meta["uid"])
            except Exception:
                time.sleep(0.2)
        http.session.close()

    def jobs_for(self, operation: str) -> dict[str, set[str]]:
        return {name: uids for name, uids in self.seen.items() if name.startswith(f"{operation}-")}

    def assert_one_job_per_attempt(self, operation: str, attempts: int = 1) -> None:
        jobs = self.jobs_for(operation)
        assert sorted(jobs) == [f"{operation}-{i}" for i in range(1, attempts + 1)], jobs
        assert all(len(uids) == 1 for uids in jobs.values()), jobs


def condition(obj: JSON, ctype: str) -> JSON:
    for cond in (obj.get("status") or {}).get("conditions") or []:
        if cond.get("type") == ctype:
            return dict(cond)
    return {}


def worker_pids(ref: str) -> list[int]:
    """PIDs of local worker processes running `worker run <ref>` (the process kubelet's containers)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        args = [a.decode(errors="replace") for a in cmdline if a]
        if "worker" in args and "run" in args and ref in args:
            pids.append(int(entry.name))
    return pids


def kill(pid: int, sig: int = signal.SIGKILL) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass


def wait_gone(pids: list[int], timeout: float) -> float:
    start = time.monotonic()
    eventually(
        lambda: [p for p in pids if Path(f"/proc/{p}").exists() and _alive(p)],
        lambda left: not left,
        timeout=timeout,
        describe=f"worker processes {pids} to exit",
    )
    return time.monotonic() - start


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.fixture(scope="module")
def operator_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OperatorEnv]:
    base = tmp_path_factory.mktemp("operator")
    with EmbeddedServer.run_in_thread(control_plane_settings()) as server:
        server.call(lambda: apply_manifest_paths(server.api, [REPO / "crds"]))
        kubeconfig = server.write_kubeconfig(base / "kubeconfig")
        archive = base / "archive"
        kube = KubeClient(load_config(kubeconfig))
        env = OperatorEnv(server, kubeconfig, archive, operator_settings(archive), kube)
        env.start_operator()
        try:
            yield env
        finally:
            env.stop_operator()
            kube.close()


@pytest.fixture
def namespace(operator_env: OperatorEnv) -> str:
    return operator_env.new_namespace()


# ------------------------------------------------------------------------ a test's own operator, with /healthz


@dataclasses.dataclass
class Started:
    running: OperatorThread
    health_port: int

    def healthz(self) -> requests.Response:
        return requests.get(f"http://127.0.0.1:{self.health_port}/healthz", timeout=5)


@pytest.fixture
def own_operator(operator_env: OperatorEnv) -> Iterator[list[Started]]:
    """The module's operator stopped; the test starts its own (`start_own`), stopped after it, faults cleared."""
    env = operator_env
    env.stop_operator()
    started: list[Started] = []
    yield started
    env.server.call(env.server.faults.clear)
    for run in started:
        assert run.running.stop(), "the test's operator did not stop within 60 s"
        assert not run.running.errors, run.running.errors
    env.start_operator()


def start_own(
    env: OperatorEnv, started: list[Started], namespace: str, leader_election: bool = False, **overrides: Any
) -> Started:
    """`run_operator` in a thread with a health port (and `overrides` of the env's settings), without waiting for
    Kopf to report it started; `own_operator` stops it after the test."""
    settings = dataclasses.replace(
        env.settings,
        **overrides,
        health_port=free_port(),
        bind_address="127.0.0.1",
        leader_election=leader_election,
        leader_election_identity="own-operator",
        leader_election_namespace=namespace,
    )
    running = operator_thread(settings, env.kubeconfig, "dops-operator-own", ready_on_error=False)
    run = Started(running, settings.health_port)
    started.append(run)
    return run
