"""The kubelet of the embedded control plane: one node, pods as local processes (or simulated).

Level-triggered like every controller here: `reconcile` reads the pod as stored and moves its
containers one step towards what the spec asks; process exits, back-offs and deadlines come back
as queue entries. The kubelet also does the scheduler's one job on a one-node cluster (binding
pending pods to its node) and serves the pods/log endpoint (`api.log_provider`).

Pod lifecycle, as a real kubelet reports it:
- binding: `spec.nodeName` + `PodScheduled` (the scheduler's write);
- `Pending` with every container `waiting: ContainerCreating` (`PodInitializing` with init containers);
- `Running` (`running.startedAt`, `ready`, `started`, podIP);
- `Succeeded`/`Failed` with `terminated{exitCode, reason Completed|Error|StartError, message, ...}`;
  restartPolicy OnFailure/Always restart containers with `restartCount`, `lastState` and
  `CrashLoopBackOff` back-off (10 s doubling to 5 min, configurable);
- deletion: the API server keeps a pod that runs here (graceful deletion, `api.graceful_delete`),
  the kubelet sends SIGTERM to each container's process group, SIGKILL after the grace period,
  reports the final status and deletes the pod with grace 0 (finalizers may hold it after that);
- `activeDeadlineSeconds`: containers are killed, the pod fails with reason `DeadlineExceeded`.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import ipaddress
import logging
import os
import secrets
import shutil
import signal
import tempfile
import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aiohttp import web

from ... import errors
from ...apiserver import ApiServer, DeleteOptions, WriteOptions
from ...clock import rfc3339
from ...registry import ResourceType
from ...server import kubeconfig_yaml
from ...store import Event
from ..base import Controller, Key
from .config import (
    ANNOTATION_SIM_DURATION,
    ANNOTATION_SIM_EXIT_CODE,
    ANNOTATION_SIM_LOGS,
    ANNOTATION_SIM_MESSAGE,
    ANNOTATION_SIMULATE,
    IN_CLUSTER_ENV,
    MISSING,
    SIMULATED,
    TERMINATION_MESSAGE_ENV,
    ImageMap,
    ImageRule,
    KubeletOptions,
    image_repository,
    normalize_image,
)
from .env import ConfigError, container_env, expand
from .logs import (
    LogWriter,
    container_log_id,
    empty_log,
    parse_log_options,
    select_container,
    stream_log,
)
from .node import machine_capacity, node_labels, node_object
from .process import Exit, ProcessRunner, SimulatedRunner, StartError, resolve_executable
from .status import get_phase, go_duration, pod_conditions

JSON = dict[str, Any]
PODS = ("", "pods")
NODES = ("", "nodes")
TERMINAL = ("Succeeded", "Failed")
MAX_TERMINATION_MESSAGE = 4096  # bytes read from the termination-message file
FALLBACK_LOG_LINES = 80
FALLBACK_LOG_BYTES = 2048
START_ERROR_TIME = "1970-01-01T00:00:00Z"  # startedAt of a container that never started
# Status fields the kubelet owns; anything else a client put in status is kept as is.
_OWNED_STATUS = frozenset(
    {
        "phase",
        "conditions",
        "hostIP",
        "hostIPs",
        "podIP",
        "podIPs",
        "startTime",
        "containerStatuses",
        "initContainerStatuses",
        "reason",
        "message",
        "observedGeneration",
        "qosClass",
    }
)

log = logging.getLogger("dops.emulator.kubelet")


class Attempt:
    """One run of a container (a container instance with its own containerID and log file)."""

    def __init__(self, container_id: str, started_at: str, log_writer: LogWriter | None = None) -> None:
        self.container_id = container_id
        self.started_at = started_at
        self.started_mono = time.monotonic()
        self.log = log_writer
        self.runner: ProcessRunner | SimulatedRunner | None = None
        self.termination_file: Path | None = None
        self.exit: Exit | None = None
        self.finished_at = ""
        self.handled = False
        self.fallback_to_logs = False  # terminationMessagePolicy: FallbackToLogsOnError

    @property
    def running(self) -> bool:
        return self.exit is None

    def terminated(self) -> JSON:
        assert self.exit is not None
        out: JSON = {
            "exitCode": self.exit.exit_code,
            "reason": self.exit.reason,
            "startedAt": self.started_at,
            "finishedAt": self.finished_at,
            "containerID": self.container_id,
        }
        if self.exit.message:
            out["message"] = self.exit.message
        return out

    def discard_logs(self) -> None:
        """Forget this run's files (the kubelet keeps only the current and the previous run)."""
        if self.log is not None:
            self.log.finish()
            for path in self.log.files():
                path.unlink(missing_ok=True)
        if self.termination_file is not None:
            self.termination_file.unlink(missing_ok=True)


