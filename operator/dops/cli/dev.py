"""`dops dev`: the embedded default — a whole dops installation on one machine, no cluster needed.

Starts the embedded control plane (API server, controllers, and a kubelet that runs the dops image
as the local installation), installs the CRDs and a default DelegationTarget, runs the operator
in-process, writes a kubeconfig, and serves until Ctrl-C/SIGTERM. Stopping it stops the operator,
kills every pod process and leaves nothing behind.

`--no-operator` starts only the control plane, so the Helm chart can be installed into it: the
chart installs the CRDs and its Deployment runs `dops operator` as a process, from the chart's own
command, args and env.

This is the only product module that imports `dops.emulator` (import-linter allows `dops.cli`).
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import threading
from collections.abc import Callable
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


class DevError(Exception):
    """`dops dev` cannot start; the message is one line naming the problem."""


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


def find_crds(explicit: Path | None) -> Path:
    """crds/ of this checkout (dev runs from a clone), or an explicit directory."""
    candidates = [explicit] if explicit else [Path.cwd() / "crds", Path(__file__).resolve().parents[3] / "crds"]
    for candidate in candidates:
        if candidate is not None and candidate.is_dir() and any(candidate.glob("*.yaml")):
            return candidate
    where = explicit or candidates[-1]
    raise DevError(f"no CRD manifests found in {where}: run `dops dev` from a dops checkout or pass --crds DIR")


def image_map() -> dict[str, Any]:
    """The dops image runs as this installation: its entrypoint `dops` becomes `python -m dops`."""
    return {f"{DEV_IMAGE_REPOSITORY}:*": {"mode": "process", "command": [sys.executable, "-m", "dops"]}}


def control_plane_settings(options: DevOptions) -> ServerSettings:
    return ServerSettings(
        host="127.0.0.1",
        port=options.port,
        controllers=ALL_CONTROLLERS,
        controller_options={
            "kubelet": {"image_map": image_map(), "work_dir": str(options.state_dir / "kubelet")},
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


def usage(kubeconfig: Path, with_operator: bool) -> str:
    steps = [f"export KUBECONFIG={kubeconfig}"]
    if not with_operator:
        steps.append("helm install dops helm/dops --set logArchive.type=emptyDir   # the chart runs the operator")
    steps += ["kubectl apply -f examples/", "kubectl get dops -w"]
    head = f"dops dev: embedded control plane ready; kubeconfig written to {kubeconfig}"
    return "\n".join([head, "", *(f"  {step}" for step in steps), "", "Press Ctrl-C to stop."])


async def serve(
    options: DevOptions, ready: Callable[[EmbeddedServer], None] | None = None, stop: asyncio.Event | None = None
) -> None:
    """Run the dev environment until `stop` is set (or SIGINT/SIGTERM when `stop` is None)."""
    crds = find_crds(options.crds) if options.with_operator else None
    options.state_dir.mkdir(parents=True, exist_ok=True)
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
        print(usage(kubeconfig, options.with_operator), flush=True)
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
