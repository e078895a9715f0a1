"""What a kubelet knows about its pods and their containers, and the pure rules it reports them by.

Shared by both kubelets of dops.emulator: the embedded control plane's (controller.py) and the node
agent (dops.emulator.node). `PodRuntime` / `ContainerRuntime` / `Attempt` are the private, in-memory
state a kubelet keeps per pod uid, per container and per container run (a real kubelet's pod workers
and the CRI's container records); `compose_pod_status` turns that state into `pod.status` and
`container_command` resolves a container's argv as runc would. Nothing here does I/O towards an API
server, so both kubelets report a pod from the same state by the same rules; lifecycle.py moves the
state, each kubelet writes the result its own way.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from ...clock import rfc3339
from ..base import Key
from .config import ANNOTATION_SIMULATE, SIMULATED, ImageMap, ImageRule, image_repository, normalize_image
from .env import expand
from .logs import LogWriter
from .process import Exit, ProcessRunner, SimulatedRunner, StartError, resolve_executable
from .status import get_phase, pod_conditions

JSON = dict[str, Any]
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