class ContainerRuntime:
    """What the kubelet knows about one container of a pod across its restarts."""

    def __init__(self, spec: JSON, init: bool, mode: str, rule: ImageRule, pod_has_init: bool) -> None:
        self.spec = spec
        self.name = str(spec.get("name", ""))
        self.image = str(spec.get("image", ""))
        self.init = init
        self.mode = mode
        self.rule = rule
        self.restart_count = 0
        self.current: Attempt | None = None  # running, or the last run when it will not restart
        self.last: Attempt | None = None  # the run `lastState` reports
        self.waiting: tuple[str, str] = ("PodInitializing" if pod_has_init else "ContainerCreating", "")
        self.retry_at = 0.0  # monotonic time before which it may not (re)start
        self.hold_until = 0.0  # ErrImagePull turns into ImagePullBackOff at this time
        self.crashes = 0
        self.pull_failures = 0
        self.ever_started = False
        digest = hashlib.sha256(normalize_image(self.image).encode()).hexdigest()
        self.image_id = f"{image_repository(self.image)}@sha256:{digest}"

    @property
    def running(self) -> bool:
        return self.current is not None and self.current.running

    @property
    def field_path(self) -> str:
        return f"spec.{'initContainers' if self.init else 'containers'}{{{self.name}}}"

    def attempts(self) -> list[Attempt]:
        return [a for a in (self.current, self.last) if a is not None]

    def status(self, pod_terminal: bool) -> JSON:
        current = self.current
        out: JSON = {
            "name": self.name,
            "image": normalize_image(self.image),
            "imageID": self.image_id if self.ever_started else "",
            "ready": False,
            "restartCount": self.restart_count,
            "started": False,
        }
        state: JSON
        if current is not None and current.running:
            state = {"running": {"startedAt": current.started_at}}
            out["ready"] = out["started"] = True
        elif current is not None:
            state = {"terminated": current.terminated()}
        else:
            reason, message = self.waiting
            waiting: JSON = {"reason": reason}
            if message:
                waiting["message"] = message
            state = {"waiting": waiting}
            if pod_terminal:
                state = {
                    "terminated": {
                        "exitCode": 137,
                        "reason": "ContainerStatusUnknown",
                        "message": "The container could not be located when the pod was terminated",
                    }
                }
        out["state"] = state
        out["lastState"] = {"terminated": self.last.terminated()} if self.last is not None else {}
        if current is not None or self.last is not None:
            out["containerID"] = (current or self.last).container_id  # type: ignore[union-attr]
        resources = self.spec.get("resources") or {}
        if resources.get("requests") or resources.get("limits"):
            out["resources"] = {k: dict(v) for k, v in resources.items() if k in ("requests", "limits") and v}
            if resources.get("requests"):
                out["allocatedResources"] = dict(resources["requests"])
        return out


class PodRuntime:
    """The kubelet's private state for one pod (keyed by uid); the node agent (dops.emulator.node) extends it."""

    def __init__(self, pod: JSON, images: ImageMap, now: datetime) -> None:
        meta = pod["metadata"]
        spec = pod.get("spec") or {}
        self.uid = str(meta["uid"])
        self.namespace = str(meta.get("namespace", ""))
        self.name = str(meta["name"])
        forced = str((meta.get("annotations") or {}).get(ANNOTATION_SIMULATE, "")).lower() == "true"
        has_init = bool(spec.get("initContainers"))

        def build(container: JSON, init: bool) -> ContainerRuntime:
            rule = images.resolve(str(container.get("image", "")))
            mode = SIMULATED if forced else rule.mode
            return ContainerRuntime(container, init, mode, rule, has_init)

        self.init_containers = [build(c, True) for c in spec.get("initContainers") or []]
        self.containers = [build(c, False) for c in spec.get("containers") or []]
        self.simulated = all(c.mode == SIMULATED for c in self.all)
        self.start_time = rfc3339(now)
        self.started_mono = time.monotonic()
        self.announced = False
        self.start_after = 0.0
        self.sandbox_ready = False
        self.pod_ip = ""
        self.killing = False
        self.kill_started = 0.0
        self.kill_deadline = 0.0
        self.sigkill_sent = False
        self.stopped = False  # killed and every container is down: the pod is terminal
        self.terminal = False  # a terminal phase has been reported; nothing more to run
        self.finalized = False
        self.reason = ""
        self.message = ""
        self.directory: Path | None = None

    @property
    def all(self) -> list[ContainerRuntime]:
        return self.init_containers + self.containers

    @property
    def key(self) -> Key:
        return ("", "pods", self.namespace, self.name)

    def running(self) -> list[ContainerRuntime]:
        return [c for c in self.all if c.running]

    def find_log(self, container_id: str) -> tuple[bool, LogWriter | None]:
        for container in self.all:
            for attempt in container.attempts():
                if attempt.container_id == container_id:
                    return True, attempt.log
        return False, None


def finish_attempt(attempt: Attempt, result: Exit, finished_at: str) -> None:
    """Record how a run ended: its exit and termination message (the file, or the log tail if FallbackToLogsOnError)."""
    message = result.message
    extra = ""
    if attempt.termination_file is not None:
        with contextlib.suppress(OSError), open(attempt.termination_file, "rb") as handle:
            extra = handle.read(MAX_TERMINATION_MESSAGE).decode(errors="replace")
    if (
        not extra
        and result.exit_code != 0
        and result.reason != "StartError"
        and attempt.log is not None
        and attempt.fallback_to_logs
    ):
        attempt.log.finish()
        extra = attempt.log.tail_text(FALLBACK_LOG_LINES, FALLBACK_LOG_BYTES)
    if extra:
        message = f"{message}: {extra}" if message else extra
    attempt.exit = Exit(result.exit_code, result.reason, message)
    attempt.finished_at = finished_at
    if attempt.log is not None:
        attempt.log.finish()


