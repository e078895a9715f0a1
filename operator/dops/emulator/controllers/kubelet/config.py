"""Kubelet options and the image map: which images run as local processes, which are simulated.

Images are never pulled. Every container image is looked up in the image map, an ordered mapping
of shell-style patterns (`fnmatch`, matched against the image as written in the pod *and* against
its normalised form, e.g. `busybox` → `docker.io/library/busybox:latest`) to a rule. The first
matching pattern wins. A rule is either a mode string or a mapping:

    image_map = {
        "ghcr.io/acme/dops:*": "process",             # run the container's command as a local process
        "registry.k8s.io/pause:*": "simulated",       # no process; stages drive the status
        "python:3.*": {                               # process mode with image-like defaults
            "mode": "process",
            "command": ["/usr/bin/python3"],          # used when the container sets no `command`
            "workingDir": "/srv/app",                 # used when the container sets no `workingDir`
            "env": {"PYTHONUNBUFFERED": "1"},         # "image" env: the container's own env overrides it
        },
        "docker.io/library/*": "missing",             # explicit ErrImagePull / ImagePullBackOff
    }

Modes: `process`, `simulated`, `missing`. Images no pattern matches get the kubelet's `mode`
option (default `missing`: the pod waits in `ErrImagePull`/`ImagePullBackOff`, the signal a real
cluster gives for an image it cannot pull). A pod annotated `dops.emulator/simulate: "true"` is
simulated whatever its images are.
"""

from __future__ import annotations

import fnmatch
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

PROCESS = "process"
SIMULATED = "simulated"
MISSING = "missing"
MODES = (PROCESS, SIMULATED, MISSING)

# Per-pod annotations (all optional).
ANNOTATION_SIMULATE = "dops.emulator/simulate"  # "true": simulate every container of this pod
ANNOTATION_SIM_DURATION = "dops.emulator/simulate-duration"  # seconds a simulated container runs
ANNOTATION_SIM_EXIT_CODE = "dops.emulator/simulate-exit-code"  # exit code a simulated container ends with
ANNOTATION_SIM_MESSAGE = "dops.emulator/simulate-message"  # its termination message
ANNOTATION_SIM_LOGS = "dops.emulator/simulate-logs"  # text a simulated container "prints" when it starts

# Environment variables a process inherits from the emulator (everything else comes from the pod).
DEFAULT_INHERITED_ENV: tuple[str, ...] = (
    "PATH",
    "HOME",
    "USER",
    "LOGNAME",
    "LANG",
    "LANGUAGE",
    "LC_ALL",
    "LC_CTYPE",
    "TZ",
    "TMPDIR",
    "PYTHONPATH",
    "VIRTUAL_ENV",
    "SYSTEMROOT",
)
# Never passed to a pod, even when inherited or configured: pods must not believe they run in a cluster.
IN_CLUSTER_ENV = ("KUBERNETES_SERVICE_HOST", "KUBERNETES_SERVICE_PORT", "KUBERNETES_PORT")

TERMINATION_MESSAGE_ENV = "DOPS_TERMINATION_MESSAGE_PATH"


@dataclass(frozen=True)
class ImageRule:
    pattern: str
    mode: str
    command: tuple[str, ...] = ()
    working_dir: str = ""
    env: tuple[tuple[str, str], ...] = ()


def _rule(pattern: str, value: Any) -> ImageRule:
    if isinstance(value, str):
        value = {"mode": value}
    if not isinstance(value, Mapping):
        raise ValueError(f"image_map[{pattern!r}]: expected a mode string or a mapping, got {value!r}")
    unknown = set(value) - {"mode", "command", "workingDir", "env"}
    if unknown:
        raise ValueError(f"image_map[{pattern!r}]: unknown keys {sorted(unknown)}")
    mode = value.get("mode", PROCESS)
    if mode not in MODES:
        raise ValueError(f"image_map[{pattern!r}]: mode must be one of {', '.join(MODES)}, got {mode!r}")
    command = value.get("command") or ()
    if isinstance(command, str) or not all(isinstance(c, str) for c in command):
        raise ValueError(f"image_map[{pattern!r}]: command must be a list of strings")
    env = value.get("env") or {}
    return ImageRule(
        pattern,
        mode,
        tuple(command),
        str(value.get("workingDir") or ""),
        tuple((str(k), str(v)) for k, v in dict(env).items()),
    )


