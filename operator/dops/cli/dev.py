"""`dops dev`: the embedded default — a whole dops installation on one machine, no cluster needed.

Starts the embedded control plane (API server, controllers, and a kubelet that runs the dops image
as the local installation), installs the CRDs and a default DelegationTarget, runs the operator
in-process, writes a kubeconfig, and serves until Ctrl-C/SIGTERM. Stopping it stops the operator,
kills every pod process and leaves nothing behind.

`--no-operator` starts only the control plane, so the Helm chart can be installed into it: the
chart installs the CRDs and its Deployment runs `dops operator` as a process, from the chart's own
command, args and env.

Every path is made absolute before anything starts: pods run as processes in working directories of
their own, so a relative state dir would hand them a KUBECONFIG that does not exist where they run.
The CRDs and examples come from the checkout when dops runs from one (edits show at once), else from
the copies packaged in `dops/data` (a `pip install`ed dops has no checkout). One `dops dev` owns a
state dir: an exclusive lock on `STATE_DIR/dev.lock` keeps a second one from overwriting its
kubeconfig and scratch space.

This is the only product module that imports `dops.emulator` (import-linter allows `dops.cli`).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import fcntl
import importlib.resources
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from dops.api import constants as c
from dops.domain.settings import OperatorSettings
from dops.emulator import EmbeddedServer, ServerSettings
from dops.emulator.bootstrap import apply_manifest_paths, apply_objects
from dops.emulator.controllers import ALL as ALL_CONTROLLERS

DEV_IMAGE_REPOSITORY = "ghcr.io/dops-dev/dops"
DEV_TARGET = "default"
LOCK_FILE = "dev.lock"
# The dops checkout this module would belong to (repo/operator/dops/cli/dev.py); only used when it is one.
CHECKOUT = Path(__file__).resolve().parents[3]
# Exit codes of DevError (dops.cli.errors' table: 1 could not act, 2 usage).
EXIT_FAILED = 1
EXIT_USAGE = 2


class DevError(Exception):
    """`dops dev` cannot start; the message is one line naming the problem, `code` the CLI exit code."""

    def __init__(self, message: str, code: int = EXIT_FAILED) -> None:
        super().__init__(message)
        self.code = code


@dataclass
class DevOptions:
    port: int = 0
    kubeconfig: Path = Path(".dops/dev/kubeconfig")
    state_dir: Path = Path(".dops/dev")
    with_operator: bool = True
    crds: Path | None = None
    namespace: str = "default"
    job_backoff_base: float = 1.0
    extra_env: dict[str, str] = field(default_factory=dict)
    # --image-map PATTERN=MODE: more images the kubelet runs (process: as this installation), simulates or refuses.
    image_rules: dict[str, str] = field(default_factory=dict)
    # --python-path DIR: prepended to every pod's PYTHONPATH (py:module:function operators import from there).
    python_path: list[Path] = field(default_factory=list)

    def resolved(self) -> DevOptions:
        """The same options with every path absolute (against the current directory, `~` expanded)."""
        return replace(
            self,
            kubeconfig=absolute(self.kubeconfig),
            state_dir=absolute(self.state_dir),
            crds=absolute(self.crds) if self.crds is not None else None,
            python_path=[absolute(p) for p in self.python_path],
        )


def absolute(path: Path) -> Path:
    """`path` made absolute without following symlinks, so printed paths read as the user wrote them."""
    return Path(os.path.abspath(path.expanduser()))


def _has_manifests(path: Path) -> bool:
    return path.is_dir() and any(path.glob("*.yaml"))


def shipped(name: str, stack: contextlib.ExitStack) -> Path | None:
    """`crds` or `examples` as this installation ships them, or None.

    The checkout's own directory when dops runs from a checkout (an editable install), else the copy
    packaged in `dops/data/NAME` (byte-identical, a drift test guards it), through importlib.resources
    so that it works however dops was installed; `stack` keeps a temporary extraction alive.
    """
    checkout = CHECKOUT / name
    if (
        (CHECKOUT / "pyproject.toml").is_file()
        and (CHECKOUT / "operator" / "dops").is_dir()
        and _has_manifests(checkout)
    ):
        return checkout
    try:
        packaged = importlib.resources.files("dops") / "data" / name
        path = stack.enter_context(importlib.resources.as_file(packaged))
    except (OSError, ValueError, TypeError):  # not extractable (a zipped install on Python < 3.12)
        return None
    return path if _has_manifests(path) else None


def find_crds(explicit: Path | None, stack: contextlib.ExitStack) -> Path:
    """An explicit --crds directory, else the CRDs this installation ships (see `shipped`)."""
    if explicit is not None:
        if _has_manifests(explicit):
            return explicit
        raise DevError(f"no CRD manifests (*.yaml) found in {explicit}", EXIT_USAGE)
    found = shipped("crds", stack)
    if found is None:
        raise DevError("this dops installation ships no CRD manifests: reinstall dops or pass --crds DIR")
    return found


@contextlib.contextmanager
def hold_state_dir(state_dir: Path) -> Iterator[None]:
    """Own `state_dir` exclusively while the block runs; DevError (exit 2) when another `dops dev` owns it.

    The lock is flock(2) on STATE_DIR/dev.lock: the kernel drops it when the owner exits, however it
    exits, so a crashed `dops dev` never leaves a stale lock. The file holds the owner's pid, for the
    message; it is never deleted (deleting it would let two processes lock two different files).
    """
    lock_path = state_dir / LOCK_FILE
    handle = lock_path.open("a+")
    try:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise
            handle.seek(0)
            holder = handle.read().strip()
            who = f"pid {holder}" if holder.isdigit() else "another process"
            raise DevError(
                f"the state dir {state_dir} is in use by another dops dev ({who}): "
                "stop that one, or pass --state-dir DIR (and --kubeconfig PATH) to run a second",
                EXIT_USAGE,
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"{os.getpid()}\n")
        handle.flush()
        yield
    finally:
        handle.close()  # releases the lock


# Appended to the ErrImagePull message of an image no rule maps: the option that maps it.
PULL_HINT = "run it as this dops installation with: dops dev --image-map '{image}=process' (or =simulated)"
IMAGE_MODES = ("process", "simulated", "missing")


def parse_image_rule(text: str) -> tuple[str, str]:
    """`PATTERN=MODE` of `--image-map` → (pattern, mode); ValueError (one line) otherwise."""
    pattern, sep, mode = text.rpartition("=")
    if not sep or not pattern.strip() or mode not in IMAGE_MODES:
        raise ValueError(
            f"--image-map expects PATTERN=MODE with MODE one of {', '.join(IMAGE_MODES)} "
            f"(e.g. 'ghcr.io/acme/*=process'); got {text!r}"
        )
    return pattern.strip(), mode


def image_map(rules: dict[str, str] | None = None) -> dict[str, Any]:
    """The dops image runs as this installation: its entrypoint `dops` becomes `python -m dops`. Images mapped
    to `process` with --image-map run the same way (their worker containers set only `args`)."""
    as_dops: dict[str, Any] = {"mode": "process", "command": [sys.executable, "-m", "dops"]}
    out: dict[str, Any] = {f"{DEV_IMAGE_REPOSITORY}:*": as_dops}
    for pattern, mode in (rules or {}).items():
        out[pattern] = as_dops if mode == "process" else mode
    return out


def pod_env(python_path: list[Path]) -> dict[str, str]:
    """Extra env of every pod: --python-path directories ahead of the inherited PYTHONPATH."""
    if not python_path:
        return {}
    parts = [str(p) for p in python_path]
    inherited = os.environ.get("PYTHONPATH")
    return {"PYTHONPATH": os.pathsep.join([*parts, inherited] if inherited else parts)}


def control_plane_settings(options: DevOptions) -> ServerSettings:
    return ServerSettings(
        host="127.0.0.1",
        port=options.port,
        controllers=ALL_CONTROLLERS,
        controller_options={
            "kubelet": {
                "image_map": image_map(options.image_rules),
                "work_dir": str(options.state_dir / "kubelet"),
                "pull_hint": PULL_HINT,
                "extra_env": {**options.extra_env, **pod_env(options.python_path)},
            },
            "job": {"backoff_base": options.job_backoff_base},
        },
    )


def default_target(namespace: str, image: str) -> dict[str, Any]:
    return {
        "apiVersion": c.API_VERSION,
        "kind": c.TARGET_KIND,
        "metadata": {"name": DEV_TARGET, "namespace": namespace},
        "spec": {"image": image, "mode": c.MODE_JOB, "allowImportPaths": True},
    }


def operator_settings(server_url: str, options: DevOptions) -> OperatorSettings:
    base = OperatorSettings.from_env({k: v for k, v in os.environ.items() if k.startswith("DOPS_")})
    return replace(
        base,
        worker_image=f"{DEV_IMAGE_REPOSITORY}:dev",
        api_server_url=server_url,
        log_archive=str((options.state_dir / "logs").resolve()),
        allow_import_paths=True,
        metrics_port=0,
        health_port=0,
    )


def usage(kubeconfig: Path, with_operator: bool, examples: Path | None = None) -> str:
    """What to do next, with absolute paths so that every line works from any directory."""
    steps = [f"export KUBECONFIG={kubeconfig}"]
    if not with_operator:
        steps.append("helm install dops helm/dops --set logArchive.type=emptyDir   # the chart runs the operator")
    steps += [f"kubectl apply -f {examples if examples is not None else 'examples'}/", "kubectl get dops -w"]
    head = f"dops dev: embedded control plane ready; kubeconfig written to {kubeconfig}"
    return "\n".join([head, "", *(f"  {step}" for step in steps), "", "Press Ctrl-C to stop."])


async def serve(
    options: DevOptions, ready: Callable[[EmbeddedServer], None] | None = None, stop: asyncio.Event | None = None
) -> None:
    """Run the dev environment until `stop` is set (or SIGINT/SIGTERM when `stop` is None)."""
    options = options.resolved()
    with contextlib.ExitStack() as stack:
        crds = find_crds(options.crds, stack) if options.with_operator else None
        examples = shipped("examples", stack)
        options.state_dir.mkdir(parents=True, exist_ok=True)
        stack.enter_context(hold_state_dir(options.state_dir))
        await _serve(options, crds, examples, ready, stop)


async def _serve(
    options: DevOptions,
    crds: Path | None,
    examples: Path | None,
    ready: Callable[[EmbeddedServer], None] | None,
    stop: asyncio.Event | None,
) -> None:
    server = EmbeddedServer(control_plane_settings(options))
    try:
        await server.start()
    except OSError as exc:
        raise DevError(f"cannot start the embedded API server on 127.0.0.1:{options.port}: {exc.strerror}") from exc
    operator_thread: threading.Thread | None = None
    operator_stop = threading.Event()
    try:
        settings = operator_settings(server.url, options)
        if crds is not None:
            # Without the operator the Helm chart installs the CRDs (helm refuses to adopt foreign ones).
            try:
                apply_manifest_paths(server.api, [crds])
                apply_objects(server.api, [default_target(options.namespace, settings.worker_image)])
            except ValueError as exc:
                raise DevError(f"cannot install the dops CRDs: {exc}") from exc
        kubeconfig = server.write_kubeconfig(options.kubeconfig, namespace=options.namespace)
        if options.with_operator:
            # Waiting for the operator blocks; the API server it talks to runs on this loop.
            operator_thread = await asyncio.get_running_loop().run_in_executor(
                None, start_operator, kubeconfig, settings, operator_stop
            )
        print(usage(kubeconfig, options.with_operator, examples), flush=True)
        if ready is not None:
            ready(server)
        if stop is None:
            stop = asyncio.Event()
            loop = asyncio.get_running_loop()
            for signum in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(signum, stop.set)
        await stop.wait()
        print("dops dev: stopping…", flush=True)
    finally:
        operator_stop.set()
        if operator_thread is not None:
            await asyncio.get_running_loop().run_in_executor(None, operator_thread.join, 30)
        await server.stop()


def start_operator(kubeconfig: Path, settings: OperatorSettings, stop: threading.Event) -> threading.Thread:
    """Run the Kopf operator in a thread of its own (Kopf runs its own event loop); wait until it runs."""
    from dops.handlers import run_operator

    ready = threading.Event()
    failure: list[BaseException] = []

    def target() -> None:
        try:
            run_operator(
                all_namespaces=True, settings=settings, stop_flag=stop, kubeconfig=kubeconfig, ready_flag=ready
            )
        except BaseException as exc:  # reported to the user below, never swallowed
            failure.append(exc)
            ready.set()

    thread = threading.Thread(target=target, name="dops-operator", daemon=True)
    thread.start()
    if not ready.wait(60) or failure:
        stop.set()
        reason = f"{type(failure[0]).__name__}: {failure[0]}" if failure else "not ready within 60 s"
        raise DevError(f"the dops operator did not start: {reason}")
    return thread


def run_dev(options: DevOptions) -> int:
    """Blocking entry point for the CLI; raises DevError (one line) when it cannot start."""
    try:
        asyncio.run(serve(options))
    except KeyboardInterrupt:
        pass
    return 0
