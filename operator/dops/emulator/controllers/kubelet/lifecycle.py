"""The pod lifecycle both kubelets of dops.emulator run: one sync step from a pod's spec to its containers.

There are two kubelets: the embedded control plane's (controller.py: reads the in-process store,
writes through `ApiServer`, also schedules) and the node agent (dops.emulator.node: any API server
over HTTPS, mounts projected volumes, renews a Lease). They differ in where a pod comes from and
where its status goes, never in how the pod lives: when containers start (init containers one by
one, then the rest), what an image the map calls `missing` does (`ErrImagePull`, then
`ImagePullBackOff` with back-off), a config error (`CreateContainerConfigError`, retried), a command
that cannot start (`StartError`, exit 128), restarts (`restartPolicy`, `CrashLoopBackOff` back-off),
`activeDeadlineSeconds`, graceful deletion (SIGTERM, SIGKILL after the grace period) and the events
a kubelet records on the way. Written twice, those rules drift apart; so they are written once here.

`PodLifecycle` holds that state machine (`_sync` is one step for one pod); a kubelet subclasses it
and supplies the hooks that really differ:

- `_now()`: the wall clock for timestamps (the embedded plane's clock may be a test's);
- `_write_status(rt)` / `_final_delete(pod, rt)`: report the composed status, and the last DELETE
  of a deleted pod (False: not done, the step is retried);
- `_env_sources(pod, container)`: where env's ConfigMap/Secret references are read (the store, or
  copies fetched over HTTP); `_node_env(pod, rt, container)`: what the node adds to a process's
  environment (a KUBECONFIG, or `KUBERNETES_SERVICE_*` and the ServiceAccount directory);
- `_emit_event(body)` / `_requeue(rt)`: record an Event, look at a pod again (a container exited);
- optional: `_prepare_sandbox` (the agent's volume mounts), `_maintain` (its token refresh),
  `_container_started` (its watchdog).

The per-pod state and the pure status rules are in runtime.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import ipaddress
import secrets
import shutil
import signal
import time
from abc import ABC, abstractmethod
from datetime import datetime
from pathlib import Path
from typing import Any, ClassVar, Generic, TypeVar

from ...clock import rfc3339
from .config import (
    ANNOTATION_SIM_DURATION,
    ANNOTATION_SIM_EXIT_CODE,
    ANNOTATION_SIM_LOGS,
    ANNOTATION_SIM_MESSAGE,
    ANNOTATION_SIMULATE,
    MISSING,
    SIMULATED,
    TERMINATION_MESSAGE_ENV,
    KubeletOptions,
    normalize_image,
)
from .env import ConfigError, Sources, container_env
from .logs import LogWriter
from .node import machine_capacity
from .process import Exit, ProcessRunner, SimulatedRunner, StartError
from .runtime import START_ERROR_TIME, Attempt, ContainerRuntime, PodRuntime, container_command, finish_attempt
from .status import go_duration

JSON = dict[str, Any]
RETRY = 1.0  # seconds before a step whose write failed is tried again
R = TypeVar("R", bound=PodRuntime)


def event_body(
    pod: JSON,
    event_type: str,
    reason: str,
    message: str,
    now: str,
    node_name: str,
    field_path: str = "",
    component: str = "kubelet",
) -> JSON:
    """A core/v1 Event about `pod` as a kubelet's (or the scheduler's) event recorder writes it."""
    meta = pod["metadata"]
    namespace = meta.get("namespace", "")
    involved: JSON = {
        "apiVersion": "v1",
        "kind": "Pod",
        "name": meta["name"],
        "namespace": namespace,
        "uid": meta.get("uid", ""),
    }
    if field_path:
        involved["fieldPath"] = field_path
    source: JSON = {"component": component}
    if component == "kubelet":
        source["host"] = node_name
    return {
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
        "reportingInstance": node_name if component == "kubelet" else "",
    }


class PodLifecycle(ABC, Generic[R]):
    """The kubelet's pod workers: `_sync(pod, rt)` moves one pod a step; subclasses supply the I/O hooks."""

    # Who reports a failure of the runtime itself in a container's termination message.
    runtime_label: ClassVar[str] = "dops emulator"
    # How to make a `missing` image runnable, appended to the ErrImagePull message (`{image}`: as written).
    pull_hint: ClassVar[str] = 'map {image!r} in the kubelet image_map to "process" or "simulated"'
    # Variables removed from every process environment after the pod's own env is applied.
    strip_env: ClassVar[tuple[str, ...]] = ()

    def __init__(self, options: KubeletOptions, node_name: str) -> None:
        self.kopts = options
        self.node_name = node_name
        self.images = options.image_rules()
        self.work_dir: Path | None = None  # set by the subclass when it starts
        self._pods: dict[str, R] = {}  # uid → runtime state
        self._base_env = options.base_env()
        self._allocatable = machine_capacity()
        network = ipaddress.ip_network(options.sim_pod_cidr, strict=False)
        self._sim_network = (int(network.network_address), max(network.num_addresses - 3, 1), network.version)
        self._sim_counter = 0

    # ------------------------------------------------------------------------------- hooks
    @abstractmethod
    def _now(self) -> datetime:
        """The wall clock of timestamps in statuses and events."""

    @abstractmethod
    async def _write_status(self, rt: R) -> bool:
        """Report the pod's composed status (marking `rt.terminal` once a terminal phase is reported); False: retry."""

    @abstractmethod
    async def _final_delete(self, pod: JSON, rt: R) -> bool:
        """The last word on a deleted, stopped pod (DELETE with grace 0); False: not done, retry."""

    @abstractmethod
    async def _env_sources(self, pod: JSON, container: JSON) -> Sources:
        """Where the container's ConfigMap/Secret references are read; ConfigError when they cannot be."""

    @abstractmethod
    def _node_env(self, pod: JSON, rt: R, container: ContainerRuntime) -> dict[str, str]:
        """What this node adds to a process's environment (between the image rule's env and the pod's)."""

    @abstractmethod
    def _emit_event(self, body: JSON) -> None:
        """Record a core/v1 Event (see `event_body`)."""

    @abstractmethod
    def _requeue(self, rt: R) -> None:
        """Look at the pod again soon (a container exited)."""

    async def _prepare_sandbox(self, pod: JSON, rt: R) -> float | None:
        """Before the pod's sandbox exists (volumes, say): None when ready, else seconds until the next try."""
        return None

    async def _maintain(self, pod: JSON, rt: R) -> float | None:
        """Periodic work for a running pod after each step; seconds until it is next due, or None."""
        return None

    def _container_started(self, runner: ProcessRunner) -> None:
        """A container process now runs (its process group is `runner.pgid`)."""

    # ------------------------------------------------------------------------------- one step
    async def _sync(self, pod: JSON, rt: R) -> float | None:
        """One step for `pod` as stored now: seconds until the next step is due, or None (events bring it)."""
        now = time.monotonic()
        meta = pod["metadata"]
        spec = pod.get("spec") or {}
        if rt.terminal:
            if meta.get("deletionTimestamp") and not rt.finalized:
                rt.finalized = await self._final_delete(pod, rt)
                return None if rt.finalized else RETRY
            return None
        deleting = bool(meta.get("deletionTimestamp"))
        if deleting:
            grace = float(meta.get("deletionGracePeriodSeconds") or 0)
            if not rt.killing:
                self._begin_kill(pod, rt, grace)
            else:  # deleted again with a shorter grace period: the earlier deadline wins
                rt.kill_deadline = min(rt.kill_deadline, rt.kill_started + max(grace, self.kopts.minimum_grace_period))
        deadline = spec.get("activeDeadlineSeconds")
        if not rt.killing and isinstance(deadline, int) and now - rt.started_mono >= deadline:
            rt.reason = "DeadlineExceeded"
            rt.message = "Pod was active on the node longer than the specified deadline"
            self._event(pod, "Normal", "DeadlineExceeded", rt.message)
            self._begin_kill(pod, rt, float(spec.get("terminationGracePeriodSeconds", 30) or 0))
        if not rt.announced:
            rt.announced = True
            delay = self.kopts.sim_start_delay if rt.simulated else self.kopts.pod_start_delay
            rt.start_after = now + delay
            if not rt.simulated or self.kopts.sim_pending:
                # Pending, every container waiting in ContainerCreating (PodInitializing).
                if not await self._write_status(rt):
                    rt.announced = False
                    return RETRY
                return max(delay, 0.0)
        for container in rt.all:
            current = container.current
            if current is not None and current.exit is not None and not current.handled:
                self._handle_exit(pod, rt, container, now)
        if rt.killing:
            if rt.running():
                return self._escalate(rt, now)
            rt.stopped = True
            if not await self._write_status(rt):
                return RETRY
            if deleting:
                rt.finalized = await self._final_delete(pod, rt)
                return None if rt.finalized else RETRY
            return None
        if now < rt.start_after:
            return rt.start_after - now
        if not rt.sandbox_ready:
            wait = await self._prepare_sandbox(pod, rt)
            if wait is not None:
                return wait
            rt.sandbox_ready = True
            rt.pod_ip = self._sim_ip() if rt.simulated else self.kopts.node_ip
        waits = await self._advance(pod, rt, time.monotonic())
        if not await self._write_status(rt):
            return RETRY
        if rt.terminal:
            return None
        due = await self._maintain(pod, rt)
        if due is not None:
            waits.append(due)
        if isinstance(deadline, int):
            waits.append(rt.started_mono + deadline - time.monotonic())
        return max(min(waits), 0.0) if waits else None

    async def _advance(self, pod: JSON, rt: R, now: float) -> list[float]:
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

    def _handle_exit(self, pod: JSON, rt: R, container: ContainerRuntime, now: float) -> None:
        """A run ended: restart it per `restartPolicy`, with CrashLoopBackOff after the first restart."""
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
        opts = self.kopts
        if now - attempt.started_mono > 2 * opts.restart_backoff_max:
            container.crashes = 0  # ran long enough: the back-off starts over
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

    async def _try_start(self, pod: JSON, rt: R, container: ContainerRuntime, now: float) -> list[float]:
        """Start `container` unless a back-off holds it: the image "pull", its env, then a run."""
        opts = self.kopts
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
                f"{reference}: not found (the {self.runtime_label} never pulls images: "
                f"{(opts.pull_hint or self.pull_hint).format(image=container.image)})"
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
                await self._env_sources(pod, container.spec),
                pod_ip=rt.pod_ip,
                host_ip=self.kopts.node_ip,
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

    async def _start_attempt(self, pod: JSON, rt: R, container: ContainerRuntime, env: dict[str, str]) -> None:
        """A new run of `container`: a simulated stage, or a process group (StartError if it cannot start)."""
        if container.ever_started:
            container.restart_count += 1
        container.ever_started = True
        attempt = Attempt("containerd://" + secrets.token_hex(32), rfc3339(self._now()))
        if container.mode == SIMULATED:
            annotations = pod["metadata"].get("annotations") or {}
            text = annotations.get(ANNOTATION_SIM_LOGS)
            if text:
                attempt.log = self._log_writer(rt, container)
                attempt.log.write_text(str(text) if str(text).endswith("\n") else f"{text}\n")
            attempt.runner = SimulatedRunner(
                self._sim_duration(pod, annotations),
                _int(annotations.get(ANNOTATION_SIM_EXIT_CODE), self.kopts.sim_exit_code),
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
                process_env = self._process_env(pod, rt, container, env, attempt.termination_file)
                argv, executable, cwd = container_command(
                    container, env, process_env, lambda: self._pod_dir(rt) / "cwd"
                )
                attempt.runner = await ProcessRunner.start(argv, executable, process_env, cwd, attempt.log)
            except StartError as exc:
                attempt.started_at = START_ERROR_TIME
                attempt.log.finish()
                self._event(pod, "Normal", "Created", f"Created container: {container.name}", container)
                self._event(pod, "Warning", "Failed", f"Error: {exc}", container)
                finish_attempt(attempt, Exit(128, "StartError", str(exc)), rfc3339(self._now()))
                container.current = attempt
                return
            self._container_started(attempt.runner)
            self._event(pod, "Normal", "Created", f"Created container: {container.name}", container)
            self._event(pod, "Normal", "Started", f"Started container {container.name}", container)
        container.current = attempt
        assert attempt.runner is not None
        attempt.runner.done.add_done_callback(functools.partial(self._on_exit, rt, attempt))

    def _process_env(
        self, pod: JSON, rt: R, container: ContainerRuntime, env: dict[str, str], termination_file: Path
    ) -> dict[str, str]:
        """The kubelet's allowlist, the image rule's env, what the node adds, then the pod's own env."""
        process_env = dict(self._base_env)
        process_env.update(container.rule.env)
        process_env["HOSTNAME"] = str((pod.get("spec") or {}).get("hostname") or rt.name)
        process_env.update(self._node_env(pod, rt, container))
        process_env[TERMINATION_MESSAGE_ENV] = str(termination_file)
        process_env.update(env)
        for name in self.strip_env:
            process_env.pop(name, None)
        return process_env

    def _sim_duration(self, pod: JSON, annotations: dict[str, Any]) -> float | None:
        raw = annotations.get(ANNOTATION_SIM_DURATION)
        if raw is not None:
            with contextlib.suppress(ValueError):
                return float(raw)
        if ((pod.get("spec") or {}).get("restartPolicy") or "Always") == "Always":
            return None
        return self.kopts.sim_duration

    def _on_exit(self, rt: R, attempt: Attempt, done: asyncio.Future[Exit]) -> None:
        if done.cancelled():
            return
        try:
            result = done.result()
        except Exception as exc:  # a pump or wait failure: report it instead of losing the container
            result = Exit(128, "Error", f"{self.runtime_label}: {exc}")
        finish_attempt(attempt, result, rfc3339(self._now()))
        self._requeue(rt)

    # ------------------------------------------------------------------------------- termination
    def _begin_kill(self, pod: JSON, rt: R, grace: float) -> None:
        """SIGTERM to every running container; SIGKILL is due after `grace` (at least the minimum)."""
        now = time.monotonic()
        rt.killing = True
        rt.kill_started = now
        rt.kill_deadline = now + max(grace, self.kopts.minimum_grace_period)
        for container in rt.running():
            assert container.current is not None and container.current.runner is not None
            self._event(pod, "Normal", "Killing", f"Stopping container {container.name}", container)
            container.current.runner.signal(signal.SIGTERM)

    def _escalate(self, rt: R, now: float) -> float | None:
        """SIGKILL what still runs once the kill deadline passed; seconds until it is due, or None once sent."""
        if now >= rt.kill_deadline and not rt.sigkill_sent:
            rt.sigkill_sent = True
            for container in rt.running():
                assert container.current is not None and container.current.runner is not None
                container.current.runner.signal(signal.SIGKILL)
        return None if rt.sigkill_sent else max(rt.kill_deadline - now, 0.01)

    def _teardown(self, rt: R) -> float | None:
        """The pod is gone from the API (force-deleted, or replaced): stop its containers, then forget it."""
        running = rt.running()
        if running:
            now = time.monotonic()
            if not rt.killing:  # nobody to report to: no events, the minimum grace period
                rt.killing = True
                rt.kill_started = now
                rt.kill_deadline = now + self.kopts.minimum_grace_period
                for container in running:
                    assert container.current is not None and container.current.runner is not None
                    container.current.runner.signal(signal.SIGTERM)
            return self._escalate(rt, now)
        self._forget(rt)
        return None

    def _forget(self, rt: R, remove_files: bool = True) -> None:
        """Drop the pod's state: simulated runs cancelled, logs finished (followers end), files removed."""
        self._pods.pop(rt.uid, None)
        for container in rt.all:
            for attempt in container.attempts():
                if isinstance(attempt.runner, SimulatedRunner):
                    attempt.runner.cancel()
                if attempt.log is not None:
                    attempt.log.finish()
        if remove_files and rt.directory is not None:
            shutil.rmtree(rt.directory, ignore_errors=True)

    async def _kill_everything(self, grace: float) -> None:
        """The kubelet stops: SIGTERM to every container, SIGKILL to what still runs after `grace`."""
        runners = [
            c.current.runner
            for rt in self._pods.values()
            for c in rt.all
            if c.current is not None and c.current.runner is not None and c.current.runner.running
        ]
        for runner in runners:
            runner.signal(signal.SIGTERM)
        if runners:
            await asyncio.wait([r.done for r in runners], timeout=grace)
        for runner in runners:
            if runner.running:
                runner.signal(signal.SIGKILL)
        if runners:
            await asyncio.wait([r.done for r in runners], timeout=5.0)

    # ------------------------------------------------------------------------------- helpers
    def _event(
        self,
        pod: JSON,
        event_type: str,
        reason: str,
        message: str,
        container: ContainerRuntime | None = None,
        component: str = "kubelet",
    ) -> None:
        """An Event about the pod, unless events are off or the pod is simulated (benchmarks make thousands)."""
        if not self.kopts.events:
            return
        runtime = self._pods.get(str(pod["metadata"].get("uid")))
        if (runtime is not None and runtime.simulated) or (runtime is None and self._pod_is_simulated(pod)):
            return
        field_path = container.field_path if container is not None else ""
        now = rfc3339(self._now())
        self._emit_event(event_body(pod, event_type, reason, message, now, self.node_name, field_path, component))

    def _pod_is_simulated(self, pod: JSON) -> bool:
        """Forced by annotation, or every image maps to `simulated`."""
        annotations = pod["metadata"].get("annotations") or {}
        if str(annotations.get(ANNOTATION_SIMULATE, "")).lower() == "true":
            return True
        spec = pod.get("spec") or {}
        images = [str(c.get("image", "")) for k in ("initContainers", "containers") for c in spec.get(k) or []]
        return bool(images) and all(self.images.resolve(i).mode == SIMULATED for i in images)

    def _sim_ip(self) -> str:
        base, size, version = self._sim_network
        self._sim_counter += 1
        address = base + 2 + (self._sim_counter - 1) % size
        return str(ipaddress.IPv4Address(address) if version == 4 else ipaddress.IPv6Address(address))

    def _pod_dir(self, rt: R) -> Path:
        """`<work dir>/pods/<ns>_<name>_<uid>`: logs, volumes and the default working directory, made on demand."""
        if rt.directory is None:
            assert self.work_dir is not None
            rt.directory = self.work_dir / "pods" / f"{rt.namespace}_{rt.name}_{rt.uid}"
        rt.directory.mkdir(parents=True, exist_ok=True)
        return rt.directory

    def _log_writer(self, rt: R, container: ContainerRuntime) -> LogWriter:
        directory = self._pod_dir(rt) / container.name
        directory.mkdir(exist_ok=True)
        return LogWriter(
            directory / f"{container.restart_count}.log", self.kopts.log_max_bytes, self.kopts.log_max_files
        )


def _int(value: Any, default: int) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return default
