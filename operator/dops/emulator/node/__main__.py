"""`python -m dops.emulator.node --kubeconfig K --name N`: join the API server of K as node N until SIGTERM.

Prints one line (`node agent N ready: ...`) once the Node is registered and its Lease exists.
SIGTERM or Ctrl-C is a graceful node shutdown (containers stopped, pods failed, node NotReady);
exit code 0. A kubeconfig or registration problem is one line on stderr and exit code 1. SIGUSR1
writes the await chain of every asyncio task to stderr (the threads' stacks once the event loop has
ended): what an agent that does not stop is waiting for.
"""

from __future__ import annotations

import argparse
import asyncio
import faulthandler
import logging
import signal
import sys
import tempfile
from pathlib import Path
from typing import Any

import yaml

from ..controllers.kubelet.config import MODES, KubeletOptions
from .agent import AgentOptions, NodeAgent
from .client import ApiClient, ApiError, KubeconfigError, load_kubeconfig
from .kubeletapi import ALWAYS_ALLOW, WEBHOOK, ServingConfig
from .volumes import MAX_TOKEN_AGE


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m dops.emulator.node", description=__doc__.splitlines()[0])
    parser.add_argument("--kubeconfig", type=Path, required=True, help="the API server and the node's credentials")
    parser.add_argument("--context", default=None, help="kubeconfig context (default: its current-context)")
    parser.add_argument("--name", required=True, help="the node's name")
    parser.add_argument(
        "--config",
        type=Path,
        default=None,
        help="YAML mapping of kubelet options (the fields of KubeletOptions: image_map, mode, work_dir, ...)",
    )
    parser.add_argument(
        "--image-map",
        action="append",
        default=[],
        metavar="PATTERN=MODE",
        help="image rule, e.g. 'ghcr.io/acme/*=process' (modes: process, simulated, missing); repeatable",
    )
    parser.add_argument("--mode", choices=MODES, default=None, help="for images no rule matches (default: missing)")
    parser.add_argument("--work-dir", default=None, help="logs, volumes and pod scratch dirs (default: a temp dir)")
    parser.add_argument("--node-ip", default=None, help="the node's InternalIP and the pods' IP (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=0, help="kubelet API port on 127.0.0.1 (0: any free port)")
    parser.add_argument("--tls-cert-file", default=None, help="kubelet API serving certificate (else no kubelet API)")
    parser.add_argument("--tls-private-key-file", default=None, help="its private key")
    parser.add_argument("--client-ca-file", default=None, help="CA that signs the API server's kubelet client cert")
    parser.add_argument("--authorization-mode", choices=(WEBHOOK, ALWAYS_ALLOW), default=WEBHOOK)
    parser.add_argument("--lease-duration", type=int, default=40, help="leaseDurationSeconds of the node Lease")
    parser.add_argument("--renew-interval", type=float, default=10.0, help="seconds between Lease renewals")
    parser.add_argument("--status-interval", type=float, default=60.0, help="seconds between node status posts")
    parser.add_argument(
        "--status-update-interval",
        type=float,
        default=10.0,
        help="seconds between checks of the Node against the API server's view; a difference is posted at once",
    )
    parser.add_argument(
        "--token-max-age",
        type=float,
        default=MAX_TOKEN_AGE,
        help="refresh ServiceAccount tokens at least this often, in seconds (a kubelet: 24 h)",
    )
    parser.add_argument("--shutdown-grace", type=float, default=5.0, help="on SIGTERM: seconds before SIGKILL")
    parser.add_argument("--debug", action="store_true", help="log debug messages")
    return parser.parse_args(argv)


def kubelet_options(args: argparse.Namespace) -> KubeletOptions:
    values: dict[str, Any] = {}
    if args.config is not None:
        loaded = yaml.safe_load(args.config.read_text()) or {}
        if not isinstance(loaded, dict):
            raise ValueError(f"--config {args.config}: expected a mapping of kubelet options")
        values.update(loaded)
    rules: dict[str, Any] = dict(values.get("image_map") or {})
    for rule in args.image_map:
        pattern, sep, mode = rule.rpartition("=")
        if not sep or not pattern or mode not in MODES:
            raise ValueError(f"--image-map expects PATTERN=MODE with MODE one of {', '.join(MODES)}; got {rule!r}")
        rules[pattern] = mode
    values["image_map"] = rules
    values["node_name"] = args.name
    values["schedule"] = False  # the cluster's scheduler binds pods
    for option, arg in (("mode", args.mode), ("work_dir", args.work_dir), ("node_ip", args.node_ip)):
        if arg is not None:
            values[option] = arg
    options = KubeletOptions(**values)
    options.image_rules()  # validate the map now: one clear line instead of a failure per pod
    return options


async def serve(args: argparse.Namespace) -> int:
    kubelet = kubelet_options(args)
    serving = None
    if args.tls_cert_file or args.tls_private_key_file:
        if not (args.tls_cert_file and args.tls_private_key_file):
            raise ValueError("--tls-cert-file and --tls-private-key-file go together")
        serving = ServingConfig(
            args.tls_cert_file, args.tls_private_key_file, args.client_ca_file, args.authorization_mode
        )
    options = AgentOptions(
        node_name=args.name,
        kubelet=kubelet,
        port=args.port,
        serving=serving,
        lease_duration=args.lease_duration,
        renew_interval=args.renew_interval,
        status_interval=args.status_interval,
        status_update_interval=args.status_update_interval,
        token_max_age=args.token_max_age,
        shutdown_grace=args.shutdown_grace,
    )
    # Inline kubeconfig credentials become files (ssl wants paths) in a private directory removed at exit.
    with tempfile.TemporaryDirectory(prefix="dops-node-credentials-") as secrets_dir:
        credentials = load_kubeconfig(args.kubeconfig, Path(secrets_dir), args.context)
        options.temporary_dirs = (Path(secrets_dir),)
        async with ApiClient(credentials, user_agent=f"dops-node-agent/{args.name}") as client:
            agent = NodeAgent(options, credentials, client)
            loop = asyncio.get_running_loop()
            for signum in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(signum, agent.stop)
            loop.add_signal_handler(signal.SIGUSR1, dump_tasks)

            def ready() -> None:
                where = f"https://127.0.0.1:{agent.kubelet_port}" if agent.kubelet_port else "off"
                print(f"node agent {args.name} ready: API server {credentials.server}, kubelet API {where}", flush=True)

            await agent.run(ready)
    return 0


def dump_tasks() -> None:
    """Every asyncio task's await chain on stderr (SIGUSR1): a test whose agent does not stop shows where it waits.

    `Task.print_stack` shows only a suspended coroutine's outermost frame; this follows `cr_await` down."""
    for task in asyncio.all_tasks():
        print(f"--- task {task.get_name()}", file=sys.stderr)
        awaited: Any = task.get_coro()
        while awaited is not None:
            frame = getattr(awaited, "cr_frame", None) or getattr(awaited, "gi_frame", None)
            if frame is None:
                print(f"  awaiting {awaited!r}", file=sys.stderr)
                break
            code = frame.f_code
            print(f'  File "{code.co_filename}", line {frame.f_lineno}, in {code.co_name}', file=sys.stderr)
            awaited = getattr(awaited, "cr_await", None) or getattr(awaited, "gi_yieldfrom", None)
    sys.stderr.flush()


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.debug else logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        code = asyncio.run(serve(args))
        # Only the interpreter's exit is left (threads joined, atexit): SIGUSR1 now dumps the threads' stacks.
        faulthandler.register(signal.SIGUSR1, all_threads=True)
        return code
    except (KubeconfigError, ValueError, OSError) as exc:
        print(f"node agent: {exc}", file=sys.stderr)
        return 1
    except ApiError as exc:
        print(f"node agent: the API server refused the node registration: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0


if __name__ == "__main__":
    sys.exit(main())