def compose_pod_status(pod: JSON, rt: PodRuntime, node_ip: str, now: str) -> JSON:
    """The status the kubelet reports for `pod` from its runtime state (fields it does not own are kept)."""
    old = pod.get("status") or {}
    spec = pod.get("spec") or {}
    generation = pod["metadata"].get("generation")
    init_statuses = [c.status(rt.stopped) for c in rt.init_containers]
    statuses = [c.status(rt.stopped) for c in rt.containers]
    phase = get_phase(spec, init_statuses, statuses, rt.stopped)
    if rt.reason == "DeadlineExceeded" and rt.stopped:
        phase = "Failed"
    status: JSON = {
        "phase": phase,
        "conditions": pod_conditions(
            list(old.get("conditions") or []),
            phase=phase,
            sandbox_ready=rt.sandbox_ready and phase not in TERMINAL,
            init_statuses=init_statuses,
            statuses=statuses,
            now=now,
            generation=generation,
        ),
        "hostIP": node_ip,
        "hostIPs": [{"ip": node_ip}],
        "startTime": rt.start_time,
        "containerStatuses": statuses,
        "qosClass": old.get("qosClass") or "BestEffort",
    }
    if rt.pod_ip:
        status["podIP"] = rt.pod_ip
        status["podIPs"] = [{"ip": rt.pod_ip}]
    if init_statuses:
        status["initContainerStatuses"] = init_statuses
    if rt.reason:
        status["reason"] = rt.reason
        status["message"] = rt.message
    if generation:
        status["observedGeneration"] = generation
    for key, value in old.items():
        if key not in _OWNED_STATUS:
            status[key] = value
    return status


def container_command(
    container: ContainerRuntime, env: dict[str, str], process_env: dict[str, str], scratch: Callable[[], Path]
) -> tuple[list[str], str, str]:
    """argv, executable and working directory of a process container, as runc resolves them (StartError if not).

    `env` is the pod-defined environment (for `$(VAR)` expansion), `process_env` the whole one (its PATH finds
    the program); `scratch()` is the default working directory, created on demand.
    """
    spec = container.spec
    rule = container.rule
    command = list(spec.get("command") or rule.command)
    argv = [expand(part, env.get) for part in command + list(spec.get("args") or [])]
    working_dir = str(spec.get("workingDir") or rule.working_dir or "")
    if working_dir:
        if not os.path.isdir(working_dir):
            raise StartError(f'chdir to cwd ("{working_dir}") set in config.json failed: no such file or directory')
        cwd = working_dir
    else:
        cwd_path = scratch()
        cwd_path.mkdir(exist_ok=True)
        cwd = str(cwd_path)
    if not argv:
        raise StartError("exec: no command specified (the image map gives no default command for this image)")
    executable = resolve_executable(argv[0], process_env.get("PATH", os.defpath), cwd)
    return argv, executable, cwd