class ImageMap:
    """Ordered (pattern → rule) lookup; see the module docstring for the format."""

    def __init__(self, rules: Mapping[str, Any] | Sequence[tuple[str, Any]] | None, default_mode: str) -> None:
        if default_mode not in MODES:
            raise ValueError(f"kubelet mode must be one of {', '.join(MODES)}, got {default_mode!r}")
        items = list(rules.items()) if isinstance(rules, Mapping) else list(rules or ())
        self.rules = [_rule(str(pattern), value) for pattern, value in items]
        self.default = ImageRule("*", default_mode)

    def resolve(self, image: str) -> ImageRule:
        normalised = normalize_image(image)
        for rule in self.rules:
            if fnmatch.fnmatchcase(image, rule.pattern) or fnmatch.fnmatchcase(normalised, rule.pattern):
                return rule
        return self.default


def normalize_image(image: str) -> str:
    """The fully qualified reference a container runtime reports (`busybox` → `docker.io/library/busybox:latest`)."""
    name, at, digest = image.partition("@")
    first, slash, _ = name.partition("/")
    if not slash or ("." not in first and ":" not in first and first != "localhost"):
        name = f"docker.io/{name}" if slash else f"docker.io/library/{name}"
    if not at and ":" not in name.rsplit("/", 1)[-1]:
        name += ":latest"
    return f"{name}@{digest}" if at else name


def image_repository(image: str) -> str:
    """`docker.io/library/busybox:1.36` → `docker.io/library/busybox` (for imageID)."""
    name = normalize_image(image).partition("@")[0]
    head, _, last = name.rpartition("/")
    return f"{head}/{last.partition(':')[0]}"


@dataclass
class KubeletOptions:
    """Everything `Kubelet(api, **options)` accepts (ServerSettings.controller_options["kubelet"])."""

    server_url: str = ""  # the emulator's URL; always passed by EmbeddedServer
    node_name: str = "dops-node"
    work_dir: str | None = None  # logs, kubeconfigs, per-pod scratch; default: a temp dir removed on stop
    image_map: Mapping[str, Any] | Sequence[tuple[str, Any]] | None = None
    mode: str = MISSING  # for images the map does not match
    # How to make a `missing` image runnable, appended to its ErrImagePull message ({image}: as written);
    # "" keeps the kubelet's own wording. `dops dev` names its --image-map option here.
    pull_hint: str = ""
    schedule: bool = True  # act as the scheduler: bind unscheduled pods to this node
    node_ip: str = "127.0.0.1"  # hostIP, and podIP of process pods (they share the host's network)
    sim_pod_cidr: str = "10.244.0.0/16"  # podIPs handed to simulated pods
    # Process mode.
    pod_start_delay: float = 0.0  # seconds between the ContainerCreating status and starting the containers
    inherit_env: Sequence[str] = DEFAULT_INHERITED_ENV
    extra_env: Mapping[str, str] = field(default_factory=dict)
    log_max_bytes: int = 10 * 1024 * 1024  # containerLogMaxSize
    log_max_files: int = 5  # containerLogMaxFiles
    minimum_grace_period: float = 2.0  # the kubelet never kills with less (minimumGracePeriodInSeconds)
    shutdown_grace: float = 1.0  # on stop: SIGTERM, this long, then SIGKILL
    events: bool = True  # record kubelet/scheduler Events for process-mode pods
    # Simulated mode (stages with delays; no process).
    sim_pending: bool = False  # post a Pending/ContainerCreating status before Running
    sim_start_delay: float = 0.0  # seconds from binding to Running
    sim_duration: float | None = 0.0  # seconds Running before exiting (Never/OnFailure pods); None = until deleted
    sim_exit_code: int = 0
    # Back-offs (the real values are 10 s doubling to 5 min).
    restart_backoff_base: float = 10.0
    restart_backoff_max: float = 300.0
    image_pull_backoff_base: float = 10.0
    image_pull_backoff_max: float = 300.0
    image_pull_error_hold: float = 1.0  # ErrImagePull shows this long before ImagePullBackOff
    config_retry: float = 1.0  # CreateContainerConfigError: retry this often (ConfigMaps/Secrets may appear)

    def image_rules(self) -> ImageMap:
        return ImageMap(self.image_map, self.mode)

    def base_env(self) -> dict[str, str]:
        env = {name: os.environ[name] for name in self.inherit_env if name in os.environ}
        env.update({str(k): str(v) for k, v in self.extra_env.items()})
        for name in IN_CLUSTER_ENV:
            env.pop(name, None)
        return env
