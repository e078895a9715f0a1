"""`python -m dops.emulator --port 0 --kubeconfig PATH`: run the embedded API server until Ctrl-C/SIGTERM.

Prints the URL once it is serving and writes a kubeconfig pointing at it. Binds 127.0.0.1 only.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from pathlib import Path

from .server import EmbeddedServer, ServerSettings


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m dops.emulator", description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0, help="TCP port on 127.0.0.1 (0 = pick a free one)")
    parser.add_argument("--kubeconfig", type=Path, default=None, help="write a kubeconfig for the server here")
    parser.add_argument(
        "--crds",
        type=Path,
        action="append",
        default=[],
        help="apply the CRD YAML files in this directory (or file) at start; repeatable",
    )
    parser.add_argument("--bookmark-interval", type=float, default=30.0, help="seconds between watch BOOKMARKs")
    parser.add_argument("--history-size", type=int, default=20_000, help="watch events retained for resumption")
    parser.add_argument(
        "--controllers",
        default="all",
        help="comma-separated controllers to run: namespace,gc,job,deployment,kubelet; 'all' or 'none'",
    )
    parser.add_argument(
        "--kubelet-mode",
        choices=("missing", "process", "simulated"),
        default="missing",
        help="what the kubelet does with images no --image-map rule matches (default: ErrImagePull)",
    )
    parser.add_argument(
        "--image-map",
        action="append",
        default=[],
        metavar="PATTERN=MODE",
        help="kubelet image rule, e.g. 'ghcr.io/acme/*=process' (modes: process, simulated, missing); repeatable",
    )
    parser.add_argument(
        "--job-backoff-base", type=float, default=10.0, help="seconds of the Job controller's first pod-failure backoff"
    )
    parser.add_argument("--debug", action="store_true", help="log every internal error with its traceback")
    return parser.parse_args(argv)


def image_map_from_args(rules: list[str]) -> dict[str, str]:
    image_map: dict[str, str] = {}
    for rule in rules:
        pattern, sep, mode = rule.rpartition("=")
        if not sep or not pattern or mode not in ("process", "simulated", "missing"):
            raise ValueError(
                f"--image-map expects PATTERN=MODE with MODE one of process, simulated, missing; got {rule!r}"
            )
        image_map[pattern] = mode
    return image_map


async def serve(args: argparse.Namespace) -> None:
    from .controllers import ALL

    if args.controllers == "all":
        controllers: tuple[str, ...] = ALL
    elif args.controllers in ("", "none"):
        controllers = ()
    else:
        controllers = tuple(c.strip() for c in args.controllers.split(",") if c.strip())
        unknown = [c for c in controllers if c not in ALL]
        if unknown:
            raise ValueError(f"unknown controllers: {', '.join(unknown)} (choose from {', '.join(ALL)})")
    settings = ServerSettings(
        port=args.port,
        bookmark_interval=args.bookmark_interval,
        history_size=args.history_size,
        controllers=controllers,
        controller_options={
            "kubelet": {"mode": args.kubelet_mode, "image_map": image_map_from_args(args.image_map)},
            "job": {"backoff_base": args.job_backoff_base},
        },
    )
    server = EmbeddedServer(settings)
    await server.start()
    from .bootstrap import apply_manifest_paths

    apply_manifest_paths(server.api, args.crds)
    if args.kubeconfig:
        server.write_kubeconfig(args.kubeconfig)
    print(f"dops emulator serving at {server.url}", flush=True)
    if args.kubeconfig:
        print(f"kubeconfig written to {args.kubeconfig}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    await stop.wait()
    await server.stop()


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.debug else logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        asyncio.run(serve(args))
    except OSError as exc:
        print(f"error: cannot start the emulator: {exc}", file=sys.stderr)
        return 1
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