class Kubelet(Controller):
    """A single-node kubelet (and scheduler) running pods as local processes or simulations."""

    name = "kubelet"
    watches = (PODS, NODES)

    def __init__(self, api: ApiServer, **options: Any) -> None:
        super().__init__(api)
        self.options = KubeletOptions(**options)
        self.node_name = self.options.node_name
        self.images = self.options.image_rules()
        self._pod_type: ResourceType = api.type_for("", "v1", "pods")
        self._node_type: ResourceType = api.type_for("", "v1", "nodes")
        self._event_type: ResourceType = api.type_for("", "v1", "events")
        self._pods: dict[str, PodRuntime] = {}
        self._by_name: dict[tuple[str, str], set[str]] = {}
        self.work_dir: Path | None = None
        self._kubeconfigs: dict[str, Path] = {}
        self._base_env = self.options.base_env()
        self._allocatable = machine_capacity()
        network = ipaddress.ip_network(self.options.sim_pod_cidr, strict=False)
        self._sim_network = (int(network.network_address), max(network.num_addresses - 3, 1), network.version)
        self._sim_counter = 0
        self._previous_hooks: tuple[Any, Any] = (None, None)

    # ------------------------------------------------------------------------------- lifecycle
    def start(self) -> None:
        if self.options.work_dir:
            # Absolute: pod processes run in directories of their own, and get paths below it (KUBECONFIG).
            self.work_dir = Path(os.path.abspath(self.options.work_dir))
            self.work_dir.mkdir(parents=True, exist_ok=True)
        else:
            self.work_dir = Path(tempfile.mkdtemp(prefix="dops-kubelet-"))
        self._previous_hooks = (self.api.graceful_delete, self.api.log_provider)
        self.api.graceful_delete = self._graceful_delete
        self.api.log_provider = self.serve_logs
        self._register_node()
        super().start()

    async def stop(self) -> None:
        if self.api.graceful_delete == self._graceful_delete:
            self.api.graceful_delete = self._previous_hooks[0]
        if self.api.log_provider == self.serve_logs:
            self.api.log_provider = self._previous_hooks[1]
        await super().stop()
        await self._kill_everything()
        for runtime in list(self._pods.values()):
            self._forget(runtime, remove_files=False)
        if self.work_dir is not None and not self.options.work_dir:
            shutil.rmtree(self.work_dir, ignore_errors=True)

    async def _kill_everything(self) -> None:
        """Stopping the kubelet stops every container: SIGTERM, `shutdown_grace`, then SIGKILL."""
        runners = [
            c.current.runner
            for rt in self._pods.values()
            for c in rt.all
            if c.current is not None and c.current.runner is not None and c.current.runner.running
        ]
        for runner in runners:
            runner.signal(signal.SIGTERM)
        if runners:
            await asyncio.wait([r.done for r in runners], timeout=self.options.shutdown_grace)
        for runner in runners:
            if runner.running:
                runner.signal(signal.SIGKILL)
        if runners:
            await asyncio.wait([r.done for r in runners], timeout=5.0)

    def keys_for(self, event: Event) -> Iterable[Key]:
        meta = event.obj["metadata"]
        if event.resource == NODES:
            return [("", "nodes", "", meta["name"])] if meta["name"] == self.node_name else []
        node = (event.obj.get("spec") or {}).get("nodeName")
        if node and node != self.node_name:
            return []
        return [("", "pods", meta.get("namespace", ""), meta["name"])]

    def resync(self) -> None:
        self.queue.add(("", "nodes", "", self.node_name))
        for obj in self.api.store.iter(PODS):
            node = (obj.get("spec") or {}).get("nodeName")
            if not node or node == self.node_name:
                meta = obj["metadata"]
                self.queue.add(("", "pods", meta.get("namespace", ""), meta["name"]))

    async def reconcile(self, key: Key) -> float | None:
        _, plural, namespace, name = key
        if plural == "nodes":
            if name == self.node_name and self.api.store.get(NODES, "", name) is None:
                self._register_node()
            return None
        return await self._sync_pod(namespace, name)

    # ------------------------------------------------------------------------------- node
    def _register_node(self) -> None:
        body = node_object(self.node_name, self.options.node_ip, "10.244.0.0/24", self.api.clock.now())
        existing = self.api.store.get(NODES, "", self.node_name)
        opts = WriteOptions(field_manager="kubelet")
        status = body["status"]
        try:
            if existing is None:  # create (the apiserver drops status on create), then post the status
                existing = self.api.create(self._node_type, None, body, opts).obj
            updated = {**existing, "metadata": dict(existing["metadata"]), "status": status}
            updated["metadata"].pop("resourceVersion", None)
            self.api.update(self._node_type, None, self.node_name, updated, opts, subresource="status")
        except errors.APIError as exc:
            log.warning("kubelet: cannot register node %s: %s", self.node_name, exc.message)

    def _graceful_delete(self, rtype: ResourceType, obj: JSON) -> bool:
        """Pods running on this node are deleted gracefully (CheckGracefulDelete)."""
        if (rtype.group, rtype.plural) != PODS:
            return False
        if (obj.get("spec") or {}).get("nodeName") != self.node_name:
            return False
        return (obj.get("status") or {}).get("phase") not in TERMINAL

    # ------------------------------------------------------------------------------- scheduling
    def _schedule(self, pod: JSON) -> None:
        spec = pod.get("spec") or {}
        meta = pod["metadata"]
        if (spec.get("schedulerName") or "default-scheduler") != "default-scheduler" or meta.get("deletionTimestamp"):
            return
        node = self.api.store.get(NODES, "", self.node_name)
        labels = ((node or {}).get("metadata") or {}).get("labels") or node_labels(self.node_name)
        selector = spec.get("nodeSelector") or {}
        if any(labels.get(k) != v for k, v in selector.items()):
            self._unschedulable(pod)
            return
        try:
            self.api.bind_pod(meta.get("namespace", ""), meta["name"], self.node_name, meta["uid"])
        except errors.APIError as exc:
            log.debug("kubelet: binding %s/%s failed: %s", meta.get("namespace"), meta["name"], exc.message)
            return
        if not self._pod_is_simulated(pod):
            self._event(
                pod,
                "Normal",
                "Scheduled",
                f"Successfully assigned {meta.get('namespace')}/{meta['name']} to {self.node_name}",
                component="default-scheduler",
            )

    def _unschedulable(self, pod: JSON) -> None:
        status = dict(pod.get("status") or {})
        message = (
            "0/1 nodes are available: 1 node(s) didn't match Pod's node affinity/selector. "
            "preemption: 0/1 nodes are available: 1 Preemption is not helpful for scheduling."
        )
        conditions = [c for c in status.get("conditions") or [] if c.get("type") != "PodScheduled"]
        for condition in status.get("conditions") or []:
            if condition.get("type") == "PodScheduled" and condition.get("message") == message:
                return
        conditions.append(
            {
                "type": "PodScheduled",
                "status": "False",
                "lastProbeTime": None,
                "lastTransitionTime": rfc3339(self.api.clock.now()),
                "reason": "Unschedulable",
                "message": message,
            }
        )
        status["conditions"] = conditions
        status.setdefault("phase", "Pending")
        self._put_status(pod, status, manager="default-scheduler")

    def _pod_is_simulated(self, pod: JSON) -> bool:
        annotations = pod["metadata"].get("annotations") or {}
        if str(annotations.get(ANNOTATION_SIMULATE, "")).lower() == "true":
            return True
        spec = pod.get("spec") or {}
        images = [str(c.get("image", "")) for k in ("initContainers", "containers") for c in spec.get(k) or []]
        return bool(images) and all(self.images.resolve(i).mode == SIMULATED for i in images)

    # ------------------------------------------------------------------------------- pod sync
    async def _sync_pod(self, namespace: str, name: str) -> float | None:
        pod = self.api.store.get(PODS, namespace, name)
        uid = pod["metadata"]["uid"] if pod is not None else None
        waits: list[float] = []
        for other in list(self._by_name.get((namespace, name), ())):
            if other != uid:
                wait = self._teardown(self._pods[other])
                if wait is not None:
                    waits.append(wait)
        if pod is None:
            return min(waits, default=None)
        spec = pod.get("spec") or {}
        node = spec.get("nodeName")
        if not node:
            if self.options.schedule:
                self._schedule(pod)
            return min(waits, default=None)
        if node != self.node_name:
            return min(waits, default=None)
        runtime = self._pods.get(str(uid))
        if runtime is None:
            meta = pod["metadata"]
            if (pod.get("status") or {}).get("phase") in TERMINAL:
                return min(waits, default=None)
            runtime = PodRuntime(pod, self.images, self.api.clock.now())
            if meta.get("deletionTimestamp"):
                runtime.announced = True  # deleted before it ever started: nothing to run
            self._pods[runtime.uid] = runtime
            self._by_name.setdefault((namespace, name), set()).add(runtime.uid)
        wait = await self._sync(pod, runtime)
        if wait is not None:
            waits.append(wait)
        return min(waits, default=None)

    async def _sync(self, pod: JSON, rt: PodRuntime) -> float | None:
        now = time.monotonic()
        meta = pod["metadata"]
        spec = pod.get("spec") or {}
        if rt.terminal:
            if meta.get("deletionTimestamp") and not rt.finalized:
                self._final_delete(rt)
            return None
        deleting = bool(meta.get("deletionTimestamp"))
        if deleting:
            grace = float(meta.get("deletionGracePeriodSeconds") or 0)
            if not rt.killing:
                self._begin_kill(pod, rt, grace)
            else:
                rt.kill_deadline = min(
                    rt.kill_deadline, rt.kill_started + max(grace, self.options.minimum_grace_period)
                )
        deadline = spec.get("activeDeadlineSeconds")
        if not rt.killing and isinstance(deadline, int) and now - rt.started_mono >= deadline:
            rt.reason = "DeadlineExceeded"
            rt.message = "Pod was active on the node longer than the specified deadline"
            self._event(pod, "Normal", "DeadlineExceeded", rt.message)
            self._begin_kill(pod, rt, float(spec.get("terminationGracePeriodSeconds", 30) or 0))
        if not rt.announced:
            rt.announced = True
            delay = self.options.sim_start_delay if rt.simulated else self.options.pod_start_delay
            rt.start_after = now + delay
            if not rt.simulated or self.options.sim_pending:
                self._write_status(rt)  # Pending, containers waiting in ContainerCreating
                return max(delay, 0.0)
        for container in rt.all:
            current = container.current
            if current is not None and current.exit is not None and not current.handled:
                self._handle_exit(pod, rt, container, now)
        if rt.killing:
            running = rt.running()
            if running:
                if now >= rt.kill_deadline and not rt.sigkill_sent:
                    rt.sigkill_sent = True
                    for container in running:
                        assert container.current is not None and container.current.runner is not None
                        container.current.runner.signal(signal.SIGKILL)
                return None if rt.sigkill_sent else max(rt.kill_deadline - now, 0.01)
            rt.stopped = True
            self._write_status(rt)
            if deleting:
                self._final_delete(rt)
            return None
        if now < rt.start_after:
            return rt.start_after - now
        if not rt.sandbox_ready:
            rt.sandbox_ready = True
            rt.pod_ip = self._sim_ip() if rt.simulated else self.options.node_ip
        waits = await self._advance(pod, rt, time.monotonic())
        self._write_status(rt)
        if rt.terminal:
            return None
        if isinstance(deadline, int):
            waits.append(rt.started_mono + deadline - time.monotonic())
        return max(min(waits), 0.0) if waits else None

    async def _advance(self, pod: JSON, rt: PodRuntime, now: float) -> list[float]:
        """Start what should run now: init containers one by one, then every regular container."""
        policy = (pod.get("spec") or {}).get("restartPolicy") or "Always"
        waits: list[float] = []
        initialized = True
        for container in rt.init_containers:
            current = container.current
            if current is not None and current.exit is not None and current.exit.exit_code == 0:
                continue
            initialized = False
            if container.running or (current is not None and policy == "Never"):
                break
            waits.extend(await self._try_start(pod, rt, container, now))
            break
        if initialized:
            for container in rt.containers:
                if container.current is None:
                    waits.extend(await self._try_start(pod, rt, container, now))
        return waits

    def _handle_exit(self, pod: JSON, rt: PodRuntime, container: ContainerRuntime, now: float) -> None:
        attempt = container.current
        assert attempt is not None and attempt.exit is not None
        attempt.handled = True
        if rt.killing:
            return
        policy = (pod.get("spec") or {}).get("restartPolicy") or "Always"
        code = attempt.exit.exit_code
        if container.init:
            restart = code != 0 and policy != "Never"
        else:
            restart = policy == "Always" or (policy == "OnFailure" and code != 0)
        if not restart:
            return
        opts = self.options
        if now - attempt.started_mono > 2 * opts.restart_backoff_max:
            container.crashes = 0
        delay = (
            0.0
            if container.crashes == 0
            else min(opts.restart_backoff_base * 2 ** (container.crashes - 1), opts.restart_backoff_max)
        )
        container.crashes += 1
        if container.last is not None:
            container.last.discard_logs()
        container.last, container.current = attempt, None
        container.retry_at = now + delay
        pod_ref = f"{rt.name}_{rt.namespace}({rt.uid})"
        if delay > 0:
            container.waiting = (
                "CrashLoopBackOff",
                f"back-off {go_duration(delay)} restarting failed container={container.name} pod={pod_ref}",
            )
            self._event(
                pod,
                "Warning",
                "BackOff",
                f"Back-off restarting failed container {container.name} in pod {pod_ref}",
                container,
            )

    async def _try_start(self, pod: JSON, rt: PodRuntime, container: ContainerRuntime, now: float) -> list[float]:
        opts = self.options
        if now < container.retry_at:
            waits = [container.retry_at - now]
            if container.waiting[0] == "ErrImagePull":
                if now >= container.hold_until:
                    message = f'Back-off pulling image "{container.image}": ErrImagePull: {container.waiting[1]}'
                    container.waiting = ("ImagePullBackOff", message)
                    self._event(pod, "Normal", "BackOff", f'Back-off pulling image "{container.image}"', container)
                    self._event(pod, "Warning", "Failed", "Error: ImagePullBackOff", container)
                else:
                    waits.append(container.hold_until - now)
            return waits
        if container.mode == MISSING:
            container.pull_failures += 1
            backoff = min(
                opts.image_pull_backoff_base * 2 ** (container.pull_failures - 1), opts.image_pull_backoff_max
            )
            reference = normalize_image(container.image)
            message = (
                f'failed to pull and unpack image "{reference}": failed to resolve reference "{reference}": '
                f"{reference}: not found (the dops emulator never pulls images: map {container.image!r} in the "
                'kubelet image_map to "process" or "simulated")'
            )
            container.waiting = ("ErrImagePull", message)
            container.retry_at = now + backoff
            container.hold_until = now + min(opts.image_pull_error_hold, backoff)
            self._event(pod, "Normal", "Pulling", f'Pulling image "{container.image}"', container)
            self._event(pod, "Warning", "Failed", f'Failed to pull image "{container.image}": {message}', container)
            self._event(pod, "Warning", "Failed", "Error: ErrImagePull", container)
            return [container.hold_until - now]
        try:
            env = container_env(
                pod,
                container.spec,
                self.api.store,
                pod_ip=rt.pod_ip,
                host_ip=self.options.node_ip,
                allocatable=self._allocatable,
            )
        except ConfigError as exc:
            if container.waiting != ("CreateContainerConfigError", str(exc)):
                self._event(pod, "Warning", "Failed", f"Error: {exc}", container)
            container.waiting = ("CreateContainerConfigError", str(exc))
            container.retry_at = now + opts.config_retry
            return [opts.config_retry]
        await self._start_attempt(pod, rt, container, env)
        return []

    async def _start_attempt(self, pod: JSON, rt: PodRuntime, container: ContainerRuntime, env: dict[str, str]) -> None:
        if container.ever_started:
            container.restart_count += 1
        container.ever_started = True
        container_id = "containerd://" + secrets.token_hex(32)
        attempt = Attempt(container_id, rfc3339(self.api.clock.now()))
        if container.mode == SIMULATED:
            annotations = pod["metadata"].get("annotations") or {}
            text = annotations.get(ANNOTATION_SIM_LOGS)
            if text:
                attempt.log = self._log_writer(rt, container)
                attempt.log.write_text(str(text) if str(text).endswith("\n") else f"{text}\n")
            attempt.runner = SimulatedRunner(
                self._sim_duration(pod, annotations),
                _int(annotations.get(ANNOTATION_SIM_EXIT_CODE), self.options.sim_exit_code),
                str(annotations.get(ANNOTATION_SIM_MESSAGE) or ""),
            )
        else:
            attempt.log = self._log_writer(rt, container)
            attempt.termination_file = attempt.log.path.with_suffix(".termination-log")
            attempt.termination_file.write_bytes(b"")
            attempt.fallback_to_logs = container.spec.get("terminationMessagePolicy") == "FallbackToLogsOnError"
            self._event(
                pod,
                "Normal",
                "Pulled",
                f'Container image "{container.image}" already present on machine and can be accessed by the pod',
                container,
            )
            try:
                argv, executable, cwd, process_env = self._command(pod, rt, container, env, attempt.termination_file)
                attempt.runner = await ProcessRunner.start(argv, executable, process_env, cwd, attempt.log)
            except StartError as exc:
                attempt.started_at = START_ERROR_TIME
                attempt.log.finish()
                self._event(pod, "Normal", "Created", f"Created container: {container.name}", container)
                self._event(pod, "Warning", "Failed", f"Error: {exc}", container)
                self._finish(attempt, Exit(128, "StartError", str(exc)))
                container.current = attempt
                return
            self._event(pod, "Normal", "Created", f"Created container: {container.name}", container)
            self._event(pod, "Normal", "Started", f"Started container {container.name}", container)
        container.current = attempt
        assert attempt.runner is not None
        attempt.runner.done.add_done_callback(functools.partial(self._on_exit, rt, attempt))

    def _sim_duration(self, pod: JSON, annotations: dict[str, Any]) -> float | None:
        raw = annotations.get(ANNOTATION_SIM_DURATION)
        if raw is not None:
            with contextlib.suppress(ValueError):
                return float(raw)
        if ((pod.get("spec") or {}).get("restartPolicy") or "Always") == "Always":
            return None
        return self.options.sim_duration

    def _command(
        self, pod: JSON, rt: PodRuntime, container: ContainerRuntime, env: dict[str, str], termination_file: Path
    ) -> tuple[list[str], str, str, dict[str, str]]:
        process_env = dict(self._base_env)
        process_env.update(container.rule.env)
        process_env["HOSTNAME"] = str((pod.get("spec") or {}).get("hostname") or rt.name)
        if self.options.server_url:
            process_env["KUBECONFIG"] = str(self._kubeconfig(rt.namespace))
        process_env[TERMINATION_MESSAGE_ENV] = str(termination_file)
        process_env.update(env)
        for name in IN_CLUSTER_ENV:
            process_env.pop(name, None)
        argv, executable, cwd = container_command(container, env, process_env, lambda: self._pod_dir(rt) / "cwd")
        return argv, executable, cwd, process_env

    def _on_exit(self, rt: PodRuntime, attempt: Attempt, done: asyncio.Future[Exit]) -> None:
        if done.cancelled():
            return
        try:
            result = done.result()
        except Exception as exc:  # a pump or wait failure: report it instead of losing the container
            result = Exit(128, "Error", f"dops emulator: {exc}")
        self._finish(attempt, result)
        self.queue.add(rt.key)

    def _finish(self, attempt: Attempt, result: Exit) -> None:
        finish_attempt(attempt, result, rfc3339(self.api.clock.now()))

    # ------------------------------------------------------------------------------- termination
    def _begin_kill(self, pod: JSON, rt: PodRuntime, grace: float) -> None:
        now = time.monotonic()
        rt.killing = True
        rt.kill_started = now
        rt.kill_deadline = now + max(grace, self.options.minimum_grace_period)
        for container in rt.running():
            assert container.current is not None and container.current.runner is not None
            self._event(pod, "Normal", "Killing", f"Stopping container {container.name}", container)
            container.current.runner.signal(signal.SIGTERM)

    def _final_delete(self, rt: PodRuntime) -> None:
        """The kubelet's last word on a deleted pod: DELETE with grace 0 (and its uid as precondition)."""
        rt.finalized = True
        current = self.api.store.get(PODS, rt.namespace, rt.name)
        if current is None or current["metadata"]["uid"] != rt.uid:
            return
        if not current["metadata"].get("deletionGracePeriodSeconds"):
            return
        with contextlib.suppress(errors.APIError):
            self.api.delete(
                self._pod_type, rt.namespace, rt.name, DeleteOptions(grace_period_seconds=0, precondition_uid=rt.uid)
            )

    def _teardown(self, rt: PodRuntime) -> float | None:
        """The pod is gone from the API (or replaced): stop its containers, then forget it."""
        running = rt.running()
        if running:
            now = time.monotonic()
            if not rt.killing:
                rt.killing = True
                rt.kill_started = now
                rt.kill_deadline = now + self.options.minimum_grace_period
                for container in running:
                    assert container.current is not None and container.current.runner is not None
                    container.current.runner.signal(signal.SIGTERM)
            if now >= rt.kill_deadline and not rt.sigkill_sent:
                rt.sigkill_sent = True
                for container in running:
                    assert container.current is not None and container.current.runner is not None
                    container.current.runner.signal(signal.SIGKILL)
            return None if rt.sigkill_sent else max(rt.kill_deadline - now, 0.01)
        self._forget(rt)
        return None

    def _forget(self, rt: PodRuntime, remove_files: bool = True) -> None:
        self._pods.pop(rt.uid, None)
        uids = self._by_name.get((rt.namespace, rt.name))
        if uids is not None:
            uids.discard(rt.uid)
            if not uids:
                del self._by_name[(rt.namespace, rt.name)]
        for container in rt.all:
            for attempt in container.attempts():
                if isinstance(attempt.runner, SimulatedRunner):
                    attempt.runner.cancel()
                if attempt.log is not None:
                    attempt.log.finish()
        if remove_files and rt.directory is not None:
            shutil.rmtree(rt.directory, ignore_errors=True)

    # ------------------------------------------------------------------------------- status
    def _compose(self, pod: JSON, rt: PodRuntime) -> JSON:
        return compose_pod_status(pod, rt, self.options.node_ip, rfc3339(self.api.clock.now()))

    def _write_status(self, rt: PodRuntime) -> None:
        current = self.api.store.get(PODS, rt.namespace, rt.name)
        if current is None or current["metadata"]["uid"] != rt.uid:
            return
        status = self._compose(current, rt)
        if status["phase"] in TERMINAL:
            rt.terminal = True
        if status != current.get("status"):
            self._put_status(current, status)

    def _put_status(self, pod: JSON, status: JSON, manager: str = "kubelet") -> None:
        meta = dict(pod["metadata"])
        meta.pop("resourceVersion", None)
        body = {**pod, "metadata": meta, "status": status}
        try:
            self.api.update(
                self._pod_type,
                meta.get("namespace"),
                meta["name"],
                body,
                WriteOptions(field_manager=manager),
                subresource="status",
            )
        except errors.APIError as exc:
            log.debug("kubelet: status of %s/%s not written: %s", meta.get("namespace"), meta["name"], exc.message)

    # ------------------------------------------------------------------------------- helpers
    def _sim_ip(self) -> str:
        base, size, version = self._sim_network
        self._sim_counter += 1
        address = base + 2 + (self._sim_counter - 1) % size
        return str(ipaddress.IPv4Address(address) if version == 4 else ipaddress.IPv6Address(address))

    def _pod_dir(self, rt: PodRuntime) -> Path:
        if rt.directory is None:
            assert self.work_dir is not None
            rt.directory = self.work_dir / "pods" / f"{rt.namespace}_{rt.name}_{rt.uid}"
            rt.directory.mkdir(parents=True, exist_ok=True)
        return rt.directory

    def _log_writer(self, rt: PodRuntime, container: ContainerRuntime) -> LogWriter:
        directory = self._pod_dir(rt) / container.name
        directory.mkdir(exist_ok=True)
        return LogWriter(
            directory / f"{container.restart_count}.log", self.options.log_max_bytes, self.options.log_max_files
        )

    def _kubeconfig(self, namespace: str) -> Path:
        path = self._kubeconfigs.get(namespace)
        if path is None:
            assert self.work_dir is not None
            directory = self.work_dir / "kubeconfig"
            directory.mkdir(exist_ok=True)
            path = directory / f"{namespace}.yaml"
            path.write_text(kubeconfig_yaml(self.options.server_url, namespace))
            self._kubeconfigs[namespace] = path
        return path

    def _event(
        self,
        pod: JSON,
        event_type: str,
        reason: str,
        message: str,
        container: ContainerRuntime | None = None,
        component: str = "kubelet",
    ) -> None:
        """A core/v1 Event about the pod, as the kubelet's (or scheduler's) recorder writes it."""
        if not self.options.events:
            return
        meta = pod["metadata"]
        namespace = meta.get("namespace", "")
        runtime = self._pods.get(str(meta.get("uid")))
        if (runtime is not None and runtime.simulated) or (runtime is None and self._pod_is_simulated(pod)):
            return
        now = rfc3339(self.api.clock.now())
        involved: JSON = {
            "apiVersion": "v1",
            "kind": "Pod",
            "name": meta["name"],
            "namespace": namespace,
            "uid": meta.get("uid", ""),
        }
        if container is not None:
            involved["fieldPath"] = container.field_path
        source: JSON = {"component": component}
        if component == "kubelet":
            source["host"] = self.node_name
        body: JSON = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"name": f"{meta['name']}.{secrets.token_hex(8)}", "namespace": namespace},
            "involvedObject": involved,
            "reason": reason,
            "message": message,
            "source": source,
            "firstTimestamp": now,
            "lastTimestamp": now,
            "count": 1,
            "type": event_type,
            "eventTime": None,
            "reportingComponent": component,
            "reportingInstance": self.node_name if component == "kubelet" else "",
        }
        with contextlib.suppress(errors.APIError):
            self.api.create(self._event_type, namespace, body, WriteOptions(field_manager=component))

    # ------------------------------------------------------------------------------- logs (S13)
    async def serve_logs(self, request: web.Request, pod: JSON, query: dict[str, str]) -> web.StreamResponse:
        """GET pods/{name}/log: the apiserver's checks, then the kubelet's, then the log file."""
        name = pod["metadata"]["name"]
        opts = parse_log_options(name, query, datetime.now(UTC))
        container = select_container(pod, opts.container)
        node = (pod.get("spec") or {}).get("nodeName")
        if not node:
            return empty_log()
        if node != self.node_name:
            # The node lookup's NotFound, named after the pods resource the request was for (as upstream answers).
            raise errors.APIError(404, "NotFound", f'pods "{node}" not found', {"name": node, "kind": "pods"})
        container_id = container_log_id(pod, container, opts.previous)
        runtime = self._pods.get(str(pod["metadata"]["uid"]))
        writer = runtime.find_log(container_id)[1] if runtime is not None else None
        return await stream_log(request, writer, opts)


def _int(value: Any, default: int) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return default
